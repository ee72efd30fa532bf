# SPDX-License-Identifier: MIT
"""The cmocka tests of the PostgreSQL pool (tests/unit/test_db.c) need a
server; `make unit` has none, so they run here against the stack's private
cluster, with every test required to run (none skipped)."""
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("GROUPS_BIN", REPO / "build" / "bin"))


def test_db_unit_tests_against_real_postgres(stack):
    conninfo = subprocess.run(
        [str(BIN / "errord"), "-f", str(stack.conf), "-n"],
        capture_output=True, text=True, check=True).stdout
    conninfo = next(line.split(" = ", 1)[1] for line in conninfo.splitlines()
                    if line.startswith("db_conninfo = "))
    test = BIN.parent / "tests" / "test_db"
    assert test.exists(), f"{test} is not built (make e2e builds it)"
    env = dict(os.environ, GROUPS_TEST_PG_CONNINFO=conninfo)
    r = subprocess.run([str(test)], env=env, capture_output=True, text=True,
                       timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "SKIPPED" not in out, out
    assert "PASSED" in out, out
