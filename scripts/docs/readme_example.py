"""The README's example outputs, produced by running them with the bundled default model.

Getting Started (part `start`): `mrl-dna embed data/sample.fa`, then `mrl-dna search data/sample.fa sample.h5
-k 3`, printed as the README shows it (an abridged TSV block and the sentence under it with its cosines).

Genome collections (part `collections`, needs ../shared/data or $MRL_DNA_SHARED): the six genomes the README
names embedded with `embed --per-file --save-windows`, then `dist --dim 64` and `cluster --min-sim 0.99 --dim
64`. Every example line of those tables in README.md and in the --help of `dist` and `cluster` (a line of
tab-separated fields whose ids are two of the genomes, or a genome and a cluster number, and the cluster
sizes line) must be the line the command prints now.

    python scripts/docs/readme_example.py            # print the Getting Started block
    python scripts/docs/readme_example.py --write    # put the outputs into README.md and the --help texts
    python scripts/docs/readme_example.py --check    # exit 1 when any differs (tests/test_readme.py runs this)
    python scripts/docs/readme_example.py --check --part collections    # one part only

Whenever the bundled default model (mrl_dna/default_model) changes, rerun it with --write: the numbers in the
README and the --help texts come from here, never by hand, and the test suite fails until they match.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
BEGIN, END = "<!-- readme_example.py: begin -->", "<!-- readme_example.py: end -->"
LAMBDA, SARS, SARS2 = "gi|9626243|ref|NC_001416.1|", "NC_045512.2", "OR649331.1"
DWV, VDV1 = "gi|71480055|ref|NC_004830.2|", "gi|56121875|ref|NC_006494.1|"


def run_search() -> list[list[str]]:
    """The Getting Started commands, run as a user runs them (one thread: the same bits on any machine)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        h5 = Path(tmp) / "sample.h5"
        mrl = [sys.executable, "-m", "mrl_dna"]
        subprocess.run([*mrl, "embed", "data/sample.fa", "-o", str(h5), "-f", "-q"], cwd=REPO, env=env, check=True)
        out = subprocess.run([*mrl, "search", "data/sample.fa", str(h5), "-k", "3", "-q"], cwd=REPO, env=env,
                             check=True, capture_output=True, text=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def block(rows: list[list[str]]) -> str:
    header, hits = rows[0], rows[1:]

    def pick(query: str, ranks: tuple[int, ...]) -> list[str]:
        return ["\t".join(r) for r in hits if r[0] == query and int(r[2]) in ranks]

    def pair(a: str, b: str, what: str, digits: int) -> str:
        hit = next((r for r in hits if r[0] == a and r[1] == b), None)
        if hit is None:
            return f"{what} are not in each other's top 3"
        cos = f"{float(hit[3]):.{digits}f}"
        return f"{what} find each other (cosine {cos})" if hit[2] == "2" else f"{what} are at rank {hit[2]} (cosine {cos})"

    lines = ["\t".join(header), *pick(LAMBDA, (1, 2, 3)), *pick(SARS, (1, 2)), "...", *pick(DWV, (2,))]
    prose = (f"{pair(SARS, SARS2, 'The two SARS-CoV-2 genomes', 4)}; "
             f"{pair(DWV, VDV1, 'deformed wing virus and Varroa destructor virus-1', 2)}; "
             f"{pair('MT_human', 'MT_orang', 'the human and orangutan mitochondria', 2)}.")
    return "```\n" + "\n".join(lines) + "\n```\n\n" + prose + "\n"


def shared_data() -> Path | None:
    """../shared/data beside the checkout (CI clones next to it), or $MRL_DNA_SHARED/data; None when absent."""
    root = Path(os.environ["MRL_DNA_SHARED"]) if os.environ.get("MRL_DNA_SHARED") else REPO.parent / "shared"
    return root / "data" if (root / "data").is_dir() else None


# The genomes of the README's "Genome collections" example, in the order embedded.
COLLECTION = ("genomes/Blochmannia_pennsylvanicus_BPEN.fa.gz", "genomes/Blochmannia_pennsylvanicus_BPenn7.fa.gz",
              "genomes/Blochmannia_chromaiodes_640.fa.gz", "genomes/Blochmannia_floridanus.fa.gz",
              "small/Shew_baltica_OS185_first500k.fa.gz", "small/Shew_baltica_OS223_first500k.fa.gz")
# Where those examples are shown: the README and the --help (module and command docstrings) of dist and cluster.
COLLECTION_DOCS = (README, REPO / "mrl_dna" / "cli" / "dist.py", REPO / "mrl_dna" / "cli" / "cluster.py")


def run_collection(data: Path) -> tuple[set[str], dict[tuple[str, str], str], str]:
    """The README's collection commands -> (genome names, {(id, second field): the line printed}, the cluster
    sizes line): dist lines are keyed by (query, target), cluster lines by (id, cluster number)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    mrl = [sys.executable, "-m", "mrl_dna"]
    with tempfile.TemporaryDirectory() as tmp:
        h5 = str(Path(tmp) / "genomes.h5")
        subprocess.run([*mrl, "embed", *(str(data / g) for g in COLLECTION), "--per-file", "--save-windows", "-o", h5,
                        "-q"], cwd=REPO, env=env, check=True)
        dist = subprocess.run([*mrl, "dist", h5, "--dim", "64", "-q"], cwd=REPO, env=env, check=True,
                              capture_output=True, text=True).stdout
        cl = subprocess.run([*mrl, "cluster", h5, "--min-sim", "0.99", "--dim", "64"], cwd=REPO, env=env, check=True,
                            capture_output=True, text=True)
    lines = {}
    for line in [*dist.splitlines()[1:], *cl.stdout.splitlines()[1:]]:
        f = line.split("\t")
        lines[(f[0], f[1])] = line
    sizes = next(x for x in cl.stderr.splitlines() if " clusters of " in x)
    names = {Path(g).name.split(".fa")[0] for g in COLLECTION}
    return names, lines, sizes


def refresh_examples(text: str, names: set[str], lines: dict[tuple[str, str], str], sizes: str) -> str:
    """`text` with every collection example line replaced by the line printed now (indentation kept)."""
    out = []
    for line in text.split("\n"):
        body = line.lstrip(" ")
        indent = line[: len(line) - len(body)]
        f = body.split("\t")
        if len(f) == 4 and f[0] in names and (f[1] in names or f[1].isdigit()):
            body = lines.get((f[0], f[1]), body)
        elif body.startswith("mrl-dna: ") and " clusters of " in body and "; sizes " in body:
            body = sizes
        out.append(indent + body)
    return "\n".join(out)


def readme_section(text: str) -> str:
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end].strip("\n") + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true", help="rewrite the README section and the --help examples")
    ap.add_argument("--check", action="store_true", help="exit 1 when one of them differs")
    ap.add_argument("--part", choices=("start", "collections", "all"), default="all",
                    help="which examples (collections needs ../shared/data; skipped with a note when absent)")
    args = ap.parse_args()
    stale = 0
    if args.part in ("start", "all"):
        new = block(run_search())
        text = README.read_text()
        if args.write:
            start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
            README.write_text(text[:start] + "\n" + new + text[end:])
        elif args.check:
            if readme_section(text) != new:
                sys.stderr.write("README.md's example output is stale; run: python scripts/docs/readme_example.py --write\n"
                                 f"--- README\n{readme_section(text)}--- now\n{new}")
                stale += 1
        else:
            sys.stdout.write(new)
    if args.part in ("collections", "all") and (args.write or args.check):
        data = shared_data()
        if data is None:
            sys.stderr.write("no ../shared/data (or $MRL_DNA_SHARED): the genome collection examples are not checked\n")
        else:
            found = run_collection(data)
            for path in COLLECTION_DOCS:
                text = path.read_text()
                now = refresh_examples(text, *found)
                if now == text:
                    continue
                if args.write:
                    path.write_text(now)
                else:
                    diff = [f"  {a.strip()}\n  -> {b.strip()}" for a, b in zip(text.split("\n"), now.split("\n")) if a != b]
                    sys.stderr.write(f"{path.relative_to(REPO)}: stale example lines; run: python "
                                     "scripts/docs/readme_example.py --write\n" + "\n".join(diff) + "\n")
                    stale += 1
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
