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

from dnsserver import DnsServer  # noqa: E402
from stack import Stack, StackError, bin_dir  # noqa: E402

# DNS of the test stacks: a real dnsmasq on loopback.  Every name under
# these domains that it has no record for is NXDOMAIN, so the posts of
# the tests (from example.org, example.com...) meet no DMARC policy unless
# a test uses one of the domains below.
TEST_DNS_LOCAL = ("test", "org", "com", "net", "localhost", "invalid")
TEST_DMARC = {
    "_dmarc.reject.test": "v=DMARC1; p=reject",
    "_dmarc.quarantine.test": "v=DMARC1; p=quarantine; pct=100",
    "_dmarc.none.test": "v=DMARC1; p=none",
    "_dmarc.orgreject.test": "v=DMARC1; p=none; sp=reject",
}


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
def test_dns():
    """The session's DNS server (dnsserver.DnsServer)."""
    with DnsServer(txt=TEST_DMARC, local=TEST_DNS_LOCAL) as dns:
        yield dns


@pytest.fixture(scope="session")
def stack(test_dns):
    _need_binaries()
    st = _start(Stack(extra_conf={"dns_resolver": test_dns.resolver}))
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
