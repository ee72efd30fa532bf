# SPDX-License-Identifier: MIT
"""The cron programs start with the shared set-up, reach the database and
report; their lines reach errord like the daemons'.  A bad config exits 2."""
import subprocess

import pytest

from stack import bin_dir

CRON = ["rsscrawler", "instagramcrawler", "bouncer", "expirethreads",
        "senddigests"]


@pytest.mark.parametrize("prog", CRON)
def test_cron_program_runs(stack, prog):
    r = subprocess.run([str(bin_dir() / prog), "-f", str(stack.conf)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    ev = stack.wait_errord_event(
        lambda e: "candidate(s)" in e.get("message", ""), timeout=10,
        daemon=prog, level="info")
    assert ev, f"no report of {prog} in errord"


@pytest.mark.parametrize("prog", CRON)
def test_cron_bad_config_exits_2(tmp_path, prog):
    bad = tmp_path / "bad.conf"
    bad.write_text("no_such_key = 1\n")
    r = subprocess.run([str(bin_dir() / prog), "-f", str(bad)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "unknown key" in r.stderr
