# SPDX-License-Identifier: MIT
"""smtpd's SMTP front, spoken to directly on its backend port.

Against the shared stack: the command state machine, bounded lines, clear
replies to bad commands and parameters, XCLIENT only from the allow-list.
Against private smtpd instances (build/bin/smtpd -d with their own config)
that talk to the shared stack's real messageserver (same secret file): the
recipient routing, the end of DATA, the size bound, the SMTP smuggling
defence, the recipient limit and the Received: header are checked end to
end, what was handed over read back from the archive (the messages table);
a closed messageserver port (451 4.3.0 at RCPT); a messageserver whose
database is down at the end of DATA (a private stack: 451 4.3.0);
connection limits; timeouts and deadlines; commands without progress; the
DATA line bound; STARTTLS with a self-signed certificate."""
import os
import re
import select
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from stack import bin_dir, free_ports, http_request, wait_for
from test_inbound import sql


class Smtp:
    def __init__(self, port, source="127.0.0.1"):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10,
                                          source_address=(source, 0))
        self.f = self.s.makefile("rb")

    def reply(self):
        """One whole reply, possibly multi-line: (code, text)."""
        lines = []
        while True:
            line = self.f.readline()
            if not line:
                return None, "\n".join(lines)
            line = line.decode().rstrip("\r\n")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return int(line[:3]), "\n".join(lines)

    def send(self, data):
        self.s.sendall(data if isinstance(data, bytes) else data.encode())

    def cmd(self, text):
        self.send(text.encode() + b"\r\n")
        return self.reply()

    def closed(self):
        try:
            return self.s.recv(1) == b""
        except (ConnectionResetError, socket.timeout):
            return True

    def close(self):
        self.s.close()


def connect(port, source="127.0.0.1"):
    c = Smtp(port, source)
    code, text = c.reply()
    assert code == 220, text
    return c


@pytest.fixture
def smtp(stack):
    conns = []

    def make(source="127.0.0.1"):
        c = connect(stack.ports["smtpd_smtp"], source)
        conns.append(c)
        return c
    yield make
    for c in conns:
        c.close()
    assert stack.get("smtpd", "/healthz").status == 200


# --- private smtpd instances, talking to the real messageserver ------------

class PrivateSmtpd:
    def __init__(self, tmp, ms_port, secret_file, **keys):
        """ms_port: a messageserver's port, or None for a closed one."""
        self.tmp = Path(tmp)
        self.http_port, self.port, closed, closed_ms = free_ports(4)
        (self.tmp / "crash").mkdir(exist_ok=True)
        conf = {
            "var_dir": str(self.tmp),
            "crash_dir": str(self.tmp / "crash"),
            "secret_file": str(secret_file),
            "user": os.environ.get("USER") or
            __import__("pwd").getpwuid(os.getuid()).pw_name,
            "domain": "localhost",
            "listen_host": "127.0.0.1",
            "errord_port": closed,
            "smtpd_port": self.http_port,
            "smtpd_smtp_port": self.port,
            "messageserver_port": ms_port or closed_ms,
            "http_timeout_ms": 2000,
        }
        conf.update(keys)
        self.conf = self.tmp / "smtpd.conf"
        self.conf.write_text("".join(f"{k} = {v}\n" for k, v in conf.items()))
        self.log = open(self.tmp / "smtpd.log", "wb")
        self.proc = subprocess.Popen(
            [str(bin_dir() / "smtpd"), "-d", "-f", str(self.conf)],
            stdout=self.log, stderr=subprocess.STDOUT)
        if not wait_for(self.listening, 10) or self.proc.poll() is not None:
            self.stop()
            raise AssertionError("private smtpd did not start:\n" +
                                 (self.tmp / "smtpd.log").read_text())

    def listening(self):
        if self.proc.poll() is not None:
            return True
        try:
            socket.create_connection(("127.0.0.1", self.port), 0.2).close()
            return True
        except OSError:
            return False

    def connect(self, source="127.0.0.1"):
        return connect(self.port, source)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture
def private_smtpd(stack):
    """Factory of private smtpd instances.  They use the stack's secret file
    and, unless messageserver=False (a closed port), its messageserver."""
    made = []
    tmps = []

    def make(messageserver=True, **keys):
        tmp = tempfile.TemporaryDirectory(prefix="smtpd-e2e-")
        tmps.append(tmp)
        ms_port = stack.ports["messageserver"] if messageserver else None
        p = PrivateSmtpd(tmp.name, ms_port, stack.var / "secret", **keys)
        made.append(p)
        return p
    yield make
    for p in made:
        assert p.stop() == 0, (p.tmp / "smtpd.log").read_text()
    for t in tmps:
        t.cleanup()


def envelope(c, rcpts=("demo@localhost",), mail="MAIL FROM:<alice@example.org>"):
    assert c.cmd("EHLO client.example")[0] == 250
    assert c.cmd(mail)[0] == 250
    for r in rcpts:
        code, text = c.cmd(f"RCPT TO:<{r}>")
        assert code == 250, text


MSG = (b"From: alice@example.org\r\nTo: demo@localhost\r\n"
       b"Subject: hi\r\n\r\nhello\r\n")


def unique_msg(headers=b"From: alice@example.org\r\n", body=b"hello\r\n"):
    """(message bytes, Message-ID without <>): a message the archive has
    never seen."""
    msgid = f"smtpd-{uuid.uuid4().hex}@example.org"
    raw = (headers + b"To: demo@localhost\r\nSubject: smtpd test " +
           msgid[6:14].encode() + b"\r\nMessage-ID: <" + msgid.encode() +
           b">\r\n\r\n" + body)
    return raw, msgid


def archived(stack, msgid):
    """[(group, from_address, raw bytes)] of the archived messages with
    this Message-ID."""
    rows = sql(stack, "SELECT g.name, m.from_address, encode(m.raw, 'hex') "
               "FROM messages m JOIN groups g ON g.id = m.group_id "
               "WHERE m.message_id = :'v1'", msgid)
    return [(g, f, bytes.fromhex(r)) for g, f, r in rows]


# --- the shared stack: commands and their syntax ----------------------------

def test_ehlo_advertises_extensions(smtp):
    c = smtp()
    code, text = c.cmd("EHLO client.example")
    assert code == 250
    for ext in ("PIPELINING", "SIZE ", "8BITMIME", "SMTPUTF8",
                "ENHANCEDSTATUSCODES"):
        assert ext in text
    assert "XCLIENT" in text            # 127.0.0.1 is on the allow-list
    assert "STARTTLS" not in text       # no certificate configured


def test_sequence_errors(smtp):
    c = smtp()
    code, text = c.cmd("MAIL FROM:<alice@example.org>")
    assert code == 503 and "5.5.1" in text
    assert c.cmd("HELO client.example")[0] == 250
    assert c.cmd("RCPT TO:<demo@localhost>")[0] == 503
    assert c.cmd("DATA")[0] == 503
    assert c.cmd("MAIL FROM:<>")[0] == 250      # the null sender
    assert c.cmd("MAIL FROM:<a@example.org>")[0] == 503
    code, text = c.cmd("DATA")
    assert code == 554 and "5.5.1" in text      # no recipients
    assert c.cmd("RSET")[0] == 250
    assert c.cmd("QUIT")[0] == 221


@pytest.mark.parametrize("cmd,code,esc", [
    ("MAIL FROM:alice@example.org", 501, "5.1.7"),
    ("MAIL FROM:<alice@example.org", 501, "5.1.7"),
    ("MAIL TO:<alice@example.org>", 501, "5.5.2"),
    ("MAIL FROM:<alice@@example.org>", 501, "5.1.7"),
    ("MAIL FROM:<" + "a" * 65 + "@example.org>", 501, "5.1.7"),
    ("MAIL FROM:<alice@example.org> FOO=bar", 555, "5.5.4"),
    ("MAIL FROM:<alice@example.org> BODY=9BIT", 501, "5.5.4"),
    ("MAIL FROM:<alice@example.org> SIZE=abc", 501, "5.5.4"),
    ("MAIL FROM:<alice@example.org> SIZE=999999999999", 552, "5.3.4"),
    ("MAIL FROM:<alice@example.org> SMTPUTF8=yes", 555, "5.5.4"),
])
def test_mail_syntax(smtp, cmd, code, esc):
    c = smtp()
    c.cmd("EHLO client.example")
    got, text = c.cmd(cmd)
    assert got == code and esc in text, text


def test_mail_parameters_accepted(smtp):
    c = smtp()
    c.cmd("EHLO client.example")
    code, text = c.cmd("MAIL FROM:<alice@example.org> SIZE=1000 "
                       "BODY=8BITMIME SMTPUTF8")
    assert code == 250, text
    code, text = c.cmd("RCPT TO:<demo@localhost> NOTIFY=NEVER")
    assert code == 555 and "5.5.4" in text


def test_informational_commands(smtp):
    c = smtp()
    assert c.cmd("HELP")[0] == 214
    code, text = c.cmd("VRFY demo@localhost")   # refused, like EXPN
    assert code == 502 and "5.5.1" in text, text
    code, text = c.cmd("EXPN demo@localhost")
    assert code == 502 and "5.5.1" in text, text
    assert c.cmd("NOOP")[0] == 250
    assert c.cmd("STARTTLS")[0] == 502          # not configured


def test_unknown_command(smtp):
    c = smtp()
    code, text = c.cmd("FROB")
    assert code == 502 and "5.5.2" in text
    assert c.cmd("NOOP")[0] == 250      # the session goes on


def test_overlong_command_line(smtp):
    c = smtp()
    code, text = c.cmd("NOOP " + "x" * 600)
    assert code == 500 and "too long" in text.lower()
    assert c.cmd("NOOP")[0] == 250


def test_unterminated_line_is_bounded(smtp):
    c = smtp()
    c.send(b"x" * 5000)                 # no CRLF ever
    code, text = c.reply()
    assert code == 500 and "too long" in text.lower()
    assert c.closed()


def test_too_many_errors_end_the_session(smtp):
    c = smtp()
    for _ in range(9):
        assert c.cmd("BOGUS")[0] == 502
    code, _ = c.cmd("BOGUS")
    assert code == 502
    code, text = c.reply()
    assert code == 421, text
    assert c.closed()


def test_nul_in_command(smtp):
    c = smtp()
    code, _ = c.cmd("NOOP \x00 x")
    assert code == 500


def test_xclient_from_allowed_host(smtp):
    c = smtp()
    code, text = c.cmd("XCLIENT ADDR=192.0.2.7 NAME=[UNAVAILABLE]")
    assert code == 220, text
    assert c.cmd("EHLO client.example")[0] == 250


def test_xclient_bad_addr(smtp):
    c = smtp()
    code, _ = c.cmd("XCLIENT ADDR=not-an-address")
    assert code == 501


def test_xclient_refused_from_other_hosts(smtp):
    c = smtp("127.0.0.2")                # not in smtpd_xclient_hosts
    code, text = c.cmd("EHLO client.example")
    assert "XCLIENT" not in text
    code, text = c.cmd("XCLIENT ADDR=192.0.2.7")
    assert code == 550 and "5.7.0" in text


# --- private smtpd with the stack's messageserver ---------------------------

def test_routing_replies(private_smtpd):
    p = private_smtpd()
    c = p.connect()
    c.cmd("EHLO client.example")
    c.cmd("MAIL FROM:<alice@example.org>")
    code, text = c.cmd("RCPT TO:<demo@localhost>")
    assert code == 250 and "2.1.5" in text
    code, text = c.cmd("RCPT TO:<demo+subscribe@localhost>")   # a command
    assert code == 250 and "2.1.5" in text
    code, text = c.cmd("RCPT TO:<nosuch@localhost>")
    assert code == 550 and "5.1.1" in text
    code, text = c.cmd("RCPT TO:<someone@example.com>")
    assert code == 550 and "5.7.1" in text and "relay" in text
    # messageserver unreachable: the recipient cannot be checked now
    c = private_smtpd(messageserver=False).connect()
    c.cmd("EHLO client.example")
    c.cmd("MAIL FROM:<alice@example.org>")
    code, text = c.cmd("RCPT TO:<demo@localhost>")
    assert code == 451 and "4.3.0" in text


def test_message_is_handed_over(stack, private_smtpd):
    p = private_smtpd(smtpd_hostname="mx.test")
    c = p.connect()
    assert c.cmd("XCLIENT ADDR=192.0.2.7 NAME=client.example")[0] == 220
    envelope(c, rcpts=("demo@localhost",))
    assert c.cmd("DATA")[0] == 354
    # no From: header, so the archive takes the envelope sender
    raw, msgid = unique_msg(headers=b"")
    c.send(raw + b"..leading dot\r\n.\r\n")
    code, text = c.reply()
    assert code == 250 and "queued as" in text, text
    rows = archived(stack, msgid)
    assert [(g, f) for g, f, _ in rows] == [("demo", "alice@example.org")]
    stored = rows[0][2]
    assert stored.startswith(b"Received: from client.example "
                             b"(client.example [192.0.2.7])\r\n\tby mx.test")
    assert b"for <demo@localhost>" in stored.split(b"\r\n\r\n")[0]
    assert stored.endswith(raw + b".leading dot\r\n")     # unstuffed
    # and the session goes on.  A refusal (422): the recipient routed at
    # RCPT time (a forward rule) but no longer does at the end of DATA.
    local = f"fwd-{uuid.uuid4().hex[:12]}"
    sql(stack, "INSERT INTO forward_rules (domain, local_part, "
        "target_address) VALUES ('localhost', :'v1', 'admin@example.org')",
        local)
    try:
        envelope(c, rcpts=(f"{local}@localhost",), mail="MAIL FROM:<>")
    finally:
        sql(stack, "DELETE FROM forward_rules WHERE domain = 'localhost' "
            "AND local_part = :'v1'", local)
    assert c.cmd("DATA")[0] == 354
    raw, msgid = unique_msg()
    c.send(raw + b".\r\n")
    code, text = c.reply()
    assert code == 554 and "5.6.0" in text and "no valid recipient" in text
    assert archived(stack, msgid) == []
    assert c.cmd("QUIT")[0] == 221


def test_smtplib_pipelined(stack, private_smtpd):
    p = private_smtpd()
    raw, msgid = unique_msg()
    with smtplib.SMTP("127.0.0.1", p.port, timeout=10) as s:
        refused = s.sendmail("alice@example.org",
                             ["demo@localhost", "nosuch@localhost"], raw)
        assert list(refused) == ["nosuch@localhost"]
    rows = archived(stack, msgid)
    assert [g for g, _, _ in rows] == ["demo"]
    assert b"for <demo@localhost>" in rows[0][2].split(b"\r\n\r\n")[0]


def test_bare_lf_in_data_is_refused(stack, private_smtpd):
    p = private_smtpd()
    c = p.connect()
    envelope(c)
    assert c.cmd("DATA")[0] == 354
    raw1, id1 = unique_msg(body=b"line one\nline two\r\n")
    c.send(raw1 + b".\r\n")
    code, text = c.reply()
    assert code == 550 and "5.6.0" in text
    envelope(c, mail="MAIL FROM:<b@example.org>")
    assert c.cmd("DATA")[0] == 354
    raw2, id2 = unique_msg(body=b"bare CR\r here\r\n")
    c.send(raw2 + b".\r\n")
    code, text = c.reply()
    assert code == 550 and "5.6.0" in text
    assert archived(stack, id1) == [] and archived(stack, id2) == []


def test_smuggled_end_of_data_does_not_end_it(stack, private_smtpd):
    p = private_smtpd()
    c = p.connect()
    envelope(c)
    assert c.cmd("DATA")[0] == 354
    # "\n.\n" and "\n.\r\n" must not end DATA: what follows is data, not
    # a second, smuggled transaction.
    raw, msgid = unique_msg(body=b"hello\n.\nMAIL FROM:<evil@example.org>\r\n"
                            b"RCPT TO:<demo@localhost>\r\nDATA\r\n\n.\r\n"
                            b"smuggled\r\n")
    c.send(raw)
    readable, _, _ = select.select([c.s], [], [], 1)
    assert readable == []               # no reply yet: still in DATA
    c.send(b".\r\n")
    code, text = c.reply()
    assert code == 550 and "5.6.0" in text
    assert c.cmd("NOOP")[0] == 250
    assert archived(stack, msgid) == []


def test_size_limits(stack, private_smtpd):
    p = private_smtpd(smtpd_max_message=2048)
    c = p.connect()
    code, text = c.cmd("EHLO client.example")
    assert "SIZE 2048" in text
    code, text = c.cmd("MAIL FROM:<a@example.org> SIZE=4096")
    assert code == 552 and "5.3.4" in text
    envelope(c, mail="MAIL FROM:<a@example.org> SIZE=100")
    assert c.cmd("DATA")[0] == 354
    raw, msgid = unique_msg(body=(b"x" * 70 + b"\r\n") * 100 +
                            b"x" * 20000 + b"\r\n")
    c.send(raw + b".\r\n")
    code, text = c.reply()
    assert code == 552 and "5.3.4" in text
    assert c.cmd("NOOP")[0] == 250      # read to the final dot
    assert archived(stack, msgid) == []


def test_recipient_limit(private_smtpd):
    p = private_smtpd(smtpd_max_rcpts=3)
    c = p.connect()
    envelope(c, rcpts=("demo@localhost", "demo+owner@localhost",
                       "demo+subscribe@localhost"))
    code, text = c.cmd("RCPT TO:<demo+unsubscribe@localhost>")
    assert code == 452 and "4.5.3" in text


def test_messageserver_down(private_smtpd):
    p = private_smtpd(messageserver=False)      # a closed port
    c = p.connect()
    c.cmd("EHLO client.example")
    c.cmd("MAIL FROM:<alice@example.org>")
    code, text = c.cmd("RCPT TO:<demo@localhost>")
    assert code == 451 and "4.3.0" in text


def test_messageserver_fails_at_end_of_data(make_stack, tmp_path):
    """RCPT checked, then messageserver cannot store the message (its
    database is down: 503): 451 4.3.0, so the sender retries.  A private
    stack, since the shared one's PostgreSQL must stay up."""
    st = make_stack()
    p = PrivateSmtpd(tmp_path, st.ports["messageserver"], st.var / "secret")
    try:
        c = p.connect()
        envelope(c)
        assert c.cmd("DATA")[0] == 354
        opts = (st.pg_datadir() / "postmaster.opts").read_text().strip()
        opts = opts.split(" ", 1)[1]
        r = st.pg_ctl("stop", "-m", "fast", "-w", "-t", "30")
        assert r.returncode == 0, r.stdout
        try:
            raw, _ = unique_msg()
            c.send(raw + b".\r\n")
            code, text = c.reply()
            assert code == 451 and "4.3.0" in text, text
            assert c.cmd("QUIT")[0] == 221
        finally:
            log = str(st.var / "pg" / "postgresql.log")
            r = st.pg_ctl("start", "-w", "-t", "30", "-l", log, "-o", opts)
            assert r.returncode == 0, r.stdout
    finally:
        assert p.stop() == 0, (tmp_path / "smtpd.log").read_text()


def test_connection_limit_per_peer(private_smtpd):
    # 127.0.0.1 is a plain client here, not an XCLIENT proxy
    p = private_smtpd(smtpd_max_conns_per_ip=2,
                      smtpd_xclient_hosts="127.0.0.3")
    a, b = p.connect(), p.connect()
    c = Smtp(p.port)
    code, text = c.reply()
    assert code == 421 and "4.7.0" in text
    assert c.closed()
    d = p.connect("127.0.0.2")          # another peer still gets in
    a.cmd("QUIT")
    a.close()
    got = []

    def slot_free():                    # a slot is free again, soon
        e = Smtp(p.port)
        got.append(e)
        return e.reply()[0] == 220
    assert wait_for(slot_free, 5)
    for x in [b, c, d] + got:
        x.close()


def test_connection_limit_per_xclient_addr(private_smtpd):
    """Behind nginx every session comes from 127.0.0.1: the per-client
    limit counts the address XCLIENT gives."""
    p = private_smtpd(smtpd_max_conns_per_ip=2)
    conns = [p.connect() for _ in range(4)]     # the proxy: not limited
    for c in conns[:2]:
        assert c.cmd("XCLIENT ADDR=192.0.2.9")[0] == 220
    code, text = conns[2].cmd("XCLIENT ADDR=192.0.2.9")
    assert code == 421 and "4.7.0" in text
    assert conns[2].closed()
    assert conns[3].cmd("XCLIENT ADDR=192.0.2.10")[0] == 220
    for c in conns:
        c.close()


def test_total_connection_limit(private_smtpd):
    p = private_smtpd(smtpd_max_conns=2)
    a, b = p.connect(), p.connect("127.0.0.2")
    c = Smtp(p.port, "127.0.0.3")
    code, text = c.reply()
    assert code == 421 and "4.7.0" in text
    for x in (a, b, c):
        x.close()


def test_command_timeout(private_smtpd):
    p = private_smtpd(smtpd_cmd_timeout=1)
    c = p.connect()
    code, text = c.reply()
    assert code == 421 and "4.4.2" in text
    assert c.closed()


def test_data_timeout(stack, private_smtpd):
    p = private_smtpd(smtpd_cmd_timeout=5, smtpd_data_timeout=1)
    c = p.connect()
    envelope(c)
    assert c.cmd("DATA")[0] == 354
    msgid = f"smtpd-{uuid.uuid4().hex}@example.org"
    c.send(b"Message-ID: <" + msgid.encode() + b">\r\nSubject: slow\r\n")
    t0 = time.monotonic()
    code, text = c.reply()
    assert code == 421 and "4.4.2" in text
    assert time.monotonic() - t0 < 4
    assert c.closed()
    assert archived(stack, msgid) == []


def trickle(c, data, pause, limit):
    """Send data a byte at a time, pause seconds apart, until a reply
    comes (at most limit seconds): (code, text, seconds taken)."""
    t0 = time.monotonic()
    for b in data:
        readable, _, _ = select.select([c.s], [], [], pause)
        if readable or time.monotonic() - t0 > limit:
            break
        c.send(bytes([b]))
    code, text = c.reply()
    return code, text, time.monotonic() - t0


def test_session_deadline(private_smtpd):
    """A client that is never idle long (NOOP every 0.3 s, well inside
    smtpd_cmd_timeout) is still closed when the session is too old."""
    p = private_smtpd(smtpd_session_deadline=2, smtpd_cmd_timeout=10)
    c = p.connect()
    t0 = time.monotonic()
    assert c.cmd("EHLO client.example")[0] == 250
    code = 250
    while code == 250 and time.monotonic() - t0 < 8:
        readable, _, _ = select.select([c.s], [], [], 0.3)
        code, text = c.reply() if readable else c.cmd("NOOP")
    assert code == 421 and "4.4.2" in text and "Session too long" in text, \
        text
    assert 1.5 < time.monotonic() - t0 < 5
    assert c.closed()


def test_data_deadline(stack, private_smtpd):
    """One byte every 0.3 s inside DATA resets the idle timeout forever;
    smtpd_data_deadline ends it: 421 4.4.2, nothing archived."""
    p = private_smtpd(smtpd_data_deadline=2, smtpd_data_timeout=10,
                      smtpd_cmd_timeout=10)
    c = p.connect()
    envelope(c)
    assert c.cmd("DATA")[0] == 354
    raw, msgid = unique_msg(body=b"x" * 200 + b"\r\n")
    code, text, took = trickle(c, raw + b".\r\n", 0.3, 8)
    assert code == 421 and "4.4.2" in text and "too long" in text, text
    assert 1.5 < took < 5
    assert c.closed()
    assert archived(stack, msgid) == []


def test_junk_commands_limit(private_smtpd):
    """NOOP, RSET, HELP, VRFY, EXPN and a repeated EHLO make no progress:
    the smtpd_max_junk-th is answered, then 421 4.7.0 and close.  EHLO
    after XCLIENT is not a repeat."""
    p = private_smtpd(smtpd_max_junk=6)
    c = p.connect()
    assert c.cmd("EHLO client.example")[0] == 250
    assert c.cmd("XCLIENT ADDR=192.0.2.7")[0] == 220
    assert c.cmd("EHLO client.example")[0] == 250
    for cmd in ("NOOP", "RSET", "HELP", "VRFY a@localhost",
                "EXPN a@localhost"):
        assert c.cmd(cmd)[0] in (214, 250, 502), cmd
    assert c.cmd("EHLO again.example")[0] == 250     # the 6th
    code, text = c.reply()
    assert code == 421 and "4.7.0" in text and "progress" in text, text
    assert c.closed()


def test_accepted_message_resets_junk_count(stack, private_smtpd):
    """A normal session under tight limits: RSET and NOOP between
    messages, each message accepted, many messages in one session."""
    p = private_smtpd(smtpd_max_junk=3, smtpd_session_deadline=30,
                      smtpd_data_deadline=5)
    ids = []
    with smtplib.SMTP("127.0.0.1", p.port, timeout=10) as s:
        s.ehlo("client.example")
        for _ in range(4):
            assert s.rset()[0] == 250
            assert s.noop()[0] == 250
            raw, msgid = unique_msg()
            ids.append(msgid)
            assert s.sendmail("alice@example.org", ["demo@localhost"],
                              raw) == {}
        assert s.noop()[0] == 250
        assert s.docmd("QUIT")[0] == 221
        s.close()
    for msgid in ids:
        assert [g for g, _, _ in archived(stack, msgid)] == ["demo"]


DATA_LINE_MAX = 65536                   # SMTP_MAX_DATA_LINE (bounds.h)


def test_data_line_bound(stack, private_smtpd):
    """Lines far over RFC 5321's 998 are taken up to SMTP_MAX_DATA_LINE;
    one byte more refuses the message (550 5.6.0) after the final dot,
    and the session goes on."""
    p = private_smtpd()
    c = p.connect()
    envelope(c)
    assert c.cmd("DATA")[0] == 354
    raw, ok_id = unique_msg(body=b"y" * DATA_LINE_MAX + b"\r\n")
    c.send(raw + b".\r\n")
    code, text = c.reply()
    assert code == 250, text
    envelope(c, mail="MAIL FROM:<b@example.org>")
    assert c.cmd("DATA")[0] == 354
    raw, long_id = unique_msg(body=b"z" * (DATA_LINE_MAX + 1) + b"\r\n")
    c.send(raw + b".\r\n")
    code, text = c.reply()
    assert code == 550 and "5.6.0" in text and "line" in text, text
    assert c.cmd("NOOP")[0] == 250
    assert archived(stack, long_id) == []
    rows = archived(stack, ok_id)
    assert len(rows) == 1 and b"y" * DATA_LINE_MAX + b"\r\n" in rows[0][2]


def test_bad_command_limit(private_smtpd):
    p = private_smtpd(smtpd_max_errors=3)
    c = p.connect()
    c.cmd("EHLO client.example")
    assert c.cmd("MAIL FROM:<a@b.example> FOO=1")[0] == 555
    assert c.cmd("RCPT TO:<demo@localhost>")[0] == 503
    code, _ = c.cmd("BOGUS")
    assert code == 502
    code, text = c.reply()
    assert code == 421 and "4.7.0" in text
    assert c.closed()


def test_unknown_recipients_count_as_errors(private_smtpd):
    p = private_smtpd(smtpd_max_errors=3)
    c = p.connect()
    envelope(c)
    assert c.cmd("RCPT TO:<a@localhost>")[0] == 550
    assert c.cmd("RCPT TO:<b@example.com>")[0] == 550
    assert c.cmd("RCPT TO:<c@localhost>")[0] == 550
    code, text = c.reply()
    assert code == 421 and "4.7.0" in text
    assert c.closed()


def test_pipelined_commands_keep_order(stack, private_smtpd):
    p = private_smtpd()
    c = p.connect()
    c.cmd("EHLO client.example")
    c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<demo@localhost>\r\n"
           b"RCPT TO:<nosuch@localhost>\r\nRCPT TO:<x@example.com>\r\n"
           b"DATA\r\n")
    assert [c.reply()[0] for _ in range(5)] == [250, 250, 550, 550, 354]
    raw, msgid = unique_msg()
    c.send(raw + b".\r\nQUIT\r\n")
    assert c.reply()[0] == 250
    assert c.reply()[0] == 221
    assert c.closed()
    assert [g for g, _, _ in archived(stack, msgid)] == ["demo"]


def self_signed(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return cert, key


def test_starttls(stack, private_smtpd, tmp_path):
    cert, key = self_signed(tmp_path)
    p = private_smtpd(smtpd_tls_cert=cert, smtpd_tls_key=key)
    ctx = ssl.create_default_context(cafile=str(cert))
    raw, msgid = unique_msg()
    with smtplib.SMTP("127.0.0.1", p.port, timeout=10) as s:
        s.ehlo("client.example")
        assert s.has_extn("starttls")
        s.starttls(context=ctx)
        s.ehlo("client.example")
        assert not s.has_extn("starttls")
        assert s.sendmail("alice@example.org", ["demo@localhost"], raw) == {}
        assert s.docmd("QUIT")[0] == 221  # the last reply is not lost
        s.close()
    rows = archived(stack, msgid)
    assert len(rows) == 1
    assert b"with ESMTPS id" in rows[0][2]


def test_starttls_drops_pipelined_plaintext(private_smtpd, tmp_path):
    cert, key = self_signed(tmp_path)
    p = private_smtpd(smtpd_tls_cert=cert, smtpd_tls_key=key)
    c = p.connect()
    c.cmd("EHLO client.example")
    c.send(b"STARTTLS\r\nMAIL FROM:<injected@example.org>\r\n")
    assert c.reply()[0] == 220
    ctx = ssl.create_default_context(cafile=str(cert))
    t = ctx.wrap_socket(c.s, server_hostname="127.0.0.1")
    f = t.makefile("rb")
    t.sendall(b"EHLO client.example\r\n")
    while True:
        line = f.readline()
        if line[3:4] != b"-":
            break
    # The injected MAIL was dropped: a new MAIL is not "nested".
    t.sendall(b"MAIL FROM:<alice@example.org>\r\n")
    assert f.readline().startswith(b"250")
    t.close()


def test_auth_http(stack, private_smtpd):
    """nginx's auth_http: the first RCPT decides; codes go in
    Auth-Error-Code only."""
    p = private_smtpd()
    down = private_smtpd(messageserver=False)

    def auth(to, secret=stack.api_secret, smtpd=p):
        h = {"Auth-Method": "none", "Auth-Protocol": "smtp",
             "Client-IP": "192.0.2.7", "Auth-SMTP-Helo": "client.example",
             "Auth-SMTP-From": "MAIL FROM:<alice@example.org>",
             "Auth-SMTP-To": to, "Authorization": f"Bearer {secret}"}
        r = http_request("127.0.0.1", smtpd.http_port, "GET", "/v1/auth",
                         headers=h)
        return r.status, {k.lower(): v for k, v in r.headers.items()}

    status, h = auth("RCPT TO:<demo@localhost> ORCPT=rfc822;x@y")
    assert status == 200 and h["auth-status"] == "OK"
    assert h["auth-server"] == "127.0.0.1"
    assert h["auth-port"] == str(p.port)
    status, h = auth("RCPT TO:<nosuch@localhost>")
    assert h["auth-status"] == "no such group"
    assert h["auth-error-code"] == "550 5.1.1"
    status, h = auth("RCPT TO:<x@example.com>")
    assert h["auth-status"] == "relay not permitted"
    assert h["auth-error-code"] == "550 5.7.1"
    status, h = auth("RCPT TO:<demo@localhost>", smtpd=down)
    assert h["auth-status"] == "try later"
    assert h["auth-wait"] == "1" and h["auth-error-code"] == "451 4.3.0"
    status, _ = auth("RCPT TO:<demo@localhost>", secret="wrong")
    assert status in (401, 403)


def test_auth_http_remembers_routed_addresses(stack, private_smtpd):
    """auth_http asks messageserver about a routed address once a second
    (smtpd_routes.c): the second answer within it comes without asking
    (smtpd_auth_known_total); a refusal is never remembered, so a group
    made right after one is routed at once; a deleted group is refused
    again once the remembered answer has expired."""
    p = private_smtpd()

    def auth(addr):
        h = {"Auth-Method": "none", "Auth-Protocol": "smtp",
             "Client-IP": "192.0.2.8", "Auth-SMTP-Helo": "client.example",
             "Auth-SMTP-From": "MAIL FROM:<alice@example.org>",
             "Auth-SMTP-To": f"RCPT TO:<{addr}>",
             "Authorization": f"Bearer {stack.api_secret}"}
        r = http_request("127.0.0.1", p.http_port, "GET", "/v1/auth",
                         headers=h)
        assert r.status == 200
        return {k.lower(): v for k, v in r.headers.items()}["auth-status"]

    def known():
        r = http_request("127.0.0.1", p.http_port, "GET", "/metrics")
        return int(re.search(r"^smtpd_auth_known_total (\d+)$", r.text,
                             re.M).group(1))

    g = "ak" + uuid.uuid4().hex[:10]
    assert auth(f"{g}@localhost") == "no such group"
    assert auth(f"{g}@localhost") == "no such group"
    assert known() == 0
    stack.sql("INSERT INTO groups (domain, name) VALUES ('localhost', "
              ":'v1')", g)
    assert auth(f"{g}@localhost") == "OK"      # asked: not remembered
    assert known() == 0
    assert auth(f"{g}@localhost") == "OK"      # remembered
    assert known() == 1
    stack.sql("DELETE FROM groups WHERE name = :'v1'", g)
    assert wait_for(lambda: auth(f"{g}@localhost") == "no such group", 5)


# --- the whole stack: nginx, smtpd and the real messageserver ---------------

def test_stack_routing(smtp):
    c = smtp()
    c.cmd("EHLO client.example")
    c.cmd("MAIL FROM:<alice@example.org>")
    code, text = c.cmd("RCPT TO:<demo@localhost>")
    assert code == 250, text
    code, text = c.cmd("RCPT TO:<no-such-group@localhost>")
    assert code == 550 and "5.1.1" in text
    code, text = c.cmd("RCPT TO:<someone@example.com>")
    assert code == 550 and "5.7.1" in text


def test_stack_through_nginx(stack):
    """nginx asks auth_http about the first RCPT, then proxies to smtpd."""
    port = stack.ports["smtp_public"]
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s.ehlo("client.example")
        s.mail("alice@example.org")
        code, text = s.rcpt("someone@example.com")
        assert code == 550 and b"5.7.1" in text
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s.ehlo("client.example")
        s.mail("alice@example.org")
        code, text = s.rcpt("no-such-group@localhost")
        assert code == 550 and b"5.1.1" in text
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s.ehlo("client.example")
        s.mail("alice@example.org")
        code, text = s.rcpt("demo@localhost")
        assert code == 250, text
        code, text = s.data(MSG)
        assert code == 250 and b"queued as" in text, text


def test_pipelined_smtputf8_through_nginx(stack):
    """nginx advertises PIPELINING and SMTPUTF8 and passes both through: a
    whole pipelined transaction with a UTF-8 sender is accepted."""
    port = stack.ports["smtp_public"]
    with socket.create_connection(("127.0.0.1", port), timeout=20) as c:
        f = c.makefile("rb")

        def reply():
            lines = []
            while True:
                line = f.readline().decode("utf-8", "replace")
                lines.append(line)
                if len(line) < 4 or line[3] != "-":
                    return int(line[:3]), "".join(lines)
        assert reply()[0] == 220
        c.sendall(b"EHLO client.example\r\n")
        code, text = reply()
        assert code == 250 and "PIPELINING" in text and "SMTPUTF8" in text
        c.sendall("MAIL FROM:<jörg@example.org> SMTPUTF8\r\n"
                  "RCPT TO:<demo@localhost>\r\nDATA\r\n".encode())
        assert reply()[0] == 250, "MAIL"
        assert reply()[0] == 250, "RCPT"
        assert reply()[0] == 354, "DATA"
        c.sendall("From: Jörg <jörg@example.org>\r\nTo: demo@localhost\r\n"
                  "Subject: pipelined ü\r\n\r\nhello\r\n.\r\nQUIT\r\n"
                  .encode())
        code, text = reply()
        assert code == 250 and "queued as" in text, text
