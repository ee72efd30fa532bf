# SPDX-License-Identifier: MIT
"""dnsserver.py - a real DNS server (dnsmasq) for end-to-end tests.

    with DnsServer(txt={"_dmarc.reject.test": "v=DMARC1; p=reject"},
                   mx={"example.test": [(10, "mx1.example.test")]},
                   a={"mx1.example.test": "127.0.0.2"},
                   aaaa={"v6.example.test": ["::1"]}) as dns:
        conf["dns_resolver"] = dns.resolver      # "127.0.0.1:PORT"

dnsmasq runs in the foreground (--no-daemon: no pid file, no change of
user, so running as root is no different) on 127.0.0.1 at a free port and
answers only from a configuration file written to a private temp dir:
names under the `local` domains (default "test") that it does not know are
NXDOMAIN, anything else is REFUSED (a tempfail for the caller).

TXT values: a str is one record; a tuple of str is one record made of
several strings (joined by the client, RFC 7208 3.3); a list holds several
records, each a str or a tuple.  MX values: a list of (preference, host).
A and AAAA values: an address, or a list of addresses (dnsmasq's
host-record, one line each).  Several records of one name come back in
the order given when round_robin is False, else rotated on each query
(dnsmasq's default).

query() is a minimal DNS client (struct and a UDP socket) used by the
self-test and to wait for the server; it is a test helper, not product
code.
"""
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

DNSMASQ = os.environ.get("DNSMASQ", "/usr/sbin/dnsmasq")

T_A, T_MX, T_TXT, T_AAAA = 1, 15, 16, 28


def free_port():
    """A port free for UDP and TCP on 127.0.0.1 right now."""
    for _ in range(50):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()
    raise RuntimeError("no free port")


def _quote(s):
    # dnsmasq's config reader takes "..." with \" and \\ escapes
    if "\n" in s or "\r" in s:
        raise ValueError("TXT string with a line break: %r" % s)
    if len(s.encode()) > 255:
        raise ValueError("TXT string over 255 bytes; split it in a tuple")
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        b = label.encode("ascii")
        out += bytes([len(b)]) + b
    return out + b"\0"


def _skip_name(msg, off):
    while True:
        n = msg[off]
        if n == 0:
            return off + 1
        if n & 0xC0 == 0xC0:
            return off + 2
        off += 1 + n


def _read_name(msg, off):
    labels = []
    while True:
        n = msg[off]
        if n == 0:
            return ".".join(labels)
        if n & 0xC0 == 0xC0:
            off = struct.unpack("!H", msg[off:off + 2])[0] & 0x3FFF
            continue
        labels.append(msg[off + 1:off + 1 + n].decode("ascii"))
        off += 1 + n


def query(server, name, qtype=T_TXT, timeout=1.0):
    """One UDP query to server (host, port).  Returns (rcode, answers):
    TXT answers as lists of str, MX as (pref, host), A and AAAA as
    address text, others as bytes."""
    qid = random.randrange(65536)
    pkt = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + \
        _encode_name(name) + struct.pack("!HH", qtype, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.sendto(pkt, server)
        msg = s.recv(65535)
    finally:
        s.close()
    rid, flags, qd, an, _, _ = struct.unpack("!HHHHHH", msg[:12])
    if rid != qid:
        raise RuntimeError("answer to another query")
    off = 12
    for _ in range(qd):
        off = _skip_name(msg, off) + 4
    answers = []
    for _ in range(an):
        off = _skip_name(msg, off)
        rtype, _, _, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
        off += 10
        rdata = msg[off:off + rdlen]
        if rtype == T_TXT == qtype:
            strings, i = [], 0
            while i < len(rdata):
                n = rdata[i]
                strings.append(rdata[i + 1:i + 1 + n].decode("utf-8",
                                                            "replace"))
                i += 1 + n
            answers.append(strings)
        elif rtype == T_MX == qtype:
            answers.append((struct.unpack("!H", rdata[:2])[0],
                            _read_name(msg, off + 2)))
        elif rtype == T_A == qtype:
            answers.append(socket.inet_ntop(socket.AF_INET, rdata))
        elif rtype == T_AAAA == qtype:
            answers.append(socket.inet_ntop(socket.AF_INET6, rdata))
        elif rtype == qtype:
            answers.append(rdata)
        off += rdlen
    return flags & 0xF, answers


class DnsServer:
    """dnsmasq with the given records; a context manager."""

    def __init__(self, txt=None, mx=None, local=("test",), ttl=300, a=None,
                 aaaa=None, round_robin=True):
        self.txt = txt or {}
        self.mx = mx or {}
        self.a = a or {}
        self.aaaa = aaaa or {}
        self.round_robin = round_robin
        self.local = local
        self.ttl = ttl
        self.proc = None
        self.port = None
        self.dir = None

    @property
    def resolver(self):
        """The value for the dns_resolver config key."""
        return "127.0.0.1:%d" % self.port

    def _conf(self, port):
        lines = ["no-resolv", "no-hosts", "bind-interfaces",
                 "listen-address=127.0.0.1", "local-ttl=%d" % self.ttl,
                 "port=%d" % port]
        lines += ["local=/%s/" % d for d in self.local]
        for name, value in self.txt.items():
            records = value if isinstance(value, list) else [value]
            for r in records:
                strings = r if isinstance(r, tuple) else (r,)
                lines.append("txt-record=%s,%s" % (
                    name, ",".join(_quote(s) for s in strings)))
        for name, hosts in self.mx.items():
            for pref, host in hosts:
                lines.append("mx-host=%s,%s,%d" % (name, host, pref))
        for family, records in ((socket.AF_INET, self.a),
                                (socket.AF_INET6, self.aaaa)):
            for name, addrs in records.items():
                for addr in [addrs] if isinstance(addrs, str) else addrs:
                    # raises OSError on a bad address, before dnsmasq
                    socket.inet_pton(family, addr)
                    lines.append("host-record=%s,%s" % (name, addr))
        if not self.round_robin:
            lines.append("no-round-robin")
        return "\n".join(lines) + "\n"

    def start(self, timeout=10.0):
        if not os.access(DNSMASQ, os.X_OK):
            raise RuntimeError("%s not found" % DNSMASQ)
        self._conf(0)               # bad records raise before mkdtemp
        self.dir = tempfile.mkdtemp(prefix="dnsserver.")
        deadline = time.monotonic() + timeout
        while True:
            self.port = free_port()
            conf = os.path.join(self.dir, "dnsmasq.conf")
            with open(conf, "w") as f:
                f.write(self._conf(self.port))
            log = open(os.path.join(self.dir, "dnsmasq.log"), "ab")
            self.proc = subprocess.Popen(
                [DNSMASQ, "--no-daemon", "--conf-file=" + conf,
                 "--log-facility=-"],
                stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)
            log.close()
            if self._wait_ready(deadline):
                return self
            self.stop(keep_dir=True)
            if time.monotonic() > deadline:
                raise RuntimeError("dnsmasq did not start: " + self.log())

    def _wait_ready(self, deadline):
        # any answer from dnsmasq will do: the name need not exist
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False        # port taken meanwhile? try another
            try:
                query(("127.0.0.1", self.port), "ready.test", timeout=0.2)
                return True
            except (OSError, RuntimeError):
                time.sleep(0.02)
        return False

    def log(self):
        try:
            with open(os.path.join(self.dir, "dnsmasq.log")) as f:
                return f.read()
        except OSError:
            return ""

    def query(self, name, qtype=T_TXT):
        """One query to this server; see query()."""
        return query(("127.0.0.1", self.port), name, qtype)

    def stop(self, keep_dir=False):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if not keep_dir and self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False
