# SPDX-License-Identifier: MIT
"""smtpd's SMTP front, spoken to directly on its backend port: bounded
lines, clear replies to bad commands, XCLIENT only from the allow-list, and a
temporary (never a permanent) answer to mail transactions until delivery to
messageserver exists, so senders keep their mail."""
import socket

import pytest


class Smtp:
    def __init__(self, port, source="127.0.0.1"):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5,
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

    def cmd(self, text):
        self.s.sendall(text.encode() + b"\r\n")
        return self.reply()

    def closed(self):
        try:
            return self.s.recv(1) == b""
        except (ConnectionResetError, socket.timeout):
            return True

    def close(self):
        self.s.close()


@pytest.fixture
def smtp(stack):
    conns = []

    def connect(source="127.0.0.1"):
        c = Smtp(stack.ports["smtpd_smtp"], source)
        code, text = c.reply()
        assert code == 220, text
        conns.append(c)
        return c
    yield connect
    for c in conns:
        c.close()
    assert stack.get("smtpd", "/healthz").status == 200


def test_ehlo_advertises_limits(smtp):
    c = smtp()
    code, text = c.cmd("EHLO client.example")
    assert code == 250
    assert "SIZE " in text and "8BITMIME" in text and "PIPELINING" in text
    assert "XCLIENT" in text            # 127.0.0.1 is on the allow-list


def test_mail_gets_temporary_failure(smtp):
    c = smtp()
    c.cmd("EHLO client.example")
    code, text = c.cmd("MAIL FROM:<alice@example.org>")
    assert code == 451 and "4.3.2" in text
    assert c.cmd("QUIT")[0] == 221


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
    c.s.sendall(b"x" * 5000)            # no CRLF ever
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
