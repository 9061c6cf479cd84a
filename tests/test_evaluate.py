"""Fragment-retrieval benchmark (mrl_dna/evaluate/retrieval.py, report.py) and the `mrl-dna eval` command (mrl_dna/cli/eval.py)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from mrl_dna.evaluate import retrieval as ev
from mrl_dna.evaluate import report as er
from mrl_dna.dna import BASES, decode
from mrl_dna.errors import ConfigError, InputError
from mrl_dna.inputs.genomes import manifest_group, read_groups
from mrl_dna.kmer import KmerEmbedder, kmer_counts

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
if not SHARED.is_dir() and os.environ.get("MRL_DNA_SHARED"):
    SHARED = Path(os.environ["MRL_DNA_SHARED"])


# ---- fixtures local to this file ---------------------------------------------------------------------------
def _random_genome(rng: np.random.Generator, n: int, gc: float) -> np.ndarray:
    p = np.array([(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2])  # A C G T
    return rng.choice(np.array(BASES, dtype=np.uint8), size=n, p=p)


@pytest.fixture(scope="module")
def tiny_genomes() -> list[ev.Genome]:
    """4 synthetic genomes, 2 species, far apart in GC so a composition embedder can always tell them apart;
    genome 'b2' has two records so fragments are drawn from both."""
    rng = np.random.default_rng(1)
    return [
        ev.Genome("a1", "alpha", (_random_genome(rng, 6000, 0.2),)),
        ev.Genome("a2", "alpha", (_random_genome(rng, 6000, 0.35),)),
        ev.Genome("b1", "beta", (_random_genome(rng, 6000, 0.65),)),
        ev.Genome("b2", "beta", (_random_genome(rng, 3000, 0.8), _random_genome(rng, 3000, 0.8))),
    ]


class FakeEmbedder:
    """A 16-dim 'model': canonical 2-mer frequencies (10) then 6 zero columns, so prefixes 8 and 16 both work."""

    def __call__(self, seqs):
        out = np.zeros((len(seqs), 16), dtype=np.float32)  # (q, D)
        for i, s in enumerate(seqs):
            c = kmer_counts(s, 2).astype(np.float32)
            out[i, :10] = c / max(c.sum(), 1)
        return out


CFG = ev.FragmentConfig(lengths=(1000,), divergences=(0.0, 0.1), per_genome=10, seed=3)


# ---- mutation and fragments --------------------------------------------------------------------------------
def test_fragments_at_zero_divergence_are_genome_slices_and_identity_drops(tiny_genomes):
    from mrl_dna.dna import revcomp

    fr = ev.make_fragments(tiny_genomes, ev.FragmentConfig(lengths=(500,), divergences=(0.0, 0.2), per_genome=20))
    for t, g, r, s, rev, d in zip(fr.tokens, fr.genome, fr.record, fr.start, fr.reverse, fr.divergence):
        if d == 0.0:
            src = tiny_genomes[g].records[r][s : s + 500]
            assert np.array_equal(revcomp(t) if rev else t, src)
    ident = ev.fragment_identity(fr)
    assert ident[0.0] == 1.0 and 0.75 < ident[0.2] < 0.85  # the sampler's mutation log, not a guess


def test_fragments_are_paired_reproducible_and_half_reverse(tiny_genomes):
    f1 = ev.make_fragments(tiny_genomes, CFG)
    f2 = ev.make_fragments(tiny_genomes, CFG)
    assert len(f1) == 4 * 10 * 2
    assert all(np.array_equal(x, y) for x, y in zip(f1.tokens, f2.tokens))
    # the same start positions at every divergence, and exactly half reverse-complemented
    d0, d1 = f1.divergence == 0.0, f1.divergence == 0.1
    assert np.array_equal(f1.start[d0], f1.start[d1]) and np.array_equal(f1.reverse[d0], f1.reverse[d1])
    assert f1.reverse[d0].sum() == 4 * 5
    # fragments of a genome do not depend on which other genomes are in the benchmark
    f3 = ev.make_fragments(tiny_genomes[2:], CFG)
    assert all(np.array_equal(x, y) for x, y in zip(f3.tokens, [t for t, g in zip(f1.tokens, f1.genome) if g >= 2]))
    # both records of b2 are used, and no fragment crosses a record end
    assert set(f1.record[f1.genome == 3].tolist()) == {0, 1}
    assert (f1.start + 1000 <= 3000)[f1.genome == 3].all()


def test_fragment_longer_than_genome_is_a_config_error(tiny_genomes):
    with pytest.raises(ConfigError, match="shorter than the fragment length 7000"):
        ev.make_fragments(tiny_genomes, ev.FragmentConfig(lengths=(7000,)))


def test_bad_config_values():
    with pytest.raises(ConfigError, match=r"divergences \[1.5\] must lie in \[0, 1\)"):
        ev.FragmentConfig(divergences=(1.5,))
    with pytest.raises(ConfigError, match="fragment lengths"):
        ev.FragmentConfig(lengths=(0,))


# ---- metrics -------------------------------------------------------------------------------------------
def test_retrieval_metrics_hand_example_with_ties():
    species = np.array([0, 0, 1])
    S = np.array([
        [0.9, 0.1, 0.2],  # true 0: genome hit, species hit
        [0.9, 0.5, 0.1],  # true 1: genome rank 2, species hit (genome 0 is the same species)
        [0.3, 0.3, 0.3],  # true 2: a three-way tie -> rank 3, species miss
        [np.nan, np.nan, np.nan],  # true 2: no score at all -> miss
    ])
    m = ev.retrieval_metrics(S, np.array([0, 1, 2, 2]), species, ks=(1, 2, 3))
    assert m["genome_top1"] == 0.25 and m["species_top1"] == 0.5
    assert m["recall"] == {1: 0.25, 2: 0.5, 3: 0.75}


# ---- the benchmark end to end --------------------------------------------------------------------------
def test_fake_embedder_is_perfect_at_divergence_zero_and_table_shape(tiny_genomes):
    methods = [ev.Method("fake", FakeEmbedder(), (8, 16)), ev.Method("4-mer profile", KmerEmbedder(4))]
    rep = ev.run_benchmark(tiny_genomes, methods, CFG, recall_k=(2,))
    assert rep.methods() == ["fake", "4-mer profile"] and rep.dims("fake") == [8, 16] and rep.dims("4-mer profile") == [136]
    for k in (8, 16):
        s = rep.get("fake", k, 1000, 0.0)
        assert (s.species_top1, s.genome_top1, dict(s.recall)[2], s.n) == (1.0, 1.0, 1.0, 40)
        assert s.cost == k * 4
    md = er.format_markdown(rep)
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    main_rows = [r for r in rows if r.count("|") == 3 + 2 * 2 + 1 + 1]  # method dims cost 2+2 divs retention
    assert [r.split("|")[1].strip() for r in main_rows[1:]] == ["fake", "fake", "4-mer profile"]
    assert main_rows[2].split("|")[-2].strip() == "100.0"  # full dim retains 100% of itself
    assert "species top-1 @10%" in md and "recall@2 @0%" in md


def test_vector_dims_wider_than_the_method_fail(tiny_genomes):
    with pytest.raises(ConfigError, match="dim 32 exceeds fake's width 16"):
        ev.run_benchmark(tiny_genomes, [ev.Method("fake", FakeEmbedder(), (8, 32))], CFG)


def test_check_dims_names_the_model_dims():
    with pytest.raises(ConfigError, match=r"dims \[12\] are not Matryoshka dims of model m \(it has \[8, 16\]\)"):
        ev.check_dims((8, 12), (8, 16), "m")
    assert ev.check_dims((16, 8), (8, 16), "m") == (8, 16)


# ---- genome files and species labels -----------------------------------------------------------------------
def _write_fasta(path: Path, seqs: dict[str, np.ndarray]) -> Path:
    text = "".join(f">{k}\n{decode(v)}\n" for k, v in seqs.items())
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


@pytest.fixture()
def genome_files(tmp_path, tiny_genomes) -> list[Path]:
    return [_write_fasta(tmp_path / f"{g.species}_{g.name}.fa.gz", {f"r{i}": r for i, r in enumerate(g.records)})
            for g in tiny_genomes]


def test_load_genomes_names_and_species(genome_files, tmp_path):
    gs = ev.load_genomes(genome_files)
    assert [g.name for g in gs] == ["alpha_a1", "alpha_a2", "beta_b1", "beta_b2"]
    assert [g.species for g in gs] == ["alpha", "alpha", "beta", "beta"]  # file name up to '_'
    assert len(gs[3].records) == 2 and gs[3].tokens.size == 6001  # records joined by one N
    tsv = tmp_path / "sp.tsv"
    tsv.write_text("# genome\tspecies\nalpha_a1\tX\nalpha_a2.fa.gz\tX\nbeta_b1\tY\n")
    with pytest.raises(InputError, match="beta_b2.fa.gz is not in the species TSV"):
        ev.load_genomes(genome_files, species=read_groups(tsv))


@pytest.mark.shared_data
def test_species_from_shared_manifest():
    if not (SHARED / "MANIFEST.tsv").is_file():
        pytest.skip(f"shared data not found at {SHARED} (set MRL_DNA_SHARED)")
    assert manifest_group(SHARED / "genomes" / "Ecoli_W.fa.gz") == "Escherichia coli"
    assert manifest_group(SHARED / "small" / "MT_human.fa.gz") == "mitochondrion"


# ---- the CLI -------------------------------------------------------------------------------------------
def test_cli_kmer_only_writes_table_and_plot(genome_files, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    md, png = tmp_path / "r.md", tmp_path / "r.png"
    code, out, err = run_cli(["eval", *map(str, genome_files), "--no-model", "--kmer", "4", "--fragments", "500",
                           "--divergence", "0,0.2", "--per-genome", "4", "-o", str(md), "--plot", str(png)], capsys)
    assert code == 0, err
    assert "| 4-mer profile | 136 |" in out and md.read_text().strip() == out.strip()
    assert png.stat().st_size > 1000 and "Traceback" not in err


def test_cli_missing_model_dir_is_one_line(genome_files, tmp_path, capsys):
    code, out, err = run_cli(["eval", *map(str, genome_files), "--model", str(tmp_path / "nope")], capsys)
    assert code == 1 and out == ""
    assert err.strip().splitlines() == [f"mrl-dna: error: model directory {tmp_path / 'nope'} does not exist; "
                                        "pass --model DIR of a saved model"]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random, very small mrl-dna model (dims 4, 8; 512 bp windows): enough to run the model path."""
    torch = pytest.importorskip("torch")
    from mrl_dna.model.config import EncoderConfig, ModelConfig
    from mrl_dna.model import MrlDnaModel

    torch.manual_seed(0)
    cfg = ModelConfig(encoder=EncoderConfig(d_model=8, n_layer=1, stem_channels=8, headdim=8),
                      matryoshka_dims=(4, 8), head_hidden=0, name="tiny", window=512, window_stride=512)
    path = tmp_path_factory.mktemp("model") / "tiny"
    MrlDnaModel(cfg).save_pretrained(path)
    return path


def test_cli_dims_the_model_lacks_is_one_line(genome_files, tiny_model_dir, capsys):
    code, out, err = run_cli(["eval", *map(str, genome_files), "--model", str(tiny_model_dir), "--dims", "4,64"], capsys)
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines() == ["mrl-dna: error: dims [64] are not Matryoshka dims of model tiny "
                                        "(it has [4, 8]); pick from 4,8"]


def test_cli_model_and_baseline_rows(genome_files, tiny_model_dir, capsys):
    code, out, err = run_cli(["eval", *map(str, genome_files[1:3]), "--model", str(tiny_model_dir), "--baseline",
                           str(tiny_model_dir), "--dims", "4", "--kmer", "", "--fragments", "600",
                           "--divergence", "0", "--per-genome", "3", "-q"], capsys)
    assert code == 0, err
    rows = [r.split("|")[1:3] for r in out.splitlines() if r.startswith("| mrl-dna") or r.startswith("| baseline")]
    # --dims 4 plus the full width 8 (retention is relative to it), for the model and the baseline alike
    assert [(m.strip(), d.strip()) for m, d in rows[:4]] == [
        ("mrl-dna tiny", "4"), ("mrl-dna tiny", "8"), ("baseline tiny", "4"), ("baseline tiny", "8")]


def test_cli_bad_list_option(genome_files, capsys):
    code, _, err = run_cli(["eval", *map(str, genome_files), "--no-model", "--divergence", "0,x"], capsys)
    assert code == 1 and err.startswith("mrl-dna: error: --divergence '0,x' is not a comma-separated list")
