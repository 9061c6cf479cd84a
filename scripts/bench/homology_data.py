"""Data sets, peer tools and timing shared by the issue-20 benchmarks (scripts/bench/ani.py, contigs.py,
ani_scale.py): window-level ANI and contig assignment against fastANI, skani and minimap2.

- `manifest(data)`: the genomes of the shared data set (MANIFEST.tsv), each copied into the work dir before
  anything indexes it (the shared copy stays read-only).
- `make_relative`: a relative of a genome at a known divergence (the recipe of the issue-20 research memo):
  the genome is cut into segments (lengths exponential, mean 5 kb); each is mutated with `evolve.mutate` at its
  own rate (the pair's rate times a gamma(4)/4 factor: real genomes diverge unevenly along their length); a
  fraction of segments (0-20%, drawn per relative) is replaced by unrelated sequence of the same length (gene
  gain/loss: aligned fraction < 1) and 0-3 blocks of segments are moved, half of them reverse-complemented.
  Truth: the event identity 1 - (substitutions + indel events) / source bases over the homologous segments
  (the scale of fastANI, skani and mash: an indel is one event whatever its length) and the homologous bp on
  each side. Every draw is seeded by (source name, target identity).
- Peers, cached in the work dir (rerun only when the output is missing): fastANI (all-vs-all, or by source
  for relatives), skani through pyskani (sketch once, query all), minimap2; `tool_versions`.
- `truth_ani`: the published ANIm values of ../shared/data/truth (pyani, JSpecies), named by MANIFEST.
- `timed`: wall time and peak RSS of a subprocess (/usr/bin/time -v when present, else getrusage).
"""

from __future__ import annotations

import csv
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrl_dna import dna
from mrl_dna.evolve import mutate
from mrl_dna.inputs.fasta import read_fasta
from mrl_dna.inputs.genomes import genome_name

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO.parent / "shared" / "data"  # ../shared/data of a worktree

# ANI bands of the issue (percent), top first
BANDS = ((99.0, 100.01), (95.0, 99.0), (90.0, 95.0), (80.0, 90.0), (70.0, 80.0))
BAND_NAMES = (">=99", "95-99", "90-95", "80-90", "70-80")

# Relatives: 8 genomes of the set of different genera and GC, 11 identities from near-identical to 75%.
RELATIVE_SOURCES = ("Aquifex_aeolicus_VF5", "Pectobacterium_atrosepticum_SCRI1043", "Cpseudotb_CIP52.97",
                    "Methanobacterium_AL-21", "Ccres_NA1000", "Blochmannia_floridanus", "Salmonella_LT2",
                    "Sphingobacteriaceae_DW12")
RELATIVE_TARGETS = (0.995, 0.98, 0.96, 0.94, 0.92, 0.90, 0.87, 0.84, 0.81, 0.78, 0.75)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---- the shared data set ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Genome:
    name: str  # file name without .fa.gz (the row name `embed --per-file` gives it)
    path: Path  # the shared copy
    group: str  # MANIFEST's group (species or genus)
    kind: str  # genomes | small | assemblies
    bp: int
    nseq: int
    origin: str  # where it came from (names the accession the truth tables use)


def manifest(data: Path) -> list[Genome]:
    f = Path(data) / "MANIFEST.tsv"
    if not f.is_file():
        raise SystemExit(f"no MANIFEST.tsv in {data}; give --data the shared data folder (../shared/data)")
    out = []
    with open(f, newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            p = Path(data) / row["file"]
            out.append(Genome(genome_name(p), p, row["group"], Path(row["file"]).parts[0], int(row["bp"]),
                              int(row["nseq"]), row.get("origin", "")))
    return out


def local_copy(src: Path, folder: Path) -> Path:
    """src copied into folder (once; again when the size differs): tools may index or write beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / Path(src).name
    if not dst.exists() or dst.stat().st_size != Path(src).stat().st_size:
        tmp = dst.with_name(dst.name + ".partial")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    return dst


def read_records(path: Path) -> list[tuple[str, np.ndarray]]:
    return [(r.id, r.tokens) for r in read_fasta(str(path))]


def write_fasta(path: Path, records: list[tuple[str, np.ndarray]], width: int = 0) -> None:
    """Records as FASTA, written to PATH.partial and renamed when complete."""
    tmp = Path(str(path) + ".partial")
    with open(tmp, "w") as f:
        for rid, t in records:
            f.write(f">{rid}\n{dna.decode(t)}\n")
    os.replace(tmp, path)


# ---- relatives at known divergence -----------------------------------------------------------------------
# evolve.mutate's defaults (events/base r, 80% substitutions, 20% indels of 1-3 bp): measured (rate, identity)
RATE = np.array([0.0, 0.004, 0.01, 0.02, 0.03, 0.045, 0.06, 0.08, 0.10, 0.12, 0.14, 0.16, 0.18, 0.21, 0.24, 0.28])
IDENT = np.array([1.0, 0.9955, 0.9887, 0.9763, 0.9661, 0.9487, 0.9327, 0.9088, 0.8875, 0.8661, 0.8435, 0.8244,
                  0.7998, 0.7688, 0.7387, 0.6991])


def rate_for(ident: float) -> float:
    return float(np.interp(-ident, -IDENT, RATE))


@dataclass(frozen=True)
class Relative:
    name: str
    source: str
    target: float  # the identity asked for
    ident: float  # truth: event identity over the homologous segments (fraction)
    af_relative: float  # homologous bp / relative length
    af_source: float  # source bp with a homolog / source length


def source_tokens(path: Path) -> np.ndarray:
    """A genome's records joined (a draft's contigs too: its segments are cut anyway); N runs dropped when rare."""
    x = np.concatenate([t for _, t in read_records(path)])
    return x[x != dna.N] if (x == dna.N).mean() < 0.01 else x


def make_relative(x: np.ndarray, source: str, target: float, decoy: np.ndarray | None = None,
                  segment: int = 5000) -> tuple[np.ndarray, Relative]:
    """A relative of tokens x at event identity ~target (module doc). decoy: unrelated sequence the replaced
    segments are taken from; None = the source itself reversed (not complemented): the same GC, no homology."""
    rng = np.random.default_rng(zlib.crc32(f"{source}:{target}".encode()))
    decoy = x[::-1] if decoy is None else decoy
    base = rate_for(target)
    cuts = np.cumsum(rng.exponential(segment, size=len(x) // 1000 + 10).astype(int) + 200)
    cuts = np.concatenate([[0], cuts[cuts < len(x)], [len(x)]])
    p_replace = rng.uniform(0, 0.2)
    pieces, hom_src, hom_rel, events = [], 0, 0, 0
    for a, b in zip(cuts[:-1], cuts[1:]):
        seg = x[a:b]
        if rng.random() < p_replace:
            o = int(rng.integers(0, len(decoy) - len(seg)))
            pieces.append(decoy[o: o + len(seg)].copy())
            continue
        r = base * rng.gamma(4.0) / 4.0 if base > 0 else 0.0
        y, m = mutate(seg, min(r, 0.45), rng)
        pieces.append(y)
        hom_src += len(seg)
        hom_rel += len(y)
        dp = np.sort(m.del_pos)
        events += m.n_sub + len(m.ins_pos) + (int(np.sum(np.diff(dp) > 1)) + 1 if len(dp) else 0)
    for _ in range(int(rng.integers(0, 4))):  # rearrangements: move blocks of 1-4 segments, half reversed
        if len(pieces) < 7:  # too few segments to move a block
            break
        i = int(rng.integers(0, len(pieces) - 5))
        k = int(rng.integers(1, 5))
        block = pieces[i: i + k]
        del pieces[i: i + k]
        if rng.random() < 0.5:
            block = [dna.revcomp(p) for p in block[::-1]]
        j = int(rng.integers(0, len(pieces)))
        pieces[j:j] = block
    y = np.concatenate(pieces)
    name = f"{source}__r{target}"
    return y, Relative(name, source, target, 1 - events / hom_src, hom_rel / len(y), hom_src / len(x))


def make_relatives(sources: dict[str, Path], targets, folder: Path, decoys: list[Path] | None = None
                   ) -> list[Relative]:
    """folder/NAME__rT.fa for each source and target + folder/truth.tsv; reused when truth.tsv lists them all."""
    folder.mkdir(parents=True, exist_ok=True)
    truth_file = folder / "truth.tsv"
    want = [f"{s}__r{t}" for s in sources for t in targets]
    if truth_file.exists():
        rows = {r.name: r for r in read_truth(truth_file)}
        if all(n in rows and (folder / f"{n}.fa").exists() for n in want):
            return [rows[n] for n in want]
    decoy = np.concatenate([source_tokens(p) for p in decoys]) if decoys else None
    out = []
    for s, path in sources.items():
        x = source_tokens(path)
        for t in targets:
            y, rel = make_relative(x, s, t, decoy)
            write_fasta(folder / f"{rel.name}.fa", [(rel.name, y)])
            out.append(rel)
            log(f"relative {rel.name}: identity {100 * rel.ident:.2f}, af {rel.af_relative:.2f}/{rel.af_source:.2f}")
    tmp = folder / "truth.tsv.partial"
    with open(tmp, "w") as f:
        f.write("relative\tsource\ttarget\tident\taf_relative\taf_source\n")
        for r in out:
            f.write(f"{r.name}\t{r.source}\t{r.target}\t{r.ident:.6f}\t{r.af_relative:.5f}\t{r.af_source:.5f}\n")
    os.replace(tmp, truth_file)
    return out


def read_truth(path: Path) -> list[Relative]:
    with open(path, newline="") as fh:
        return [Relative(r["relative"], r["source"], float(r["target"]), float(r["ident"]), float(r["af_relative"]),
                         float(r["af_source"])) for r in csv.DictReader(fh, delimiter="\t")]


# ---- peer tools ---------------------------------------------------------------------------------------------
def _first_line(cmd: list[str]) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    text = (r.stdout + r.stderr).strip().splitlines()
    return text[0].strip() if text else "?"


def tool_versions(*tools: str) -> dict[str, str]:
    """Versions of the peers used (fastani, skani, minimap2, mash)."""
    out = {}
    for t in tools:
        if t == "fastani":
            out["fastANI"] = _first_line(["fastANI", "--version"]).replace("version ", "")
        elif t == "skani":
            try:
                import pyskani
                out["pyskani"] = pyskani.__version__
            except ImportError:
                out["pyskani"] = "not installed"
        elif t == "minimap2":
            out["minimap2"] = _first_line(["minimap2", "--version"])
        elif t == "mash":
            out["mash"] = _first_line(["mash", "--version"])
    return out


def fastani(queries: list[Path], refs: list[Path], out: Path, threads: int = 1) -> dict:
    """fastANI --ql --rl (every query against every reference) into out; skipped when out exists.
    Returns {"seconds", "peak_rss_mib"} of the run (None when cached)."""
    if out.exists():
        return {"seconds": None, "peak_rss_mib": None, "cached": True}
    out.parent.mkdir(parents=True, exist_ok=True)
    ql, rl = out.with_suffix(".queries.txt"), out.with_suffix(".refs.txt")
    ql.write_text("".join(f"{p}\n" for p in queries))
    rl.write_text("".join(f"{p}\n" for p in refs))
    tmp = Path(str(out) + ".partial")
    t = timed(["fastANI", "--ql", str(ql), "--rl", str(rl), "-t", str(threads), "-o", str(tmp)])
    if not tmp.exists():  # fastANI writes nothing when no pair maps
        tmp.write_text("")
    os.replace(tmp, out)
    for p in (Path(str(tmp) + ".visual"),):
        p.unlink(missing_ok=True)
    return t


def load_fastani(path: Path) -> dict[tuple[str, str], tuple[float, int, int]]:
    """(query, ref) -> (ANI %, mapped fragments, query fragments); self pairs dropped."""
    d = {}
    if not Path(path).exists():
        return d
    for line in open(path):
        f = line.split()
        if len(f) < 5 or f[2] == "NA":
            continue
        a, b = genome_name(f[0]), genome_name(f[1])
        if a != b:
            d[(a, b)] = (float(f[2]), int(f[3]), int(f[4]))
    return d


def _contigs(path: Path) -> list[bytes]:
    return [dna.decode(t).encode() for _, t in read_records(path)]


def skani(queries: list[Path], refs: list[Path], out: Path) -> dict:
    """pyskani (defaults): sketch every reference once, query each query against all of them; self pairs left
    out; into out (query, ref, ani, af_query, af_ref). Skipped when out exists. Returns sketch/query seconds."""
    if out.exists():
        return {"sketch_s": None, "query_s": None, "cached": True}
    import pyskani

    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    db = pyskani.Database()
    for p in refs:
        db.sketch(genome_name(p), *_contigs(p))
    t1 = time.perf_counter()
    tmp = Path(str(out) + ".partial")
    with open(tmp, "w") as o:
        o.write("query\tref\tani\taf_query\taf_ref\n")
        for p in queries:
            n = genome_name(p)
            for h in db.query(n, *_contigs(p)):
                if h.reference_name != n:
                    o.write(f"{n}\t{h.reference_name}\t{100 * h.identity:.4f}\t{h.query_fraction:.4f}\t"
                            f"{h.reference_fraction:.4f}\n")
    os.replace(tmp, out)
    return {"sketch_s": t1 - t0, "query_s": time.perf_counter() - t1}


def load_skani(path: Path) -> dict[tuple[str, str], tuple[float, float, float]]:
    d = {}
    if not Path(path).exists():
        return d
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh, delimiter="\t"):
            d[(r["query"], r["ref"])] = (float(r["ani"]), float(r["af_query"]), float(r["af_ref"]))
    return d


# ---- published ANIm values (../shared/data/truth) ---------------------------------------------------------
def _accession_names(genomes: list[Genome]) -> dict[str, str]:
    """'GCF_000011745.1_ASM1174v1_genomic' / 'NC_011916' -> genome name, from MANIFEST's origin column."""
    out = {}
    for g in genomes:
        base = g.origin.rsplit("/", 1)[-1]
        base = re.sub(r"\.(fna|fa|fasta)(\.gz)?$", "", base)
        if base:
            out[base] = g.name
    return out


def _matrix_blocks(path: Path) -> dict[str, list[list[str]]]:
    """A JSpecies/pyani text file -> {section title: rows of cells}; a pyani .tab (no title) -> {'': rows}."""
    blocks, title, rows = {}, "", []
    for line in open(path):
        cells = line.rstrip("\n").split("\t")
        if len(cells) == 1 and cells[0].strip():
            if rows:
                blocks[title] = rows
            title, rows = cells[0].strip(), []
        elif line.strip():
            rows.append(cells)
    if rows:
        blocks[title] = rows
    return blocks


def truth_ani(data: Path, genomes: list[Genome]) -> dict[tuple[str, str], tuple[float, str]]:
    """(a, b) sorted -> (ANIm %, table) for the pairs of ../shared/data/truth that name two genomes of the
    set; the mean of the two directions where a table gives both."""
    names = _accession_names(genomes)
    vals: dict[tuple[str, str], list[float]] = {}
    src: dict[tuple[str, str], str] = {}
    for f in sorted((Path(data) / "truth").glob("*")):
        blocks = _matrix_blocks(f)
        if "percentage_identity" in f.name:
            rows, scale = blocks.get(""), 100.0
        elif "ANIm" in blocks:
            rows, scale = blocks["ANIm"], 1.0
        else:
            continue
        if not rows:
            continue
        head = [re.sub(r"\.(fna|fa)$", "", c.strip()) for c in rows[0][1:]]
        for r in rows[1:]:
            a = names.get(re.sub(r"\.(fna|fa)$", "", r[0].strip()))
            for j, c in enumerate(r[1:len(head) + 1]):
                b = names.get(head[j])
                if a and b and a != b and c.strip() not in ("", "---"):
                    key = tuple(sorted((a, b)))
                    vals.setdefault(key, []).append(float(c) * scale)
                    src[key] = f.name
    return {k: (float(np.mean(v)), src[k]) for k, v in vals.items()}


# ---- timing ---------------------------------------------------------------------------------------------------
def timed(cmd: list[str], env: dict | None = None, stdout=None) -> dict:
    """Run cmd; wall seconds and peak RSS (MiB) of it (and its children). Raises SystemExit on failure."""
    use_time = Path("/usr/bin/time").exists()
    full = (["/usr/bin/time", "-v"] if use_time else []) + [str(c) for c in cmd]
    t0 = time.perf_counter()
    r = subprocess.run(full, stdout=stdout if stdout is not None else subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, env=env)
    wall = time.perf_counter() - t0
    if r.returncode:
        raise SystemExit(f"{' '.join(map(str, cmd[:3]))} ... failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr or "") if use_time else None
    rss = int(m.group(1)) / 1024 if m else resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"seconds": wall, "peak_rss_mib": rss, "stdout": r.stdout if stdout is None else None,
            "stderr": r.stderr[-4000:] if not use_time else r.stderr.split("\tCommand being timed")[0][-4000:]}


# ---- summaries ----------------------------------------------------------------------------------------------
def band_of(v: float) -> int | None:
    for i, (lo, hi) in enumerate(BANDS):
        if lo <= v < hi:
            return i
    return None


def error_table(pairs: list[tuple[float, float]]) -> dict:
    """(reference ANI, estimate ANI; nan = NA) -> MAE by band (with n scored / n in band), overall MAE, bias,
    Pearson, NA count. Pairs whose reference is nan are left out."""
    R = np.array([p for p in pairs if not math.isnan(p[0])], float).reshape(-1, 2)
    ok = ~np.isnan(R[:, 1])
    out = {"bands": {}, "n": int(len(R)), "na": int((~ok).sum())}
    for name, (lo, hi) in zip(BAND_NAMES, BANDS):
        m = (R[:, 0] >= lo) & (R[:, 0] < hi)
        mm = m & ok
        out["bands"][name] = {"mae": float(np.mean(np.abs(R[mm, 1] - R[mm, 0]))) if mm.any() else None,
                              "bias": float(np.mean(R[mm, 1] - R[mm, 0])) if mm.any() else None,
                              "n": int(mm.sum()), "n_band": int(m.sum())}
    inb = ok & (R[:, 0] >= BANDS[-1][0])
    out["mae"] = float(np.mean(np.abs(R[inb, 1] - R[inb, 0]))) if inb.any() else None
    out["pearson"] = float(np.corrcoef(R[inb, 0], R[inb, 1])[0, 1]) if inb.sum() > 2 else None
    return out


def species_agreement(pairs: list[tuple[float, float]], cut: float = 95.0) -> tuple[float | None, int]:
    """Share of pairs where (estimate >= cut) == (reference >= cut); NA estimates count as below."""
    rr = [(r, 0.0 if math.isnan(e) else e) for r, e in pairs if not math.isnan(r)]
    if not rr:
        return None, 0
    return float(np.mean([(e >= cut) == (r >= cut) for r, e in rr])), len(rr)


def fmt_cell(b: dict) -> str:
    if b["n_band"] == 0:
        return "-"
    if b["mae"] is None:
        return f"NA (0/{b['n_band']})"
    n = f"{b['n']}" if b["n"] == b["n_band"] else f"{b['n']}/{b['n_band']}"
    return f"{b['mae']:.2f} ({n})"


def markdown_row(label: str, t: dict, agree: tuple[float | None, int] | None = None) -> str:
    cells = [fmt_cell(t["bands"][n]) for n in BAND_NAMES]
    mae = "-" if t["mae"] is None else f"{t['mae']:.2f}"
    r = "-" if t["pearson"] is None else f"{t['pearson']:.3f}"
    ag = "-" if not agree or agree[0] is None else f"{100 * agree[0]:.1f}% ({agree[1]})"
    return f"| {label} | " + " | ".join(cells) + f" | {mae} | {r} | {ag} | {t['na']} |"


TABLE_HEAD = ("| estimate vs reference | " + " | ".join(BAND_NAMES) + " | all (70-100) | Pearson | species call 95% | NA |\n"
              "|---|" + "---:|" * (len(BAND_NAMES) + 4))
