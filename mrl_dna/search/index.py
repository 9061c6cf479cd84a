"""The optional FAISS index over a small Matryoshka prefix (`mrl-dna index`), used as a funnel's first stage.

DB.h5.faiss holds the index (ids = DB rows), DB.h5.faiss.json what it was built from, so search can tell a
stale index and ignore it with a warning; `index --level windows` indexes the saved windows instead, in
DB.h5.windows.faiss (+ .json). FAISS is an optional extra: pip install 'mrl-dna[faiss]'.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrl_dna.errors import MrlDnaError, OptionError, StoreError
from mrl_dna.search import rotated
from mrl_dna.search.database import Database, Level, check_dim
from mrl_dna.search.exact import Hits, Shortlister, block_rows_for, exact_search, exact_share
from mrl_dna.store.textout import replace_when_done


class IndexKind(str, enum.Enum):
    """FAISS index type for the shortlist stage."""

    pca = "pca"  # exact, no FAISS needed: rows rotated onto their principal axes, bounded head scan (rotated.py)
    flat = "flat"  # exact inner product over the prefix: same shortlist as the blocked scan, FAISS speed
    ivf = "ivf"  # inverted lists: scans ~nprobe/nlist of the DB; approximate, for DBs far beyond 1M rows
    hnsw = "hnsw"  # graph (HNSW, the paper's shortlist): ~1-5k distance computations per query; approximate


# HNSW graph: M 32 links per node, efConstruction 80 (FAISS's usual good-recall settings). The shortlist of a
# default funnel over an HNSW index is HNSW_KEEP_PER_HIT * k rows (efSearch = that), reranked at full width.
# Why 200: on the bundled model's real 512-bp window embeddings (bench/HISTORY.md, 1000 held-out queries),
# an HNSW over dim 64 returning 2000 rows kept the exact full-width top-10 for 99.9% of queries at 100k rows
# (13.6x fewer multiply-adds than exact) and 99.7% at 1M (122x); 1000 rows gave 99.5% / 99.0%, too close.
HNSW_M = 32


HNSW_EF_CONSTRUCTION = 80


HNSW_KEEP_PER_HIT = 200


# What `mrl-dna index DB` builds without --kind / --dim: what wins for the shipped model (issue 25,
# bench/RESULTS.md): the exact rotated index over the full width (rotated.py): the exact top-k, no FAISS, no
# DB row read at search time. Approximate indexes over the full width (IVF, HNSW) do not keep the exact top-10
# of 99% of the shipped model's marker genes without scanning most of the DB; they measure their recall on the
# DB at build time (_tune): TUNE_QUERIES valid DB rows (seeded) are searched by the index and exactly, and
# nprobe doubles (from nlist/TUNE_FIRST_PROBE) until TUNE_EXACT_SHARE of them get their exact top-TUNE_K, or all
# lists are probed; an HNSW graph tunes efSearch the same way (from TUNE_FIRST_EF). An index over a prefix
# shortlists for a funnel (--match genome) and is not tuned.
DEFAULT_KIND = "pca"


TUNE_QUERIES = 200


TUNE_K = 10


TUNE_EXACT_SHARE = 0.995


TUNE_FIRST_PROBE = 256


TUNE_FIRST_EF = 32


# FAISS's k-means wants >= 39 training points per IVF list (fewer: uneven lists, and FAISS prints a warning).
IVF_MIN_ROWS_PER_LIST = 39


FAISS_SUFFIX = ".faiss"


INDEX_FORMAT = "mrl-dna-faiss-index"


def import_faiss():
    try:
        import faiss  # noqa: PLC0415 (optional extra, imported only here)
    except ImportError:
        raise MrlDnaError(
            "FAISS is not installed; install the extra with: pip install 'mrl-dna[faiss]' (or pip install faiss-cpu)"
        ) from None
    return faiss


def index_paths(db_path: str | Path, level: Level | str = Level.records) -> tuple[Path, Path]:
    """DB.h5.faiss and its .json (records), DB.h5.windows.faiss and its .json (windows)."""
    p = Path(db_path)
    stem = p.name + ("" if Level(level) is Level.records else ".windows") + FAISS_SUFFIX
    return p.with_name(stem), p.with_name(stem + ".json")


@dataclass(frozen=True)
class IndexInfo:
    path: str
    kind: str
    dim: int
    n_rows: int  # rows of the DB when indexed
    n_indexed: int  # rows with status ok, the ones in the index
    nlist: int
    nprobe: int
    model_hash: str
    db_created: str
    build_seconds: float = 0.0
    ef_search: int = 0  # hnsw: efSearch floor (the shortlist size is used when larger); 0 for flat/ivf
    level: str = Level.records.value  # what a row is: records or windows (indexes before issue 14: records)
    # measured at build time over the full width (_tune; -1 / 0: not measured): the share of TUNE_QUERIES DB rows
    # that got their exact top-TUNE_K from the index alone, and ms per query of the index and of the exact scan
    exact_share: float = -1.0
    tune_queries: int = 0
    head: int = 0  # pca: the head width p (rotated.choose_head)
    index_ms: float = 0.0
    exact_ms: float = 0.0


def build_index(
    db_path: str | Path,
    *,
    dim: int | None = None,
    kind: IndexKind = IndexKind(DEFAULT_KIND),
    nlist: int | None = None,
    nprobe: int | None = None,
    ef_search: int | None = None,
    force: bool = False,
    level: Level | str = Level.records,
    warn: Callable[[str], None] = lambda m: None,
) -> IndexInfo:
    """Write DB.h5.faiss (inner product over normalize_rows(v[:dim]) of the ok rows, ids = DB rows) and
    DB.h5.faiss.json (what it was built from, so search can tell a stale index); level=windows indexes the
    saved windows into DB.h5.windows.faiss. An existing index is replaced only with force=True.
    dim None: the full width. An IVF or HNSW index over the full width measures its recall on the DB and
    (unless nprobe / ef_search is given) tunes it (_tune; DEFAULT_KIND's comment)."""
    level = Level(level)
    for p in index_paths(db_path, level):
        if p.exists() and not force:
            raise StoreError(f"{p} already exists (an index of {db_path}); pass --force to rebuild it")
    kind = IndexKind(kind)
    faiss = import_faiss() if kind != IndexKind.pca else None
    t0 = time.perf_counter()
    db = Database.open([db_path], level=level)
    dim = db.dim if dim is None else dim
    check_dim(dim, dim=db.dim, matryoshka_dims=db.matryoshka_dims, source=str(db_path))
    n_ok = int(db.valid.sum())
    if kind == IndexKind.pca:
        return _build_rotated(db, db_path, dim, level, t0)
    if kind == IndexKind.ivf:
        most = max(1, n_ok // IVF_MIN_ROWS_PER_LIST)
        if nlist is not None and nlist > n_ok:  # refused, not clamped: the user's lists and nprobe would change
            raise OptionError(f"--nlist {nlist} exceeds the {n_ok:,} rows to index (each IVF list is trained on its "
                              f"rows); pick --nlist <= {most:,} ({IVF_MIN_ROWS_PER_LIST} rows per list), or leave it "
                              "out for the default")
        if nlist is not None and nlist > most:
            warn(f"--nlist {nlist} leaves fewer than {IVF_MIN_ROWS_PER_LIST} of the {n_ok:,} rows per list: uneven "
                 f"lists; --nlist <= {most:,} trains them better")
        nlist = nlist or max(1, min(most, int(4 * math.sqrt(n_ok))))
        given = nprobe
        nprobe = nprobe or max(1, nlist // 8)
        quant = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quant, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.min_points_per_centroid = 1  # the warning above, said once in our words, instead of FAISS's
        train = _sample_rows(db, dim, min(n_ok, 64 * nlist))  # FAISS wants 30-256 points per list
        index.train(train)
    elif kind == IndexKind.hnsw:
        nlist, nprobe, given = 0, 0, ef_search
        graph = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index = faiss.IndexIDMap(graph)
    else:
        nlist, nprobe, given = 0, 0, None
        index = faiss.IndexIDMap(faiss.IndexFlatIP(dim))
    for start, block in db.blocks(dim, 1 << 16):
        ok = db.valid[start : start + len(block)]
        ids = np.arange(start, start + len(block), dtype=np.int64)[ok]
        if len(ids):
            index.add_with_ids(np.ascontiguousarray(block[ok]), ids)
    tuned = _tune(faiss, index, kind, db, given) if dim == db.dim and kind != IndexKind.flat else {}
    if kind == IndexKind.ivf:
        nprobe = tuned.pop("param", nprobe)
    elif kind == IndexKind.hnsw:
        ef_search = tuned.pop("param", ef_search)
    fpath, jpath = index_paths(db_path, level)
    info = IndexInfo(
        path=str(fpath),
        kind=kind.value,
        dim=dim,
        n_rows=db.n,
        n_indexed=n_ok,
        nlist=int(nlist),
        nprobe=int(nprobe),
        model_hash=db.model_hash,
        db_created=str(db.attrs.get("created", "")),
        build_seconds=time.perf_counter() - t0,
        ef_search=int(ef_search or 0) if kind == IndexKind.hnsw else 0,
        level=level.value,
        **tuned,
    )
    # both under .partial names, renamed when both are complete; removed on any failure (Ctrl-C too)
    with replace_when_done([fpath, jpath], "free some space on it (the index lies beside its DB), then rerun the same "
                           "command") as (tmp, jtmp):
        faiss.write_index(index, str(tmp))
        jtmp.write_text(json.dumps({"format": INDEX_FORMAT, **dataclasses.asdict(info)}, indent=1) + "\n")
    return info


def _ok_blocks(db: Database, dim: int, step: int = 1):
    """(start, (b, dim) normalised rows) of the valid rows only (every step-th of them)."""
    for start, block in db.blocks(dim, 1 << 16):
        ok = db.valid[start : start + len(block)]
        yield start, block[ok][::step]


def _reference(db: Database, dim: int):
    """TUNE_QUERIES valid DB rows (seeded) at `dim` and their exact top-TUNE_K, and the exact scan's seconds."""
    ok = np.flatnonzero(db.valid)
    pick = np.sort(np.random.default_rng(0).choice(ok, size=min(TUNE_QUERIES, len(ok)), replace=False))
    queries = db.rows(dim, pick)  # (c, dim) normalised
    t0 = time.perf_counter()
    ref = exact_search(queries, db.blocks(dim, block_rows_for(len(pick), dim)), k=min(TUNE_K, len(ok)), valid=db.valid)
    return queries, ref, time.perf_counter() - t0


def _build_rotated(db: Database, db_path, dim: int, level: Level, t0: float) -> IndexInfo:
    """The exact rotated index (rotated.py): the rotation from a sample of rows, the head width measured on DB
    rows used as queries (rotated.choose_head), the file, and its search measured against the exact scan."""
    n_ok = int(db.valid.sum())
    R = rotated.rotation(_ok_blocks(db, dim, step=max(1, n_ok // rotated.ROTATION_SAMPLE)))
    queries, ref, exact_s = _reference(db, dim)
    widths = [p for p in rotated.HEAD_WIDTHS if p < dim] or [max(1, dim // 2)]
    surv = rotated.survivors(queries, ref.scores[:, -1], _ok_blocks(db, dim), R, widths)
    p = rotated.choose_head(n_ok, dim, surv)
    fpath, jpath = index_paths(db_path, level)
    with replace_when_done([fpath, jpath], "free some space on it (the index lies beside its DB), then rerun the same "
                           "command") as (tmp, jtmp):
        rotated.write_rotated(tmp, R, p, _all_blocks(db, dim), db.valid, n_ok)
        ix = rotated.RotatedIndex(tmp)
        t1 = time.perf_counter()
        r, s, _ = ix.search(queries, ref.rows.shape[1])
        secs = time.perf_counter() - t1
        share = exact_share(Hits(r, s, (dim,), 0), ref)
        per = 1e3 / max(1, len(queries))
        info = IndexInfo(path=str(fpath), kind=IndexKind.pca.value, dim=dim, n_rows=db.n, n_indexed=n_ok, nlist=0,
                         nprobe=0, head=p, model_hash=db.model_hash, db_created=str(db.attrs.get("created", "")),
                         build_seconds=time.perf_counter() - t0, level=level.value, exact_share=share,
                         tune_queries=len(queries), index_ms=secs * per, exact_ms=exact_s * per)
        jtmp.write_text(json.dumps({"format": INDEX_FORMAT, **dataclasses.asdict(info)}, indent=1) + "\n")
    return info


def _all_blocks(db: Database, dim: int):
    yield from db.blocks(dim, 1 << 16)


def _tune(faiss, index, kind: IndexKind, db: Database, given: int | None) -> dict:
    """Measure an index over the full width on TUNE_QUERIES valid DB rows (seeded) against the exact scan:
    the smallest nprobe (ivf) or efSearch (hnsw) on a doubling ladder at which TUNE_EXACT_SHARE of them get
    their exact top-TUNE_K from the index alone, or `given` (the user's) measured as it is. Returns param,
    exact_share, tune_queries, index_ms, exact_ms."""
    ok = np.flatnonzero(db.valid)
    pick = np.sort(np.random.default_rng(0).choice(ok, size=min(TUNE_QUERIES, len(ok)), replace=False))
    queries = db.rows(db.dim, pick)  # (c, D) normalised
    k = min(TUNE_K, len(ok))
    t0 = time.perf_counter()
    ref = exact_search(queries, db.blocks(db.dim, block_rows_for(len(pick), db.dim)), k=k, valid=db.valid)
    exact_s = time.perf_counter() - t0
    if kind == IndexKind.ivf:
        top, param = index.nlist, given or max(1, index.nlist // TUNE_FIRST_PROBE)
    else:
        graph = faiss.downcast_index(index.index)
        top, param = max(4096, k), given or max(TUNE_FIRST_EF, k)
    while True:
        if kind == IndexKind.ivf:
            index.nprobe = param
        else:
            graph.hnsw.efSearch = param
        t0 = time.perf_counter()
        s, r = index.search(queries, k)
        secs = time.perf_counter() - t0
        share = exact_share(Hits(r, np.where(r >= 0, s, -np.inf).astype(np.float32), (db.dim,), 0), ref)
        if given or share >= TUNE_EXACT_SHARE or param >= top:
            break
        param = min(top, 2 * param)
    per = 1e3 / max(1, len(pick))
    return dict(param=int(param), exact_share=share, tune_queries=len(pick), index_ms=secs * per, exact_ms=exact_s * per)


def _sample_rows(db: Database, dim: int, m: int) -> np.ndarray:
    ok = np.flatnonzero(db.valid)
    pick = np.sort(np.random.default_rng(0).choice(ok, size=min(m, len(ok)), replace=False))
    return np.ascontiguousarray(db.rows(dim, pick))


def _rebuild(db: Database, name: str, dim: int | None = None) -> str:
    """The command that rebuilds the index of DB file `name` at the DB's level (and `dim`, when given)."""
    lv = "" if db.level is Level.records else f" --level {db.level.value}"
    return f"mrl-dna index {name}{lv}" + (f" --dim {dim}" if dim is not None else "") + " --force"


def find_index(db: Database, warn: Callable[[str], None]) -> tuple[Shortlister, IndexInfo] | None:
    """A FAISS shortlist over every DB file when each has a valid index of one dim; None otherwise.
    A stale index (other model, other row count, rebuilt DB) or a damaged one (FAISS cannot read it, or it is
    not the index its .json describes) is reported through `warn` and ignored."""
    infos = []
    for p, name in enumerate(db.names):
        fpath, jpath = index_paths(name, db.level)
        if not fpath.exists() or not jpath.exists():
            return None
        try:
            meta = json.loads(jpath.read_text())
            meta.pop("format", None)
            info = dataclasses.replace(IndexInfo(**meta), path=str(fpath))  # the file found, wherever it was built from
        except (ValueError, TypeError) as e:
            warn(f"ignoring FAISS index {fpath}: unreadable {jpath.name} ({e}); rebuild with mrl-dna index {name}")
            return None
        n_part = int(db.offsets[p + 1] - db.offsets[p])
        created = str(db.parts[p].attrs.get("created", "")) if hasattr(db.parts[p], "attrs") else ""
        why = (
            f"it was built for model {info.model_hash[:12]}, the DB is model {db.model_hash[:12]}"
            if info.model_hash != db.model_hash
            else f"it holds {info.n_rows} rows, the DB has {n_part}"
            if info.n_rows != n_part
            else "the DB was rewritten after it was built"
            if info.db_created != created
            else None
        )
        if why:
            warn(f"ignoring stale FAISS index {fpath}: {why}; rebuild with {_rebuild(db, name, info.dim)}")
            return None
        infos.append(info)
    if len({i.dim for i in infos}) != 1:
        warn("the DB files' FAISS indexes use different dims; ignoring them (rebuild with one --dim)")
        return None
    faiss = None
    if any(i.kind != IndexKind.pca.value for i in infos):
        try:
            faiss = import_faiss()
        except MrlDnaError:
            warn(f"a FAISS index exists beside {db.names[0]} but faiss is not installed; scanning instead "
                 "(pip install 'mrl-dna[faiss]')")
            return None
    indexes, graphs = [], []
    for name, info in zip(db.names, infos):
        if info.kind == IndexKind.pca.value:  # no FAISS: rotated.py's file
            try:
                ix = rotated.RotatedIndex(info.path)
                damaged = ix.d != info.dim or ix.ntotal != info.n_indexed
            except (ValueError, OSError, KeyError):
                damaged = True
            if damaged:
                warn(f"ignoring damaged index {info.path} (unreadable, or not the index its .json describes); "
                     f"rebuild with {_rebuild(db, name)}")
                return None
            indexes.append(ix)
            graphs.append(None)
            continue
        try:
            # an IVF index is memory-mapped: a search reads the lists it probes, not the whole file (an index over
            # the full width is as large as the DB's vectors)
            ix = faiss.read_index(info.path, faiss.IO_FLAG_MMAP if info.kind == IndexKind.ivf.value else 0)
            graph = faiss.downcast_index(ix.index) if info.kind == IndexKind.hnsw.value else None
            damaged = (ix.d != info.dim or ix.ntotal != info.n_indexed
                       or (graph is not None and not hasattr(graph, "hnsw")))
        except (RuntimeError, OSError, AttributeError):  # FAISS raises RuntimeError for a truncated/garbled file
            damaged = True
        if damaged:
            warn(f"ignoring damaged FAISS index {info.path} (unreadable, or not the index its .json describes); "
                 f"rebuild with {_rebuild(db, name, info.dim)}")
            return None
        if info.kind == IndexKind.ivf.value:
            ix.nprobe = info.nprobe
        indexes.append(ix)
        graphs.append(graph)

    def shortlist(qd: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray, int]:
        allr, alls, macs = [], [], 0
        for p, (ix, info, graph) in enumerate(zip(indexes, infos, graphs)):
            if info.kind == IndexKind.pca.value:  # exact; counts its own multiply-adds
                r, s, mm = ix.search(np.ascontiguousarray(qd, dtype=np.float32), min(m, max(1, info.n_indexed)))
                allr.append(np.where(r >= 0, r + db.offsets[p], -1))
                alls.append(np.where(r >= 0, s, -np.inf))
                macs += mm
                continue
            if graph is not None:
                graph.hnsw.efSearch = max(info.ef_search, m)
                faiss.cvar.hnsw_stats.reset()
            s, r = ix.search(np.ascontiguousarray(qd, dtype=np.float32), min(m, max(1, info.n_indexed)))
            r = np.where(r >= 0, r + db.offsets[p], -1)  # ids are rows within the part
            allr.append(r)
            alls.append(np.where(r >= 0, s, -np.inf))
            if graph is not None:  # distance computations FAISS counted while walking the graph
                macs += faiss.cvar.hnsw_stats.ndis * info.dim
            elif info.kind == IndexKind.ivf.value:
                macs += (info.nlist + info.nprobe * info.n_indexed / max(1, info.nlist)) * info.dim * len(qd)
            else:
                macs += info.n_indexed * info.dim * len(qd)
        S, R = np.concatenate(alls, 1), np.concatenate(allr, 1)
        j = np.argsort(-S, axis=1, kind="stable")[:, :m]
        return np.take_along_axis(R, j, 1), np.take_along_axis(S, j, 1).astype(np.float32), int(macs)

    return shortlist, infos[0]
