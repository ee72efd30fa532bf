# SPDX-License-Identifier: MIT
"""test_karl_delivery.py - karl delivers: footers, list headers, VERP, DKIM,
retries, bounces, a hanging MX, kill -9 in the middle of a big job, and the
maildir transport.

A private stack (karl relaying to a real SMTP server, aiosmtpd, on its relay
port) with two DKIM keys generated here (rsa-sha256 and ed25519-sha256 for
lists.example); each copy is checked as the receiver gets it: its own
footer, List-Unsubscribe and VERP sender (verified like messageserver
does), both signatures verified by python3-dkim against the public keys.
The sink answers per recipient: "later*" 451 the first time, "reject*"
550.  MX mode: dnsmasq gives fast.test and hang.test MX hosts 127.0.0.2
and 127.0.0.3 (port 25), the second accepts TCP and never answers.
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
from mailtest import Sink, dkim_keys, verify_short_token, verify_token
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
    return AuthResult(success=ok, auth_data=auth_data.login.decode())


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
    sink = Sink()
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
    karl_retry_max = 2 s here) until its job is karl_max_age (60 s) old,
    then fails and is reported once."""
    st, sink = relay
    job = new_job()
    addr = f"defer.{job[2:10]}@example.org"
    t0 = time.monotonic()
    send_job(st, job, [rcpt(addr, 1)])
    assert wait_for(lambda: job_status(st, job)["failed"] == 1, 120), \
        st.log_tails()
    took = time.monotonic() - t0
    tries = sink.tries[addr]
    print(f"\nfailed after {took:.0f} s and {tries} attempts")
    assert 55 <= took and tries >= 10
    assert wait_for(lambda: st.get("karl", f"/v1/jobs/{job}/receivers",
                                   auth=True).status == 404, 30)
    time.sleep(3)
    assert sink.tries[addr] == tries    # not tried again


def rss_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_kill9_during_10000_receivers(relay):
    st, sink = relay
    job = new_job()
    n = 10000
    rs = [rcpt(f"k{i}.{job[2:10]}@example.org", i) for i in range(n)]
    before = sink.count
    t0 = time.monotonic()
    send_job(st, job, rs)
    pid = st.pid("karl")
    rss = [rss_kb(pid)]
    want = {r["to"] for r in rs}

    def taken():
        return sum(1 for a in want if a in sink.got)
    while sink.count - before < 3000:
        rss.append(rss_kb(pid))
        time.sleep(0.2)
        assert time.monotonic() - t0 < 120, st.log_tails()
    os.kill(pid, signal.SIGKILL)
    killed_at = sink.count - before
    assert st.wait_new_pid("karl", pid, timeout=20)
    pid = st.pid("karl")
    while taken() < n:
        rss.append(rss_kb(pid))
        time.sleep(0.2)
        assert time.monotonic() - t0 < 300, (taken(), st.log_tails())
    elapsed = time.monotonic() - t0
    dups = sum(len(sink.got[a]) - 1 for a in want)
    print(f"\nkill -9 after {killed_at} deliveries: {n} receivers, "
          f"{dups} duplicates, {elapsed:.1f} s, karl VmRSS max "
          f"{max(rss)} kB, samples {rss[:3]}...{rss[-3:]}")
    # at most the receivers out at once: 4 * karl_concurrency (in flight
    # and the recorder's group commits) + 4 * karl_workers
    assert dups <= 4 * 20 + 4 * 2, dups
    assert wait_for(lambda: job_status(st, job)["sent"] == n, 60)
    if not sanitized(st):       # ASan's quarantine holds freed memory
        assert max(rss) < 200 * 1024, rss


def test_memory_flat_10000(relay):
    """VmRSS while a 10,000-receiver job goes out stays near its start."""
    st, sink = relay
    job = new_job()
    n = 10000
    rs = [rcpt(f"f{i}.{job[2:10]}@example.org", i) for i in range(n)]
    pid = st.pid("karl")
    base = rss_kb(pid)
    sessions = len(sink.sessions)
    send_job(st, job, rs)
    t0 = time.monotonic()
    rss = []
    while job_status(st, job)["sent"] < n:
        rss.append(rss_kb(pid))
        time.sleep(0.2)
        assert time.monotonic() - t0 < 180, st.log_tails()
    rate = n / (time.monotonic() - t0)
    early = max(rss[:max(1, len(rss) // 4)])
    late = max(rss[-max(1, len(rss) // 4):])
    used = len(sink.sessions) - sessions
    print(f"\n10000 receivers at {rate:.0f}/s over {used} SMTP sessions; "
          f"VmRSS start {base} kB, first quarter max {early} kB, last "
          f"quarter max {late} kB")
    assert used <= 2 * 20      # connections are reused
    if not sanitized(st):       # ASan's quarantine grows to 256 MB
        assert late < early + 20 * 1024, (early, late)


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
            assert list((box / r["to"] / "tmp").glob("*")) == []
        assert wait_for(lambda: job_status(st, job)["sent"] == 3, 10)
    finally:
        st.stop()
    assert not st.sanitizer_reports, st.sanitizer_reports
