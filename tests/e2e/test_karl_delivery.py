# SPDX-License-Identifier: MIT
"""test_karl_delivery.py - karl delivers: footers, list headers, VERP, DKIM,
retries and their backoff, bounces, a job kept until its bounce is
reported, /v1/stats and /metrics, a hanging MX, kill -9 three times in a
big job, memory as the job grows, and the maildir transport.

A private stack (karl relaying to a real SMTP server, aiosmtpd, on its relay
port) with two DKIM keys generated here (rsa-sha256 and ed25519-sha256 for
lists.example); each copy is checked as the receiver gets it: its own
footer, List-Unsubscribe and VERP sender (verified like messageserver
does), both signatures verified by python3-dkim against the public keys.
The sink answers per recipient: "later*" 451 the first time, "reject*"
550.  MX mode: dnsmasq gives fast.test and hang.test MX hosts 127.0.0.2
and 127.0.0.3 (port 25), the second accepts TCP and never answers.  A
second private stack (fixture retry: backoff 1 to 8 s) runs the backoff,
connection-failure, bounce-report and stats tests against sinks each test
starts on its relay port.
"""
import base64
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from dnsserver import DnsServer
from mailtest import (Sink, TimedSink, dkim_keyfile, dkim_keys, metrics,
                      verify_dkim_both, verify_short_token, verify_token)
from stack import Stack, wait_for

dkim = pytest.importorskip("dkim")
from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import AuthResult  # noqa: E402

SIGN_DOMAIN = "lists.example"
MESSAGE = (b"From: Alice <alice@lists.example>\nTo: demo@lists.example\n"
           b"Subject: hello\nMessage-ID: <m1@lists.example>\n"
           b"Date: Thu, 03 Dec 2026 17:00:00 +0000\n\nHello world.\n")
FOOTER_TEXT = "-- \nHi {{name}}, leave: {{unsubscribe_url}}"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def keygen(d):
    """RSA and Ed25519 keys in d; returns (dkim_keys value, TXT records)."""
    return dkim_keys(d, SIGN_DOMAIN)


class ConfStack(Stack):
    """A stack whose karl lines are changed after start (karl_relay_host
    cannot be made empty through deploy/stack's environment)."""

    def __init__(self, transport="smtp", **kw):
        super().__init__(**kw)
        self.transport = transport

    def env(self):
        e = super().env()
        e["GROUPS_KARL_TRANSPORT"] = self.transport
        return e

    def set_conf(self, key, value):
        lines = self.conf.read_text().splitlines()
        lines = [ln for ln in lines if not re.match(rf"{key}\s*=", ln)]
        lines.append(f"{key} = {value}")
        self.conf.write_text("\n".join(lines) + "\n")

    def restart_karl(self):
        old = self.pid("karl")
        os.kill(old, signal.SIGKILL)
        assert self.wait_new_pid("karl", old, timeout=20)
        assert self.wait_healthy("karl", timeout=20)


def start_stack(st):
    try:
        st.start()
    except Exception:
        st.stop()
        raise
    return st


@pytest.fixture(scope="module")
def keys():
    d = Path(tempfile.mkdtemp(prefix="karl-dkim-"))
    os.chmod(d, 0o755)
    conf, txt = keygen(d)
    yield conf, txt
    subprocess.run(["rm", "-rf", str(d)])


RELAY_USER, RELAY_PASSWORD = "karl", "s3cret relay"


def relay_auth(server, session, envelope, mechanism, auth_data):
    ok = (auth_data.login.decode(), auth_data.password.decode()) == \
        (RELAY_USER, RELAY_PASSWORD)
    # handled=False on failure: aiosmtpd then answers 535 (with the
    # default it would answer nothing)
    return AuthResult(success=ok, handled=ok,
                      auth_data=auth_data.login.decode())


@pytest.fixture(scope="module")
def relay(keys, test_dns, tmp_path_factory):
    """(stack, sink): karl relaying to aiosmtpd, which requires STARTTLS
    and AUTH; DKIM keys, fast retries."""
    import ssl
    d = tmp_path_factory.mktemp("relay")
    os.chmod(d, 0o755)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", str(d / "key.pem"), "-out",
                    str(d / "cert.pem"), "-days", "1", "-subj",
                    "/CN=localhost"], check=True, capture_output=True)
    (d / "password").write_text(RELAY_PASSWORD + "\n")
    os.chmod(d / "password", 0o644)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(d / "cert.pem"), str(d / "key.pem"))
    st = start_stack(ConfStack(extra_conf={
        "dns_resolver": test_dns.resolver, "dkim_keys": keys[0],
        "karl_retry_min": "1", "karl_retry_max": "2", "karl_max_age": "60",
        "karl_relay_user": RELAY_USER,
        "karl_relay_password_file": str(d / "password")}))
    sink = TimedSink()
    ctl = Controller(sink, hostname="127.0.0.1", port=st.ports["karl_relay"],
                     tls_context=ctx, require_starttls=True,
                     auth_required=True, authenticator=relay_auth)
    ctl.start()
    yield st, sink
    ctl.stop()
    st.stop()
    assert not st.sanitizer_reports, st.sanitizer_reports


def new_job():
    return "d:" + uuid.uuid4().hex


def rcpt(addr, i):
    return {"to": addr, "verp": f"{i}.42",
            "data": {"name": f"Member {i}",
                     "unsubscribe_url": f"https://x.example/u/{i}",
                     "unsubscribe_mailto":
                         f"mailto:demo+unsubscribe-{i}@lists.example"}}


def send_job(st, job, rcpts, message=MESSAGE, footer=True):
    for b in range(0, len(rcpts), 1000):
        body = {"job": job, "batch": b // 1000,
                "last": b + 1000 >= len(rcpts), "kind": "post",
                "receivers": rcpts[b:b + 1000]}
        if b == 0:
            body.update({"message": b64url(message),
                         "sender": {"local": "demo+bounces",
                                    "domain": SIGN_DOMAIN},
                         "sign_domain": SIGN_DOMAIN})
            if footer:
                body["footer"] = {"text": FOOTER_TEXT}
        r = st.post("karl", "/v1/send", body, timeout=60)
        assert r.status == 202, r


def job_status(st, job):
    r = st.get("karl", f"/v1/jobs/{job}", auth=True)
    assert r.status == 200, r
    return r.json()


def verp_ok(st, mail_from, verp):
    """Check the VERP sender as messageserver will: local-token@domain,
    the short token when the verp string allows it (lowercase letters,
    digits, '.', '-'), else the full one."""
    local, domain = mail_from.rsplit("@", 1)
    assert domain == SIGN_DOMAIN and local.startswith("demo+bounces-")
    tok = local[len("demo+bounces-"):]
    if re.fullmatch(r"[a-z0-9.-]{1,32}", verp):
        return verify_short_token(st, "verp", tok) == verp
    return verify_token(st, "verp", tok) == verp


def test_each_receiver_gets_its_own_signed_copy(relay, keys):
    st, sink = relay
    job = new_job()
    rs = [rcpt(f"m{i}.{job[2:10]}@example.org", i) for i in range(4)]
    send_job(st, job, rs)
    assert wait_for(lambda: all(r["to"] in sink.got for r in rs), 30), \
        st.log_tails()
    time.sleep(0.5)
    txt = keys[1]

    def dnsfunc(name, timeout=5):
        n = name.decode() if isinstance(name, bytes) else name
        return txt.get(n if n.endswith(".") else n + ".", "").encode()
    for i, r in enumerate(rs):
        copies = sink.got[r["to"]]
        assert len(copies) == 1
        mail_from, data = copies[0]
        assert verp_ok(st, mail_from, r["verp"]), mail_from
        assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
        text = data.decode()
        assert f"Hi Member {i}, leave: https://x.example/u/{i}" in text
        head = text.split("\r\n\r\n", 1)[0]
        assert (f"List-Unsubscribe: <https://x.example/u/{i}>,\r\n "
                f"<mailto:demo+unsubscribe-{i}@lists.example>") in head
        assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in head
        sigs = re.findall(r"^DKIM-Signature:.*?a=([\w-]+)", head, re.M | re.S)
        algs = re.findall(r"a=(rsa-sha256|ed25519-sha256)", head)
        assert sorted(set(algs)) == ["ed25519-sha256", "rsa-sha256"], sigs
        assert "l=" not in head.split("List-Unsubscribe:")[0]
        for idx in range(2):
            d = dkim.DKIM(data)
            assert d.verify(idx=idx, dnsfunc=dnsfunc), (idx, head)
        # the list headers are covered by the signatures
        assert re.search(r"h=[^;]*list-unsubscribe", head, re.I)
    # STARTTLS (karl_relay_tls = try) and AUTH with the password file
    assert sink.how == {(True, RELAY_USER)}, sink.how
    assert wait_for(lambda: job_status(st, job)["sent"] == 4, 10)
    s = job_status(st, job)
    assert (s["complete"], s["receivers"], s["sent"], s["failed"]) == \
        (True, 4, 4, 0)
    # the job left the spool: receivers gone, status from the tombstone,
    # and a late retry of its batch is a duplicate, not a new job
    assert st.get("karl", f"/v1/jobs/{job}/receivers", auth=True).status \
        == 404
    r = st.post("karl", "/v1/send", {
        "job": job, "batch": 0, "last": True, "kind": "post",
        "message": b64url(MESSAGE),
        "sender": {"local": "demo+bounces", "domain": SIGN_DOMAIN},
        "sign_domain": SIGN_DOMAIN, "receivers": rs})
    assert r.status == 202 and r.json()["duplicate"] is True, r
    time.sleep(1.5)
    assert all(len(sink.got[r["to"]]) == 1 for r in rs)
    stats = st.get("karl", "/v1/stats", auth=True).json()
    assert stats["sent"] >= 4 and stats["domains"]["example.org"]["sent"] >= 4
    # and /metrics, labelled by destination domain
    m = st.get("karl", "/metrics").text
    line = next(x for x in m.splitlines() if x.startswith(
        'karl_domain_sent_total{domain="example.org"}'))
    assert int(line.split()[-1]) >= 4


HTML_MESSAGE = (b"From: Alice <alice@lists.example>\nTo: demo@lists.example\n"
                b"Subject: html\nMIME-Version: 1.0\n"
                b"Content-Type: multipart/alternative; boundary=b1\n\n"
                b"--b1\nContent-Type: text/plain; charset=utf-8\n\n"
                b"Plain body.\n--b1\nContent-Type: text/html; "
                b"charset=utf-8\n\n<html><body><p>HTML body.</p></body>"
                b"</html>\n--b1--\n")


def test_html_and_text_footers(relay):
    """Both parts of multipart/alternative get their footer; the HTML one
    is escaped, the text one is not."""
    import email
    from email import policy
    st, sink = relay
    job = new_job()
    addr = f"html.{job[2:10]}@example.org"
    r = rcpt(addr, 7)
    r["data"]["name"] = "Tom & <Jerry>"
    body = {"job": job, "batch": 0, "last": True, "kind": "post",
            "message": b64url(HTML_MESSAGE),
            "footer": {"text": "-- \nfor {{name}}",
                       "html": "<p class=f>for {{name}}</p>"},
            "sender": {"local": "demo+bounces", "domain": SIGN_DOMAIN},
            "sign_domain": SIGN_DOMAIN, "receivers": [r]}
    assert st.post("karl", "/v1/send", body).status == 202
    assert wait_for(lambda: addr in sink.got, 30), st.log_tails()
    msg = email.message_from_bytes(sink.got[addr][0][1],
                                   policy=policy.default)
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "Plain body." in text and "for Tom & <Jerry>" in text
    assert "HTML body." in html
    assert "<p class=f>for Tom &amp; &lt;Jerry&gt;</p>" in html
    assert html.index("for Tom") < html.index("</body>")


def test_tempfail_then_accept(relay):
    st, sink = relay
    job = new_job()
    addr = f"later.{job[2:10]}@example.org"
    send_job(st, job, [rcpt(addr, 1)])
    assert wait_for(lambda: addr in sink.got, 30), st.log_tails()
    assert sink.tries[addr] == 2 and len(sink.got[addr]) == 1
    assert wait_for(lambda: job_status(st, job)["sent"] == 1, 10)


def test_permanent_failure_reported_once(relay):
    st, sink = relay
    job = new_job()
    addr = f"reject.{job[2:10]}@example.org"
    ok = f"fine.{job[2:10]}@example.org"
    send_job(st, job, [rcpt(addr, 1), rcpt(ok, 2)])
    assert wait_for(lambda: ok in sink.got, 30)
    assert wait_for(lambda: job_status(st, job)["failed"] == 1, 30)
    assert sink.tries[addr] == 1        # 5xx: never tried again
    # the job leaves the spool only once the report went through
    assert wait_for(lambda: st.get("karl", f"/v1/jobs/{job}/receivers",
                                   auth=True).status == 404, 30), \
        st.log_tails()
    s = job_status(st, job)
    assert (s["sent"], s["failed"]) == (1, 1)
    col = st.sql("SELECT count(*) FROM information_schema.columns WHERE "
                 "table_name = 'bounce_events' AND column_name = 'karl_job'")
    if col[0][0] == "1":
        # messageserver stored it: exactly one event for (job, rcpt)
        rows = st.sql("SELECT count(*) FROM bounce_events WHERE "
                      "karl_job = :'v1'", job)
        assert rows[0][0] == "1", rows
    else:
        # this messageserver has no /v1/bounces yet: karl's one report
        # was refused (404) and is not sent again
        ev = st.wait_errord_event(lambda e: addr in e["message"],
                                  timeout=10, daemon="karl",
                                  text="bounce of")
        assert ev is not None
        evs = st.errord_events(daemon="karl", text=f"bounce of {addr}")
        assert len(evs) == 1, evs


def sanitized(st):
    return b"__asan_init" in (st.bin / "karl").read_bytes()


def test_too_old_fails_and_is_reported(relay):
    """A receiver that only ever gets 4xx is retried (backoff at most
    karl_retry_max = 2 s here) until its job is karl_max_age (15 s for
    this test) old, then fails and is reported once."""
    st, sink = relay
    st.set_conf("karl_max_age", "15")
    st.restart_karl()
    try:
        job = new_job()
        addr = f"defer.{job[2:10]}@example.org"
        t0 = time.monotonic()
        send_job(st, job, [rcpt(addr, 1)])
        assert wait_for(lambda: job_status(st, job)["failed"] == 1, 60), \
            st.log_tails()
        took = time.monotonic() - t0
        tries = sink.tries[addr]
        print(f"\nfailed after {took:.0f} s and {tries} attempts")
        assert 14 <= took and tries >= 5
        assert wait_for(lambda: st.get("karl", f"/v1/jobs/{job}/receivers",
                                       auth=True).status == 404, 30)
        time.sleep(3)
        assert sink.tries[addr] == tries    # not tried again
    finally:
        st.set_conf("karl_max_age", "60")
        st.restart_karl()


def rss_kb(pid, field="VmRSS"):
    """A /proc/<pid>/status figure in kB (VmRSS, RssAnon, ...), 0 if the
    process is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0
    for line in lines:
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def stats(st):
    return st.get("karl", "/v1/stats", auth=True).json()


# receivers out at once: 4 * karl_concurrency (in flight and the
# recorder's group commits) + 4 * karl_workers
OUT_MAX = 4 * 20 + 4 * 2


def test_kill9_three_times_during_10000_receivers(relay):
    """kill -9 karl at about 2,000, 5,000 and 8,000 copies of a
    10,000-receiver job (the supervisor restarts it each time): every
    receiver gets the message, and the duplicates each kill causes are at
    most the receivers karl had out just before it (/v1/stats "out")."""
    st, sink = relay
    job = new_job()
    n = 10000
    rs = [rcpt(f"k{i}.{job[2:10]}@example.org", i) for i in range(n)]
    want = {r["to"] for r in rs}
    start = len(sink.order)
    t0 = time.monotonic()
    send_job(st, job, rs)
    pid = st.pid("karl")
    rss = [rss_kb(pid)]
    kills = []                  # (position in sink.order, stats before)

    def mine():
        return sum(1 for a in sink.order[start:] if a in want)
    for at in (2000, 5000, 8000):
        while mine() < at:
            rss.append(rss_kb(pid))
            time.sleep(0.05)
            assert time.monotonic() - t0 < 120, (mine(), st.log_tails())
        before = stats(st)
        os.kill(pid, signal.SIGKILL)
        kills.append((len(sink.order), before))
        assert st.wait_new_pid("karl", pid, timeout=20), st.log_tails()
        pid = st.pid("karl")
    while not all(a in sink.got for a in want):
        rss.append(rss_kb(pid))
        time.sleep(0.2)
        assert time.monotonic() - t0 < 300, (mine(), st.log_tails())
    elapsed = time.monotonic() - t0
    # a copy after the first of its receiver is a duplicate, caused by the
    # last kill before it arrived
    dups = [0] * len(kills)
    seen = set()
    for pos in range(start, len(sink.order)):
        a = sink.order[pos]
        if a not in want:
            continue
        if a in seen:
            k = max(i for i, (p, _) in enumerate(kills) if p <= pos)
            dups[k] += 1
        seen.add(a)
    total = sum(len(sink.got[a]) - 1 for a in want)
    for (p, b), d in zip(kills, dups):
        print(f"\nkill -9 at {p - start} copies: out {b['out']}, in flight "
              f"{b['in_flight']}, {d} duplicates", end="")
    print(f"\n{n} receivers, {total} duplicates in all, {elapsed:.1f} s, "
          f"karl VmRSS max {max(rss)} kB")
    assert sum(dups) == total
    for (p, b), d in zip(kills, dups):
        assert d <= b["out"] <= OUT_MAX, (d, b)
    assert wait_for(lambda: job_status(st, job)["sent"] == n, 60)
    if not sanitized(st):       # ASan's quarantine holds freed memory
        assert max(rss) < 200 * 1024, rss


PAD = "p" * 2000        # receiver data karl holds only while it is out
BATCH = 100             # small batches: intake's own buffers stay small


def run_job(st, n, tag):
    """Send an n-receiver job with 2 kB of data per receiver, in batches
    of BATCH, and wait until it is sent: (peak karl RssAnon, peak VmRSS in kB while it ran,
    copies/s)."""
    job = new_job()
    rs = [rcpt(f"{tag}{i}.{job[2:10]}@example.org", i) for i in range(n)]
    for r in rs:
        r["data"]["pad"] = PAD
    pid = st.pid("karl")
    anon, rss = rss_kb(pid, "RssAnon"), rss_kb(pid)
    t0 = time.monotonic()
    for b in range(0, n, BATCH):
        body = {"job": job, "batch": b // BATCH, "last": b + BATCH >= n,
                "kind": "post", "receivers": rs[b:b + BATCH]}
        if b == 0:
            body.update({"message": b64url(MESSAGE),
                         "footer": {"text": FOOTER_TEXT},
                         "sender": {"local": "demo+bounces",
                                    "domain": SIGN_DOMAIN},
                         "sign_domain": SIGN_DOMAIN})
        assert st.post("karl", "/v1/send", body, timeout=60).status == 202
        anon, rss = max(anon, rss_kb(pid, "RssAnon")), max(rss, rss_kb(pid))
    while job_status(st, job)["sent"] < n:
        anon, rss = max(anon, rss_kb(pid, "RssAnon")), max(rss, rss_kb(pid))
        time.sleep(0.1)
        assert time.monotonic() - t0 < 120, st.log_tails()
    assert st.pid("karl") == pid        # the same karl throughout
    return anon, rss, n / (time.monotonic() - t0)


def test_memory_flat_as_the_job_grows(relay):
    """karl's anonymous memory (RssAnon: its heap and stacks) grows little
    more for a 20,000-receiver job than for a 2,000-receiver one, 2 kB of
    data each: a karl that held a job's receivers would need 36 MB more
    for the big one; measured 7-12 MB (leveldb's two 4 MB memtables fill
    only with the big one).  VmRSS is printed too; it also counts
    leveldb's mmapped table files, which grow with the spool on disk, not
    with what karl holds."""
    st, sink = relay
    sessions = len(sink.sessions)
    pid = st.pid("karl")
    base, base_rss = rss_kb(pid, "RssAnon"), rss_kb(pid)
    small, small_rss, r1 = run_job(st, 2000, "s")
    big, big_rss, r2 = run_job(st, 20000, "b")
    used = len(sink.sessions) - sessions
    print(f"\nkarl RssAnon (VmRSS) idle {base} ({base_rss}) kB; peak over "
          f"2,000 receivers {small} ({small_rss}) kB at {r1:.0f}/s, over "
          f"20,000 {big} ({big_rss}) kB at {r2:.0f}/s; {used} new SMTP "
          "sessions")
    assert used <= 2 * 20      # connections are reused
    if not sanitized(st):       # ASan's quarantine grows to 256 MB
        assert big - base <= (small - base) + 24 * 1024, (base, small, big)


@pytest.fixture(scope="module")
def retry():
    """A stack whose karl retries after 1, 2, 4, 8, 8... s (karl_retry_min
    1, karl_retry_max 8, each +-25%) and relays in plain SMTP to whatever
    a test runs on its relay port; HTTP calls (karl's bounce reports) give
    up after 3 s."""
    st = start_stack(ConfStack(extra_conf={
        "karl_retry_min": "1", "karl_retry_max": "8", "karl_max_age": "600",
        "karl_relay_tls": "no", "http_timeout_ms": "3000"}))
    yield st
    st.stop()
    assert not st.sanitizer_reports, st.sanitizer_reports


class SlowSink(TimedSink):
    """Takes each message after a delay, so karl's receivers queue."""

    async def handle_DATA(self, server, session, envelope):
        import asyncio
        await asyncio.sleep(0.3)
        return await super().handle_DATA(server, session, envelope)


def relay_on(st, sink):
    ctl = Controller(sink, hostname="127.0.0.1", port=st.ports["karl_relay"])
    ctl.start()
    return ctl


def test_backoff_doubles_with_jitter_up_to_max(retry):
    """12 receivers refused (451) five times each: karl's waits between
    attempts are karl_retry_min * 2^(k-1) capped at karl_retry_max (1, 2,
    4, 8, 8 s), each scaled by 0.75..1.25 and truncated to whole seconds
    (backoff() in karl_deliver.c), then the sixth attempt is taken."""
    st = retry
    sink = TimedSink(tempfail=5)
    ctl = relay_on(st, sink)
    try:
        job = new_job()
        addrs = [f"back{i}.{job[2:10]}@example.org" for i in range(12)]
        send_job(st, job, [rcpt(a, i) for i, a in enumerate(addrs)],
                 footer=False)
        assert wait_for(lambda: all(a in sink.got for a in addrs), 90), \
            (dict(sink.tries), st.log_tails())
    finally:
        ctl.stop()
    # karl schedules in whole seconds: next = now + backoff, due once the
    # clock reaches it, so the whole-second gap is the backoff or one more
    # (a second boundary between the reply and its record)
    gaps = [[int(b) - int(a) for a, b in zip(t, t[1:])]
            for t in (sink.rcpt_times[x] for x in addrs)]
    print(f"\nwhole seconds between attempts: {gaps}")
    bounds = [(1, 1), (1, 2), (3, 4), (6, 9), (6, 9)]   # floor(d * .75..1.25)
    for g in gaps:
        assert len(g) == 5, gaps
        for k, (lo, hi) in enumerate(bounds):
            assert lo <= g[k] <= hi + 2, (k, g)
    capped = [g[k] for g in gaps for k in (3, 4)]
    # jitter: without it every wait at 8 s would be 8 s or more
    assert min(capped) <= 7 and max(capped) - min(capped) >= 2, capped
    assert all(len(sink.got[a]) == 1 for a in addrs)
    assert wait_for(lambda: job_status(st, job)["sent"] == 12, 10)


def test_connection_refused_is_retried_then_delivered(retry):
    """Nothing listens on the relay port: the receiver is deferred (not
    failed) attempt after attempt; once a relay listens it goes out."""
    st = retry
    job = new_job()
    addr = f"cf.{job[2:10]}@example.org"
    before = stats(st)["deferred"]
    send_job(st, job, [rcpt(addr, 1)], footer=False)
    assert wait_for(lambda: stats(st)["deferred"] >= before + 2, 30), \
        st.log_tails()
    s = job_status(st, job)
    assert (s["deferred"], s["sent"], s["failed"]) == (1, 0, 0), s
    sink = TimedSink()
    ctl = relay_on(st, sink)
    try:
        assert wait_for(lambda: addr in sink.got, 30), st.log_tails()
        assert len(sink.got[addr]) == 1
        assert wait_for(lambda: job_status(st, job)["sent"] == 1, 10)
    finally:
        ctl.stop()


def test_job_stays_until_its_bounce_is_reported(retry):
    """A receiver fails (550) while messageserver is stopped (SIGSTOP):
    the report cannot be made, so the job stays in the spool with its
    receivers; once messageserver runs again karl's next report goes
    through, exactly one bounce event is
    stored, and only then does the job leave the spool (karl_retry_min,
    1 s here, is shorter than a minute, so the report is retried after
    it)."""
    st = retry
    sink = TimedSink()
    ctl = relay_on(st, sink)
    ms = st.pid("messageserver")
    job = new_job()
    bad, ok = (f"reject.{job[2:10]}@example.org",
               f"fine.{job[2:10]}@example.org")
    reported = stats(st)["reported"]
    os.kill(ms, signal.SIGSTOP)
    try:
        send_job(st, job, [rcpt(bad, 1), rcpt(ok, 2)], footer=False)
        assert wait_for(lambda: ok in sink.got, 30), st.log_tails()
        # the report timed out (http_timeout_ms, retried by httpc)
        assert st.wait_errord_event(
            lambda e: f"bounce of {bad} not reported yet" in e["message"],
            timeout=40, daemon="karl"), st.log_tails()
        s = job_status(st, job)
        assert "queued" in s and (s["complete"], s["sent"], s["failed"]) \
            == (True, 1, 1), s          # the job itself, not a tombstone
        r = st.get("karl", f"/v1/jobs/{job}/receivers", auth=True)
        assert r.status == 200, r
        assert {x["to"]: x["state"] for x in r.json()["receivers"]} == \
            {bad: "failed", ok: "sent"}
        assert stats(st)["reported"] == reported
    finally:
        os.kill(ms, signal.SIGCONT)
        ctl.stop()
    assert wait_for(lambda: st.get("karl", f"/v1/jobs/{job}/receivers",
                                   auth=True).status == 404, 100), \
        st.log_tails()
    s = job_status(st, job)
    assert (s["complete"], s["sent"], s["failed"]) == (True, 1, 1), s
    assert stats(st)["reported"] == reported + 1
    assert st.sql("SELECT count(*) FROM bounce_events WHERE karl_job = "
                  ":'v1' AND lower(email) = lower(:'v2')", job, bad) == \
        [["1"]]
    assert sink.tries[bad] == 1


def test_stats_and_metrics_queue_and_outcomes_by_domain(retry):
    """/v1/stats and /metrics: receivers waiting in the spool
    (spool_pending, karl_spool_jobs) while one is deferred, no job after;
    receivers taken out but not yet in flight (queue, karl_queue_depth)
    while a slow relay holds every session, none after; and a fresh
    domain's sent, deferred and failed counts exactly."""
    st = retry
    sink = SlowSink()
    ctl = relay_on(st, sink)
    try:
        # one receiver refused (452) until the sink takes everything
        job = new_job()
        wait = f"defer.{job[2:10]}@example.org"
        send_job(st, job, [rcpt(wait, 1)], footer=False)
        assert wait_for(lambda: job_status(st, job)["deferred"] == 1, 30)
        assert wait_for(lambda: stats(st)["spool_pending"] >= 1, 10)
        assert metrics(st.get("karl", "/metrics").text)[
            "karl_spool_jobs"] >= 1
        sink.accept_all = True
        assert wait_for(lambda: wait in sink.got, 30), st.log_tails()
        # (spool_pending is as of the scheduler's last full pass, which
        # may be up to IDLE_WAIT, 60 s, old: not checked for 0 here)
        assert wait_for(lambda: metrics(st.get("karl", "/metrics").text)[
            "karl_spool_jobs"] == 0, 20)
        s = stats(st)
        assert (s["queue"], s["out"], s["in_flight"]) == (0, 0, 0), s
        sink.accept_all = False

        # 300 receivers, 20 sessions each taking 0.3 s per copy
        job = new_job()
        many = [rcpt(f"q{i}.{job[2:10]}@example.org", i) for i in range(300)]
        send_job(st, job, many, footer=False)
        seen = []

        def queued():
            s = stats(st)
            m = metrics(st.get("karl", "/metrics").text)
            seen.append((s["queue"], s["in_flight"],
                         m["karl_queue_depth"], m["karl_in_flight"]))
            return s["queue"] > 0 and m["karl_queue_depth"] > 0 and \
                s["in_flight"] > 0
        assert wait_for(queued, 20), seen
        assert max(x[1] for x in seen) <= 20      # karl_concurrency
        assert wait_for(lambda: job_status(st, job)["sent"] == 300, 60)
        assert wait_for(lambda: stats(st)["queue"] == 0 and
                        stats(st)["in_flight"] == 0 and
                        metrics(st.get("karl", "/metrics").text)[
                            "karl_queue_depth"] == 0, 10), stats(st)
        print(f"\nqueue, in flight (stats; metrics) while slow: {seen[-1]}")
    finally:
        ctl.stop()

    # exact outcomes for one destination domain
    sink = TimedSink()
    ctl = relay_on(st, sink)
    try:
        job = new_job()
        dom = f"d{job[2:10]}.example"
        rs = [rcpt(f"ok{i}@{dom}", i) for i in range(4)] + \
            [rcpt(f"later{i}@{dom}", 10 + i) for i in range(3)] + \
            [rcpt(f"reject{i}@{dom}", 20 + i) for i in range(2)]
        send_job(st, job, rs, footer=False)
        assert wait_for(lambda: st.get("karl", f"/v1/jobs/{job}/receivers",
                                       auth=True).status == 404, 30), \
            st.log_tails()
    finally:
        ctl.stop()
    d = stats(st)["domains"][dom]
    assert (d["sent"], d["deferred"], d["failed"]) == (7, 3, 2), d
    assert (d["out"], d["parked"], d["in_flight"]) == (0, 0, 0), d
    m = metrics(st.get("karl", "/metrics").text)
    got = {k: m.get(f'karl_domain_{k}_total{{domain="{dom}"}}')
           for k in ("sent", "deferred", "failed")}
    assert got == {"sent": 7, "deferred": 3, "failed": 2}, got


class HangServer:
    """Accepts TCP on (host, port) and never says anything."""

    def __init__(self, host, port):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(100)
        self.conns = []
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.t.join()
        for c in self.conns:
            c.close()
        self.sock.close()


def test_hanging_mx_does_not_stall_others():
    # two.test's first MX refuses connections: the second takes it at once
    with DnsServer(mx={"fast.test": [(10, "127.0.0.2")],
                       "hang.test": [(10, "127.0.0.3")],
                       "two.test": [(10, "127.0.0.4"), (20, "127.0.0.2")]},
                   local=("test", "example")) as dns:
        st = start_stack(ConfStack(extra_conf={
            "dns_resolver": dns.resolver, "karl_smtp_timeout": "30"}))
        sink = Sink()
        ctl = Controller(sink, hostname="127.0.0.2", port=25)
        hang = HangServer("127.0.0.3", 25)
        try:
            ctl.start()
            st.set_conf("karl_relay_host", "")
            st.restart_karl()
            job = new_job()
            rs = [rcpt(f"h{i}@hang.test", i) for i in range(40)] + \
                [rcpt(f"f{i}@fast.test", i) for i in range(400)] + \
                [rcpt(f"t{i}@two.test", i) for i in range(5)]
            t0 = time.monotonic()
            send_job(st, job, rs, footer=False)
            fast = {r["to"] for r in rs if not r["to"].endswith("hang.test")}
            assert wait_for(lambda: all(a in sink.got for a in fast), 20), \
                (len(sink.got), st.log_tails())
            took = time.monotonic() - t0
            stats = st.get("karl", "/v1/stats", auth=True).json()
            print(f"\n405 to fast.test and two.test in {took:.1f} s while "
                  f"hang.test "
                  f"holds {stats['domains'].get('hang.test')}")
            assert took < 15
            assert stats["domains"]["hang.test"]["in_flight"] <= 10
        finally:
            hang.close()
            ctl.stop()
            st.stop()
    assert not st.sanitizer_reports, st.sanitizer_reports


def test_maildir_transport():
    st = start_stack(ConfStack(transport="maildir"))
    try:
        job = new_job()
        rs = [rcpt(f"md{i}@example.org", i) for i in range(3)]
        send_job(st, job, rs)
        box = st.var / "mail"
        assert wait_for(lambda: all(
            len(list((box / r["to"] / "new").glob("*"))) == 1
            for r in rs), 20), st.log_tails()
        for i, r in enumerate(rs):
            f = next((box / r["to"] / "new").glob("*"))
            text = f.read_text()
            assert f"Hi Member {i}" in text and "Subject: hello" in text
            # a delivery agent's trace lines: the VERP envelope sender
            # and the receiver
            lines = text.splitlines()
            assert lines[0].startswith("Return-Path: <demo+bounces-") and \
                lines[0].endswith("@lists.example>"), lines[0]
            assert lines[1] == f"Delivered-To: {r['to']}", lines[1]
            assert list((box / r["to"] / "tmp").glob("*")) == []
        assert wait_for(lambda: job_status(st, job)["sent"] == 3, 10)
    finally:
        st.stop()
    assert not st.sanitizer_reports, st.sanitizer_reports


class LocalDkimStack(ConfStack):
    """The stack as `make run` makes it: maildir, and DKIM keys for
    localhost made by deploy/stack on the first start."""

    def env(self):
        e = super().env()
        e["GROUPS_LOCAL_DKIM"] = "yes"
        return e


def test_local_stack_signs_with_its_own_keys(tmp_path):
    """deploy/stack's default: keys in var/dkim, dkim_keys in the new
    groups.conf, and every maildir copy (behind its Return-Path) signed
    with both, verified by python3-dkim and libopendkim against the
    public halves it wrote."""
    st = start_stack(LocalDkimStack(transport="maildir"))
    try:
        conf = st.conf.read_text()
        assert f"localhost local-rsa {st.var}/dkim/rsa.pem" in conf, conf
        txt = {}
        for sel, name in (("local-rsa", "rsa"), ("local-ed", "ed25519")):
            der = subprocess.run(
                ["openssl", "pkey", "-pubin", "-in",
                 str(st.var / "dkim" / f"{name}.pub"), "-outform", "DER"],
                check=True, capture_output=True).stdout
            if name == "ed25519":
                der = der[-32:]
            txt[f"{sel}._domainkey.localhost."] = (
                f"v=DKIM1; k={'rsa' if name == 'rsa' else 'ed25519'}; p=" +
                base64.b64encode(der).decode())
        assert oct((st.var / "dkim" / "rsa.pem").stat().st_mode)[-3:] == \
            "600"
        job = new_job()
        body = {"job": job, "batch": 0, "last": True, "kind": "post",
                "message": b64url(MESSAGE.replace(b"lists.example",
                                                  b"localhost")),
                "sender": {"local": "bounces", "domain": "localhost"},
                "sign_domain": "localhost",
                "receivers": [rcpt("signed@example.org", 1)]}
        r = st.post("karl", "/v1/send", body, timeout=60)
        assert r.status == 202, r
        box = st.var / "mail" / "signed@example.org" / "new"
        assert wait_for(lambda: len(list(box.glob("*"))) == 1, 20), \
            st.log_tails()
        data = next(box.glob("*")).read_bytes()
        assert data.startswith(b"Return-Path: <bounces+1.42."), data[:80]
        bad = verify_dkim_both(data, txt,
                               dkim_keyfile(tmp_path / "keys", txt))
        assert bad == [], bad
    finally:
        st.stop()
    assert not st.sanitizer_reports, st.sanitizer_reports
