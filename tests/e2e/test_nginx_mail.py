# SPDX-License-Identifier: MIT
"""Mail through the front door: nginx's mail proxy, then smtpd.

test_smtpd.py speaks to smtpd's backend port and checks the first-RCPT
refusals nginx gets from auth_http; here every session goes through
nginx's public SMTP port, the way senders reach the service: posts with
swaks and smtplib (read back from the archive, with the Received: line
smtpd wrote from nginx's XCLIENT: the clients connect from 127.0.0.2 and
up, so only XCLIENT can have told smtpd, whose TCP peer is nginx at
127.0.0.1, that address), STARTTLS ended by nginx with the
stack's certificate, recipients after the first (smtpd checks those, not
auth_http), and the refusals that must survive the proxy: a bare LF in
DATA, SIZE= over the limit and a message really over it."""
import smtplib
import socket
import ssl
import subprocess
import uuid

import pytest

from test_smtpd import archived


class Session:
    """A raw SMTP session through nginx (smtplib would fix line ends)."""

    def __init__(self, stack):
        self.s = socket.create_connection(
            ("127.0.0.1", stack.ports["smtp_public"]), timeout=60)
        self.f = self.s.makefile("rb")
        code, text = self.reply()
        assert code == 220, text

    def reply(self):
        lines = []
        while True:
            line = self.f.readline().decode("utf-8", "replace")
            if not line:
                return None, "".join(lines)
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return int(line[:3]), "".join(lines)

    def cmd(self, text):
        self.s.sendall(text.encode() + b"\r\n")
        return self.reply()

    def close(self):
        self.s.close()


@pytest.fixture
def session(stack):
    made = []

    def make():
        s = Session(stack)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


def message(subject):
    """(bytes, Message-ID without <>): a post the archive has not seen."""
    msgid = f"nginx-{uuid.uuid4().hex}@example.org"
    raw = (f"From: Alice <alice@example.org>\r\nTo: demo@localhost\r\n"
           f"Subject: {subject}\r\nMessage-ID: <{msgid}>\r\n\r\n"
           f"hello through nginx\r\n").encode()
    return raw, msgid


def assert_archived_via_nginx(stack, msgid, helo, client):
    """The post is archived once, with smtpd's Received: naming the
    client's address, which nginx passed in XCLIENT (client is not
    127.0.0.1, nginx's own address and smtpd's TCP peer)."""
    rows = archived(stack, msgid)
    assert len(rows) == 1, rows
    group, sender, raw = rows[0]
    assert group == "demo" and sender == "alice@example.org"
    received = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[0:3]
    assert received[0].startswith(b"Received: from " + helo.encode()), raw
    assert received[0].endswith(b" [" + client.encode() + b"])"), raw
    assert b"127.0.0.1" not in received[0], raw
    return raw


def ehlo_size(text):
    for line in text.splitlines():
        if line[4:].startswith("SIZE "):
            return int(line[9:])
    raise AssertionError(f"no SIZE in {text!r}")


def test_swaks_post(stack):
    msgid = f"nginx-swaks-{uuid.uuid4().hex}@example.org"
    r = subprocess.run(
        ["swaks", "--server", "127.0.0.1",
         "--port", str(stack.ports["smtp_public"]),
         "--local-interface", "127.0.0.4",
         "--helo", "swaks.example", "--from", "alice@example.org",
         "--to", "demo@localhost", "--header", "Subject: swaks via nginx",
         "--header", f"Message-ID: <{msgid}>",
         "--body", "hello from swaks", "--timeout", "30"],
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "250 2.0.0 Ok: queued as" in r.stdout, r.stdout
    assert_archived_via_nginx(stack, msgid, "swaks.example", "127.0.0.4")


def test_smtplib_post(stack):
    raw, msgid = message("smtplib via nginx")
    with smtplib.SMTP("127.0.0.1", stack.ports["smtp_public"],
                      timeout=30, source_address=("127.0.0.2", 0)) as s:
        s.ehlo("smtplib.example")
        refused = s.sendmail("alice@example.org", ["demo@localhost"], raw)
    assert refused == {}
    assert_archived_via_nginx(stack, msgid, "smtplib.example", "127.0.0.2")


def test_starttls_smtplib(stack):
    """nginx offers STARTTLS with the stack's certificate; the post goes
    on inside TLS and is archived."""
    raw, msgid = message("starttls via nginx")
    with smtplib.SMTP("127.0.0.1", stack.ports["smtp_public"],
                      timeout=30, source_address=("127.0.0.3", 0)) as s:
        code, text = s.ehlo("tls.example")
        assert code == 250 and s.has_extn("starttls"), text
        ctx = ssl.create_default_context()
        ctx.check_hostname = False      # self-signed
        ctx.verify_mode = ssl.CERT_NONE
        code, text = s.starttls(context=ctx)
        assert code == 220, text
        cert = s.sock.getpeercert(binary_form=True)
        assert ssl.DER_cert_to_PEM_cert(cert).split() == \
            (stack.var / "tls" / "cert.pem").read_text().split()
        assert s.sock.version() in ("TLSv1.2", "TLSv1.3")
        code, text = s.ehlo("tls.example")
        assert code == 250 and not s.has_extn("starttls"), text
        refused = s.sendmail("alice@example.org", ["demo@localhost"], raw)
    assert refused == {}
    assert_archived_via_nginx(stack, msgid, "tls.example", "127.0.0.3")


def swaks_has_tls():
    return subprocess.run(["perl", "-MNet::SSLeay", "-e", "1"],
                          capture_output=True).returncode == 0


@pytest.mark.skipif(not swaks_has_tls(),
                    reason="swaks --tls needs Net::SSLeay "
                    "(Debian: libnet-ssleay-perl)")
def test_starttls_swaks(stack):
    msgid = f"nginx-swaks-tls-{uuid.uuid4().hex}@example.org"
    r = subprocess.run(
        ["swaks", "--tls", "--server", "127.0.0.1",
         "--port", str(stack.ports["smtp_public"]),
         "--local-interface", "127.0.0.5",
         "--helo", "swaks-tls.example", "--from", "alice@example.org",
         "--to", "demo@localhost", "--header", "Subject: swaks tls",
         "--header", f"Message-ID: <{msgid}>",
         "--body", "hello over TLS", "--timeout", "30"],
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "TLS started" in r.stdout, r.stdout
    assert "250 2.0.0 Ok: queued as" in r.stdout, r.stdout
    assert_archived_via_nginx(stack, msgid, "swaks-tls.example",
                              "127.0.0.5")


@pytest.mark.parametrize("rcpt,code,esc", [
    ("someone@example.com", 550, "5.7.1"),
    ("no-such-group@localhost", 550, "5.1.1"),
])
def test_later_recipients_checked_by_smtpd(stack, session, rcpt, code, esc):
    """auth_http sees only the first RCPT; smtpd answers the others
    through the proxy, and the message still goes to the good one."""
    c = session()
    assert c.cmd("EHLO client.example")[0] == 250
    assert c.cmd("MAIL FROM:<alice@example.org>")[0] == 250
    got, text = c.cmd("RCPT TO:<demo@localhost>")
    assert got == 250, text
    got, text = c.cmd(f"RCPT TO:<{rcpt}>")
    assert got == code and esc in text, text
    assert c.cmd("DATA")[0] == 354
    raw, msgid = message("later rcpt refused")
    c.s.sendall(raw + b".\r\n")
    got, text = c.reply()
    assert got == 250 and "queued as" in text, text
    assert len(archived(stack, msgid)) == 1


def test_bare_lf_refused(stack, session):
    c = session()
    assert c.cmd("EHLO client.example")[0] == 250
    assert c.cmd("MAIL FROM:<alice@example.org>")[0] == 250
    assert c.cmd("RCPT TO:<demo@localhost>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    msgid = f"nginx-lf-{uuid.uuid4().hex}@example.org"
    c.s.sendall(f"From: alice@example.org\r\nMessage-ID: <{msgid}>\r\n"
                f"Subject: bare lf\r\n\r\nline one\nline two\r\n.\r\n"
                .encode())
    code, text = c.reply()
    assert code == 550 and "5.6.0" in text, text
    # the session goes on after the refusal
    assert c.cmd("RSET")[0] == 250
    assert archived(stack, msgid) == []


def test_size_parameter_over_limit(stack, session):
    """nginx answers MAIL itself and replays it to smtpd after auth_http:
    smtpd's 552 for SIZE= over the limit reaches the client."""
    c = session()
    code, text = c.cmd("EHLO client.example")
    limit = ehlo_size(text)
    assert c.cmd(f"MAIL FROM:<alice@example.org> SIZE={limit + 1}")[0] \
        == 250
    code, text = c.cmd("RCPT TO:<demo@localhost>")
    assert code == 552 and "5.3.4" in text, text


def test_oversize_message_refused(stack, session):
    """Data really over the limit (the SIZE nginx advertises, which is
    smtpd_max_message) is read to the final dot and refused with 552."""
    c = session()
    code, text = c.cmd("EHLO client.example")
    limit = ehlo_size(text)
    assert c.cmd("MAIL FROM:<alice@example.org>")[0] == 250
    assert c.cmd("RCPT TO:<demo@localhost>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    msgid = f"nginx-big-{uuid.uuid4().hex}@example.org"
    c.s.sendall(f"From: alice@example.org\r\nMessage-ID: <{msgid}>\r\n"
                f"Subject: too big\r\n\r\n".encode())
    line = b"x" * 998 + b"\r\n"
    chunk = line * 1024
    sent = 0
    while sent <= limit:
        c.s.sendall(chunk)
        sent += len(chunk)
    c.s.sendall(b".\r\n")
    code, text = c.reply()
    assert code == 552 and "5.3.4" in text, text
    assert c.cmd("QUIT")[0] == 221
    assert archived(stack, msgid) == []


def smtpd_counter(stack, name):
    r = stack.get("smtpd", "/metrics")
    assert r.status == 200
    for line in r.text.splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    return 0


def test_replayed_rcpt_uses_auth_lookup(stack, session):
    """nginx replays the first RCPT right after auth_http routed it: smtpd
    takes that answer instead of asking messageserver again, only for a
    session nginx introduced with XCLIENT.  A session without auth_http
    before it is looked up as always.  (Exact counts need one RCPT per
    session: an answer whose RCPT nginx never replayed, after a refused
    MAIL, stays usable by the same client for a few seconds.)"""
    name = "smtpd_rcpts_from_auth_total"
    before = smtpd_counter(stack, name)
    raw, msgid = message("auth lookup reused")
    with smtplib.SMTP("127.0.0.1", stack.ports["smtp_public"],
                      timeout=30) as s:
        s.ehlo("client.example")
        assert s.sendmail("alice@example.org", ["demo@localhost"],
                          raw) == {}
    assert smtpd_counter(stack, name) == before + 1
    assert len(archived(stack, msgid)) == 1
    # straight to smtpd, as nginx would after XCLIENT, but with no
    # auth_http before it: asked again, so nothing is taken (an address
    # of our own: auth_http's answers are kept per client for seconds)
    client = f"203.0.113.{uuid.uuid4().int % 250 + 1}"
    c = Session.__new__(Session)
    c.s = socket.create_connection(
        ("127.0.0.1", stack.ports["smtpd_smtp"]), timeout=30)
    c.f = c.s.makefile("rb")
    try:
        assert c.reply()[0] == 220
        assert c.cmd(f"XCLIENT ADDR={client} NAME=[UNAVAILABLE]")[0] \
            == 220
        assert c.cmd("EHLO client.example")[0] == 250
        assert c.cmd("MAIL FROM:<alice@example.org>")[0] == 250
        assert c.cmd("RCPT TO:<demo@localhost>")[0] == 250
        code, text = c.cmd("RCPT TO:<no-such-group@localhost>")
        assert code == 550 and "5.1.1" in text, text
    finally:
        c.close()
    assert smtpd_counter(stack, name) == before + 1
