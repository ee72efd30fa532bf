# SPDX-License-Identifier: MIT
"""stack.py - the whole local stack, started for end-to-end tests.

Stack(...).start() runs deploy/stack start in a private directory under
/tmp (mode 755, so user postgres can reach its cluster) with every port
picked free on 127.0.0.1, debug endpoints on and PostgreSQL's fsync off;
stop() runs deploy/stack stop and removes the directory (kept when
GROUPS_E2E_KEEP=1).  The object knows the ports, the var directory, the
configuration file and the API secret, and has helpers to call each daemon
over HTTP (with or without the bearer secret), to go through nginx over
HTTPS, to read the supervisor's pid files, to restart PostgreSQL, and to
read errord's events.  Standard library only.  Binaries come from
$GROUPS_BIN (default build/bin of this repository).
"""
import hashlib
import hmac
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STACK = REPO / "deploy" / "stack"
DAEMONS = ("errord", "web", "smtpd", "messageserver", "karl")
DB_DAEMONS = ("web", "messageserver")
PG_BIN = Path("/usr/lib/postgresql/15/bin")
START_TIMEOUT = 180     # deploy/stack start, all stages
STOP_TIMEOUT = 90

# Port names: GROUPS_<NAME>_PORT for deploy/stack, ports[name] here.
PORT_NAMES = ("web_public", "smtp_public", "pg", "errord", "web", "smtpd",
              "smtpd_smtp", "messageserver", "karl", "karl_relay")


def bin_dir():
    return Path(os.environ.get("GROUPS_BIN", REPO / "build" / "bin"))


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (all bound at once, so no
    duplicates; released just before use)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def api_secret_of(secret_file):
    """What every daemon derives from the secret file: lowercase hex of
    HMAC-SHA256(file contents minus trailing whitespace, "api")."""
    key = Path(secret_file).read_bytes().rstrip()
    return hmac.new(key, b"api", hashlib.sha256).hexdigest()


def pid_alive(pid):
    """True if pid exists and is not a zombie."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(pred, timeout, interval=0.1):
    """Poll pred() until it returns a true value or timeout seconds pass;
    returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.body[:200]!r}>"


class StackError(Exception):
    pass


class Stack:
    def __init__(self, debug_endpoints=True, keep=None, extra_conf=None):
        """extra_conf: {key: value} added to groups.conf."""
        self.bin = bin_dir()
        self.extra_conf = dict(extra_conf or {})
        self.debug_endpoints = debug_endpoints
        self.keep = (os.environ.get("GROUPS_E2E_KEEP") == "1"
                     if keep is None else keep)
        self.top = None
        self.var = None
        self.conf = None
        self.ports = {}
        self.api_secret = None
        self.started = False
        self.start_output = ""

    # ------------------------------------------------------------ lifecycle

    def env(self):
        e = dict(os.environ)
        e.update({
            "GROUPS_VAR": str(self.var),
            "GROUPS_BIN": str(self.bin),
            "GROUPS_DEBUG_ENDPOINTS": "yes" if self.debug_endpoints else "no",
            "GROUPS_PG_FAST": "yes",
            # the tests give karl the keys they verify against
            "GROUPS_LOCAL_DKIM": "no",
            "GROUPS_START_TIMEOUT": "60",
            "GROUPS_KARL_RELAY_HOST": "127.0.0.1",
            # karl speaks SMTP to stack.ports["karl_relay"], where a test
            # that wants the mail runs a sink
            "GROUPS_KARL_TRANSPORT": "smtp",
        })
        for name in PORT_NAMES:
            e[f"GROUPS_{name.upper()}_PORT"] = str(self.ports[name])
        if self.extra_conf:
            e["GROUPS_EXTRA_CONF"] = "\n".join(
                f"{k} = {v}" for k, v in self.extra_conf.items())
        return e

    def run_stack(self, *args, timeout=START_TIMEOUT):
        """deploy/stack ARGS with this stack's environment; returns the
        CompletedProcess (text, stdout and stderr captured)."""
        return subprocess.run([str(STACK), *args], env=self.env(),
                              stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout)

    def start(self):
        self.top = Path(tempfile.mkdtemp(prefix="groups-e2e-", dir="/tmp"))
        os.chmod(self.top, 0o755)
        self.var = self.top / "var"
        self.conf = self.var / "groups.conf"
        self.ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES))))
        self.started = True     # stop() must run whatever happens next
        r = self.run_stack("start")
        self.start_output = r.stdout + r.stderr
        if r.returncode != 0:
            raise StackError(f"deploy/stack start exited {r.returncode}:\n"
                             f"{r.stdout}\n{r.stderr}\n{self.log_tails()}")
        self.api_secret = api_secret_of(self.var / "secret")
        return self

    def stop(self):
        """deploy/stack stop, then remove the directory.  Returns the
        CompletedProcess of stop (None if never started)."""
        self.sanitizer_reports = []
        if not self.started:
            return None
        self.started = False
        r = None
        try:
            r = self.run_stack("stop", timeout=STOP_TIMEOUT)
            self.sanitizer_reports = self.find_sanitizer_reports()
        finally:
            if not self.keep:
                self.remove()
            else:
                print(f"stack: kept {self.top}")
        return r

    SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                       "runtime error:")

    def find_sanitizer_reports(self):
        """Lines of ASan/LSan/UBSan reports in the daemons' logs (an ASan
        build logs them there; the tests must not pass over them)."""
        found = []
        for log in sorted((self.var / "log").glob("*.log")):
            text = log.read_text(errors="replace")
            for line in text.splitlines():
                if any(m in line for m in self.SANITIZER_MARKS):
                    found.append(f"{log.name}: {line.strip()}")
        return found

    def remove(self):
        if self.top is None:
            return
        pgdir = self.var / "pg" / "data"
        if pgdir.is_symlink():      # the /var/tmp fallback of deploy/stack
            shutil.rmtree(Path(os.readlink(pgdir)).parent, ignore_errors=True)
        shutil.rmtree(self.top, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------ processes

    def pidfile(self, name):
        """var/run/<name>.pid: a daemon, "supervise" or "nginx"."""
        return self.var / "run" / f"{name}.pid"

    def pid(self, name):
        """The pid in name's pid file, or None (missing, empty, partial)."""
        try:
            text = self.pidfile(name).read_text().strip()
            return int(text) if text else None
        except (OSError, ValueError):
            return None

    def supervisor_pid(self):
        return self.pid("supervise")

    def nginx_pid(self):
        return self.pid("nginx")

    def daemon_pids(self):
        return {d: self.pid(d) for d in DAEMONS}

    def postmaster_pid(self):
        try:
            first = (self.var / "pg" / "data" / "postmaster.pid") \
                .read_text().split("\n", 1)[0]
            return int(first)
        except (OSError, ValueError):
            return None

    def wait_new_pid(self, name, old, timeout=10):
        """Wait until name's pid file holds a live pid other than old."""
        def check():
            p = self.pid(name)
            return p if p and p != old and pid_alive(p) else None
        return wait_for(check, timeout)

    def pg_datadir(self):
        return Path(os.path.realpath(self.var / "pg" / "data"))

    def pg_ctl(self, *args, timeout=60):
        """pg_ctl -D <datadir> ARGS, as user postgres when root."""
        cmd = [str(PG_BIN / "pg_ctl"), "-D", str(self.pg_datadir()), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        with tempfile.TemporaryFile("w+") as out:
            r = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT,
                               text=True, stdin=subprocess.DEVNULL,
                               timeout=timeout)
            out.seek(0)
            r.stdout, r.stderr = out.read(), ""
        return r

    def restart_postgres(self):
        """pg_ctl restart -m fast.  The server's output must go to its log
        (-l): a server holding our pipe would make the wait endless."""
        log = os.path.realpath(self.var / "pg" / "postgresql.log")
        r = self.pg_ctl("restart", "-m", "fast", "-w", "-t", "30", "-l", log)
        if r.returncode != 0:
            raise StackError(f"pg_ctl restart: {r.stdout}{r.stderr}")

    def log_tails(self, lines=20):
        """The last lines of every log under var/log (for failures)."""
        out = []
        logdir = self.var / "log" if self.var else None
        if logdir is None or not logdir.is_dir():
            return ""
        for f in sorted(logdir.iterdir()):
            try:
                text = f.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            out.append(f"---- {f}\n" + "\n".join(text))
        return "\n".join(out)

    # ------------------------------------------------------------- database

    def conninfo(self):
        """The stack's db_conninfo, as the daemons read it."""
        out = subprocess.run([str(self.bin / "errord"), "-f", str(self.conf),
                              "-n"], capture_output=True, text=True,
                             check=True).stdout
        return next(line.split(" = ", 1)[1] for line in out.splitlines()
                    if line.startswith("db_conninfo = "))

    def sql(self, query, *args):
        """Rows of query through psql (lists of strings; NULL is "").
        Arguments are psql variables: :'v1', :'v2', ..."""
        cmd = ["psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
               "-F", "\t", "-R", "\x1e", self.conninfo()]
        for i, a in enumerate(args, 1):
            cmd += ["-v", f"v{i}={a}"]
        r = subprocess.run(cmd, input=query, capture_output=True, text=True,
                           check=True, timeout=60)
        out = r.stdout[:-1] if r.stdout.endswith("\n") else r.stdout
        return [rec.split("\t") for rec in out.split("\x1e") if rec]

    # ----------------------------------------------------------------- HTTP

    def port(self, daemon):
        return self.ports[daemon]

    def request(self, daemon, method, path, body=None, headers=None,
                auth=False, timeout=10):
        """One HTTP request to a daemon on 127.0.0.1.  body: bytes, str,
        or a JSON-able object (sent as application/json).  auth: True for
        the right bearer secret, a string for that header value."""
        return http_request("127.0.0.1", self.port(daemon), method, path,
                            body=body, headers=self._headers(headers, auth),
                            timeout=timeout)

    def get(self, daemon, path, auth=False, **kw):
        return self.request(daemon, "GET", path, auth=auth, **kw)

    def post(self, daemon, path, body, auth=True, **kw):
        return self.request(daemon, "POST", path, body=body, auth=auth, **kw)

    def _headers(self, headers, auth):
        h = dict(headers or {})
        if auth is True:
            h["Authorization"] = f"Bearer {self.api_secret}"
        elif isinstance(auth, str):
            h["Authorization"] = auth
        return h

    def healthz(self, daemon):
        """The /healthz status code, 0 if the daemon does not answer."""
        try:
            return self.get(daemon, "/healthz", timeout=2).status
        except OSError:
            return 0

    def wait_healthy(self, daemon, timeout=10):
        return wait_for(lambda: self.healthz(daemon) == 200, timeout)

    def ssl_context(self):
        """Trusts exactly the stack's self-signed certificate."""
        ctx = ssl.create_default_context(
            cafile=str(self.var / "tls" / "cert.pem"))
        ctx.check_hostname = True
        return ctx

    def https(self, method, path, body=None, headers=None, timeout=10):
        """A request to nginx's HTTPS port, verified against the stack's
        certificate for the name localhost."""
        conn = _HTTPSLoopback(self.ports["web_public"], self.ssl_context(),
                              timeout)
        return _exchange(conn, method, path, body, headers)

    def crash(self, daemon):
        """POST /v1/debug/crash: the daemon dies with SIGSEGV.  Returns the
        status if a reply came (it should not), else None."""
        try:
            return self.post(daemon, "/v1/debug/crash", {}, timeout=5).status
        except (OSError, http.client.HTTPException):
            return None

    # --------------------------------------------------------------- errord

    def errord_events(self, daemon=None, level=None, limit=100, since=None,
                      text=None):
        """GET errord /v1/tail: a list of event dicts (time, daemon, pid,
        level, message, optional backtrace...)."""
        q = {"limit": str(limit)}
        if daemon:
            q["daemon"] = daemon
        if level:
            q["level"] = level
        if since is not None:
            q["since"] = str(since)
        if text:
            q["text"] = text
        r = self.get("errord", "/v1/tail?" + urllib.parse.urlencode(q),
                     auth=True)
        if r.status != 200:
            raise StackError(f"errord tail: {r.status} {r.text}")
        return [json.loads(line) for line in r.text.splitlines()
                if line.strip()]

    def wait_errord_event(self, pred, timeout=5, **query):
        """Poll errord until an event satisfies pred; returns it or None."""
        def check():
            try:
                evs = self.errord_events(**query)
            except (OSError, StackError, http.client.HTTPException):
                return None
            return next((e for e in evs if pred(e)), None)
        return wait_for(check, timeout, interval=0.2)


class _HTTPSLoopback(http.client.HTTPSConnection):
    """Connects to 127.0.0.1 but verifies the certificate as localhost."""

    def __init__(self, port, context, timeout):
        super().__init__("localhost", port, context=context, timeout=timeout)
        self._ctx = context

    def connect(self):
        sock = socket.create_connection(("127.0.0.1", self.port),
                                        self.timeout)
        self.sock = self._ctx.wrap_socket(sock, server_hostname="localhost")


def _exchange(conn, method, path, body, headers):
    h = dict(headers or {})
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    if isinstance(body, str):
        body = body.encode()
    try:
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        return Response(r.status, dict(r.getheaders()), r.read())
    finally:
        conn.close()


def http_request(host, port, method, path, body=None, headers=None,
                 timeout=10):
    """Plain HTTP/1.1 request; returns a Response."""
    return _exchange(http.client.HTTPConnection(host, port, timeout=timeout),
                     method, path, body, headers)


def http_send_large(host, port, path, headers, size, timeout=30):
    """POST a body of size bytes, tolerating a server that answers (413)
    before it has read it all.  Returns (status, body bytes)."""
    h = {"Host": f"{host}:{port}", "Content-Length": str(size),
         "Connection": "close"}
    h.update(headers)
    head = f"POST {path} HTTP/1.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    chunk = b"x" * 65536
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(head.encode())
        sent = 0
        try:
            while sent < size:
                n = min(len(chunk), size - sent)
                s.sendall(chunk[:n])
                sent += n
        except (BrokenPipeError, ConnectionResetError):
            pass            # the server gave up reading: fine
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        data = b""
        while True:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            data += b
            if len(data) > 1 << 20:
                break
    if not data.startswith(b"HTTP/1."):
        raise StackError(f"no HTTP reply: {data[:100]!r}")
    status = int(data.split(b" ", 2)[1])
    body = data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
    return status, _dechunk(data, body)


def _dechunk(raw, body):
    head = raw.split(b"\r\n\r\n", 1)[0].lower()
    if b"transfer-encoding: chunked" not in head:
        return body
    out, rest = b"", body
    while rest:
        line, _, rest = rest.partition(b"\r\n")
        try:
            n = int(line.split(b";")[0], 16)
        except ValueError:
            break
        if n == 0:
            break
        out, rest = out + rest[:n], rest[n + 2:]
    return out
