"""The embed pipeline end to end: FASTA -> HDF5, batch independence, RC invariance, resume, shards."""

from __future__ import annotations

import os
import threading

import h5py
from dataclasses import replace

import numpy as np
import pytest

from mrl_dna import dna
from mrl_dna.embed import EmbedOptions, embed_fasta, embed_sequences
from mrl_dna.store.shards import parse_shard, shard_records
from mrl_dna.errors import ConfigError, StoreError
from mrl_dna.inputs.fasta import Record, read_fasta
from mrl_dna.store import EmbeddingStore, merge_stores, partial_path

from mrl_dna.windows import window_spans
from conftest import assert_same_datasets, named_pipe, random_dna


def _rec(rid, seq):
    return Record(id=rid, description="", tokens=dna.encode(seq), source="test")


def test_file_round_trip_equals_in_memory_vectors(tmp_path, tiny_model, small_fasta):
    out = tmp_path / "e.h5"
    s = embed_fasta([small_fasta], model=tiny_model, output=out, options=EmbedOptions(device="cpu", batch_tokens=600))
    mem = list(embed_sequences(read_fasta([small_fasta]), model=tiny_model,
                               options=EmbedOptions(device="cpu", batch_tokens=100000)))
    store = EmbeddingStore.open(out)
    assert list(store.ids) == [r.id for r in mem] == ["a", "b", "c", "d", "e"]
    assert s.records == 5 and s.bp == sum(r.length for r in mem)
    full = store.read()
    for i, r in enumerate(mem):
        np.testing.assert_allclose(full[i], r.vector, rtol=1e-5, atol=1e-6)  # other batch packing: same vectors
    assert store.attrs["model_hash"] == tiny_model.weights_hash()
    assert list(store.n_windows) == [r.n_windows for r in mem]


def test_same_vector_alone_or_with_others(tiny_model, small_fasta):
    together = {r.id: r.vector for r in embed_sequences(read_fasta([small_fasta]), model=tiny_model,
                                                        options=EmbedOptions(batch_tokens=2000, device="cpu"))}
    for rec in read_fasta([small_fasta]):
        alone = next(embed_sequences([rec], model=tiny_model, options=EmbedOptions(batch_tokens=256, device="cpu")))
        np.testing.assert_allclose(alone.vector, together[rec.id], rtol=1e-5, atol=1e-6)


def test_record_vector_is_rc_invariant(tiny_model):
    rng = np.random.default_rng(7)
    seq = random_dna(rng, 1500) + "NNNN" + random_dna(rng, 77)
    fwd, rc = embed_sequences([_rec("x", seq), Record("y", "", dna.revcomp(dna.encode(seq)), "t")], model=tiny_model,
                              options=EmbedOptions(device="cpu"))
    cos = float(fwd.vector @ rc.vector)
    assert cos >= 0.99999


def test_deterministic_identical_runs(tmp_path, tiny_model, small_fasta):
    a = [r.vector for r in embed_sequences(read_fasta([small_fasta]), model=tiny_model,
                                           options=EmbedOptions(device="cpu"))]
    b = [r.vector for r in embed_sequences(read_fasta([small_fasta]), model=tiny_model,
                                           options=EmbedOptions(device="cpu"))]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_empty_and_all_n_records_are_recorded_not_dropped(tmp_path, tiny_model, capsys):
    fa = tmp_path / "x.fa"
    fa.write_text(">good\n" + "ACGT" * 100 + "\n>empty\n>alln\n" + "N" * 500 + "\n>mostlyN\nACGTACGTAC" + "N" * 900 + "\n")
    out = tmp_path / "x.h5"
    s = embed_fasta([fa], model=tiny_model, output=out, options=EmbedOptions(device="cpu"))
    assert (s.empty, s.all_n) == (1, 2)
    store = EmbeddingStore.open(out)
    assert list(store.ids) == ["good", "empty", "alln", "mostlyN"]
    v = store.read()
    assert np.all(np.isfinite(v))
    assert np.allclose(np.linalg.norm(v, axis=1), [1, 0, 0, 0], atol=1e-6)
    err = capsys.readouterr().err
    assert "'empty' is empty" in err and "'alln' is all N" in err


class _Boom(Exception):
    pass


def test_interrupted_run_resumes_to_identical_file(tmp_path, tiny_model, small_fasta, monkeypatch):
    ref = tmp_path / "ref.h5"
    embed_fasta([small_fasta], model=tiny_model, output=ref, options=EmbedOptions(device="cpu"))
    out = tmp_path / "out.h5"
    import mrl_dna.store as store_mod

    real_append = store_mod.EmbeddingWriter.append
    calls = {"n": 0}

    def flaky_append(self, recs):  # write the first 2 records, then die (as a kill between flushes would)
        calls["n"] += 1
        if calls["n"] <= 2:
            return real_append(self, recs)
        raise _Boom()

    monkeypatch.setattr(store_mod.EmbeddingWriter, "append", flaky_append)
    import mrl_dna.embed.run as embed_mod

    monkeypatch.setattr(embed_mod, "_FLUSH_RECORDS", 1)
    with pytest.raises(_Boom):
        embed_fasta([small_fasta], model=tiny_model, output=out, options=EmbedOptions(device="cpu"))
    assert not out.exists() and (tmp_path / "out.h5.partial").exists()
    assert EmbeddingStore.open(tmp_path / "out.h5.partial", allow_incomplete=True).n == 2
    monkeypatch.setattr(store_mod.EmbeddingWriter, "append", real_append)
    s = embed_fasta([small_fasta], model=tiny_model, output=out, options=EmbedOptions(device="cpu"))
    assert s.records == 5
    a, b = EmbeddingStore.open(ref), EmbeddingStore.open(out)
    assert list(a.ids) == list(b.ids)
    assert np.array_equal(a.read(normalize=False), b.read(normalize=False))


def _interrupt_after(n_appends: int, monkeypatch, run, records_per_flush: int = 1, error: type = None) -> None:
    """Run `run()` with `records_per_flush` records per flush, dying (as a kill between flushes, or with `error`,
    e.g. KeyboardInterrupt for a Ctrl-C) after n_appends flushes."""
    error = error or _Boom
    import mrl_dna.embed.run as embed_mod
    import mrl_dna.store as store_mod

    real_append, calls = store_mod.EmbeddingWriter.append, {"n": 0}

    def flaky_append(self, recs):
        calls["n"] += 1
        if calls["n"] <= n_appends:
            return real_append(self, recs)
        raise error()

    with monkeypatch.context() as m:
        m.setattr(embed_mod, "_FLUSH_RECORDS", records_per_flush)
        m.setattr(store_mod.EmbeddingWriter, "append", flaky_append)
        with pytest.raises(error):
            run()


def _edit(path, rid: str, new_seq) -> None:
    """Replace record rid's sequence in a one-line-per-sequence FASTA."""
    lines = path.read_text().splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith(f">{rid}"))
    lines[i + 1] = new_seq(lines[i + 1])
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("change, what", [
    (lambda s: ("A" if s[10] != "A" else "C").join((s[:10], s[11:])), "record 1 'a' (1,000 bp) has other bases"),
    (lambda s: s[:900], "record 1 is 'a' (900 bp) where it holds 'a' (1,000 bp)"),
])
def test_resume_refuses_an_input_whose_embedded_record_changed(tmp_path, tiny_model, small_fasta, monkeypatch,
                                                                  cli, tiny_model_dir, change, what):
    """Interrupt after the first flush, edit a record already embedded (same length, or shorter), rerun: the old
    vector and length stayed. Now the rerun refuses in one line (the .partial kept with its rows), --restart
    starts over and gives the file a fresh run of the new input gives."""
    fa = tmp_path / "in.fa"
    fa.write_text(small_fasta.read_text())
    out = tmp_path / "out.h5"
    _interrupt_after(2, monkeypatch, lambda: embed_fasta([fa], model=tiny_model, output=out,
                                                         options=EmbedOptions(device="cpu")))
    def saved():
        with EmbeddingStore.open(tmp_path / "out.h5.partial", allow_incomplete=True) as s:
            return s.ids, s.read(normalize=False)

    before = saved()
    _edit(fa, "a", change)
    args = ("embed", fa, "-o", out, "-m", tiny_model_dir)
    code, _, err = cli(*args)
    assert code == 1 and err.strip().splitlines()[-1] == (
        f"mrl-dna: error: the input changed since {out}.partial was written ({what} than the one it holds): resuming "
        "would keep vectors of the old input; rerun with --restart to start over, or restore the input to resume"
        if "bases" in what else
        f"mrl-dna: error: the input changed since {out}.partial was written ({what}): resuming would keep vectors of "
        "the old input; rerun with --restart to start over, or restore the input to resume"), err
    after = saved()  # what the interrupted run committed is still there: the original input resumes
    assert not out.exists() and after[0] == before[0] == ["a", "b"] and np.array_equal(after[1], before[1])
    assert cli(*args, "--restart", "-q")[0] == 0
    fresh = tmp_path / "fresh.h5"
    embed_fasta([fa], model=tiny_model, output=fresh, options=EmbedOptions(device="cpu"))
    from conftest import assert_same_datasets

    assert_same_datasets(fresh, out)


def test_resume_refuses_an_input_changed_after_the_records_already_embedded(tmp_path, tiny_model, small_fasta,
                                                                              monkeypatch):
    """A change in a record not yet embedded would give right vectors but a file that names the old input
    (its input_* attributes, which merge compares): refused too, saying the embedded ones are unchanged."""
    from mrl_dna.errors import InputError

    fa = tmp_path / "in.fa"
    fa.write_text(small_fasta.read_text())
    out = tmp_path / "out.h5"
    _interrupt_after(1, monkeypatch, lambda: embed_fasta([fa], model=tiny_model, output=out,
                                                         options=EmbedOptions(device="cpu")))
    _edit(fa, "d", lambda s: s + "ACGT")
    with pytest.raises(InputError, match=r"it was 5 records, 3,513 bp, and is 5 records, 3,517 bp now; the 1 record "
                                         "already embedded are unchanged"):
        embed_fasta([fa], model=tiny_model, output=out, options=EmbedOptions(device="cpu"))


def test_a_partial_without_rows_is_started_over_and_records_this_runs_input(tmp_path, tiny_model, small_fasta,
                                                                            monkeypatch):
    """A run killed before its first flush leaves a .partial with no row: the rerun has nothing to keep, so it
    starts over (even with other options or input) and the file names the input it was made from."""
    fa = tmp_path / "in.fa"
    fa.write_text(small_fasta.read_text())
    out = tmp_path / "out.h5"
    _interrupt_after(0, monkeypatch, lambda: embed_fasta([fa], model=tiny_model, output=out,
                                                         options=EmbedOptions(device="cpu")))
    _edit(fa, "d", lambda s: s + "ACGT")
    s = embed_fasta([fa], model=tiny_model, output=out, options=EmbedOptions(device="cpu", window=128))
    assert (s.resumed, s.records) == (0, 5)
    with EmbeddingStore.open(out) as st:
        assert (st.attrs["input_bp"], st.attrs["window"]) == (3517, 128)


def test_resume_per_file_refuses_a_file_whose_bases_changed(tmp_path, tiny_model, genome_files, monkeypatch):
    from mrl_dna.errors import InputError

    opts = EmbedOptions(device="cpu", per_file=True)
    gb = genome_files[1]
    out = tmp_path / "g.h5"
    files = [gb, genome_files[2]]
    _interrupt_after(1, monkeypatch, lambda: embed_fasta(files, model=tiny_model, output=out, options=opts))
    _edit(gb, "contig_1", lambda s: s[::-1])  # same name, same length, other bases
    with pytest.raises(InputError, match="file 1 'gB' has other records or bases than the one it holds"):
        embed_fasta(files, model=tiny_model, output=out, options=opts)


def test_resume_of_a_partial_without_checksums_warns_that_bases_are_not_checked(tmp_path, tiny_model, small_fasta,
                                                                                monkeypatch, capsys):
    """A .partial written before /checksum existed still resumes (ids and lengths checked), with a warning."""
    import h5py

    out = tmp_path / "out.h5"
    _interrupt_after(2, monkeypatch, lambda: embed_fasta([small_fasta], model=tiny_model, output=out,
                                                         options=EmbedOptions(device="cpu")))
    with h5py.File(tmp_path / "out.h5.partial", "r+") as f:
        del f["checksum"]
    s = embed_fasta([small_fasta], model=tiny_model, output=out, options=EmbedOptions(device="cpu"))
    assert s.resumed == 2 and "without per-record checksums: resuming it checks only the names and lengths of the 2 " \
        "records" in capsys.readouterr().err


def test_shards_partition_records_by_bases():
    lengths = [100, 5000, 10, 10, 3000, 2000, 1, 900]
    parts = [shard_records(lengths, (i, 3)) for i in (1, 2, 3)]
    assert [i for p in parts for i in p] == list(range(len(lengths)))  # contiguous, complete, in order
    with pytest.raises(ConfigError, match="between 1 and 2"):
        parse_shard("3/2")
    with pytest.raises(ConfigError, match="is not I/N"):
        parse_shard("x")


def test_shards_merge_to_the_single_run(tmp_path, tiny_model, small_fasta):
    from mrl_dna.store import merge_stores

    single = tmp_path / "all.h5"
    embed_fasta([small_fasta], model=tiny_model, output=single, options=EmbedOptions(device="cpu"))
    shards = []
    for i in (2, 1, 3):
        p = tmp_path / f"s{i}.h5"
        embed_fasta([small_fasta], model=tiny_model, output=p, options=EmbedOptions(device="cpu", shard=(i, 3)))
        shards.append(p)
    merged = tmp_path / "merged.h5"
    merge_stores(shards, merged)
    a, b = EmbeddingStore.open(single), EmbeddingStore.open(merged)
    assert list(a.ids) == list(b.ids)
    np.testing.assert_allclose(a.read(), b.read(), rtol=1e-5, atol=1e-6)


def test_merge_refuses_shards_of_different_inputs(tmp_path, tiny_model_dir, small_fasta, cli):
    """embed r3.fa --shard 1/2, embed sample.fa --shard 2/2, merge: exit 0 with records of two FASTA files and
    one index missing; foreign shards whose record indexes collide were reported as "inputs overlap". Now
    shards record their input (records, bases, a digest of the id/length listing) and merge names both."""
    part = tmp_path / "part.fa"  # the first three records of small.fa: another input
    part.write_text("".join(">" + r for r in small_fasta.read_text().split(">")[1:4]))
    args = ["-m", tiny_model_dir, "-q"]
    for fa, shard, out in [(part, "1/2", "a1"), (part, "2/2", "a2"), (small_fasta, "1/2", "b1"), (small_fasta, "2/2", "b2")]:
        assert cli("embed", fa, "-o", tmp_path / f"{out}.h5", "--shard", shard, *args)[0] == 0
    with EmbeddingStore.open(tmp_path / "b1.h5") as s:
        assert (s.attrs["input_records"], s.attrs["input_bp"]) == (5, 3513) and len(s.attrs["input_digest"]) == 64
    for a, b in [("a1", "b2"), ("b1", "a2")]:
        code, out, err = cli("merge", tmp_path / f"{a}.h5", tmp_path / f"{b}.h5", "-o", tmp_path / "m.h5")
        want = (f"{tmp_path / (a + '.h5')} and {tmp_path / (b + '.h5')} are not parts of one run: they were embedded "
                "from two different inputs")
        assert code == 1 and err.count("\n") == 1 and want in err and "overlap" not in err, err
        assert f"{part}: 3 records, 1,800 bp" in err and f"{small_fasta}: 5 records, 3,513 bp" in err
    assert not (tmp_path / "m.h5").exists()
    code, _, err = cli("merge", tmp_path / "b2.h5", tmp_path / "b1.h5", "-o", tmp_path / "m.h5", "-q")
    assert code == 0 and err == ""
    with EmbeddingStore.open(tmp_path / "m.h5") as m:  # the merged file says what one run's file says
        assert m.n == 5 and m.attrs["input_records"] == 5 and m.attrs["shard"] == ""


def test_merge_refuses_shards_of_a_file_that_changed_between_the_runs(tmp_path, tiny_model_dir, small_fasta, cli):
    fa = tmp_path / "x.fa"
    fa.write_text(small_fasta.read_text())
    args = ["-m", tiny_model_dir, "-q"]
    assert cli("embed", fa, "-o", tmp_path / "s1.h5", "--shard", "1/2", *args)[0] == 0
    fa.write_text(small_fasta.read_text().replace(">c test", ">c_renamed test"))
    assert cli("embed", fa, "-o", tmp_path / "s2.h5", "--shard", "2/2", *args)[0] == 0
    code, _, err = cli("merge", tmp_path / "s1.h5", tmp_path / "s2.h5", "-o", tmp_path / "m.h5")
    assert code == 1 and f"({fa}: 5 records, 3,513 bp in both, but other record names or lengths: the input " \
        "changed between the two runs)" in err


# ------------------------------------------------------------------------------------------ --per-file


@pytest.fixture
def genome_files(tmp_path):
    """Three 'assemblies': two contigs + an empty one, one contig named as one of the first file's, all N."""
    rng = np.random.default_rng(21)
    (tmp_path / "gA.fa.gz").write_bytes(__import__("gzip").compress(
        f">contig_1\n{random_dna(rng, 1100)}\n>contig_2\n{random_dna(rng, 300)}\n>empty\n".encode()))
    (tmp_path / "gB.fasta").write_text(f">contig_1 other assembly\n{random_dna(rng, 700)}\n")
    (tmp_path / "gN.fa").write_text(">n\n" + "N" * 600 + "\n")
    return [tmp_path / "gA.fa.gz", tmp_path / "gB.fasta", tmp_path / "gN.fa"]


def test_per_file_row_is_the_centroid_of_all_the_files_windows(tmp_path, tiny_model, genome_files):
    import torch

    out = tmp_path / "pf.h5"
    s = embed_fasta(genome_files, model=tiny_model, output=out,
                    options=EmbedOptions(device="cpu", save_windows=True, per_file=True))
    assert (s.records, s.contigs, s.all_n) == (3, 5, 1)
    st = EmbeddingStore.open(out)
    assert st.per_file and st.ids == ["gA", "gB", "gN"] and list(st.lengths) == [1400, 700, 600]
    assert list(st.status) == [0, 0, 2] and st.read()[2].tolist() == [0.0] * 16
    c, w = st.contigs(), st.windows()
    assert c.name == ["contig_1", "contig_2", "empty", "contig_1", "n"] and list(c.record) == [0, 0, 0, 1, 2]
    assert list(c.length) == [1100, 300, 0, 700, 600]
    # the file's windows are its records' windows, on their contigs, with the vectors of a record-level run
    ref = tmp_path / "ref.h5"
    embed_fasta([genome_files[0]], model=tiny_model, output=ref, options=EmbedOptions(device="cpu", save_windows=True))
    rw = EmbeddingStore.open(ref).windows()
    gA = w.record == 0
    assert np.array_equal(w.start[gA], rw.start) and np.array_equal(w.end[gA], rw.end)
    assert st.window_contigs(w, np.flatnonzero(gA)) == [["contig_1", "contig_2"][r] for r in rw.record]
    assert np.array_equal(w.read(normalize=False)[gA], rw.read(normalize=False))
    # the row = normalize(sum_i len_i * head(window_i)): the length-weighted centroid of ALL its windows
    seqs = {r.id: r.tokens for r in read_fasta([genome_files[0]])}
    names = st.window_contigs(w, np.flatnonzero(gA))
    toks = [seqs[n][a:b] for n, a, b in zip(names, w.start[gA], w.end[gA])]
    L = max(len(t) for t in toks)
    batch = torch.full((len(toks), L), dna.PAD, dtype=torch.long)
    for i, t in enumerate(toks):
        batch[i, : len(t)] = torch.from_numpy(t.astype(np.int64))
    with torch.inference_mode():
        head = tiny_model.head(tiny_model.window_vectors(batch, torch.tensor([len(t) for t in toks]))).numpy()
    bp = (w.end[gA] - w.start[gA]).astype(np.float64)
    want = (bp[:, None] * head).sum(0)
    np.testing.assert_allclose(st.read()[0], want / np.linalg.norm(want), atol=2e-6)
    # a file of one record: exactly that record's vector (head then pool over the same windows)
    one = tmp_path / "one.h5"
    embed_fasta([genome_files[1]], model=tiny_model, output=one, options=EmbedOptions(device="cpu"))
    assert np.array_equal(st.read(normalize=False)[1], EmbeddingStore.open(one).read(normalize=False)[0])


def test_per_file_shards_merge_and_resume_equal_one_run_bitwise(tmp_path, tiny_model, genome_files, monkeypatch):
    from mrl_dna.store import merge_stores

    from conftest import assert_same_file

    opts = EmbedOptions(device="cpu", save_windows=True, per_file=True)
    single = tmp_path / "single.h5"
    embed_fasta(genome_files, model=tiny_model, output=single, options=opts)
    parts = [tmp_path / f"s{i}.h5" for i in (1, 2)]
    for i, p in enumerate(parts, 1):
        embed_fasta(genome_files, model=tiny_model, output=p, options=replace(opts, shard=(i, 2)))
    assert [EmbeddingStore.open(p).n for p in parts] == [1, 2]  # by bases: gA (1,400 bp) | gB, gN
    merge_stores(parts[::-1], tmp_path / "merged.h5")
    assert_same_file(single, tmp_path / "merged.h5")
    import mrl_dna.embed.run as embed_mod
    import mrl_dna.store as store_mod

    real_append, calls = store_mod.EmbeddingWriter.append, {"n": 0}

    def flaky_append(self, recs):  # keep the first file, then die as a kill between flushes would
        calls["n"] += 1
        if calls["n"] == 1:
            return real_append(self, recs)
        raise _Boom()

    monkeypatch.setattr(embed_mod, "_FLUSH_RECORDS", 1)
    monkeypatch.setattr(store_mod.EmbeddingWriter, "append", flaky_append)
    out = tmp_path / "resumed.h5"
    with pytest.raises(_Boom):
        embed_fasta(genome_files, model=tiny_model, output=out, options=opts)
    monkeypatch.setattr(store_mod.EmbeddingWriter, "append", real_append)
    s = embed_fasta(genome_files, model=tiny_model, output=out, options=opts)
    assert (s.resumed, s.records) == (1, 3)
    assert_same_file(single, out)


def test_per_file_cli_and_its_errors(tmp_path, cli, tiny_model_dir, genome_files):
    out = tmp_path / "g.h5"
    code, _, err = cli("embed", *genome_files[:2], "-o", out, "-m", tiny_model_dir)
    assert code == 1 and "duplicate id 'contig_1'" in err and "--per-file" in err and err.count("\n") == 1
    code, _, err = cli("embed", *genome_files[:2], "-o", out, "-m", tiny_model_dir, "--per-file")
    assert code == 0 and "2 files (4 records)" in err
    code, shown, _ = cli("info", out)
    assert code == 0 and "files:         2 (embed --per-file: 4 records, 2,100 bp)" in shown
    twin = tmp_path / "sub"
    twin.mkdir()
    (twin / "gB.fa").write_text(">x\nACGT\n")
    code, _, err = cli("embed", genome_files[1], twin / "gB.fa", "-o", tmp_path / "t.h5", "-m", tiny_model_dir, "--per-file")
    assert code == 1 and "are both 'gB'" in err and err.count("\n") == 1
    code, _, err = cli("embed", "-", "-o", tmp_path / "s.h5", "-m", tiny_model_dir, "--per-file")
    assert code == 1 and "--per-file" in err and "stdin '-' can be read only once" in err and err.count("\n") == 1


# ---- inputs that can be read only once (issue 22, item 7) ------------------------------------------------


def _pipe_path(data: bytes) -> str:
    """What a shell's <(cat x) passes: /dev/fd/N of a pipe that a writer fills once and closes."""
    r, w = os.pipe()

    def write() -> None:
        with os.fdopen(w, "wb") as f:
            f.write(data)

    threading.Thread(target=write, daemon=True).start()
    return f"/dev/fd/{r}"


def test_embed_reads_a_named_pipe_once_without_hanging(tmp_path, cli, tiny_model_dir, small_fasta):
    """A first pass (record lengths) used to drain the pipe; the real read then waited for a writer forever,
    leaving OUT.h5.partial and OUT.h5.lock behind."""
    code, _, err = cli("embed", small_fasta, "-o", tmp_path / "file.h5", "-m", tiny_model_dir)
    assert code == 0, err
    with named_pipe(tmp_path / "pipe", small_fasta.read_bytes()) as pipe:
        code, _, err = cli("embed", pipe, "-o", tmp_path / "pipe.h5", "-m", tiny_model_dir)
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.glob("pipe.h5*")) == ["pipe.h5"]
    assert_same_datasets(tmp_path / "file.h5", tmp_path / "pipe.h5")


def test_embed_reads_a_process_substitution_once(tmp_path, cli, tiny_model_dir, small_fasta):
    """<(cat x.fa) used to fail with "no FASTA records ... (it is empty)": the first pass had read it all."""
    code, _, err = cli("embed", small_fasta, "-o", tmp_path / "file.h5", "-m", tiny_model_dir)
    assert code == 0, err
    code, _, err = cli("embed", _pipe_path(small_fasta.read_bytes()), "-o", tmp_path / "sub.h5", "-m", tiny_model_dir)
    assert code == 0, err
    assert_same_datasets(tmp_path / "file.h5", tmp_path / "sub.h5")


def test_options_that_read_the_input_twice_refuse_a_pipe(tmp_path, cli, tiny_model_dir, small_fasta):
    data = small_fasta.read_bytes()
    for opt, what in ((["--shard", "1/2"], "--shard reads its input twice"),
                      (["--per-file"], "--per-file reads each input twice")):
        code, _, err = cli("embed", _pipe_path(data), "-o", tmp_path / "x.h5", "-m", tiny_model_dir, *opt)
        assert code == 1 and what in err and "(a pipe) can be read only once; save it to a file" in err, err
        assert err.count("\n") == 1 and not list(tmp_path.glob("x.h5*"))


def test_stdin_given_twice_says_so(tmp_path, cli, tiny_model_dir):
    """`embed - -` said "stdin is empty": the second '-' found nothing left."""
    code, _, err = cli("embed", "-", "-", "-o", tmp_path / "x.h5", "-m", tiny_model_dir)
    assert code == 1 and "stdin '-' is given more than once" in err and err.count("\n") == 1
    with named_pipe(tmp_path / "pipe", b">a\nACGT\n") as pipe:  # the second open would wait for a writer
        code, _, err = cli("embed", pipe, pipe, "-o", tmp_path / "x.h5", "-m", tiny_model_dir)
    assert code == 1 and "(a pipe) is given more than once" in err and err.count("\n") == 1


# ---- what still moves the last bits is recorded, and never mixed (issue 22, item 4) -----------------------


def test_resume_refuses_a_partial_of_another_batch_shape_or_device(tmp_path, cli, tiny_model_dir, small_fasta):
    """The thread count no longer moves a vector's bits; the device and --batch-tokens still do: they are
    the file's `numerics`, and a resume under others would mix two roundings in one file."""
    out = tmp_path / "out.h5"
    code, _, err = cli("embed", small_fasta, "-o", out, "-m", tiny_model_dir, "--batch-tokens", "1024")
    assert code == 0, err
    with h5py.File(out, "r") as f:
        assert f.attrs["numerics"] == "cpu; 1,024 bases per batch"
    out.rename(partial_path(out))  # stands for an interrupted run
    with h5py.File(partial_path(out), "r+") as f:
        f.attrs["complete"] = False
    code, _, err = cli("embed", small_fasta, "-o", out, "-m", tiny_model_dir, "--batch-tokens", "2048")
    assert code == 1 and err.count("\n") == 1
    assert ("out.h5.partial was written with numerics=cpu; 1,024 bases per batch but this run has numerics=cpu; "
            "2,048 bases per batch") in err
    code, _, err = cli("embed", small_fasta, "-o", out, "-m", tiny_model_dir, "--batch-tokens", "1024")
    assert code == 0 and "resuming" in err, err


def test_merge_refuses_shards_of_two_devices(tmp_path, tiny_model, small_fasta):
    parts = [tmp_path / f"p{i}.h5" for i in (1, 2)]
    for i, part in enumerate(parts, 1):
        embed_fasta([small_fasta], model=tiny_model, output=part, options=EmbedOptions(device="cpu", shard=(i, 2)))
    with h5py.File(parts[1], "r+") as f:  # as a GPU node of the same array job would have written it
        f.attrs["numerics"] = "cuda (NVIDIA H100 80GB HBM3, bf16 autocast); 1,048,576 bases per batch"
    with pytest.raises(StoreError, match=r"differ in numerics \(cpu; 65,536 bases per batch vs cuda \(NVIDIA H100"):
        merge_stores(parts, tmp_path / "m.h5")


# ------------------------------------------------------------------- issue 20: the saved windows' own stride


def test_saved_windows_at_their_own_stride_leave_record_vectors_unchanged(tmp_path, tiny_model, small_fasta):
    """--save-windows cuts the saved windows at --windows-stride (default 250; the tiny model's stride is 256)
    while every row is pooled from the model-stride windows as without --save-windows, bit for bit, also
    per file."""
    for per_file in (False, True):
        plain, runs = tmp_path / f"plain{per_file}.h5", {}
        embed_fasta([small_fasta], model=tiny_model, output=plain, options=EmbedOptions(device="cpu", per_file=per_file))
        for stride in (None, 64, 256):
            out = tmp_path / f"w{stride}{per_file}.h5"
            embed_fasta([small_fasta], model=tiny_model, output=out,
                        options=EmbedOptions(device="cpu", save_windows=True, windows_stride=stride, per_file=per_file))
            runs[stride] = out
        with EmbeddingStore.open(plain) as p:
            ref, n_windows = p.read(normalize=False), p.n_windows
        for stride, out in runs.items():
            with EmbeddingStore.open(out) as s:
                assert np.array_equal(s.read(normalize=False), ref) and np.array_equal(s.n_windows, n_windows)
                assert s.attrs["windows_stride"] == (stride or 250) and s.attrs["stride"] == 256
                w, lengths = s.windows(), ({r.id: len(r.tokens) for r in read_fasta(str(small_fasta))}
                                           if not per_file else None)
                if not per_file:  # each record's saved windows are embed's windows at that stride
                    for r in np.unique(w.record):
                        mine = w.record == r
                        want = {tuple(x) for x in window_spans(lengths[s.ids[r]], 256, stride or 250).tolist()}
                        assert {tuple(x) for x in np.c_[w.start[mine], w.end[mine]].tolist()} <= want  # (mostly-N skipped)
    with EmbeddingStore.open(runs[256]) as s:  # at the record stride: one pass, the windows pooled into rows
        assert len(s.windows()) == int(s.n_windows.sum())


def test_resume_with_another_windows_stride_is_refused(tmp_path, tiny_model_dir, small_fasta, cli):
    out = tmp_path / "out.h5"
    args = ["embed", small_fasta, "-o", out, "-m", tiny_model_dir, "--save-windows", "-q"]
    code, _, err = cli(*args, "--windows-stride", "128")
    assert code == 0, err
    partial = partial_path(out)
    out.rename(partial)  # stands for an interrupted run
    with h5py.File(partial, "r+") as f:
        f.attrs["complete"] = False
    code, _, err = cli(*args, "--windows-stride", "64")
    assert code == 1
    assert "out.h5.partial was written with windows_stride=128 but this run has windows_stride=64" in err
    assert len(err.splitlines()) == 1 and partial.exists()
    code, _, err = cli(*args, "--windows-stride", "128")  # the same stride resumes it
    assert code == 0, err
    code, _, err = cli("embed", small_fasta, "-o", tmp_path / "x.h5", "-m", tiny_model_dir, "--windows-stride", "64")
    assert code == 2 and "add --save-windows" in err


def test_merge_refuses_shards_of_different_windows_strides(tmp_path, tiny_model, small_fasta):
    outs = []
    for i, stride in ((1, 128), (2, 64)):
        out = tmp_path / f"s{i}.h5"
        embed_fasta([small_fasta], model=tiny_model, output=out,
                    options=EmbedOptions(device="cpu", save_windows=True, windows_stride=stride, shard=(i, 2)))
        outs.append(out)
    with pytest.raises(StoreError, match="windows_stride"):
        merge_stores(outs, tmp_path / "m.h5")
