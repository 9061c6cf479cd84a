"""`mrl-dna search` without the rendering: open the DBs (their records, or every saved window with
level=windows), embed or read the queries, run exact or funnel search, find the best windows, search queries of
several windows by their windows (targets.py); and the TSV of hits.

Axis letters: q queries, n DB rows, t hits per query, w windows of one target record, k prefix width.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrl_dna.console import count
from mrl_dna.device import resolve_device
from mrl_dna.embed import EmbedOptions, ShortRecords, embed_sequences
from mrl_dna.errors import ConfigError, ModelError, OptionError, StoreError
from mrl_dna.homology import saved_windows_stride
from mrl_dna.inputs.fasta import is_stream, read_fasta
from mrl_dna.model import DEFAULT_MODEL_DIR, load_model
from mrl_dna.search.database import STATUS_OK, Database, Level, check_dim
from mrl_dna.search.exact import Hits, block_rows_for, exact_search
from mrl_dna.search.funnel import Mode, Plan, funnel_search, plan_stages
from mrl_dna.search.index import find_index
from mrl_dna.search.targets import QueryWindows, TargetHit, default_query_stride, identity_table, search_targets
from mrl_dna.store import EmbeddingStore, check_comparable
from mrl_dna.vectors import check_cosine, truncate_normalize, warn_untrained_dim

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


@dataclass(frozen=True)
class Queries:
    ids: list[str]
    vectors: np.ndarray  # (q, D) float32, full width
    n_skipped: int  # query records without an embedding (empty, all N)
    source: str  # 'fasta' | 'hdf5'
    # per query: its windows when it has several and windows were asked for (load_queries' query_stride), else
    # None (searched by its vector); None when not asked
    windows: list[QueryWindows | None] | None = None


def is_hdf5(path: str | Path) -> bool:
    if is_stream(path):  # stdin or a pipe: FASTA (an HDF5 file cannot be read from a pipe), and never read twice
        return False
    try:
        with open(path, "rb") as f:
            return f.read(8) == HDF5_MAGIC
    except OSError:
        return False


def load_queries(path: str | Path, db: Database, *, model_dir: str | Path | None, device: str,
                 warn: Callable[[str], None] = lambda m: None, query_stride: int | None = None) -> Queries:
    """Query vectors from an HDF5 file comparable with the DB (store.check_comparable), or from FASTA embedded
    with the DB's model and options (window, stride, max N fraction; a query shorter than
    embed.records.SHORT_RECORD_BP is searched with embed's warning, through `warn`).

    query_stride (search --level windows): also the windows of every query of several windows, `query_stride`
    bp apart: FASTA queries are embedded at that stride (a query of one window gets the same vector at any
    stride), an HDF5 query's saved windows are taken every round(query_stride / its saved stride)-th."""
    if is_hdf5(path):
        return _queries_from_store(path, db, query_stride, warn)
    return _queries_from_fasta(str(path), db, model_dir=model_dir, device=device, warn=warn, query_stride=query_stride)


def _queries_from_store(path, db: Database, query_stride: int | None = None,
                        warn: Callable[[str], None] = lambda m: None) -> Queries:
    st = EmbeddingStore.open(path)
    check_comparable([(f"DB {db.names[0]}", db.attrs), (f"query file {path}", st.attrs)],  # model, window, ...
                     windows=db.level is Level.windows)
    ok = np.asarray(st.status) == STATUS_OK
    vecs = st.read(None, normalize=False) if st.n else np.zeros((0, db.dim), np.float32)
    ids = [str(x) for x, good in zip(st.ids, ok) if good]
    windows = _saved_query_windows(st, np.flatnonzero(ok), query_stride, warn) if query_stride else None
    return Queries(ids=ids, vectors=np.asarray(vecs, np.float32)[ok], n_skipped=int((~ok).sum()), source="hdf5",
                   windows=windows)


def _saved_query_windows(st: EmbeddingStore, rows: np.ndarray, query_stride: int,
                         warn: Callable[[str], None]) -> list[QueryWindows | None]:
    """The saved windows of rows `rows` of a query file, every round(query_stride / saved stride)-th on each
    contig; None for a row of one window (searched by its vector). A file without saved windows: all None, and
    a warning when some row is longer than a window."""
    table = st.windows()
    if table is None:
        if len(rows) and (np.asarray(st.n_windows)[rows] > 1).any():
            warn(f"{st.path} has no saved windows: its queries are searched by their record vectors (embed it with "
                 "--save-windows, or give the FASTA, to search long queries by their windows)")
        return [None] * len(rows)
    step = max(1, round(query_stride / saved_windows_stride(st)))
    order = np.argsort(table.record, kind="stable")
    bounds = np.searchsorted(table.record[order], np.arange(st.n + 1))
    contig = table.contig if table.contig is not None else table.record
    out: list[QueryWindows | None] = []
    for r in rows:
        sel = np.sort(order[bounds[r]: bounds[r + 1]])
        if len(sel) < 2:
            out.append(None)
            continue
        sel = np.concatenate([sel[contig[sel] == c][::step] for c in dict.fromkeys(contig[sel].tolist())])
        out.append(QueryWindows(np.asarray(table.read(None, rows=sel, normalize=True), np.float32),
                                np.asarray(table.start[sel], np.int64), np.asarray(table.end[sel], np.int64),
                                st.window_contigs(table, sel)))
    return out


def db_model(db: Database, model_dir: str | Path | None):
    """The model that made the DB: `model_dir` when given (its weights must match), else the first of the
    directory `embed` recorded (attribute model_dir) and the bundled default whose weights match."""
    if model_dir is not None:
        model = load_model(model_dir)
        if model.info.weights_hash != db.model_hash:
            raise StoreError(
                f"query model {model.info.weights_hash[:12]} differs from DB model {db.model_hash[:12]}; "
                f"pass --model DIR of the DB's model ({db.attrs.get('model_name', '?')})"
            )
        return model
    recorded = str(db.attrs.get("model_dir") or "")
    tried = []
    for candidate in dict.fromkeys(filter(None, [recorded, str(DEFAULT_MODEL_DIR)])):
        if not (Path(candidate) / "config.json").is_file():
            tried.append(f"{candidate} (missing)")
            continue
        try:
            model = load_model(candidate)
        except ModelError:
            tried.append(f"{candidate} (unreadable)")
            continue
        if model.info.weights_hash == db.model_hash:
            return model
        tried.append(f"{candidate} (other weights)")
    raise StoreError(
        f"the DB was embedded with model {db.attrs.get('model_name', '?')} ({db.model_hash[:12]}), which is not "
        f"available here (tried {', '.join(tried)}); pass --model DIR of that model, or search with a query "
        "file embedded by it"
    )


def _queries_from_fasta(path, db: Database, *, model_dir, device: str, warn: Callable[[str], None],
                        query_stride: int | None = None) -> Queries:
    model = db_model(db, model_dir)
    ids, vecs, wins, skipped = [], [], [], 0
    short = ShortRecords("query", "queries", "searched anyway", warn=warn)
    # every DB file has these options (Database.open checked them), so the queries compare with all of them; a
    # query of one window has the same vector at any stride, so the windows of long queries come from one run
    stride = query_stride or _attr_int(db.attrs, "stride")
    options = EmbedOptions(window=_attr_int(db.attrs, "window"), stride=stride, device=device,
                           max_n_fraction=float(db.attrs.get("max_n_fraction", EmbedOptions.max_n_fraction)),
                           save_windows=query_stride is not None, windows_stride=query_stride)
    recs = embed_sequences(read_fasta([path]), model=model, options=options)
    for r in recs:
        if r.status != "ok":
            skipped += 1
            continue
        short.see(r.id, r.length)
        ids.append(r.id)
        vecs.append(np.asarray(r.vector, np.float32))
        several = query_stride is not None and r.window_vectors is not None and len(r.window_vectors) > 1
        wins.append(QueryWindows(np.asarray(r.window_vectors, np.float32), r.window_spans[:, 0].astype(np.int64),
                                 r.window_spans[:, 1].astype(np.int64), [r.id] * len(r.window_spans))
                    if several else None)
    short.finish()
    arr = np.stack(vecs) if vecs else np.zeros((0, db.dim), np.float32)
    return Queries(ids=ids, vectors=arr, n_skipped=skipped, source="fasta",
                   windows=wins if query_stride is not None else None)


def _attr_int(attrs: dict, key: str) -> int | None:
    v = attrs.get(key)
    return int(v) if v is not None else None


@dataclass(frozen=True, eq=False)
class WindowHits:
    """Where each hit lies: the window [start, end) (0-based, end exclusive) on its contig (the target record
    itself, or a record of the target file in a per-file DB); -1 and '' where there is no hit or window."""

    start: np.ndarray  # (q, t) int64
    end: np.ndarray  # (q, t) int64
    contig: np.ndarray  # (q, t) object (str)

    @classmethod
    def empty(cls, shape: tuple[int, int]) -> "WindowHits":
        return cls(np.full(shape, -1, np.int64), np.full(shape, -1, np.int64), np.full(shape, "", dtype=object))


def hit_windows(hits: Hits, db: Database) -> WindowHits:
    """Coordinates of window hits (a DB opened at level windows: every row is a window)."""
    out = WindowHits.empty(hits.rows.shape)
    found = hits.rows >= 0  # (q, t)
    rows = hits.rows[found]
    part = np.searchsorted(db.offsets, rows, side="right") - 1
    start, end, contig = (np.empty(len(rows), np.int64), np.empty(len(rows), np.int64), np.empty(len(rows), object))
    for p in np.unique(part):
        m = part == p
        s, e, c = db.parts[p].coordinates(rows[m] - db.offsets[p])
        start[m], end[m], contig[m] = s, e, c
    out.start[found], out.end[found], out.contig[found] = start, end, contig
    return out


def best_windows(queries: np.ndarray, hits: Hits, db: Database) -> WindowHits:
    """For each record hit, the target window [start, end) whose vector is closest to the query (cosine at
    the hit's final dim), and its contig."""
    d = hits.dims[-1]
    out = WindowHits.empty(hits.rows.shape)
    tables = []
    for name, part in zip(db.names, db.parts):
        tab = part.windows() if hasattr(part, "windows") else None
        if tab is None:
            raise StoreError(f"{name} has no per-window vectors; re-embed it with mrl-dna embed --save-windows")
        rec = np.asarray(tab.record)
        order = None if np.all(rec[1:] >= rec[:-1]) else np.argsort(rec, kind="stable")
        tables.append((tab, rec if order is None else rec[order], order))
    qn = truncate_normalize(queries, d)  # (q, d)
    for qi, ri in zip(*np.nonzero(hits.rows >= 0)):
        p, local = db.locate(int(hits.rows[qi, ri]))
        tab, rec, order = tables[p]
        lo, hi = np.searchsorted(rec, [local, local + 1])
        if hi <= lo:
            continue
        widx = np.arange(lo, hi) if order is None else np.sort(order[lo:hi])
        W = tab.read(d, rows=widx, normalize=True)  # (w, d)
        best = int(widx[int(np.argmax(W @ qn[qi]))])
        out.start[qi, ri], out.end[qi, ri] = int(tab.start[best]), int(tab.end[best])
        out.contig[qi, ri] = db.parts[p].window_contigs(tab, np.array([best]))[0]
    return out


@dataclass(frozen=True)
class SearchResult:
    query_ids: list[str]
    target_ids: list[str]  # (n,) all DB ids, indexed by hits.rows
    hits: Hits
    windows: WindowHits | None  # where each hit lies (level windows), or its best window (--windows)
    plan: Plan  # exact or funnel, its stages, the FAISS index used (funnel.plan_stages)
    n_db: int
    n_db_files: int
    n_skipped_queries: int
    exact_macs_per_query: int  # what exact search at the full width would cost, for the summary
    level: Level = Level.records
    # level windows: per query, its targets when it was searched by its windows (best first), else None; None
    # when no query was (every query one window, or no windows asked for)
    targets: list[list[TargetHit] | None] | None = None
    target_plan: Plan | None = None  # the first pass of the window queries (plan_stages for -k 1)
    target_macs_per_window: int = 0  # its multiply-adds per query window
    query_stride: int | None = None  # bp between the windows of queries searched by their windows


def search(
    query: str | Path,
    db_paths: Sequence[str | Path],
    *,
    k: int = 10,
    dim: int | None = None,
    funnel: str | None = None,
    min_score: float | None = None,
    model_dir: str | Path | None = None,
    windows: bool = False,
    level: Level | str = Level.records,
    device: str = "auto",
    use_index: bool = True,
    query_stride: int | None = None,
    warn: Callable[[str], None] = lambda m: None,
) -> SearchResult:
    """Everything `mrl-dna search` does, without the rendering: open the DBs, embed or read the queries,
    run exact (--dim) or funnel search, and find the best windows on request.

    level: records (a DB row is a record, or a file with embed --per-file) or windows (every window saved by
    embed --save-windows is a row; hits carry the window's contig and [start, end)). Exact, funnel and the
    FAISS index (`mrl-dna index --level windows`) work the same at both levels. windows=True (records only)
    reports the best window inside each record hit instead.

    At level windows a query of several windows (FASTA embedded at `query_stride` bp, default
    targets.default_query_stride; or an HDF5 query saved with --save-windows) is searched by its windows and
    summarised per target (targets.search_targets: the first pass is the plan for -k 1, then every window of
    each candidate target exactly); a query of one window is searched by its vector as at the records level.

    Mode (funnel.plan_stages chooses the stages): `dim` -> exact at that prefix; `funnel`
    "16:2000,64:200,128:10" -> those stages, "auto" -> the default funnel for the DB size, "calibrate" -> the
    cheapest funnel measured on the DB; on a small DB auto, calibrate and the default are the exact full-width
    scan, never an index. Neither: the default funnel over the FAISS index when every DB file has a valid one
    (`mrl-dna index`; for an HNSW index that is DIM:200*k, then full width), else exact at full width. Why not
    a scan funnel by default: on the bundled model's real window embeddings no funnel that scans a prefix
    keeps the exact top-10 for 99% of queries at 10x fewer multiply-adds (the dim-8 scan alone is 1/16 of
    exact), and on a CPU the full-width scan is one BLAS product, faster in wall time; an HNSW index over dim
    64 does keep it (99.9% of queries at 13.6x fewer multiply-adds at 100k rows); see bench/HISTORY.md.
    """
    if dim is not None and funnel is not None:
        raise ConfigError("--dim and --funnel are two modes; give one of them")
    if k < 1:
        raise ConfigError(f"-k {k} must be >= 1")
    check_cosine(min_score, "--min-score")
    level = Level(level)
    if windows and level is Level.windows:
        raise ConfigError("--windows finds the best window inside each record hit; with --level windows every hit "
                          "is a window already: drop --windows")
    if query_stride is not None and level is not Level.windows:
        raise ConfigError("--query-stride sets the windows of long queries at --level windows; add --level windows "
                          "or drop --query-stride")
    device = str(resolve_device(device))  # "cpu" / "cuda[:N]", checked like embed's --device
    db = Database.open(db_paths, level=level)
    src = ", ".join(db.names)
    k = max(1, min(k, db.n))  # no more hits than rows: -k 1000000000 must not allocate (queries, 1e9) arrays
    if dim is not None:
        check_dim(dim, dim=db.dim, matryoshka_dims=db.matryoshka_dims, source=src)
        warn_untrained_dim(dim, db.matryoshka_dims, warn)
    if windows:
        for name, part in zip(db.names, db.parts):
            if part.windows() is None:
                raise StoreError(
                    f"{name} has no per-window vectors for --windows; re-embed it with mrl-dna embed --save-windows"
                )
    if level is Level.windows:
        window = int(db.attrs["window"])
        query_stride = query_stride or default_query_stride(min(saved_windows_stride(p.store) for p in db.parts),
                                                            window)
        if not 1 <= query_stride <= window:
            raise OptionError(f"--query-stride {query_stride} must be 1..{window} bp (the DB's window), so that the "
                              f"query's windows cover it; e.g. --query-stride {min(1000, window)}")
    queries = load_queries(query, db, model_dir=model_dir, device=device, warn=warn,
                           query_stride=query_stride if level is Level.windows else None)
    if queries.n_skipped:
        n = queries.n_skipped
        warn(f"{count(n, 'query record')} {'has' if n == 1 else 'have'} no embedding (empty or all N) and "
             f"{'is' if n == 1 else 'are'} skipped")
    found = find_index(db, warn) if use_index and dim is None else None  # (shortlister, IndexInfo) or None
    index = found[1] if found else None
    several = [i for i, w in enumerate(queries.windows or ()) if w is not None]  # searched by their windows
    targets, target_plan, target_macs = None, None, 0
    if several:
        target_plan = plan_stages(db, k=1, dim=dim, funnel=funnel, index=index, device=device, warn=warn)
        width = target_plan.stages[-1].dim
        cal = identity_table(db, model_dir, warn) if width == db.dim else None
        if width != db.dim:
            warn(f"identity is calibrated at the full width ({db.dim}); at dim {width} the identity column is NA")
        found_targets, target_macs = search_targets(
            [queries.windows[i] for i in several], db, target_plan, k=k, device=device, min_score=min_score,
            shortlist=found[0] if target_plan.index is not None else None, cal=cal)
        targets = [None] * len(queries.ids)
        for i, t in zip(several, found_targets):
            targets[i] = t
    one = np.setdiff1d(np.arange(len(queries.ids)), several)  # searched by their vectors, as always
    plan = (plan_stages(db, k=k, dim=dim, funnel=funnel, index=index, device=device, warn=warn)
            if len(one) or not several else target_plan)
    if not several or len(one):
        hits = _vector_search(queries.vectors[one], db, plan, k=k, min_score=min_score, device=device,
                              shortlist=found[0] if plan.index is not None else None)
        if several:
            hits = _scatter(hits, one, len(queries.ids))
    else:
        hits = Hits(np.full((len(queries.ids), 1), -1, np.int64), np.full((len(queries.ids), 1), -np.inf, np.float32),
                    tuple(s.dim for s in plan.stages), 0)
    win = best_windows(queries.vectors, hits, db) if windows else hit_windows(hits, db) if level is Level.windows else None
    return SearchResult(
        query_ids=queries.ids,
        target_ids=db.ids,
        hits=hits,
        windows=win,
        plan=plan,
        n_db=db.n,
        n_db_files=len(db.names),
        n_skipped_queries=queries.n_skipped,
        exact_macs_per_query=db.n * db.dim,
        level=level,
        targets=targets,
        target_plan=target_plan,
        target_macs_per_window=target_macs,
        query_stride=query_stride if several else None,
    )


def _vector_search(vectors: np.ndarray, db: Database, plan: Plan, *, k: int, min_score: float | None, device: str,
                   shortlist) -> Hits:
    """Each query vector's hits by the plan: exact at one prefix, or the funnel (over an index's shortlist)."""
    if plan.mode is Mode.exact:
        d = plan.stages[0].dim
        return exact_search(truncate_normalize(vectors, d), db.blocks(d, block_rows_for(len(vectors), d)),
                            k=k, min_score=min_score, valid=db.valid, device=device)
    return funnel_search(vectors, db, plan.stages, min_score=min_score, device=device, shortlist=shortlist)


def _scatter(hits: Hits, where: np.ndarray, n: int) -> Hits:
    """Hits of queries `where` as rows of a table of n queries (the others: no hits)."""
    rows = np.full((n, hits.rows.shape[1]), -1, np.int64)
    scores = np.full((n, hits.rows.shape[1]), -np.inf, np.float32)
    rows[where], scores[where] = hits.rows, hits.scores
    return Hits(rows, scores, hits.dims, hits.macs_per_query)


TSV_HEADER = ("query", "target", "rank", "cosine", "dims")


TSV_WINDOW_HEADER = ("target_start", "target_end", "target_contig")


# --level windows when some query was searched by its windows (after TSV_HEADER + TSV_WINDOW_HEADER)
TSV_TARGET_HEADER = ("query_start", "query_end", "query_contig", "strand", "query_windows", "n_best", "frac_best",
                     "best_cosine", "identity")


def tsv_lines(result: SearchResult, *, header: bool = True) -> Iterator[str]:
    """The hit table, one line per hit, grouped by query in input order, rank 1.. ascending.

    Columns: query id, target id, rank (1 = best), cosine at the last prefix width (6 decimals), dims =
    the prefix widths used, comma-separated (last = the width of the cosine), and with --level windows the
    hit window (with --windows the best window of the target) as [target_start, target_end) (0-based, end
    exclusive) on target_contig (the target itself, or a record of the target file in a per-file DB). At
    --level windows a target may appear several times (several of its windows). The header starts with '#'.

    When some query was searched by its windows (result.targets), TSV_TARGET_HEADER follows, and such a query
    has one line per target: cosine = the mean over all its windows of their best cosine in the target (the
    rank), target_* and query_* = the best window pair, strand, query_windows scored, n_best / frac_best = those
    whose best hit lies in the target, best_cosine = the best pair's, identity = calibrated percent or NA (also
    when strand is '.'). Lines of one-window queries keep their window hits, with '.' (NA for identity) in the
    columns that need several.
    """
    cols = TSV_HEADER + (TSV_WINDOW_HEADER if result.windows is not None else ())
    if result.targets is not None:
        cols += TSV_TARGET_HEADER
    if header:
        yield "#" + "\t".join(cols)
    dims = ",".join(str(d) for d in result.hits.dims)
    for qi, qid in enumerate(result.query_ids):
        if result.targets is not None and result.targets[qi] is not None:
            yield from _target_lines(qid, result.targets[qi], result)
            continue
        rank = 0
        for ti in range(result.hits.rows.shape[1]):
            row = int(result.hits.rows[qi, ti])
            if row < 0:
                continue
            rank += 1
            line = f"{qid}\t{result.target_ids[row]}\t{rank}\t{result.hits.scores[qi, ti]:.6f}\t{dims}"
            if result.windows is not None:
                w = result.windows
                s, e = int(w.start[qi, ti]), int(w.end[qi, ti])
                line += f"\t{s}\t{e}\t{w.contig[qi, ti]}" if s >= 0 else "\t.\t.\t."
            if result.targets is not None:
                line += f"\t.\t.\t.\t.\t1\t.\t.\t{result.hits.scores[qi, ti]:.6f}\tNA"
            yield line


def _target_lines(qid: str, targets: list[TargetHit], result: SearchResult) -> Iterator[str]:
    dims = ",".join(str(s.dim) for s in result.target_plan.stages)
    for rank, t in enumerate(targets, start=1):
        ident = f"{t.identity:.2f}" if t.identity == t.identity else "NA"
        yield (f"{qid}\t{result.target_ids[t.row]}\t{rank}\t{t.cosine:.6f}\t{dims}\t{t.target_start}\t"
               f"{t.target_end}\t{t.target_contig}\t{t.query_start}\t{t.query_end}\t{t.query_contig}\t{t.strand}\t"
               f"{t.query_windows}\t{t.n_best}\t{t.frac_best:.4f}\t"
               f"{t.best_cosine:.6f}\t{ident}")
