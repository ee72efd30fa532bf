# SPDX-License-Identifier: MIT
"""conftest.py - shared fixtures of the end-to-end tests.

stack: the whole real stack (PostgreSQL, the five daemons under
groups-supervise, nginx), started once per test session by deploy/stack in
its own directory under /tmp with free ports and debug endpoints on, and
stopped at the end; see stack.py for what it offers.  Tests that stop or
break the stack for good use make_stack for a private one instead.  A
start that fails is an error of every test using the fixture, reported with
the output of deploy/stack and the tails of the logs.
"""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stack import Stack, StackError, bin_dir  # noqa: E402


def _need_binaries():
    missing = [p for p in ("errord", "web", "smtpd", "messageserver", "karl",
                           "groupsadmin", "groups-supervise")
               if not (bin_dir() / p).exists()]
    if missing:
        pytest.fail(f"not built in {bin_dir()}: {', '.join(missing)} "
                    "(run make)", pytrace=False)


def _start(st):
    try:
        st.start()
    except (StackError, OSError) as e:
        st.stop()
        pytest.fail(f"the stack did not start: {e}", pytrace=False)
    # The test stacks' demo group takes posts from anyone, so that tests of
    # SMTP and archiving can post from any address; the posting policy has
    # its own groups in test_posting.py.
    st.sql("UPDATE groups SET who_can_post = 'anyone' WHERE name = 'demo'")
    return st


@pytest.fixture(scope="session")
def stack():
    _need_binaries()
    st = _start(Stack())
    yield st
    st.stop()
    if st.sanitizer_reports:
        pytest.fail("sanitizer reports in the daemons' logs:\n" +
                    "\n".join(st.sanitizer_reports[:20]), pytrace=False)


@pytest.fixture
def make_stack():
    """Factory of private stacks, stopped and removed after the test."""
    _need_binaries()
    made = []

    def make(**kw):
        st = _start(Stack(**kw))
        made.append(st)
        return st
    yield make
    reports = []
    for st in made:
        st.stop()
        reports += st.sanitizer_reports
    if reports:
        pytest.fail("sanitizer reports in the daemons' logs:\n" +
                    "\n".join(reports[:20]), pytrace=False)
