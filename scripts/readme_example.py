"""The README's Getting Started output, produced by running it: `mrl-dna embed data/sample.fa` with the bundled
default model, then `mrl-dna search data/sample.fa sample.h5 -k 3`, printed as the README shows it (an
abridged TSV block and the sentence under it with its cosines).

    python scripts/readme_example.py            # print the block
    python scripts/readme_example.py --write    # put it into README.md between the readme_example markers
    python scripts/readme_example.py --check    # exit 1 when README.md differs (tests/test_readme.py runs this)

Whenever the bundled default model (mrl_dna/default_model) changes, rerun it with --write: the numbers in the
README come from here, never by hand, and the test suite fails until they match.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
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


def readme_section(text: str) -> str:
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end].strip("\n") + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true", help="rewrite the README section")
    ap.add_argument("--check", action="store_true", help="exit 1 when the README section differs")
    args = ap.parse_args()
    new = block(run_search())
    text = README.read_text()
    if args.write:
        start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
        README.write_text(text[:start] + "\n" + new + text[end:])
    elif args.check:
        if readme_section(text) != new:
            sys.stderr.write("README.md's example output is stale; run: python scripts/readme_example.py --write\n"
                             f"--- README\n{readme_section(text)}--- now\n{new}")
            return 1
    else:
        sys.stdout.write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
