# SPDX-License-Identifier: MIT
"""test_stack.py - the local stack as an operator and a client see it.

Runs against the session's real stack (conftest.py): every daemon healthy
with Prometheus metrics; the web over HTTPS through nginx (certificate
verified, HTTP/2, static Bootstrap, /metrics not public); an SMTP greeting
through nginx's mail proxy; the supervisor restarting a daemon killed with
SIGKILL; the database daemons riding out a PostgreSQL restart without
being restarted; bad configuration files refused with exit status 2 and a
one-line reason; bad requests answered 4xx with a JSON error while the
daemon stays up; deploy/stack start being harmless when the stack runs; and,
on a private stack, deploy/stack stop ending exactly its processes while
keeping var/ for the next start.
"""
import json
import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from stack import (DAEMONS, DB_DAEMONS, api_secret_of, http_send_large,
                   pid_alive, wait_for)

METRIC_LINE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*'                      # name
    r'(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"'     # first label
    r'(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*,?\})?'
    r' [-+]?([0-9.eE+-]+|NaN|[+-]?Inf)( -?[0-9]+)?$')
META_LINE = re.compile(r'^# (HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*|'
                       r'TYPE [a-zA-Z_:][a-zA-Z0-9_:]* '
                       r'(counter|gauge|histogram|summary|untyped))$')


def error_json(r):
    """The "error" string of a JSON error reply (fails the test if the
    body is not {"error": "..."})."""
    assert r.headers.get("Content-Type", "").startswith("application/json"), \
        r
    body = r.json()
    assert isinstance(body.get("error"), str) and body["error"], r
    return body["error"]


# ------------------------------------------------------------ health, metrics

@pytest.mark.parametrize("daemon", DAEMONS)
def test_healthz(stack, daemon):
    r = stack.get(daemon, "/healthz")
    assert r.status == 200, r
    assert isinstance(r.json(), dict)


@pytest.mark.parametrize("daemon", DAEMONS)
def test_metrics_are_prometheus_text(stack, daemon):
    r = stack.get(daemon, "/metrics")
    assert r.status == 200, r
    assert r.headers.get("Content-Type", "").startswith("text/plain"), r
    lines = [ln for ln in r.text.splitlines() if ln.strip()]
    assert lines, "empty /metrics"
    bad = [ln for ln in lines
           if not (META_LINE.match(ln) if ln.startswith("#")
                   else METRIC_LINE.match(ln))]
    assert not bad, f"not Prometheus text: {bad[:5]}"
    assert any(ln.startswith("# TYPE ") for ln in lines)
    assert any(not ln.startswith("#") for ln in lines)


@pytest.mark.parametrize("daemon", DAEMONS)
def test_daemon_start_reached_errord(stack, daemon):
    # filtered by text: a busy daemon's start is not among its last events
    ev = stack.wait_errord_event(lambda e: "started" in e.get("message", ""),
                                 timeout=5, daemon=daemon, text="started")
    assert ev, f"no start event of {daemon} in errord"
    for field in ("time", "daemon", "pid", "level", "message"):
        assert field in ev, ev


def test_supervisor_pid_files(stack):
    sup = stack.supervisor_pid()
    assert pid_alive(sup)
    log = (stack.var / "log" / "supervise.log").read_text()
    for d in DAEMONS:
        pid = stack.pid(d)
        assert pid_alive(pid), d
        assert os.getpgid(pid) == pid, f"{d} not in its own process group"
        assert Path(f"/proc/{pid}/status").read_text().count(
            f"PPid:\t{sup}\n") == 1, f"{d} is not a child of the supervisor"
        assert re.search(rf"(start|restart) {d} pid \d+", log), d


# --------------------------------------------------------------------- nginx

def test_web_through_nginx_https(stack):
    r = stack.https("GET", "/healthz")
    assert r.status == 200, r
    r = stack.https("GET", "/")
    assert r.status < 500, r


def test_nginx_offers_http2(stack):
    ctx = stack.ssl_context()
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", stack.ports["web_public"]),
                                  timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            assert s.selected_alpn_protocol() == "h2"
            assert s.version() in ("TLSv1.2", "TLSv1.3")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_nginx_refuses_old_tls(stack):
    ctx = stack.ssl_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with socket.create_connection(("127.0.0.1", stack.ports["web_public"]),
                                  timeout=5) as raw:
        with pytest.raises(ssl.SSLError):
            ctx.wrap_socket(raw, server_hostname="localhost")


@pytest.mark.skipif(not Path("/usr/share/javascript/bootstrap5").is_dir(),
                    reason="libjs-bootstrap5 not installed")
def test_nginx_serves_bootstrap(stack):
    r = stack.https("GET", "/static/bootstrap/css/bootstrap.min.css")
    assert r.status == 200, r
    assert r.headers.get("Content-Type", "").startswith("text/css")


def test_metrics_not_public(stack):
    assert stack.https("GET", "/metrics").status == 404
    assert stack.https("POST", "/v1/debug/crash", body=b"{}").status == 404
    assert stack.healthz("web") == 200


def test_smtp_greeting_through_nginx(stack):
    s = smtplib.SMTP(timeout=10)
    try:
        code, banner = s.connect("127.0.0.1", stack.ports["smtp_public"])
        assert code == 220, banner
        code, _ = s.ehlo("client.example.com")
        assert code == 250
    finally:
        try:
            s.quit()
        except smtplib.SMTPServerDisconnected:
            pass


# ----------------------------------------------------------------- supervisor

@pytest.mark.parametrize("daemon", ["karl", "web"])
def test_supervisor_restarts_killed_daemon(stack, daemon):
    old = stack.pid(daemon)
    assert pid_alive(old)
    t0 = time.monotonic()
    os.kill(old, signal.SIGKILL)
    new = stack.wait_new_pid(daemon, old, timeout=10)
    assert new, f"{daemon} not restarted"
    assert stack.wait_healthy(daemon, timeout=10 - (time.monotonic() - t0)), \
        f"{daemon} not healthy again within 10 s\n{stack.log_tails()}"
    assert not pid_alive(old)
    log = (stack.var / "log" / "supervise.log").read_text()
    assert f"exit {daemon} pid {old}: signal 9" in log


def test_db_daemons_survive_postgres_restart(stack):
    before = {d: stack.pid(d) for d in DB_DAEMONS}
    pm = stack.postmaster_pid()
    stack.restart_postgres()
    assert stack.postmaster_pid() != pm
    t0 = time.monotonic()
    for d in DB_DAEMONS:
        left = 10 - (time.monotonic() - t0)
        assert stack.wait_healthy(d, timeout=max(left, 0.1)), \
            f"{d} not healthy within 10 s of the restart\n{stack.log_tails()}"
    assert {d: stack.pid(d) for d in DB_DAEMONS} == before, \
        "a database daemon was restarted"


# -------------------------------------------------------------- configuration

def _conf_with(stack, tmp_path, key, value):
    """The stack's configuration with key's line replaced (or added)."""
    lines = stack.conf.read_text().splitlines()
    out = [ln for ln in lines
           if not re.match(rf"\s*{re.escape(key)}\s*=", ln)]
    out.append(f"{key} = {value}")
    p = tmp_path / "bad.conf"
    p.write_text("\n".join(out) + "\n")
    return p


def _check(stack, conf):
    return subprocess.run([str(stack.bin / "errord"), "-f", str(conf), "-n"],
                          capture_output=True, text=True, timeout=10,
                          stdin=subprocess.DEVNULL)


def test_config_print_effective(stack):
    r = _check(stack, stack.conf)
    assert r.returncode == 0, r.stderr
    kv = dict(ln.split(" = ", 1) for ln in r.stdout.splitlines()
              if " = " in ln)
    assert kv.get("errord_port") == str(stack.ports["errord"])
    assert kv.get("crash_dir") == str(stack.var / "crash")   # ${var_dir}
    assert kv.get("debug_endpoints") == "yes"
    secret = (stack.var / "secret").read_text().strip()
    assert secret not in r.stdout and stack.api_secret not in r.stdout


@pytest.mark.parametrize("daemon", DAEMONS)
def test_config_unknown_key(stack, tmp_path, daemon):
    conf = _conf_with(stack, tmp_path, "no_such_key", "1")
    r = subprocess.run([str(stack.bin / daemon), "-f", str(conf), "-n"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "no_such_key" in lines[0] and str(conf) in lines[0]
    assert r.stdout == ""


@pytest.mark.parametrize("value", ["17x00", "70000", ""])
def test_config_bad_number(stack, tmp_path, value):
    conf = _conf_with(stack, tmp_path, "errord_port", value)
    r = _check(stack, conf)
    assert r.returncode == 2, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "errord_port" in lines[0]


def test_config_bad_boolean(stack, tmp_path):
    conf = _conf_with(stack, tmp_path, "debug_endpoints", "maybe")
    r = _check(stack, conf)
    assert r.returncode == 2, r
    assert len(r.stderr.strip().splitlines()) == 1
    assert "debug_endpoints" in r.stderr


def test_config_missing_file(stack, tmp_path):
    conf = tmp_path / "does-not-exist.conf"
    r = _check(stack, conf)
    assert r.returncode == 2, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert str(conf) in lines[0]


# ------------------------------------------------------------- bad requests

def test_malformed_json(stack):
    pid = stack.pid("errord")
    for body in (b"{", b'{"events": [}', b'{"events": []} trailing', b"[]",
                 b'{"a": 1, "a": 2}', b"\xff\xfe"):
        r = stack.post("errord", "/v1/log", body,
                       headers={"Content-Type": "application/json"})
        assert 400 <= r.status < 500, (body, r)
        error_json(r)
    assert stack.healthz("errord") == 200
    assert stack.pid("errord") == pid


def test_wrong_content_type(stack):
    r = stack.post("errord", "/v1/log", b'{"events": []}',
                   headers={"Content-Type": "text/plain"})
    assert 400 <= r.status < 500, r
    error_json(r)


@pytest.mark.parametrize("auth", [None, "Bearer wrong", "Basic Zm9vOmJhcg==",
                                  "Bearer ", "bearer"])
def test_missing_or_wrong_authorization(stack, auth):
    r = stack.post("errord", "/v1/log", {"events": []}, auth=auth or False)
    assert r.status == 401, r
    error_json(r)
    r = stack.get("errord", "/v1/tail?limit=1", auth=auth or False)
    assert r.status == 401, r
    assert stack.healthz("errord") == 200


@pytest.mark.parametrize("daemon,path,size", [
    # errord's /v1/log takes up to 8 MiB (ERRORD_MAX_BODY); 9 MiB is 413
    ("errord", "/v1/log", 9 * 1024 * 1024),
    # routes without their own bound take http_max_body (1 MiB): 2 MiB is
    # refused before any handler runs (here the crash trigger, so a
    # failure would show as a restarted web)
    ("web", "/v1/debug/crash", 2 * 1024 * 1024),
])
def test_oversize_body(stack, daemon, path, size):
    pid = stack.pid(daemon)
    status, body = http_send_large(
        "127.0.0.1", stack.ports[daemon], path,
        {"Authorization": f"Bearer {stack.api_secret}",
         "Content-Type": "application/json"}, size)
    assert status == 413, body
    assert "error" in json.loads(body)
    assert stack.healthz(daemon) == 200
    assert stack.pid(daemon) == pid


def test_unknown_endpoint_is_json_404(stack):
    r = stack.get("errord", "/v1/no-such-thing", auth=True)
    assert r.status == 404, r
    error_json(r)


# ----------------------------------------------------------- deploy/stack

def test_start_again_is_harmless(stack):
    sup, daemons, ngx = (stack.supervisor_pid(), stack.daemon_pids(),
                         stack.nginx_pid())
    r = stack.run_stack("start")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"https://localhost:{stack.ports['web_public']}/" in r.stdout
    assert stack.supervisor_pid() == sup
    assert stack.daemon_pids() == daemons
    assert stack.nginx_pid() == ngx


def test_status_reports_running(stack):
    r = stack.run_stack("status", timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    for name in DAEMONS + ("groups-supervise", "nginx", "postgresql"):
        assert re.search(rf"^{name}\s+running", r.stdout, re.M), r.stdout


def test_generated_files(stack):
    assert (stack.var / "secret").stat().st_mode & 0o777 == 0o600
    assert (stack.var / "nginx" / "nginx.conf").stat().st_mode & 0o777 \
        == 0o600
    assert (stack.var / "demo-admin.txt").stat().st_mode & 0o777 == 0o600
    assert stack.api_secret in (stack.var / "nginx" / "nginx.conf") \
        .read_text()
    assert api_secret_of(stack.var / "secret") == stack.api_secret


def test_stop_ends_exactly_the_stack_and_keeps_data(make_stack):
    st = make_stack()
    pids = {"supervise": st.supervisor_pid(), "nginx": st.nginx_pid(),
            "postgres": st.postmaster_pid(), **st.daemon_pids()}
    assert all(pid_alive(p) for p in pids.values()), pids
    secret = (st.var / "secret").read_bytes()
    conf = st.conf.read_text()

    r = st.run_stack("stop", timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    alive = wait_for(lambda: not any(pid_alive(p) for p in pids.values()),
                     5)
    assert alive, {k: p for k, p in pids.items() if pid_alive(p)}
    for f in ("groups.conf", "secret", "pg/data/PG_VERSION", "tls/cert.pem",
              "tls/key.pem", "demo-admin.txt"):
        assert (st.var / f).exists(), f
    assert any((st.var / "errord").iterdir()), "errord's store is gone"
    assert not st.pidfile("supervise").exists()
    assert not any(st.pidfile(d).exists() for d in DAEMONS)

    r = st.run_stack("status", timeout=60)
    assert r.returncode == 3, r.stdout
    r = st.run_stack("stop", timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr

    # The next start takes up the same data.
    r = st.run_stack("start")
    assert r.returncode == 0, r.stdout + r.stderr + st.log_tails()
    assert (st.var / "secret").read_bytes() == secret
    assert st.conf.read_text() == conf
    assert "initdb" not in r.stdout
    for d in DAEMONS:
        assert st.healthz(d) == 200, d
    assert st.supervisor_pid() != pids["supervise"]


def test_db_down_is_reported_and_start_repairs(stack):
    """PostgreSQL stopped: the database daemons say so on /healthz (503)
    but keep running; deploy/stack start brings back only what is missing."""
    pids = stack.daemon_pids()
    sup = stack.supervisor_pid()
    r = stack.pg_ctl("stop", "-m", "fast", "-w", "-t", "30")
    assert r.returncode == 0, r.stdout
    try:
        for d in DB_DAEMONS:
            assert wait_for(lambda: stack.healthz(d) == 503, 10), \
                f"{d} /healthz is {stack.healthz(d)} with the database down"
        assert stack.healthz("errord") == 200
    finally:
        r = stack.run_stack("start")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "starting PostgreSQL" in r.stdout
    for d in DB_DAEMONS:
        assert stack.wait_healthy(d, 10), d
    assert stack.daemon_pids() == pids
    assert stack.supervisor_pid() == sup
