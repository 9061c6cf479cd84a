"""The README's example outputs (and those of the `dist` and `cluster` --help texts) are what the commands print
now (scripts/readme_example.py), so they cannot go stale: after the bundled model changes, rerun
`python scripts/readme_example.py --write`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO, shared_dir


def _check(part: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "scripts/readme_example.py", "--check", "--part", part], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_readme_example_output_is_current():
    r = _check("start")
    assert r.returncode == 0, r.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.skipif(not (shared_dir() / "data").is_dir(), reason="needs ../shared/data (or MRL_DNA_SHARED)")
def test_dist_and_cluster_examples_in_readme_and_help_are_current():
    """Issue 22.20: `dist --help` and `cluster --help` showed numbers of an older default model (README had the
    new ones). Every example line of the six-genome collection is checked against a real run (~5 s)."""
    r = _check("collections")
    assert r.returncode == 0 and "not checked" not in r.stderr, r.stderr[-3000:]
