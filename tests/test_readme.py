"""The README's example outputs (and those of the `dist` and `cluster` --help texts) are what the commands print
now (scripts/docs/readme_example.py), so they cannot go stale: after the bundled model changes, rerun
`python scripts/docs/readme_example.py --write`."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import REPO, shared_dir


def _check(part: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "scripts/docs/readme_example.py", "--check", "--part", part], cwd=REPO,
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
# modules the tests import only when present, on purpose: extras whose tests are meant to skip without them
OPTIONAL_EXTRAS = {"faiss": "faiss", "matplotlib": "plot"}
DISTRIBUTION = {"sklearn": "scikit-learn", "faiss": "faiss-cpu"}  # (the test extra installs the extras too)  # import name -> package name, where they differ


def test_the_test_extra_installs_what_the_tests_import():
    """Issue 22: `pip install -e ".[test]"` left scikit-learn out, so a fresh machine skipped a whole test
    module. A module the tests import only if present is a dependency, in the test extra, or a deliberate
    optional extra (OPTIONAL_EXTRAS)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: tomli, the same parser, is a dependency there
        import tomli as tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    installed = {re.split(r"[<>=\[ ;]", d, 1)[0].lower()
                 for d in project["dependencies"] + project["optional-dependencies"]["test"]}
    wanted = set()
    for test in (REPO / "tests").glob("test_*.py"):
        wanted |= set(re.findall(r"""importorskip\(\s*["']([\w.]+)["']""", test.read_text()))
    missing = {m for m in wanted if m.split(".")[0] not in OPTIONAL_EXTRAS
               and DISTRIBUTION.get(m, m).lower() not in installed}
    assert not missing, f"add to pyproject's test extra (or a dependency): {sorted(missing)}"


def test_the_getting_started_output_is_ignored_by_git():
    """The README's main job writes sample.h5 in the checkout; it must not show up as an untracked file."""
    text = (REPO / "README.md").read_text()
    outputs = set(re.findall(r"mrl-dna embed data/sample\.fa -o (\S+)", text))
    assert outputs == {"sample.h5"}, outputs
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    for name in (*outputs, *(f"{o}.partial" for o in outputs), *(f"{o}.lock" for o in outputs)):
        r = subprocess.run(["git", "check-ignore", "-q", name], cwd=REPO)
        assert r.returncode == 0, f"{name} is not in .gitignore"
