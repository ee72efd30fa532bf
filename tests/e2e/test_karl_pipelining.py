# SPDX-License-Identifier: MIT
"""karl's SMTP client against servers that offer PIPELINING (RFC 2920):
Postfix's smtp-sink (the benchmark's sink) and aiosmtpd told to offer it,
plus a recording server that shows what arrives in one segment.

What must hold: MAIL, RCPT and DATA go out together; lines starting with
a dot arrive intact (dot-stuffing); a refused RCPT in the middle of a
pipelined transaction fails that receiver alone, and the session is RSET
and reused for the next copies; signatures still verify."""
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import dkim
import pytest

from mailtest import Sink
from stack import free_ports, wait_for
from test_karl_delivery import (SIGN_DOMAIN, ConfStack, job_status, keygen,
                                new_job, rcpt, send_job, start_stack)

from aiosmtpd.controller import Controller  # noqa: E402

SMTP_SINK = "/usr/sbin/smtp-sink"
DOTS = (b"From: Ann <ann@example.org>\r\nTo: demo@lists.example\r\n"
        b"Subject: dots\r\nMessage-ID: <dots@example.org>\r\n"
        b"Date: Thu, 03 Dec 2026 17:00:00 +0000\r\n\r\n"
        b".one dot\r\n..two dots\r\n.\r\nmiddle\r\n. space\r\nend\r\n")


@pytest.fixture(scope="module")
def keys():
    d = Path(tempfile.mkdtemp(prefix="karl-pipe-"))
    os.chmod(d, 0o755)
    yield keygen(d)
    shutil.rmtree(d, ignore_errors=True)


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
        return True
    except OSError:
        return False


def stack_to(keys, port, **conf):
    c = {"dkim_keys": keys[0], "karl_retry_min": "1", "karl_retry_max": "2",
         "karl_max_age": "60"}
    c.update(conf)
    st = start_stack(ConfStack(extra_conf=c))
    st.set_conf("karl_relay_port", str(port))
    st.set_conf("karl_relay_tls", "no")
    st.restart_karl()
    return st


def dkim_ok(msg, txt):
    def dnsfunc(name, timeout=5):
        n = name.decode() if isinstance(name, bytes) else name
        return txt.get(n if n.endswith(".") else n + ".", "").encode()
    sigs = re.findall(rb"^DKIM-Signature:", msg, re.M | re.I)
    d = dkim.DKIM(msg)
    return len(sigs) == 2 and all(d.verify(idx=i, dnsfunc=dnsfunc)
                                  for i in range(2))


def test_smtp_sink_dots_and_signatures(keys):
    """Postfix's smtp-sink offers PIPELINING: every copy arrives once,
    its dot lines intact, both signatures valid."""
    # smtp-sink writes as nobody: not under pytest's private tmp_path
    dump = Path(tempfile.mkdtemp(prefix="karl-pipe-dump-"))
    os.chmod(dump, 0o777)
    port = free_ports(1)[0]
    sink = subprocess.Popen([SMTP_SINK, "-u", "nobody", "-d",
                             str(dump / "m."), f"127.0.0.1:{port}", "64"],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    st = None
    try:
        assert wait_for(lambda: listening(port), 10)
        st = stack_to(keys, port)
        job = new_job()
        rs = [rcpt(f"p{i}@d{i % 3}.example", i) for i in range(30)]
        send_job(st, job, rs, message=DOTS, footer=False)
        assert wait_for(lambda: job_status(st, job)["sent"] == 30, 60), \
            (job_status(st, job), st.log_tails())
        files = sorted(dump.iterdir())
        assert len(files) == 30
        seen = set()
        for f in files:
            raw = f.read_bytes().replace(b"\r\n", b"\n")
            head, msg = raw.split(b"\nReceived: ", 1)
            seen.add(re.search(rb"X-Rcpt-Args: <([^>]+)>", head).group(1))
            msg = b"Received: " + msg
            body = msg.split(b"\n\n", 1)[1]
            assert body.startswith(b".one dot\n..two dots\n.\nmiddle\n"
                                   b". space\nend\n"), body[:120]
            assert dkim_ok(msg.replace(b"\n", b"\r\n"), keys[1])
        assert seen == {r["to"].encode() for r in rs}
    finally:
        if st is not None:
            st.stop()
        sink.terminate()
        sink.wait(5)
        shutil.rmtree(dump, ignore_errors=True)


class PipeSink(Sink):
    """mailtest's Sink, offering PIPELINING (aiosmtpd reads the pipelined
    commands one after another, as RFC 2920 servers do)."""

    async def handle_EHLO(self, server, session, envelope, hostname,
                          responses):
        session.host_name = hostname
        return responses[:1] + ["250-PIPELINING"] + responses[1:]


def test_refusals_inside_a_pipelined_transaction(keys):
    """550 and 452 at RCPT while DATA is already on its way: those
    receivers fail or wait, the others go, sessions are reused."""
    sink = PipeSink()
    port = free_ports(1)[0]
    ctl = Controller(sink, hostname="127.0.0.1", port=port)
    ctl.start()
    st = None
    try:
        st = stack_to(keys, port)
        job = new_job()
        rs = ([rcpt(f"ok{i}@x.example", i) for i in range(40)] +
              [rcpt(f"reject{i}@x.example", i) for i in range(5)] +
              [rcpt(f"defer{i}@x.example", i) for i in range(5)])
        rs = rs[0::3] + rs[1::3] + rs[2::3]     # refusals among the rest
        send_job(st, job, rs)
        assert wait_for(lambda: job_status(st, job)["sent"] == 40 and
                        job_status(st, job)["failed"] == 5, 60), \
            (job_status(st, job), st.log_tails())
        s = job_status(st, job)
        assert s["deferred"] == 5 or s["queued"] + s["deferred"] == 5, s
        for i in range(40):
            got = sink.got[f"ok{i}@x.example"]
            assert len(got) == 1
        assert not any(a.startswith(("reject", "defer")) for a in sink.got)
        # 50 transactions over at most karl_concurrency sessions: after a
        # refusal the session was RSET and carried more mail
        assert len(sink.sessions) <= 20, len(sink.sessions)
    finally:
        if st is not None:
            st.stop()
        ctl.stop()


class Recorder(threading.Thread):
    """A small SMTP server that offers PIPELINING and keeps each chunk
    it reads, to show what the client sends together."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.chunks = []
        self.delivered = 0

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.session, args=(c,),
                             daemon=True).start()

    def session(self, c):
        c.sendall(b"220 recorder ESMTP\r\n")
        buf, data = b"", False
        while True:
            b = c.recv(65536)
            if not b:
                break
            self.chunks.append(b)
            buf += b
            while b"\n" in buf:
                if data:
                    if buf.startswith(b".\r\n"):
                        buf, data = buf[3:], False
                        self.delivered += 1
                        c.sendall(b"250 2.0.0 taken\r\n")
                        continue
                    buf = buf.split(b"\n", 1)[1]
                    continue
                line, buf = buf.split(b"\n", 1)
                cmd = line.strip().upper()
                if cmd.startswith(b"EHLO"):
                    c.sendall(b"250-recorder\r\n250-PIPELINING\r\n"
                              b"250 8BITMIME\r\n")
                elif cmd == b"DATA":
                    data = True
                    c.sendall(b"354 go on\r\n")
                elif cmd == b"QUIT":
                    c.sendall(b"221 bye\r\n")
                    c.close()
                    return
                else:
                    c.sendall(b"250 ok\r\n")
        c.close()

    def stop(self):
        self.sock.close()


def test_envelope_goes_in_one_write(keys):
    rec = Recorder()
    rec.start()
    st = None
    try:
        st = stack_to(keys, rec.port)
        job = new_job()
        send_job(st, job, [rcpt(f"r{i}@y.example", i) for i in range(5)])
        assert wait_for(lambda: job_status(st, job)["sent"] == 5, 30), \
            (job_status(st, job), st.log_tails())
        # each envelope's three commands arrived in one read (a copy
        # that rode behind another shares its read with that message)
        together = sum(len(re.findall(
            rb"MAIL FROM:<[^>]*>\r\nRCPT TO:<[^>]*>\r\nDATA\r\n", ch))
            for ch in rec.chunks)
        assert together == 5, rec.chunks[:8]
        assert rec.delivered == 5
    finally:
        if st is not None:
            st.stop()
        rec.stop()


def test_next_envelope_rides_with_the_message(keys):
    """With more copies than a session's one at a time, the next copy's
    envelope is written right behind the current message: one round trip
    per copy, and fewer sessions than copies in flight."""
    rec = Recorder()
    rec.start()
    st = None
    try:
        st = stack_to(keys, rec.port)
        job = new_job()
        send_job(st, job, [rcpt(f"n{i}@y.example", i) for i in range(60)])
        assert wait_for(lambda: job_status(st, job)["sent"] == 60, 60), \
            (job_status(st, job), st.log_tails())
        assert rec.delivered == 60
        behind = [ch for ch in rec.chunks if b"\r\n.\r\nMAIL FROM:" in ch
                  or (ch.startswith(b"MAIL FROM:") and b"DATA\r\n" in ch)]
        riding = [ch for ch in rec.chunks if b"\r\n.\r\nMAIL FROM:" in ch]
        assert len(behind) >= 60
        assert riding, "no envelope followed a message in one write"
    finally:
        if st is not None:
            st.stop()
        rec.stop()


def karl_threads(pid):
    """{tid: (name, scheduling policy)} of karl's threads (policy: field
    41 of /proc/<pid>/task/<tid>/stat; 0 SCHED_OTHER, 3 SCHED_BATCH)."""
    out = {}
    for t in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (t / "comm").read_text().strip()
            stat = (t / "stat").read_text()
        except OSError:
            continue            # a thread that just ended
        fields = stat.rsplit(")", 1)[1].split()
        out[int(t.name)] = (name, int(fields[38]))
    return out


def test_only_the_signing_workers_preempt(keys):
    """The signing workers keep the normal policy; the scheduler, the
    transport and the recorder are SCHED_BATCH, so their frequent
    wake-ups do not preempt a worker in the middle of a signature."""
    rec = Recorder()
    rec.start()
    st = None
    try:
        st = stack_to(keys, rec.port)
        job = new_job()
        send_job(st, job, [rcpt(f"t{i}@y.example", i) for i in range(3)])
        assert wait_for(lambda: job_status(st, job)["sent"] == 3, 30), \
            (job_status(st, job), st.log_tails())
        th = karl_threads(st.pid("karl"))
        names = sorted(n for n, _ in th.values())
        workers = [p for n, p in th.values() if n == "karl-worker"]
        assert workers and set(workers) == {0}, (names, th)
        for name in ("karl-sched", "karl-smtp", "karl-record"):
            assert [p for n, p in th.values() if n == name] == [3], th
    finally:
        if st is not None:
            st.stop()
        rec.stop()


def test_each_receiver_goes_once_while_outcomes_are_written(keys):
    """The scheduler walks the spool while the recorder writes outcomes:
    a receiver recorded after the walk's view was taken is read afresh,
    never sent again from the old view.  4,000 receivers, nine in ten
    deferred for at least a minute (each pass of the scheduler reads
    their records while earlier copies complete): each is tried exactly
    once, each other one delivered exactly once."""
    sink = PipeSink()
    port = free_ports(1)[0]
    ctl = Controller(sink, hostname="127.0.0.1", port=port)
    ctl.start()
    st = None
    try:
        st = stack_to(keys, port, karl_retry_min="60", karl_retry_max="120",
                      karl_max_age="600")
        job = new_job()
        rs = [rcpt(("ok%d@x.example" if i % 10 == 0 else
                    "defer%d@x.example") % i, i) for i in range(4000)]
        send_job(st, job, rs)
        assert wait_for(lambda: job_status(st, job)["sent"] == 400 and
                        job_status(st, job)["deferred"] == 3600, 120), \
            (job_status(st, job), st.log_tails())
        twice = {a: n for a, n in sink.tries.items() if n != 1}
        assert not twice, sorted(twice.items())[:10]
        assert all(len(sink.got[f"ok{i}@x.example"]) == 1
                   for i in range(0, 4000, 10)), "a copy went twice"
    finally:
        if st is not None:
            st.stop()
        ctl.stop()
