"""The README's example output is what the Getting Started commands print now (scripts/readme_example.py),
so it cannot go stale: after the bundled model changes, rerun `python scripts/readme_example.py --write`."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_readme_example_output_is_current():
    r = subprocess.run([sys.executable, "scripts/readme_example.py", "--check"], cwd=REPO, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
