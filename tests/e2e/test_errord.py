# SPDX-License-Identifier: MIT
"""test_errord.py - errord and errtail as operators and daemons use them.

Against the session's stack (conftest.py): an event posted to errord shows
up in the real errtail's output (readable and --json); batches; the level,
daemon, text and since filters; errtail -f receives an event posted after
it started; invalid events and tail parameters are refused with 400 and a
JSON reason, and nothing of a bad batch is stored; a daemon crashed through
POST /v1/debug/crash leaves a crit event with its backtrace in errord
within 5 s and is restarted healthy by the supervisor.  A daemon's
shipper sends a burst of events in a few batches, not one POST each.

On private errord instances (own config, own store, errord -d): kill -9
during a burst of posts loses nothing that was acknowledged, and the seq
goes on after the restart; rotation by size and retention by count and by
age.  Every wait is bounded.
"""
import http.client
import json
import os
import re
import signal
import smtplib
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from stack import api_secret_of, bin_dir, free_ports, pid_alive, wait_for

LEVELS = ("debug", "info", "warn", "error", "crit")


def now_rfc3339(offset_s=0.0):
    t = time.time() + offset_s
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + \
        ".%06dZ" % int((t % 1) * 1e6)


def event(message, daemon="e2e", level="error", **extra):
    ev = {"time": now_rfc3339(), "daemon": daemon, "pid": 4242,
          "level": level, "message": message}
    ev.update(extra)
    return ev


def tag():
    return "t" + uuid.uuid4().hex[:12]


def errtail(conf, *args, timeout=20):
    """Run the real errtail; returns the CompletedProcess."""
    return subprocess.run([str(bin_dir() / "errtail"), "-c", str(conf),
                           *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)


def post(stack, body):
    return stack.post("errord", "/v1/log", body)


# ------------------------------------------------------------ through stack

def test_event_shows_in_errtail(stack):
    t = tag()
    ev = event(f"disk almost full {t}", daemon="e2e-x", cid="cid-" + t,
               fields={"mount": "/var", "free": 3, "note": "two words"})
    r = post(stack, ev)
    assert r.status == 200, r
    assert r.json() == {"accepted": 1}

    out = errtail(stack.conf, "--text", t, "--color=never")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 1, out.stdout
    assert re.match(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} e2e-x\[4242\] error: "
        rf"disk almost full {t} mount=/var free=3 note=\"two words\" "
        rf"cid=cid-{t}$", lines[0]), lines[0]

    out = errtail(stack.conf, "--text", t, "--json")
    assert out.returncode == 0, out.stderr
    got = [json.loads(x) for x in out.stdout.splitlines()]
    assert len(got) == 1
    assert isinstance(got[0]["seq"], int) and got[0]["seq"] > 0
    for k, v in ev.items():
        assert got[0][k] == v, k

    # colours only when asked (stdout is a pipe here)
    out = errtail(stack.conf, "--text", t, "--color=always")
    assert "\033[31merror\033[0m" in out.stdout


def test_backtrace_indented_and_escaped(stack):
    t = tag()
    r = post(stack, event(f"bt {t} \x1b[2J", level="crit",
                          backtrace="#0 f()\n#1 main()\n"))
    assert r.status == 200, r
    out = errtail(stack.conf, "--text", t, "--color=never")
    lines = out.stdout.splitlines()
    assert len(lines) == 3, out.stdout
    assert lines[0].endswith(f"crit: bt {t} \\x1b[2J")    # no raw ESC
    assert lines[1:] == ["    #0 f()", "    #1 main()"]


def test_batch(stack):
    t = tag()
    evs = [event(f"batch {t} #{i}", level=LEVELS[i % 5]) for i in range(50)]
    r = post(stack, {"events": evs})
    assert r.status == 200, r
    assert r.json() == {"accepted": 50}
    got = stack.errord_events(text=t, limit=1000)
    assert [e["message"] for e in got] == [f"batch {t} #{i}"
                                          for i in range(50)]
    seqs = [e["seq"] for e in got]
    assert seqs == list(range(seqs[0], seqs[0] + 50))    # one commit, order
    # limit: the LAST n, oldest first
    got = stack.errord_events(text=t, limit=5)
    assert [e["message"] for e in got] == [f"batch {t} #{i}"
                                          for i in range(45, 50)]
    out = errtail(stack.conf, "--text", t, "-n", "3", "--json")
    assert [json.loads(x)["message"] for x in out.stdout.splitlines()] == \
        [f"batch {t} #{i}" for i in range(47, 50)]


def test_filters(stack):
    t = tag()
    old = dict(event(f"old {t}", daemon="e2e-a", level="error"),
               time="2020-01-01T00:00:00Z")
    evs = [old]
    for d in ("e2e-a", "e2e-b"):
        for lv in LEVELS:
            evs.append(event(f"{d} {lv} {t}", daemon=d, level=lv))
    evs.append(event(f"needle {t}", daemon="e2e-b", level="info",
                     backtrace="#0 HayStack::find()\n"))
    assert post(stack, {"events": evs}).status == 200

    def msgs(*args):
        out = errtail(stack.conf, "--json", "-n", "100", *args)
        assert out.returncode == 0, out.stderr
        return [json.loads(x)["message"] for x in out.stdout.splitlines()]

    assert msgs("--text", t, "--level", "error", "--daemon", "e2e-a") == \
        [f"old {t}", f"e2e-a error {t}", f"e2e-a crit {t}"]
    assert msgs("--text", t, "--daemon", "e2e-b", "--level", "warn") == \
        [f"e2e-b warn {t}", f"e2e-b error {t}", f"e2e-b crit {t}"]
    assert len(msgs("--text", t)) == 12
    assert msgs("--text", t.upper(), "--level", "crit") == \
        [f"e2e-a crit {t}", f"e2e-b crit {t}"]       # any case
    assert msgs("--text", "haystack::FIND", "--daemon", "e2e-b") == \
        [f"needle {t}"]                                 # in the backtrace
    assert f"old {t}" not in msgs("--text", t, "--since",
                                  "2021-01-01T00:00:00Z")
    assert len(msgs("--text", t, "--since", "2021-01-01T00:00:00Z")) == 11
    assert len(msgs("--text", t, "--since", "10m")) == 11
    assert msgs("--text", t, "--since", str(int(time.time()) + 3600)) == []
    # the HTTP API takes unix seconds too
    got = stack.errord_events(text=t, since=1577836801, daemon="e2e-a")
    assert len(got) == 5


class ErrtailFollow:
    """errtail -f --json --text TEXT against the stack, its lines collected
    by a thread; a context manager that interrupts it on exit."""

    def __init__(self, stack, text):
        self.p = subprocess.Popen(
            [str(bin_dir() / "errtail"), "-c", str(stack.conf), "-f",
             "--json", "--text", text],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []
        threading.Thread(target=lambda: [self.lines.append(x)
                                         for x in self.p.stdout],
                         daemon=True).start()

    def messages(self):
        return [json.loads(x)["message"] for x in self.lines]

    def wait_lines(self, n, timeout):
        return wait_for(lambda: len(self.lines) >= n, timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.p.send_signal(signal.SIGINT)
        try:
            self.p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def test_follow_gets_new_events(stack):
    t = tag()
    assert post(stack, event(f"before {t}")).status == 200
    with ErrtailFollow(stack, t) as f:
        # the history (one event) shows the stream is up
        assert f.wait_lines(1, 10)
        assert post(stack, event(f"after {t}")).status == 200
        assert post(stack, event("unrelated")).status == 200
        assert post(stack, {"events": [event(f"batch {t} {i}")
                                       for i in range(3)]}).status == 200
        assert f.wait_lines(5, 5), f.lines
        assert f.messages() == \
            [f"before {t}", f"after {t}"] + [f"batch {t} {i}"
                                            for i in range(3)]
        assert f.p.poll() is None     # still following


def test_follow_survives_errord_restart(stack):
    """errtail -f reconnects when errord is killed and restarted, and does
    not print what it already printed (dedup by seq)."""
    t = tag()
    assert post(stack, event(f"one {t}")).status == 200
    with ErrtailFollow(stack, t) as f:
        assert f.wait_lines(1, 10)
        old = stack.pid("errord")
        os.kill(old, signal.SIGKILL)
        assert stack.wait_new_pid("errord", old, timeout=15)
        assert stack.wait_healthy("errord", timeout=15)
        assert post(stack, event(f"two {t}")).status == 200
        assert f.wait_lines(2, 10), f.lines
        time.sleep(0.5)     # nothing printed twice after the reconnect
        assert f.messages() == [f"one {t}", f"two {t}"]
        assert f.p.poll() is None


def test_follow_over_http_parks_and_streams(stack):
    """Two followers over raw HTTP with different filters."""
    t = tag()
    conns = []
    for d in ("e2e-f1", "e2e-f2"):
        c = http.client.HTTPConnection("127.0.0.1", stack.ports["errord"],
                                       timeout=10)
        c.request("GET", f"/v1/tail?follow=1&limit=0&daemon={d}&text={t}",
                  headers={"Authorization": f"Bearer {stack.api_secret}"})
        r = c.getresponse()
        assert r.status == 200
        assert r.getheader("Content-Type") == "application/x-ndjson"
        conns.append((c, r))
    time.sleep(0.2)
    for i in range(3):
        for d in ("e2e-f1", "e2e-f2"):
            assert post(stack, event(f"{d} {i} {t}", daemon=d)).status == 200
    for (c, r), d in zip(conns, ("e2e-f1", "e2e-f2")):
        got = [json.loads(r.readline()) for _ in range(3)]
        assert [e["message"] for e in got] == [f"{d} {i} {t}"
                                               for i in range(3)]
        c.close()


def error_of(r):
    assert r.headers.get("Content-Type", "").startswith("application/json")
    return r.json()["error"]


@pytest.mark.parametrize("mutate,field", [
    (lambda e: e.pop("time"), "time"),
    (lambda e: e.pop("daemon"), "daemon"),
    (lambda e: e.pop("pid"), "pid"),
    (lambda e: e.pop("level"), "level"),
    (lambda e: e.pop("message"), "message"),
    (lambda e: e.update(time="yesterday"), "time"),
    (lambda e: e.update(daemon="Not Valid"), "daemon"),
    (lambda e: e.update(pid="12"), "pid"),
    (lambda e: e.update(level="fatal"), "level"),
    (lambda e: e.update(message=7), "message"),
    (lambda e: e.update(fields=[1]), "fields"),
    (lambda e: e.update(fields={f"k{i}": i for i in range(65)}), "fields"),
    (lambda e: e.update(backtrace=False), "backtrace"),
    (lambda e: e.update(seq=5), "seq"),
    (lambda e: e.update(colour="red"), "colour"),
    (lambda e: e.update(message="x" * (128 * 1024)), "event"),
])
def test_invalid_event_rejected(stack, mutate, field):
    t = tag()
    bad = event(f"bad {t}")
    mutate(bad)
    r = post(stack, bad)
    assert r.status == 400, r
    assert error_of(r).startswith(field), r
    good = event(f"good {t}")
    r = post(stack, {"events": [good, good, bad]})
    assert r.status == 400, r
    assert error_of(r).startswith(f"events[2].{field}"), r
    assert stack.errord_events(text=t) == []      # nothing of it stored


@pytest.mark.parametrize("body", [
    {"events": []}, {"events": {}}, {"events": [1]},
    {"events": [], "more": 1}, {"events": [event("x")] * 2001}])
def test_invalid_batch_rejected(stack, body):
    r = post(stack, body)
    assert r.status == 400, r
    assert error_of(r).startswith("events"), r


@pytest.mark.parametrize("query", [
    "level=loud", "limit=-1", "limit=10001", "limit=x", "since=soon",
    "daemon=A%20B", "follow=maybe"])
def test_bad_tail_params(stack, query):
    r = stack.get("errord", "/v1/tail?" + query, auth=True)
    assert r.status == 400, r
    assert error_of(r).split(":")[0] == query.split("=")[0]
    out = errtail(stack.conf, *{"level": ["--level", "loud"],
                                "limit": ["-n", "-1"]}
                  .get(query.split("=")[0], ["--since", "soon"]))
    assert out.returncode == 2 and out.stderr.startswith("errtail:")


def test_errtail_unreachable(stack, tmp_path):
    (port,) = free_ports(1)
    out = errtail(stack.conf, "-u", f"http://127.0.0.1:{port}")
    assert out.returncode == 1
    assert "cannot reach errord" in out.stderr
    out = errtail(tmp_path / "missing.conf")
    assert out.returncode == 2
    assert "configuration" in out.stderr


@pytest.mark.parametrize("daemon", ["karl", "web", "smtpd", "messageserver",
                                    "errord"])
def test_crash_report_reaches_errord(stack, daemon):
    old = stack.pid(daemon)
    assert old and pid_alive(old)
    started = time.time()
    assert stack.crash(daemon) is None          # it died, no reply
    ev = stack.wait_errord_event(
        lambda e: e.get("pid") == old and e.get("level") == "crit",
        timeout=5, daemon=daemon, level="crit")
    assert ev, f"no crash event of {daemon} pid {old} within 5 s"
    assert time.time() - started < 6
    assert daemon in ev.get("backtrace", ""), ev
    # symbolised: the frame that faulted is named
    assert "crash_trigger" in ev["backtrace"], ev
    assert len(ev["backtrace"].splitlines()) >= 3, ev
    new = stack.wait_new_pid(daemon, old, timeout=15)
    assert new, "the supervisor did not restart it"
    assert stack.wait_healthy(daemon, timeout=15)
    # errtail shows it too, the backtrace indented under the line
    out = errtail(stack.conf, "--daemon", daemon, "--level", "crit",
                  "--color=never", "-n", "1")
    assert f"{daemon}[{old}] crit:" in out.stdout
    assert "\n    " in out.stdout


def test_errord_metrics(stack):
    text = stack.get("errord", "/metrics").text
    for m in ("errord_events_accepted_total", "errord_events_stored_total",
              "errord_batches_total", "errord_fsyncs_total",
              "errord_bytes_written_total", "errord_followers",
              "errord_rejected_total"):
        assert re.search(rf"^{m} \d+$", text, re.M), m


def errord_batches(stack):
    text = stack.get("errord", "/metrics").text
    return int(re.search(r"^errord_batches_total (\d+)$", text, re.M)
               .group(1))


def test_shipper_batches_a_burst(stack):
    """smtpd logs one info line per message; 20 of them over about half
    a second reach errord in a few POSTs (log.c lets a batch gather for
    LOG_LINGER_MS), where one POST per line cost errord and the daemon
    more than the lines themselves."""
    who = tag() + "@example.org"
    before = errord_batches(stack)
    with smtplib.SMTP("127.0.0.1", stack.ports["smtpd_smtp"],
                      timeout=10) as s:
        s.ehlo("errord.test")
        for _ in range(20):
            s.mail(who)
            assert s.rcpt("demo@localhost")[0] == 250
            # a bare LF: refused at the final dot, without messageserver
            code, _ = s.data(b"Subject: x\n\nbare LF\r\n")
            assert code == 550
            time.sleep(0.025)   # pacing, not an assertion
    got = wait_for(lambda: len(stack.errord_events(
        daemon="smtpd", text=who)) == 20 or None, 10)
    assert got, "smtpd's 20 lines did not all reach errord"
    # one POST per line would be 20 or more; the rest of the stack is
    # quiet, so a few batches of its own leave plenty of room
    assert errord_batches(stack) - before <= 10


# ------------------------------------------------------ private instances

class Errord:
    """A private errord -d with its own config and store."""

    def __init__(self, top, **conf):
        self.top = Path(top)
        self.var = self.top / "var"
        self.var.mkdir(parents=True, exist_ok=True)
        self.store = self.var / "errord"
        secret = self.top / "secret"
        secret.write_text(uuid.uuid4().hex + uuid.uuid4().hex + "\n")
        self.api = api_secret_of(secret)
        ports = free_ports(6)
        self.port = ports[0]
        keys = dict(var_dir=self.var, secret_file=secret,
                    errord_port=ports[0], web_port=ports[1],
                    smtpd_port=ports[2], smtpd_smtp_port=ports[3],
                    messageserver_port=ports[4], karl_port=ports[5])
        keys.update(conf)
        self.conf = self.top / "groups.conf"
        self.conf.write_text("".join(f"{k} = {v}\n" for k, v in keys.items()))
        self.proc = None
        self.log = self.top / "errord.log"

    def start(self):
        self.proc = subprocess.Popen(
            [str(bin_dir() / "errord"), "-d", "-f", str(self.conf)],
            stdout=open(self.log, "a"), stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)

        def up():
            try:
                return self.request("GET", "/healthz").status == 200
            except OSError:
                return False
        assert wait_for(up, 10), self.log.read_text()
        return self

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def request(self, method, path, body=None, conn=None):
        c = conn or http.client.HTTPConnection("127.0.0.1", self.port,
                                               timeout=10)
        h = {"Authorization": f"Bearer {self.api}"}
        if body is not None:
            body = json.dumps(body)
            h["Content-Type"] = "application/json"
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
        finally:
            if conn is None:
                c.close()
        r.body = data
        return r

    def files(self):
        return sorted(p.name for p in self.store.glob("events-*.jsonl"))

    def stored(self):
        """Every stored event, in file order."""
        out = []
        for name in self.files():
            with open(self.store / name) as f:
                for line in f:
                    assert line.endswith("\n"), f"torn line in {name}"
                    out.append(json.loads(line))
        return out


@pytest.fixture
def private_errord(tmp_path):
    made = []

    def make(**conf):
        e = Errord(tmp_path / f"e{len(made)}", **conf)
        made.append(e)
        return e
    yield make
    for e in made:
        e.stop(signal.SIGKILL)


def test_kill9_loses_nothing_acknowledged(private_errord):
    e = private_errord().start()
    run = tag()
    acked, lock, stop = set(), threading.Lock(), threading.Event()

    def sender(w):
        conn = http.client.HTTPConnection("127.0.0.1", e.port, timeout=5)
        n = 0
        batch = 1 if w % 2 == 0 else 20
        deadline = time.time() + 20
        while not stop.is_set() and time.time() < deadline:
            ids = [f"{run}-{w}-{n + i}" for i in range(batch)]
            n += batch
            try:
                r = e.request("POST", "/v1/log",
                              {"events": [event(i) for i in ids]}, conn=conn)
            except (OSError, http.client.HTTPException):
                return          # errord is gone
            if r.status == 200:
                assert json.loads(r.body) == {"accepted": batch}
                with lock:
                    acked.update(ids)
        conn.close()

    threads = [threading.Thread(target=sender, args=(w,)) for w in range(8)]
    for th in threads:
        th.start()
    time.sleep(1.5)
    e.proc.send_signal(signal.SIGKILL)      # in the middle of the burst
    e.proc.wait()
    for th in threads:
        th.join(30)
    stop.set()
    assert len(acked) > 100, "the burst was too small to mean anything"

    e.start()           # recovers: a torn last line is cut off
    stored = e.stored()
    ids = {ev["message"] for ev in stored}
    missing = acked - ids
    assert not missing, f"{len(missing)} acknowledged events lost"
    seqs = [ev["seq"] for ev in stored]
    assert seqs == sorted(set(seqs)), "seq not strictly increasing"
    # the seq goes on after the restart
    r = e.request("POST", "/v1/log", event(f"after {run}"))
    assert r.status == 200
    last = e.stored()[-1]
    assert last["message"] == f"after {run}" and last["seq"] == seqs[-1] + 1
    # and errtail reads the recovered store
    out = errtail(e.conf, "--text", f"after {run}", "--json")
    assert json.loads(out.stdout)["seq"] == seqs[-1] + 1


def test_torn_line_truncated_at_start(private_errord):
    e = private_errord().start()
    assert e.request("POST", "/v1/log", event("one")).status == 200
    e.stop()
    cur = e.store / e.files()[-1]
    with open(cur, "a") as f:
        f.write('{"seq":999,"time":"2026-')      # a write cut short
    e.start()
    assert "torn" in e.log.read_text()
    assert e.request("POST", "/v1/log", event("two")).status == 200
    evs = e.stored()
    assert [x["message"] for x in evs] == ["one", "two"]
    assert evs[1]["seq"] == evs[0]["seq"] + 1


def test_rotation_and_retention(private_errord):
    e = private_errord(errord_rotate_size=65536, errord_keep_files=3,
                       errord_keep_days=30).start()
    pad = "x" * 900
    for i in range(60):         # ~600 KB: about ten rotations
        evs = [event(f"r{i}-{j} {pad}") for j in range(10)]
        assert e.request("POST", "/v1/log", {"events": evs}).status == 200
    # retention runs on errord's run thread right after each rotation
    assert wait_for(lambda: len(e.files()) <= 3, 5), e.files()
    files = e.files()
    assert len(files) == 3, files
    assert all(re.match(r"^events-\d{20}\.jsonl$", f) for f in files)
    for f in files[:-1]:
        assert (e.store / f).stat().st_size <= 65536
    # the names are the first seq of each file, in order
    firsts = []
    for f in files:
        with open(e.store / f) as fh:
            firsts.append(json.loads(fh.readline())["seq"])
    assert firsts == [int(f[7:27]) for f in files]
    # tail reads across the files, the newest last
    r = e.request("GET", "/v1/tail?limit=150")
    got = [json.loads(x) for x in r.body.decode().splitlines()]
    assert len(got) == 150
    assert got[-1]["message"].startswith("r59-9 ")
    assert [x["seq"] for x in got] == list(range(got[0]["seq"],
                                                 got[0]["seq"] + 150))

    # age: a file last written 40 days ago goes at the next start
    e.stop()
    oldest = e.store / files[0]
    old = time.time() - 40 * 86400
    os.utime(oldest, (old, old))
    e.start()
    assert wait_for(lambda: not oldest.exists(), 5), e.files()
    assert e.files() == files[1:]


def test_slow_follower_gets_skipped_line(private_errord):
    """A follower that stops reading falls out of the ring (1024 events
    here): it gets one synthetic "N events skipped" line and goes on."""
    import socket
    e = private_errord(errord_ring=1024).start()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(("127.0.0.1", e.port))
    s.sendall(f"GET /v1/tail?follow=1&limit=0 HTTP/1.1\r\n"
              f"Host: x\r\nAuthorization: Bearer {e.api}\r\n\r\n".encode())
    time.sleep(0.3)
    pad = "y" * 2000
    for i in range(10):         # 5000 events of 2 KB, the client asleep
        evs = [event(f"s{i}-{j} {pad}") for j in range(500)]
        assert e.request("POST", "/v1/log", {"events": evs}).status == 200
    assert e.request("POST", "/v1/log", event("the end")).status == 200
    data = b""
    deadline = time.time() + 20
    while b"the end" not in data and time.time() < deadline:
        try:
            b = s.recv(1 << 20)
        except socket.timeout:
            break
        if not b:
            break
        data += b
    s.close()
    text = data.decode(errors="replace")
    assert "the end" in text
    m = re.search(r'"message":"(\d+) events skipped', text)
    assert m, text[:300]
    assert int(m.group(1)) > 0
    assert text.index("events skipped") < text.index("the end")


def test_heartbeat_frees_gone_followers(private_errord):
    """A tail -f client that goes away while nothing is logged is noticed
    through the heartbeat's empty lines, and its stream is freed; a live
    follower sees the empty lines (which clients skip) and stays."""
    e = private_errord(errord_heartbeat=1).start()

    def followers():
        m = re.search(r"^errord_followers (\d+)$",
                      e.request("GET", "/metrics").body.decode(), re.M)
        return int(m.group(1))

    live = http.client.HTTPConnection("127.0.0.1", e.port, timeout=10)
    live.request("GET", "/v1/tail?follow=1&limit=0",
                 headers={"Authorization": f"Bearer {e.api}"})
    resp = live.getresponse()
    assert resp.status == 200
    gone = socket.create_connection(("127.0.0.1", e.port), timeout=5)
    gone.sendall((f"GET /v1/tail?follow=1&limit=0 HTTP/1.1\r\n"
                  f"Host: x\r\nAuthorization: Bearer {e.api}\r\n\r\n")
                 .encode())
    assert gone.recv(12).startswith(b"HTTP/1.1 200")
    assert wait_for(lambda: followers() == 2, 5)
    gone.close()
    assert wait_for(lambda: followers() == 1, 10), followers()
    assert resp.fp.readline() in (b"\n", b"1\r\n")   # a heartbeat arrived
    live.close()
