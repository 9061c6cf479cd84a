"""stderr talk (mrl_dna/console.py): the run footer's wall time and how counts read."""

from __future__ import annotations

import re
import subprocess
import sys

from mrl_dna import console

from conftest import REPO


def test_footer_real_time_counts_the_process_start_up():
    """Issue 22: `real` left out Python's, torch's and the model's start-up (0.2 s printed for a 2.4 s run):
    the `mrl-dna` command's clock starts with the process (here 1.5 s of "start-up" before the CLI runs)."""
    code = ("import time; time.sleep(1.5)\n"
            "from mrl_dna import console\n"
            "console.start_run(whole_process=True)\n"
            "print(console.Timer().seconds)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    assert 1.5 <= float(r.stdout) < 60, r.stdout


def test_a_command_run_in_process_times_itself_not_its_host():
    console.start_run(whole_process=False)
    try:
        assert console.Timer().seconds < 5  # not the age of the test process
    finally:
        console.start_run(whole_process=False)


def test_counts_are_singular_for_one_and_grouped_by_thousands():
    assert console.count(1, "record") == "1 record"
    assert console.count(0, "record") == "0 records"
    assert console.count(3000, "query", "queries") == "3,000 queries"
    assert console.count(1, "query", "queries") == "1 query"


def test_footers_say_1_record_1_query_1_hit(tmp_path, cli, tiny_model_dir):
    """"1 records", "1 queries x 1 rows in 1 file(s) ... 1 hits", "(1.0x fewer than exact at full width)"."""
    fa = tmp_path / "one.fa"
    fa.write_text(">a\n" + "ACGTTGCA" * 40 + "\n")
    code, _, err = cli("embed", fa, "-o", tmp_path / "one.h5", "-m", tiny_model_dir)
    assert code == 0, err
    foot = err.splitlines()[-1]
    assert "] 1 record, 320 bp, 2 windows (0 mostly-N skipped)" in foot, foot
    # (on a busy machine auto threads adds its note "(1 thread: ...)" after "on cpu")
    m = re.search(r"; ([\d,]+) kbp/s on cpu(?: \([^)]*\))?; real ([\d.]+) s;", foot)
    assert m, foot
    code, _, err = cli("search", fa, tmp_path / "one.h5", "-k", "1")
    assert code == 0, err
    foot = err.splitlines()[-1]
    assert "] 1 query x 1 row in 1 file, exact at dim 16: 1 hit; " in foot, foot
    assert "multiply-adds per query (as many as exact at full width)" in foot, foot
