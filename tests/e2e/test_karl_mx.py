# SPDX-License-Identifier: MIT
"""test_karl_mx.py - karl delivering to each domain's MX (karl_transport =
smtp, no relay): MX and address lookups through dns_resolver, every
address of every MX in preference order, the A/AAAA of a domain without
MX, a domain that does not exist failing for good while a DNS tempfail
defers, opportunistic STARTTLS (and plain text when the handshake
breaks), and the per-domain and total concurrency limits.

One private stack with karl in MX mode and one dnsmasq (tests/e2e/
dnsserver.py) holding every record, several addresses of a name in the
order given.  The servers are real: aiosmtpd sinks (one with STARTTLS and
a self-signed certificate, one whose STARTTLS breaks the handshake, slow
ones that take 200 ms per message and count the transactions they hold
at once) and sockets that accept and close at once, which record the
order karl tried them in.  They listen on port 25 of addresses 127.X.Y.n
picked at random, so another test's servers on 127.0.0.2-4 are never in
the way.  An AAAA record names an IPv4-mapped address (::ffff:127.X.Y.n):
karl connects over an AF_INET6 socket to an IPv4 listener, with no need
for port 25 of ::1.
"""
import asyncio
import collections
import contextlib
import random
import socket
import ssl
import subprocess
import threading
import time

import pytest

from dnsserver import DnsServer
from mailtest import Sink
from stack import wait_for
from test_karl_delivery import (ConfStack, job_status, new_job, rcpt,
                                send_job, start_stack)

from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import SMTP  # noqa: E402

SLOW = 0.2              # seconds a slow sink takes per message
DOMAIN_LIMIT = 3        # karl_domain_concurrency here
MX_ADDR_MAX = 5         # karl_deliver.c: addresses tried in one attempt


def pick_prefix():
    """127.X.Y. with port 25 free on .1 to .30."""
    for _ in range(50):
        prefix = "127.%d.%d." % (random.randint(100, 250),
                                 random.randint(1, 254))
        socks = []
        try:
            for n in range(1, 31):
                s = socket.socket()
                socks.append(s)
                s.bind((prefix + str(n), 25))
            return prefix
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free 127.X.Y.0/24 for port 25")


class Closer:
    """Accepts TCP on (ip, 25) and closes each connection at once; the
    accepts go into the shared log, in order."""

    def __init__(self, ip, log, lock):
        self.ip, self.log, self.lock = ip, log, lock
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, 25))
        self.sock.listen(50)
        self.sock.settimeout(0.1)
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            with self.lock:
                self.log.append(self.ip)
            c.close()

    def close(self):
        self.stop = True
        self.t.join()
        self.sock.close()


class Gauge:
    """Transactions held at once, per sink and in all."""

    def __init__(self):
        self.lock = threading.Lock()
        self.now = collections.Counter()
        self.max = collections.Counter()
        self.total = 0
        self.max_total = 0

    def reset(self):
        with self.lock:
            self.max.clear()
            self.max_total = 0

    def enter(self, name):
        with self.lock:
            self.now[name] += 1
            self.total += 1
            self.max[name] = max(self.max[name], self.now[name])
            self.max_total = max(self.max_total, self.total)

    def leave(self, name):
        with self.lock:
            self.now[name] -= 1
            self.total -= 1


class SlowSink(Sink):
    """A sink that takes SLOW seconds over each message (in DATA, where a
    transaction spends nearly all its time), counted in a Gauge."""

    def __init__(self, name, gauge):
        super().__init__()
        self.name, self.gauge = name, gauge

    async def handle_DATA(self, server, session, envelope):
        self.gauge.enter(self.name)
        try:
            await asyncio.sleep(SLOW)
        finally:
            self.gauge.leave(self.name)
        return await super().handle_DATA(server, session, envelope)


class BrokenTLS(SMTP):
    """Offers STARTTLS, says 220 to it, then sends what is not TLS and
    hangs up: the client's handshake fails."""

    async def smtp_STARTTLS(self, arg):
        self.event_handler.starttls += 1
        await self.push("220 Ready to start TLS")
        self.transport.write(b"this is not a TLS record\r\n")
        self.transport.close()


class BrokenTLSController(Controller):
    def factory(self):
        return BrokenTLS(self.handler, **self.SMTP_kwargs)


class StartTLSSink(Sink):
    def __init__(self):
        super().__init__()
        self.starttls = 0


def karl_config(st, **kv):
    """Set karl's keys (values as str) and restart it when one changed."""
    text = st.conf.read_text()
    changed = False
    for k, v in kv.items():
        if f"\n{k} = {v}\n" not in "\n" + text:
            st.set_conf(k, v)
            changed = True
        text = st.conf.read_text()
    if changed:
        st.restart_karl()


def stats(st):
    return st.get("karl", "/v1/stats", auth=True).json()


def dom_stats(st, domain):
    return stats(st)["domains"].get(domain, {})


@pytest.fixture(scope="module")
def mx(tmp_path_factory):
    """(stack, servers, ips): karl sending to MX hosts, the DNS and the
    servers described at the top."""
    p = pick_prefix()
    ip = {name: p + str(n) for n, name in enumerate(
        ["plain", "tls", "badtls", "slow1", "slow2", "slow3",
         "c1", "c2", "c3", "b1", "b2", "b3", "b4", "b5", "b6", "e1", "e2"],
        1)}
    a = {
        # every address of every MX, in preference order
        "mx1.multi.test": [ip["c1"], ip["c2"]],
        "mx2.multi.test": [ip["c3"], ip["plain"]],
        # more addresses than karl tries in one attempt
        "mx.many.test": [ip[f"b{i}"] for i in range(1, 7)],
        "mxa.equal.test": ip["e1"],
        "mxb.equal.test": ip["e2"],
        # no MX: the domain's own address
        "implicit.test": ip["plain"],
        "mx.tls.test": ip["tls"],
        "mx.badtls.test": ip["badtls"],
        "mx.slow1.test": ip["slow1"],
        "mx.slow2.test": ip["slow2"],
        "mx.slow3.test": ip["slow3"],
    }
    aaaa = {"implicit6.test": "::ffff:" + ip["plain"],
            "mx.six.test": "::ffff:" + ip["plain"]}
    mxs = {
        "multi.test": [(20, "mx2.multi.test"), (10, "mx1.multi.test")],
        "many.test": [(10, "mx.many.test")],
        # two MX of equal preference
        "equal.test": [(10, "mxa.equal.test"), (10, "mxb.equal.test")],
        "literal.test": [(10, ip["plain"])],
        "six.test": [(10, "mx.six.test")],
        "tls.test": [(10, "mx.tls.test")],
        "badtls.test": [(10, "mx.badtls.test")],
        "slow1.test": [(10, "mx.slow1.test")],
        "slow2.test": [(10, "mx.slow2.test")],
        "slow3.test": [(10, "mx.slow3.test")],
        # an MX whose host has no address at all
        "nomxaddr.test": [(10, "gone.nomxaddr.test")],
        # an MX whose host is outside the local zone: REFUSED (tempfail)
        "mxtemp.test": [(10, "mx.tempfail.example")],
    }
    d = tmp_path_factory.mktemp("mxtls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", str(d / "key.pem"), "-out",
                    str(d / "cert.pem"), "-days", "1", "-subj",
                    "/CN=mx.tls.test"], check=True, capture_output=True)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(d / "cert.pem"), str(d / "key.pem"))

    gauge = Gauge()
    log, lock = [], threading.Lock()
    srv = {"plain": Sink(), "tls": StartTLSSink(), "badtls": StartTLSSink(),
           "gauge": gauge, "log": log, "lock": lock}
    ctls = [Controller(srv["plain"], hostname=ip["plain"], port=25),
            Controller(srv["tls"], hostname=ip["tls"], port=25,
                       tls_context=ctx),
            BrokenTLSController(srv["badtls"], hostname=ip["badtls"],
                                port=25, tls_context=ctx)]
    for name in ("slow1", "slow2", "slow3"):
        srv[name] = SlowSink(name, gauge)
        ctls.append(Controller(srv[name], hostname=ip[name], port=25))
    with contextlib.ExitStack() as undo:     # in reverse, whatever fails
        for c in ctls:
            c.start()
            undo.callback(c.stop)
        for n in ip:
            if n[0] in "cbe" and n[1:].isdigit():
                undo.callback(Closer(ip[n], log, lock).close)
        dns = DnsServer(mx=mxs, a=a, aaaa=aaaa, round_robin=False).start()
        undo.callback(dns.stop)
        st = ConfStack(extra_conf={
            "dns_resolver": dns.resolver, "karl_retry_min": "1",
            "karl_retry_max": "2", "karl_smtp_timeout": "10"})
        undo.callback(st.stop)
        start_stack(st)
        karl_config(st, karl_relay_host="", karl_concurrency="20",
                    karl_domain_concurrency=str(DOMAIN_LIMIT))
        yield st, srv, ip
    assert not st.sanitizer_reports, st.sanitizer_reports


def default_limits(st):
    karl_config(st, karl_concurrency="20",
                karl_domain_concurrency=str(DOMAIN_LIMIT))


def bounce_of(st, job):
    """(type, dsn_status, diagnostic) of karl's report for job."""
    rows = st.sql("SELECT type, dsn_status, diagnostic FROM bounce_events "
                  "WHERE karl_job = :'v1'", job)
    return tuple(rows[0]) if len(rows) == 1 else rows


def test_every_address_of_every_mx_in_order(mx):
    """multi.test: MX 10 has two addresses, MX 20 two more; the first
    three hang up at once, the fourth takes the mail, all within one
    attempt (no deferral), in preference order and address order."""
    st, srv, ip = mx
    default_limits(st)
    with srv["lock"]:
        del srv["log"][:]
    job = new_job()
    to = f"m.{job[2:10]}@multi.test"
    send_job(st, job, [rcpt(to, 1)], footer=False)
    assert wait_for(lambda: to in srv["plain"].got, 20), st.log_tails()
    cs = [ip["c1"], ip["c2"], ip["c3"]]
    with srv["lock"]:
        log = [x for x in srv["log"] if x in cs]
    assert log == cs, log
    assert wait_for(lambda: job_status(st, job)["sent"] == 1, 10)
    assert dom_stats(st, "multi.test").get("deferred") == 0


def test_no_mx_a_aaaa_and_literal(mx):
    """Without MX the domain's own A (implicit.test) or AAAA
    (implicit6.test) is the host; an MX with only an AAAA (six.test)
    and an MX named by an address (literal.test) work too.  None of these
    names is known to the system resolver: only dns_resolver has them."""
    st, srv, ip = mx
    default_limits(st)
    job = new_job()
    tos = [f"{d}.{job[2:10]}@{d}" for d in
           ("implicit.test", "implicit6.test", "six.test", "literal.test")]
    send_job(st, job, [rcpt(t, i) for i, t in enumerate(tos)], footer=False)
    assert wait_for(lambda: all(t in srv["plain"].got for t in tos), 20), \
        (job_status(st, job), st.log_tails())
    assert wait_for(lambda: job_status(st, job)["sent"] == 4, 10)
    for d in ("implicit.test", "implicit6.test", "six.test"):
        assert dom_stats(st, d).get("deferred") == 0, d


def test_no_such_domain_fails_for_good(mx):
    """A domain with no MX, A or AAAA (NXDOMAIN) fails at once and is
    reported as a hard bounce, 5.1.2; MX hosts without any address, 5.4.4.
    A DNS tempfail (REFUSED) of the domain, or of its MX host, defers."""
    st, srv, ip = mx
    default_limits(st)
    job = new_job()
    gone = f"x.{job[2:10]}@nosuch.test"
    noaddr = f"y.{job[2:10]}@nomxaddr.test"
    temp = f"z.{job[2:10]}@tempfail.example"
    mxtemp = f"w.{job[2:10]}@mxtemp.test"
    t0 = time.monotonic()
    send_job(st, job, [rcpt(a, i) for i, a in
                       enumerate((gone, noaddr, temp, mxtemp))],
             footer=False)
    assert wait_for(lambda: job_status(st, job)["failed"] == 2, 20), \
        (job_status(st, job), st.log_tails())
    # the reports went through: each one's bounce event
    assert wait_for(lambda: len(st.sql(
        "SELECT 1 FROM bounce_events WHERE karl_job = :'v1'", job)) == 2,
        20), st.log_tails()
    rows = {r[0]: r[1:] for r in st.sql(
        "SELECT email, type, dsn_status, diagnostic FROM bounce_events "
        "WHERE karl_job = :'v1'", job)}
    assert rows[gone][:2] == ["hard", "5.1.2"], rows
    assert "no MX, A or AAAA" in rows[gone][2], rows
    assert rows[noaddr][:2] == ["hard", "5.4.4"], rows
    assert time.monotonic() - t0 < 20
    # the tempfails are tried again, never failed
    assert wait_for(lambda: dom_stats(st, "tempfail.example").get(
        "deferred", 0) >= 2 and dom_stats(st, "mxtemp.test").get(
        "deferred", 0) >= 2, 20), st.log_tails()
    s = job_status(st, job)
    assert (s["failed"], s["sent"]) == (2, 0), s
    for d in ("nosuch.test", "nomxaddr.test"):
        assert dom_stats(st, d).get("deferred") == 0, d


def test_opportunistic_starttls(mx):
    """An MX offering STARTTLS (self-signed) gets the mail over TLS."""
    st, srv, ip = mx
    default_limits(st)
    job = new_job()
    tos = [f"t{i}.{job[2:10]}@tls.test" for i in range(3)]
    send_job(st, job, [rcpt(t, i) for i, t in enumerate(tos)], footer=False)
    assert wait_for(lambda: all(t in srv["tls"].got for t in tos), 20), \
        st.log_tails()
    assert srv["tls"].how == {(True, None)}, srv["tls"].how


def test_broken_tls_falls_back_to_plain(mx):
    """An MX whose STARTTLS handshake breaks still gets the mail, in
    plain text on a fresh connection, within the same attempt."""
    st, srv, ip = mx
    default_limits(st)
    job = new_job()
    tos = [f"b{i}.{job[2:10]}@badtls.test" for i in range(3)]
    send_job(st, job, [rcpt(t, i) for i, t in enumerate(tos)], footer=False)
    assert wait_for(lambda: all(t in srv["badtls"].got for t in tos), 20), \
        (job_status(st, job), st.log_tails())
    assert srv["badtls"].starttls >= 1      # TLS was tried
    assert srv["badtls"].how == {(False, None)}, srv["badtls"].how
    assert wait_for(lambda: job_status(st, job)["sent"] == 3, 10)
    assert dom_stats(st, "badtls.test").get("deferred") == 0


def send_slow(st, srv, counts):
    """Send counts[domain] receivers to each slow domain at once; wait
    until every one arrived.  Returns the seconds it took."""
    job = new_job()
    rs, i = [], 0
    for dom, n in counts.items():
        for k in range(n):
            rs.append(rcpt(f"s{k}.{job[2:10]}@{dom}", i))
            i += 1
    srv["gauge"].reset()
    t0 = time.monotonic()
    send_job(st, job, rs, footer=False)
    assert wait_for(lambda: job_status(st, job)["sent"] == len(rs), 60), \
        (job_status(st, job), st.log_tails())
    return time.monotonic() - t0


def test_domain_concurrency_limit(mx):
    """24 receivers at each of two slow domains (200 ms a message):
    each domain's MX holds exactly karl_domain_concurrency transactions
    at most, and the other domain goes on meanwhile."""
    st, srv, ip = mx
    default_limits(st)
    took = send_slow(st, srv, {"slow1.test": 24, "slow2.test": 24})
    g = srv["gauge"]
    print(f"\n48 copies to two domains in {took:.1f} s; most at once "
          f"{dict(g.max)}, {g.max_total} in all")
    assert g.max["slow1"] == DOMAIN_LIMIT, g.max
    assert g.max["slow2"] == DOMAIN_LIMIT, g.max
    # in parallel: both domains at once, so faster than one after another
    assert g.max_total > DOMAIN_LIMIT, g.max_total
    assert took < 2 * 24 / DOMAIN_LIMIT * SLOW + 5


def test_total_concurrency_limit(mx):
    """karl_concurrency = 4 under three domains allowed 3 each: never
    more than 4 transactions at the three MX hosts together."""
    st, srv, ip = mx
    karl_config(st, karl_concurrency="4",
                karl_domain_concurrency=str(DOMAIN_LIMIT))
    try:
        send_slow(st, srv, {"slow1.test": 12, "slow2.test": 12,
                            "slow3.test": 12})
        g = srv["gauge"]
        print(f"\nmost at once {dict(g.max)}, {g.max_total} in all")
        assert g.max_total == 4, (g.max_total, g.max)
        assert max(g.max.values()) <= DOMAIN_LIMIT, g.max
    finally:
        default_limits(st)


def test_addresses_tried_are_bounded(mx):
    """mx.many.test has six addresses, all hanging up: one attempt tries
    the first MX_ADDR_MAX, in order, and the receiver is deferred.  (Last:
    its retries go on, through the transport, until the stack stops.)"""
    st, srv, ip = mx
    default_limits(st)
    with srv["lock"]:
        del srv["log"][:]
    job = new_job()
    to = f"m.{job[2:10]}@many.test"
    send_job(st, job, [rcpt(to, 1)], footer=False)
    assert wait_for(lambda: dom_stats(st, "many.test").get("deferred", 0)
                    >= 1, 20), st.log_tails()
    with srv["lock"]:
        first = srv["log"][:MX_ADDR_MAX]
        tried = set(srv["log"])
    assert first == [ip[f"b{i}"] for i in range(1, MX_ADDR_MAX + 1)], first
    assert ip["b6"] not in tried
    assert job_status(st, job)["failed"] == 0


def test_equal_preferences_take_turns(mx):
    """equal.test's two MX share a preference, and both hang up: each
    attempt tries both, and the retry starts at the other one (RFC 5321
    5.1: spread over them).  (Last, like the one above.)"""
    st, srv, ip = mx
    default_limits(st)
    es = [ip["e1"], ip["e2"]]
    job = new_job()
    send_job(st, job, [rcpt(f"q.{job[2:10]}@equal.test", 1)], footer=False)

    def tried():
        with srv["lock"]:
            return [x for x in srv["log"] if x in es]
    assert wait_for(lambda: len(tried()) >= 4, 20), (tried(), st.log_tails())
    log = tried()
    assert sorted(log[:2]) == sorted(es), log
    assert log[2:4] == log[1::-1], log
