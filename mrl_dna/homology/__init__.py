"""Window-level homology (issue 20): ANI, aligned fractions and per-target summaries from the window vectors
that `embed --save-windows` stores, with the identity calibration a model directory carries.

Layer 4 (beside embed): search, compare and train import it; it imports store, model and embed.

Public interface (stable names):

    windowset.py    WindowSet(name, vecs, contig, start, end, contig_length)   one genome's saved windows
                    .take(rows), .owned_bp(), .length
                    read_window_sets(store, rows=None) -> [WindowSet | None]   per row (record or --per-file file)
                    WindowReader(store)(row) -> WindowSet | None               the same, table indexed once
                    saved_windows_stride(store) -> int                         attribute windows_stride (else stride)
                    from_arrays(name, vecs, start, end, contig_length, contig=None)
    hits.py         best_hits(q, t, device="cpu", block_bytes=None) -> (best (n,), index (n,))   exact, blocked
    score.py        neighbourhood_radius, background, self_background, normalized_score
    calibration.py  CALIBRATION_FILE ("calibration.json"), ModelCalibration(model_hash, model_name, tables,
                    screen, build) .table(stride) .save(dir); load_calibration(dir) -> ModelCalibration | None;
                    StrideCalibration(stride, window, query_step, identity, score, valid_min, meta)
                    .identity_of(s); ScreenBound(ani, min_cos{dim: ...}, margin, min_af) .threshold(min_ani, dim)
                    fit_table, fit_screen
    ani.py          HomologyConfig(query_step=4, min_windows=5, colinear_tol=1024, blend 90-95, reciprocal)
                    directional(qset, tset, cal, config, device) -> Direction
                    pair_ani(a, b, cal_a, cal_b, config, device) -> PairResult(query, target, ani, ani_qt,
                    ani_tq, af_query, af_target, windows_query, windows_target, homologous_query,
                    homologous_target)          (percent; nan = NA)
    contigs.py      contig_targets(q, db, db_record, record_sum=, record_count=, cal=, top=, q_coords=, db_coords=,
                    window=, device=)
                    -> [TargetSummary(record, n_best, frac_best, mean_best, mean_score, identity, best_window,
                    best_query_window, best_cosine)]
    build.py        build_calibration(model, genomes, ...) -> ModelCalibration   (simulation with evolve.mutate)
    model.py        calibration_for(store_attrs, model_dir=None) -> (ModelCalibration | None, where)

What is exact: best hits (every scored query window against every target window, float32 products). What is
estimated: identity (a simulation-calibrated map of the normalised score; calibrated to 75% identity, unbiased to
90% on genomes with uneven divergence), which windows are homologous (colinearity + reciprocity), af.
"""

from mrl_dna.homology.ani import Direction, HomologyConfig, PairResult, colinear, directional, pair_ani
from mrl_dna.homology.calibration import (CALIBRATION_FILE, ModelCalibration, ScreenBound, StrideCalibration, fit_screen,
                                          fit_table, load_calibration)
from mrl_dna.homology.contigs import TargetSummary, contig_targets
from mrl_dna.homology.hits import best_hits
from mrl_dna.homology.score import background, neighbourhood_radius, normalized_score, self_background
from mrl_dna.homology.windowset import WindowReader, WindowSet, from_arrays, read_window_sets, saved_windows_stride

__all__ = ["CALIBRATION_FILE", "Direction", "HomologyConfig", "ModelCalibration", "PairResult", "ScreenBound",
           "StrideCalibration", "TargetSummary", "WindowReader", "WindowSet", "background", "best_hits", "colinear", "contig_targets",
           "directional", "fit_screen", "fit_table", "from_arrays", "load_calibration", "neighbourhood_radius",
           "normalized_score", "pair_ani", "read_window_sets", "saved_windows_stride", "self_background"]
