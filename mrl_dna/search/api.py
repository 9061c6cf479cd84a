"""`mrl-dna search` without the rendering: open the DBs (their records, or every saved window with
level=windows), embed or read the queries, run exact or funnel search, find the best windows; and the TSV of hits.

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
from mrl_dna.errors import ConfigError, ModelError, StoreError
from mrl_dna.inputs.fasta import is_stream, read_fasta
from mrl_dna.model import DEFAULT_MODEL_DIR, load_model
from mrl_dna.search.database import STATUS_OK, Database, Level, check_dim
from mrl_dna.search.exact import Hits, block_rows_for, exact_search
from mrl_dna.search.funnel import Match, Mode, Plan, funnel_search, plan_stages
from mrl_dna.search.index import find_index
from mrl_dna.store import EmbeddingStore, check_comparable
from mrl_dna.vectors import check_cosine, truncate_normalize, warn_untrained_dim

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


@dataclass(frozen=True)
class Queries:
    ids: list[str]
    vectors: np.ndarray  # (q, D) float32, full width
    n_skipped: int  # query records without an embedding (empty, all N)
    source: str  # 'fasta' | 'hdf5'


def is_hdf5(path: str | Path) -> bool:
    if is_stream(path):  # stdin or a pipe: FASTA (an HDF5 file cannot be read from a pipe), and never read twice
        return False
    try:
        with open(path, "rb") as f:
            return f.read(8) == HDF5_MAGIC
    except OSError:
        return False


def load_queries(path: str | Path, db: Database, *, model_dir: str | Path | None, device: str,
                 warn: Callable[[str], None] = lambda m: None) -> Queries:
    """Query vectors from an HDF5 file comparable with the DB (store.check_comparable), or from FASTA embedded
    with the DB's model and options (window, stride, max N fraction; a query shorter than
    embed.records.SHORT_RECORD_BP is searched with embed's warning, through `warn`)."""
    if is_hdf5(path):
        return _queries_from_store(path, db)
    return _queries_from_fasta(str(path), db, model_dir=model_dir, device=device, warn=warn)


def _queries_from_store(path, db: Database) -> Queries:
    st = EmbeddingStore.open(path)
    check_comparable([(f"DB {db.names[0]}", db.attrs), (f"query file {path}", st.attrs)],  # model, window, ...
                     windows=db.level is Level.windows)
    ok = np.asarray(st.status) == STATUS_OK
    vecs = st.read(None, normalize=False) if st.n else np.zeros((0, db.dim), np.float32)
    ids = [str(x) for x, good in zip(st.ids, ok) if good]
    return Queries(ids=ids, vectors=np.asarray(vecs, np.float32)[ok], n_skipped=int((~ok).sum()), source="hdf5")


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


def _queries_from_fasta(path, db: Database, *, model_dir, device: str, warn: Callable[[str], None]) -> Queries:
    model = db_model(db, model_dir)
    ids, vecs, skipped = [], [], 0
    short = ShortRecords("query", "queries", "searched anyway", warn=warn)
    # every DB file has these options (Database.open checked them), so the queries compare with all of them
    options = EmbedOptions(window=_attr_int(db.attrs, "window"), stride=_attr_int(db.attrs, "stride"), device=device,
                           max_n_fraction=float(db.attrs.get("max_n_fraction", EmbedOptions.max_n_fraction)))
    recs = embed_sequences(read_fasta([path]), model=model, options=options)
    for r in recs:
        if r.status != "ok":
            skipped += 1
            continue
        short.see(r.id, r.length)
        ids.append(r.id)
        vecs.append(np.asarray(r.vector, np.float32))
    short.finish()
    arr = np.stack(vecs) if vecs else np.zeros((0, db.dim), np.float32)
    return Queries(ids=ids, vectors=arr, n_skipped=skipped, source="fasta")


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
    match: Match | str = Match.locus,
    device: str = "auto",
    use_index: bool = True,
    warn: Callable[[str], None] = lambda m: None,
) -> SearchResult:
    """Everything `mrl-dna search` does, without the rendering: open the DBs, embed or read the queries,
    run exact (--dim) or funnel search, and find the best windows on request.

    level: records (a DB row is a record, or a file with embed --per-file) or windows (every window saved by
    embed --save-windows is a row; hits carry the window's contig and [start, end)). Exact, funnel and the
    FAISS index (`mrl-dna index --level windows`) work the same at both levels. windows=True (records only)
    reports the best window inside each record hit instead.

    match: which neighbours (funnel.Match): locus (the default) the full-width ones, genome those a small
    prefix ranks. Mode (funnel.plan_stages chooses the stages): `dim` -> exact at that prefix; `funnel`
    "16:2000,64:200,128:10" -> those stages; "auto" -> the match's plan (a full-width index for locus; the
    index's or the default prefix funnel for genome), "calibrate" -> the cheapest prefix funnel measured on
    the DB; both are measured on DB rows against the exact scan and fall back to it when they do not keep the
    exact top-k of 99% of them at <= 0.8 of its time; on a small DB both are the exact full-width scan.
    Neither: the plan of a FAISS index when every DB file has a valid one that suits the match (`mrl-dna index`,
    by default over the full width), else exact at full width. Why the full width for locus: the shipped
    model's small prefixes are trained on "which genome" and do not hold a gene's or a window's full-width
    neighbours (bench/RESULTS.md, issue 25: at 1M marker genes an HNSW over dim 64 was 4.5x slower than the
    exact scan and gave 18% of queries their exact top-10, and IVF over the full width needs most lists for
    80%); the default index (`pca`, search/rotated.py) is exact and scans a quarter of the multiply-adds.
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
    queries = load_queries(query, db, model_dir=model_dir, device=device, warn=warn)
    if queries.n_skipped:
        n = queries.n_skipped
        warn(f"{count(n, 'query record')} {'has' if n == 1 else 'have'} no embedding (empty or all N) and "
             f"{'is' if n == 1 else 'are'} skipped")
    found = find_index(db, warn) if use_index and dim is None else None  # (shortlister, IndexInfo) or None
    plan = plan_stages(db, k=k, dim=dim, funnel=funnel, index=found[1] if found else None,
                       shortlist=found[0] if found else None, match=match, device=device, warn=warn)
    if plan.mode is Mode.exact:
        d = plan.stages[0].dim
        hits = exact_search(truncate_normalize(queries.vectors, d), db.blocks(d, block_rows_for(len(queries.ids), d)),
                            k=k, min_score=min_score, valid=db.valid, device=device)
    else:
        hits = funnel_search(queries.vectors, db, plan.stages, min_score=min_score, device=device,
                             shortlist=found[0] if plan.index is not None and found else None)
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
    )


TSV_HEADER = ("query", "target", "rank", "cosine", "dims")


TSV_WINDOW_HEADER = ("target_start", "target_end", "target_contig")


def tsv_lines(result: SearchResult, *, header: bool = True) -> Iterator[str]:
    """The hit table, one line per hit, grouped by query in input order, rank 1.. ascending.

    Columns: query id, target id, rank (1 = best), cosine at the last prefix width (6 decimals), dims =
    the prefix widths used, comma-separated (last = the width of the cosine), and with --level windows the
    hit window (with --windows the best window of the target) as [target_start, target_end) (0-based, end
    exclusive) on target_contig (the target itself, or a record of the target file in a per-file DB). At
    --level windows a target may appear several times (several of its windows). The header starts with '#'.
    """
    cols = TSV_HEADER + (TSV_WINDOW_HEADER if result.windows is not None else ())
    if header:
        yield "#" + "\t".join(cols)
    dims = ",".join(str(d) for d in result.hits.dims)
    for qi, qid in enumerate(result.query_ids):
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
            yield line
