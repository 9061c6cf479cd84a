"""HDF5 store: exact round trip, prefix reads, chunk layout, resume after a kill, merge, export, bad files,
and the info/merge/export commands (exit code + one-line error, no traceback)."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import assert_same_file, run_cli
from mrl_dna.errors import ConfigError, StoreError
from mrl_dna.store import (
    EmbeddedRecord,
    EmbeddingStore,
    EmbeddingWriter,
    export_store,
    merge_stores,
    partial_path,
)
from mrl_dna.vectors import normalize_rows

D = 64
DIMS = (8, 16, 32, 64)
ATTRS = dict(model_name="tiny", model_hash="ab" * 32, model_kind="mrl-dna", matryoshka_dims=DIMS, window=256,
             stride=256, pooling="mean", shard="", command="mrl-dna embed x.fa -o x.h5")


def make_records(n: int, *, seed: int = 0, windows: bool = True) -> list[EmbeddedRecord]:
    """n records; every 5th is empty and every 7th all-N (zero rows); ok records carry 0-3 windows."""
    rng = np.random.default_rng(seed)
    vecs = normalize_rows(rng.standard_normal((n, D)))  # (n, D)
    recs = []
    for i in range(n):
        status = "empty" if i % 5 == 4 else "all_n" if i % 7 == 6 else "ok"
        k = i % 4 if status == "ok" else 0
        spans = np.array([[j * 100, j * 100 + 256] for j in range(k)], dtype=np.int64).reshape(k, 2)
        wv = normalize_rows(rng.standard_normal((k, D))) if windows else None
        recs.append(EmbeddedRecord(
            id=f"rec{i}", length=100 * i, n_windows=k, n_skipped=i % 3, status=status,
            vector=vecs[i] if status == "ok" else np.full(D, np.nan, np.float32),
            window_spans=spans, window_vectors=wv, order=i,
        ))
    return recs


def write(path: Path, recs, *, batch: int = 4, attrs=None, **kw) -> Path:
    kw = {"dim": D, "dtype": "float32", "save_windows": True, "resume": False, **kw}
    with EmbeddingWriter(path, attrs=attrs or ATTRS, **kw) as w:
        for a in range(w.n_done, len(recs), batch):
            w.append(recs[a : a + batch])
        w.finish()
    return path


def expected_vectors(recs) -> np.ndarray:
    return np.stack([r.vector if r.status == "ok" else np.zeros(D, np.float32) for r in recs])  # (n, D)


@pytest.fixture
def recs():
    return make_records(23)


@pytest.fixture
def h5(tmp_path, recs) -> Path:
    return write(tmp_path / "x.h5", recs)


# ------------------------------------------------------------------------------------------ round trip


def test_round_trip_is_exact(h5, recs):
    with EmbeddingStore.open(h5) as s:
        assert s.n == len(recs) and s.dim == D and s.matryoshka_dims == DIMS and s.complete
        assert np.array_equal(s.read(), expected_vectors(recs))  # bitwise, float32
        assert s.read().dtype == np.float32
        assert s.ids == [r.id for r in recs]
        assert s.lengths.tolist() == [r.length for r in recs]
        assert s.n_windows.tolist() == [r.n_windows for r in recs]
        assert s.n_skipped.tolist() == [r.n_skipped for r in recs]
        assert s.order.tolist() == list(range(len(recs)))
        assert s.status_counts() == {"ok": 16, "empty": 4, "all_n": 3}
        assert not np.isnan(s.read()).any()
        assert s.attrs["model_hash"] == ATTRS["model_hash"] and s.attrs["window"] == 256
        w = s.windows()
        ok = [r for r in recs if r.status == "ok"]
        assert np.array_equal(w.read(), np.concatenate([r.window_vectors for r in ok]))
        assert np.array_equal(np.stack([w.start, w.end], 1), np.concatenate([r.window_spans for r in ok]))
        assert w.record.tolist() == [i for i, r in enumerate(recs) if r.status == "ok" for _ in range(r.n_windows)]


def test_float16_is_stored_half_and_read_as_unit_float32(tmp_path, recs):
    path = write(tmp_path / "h.h5", recs, dtype="float16")
    with EmbeddingStore.open(path) as s:
        assert s._f["embeddings"].dtype == np.float16 and s.dtype == "float16"
        v = s.read()
        assert v.dtype == np.float32
        np.testing.assert_allclose(v, expected_vectors(recs), atol=2e-3)
        ok = s.status == 0
        np.testing.assert_allclose(np.linalg.norm(v[ok], axis=1), 1.0, atol=1e-6)
        assert not v[~ok].any()


def test_prefix_read_is_normalized_prefix_of_full(h5):
    with EmbeddingStore.open(h5) as s:
        full = s.read(normalize=False)
        for k in (*DIMS[:-1], 5):
            assert np.array_equal(s.read(dim=k), normalize_rows(full[:, :k]))
        assert np.array_equal(s.read(dim=D), full)  # stored float32 rows are already unit at D: returned as is
        rows = np.array([7, 2, 2, 20])  # any order, repeats
        assert np.array_equal(s.read(16, rows=rows), normalize_rows(full[rows, :16]))
        assert np.array_equal(s.read(16, rows=slice(3, 9)), normalize_rows(full[3:9, :16]))
        blocks = list(s.iter_blocks(8, block_rows=5))
        assert [b for b, _ in blocks] == [0, 5, 10, 15, 20]
        assert np.array_equal(np.concatenate([x for _, x in blocks]), s.read(8))


@pytest.mark.parametrize("k", [0, D + 1])
def test_dim_out_of_range_names_the_dims(h5, k):
    with EmbeddingStore.open(h5) as s, pytest.raises(ConfigError, match=f"dim {k} is outside 1..{D}.*8, 16, 32, 64"):
        s.read(dim=k)


class _CountingFile(io.FileIO):
    bytes_read = 0

    def readinto(self, b):
        n = super().readinto(b)
        _CountingFile.bytes_read += n or 0
        return n


def test_prefix_read_touches_only_prefix_chunks(tmp_path):
    n = 4096
    vecs = normalize_rows(np.random.default_rng(1).standard_normal((n, D)))
    recs = [EmbeddedRecord(f"r{i}", 1, 1, 0, "ok", vecs[i]) for i in range(n)]
    path = write(tmp_path / "big.h5", recs, batch=1024, save_windows=False)
    with h5py.File(path, "r") as f:
        assert f["embeddings"].chunks == (512, 8)  # every Matryoshka boundary is a chunk boundary

    def bytes_for(k: int) -> int:
        with _CountingFile(path, "rb") as fh, h5py.File(fh, "r") as f:
            before = _CountingFile.bytes_read
            f["embeddings"][:, :k]
            return _CountingFile.bytes_read - before

    data16, data64 = 16 * 4 * n, 64 * 4 * n
    assert data16 <= bytes_for(16) < 1.25 * data16  # 2 of 8 column chunks (+ chunk index)
    assert bytes_for(64) >= data64


# ------------------------------------------------------------------------------------------ resume


def test_resume_after_interruption_is_identical(tmp_path, recs):
    ref = write(tmp_path / "ref.h5", recs)
    out = tmp_path / "out.h5"
    with EmbeddingWriter(out, attrs=ATTRS, dim=D, save_windows=True, resume=True) as w:
        w.append(recs[:6])
        w.append(recs[6:9])  # interrupted: no finish()
    assert not out.exists() and partial_path(out).exists()
    with pytest.raises(StoreError, match=r"incomplete \(9 records.*rerun the same `mrl-dna embed`"):
        EmbeddingStore.open(partial_path(out))
    with EmbeddingStore.open(partial_path(out), allow_incomplete=True) as s:
        assert s.n == 9 and not s.complete
    # rows written after the last commit (a kill mid-append) must be dropped on resume
    with h5py.File(partial_path(out), "r+") as f:
        for name in ("embeddings", "ids", "lengths", "n_windows", "n_skipped", "status", "order"):
            f[name].resize(12, axis=0)
        f["embeddings"][9:12] = 7.0
    with EmbeddingWriter(out, attrs=ATTRS, dim=D, save_windows=True, resume=True) as w:
        assert w.n_done == 9 and w.done_ids == [r.id for r in recs[:9]]
        for a in range(9, len(recs), 5):
            w.append(recs[a : a + 5])
        w.finish()
    assert not partial_path(out).exists()
    assert_same_file(out, ref)


def test_resume_after_kill_minus_9_is_identical(tmp_path, recs):
    """A real SIGKILL in the middle of a run (after 3 appends), then a resumed run."""
    ref = write(tmp_path / "ref.h5", recs)
    out = tmp_path / "out.h5"
    (tmp_path / "recs.pkl").write_bytes(pickle.dumps(recs))
    script = textwrap.dedent(f"""
        import os, pickle, signal
        from mrl_dna.store import EmbeddingWriter
        recs = pickle.loads(open({str(tmp_path / "recs.pkl")!r}, "rb").read())
        w = EmbeddingWriter({str(out)!r}, attrs={ATTRS!r}, dim={D}, save_windows=True, resume=True)
        for a in range(0, 12, 4):
            w.append(recs[a:a + 4])
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with EmbeddingWriter(out, attrs=ATTRS, dim=D, save_windows=True, resume=True) as w:
        assert w.n_done == 12
        for a in range(12, len(recs), 4):
            w.append(recs[a : a + 4])
        w.finish()
    assert_same_file(out, ref)


def test_resume_of_a_finished_but_unrenamed_partial(tmp_path, recs):
    ref = write(tmp_path / "ref.h5", recs)
    out = tmp_path / "out.h5"
    write(out, recs)
    os.replace(out, partial_path(out))  # killed between finish()'s flush and its rename: complete=True partial
    with EmbeddingWriter(out, attrs=ATTRS, dim=D, save_windows=True, resume=True) as w:
        assert w.n_done == len(recs)
        w.finish()
    assert_same_file(out, ref)


def test_corrupt_partial_warns_and_starts_over(tmp_path, recs, capsys):
    out = tmp_path / "out.h5"
    partial_path(out).write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(300))
    with EmbeddingWriter(out, attrs=ATTRS, dim=D, save_windows=True, resume=True) as w:
        assert w.n_done == 0
    err = capsys.readouterr().err
    assert "cannot resume from" in err and "starting over" in err


@pytest.mark.parametrize("key,value", [("window", 512), ("model_hash", "cd" * 32), ("shard", "1/2")])
def test_resume_with_other_options_is_refused(tmp_path, recs, key, value):
    out = tmp_path / "out.h5"
    with EmbeddingWriter(out, attrs=ATTRS, dim=D, save_windows=True) as w:
        w.append(recs[:4])
    with pytest.raises(StoreError, match=f"written with {key}=.*delete .*out.h5.partial or rerun with the same options"):
        EmbeddingWriter(out, attrs={**ATTRS, key: value}, dim=D, save_windows=True, resume=True)
    for kw in ({"dtype": "float16"}, {"save_windows": False}):
        with pytest.raises(StoreError, match="or rerun with the same options"):
            EmbeddingWriter(out, attrs=ATTRS, dim=D, resume=True, **{"save_windows": True, **kw})


@pytest.mark.parametrize("dtype, windows, per_file, id_len", [("float32", True, False, 8), ("float16", False, False, 300),
                                                              ("float32", True, True, 40)])
def test_space_reserved_for_an_append_bounds_what_it_adds(tmp_path, monkeypatch, dtype, windows, per_file, id_len):
    """The writer reserves disk blocks for an append before writing it (a full disk must be found before HDF5
    writes anything, see EmbeddingWriter._reserve): the reservation must cover what the append adds to the file,
    whatever the batch (1 row, a chunk row crossed, several chunk rows), the dtype, windows, contigs, long ids."""
    import mrl_dna.store.writer as writer_mod

    seen = []
    real = writer_mod.EmbeddingWriter._reserve

    def spy(self, nbytes, f):
        seen.append((nbytes, int(f.id.get_filesize())))
        return real(self, nbytes, f)

    monkeypatch.setattr(writer_mod.EmbeddingWriter, "_reserve", spy)
    rng = np.random.default_rng(4)
    n = 0
    with EmbeddingWriter(tmp_path / "x.h5", attrs=ATTRS, dim=D, dtype=dtype, save_windows=windows,
                         per_file=per_file) as w:
        for batch in (1, 37, 600, 3, 1100, 2):
            recs = []
            for i in range(n, n + batch):
                k = int(rng.integers(1, 5))
                recs.append(EmbeddedRecord(
                    id=f"{i:0{id_len}d}", length=100 * k, n_windows=k, n_skipped=0, status="ok",
                    vector=normalize_rows(rng.standard_normal((1, D)))[0], window_spans=np.array([[j * 100, j * 100 + 100] for j in range(k)]),
                    window_vectors=rng.standard_normal((k, D)).astype(np.float32), order=i,
                    contigs=tuple((f"contig_{i}_{j}" * 3, 100) for j in range(k)) if per_file else (),
                    window_contigs=np.arange(k) if per_file else None))
            w.append(recs)
            n += batch
            reserved, before = seen[-1]
            grew = int(w._f.id.get_filesize()) - before
            assert 0 <= grew <= reserved, (batch, grew, reserved)
        w.finish()


def test_existing_output_needs_overwrite(tmp_path, h5, recs):
    with pytest.raises(StoreError, match=r"x.h5 already exists \(complete, 23 records, model tiny.*--force"):
        EmbeddingWriter(h5, attrs=ATTRS, dim=D)
    write(h5, recs[:3], overwrite=True)
    with EmbeddingStore.open(h5) as s:
        assert s.n == 3
    other = tmp_path / "notes.h5"
    other.write_text("mine\n")
    with pytest.raises(StoreError, match="notes.h5 already exists and is not an mrl-dna embedding file"):
        EmbeddingWriter(other, attrs=ATTRS, dim=D)


def test_output_directory_missing_or_read_only(tmp_path, monkeypatch):
    with pytest.raises(StoreError, match=r"output directory .*nope does not exist; create it \(mkdir -p"):
        EmbeddingWriter(tmp_path / "nope" / "x.h5", attrs=ATTRS, dim=D)
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="is not a directory"):
        EmbeddingWriter(tmp_path / "file" / "x.h5", attrs=ATTRS, dim=D)
    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == ro else real_access(p, mode))  # root ignores chmod
    with pytest.raises(StoreError, match=r"output directory .*ro is not writable"):
        EmbeddingWriter(ro / "x.h5", attrs=ATTRS, dim=D)


# ------------------------------------------------------------------------------------------ bad files


def test_open_refuses_bad_files(tmp_path, h5):
    with pytest.raises(StoreError, match="missing.h5 does not exist"):
        EmbeddingStore.open(tmp_path / "missing.h5")
    partial_path(tmp_path / "cut.h5").write_bytes(b"")
    with pytest.raises(StoreError, match=r"cut.h5 does not exist \(.*cut.h5.partial exists: an interrupted run"):
        EmbeddingStore.open(tmp_path / "cut.h5")
    with pytest.raises(StoreError, match=r"cut.h5.partial is incomplete \(an interrupted run stopped before any record"):
        EmbeddingStore.open(partial_path(tmp_path / "cut.h5"))  # killed before h5py wrote the header
    (tmp_path / "text.h5").write_text(">seq\nACGT\n")
    with pytest.raises(StoreError, match="text.h5 is not an HDF5 file"):
        EmbeddingStore.open(tmp_path / "text.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["embeddings"] = np.zeros((2, 2))
    with pytest.raises(StoreError, match="other.h5 was not written by mrl-dna"):
        EmbeddingStore.open(tmp_path / "other.h5")
    with pytest.raises(StoreError, match="is a directory"):
        EmbeddingStore.open(tmp_path)


def _damage(src: Path, dst: Path, how) -> Path:
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "r+") as f:
        how(f)
    return dst


def test_a_nan_row_is_refused_by_every_reader_in_one_line(tmp_path, h5, capsys):
    """A row of NaN made search -k 2 return one hit per query and dist print similarity 0.000000. Now every
    command that reads the vectors names the file and the row; plain info (no vector read) still describes
    the file, info --check finds it."""
    bad = _damage(h5, tmp_path / "nan.h5", lambda f: f["embeddings"].__setitem__(1, np.nan))
    line = f"{bad} is damaged: row 1 of /embeddings holds NaN"
    for args in (["search", h5, bad, "-k", "2"], ["search", bad, h5], ["dist", h5, bad], ["dist", bad],
                 ["export", bad], ["export", bad, "--format", "npy", "-o", tmp_path / "x.npy"],
                 ["merge", "--concat", bad, "-o", tmp_path / "m.h5"], ["cluster", bad, "--min-sim", "0.9"],
                 ["search", h5, bad, "--funnel", "8:20,64:2", "-k", "2"],
                 ["info", bad, "--check"]):
        code, out, err = run_cli(args, capsys)
        errors = [x for x in err.splitlines() if "error" in x]  # (search warns of the queries without a vector)
        assert code == 1 and out == "" and errors == [f"mrl-dna: error: {line}, inf or values far outside a unit "
                                                      "vector; re-embed it (or restore it from a copy)"], (args, err)
    assert not (tmp_path / "m.h5").exists() and not list(tmp_path.glob("x.npy*"))
    assert run_cli(["info", bad], capsys)[0] == 0
    win = _damage(h5, tmp_path / "wnan.h5", lambda f: f["windows/embeddings"].__setitem__(3, np.inf))
    code, _, err = run_cli(["search", h5, win, "--level", "windows"], capsys)
    assert code == 1 and f"{win} is damaged: row 3 of /windows/embeddings holds NaN, inf" in err


@pytest.mark.parametrize("how, what", [
    (lambda f: f.__delitem__("ids"), "/ids is missing"),
    (lambda f: f["ids"].resize((5,)), "/ids has 5 rows where the number of records is 23"),
    (lambda f: f["lengths"].resize((30,)), "/lengths has 30 rows where the number of records is 23"),
    (lambda f: f["embeddings"].resize((20, D)), "/embeddings has 20 rows where rows_committed is 23"),
    (lambda f: f["status"].__setitem__(2, 9), "row 2 has status 9, not one of [0, 1, 2]"),
    (lambda f: f["windows/start"].resize((1,)), "/windows/start has 1 rows where windows_committed is 24"),
])
def test_a_file_with_ids_missing_or_shorter_than_the_embeddings_is_refused_by_info_search_and_export(
        tmp_path, h5, capsys, how, what):
    """/ids missing or shorter than /embeddings passed info and crashed search and export (KeyError,
    IndexError: exit 3). Now the structure is checked on every open: one line, exit 1, info included."""
    bad = _damage(h5, tmp_path / "bad.h5", how)
    for args in (["info", bad], ["search", h5, bad], ["export", bad], ["dist", bad], ["merge", bad, "-o", tmp_path / "m.h5"]):
        code, out, err = run_cli(args, capsys)
        assert code == 1 and out == "" and err.strip().splitlines() == [
            f"mrl-dna: error: {bad} is damaged: {what}; re-embed it (or restore it from a copy)"], (args, err)


def test_info_check_finds_a_row_of_the_wrong_norm_and_windows_out_of_order(tmp_path, h5, capsys):
    code, out, _ = run_cli(["info", h5, "--check"], capsys)
    assert code == 0 and "integrity:     ok (23 rows and " in out
    half = _damage(h5, tmp_path / "half.h5", lambda f: f["embeddings"].__setitem__(0, f["embeddings"][0] / 2))
    code, _, err = run_cli(["info", half, "--check"], capsys)
    assert code == 1 and f"{half} is damaged: row 0 ('rec0') of /embeddings has norm 0.5, not 1" in err
    assert run_cli(["info", half], capsys)[0] == 0  # the structure is fine: only --check reads the vectors
    order = _damage(h5, tmp_path / "order.h5", lambda f: f["windows/record"].__setitem__(0, 22))
    code, _, err = run_cli(["info", order, "--check"], capsys)
    assert code == 1 and "/windows/record does not list rows 0..22 in order" in err


# ------------------------------------------------------------------------------------------ merge


def write_shards(tmp_path: Path, recs, parts: list[list[int]], *, keep_order: bool = True, name: str = "part",
                 identity: bool = True) -> list[Path]:
    """Shard files of `recs` as `embed --shard` writes them: with the input's identity (embed.run.input_identity of
    the records' (id, bp) listing) unless identity=False (files written before issue 22)."""
    from mrl_dna.embed.run import input_identity

    ident = input_identity([(r.id, r.length) for r in recs]) if identity else {}
    paths = []
    for i, rows in enumerate(parts, start=1):
        sub = [recs[r] if keep_order else _without_order(recs[r]) for r in rows]
        attrs = {**ATTRS, "shard": f"{i}/{len(parts)}", "inputs": "x.fa", **ident}
        paths.append(write(tmp_path / f"{name}{i}.h5", sub, attrs=attrs))
    return paths


def _without_order(r: EmbeddedRecord) -> EmbeddedRecord:
    return EmbeddedRecord(r.id, r.length, r.n_windows, r.n_skipped, r.status, r.vector, r.window_spans, r.window_vectors)


@pytest.mark.parametrize("partition", ["contiguous", "interleaved", "one_empty"])
def test_merge_of_shards_equals_single_run(tmp_path, h5, recs, partition):
    n = len(recs)
    parts = {
        "contiguous": [list(range(0, 8)), list(range(8, 15)), list(range(15, n))],
        "interleaved": [list(range(i, n, 3)) for i in range(3)],
        "one_empty": [list(range(0, 8)), [], list(range(8, n))],  # a shard may hold no record
    }[partition]
    shards = write_shards(tmp_path, recs, parts)
    out = tmp_path / "merged.h5"
    s = merge_stores(shards[::-1], out)  # any argument order
    assert (s.n_records, s.ordered_by) == (n, "order")
    assert_same_file(out, h5)
    with EmbeddingStore.open(out) as m:
        assert m.attrs["shard"] == "" and m.complete and len(m.attrs["merged_from"]) == 3


def test_merge_without_order_uses_shard_index(tmp_path, h5, recs):
    shards = write_shards(tmp_path, recs, [list(range(0, 10)), list(range(10, 23))], keep_order=False)
    s = merge_stores([shards[1], shards[0]], tmp_path / "m.h5")
    assert s.ordered_by == "shard"
    with EmbeddingStore.open(tmp_path / "m.h5") as m, EmbeddingStore.open(h5) as ref:
        assert m.ids == ref.ids and np.array_equal(m.read(), ref.read())


def test_merge_refuses_mismatches(tmp_path, recs):
    a = write(tmp_path / "a.h5", recs[:5], attrs={**ATTRS, "shard": "1/3"})
    b = write(tmp_path / "b.h5", recs[5:10], attrs={**ATTRS, "shard": "2/3"})
    c = write(tmp_path / "c.h5", recs[10:], attrs={**ATTRS, "shard": "3/3", "window": 512})
    with pytest.raises(StoreError, match=r"a.h5 and .*c.h5 differ in window \(256 vs 512\)"):
        merge_stores([a, b, c], tmp_path / "m.h5")
    with pytest.raises(StoreError, match="incomplete set of shards: missing 3/3"):
        merge_stores([a, b], tmp_path / "m.h5")
    with pytest.raises(StoreError, match="given twice"):
        merge_stores([a, a], tmp_path / "m.h5")
    d = write(tmp_path / "d.h5", recs[:5])
    e = write(tmp_path / "e.h5", recs[3:7])
    with pytest.raises(StoreError, match="record index 3 appears more than once"):
        merge_stores([d, e], tmp_path / "m.h5")
    with pytest.raises(StoreError, match="not a shard but other inputs are"):
        merge_stores([a, d], tmp_path / "m.h5")
    assert not (tmp_path / "m.h5").exists()
    merge_stores([d], tmp_path / "m.h5")
    with pytest.raises(StoreError, match="already exists"):
        merge_stores([d], tmp_path / "m.h5")
    merge_stores([d], tmp_path / "m.h5", force=True)


def test_merge_refuses_shards_of_one_input_that_miss_a_record(tmp_path, recs, capsys):
    """Shards of one input whose rows do not hold every record index of it (a shard file made from a subset)."""
    parts = write_shards(tmp_path, recs, [list(range(0, 12)), list(range(13, 23))])
    code, _, err = run_cli(["merge", *parts, "-o", tmp_path / "m.h5"], capsys)
    assert code == 1 and "the inputs hold 22 of their input's 23 records (record index 12 is in none of them): they " \
        "are not all the parts of one run" in err and err.count("\n") == 1
    assert not (tmp_path / "m.h5").exists()


def test_merge_of_shards_written_before_they_recorded_their_input_warns_and_checks_record_indexes(tmp_path, recs,
                                                                                                 capsys):
    """Files without INPUT_KEYS (older mrl-dna) cannot prove they are one run: merge says so and still checks
    that the rows hold each record index once, which catches the foreign shard of issue 22 (indexes 0, 1 of
    one input with 3..7 of another)."""
    old = write_shards(tmp_path, recs, [list(range(0, 12)), list(range(12, 23))], name="old", identity=False)
    code, _, err = run_cli(["merge", *old, "-o", tmp_path / "m.h5"], capsys)
    assert code == 0 and "do not record the input they were embedded from (written by an older mrl-dna" in err
    foreign = write_shards(tmp_path, recs, [list(range(0, 2)), list(range(3, 8))], name="foreign", identity=False)
    code, _, err = run_cli(["merge", *foreign, "-o", tmp_path / "f.h5"], capsys)
    assert code == 1 and "record index 2 is in none of the inputs (they hold 7 records, indexes up to 7)" in err
    new = write_shards(tmp_path, recs, [list(range(0, 12)), list(range(12, 23))], name="new")
    code, _, err = run_cli(["merge", old[0], new[1], "-o", tmp_path / "x.h5"], capsys)
    assert code == 0 and f"{old[0]} does not record the input it was embedded from" in err


def test_merge_concat_appends_databases_of_one_model_in_argument_order(tmp_path, recs, capsys):
    a = write(tmp_path / "a.h5", recs[:10])
    b = write(tmp_path / "b.h5", [dataclasses.replace(r, id=f"other{i}") for i, r in enumerate(recs[:6])],
              dtype="float16")
    s = merge_stores([b, a], tmp_path / "ab.h5", concat=True)
    assert (s.n_records, s.ordered_by, s.windows_dropped) == (16, "concat", ())
    with EmbeddingStore.open(tmp_path / "ab.h5") as m, EmbeddingStore.open(a) as sa, EmbeddingStore.open(b) as sb:
        assert m.ids == sb.ids + sa.ids and m.dtype == "float32"  # float16 widened: one input is float32
        assert np.array_equal(m.read(normalize=False), np.concatenate([sb.read(normalize=False), sa.read(normalize=False)]))
        assert list(m.order) == list(range(16))
        wm, wa = m.windows(), sa.windows()
        assert np.array_equal(wm.record[len(sb.windows()):], wa.record + 6)  # a's windows follow b's rows
        assert np.array_equal(wm.read(normalize=False)[len(sb.windows()):], wa.read(normalize=False))
    c = write(tmp_path / "c.h5", [dataclasses.replace(r, id=f"c{i}") for i, r in enumerate(recs[:3])],
              save_windows=False)
    code, _, err = run_cli(["merge", "--concat", a, c, "-o", tmp_path / "ac.h5"], capsys)
    assert code == 0 and "c.h5 has no saved windows" in err
    with EmbeddingStore.open(tmp_path / "ac.h5") as m:
        assert m.n == 13 and m.windows() is None


def test_merge_concat_refuses_two_models_or_duplicate_ids_in_one_line(tmp_path, recs, capsys):
    a = write(tmp_path / "a.h5", recs[:5])
    other = write(tmp_path / "o.h5", [dataclasses.replace(r, id=f"o{i}") for i, r in enumerate(recs[:5])],
                  attrs={**ATTRS, "model_hash": "cd" * 32, "model_name": "big"})
    dup = write(tmp_path / "d.h5", recs[3:7])
    for args, expect in [([a, other], "were embedded with two models (abababababab tiny vs cdcdcdcdcdcd big)"),
                         ([a, dup], "record id 'rec3' is in both"),
                         ([a, a], "is given twice")]:
        code, out, err = run_cli(["merge", "--concat", *args, "-o", tmp_path / "x.h5"], capsys)
        lines = err.strip().splitlines()
        assert code == 1 and out == "" and len(lines) == 1 and expect in lines[0], err
    assert not (tmp_path / "x.h5").exists()
    code, _, err = run_cli(["merge", a, dup, "-o", tmp_path / "x.h5"], capsys)  # plain merge: points to --concat
    assert code == 1 and "--concat" in err


def test_merge_concat_refuses_files_of_another_window_or_layout_with_the_same_line_as_search(tmp_path, recs, capsys):
    """merge --concat, search and dist share one check (store.compat): the same mix gives the same line."""
    a = write(tmp_path / "a.h5", recs[:5])
    w = write(tmp_path / "w.h5", [dataclasses.replace(r, id=f"w{i}") for i, r in enumerate(recs[:5])],
              attrs={**ATTRS, "window": 32, "stride": 32})
    line = f"{a} and {w} were embedded with different windows (window 256 vs 32): their vectors are not comparable"
    for args in (["merge", "--concat", a, w, "-o", tmp_path / "x.h5"], ["dist", a, w]):
        code, out, err = run_cli(args, capsys)
        assert code == 1 and out == "" and line in err.strip() and len(err.strip().splitlines()) == 1, err
    f = write(tmp_path / "f.h5", [dataclasses.replace(r, id=f"f{i}", contigs=((f"c{i}", r.length),),
                                                     window_contigs=np.zeros(r.n_windows, np.int64))
                                  for i, r in enumerate(recs[:5])], per_file=True)
    code, _, err = run_cli(["merge", "--concat", a, f, "-o", tmp_path / "x.h5"], capsys)
    assert code == 1 and f"{a} holds rows of records and {f} rows of files (embed --per-file)" in err
    code, _, err = run_cli(["dist", a, f, "-q"], capsys)  # rows of files compare with rows of records
    assert code == 0, err


# ------------------------------------------------------------------------------------------ export


def test_export_tsv_and_npy(tmp_path, h5, recs, capsys):
    with EmbeddingStore.open(h5) as s:
        want = s.read(16)
    s = export_store(h5, dim=16, fmt="tsv", output="-")
    lines = capsys.readouterr().out.splitlines()
    assert (s.n_records, s.dim, s.n_zero) == (23, 16, 7)
    assert [line.split("\t")[0] for line in lines] == [r.id for r in recs]
    got = np.array([[float(x) for x in line.split("\t")[1:]] for line in lines], dtype=np.float32)
    assert np.array_equal(got, want)  # %.9g round-trips float32
    export_store(h5, dim=16, fmt="npy", output=tmp_path / "e.npy")
    assert np.array_equal(np.load(tmp_path / "e.npy"), want)
    assert (tmp_path / "e.ids.txt").read_text().split() == [r.id for r in recs]
    with pytest.raises(ConfigError, match="npy cannot go to stdout"):
        export_store(h5, dim=16, fmt="npy", output="-")


def test_export_parquet_or_a_clear_error_without_pyarrow(tmp_path, h5, recs, monkeypatch):
    with EmbeddingStore.open(h5) as s:
        want = s.read(16)
    try:
        import pyarrow.parquet as pq
    except ImportError:
        pq = None
    if pq is not None:
        export_store(h5, dim=16, fmt="parquet", output=tmp_path / "e.parquet")
        table = pq.read_table(tmp_path / "e.parquet")
        assert table.column("id").to_pylist() == [r.id for r in recs]
        assert np.array_equal(np.array(table.column("embedding").to_pylist(), np.float32), want)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if the extra were not installed
    with pytest.raises(ConfigError, match=r"--format parquet needs pyarrow.*pip install 'mrl-dna\[parquet\]'"):
        export_store(h5, dim=16, fmt="parquet", output=tmp_path / "f.parquet")
    assert not (tmp_path / "f.parquet").exists()


# ------------------------------------------------------------------------------------------ CLI


def test_export_to_a_pipe_writes_in_place(tmp_path, h5):
    """A device or a pipe given as -o (export -o /dev/null -f) is written in place, not replaced by a rename."""
    import stat
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    export_store(h5, dim=8, fmt="tsv", output=fifo, force=True)
    reader.join(timeout=30)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and got and got[0].count(b"\n") == 23


def test_cli_info(h5, capsys):
    code, out, _ = run_cli(["info", h5], capsys)
    assert code == 0 and "records:       23 (25,300 bp)" in out and "complete:      yes" in out
    code, out, _ = run_cli(["info", h5, "--json"], capsys)
    info = json.loads(out)
    assert code == 0 and info["n_records"] == 23 and info["matryoshka_dims"] == list(DIMS)
    assert info["status"] == {"ok": 16, "empty": 4, "all_n": 3} and info["windows_saved"]


@pytest.mark.parametrize("content,message", [
    (b"not hdf5 at all", "is not an HDF5 file"),
    (None, "does not exist"),
])
def test_cli_info_bad_file(tmp_path, capsys, content, message):
    path = tmp_path / "bad.h5"
    if content is not None:
        path.write_bytes(content)
    code, out, err = run_cli(["info", path], capsys)
    assert code == 1 and out == ""
    assert err.startswith("mrl-dna: error: ") and message in err and err.count("\n") == 1


def test_cli_merge_and_export(tmp_path, h5, recs, capsys):
    shards = write_shards(tmp_path, recs, [list(range(0, 12)), list(range(12, 23))])
    out = tmp_path / "m.h5"
    code, _, err = run_cli(["merge", shards[1], shards[0], "-o", out, "-q"], capsys)
    assert code == 0, err
    assert_same_file(out, h5)
    code, _, err = run_cli(["merge", shards[0], "-o", out], capsys)
    assert code == 1 and "incomplete set of shards: missing 2/2" in err and err.count("\n") == 1
    code, out_, err = run_cli(["export", h5, "--dim", "8"], capsys)
    assert code == 0 and len(out_.splitlines()) == 23 and "7 of 23 records have no vector" in err
    code, _, err = run_cli(["export", h5, "--dim", "100"], capsys)
    assert code == 1 and "dim 100 is outside 1..64" in err and err.count("\n") == 1
    code, _, err = run_cli(["export", h5, "--format", "npy"], capsys)
    assert code == 1 and "give -o FILE.npy" in err
    code, _, err = run_cli(["export", h5, "--format", "xml"], capsys)
    assert code == 2
