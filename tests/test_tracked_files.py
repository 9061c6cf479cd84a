"""What the tracked files of the checkout may not hold."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from conftest import REPO

# absolute folders of the machines the project ran on (written in pieces so that this file does not match)
MACHINE_PATH = re.compile("/(" + "|".join(("work", "tmp", "root", "home")) + ")/")


def test_no_tracked_text_file_names_a_machine_path():
    """Benchmark JSON, RESULTS and docstrings named the work and temp folders of the machine that ran them: a
    newcomer's checkout has none of them."""
    if not shutil.which("git") or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True).stdout
    bad = []
    for name in files.decode().split("\0"):
        path = REPO / name
        if not name or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:  # binary (weights, images)
            continue
        for n, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            if MACHINE_PATH.search(line):
                bad.append(f"{name}:{n}: {line.strip()[:120]}")
    assert not bad, "machine paths in tracked files:\n" + "\n".join(bad)
