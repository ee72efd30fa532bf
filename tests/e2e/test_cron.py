# SPDX-License-Identifier: MIT
"""The cron programs start with the shared set-up, reach the database and
log a report that reaches errord like the daemons' lines.  bouncer does its
run (docs/bouncer.md) and reports it in one summary line, "N candidate(s)
examined: ..."; the other four count what they would work on and say
"N candidate(s), nothing processed yet".  A bad config exits 2."""
import re
import subprocess
import time

import pytest

from stack import bin_dir

CRON = ["rsscrawler", "instagramcrawler", "bouncer", "expirethreads",
        "senddigests"]

# What each program's report must say.
REPORT = {
    prog: re.compile(re.escape(prog) +
                     r": \d+ candidate\(s\), nothing processed yet$")
    for prog in CRON
}
REPORT["bouncer"] = re.compile(
    r"bouncer: \d+ candidate\(s\) examined: \d+ now bouncing, "
    r"\d+ probe\(s\) sent, \d+ in no group, \d+ bounced, "
    r"\d+ moderator notice\(s\), \d+ old event\(s\) deleted$")


@pytest.mark.parametrize("prog", CRON)
def test_cron_program_runs(stack, prog):
    since = int(time.time()) - 1
    r = subprocess.run([str(bin_dir() / prog), "-f", str(stack.conf)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    ev = stack.wait_errord_event(
        lambda e: REPORT[prog].search(e.get("message", "")), timeout=10,
        daemon=prog, level="info", since=since)
    assert ev, f"no report of {prog} in errord"


@pytest.mark.parametrize("prog", CRON)
def test_cron_bad_config_exits_2(tmp_path, prog):
    bad = tmp_path / "bad.conf"
    bad.write_text("no_such_key = 1\n")
    r = subprocess.run([str(bin_dir() / prog), "-f", str(bad)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "unknown key" in r.stderr
