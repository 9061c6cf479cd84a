"""`dist --level windows` and `cluster --level windows` (compare/windows.py, cli/dist.py, cli/cluster.py): the
ANI TSV, the species clusters, the NA rules and the refusals (issue 20)."""

import math
import zlib

import h5py
import numpy as np
import pytest

from mrl_dna import dna
from mrl_dna.embed import EmbedOptions, embed_fasta
from mrl_dna.evolve import mutate
from mrl_dna.model import load_model
from test_cli_errors import one_error
from test_homology import event_ani, random_genome


def _fasta(path, name, tokens):
    path.write_text(f">{name}\n{dna.decode(tokens)}\n")
    return path


@pytest.fixture(scope="module")
def genomes_h5(tmp_path_factory):
    """Five genomes (a 120 kb random one, its copies at 3% and 8% events per base, its first half, an unrelated
    one) embedded --per-file --save-windows by the bundled model; (path, truth ANI of g vs m3 and m8)."""
    d = tmp_path_factory.mktemp("windows")
    rng = np.random.default_rng(7)
    x = random_genome(rng, 120_000)
    files, truth = [_fasta(d / "g.fa", "g", x)], {}
    for name, rate in (("m3", 0.03), ("m8", 0.08)):
        y, log = mutate(x, rate, np.random.default_rng(zlib.crc32(name.encode())))
        files.append(_fasta(d / f"{name}.fa", name, y))
        truth[name] = event_ani(log, len(x))
    files.append(_fasta(d / "half.fa", "half", x[:60_000]))
    files.append(_fasta(d / "other.fa", "other", random_genome(rng, 120_000)))
    out = d / "genomes.h5"
    embed_fasta(files, model=load_model(None), output=out,
                options=EmbedOptions(save_windows=True, per_file=True, device="cpu"))
    plain = d / "plain.h5"
    embed_fasta(files[:2], model=load_model(None), output=plain, options=EmbedOptions(per_file=True, device="cpu"))
    return out, plain, truth, files


def _rows(stdout):
    lines = stdout.splitlines()
    head = lines[0].lstrip("#").split("\t")
    return head, {(f[0], f[1]): dict(zip(head, f)) for f in (line.split("\t") for line in lines[1:])}


def test_dist_level_windows_reports_ani_and_aligned_fractions(genomes_h5, cli):
    path, _, truth, _ = genomes_h5
    code, out, err = cli("dist", path, "--level", "windows")
    assert code == 0, err
    head, rows = _rows(out)
    assert head[:7] == ["query", "target", "ani", "af_query", "af_target", "ani_qt", "ani_tq"]
    assert len(rows) == 10  # each pair once
    for name in ("m3", "m8"):
        assert abs(float(rows["g", name]["ani"]) - truth[name]) <= 1.0, (name, rows["g", name], truth[name])
    half = rows["g", "half"]
    assert abs(float(half["af_query"]) - 0.5) <= 0.02 and float(half["af_target"]) >= 0.98
    assert rows["g", "other"]["ani"] == "NA" and rows["g", "other"]["ani_qt"] == "NA"  # max(af) < --min-af
    code, out, err = cli("dist", path, "--level", "windows", "--min-ani", "95", "--no-header")
    assert code == 0, err
    assert sorted(tuple(line.split("\t")[:2]) for line in out.splitlines()) == [("g", "half"), ("g", "m3"), ("m3", "half")]


def test_dist_level_windows_of_two_files(genomes_h5, cli, tmp_path, capsys):
    path, _, _, files = genomes_h5
    b = tmp_path / "b.h5"
    embed_fasta(files[:1], model=load_model(None), output=b,
                options=EmbedOptions(save_windows=True, per_file=True, device="cpu"))
    capsys.readouterr()
    code, out, err = cli("dist", b, path, "--level", "windows", "--no-header")
    assert code == 0, err
    assert [line.split("\t")[:3] for line in out.splitlines()][0] == ["g", "g", "100.000"]
    assert len(out.splitlines()) == 5


def test_cluster_level_windows_makes_species_clusters(genomes_h5, cli):
    path = genomes_h5[0]
    code, out, err = cli("cluster", path, "--level", "windows", "--min-ani", "95")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "#id\tcluster\trepresentative\tani"
    rep = {f[0]: f[2] for f in (line.split("\t") for line in lines[1:])}
    assert rep["g"] == rep["m3"] == rep["half"] and len({rep["g"], rep["m8"], rep["other"]}) == 3
    assert "3 clusters of 5 genomes" in err


def test_window_level_refusals_are_one_line(genomes_h5, cli, tmp_path, tiny_model_dir, capsys):
    path, plain, _, files = genomes_h5
    code, _, err = cli("dist", plain, "--level", "windows")
    assert code == 1
    one_error(err, "has no saved windows", "--save-windows")
    odd = tmp_path / "odd.h5"  # saved windows at a stride the calibration has no table for
    embed_fasta(files[:1], model=load_model(None), output=odd,
                options=EmbedOptions(save_windows=True, windows_stride=300, per_file=True, device="cpu"))
    capsys.readouterr()  # embed_fasta's progress line
    code, _, err = cli("dist", odd, "--level", "windows")
    assert code == 1
    one_error(err, "saved its windows at stride 300 bp", "--windows-stride 250", "mrl-dna calibrate --strides 300")
    tiny = tmp_path / "tiny.h5"
    code, _, err = cli("embed", files[0], "-o", tiny, "-m", tiny_model_dir, "--save-windows", "-q")
    assert code == 0, err
    code, _, err = cli("dist", path, tiny, "--level", "windows")
    assert code == 1
    one_error(err, "were embedded with two models")
    for args in (["--min-ani", "95"], ["--min-af", "0.3"]):  # window-level options at the record level
        code, _, err = cli("dist", path, *args)
        assert code == 2 and "applies to --level windows only" in err
    code, _, err = cli("dist", path, "--level", "windows", "--format", "matrix")
    assert code == 2 and "applies to --level records only" in err
    code, _, err = cli("cluster", path, "--level", "windows")
    assert code == 2 and "needs --min-ani" in err


def test_a_model_without_calibration_gives_na_and_one_warning(tmp_path, cli, tiny_model_dir):
    rng = np.random.default_rng(1)
    x = random_genome(rng, 20_000)
    a = _fasta(tmp_path / "a.fa", "a", x)
    b = _fasta(tmp_path / "b.fa", "b", mutate(x, 0.02, rng)[0])
    h5 = tmp_path / "t.h5"
    code, _, err = cli("embed", a, b, "-o", h5, "-m", tiny_model_dir, "--save-windows", "--per-file", "-q")
    assert code == 0, err
    code, out, err = cli("dist", h5, "--level", "windows", "-q")
    assert code == 0, err
    assert out.splitlines()[1].split("\t")[2] == "NA"
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "no identity calibration" in warnings[0] and "mrl-dna calibrate" in warnings[0]
    code, _, err = cli("cluster", h5, "--level", "windows", "--min-ani", "95")
    assert code == 1 and "needs an identity calibration" in err


def test_record_level_dist_is_unchanged_by_the_windows_stride(genomes_h5, cli):
    """The pooled rows of a file with saved windows are those of one without (record vectors are pooled from
    the model-stride windows whatever --windows-stride is), so record-level dist prints the same lines."""
    path, plain, _, _ = genomes_h5
    with h5py.File(path) as f, h5py.File(plain) as g:
        assert np.array_equal(f["embeddings"][:2], g["embeddings"][:2])
        assert f.attrs["windows_stride"] == 250 and "windows_stride" not in g.attrs


def test_af_of_a_direction_whose_ani_is_na_is_na_with_a_calibration():
    """data/sample.fa's phages, viruses and mtDNA (15-60 windows a side): the colinear + reciprocal test passes by
    chance, so unrelated pairs printed ani NA beside af 0.05-0.21 (lambda vs orangutan mtDNA 0.2065). With a
    calibration a direction's af is NA where its ANI is; without one af is the homology test's alone."""
    from mrl_dna.compare.windows import pair_line, reported
    from mrl_dna.homology import PairResult

    nan = math.nan
    chance = PairResult("lambda", "mt", nan, nan, nan, 0.2065, 0.0, 47, 15, 9, 0)
    r = reported(chance, 0.1, calibrated=True)
    assert math.isnan(r.af_query) and math.isnan(r.af_target) and math.isnan(r.ani)
    assert pair_line(r).split("\t")[2:5] == ["NA", "NA", "NA"]
    kept = reported(chance, 0.1, calibrated=False)
    assert (kept.af_query, kept.af_target) == (0.2065, 0.0) and math.isnan(kept.ani)
    one_way = PairResult("W", "lambda", 96.1, nan, 96.1, 0.01, 0.53, 1200, 12, 3, 11)
    r = reported(one_way, 0.1, calibrated=True)
    assert math.isnan(r.af_query) and r.af_target == 0.53 and r.ani == 96.1
