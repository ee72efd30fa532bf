# SPDX-License-Identifier: MIT
"""mailtest.py - what the end-to-end tests of outgoing mail share: an
aiosmtpd handler that keeps what it is given (and defers, rejects by
local part), DKIM keys made with openssl for a domain, and token.h's
tokens checked the way messageserver checks them; also a sink that
notes RCPT times and answers 451 a given number of times, a self-signed
certificate for 127.0.0.1, both DKIM verifiers (python3-dkim and
libopendkim through test_dkim) over one delivered copy, and a /metrics
parser.  Standard library, aiosmtpd, python3-dkim and openssl only."""
import base64
import collections
import hashlib
import hmac
import os
import re
import subprocess
import threading
import time
from pathlib import Path


class Sink:
    """aiosmtpd handler keeping every message taken, per recipient.
    Local parts starting "reject" get 550, "later" 451 once, "defer" 452
    always."""

    def __init__(self):
        self.lock = threading.Lock()
        self.got = collections.defaultdict(list)    # rcpt -> [(from, data)]
        self.tries = collections.Counter()
        self.count = 0
        self.sessions = set()      # SMTP sessions that carried a message
        self.how = set()           # (STARTTLS used, AUTH login) per message

    async def handle_RCPT(self, server, session, envelope, address, opts):
        local = address.split("@")[0]
        with self.lock:
            self.tries[address] += 1
            n = self.tries[address]
        if local.startswith("reject"):
            return "550 5.1.1 no such user here"
        if local.startswith("later") and n == 1:
            return "451 4.3.0 try again later"
        if local.startswith("defer"):
            return "452 4.2.2 mailbox full"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            for r in envelope.rcpt_tos:
                self.got[r].append((envelope.mail_from,
                                    envelope.original_content))
            self.count += 1
            self.sessions.add(session)
            self.how.add((session.ssl is not None,
                          getattr(session, "auth_data", None)))
        return "250 2.0.0 OK"


def dkim_keys(d, domain, selectors=("rsa", "ed")):
    """An RSA-2048 and an Ed25519 key for domain in directory d, under
    the two selectors: (dkim_keys config value, {TXT name.: record})."""
    rsa, ed = d / "rsa.pem", d / "ed.pem"
    for alg, out, extra in (("RSA", rsa, ["-pkeyopt", "rsa_keygen_bits:2048"]),
                            ("ed25519", ed, [])):
        subprocess.run(["openssl", "genpkey", "-algorithm", alg, *extra,
                        "-out", str(out)], check=True, capture_output=True)
        os.chmod(out, 0o644)

    def pub(path):
        return subprocess.run(["openssl", "pkey", "-in", str(path),
                               "-pubout", "-outform", "DER"], check=True,
                              capture_output=True).stdout
    s_rsa, s_ed = selectors
    txt = {f"{s_rsa}._domainkey.{domain}.": "v=DKIM1; k=rsa; p=" +
           base64.b64encode(pub(rsa)).decode(),
           # RFC 8463: the raw 32-byte key, not the SPKI DER
           f"{s_ed}._domainkey.{domain}.": "v=DKIM1; k=ed25519; p=" +
           base64.b64encode(pub(ed)[-32:]).decode()}
    return f"{domain} {s_rsa} {rsa}, {domain} {s_ed} {ed}", txt


def _key(st, purpose):
    secret = (st.var / "secret").read_bytes().rstrip()
    return hmac.new(secret, purpose.encode(), hashlib.sha256).digest()


def _unb64(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def verify_token(st, purpose, token):
    """The payload of a token.h token (b64url(payload).expires.b64url(
    mac)) under stack st's secret, or None if the signature is wrong."""
    p64, expires, m64 = token.split(".")
    payload = _unb64(p64)
    want = hmac.new(_key(st, purpose), purpose.encode() + b"\n" + payload +
                    b"\n" + expires.encode(), hashlib.sha256).digest()
    return payload.decode() if hmac.compare_digest(want, _unb64(m64)) \
        else None


def verify_short_token(st, purpose, token):
    """The payload of a short token (token_short_sign: payload "."
    base32 of the first 10 MAC bytes, any case), or None."""
    payload, mac = token.lower().rsplit(".", 1)
    want = hmac.new(_key(st, purpose), purpose.encode() + b"\n" +
                    payload.encode() + b"\n0", hashlib.sha256).digest()[:10]
    return payload if base64.b32encode(want).decode().lower() == mac \
        else None


class TimedSink(Sink):
    """Sink that also notes when each RCPT came (wall-clock seconds, per
    address), the order copies arrived in (one address per copy), and
    answers 451 to the first `tempfail` RCPTs of local parts starting
    "back" (then like Sink).  accept_all = True makes every later RCPT
    250, "defer" ones included."""

    def __init__(self, tempfail=0):
        super().__init__()
        self.tempfail = tempfail
        self.accept_all = False
        self.rcpt_times = collections.defaultdict(list)
        self.order = []

    async def handle_RCPT(self, server, session, envelope, address, opts):
        local = address.split("@")[0]
        with self.lock:
            self.rcpt_times[address].append(time.time())
        if not (self.accept_all or local.startswith("back")):
            return await super().handle_RCPT(server, session, envelope,
                                             address, opts)
        with self.lock:
            self.tries[address] += 1
            n = self.tries[address]
        if not self.accept_all and n <= self.tempfail:
            return "451 4.3.0 not yet"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.order.extend(envelope.rcpt_tos)
        return await super().handle_DATA(server, session, envelope)


def tls_cert(d, name="cert", san="IP:127.0.0.1,DNS:localhost"):
    """A self-signed certificate for san (by default 127.0.0.1 and
    localhost) in directory d: (cert path, key path)."""
    cert, key = d / f"{name}.pem", d / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext",
                    f"subjectAltName={san}"],
                   check=True, capture_output=True)
    os.chmod(cert, 0o644)
    os.chmod(key, 0o644)
    return cert, key


def dkim_dnsfunc(txt):
    """python3-dkim's dnsfunc answering from {TXT name.: record}."""
    def dnsfunc(name, timeout=5):
        n = name.decode() if isinstance(name, bytes) else name
        return txt.get(n if n.endswith(".") else n + ".", "").encode()
    return dnsfunc


def opendkim_verifier():
    """build/tests/test_dkim next to $GROUPS_BIN (libopendkim's verifier
    in its DKIM_VERIFY_KEYS mode)."""
    here = Path(__file__).resolve().parents[2]
    return Path(os.environ.get("GROUPS_BIN", here / "build" / "bin")) \
        .parent / "tests" / "test_dkim"


def verify_dkim_both(data, txt, keyfile):
    """Check every DKIM signature of data with python3-dkim and with
    libopendkim (test_dkim, keys in keyfile: "name record" lines).
    Returns [] when there are exactly an rsa-sha256 and an
    ed25519-sha256 signature and both verifiers pass them all, else a
    list of what failed."""
    import dkim
    bad = []
    n = len(re.findall(rb"^DKIM-Signature:", data, re.M | re.I))
    if n != 2:
        bad.append(f"{n} signatures")
    for idx in range(n):
        if not dkim.DKIM(data).verify(idx=idx, dnsfunc=dkim_dnsfunc(txt)):
            bad.append(f"python3-dkim: signature {idx}")
    tool = opendkim_verifier()
    if not tool.exists():
        return bad + [f"{tool} not built"]
    r = subprocess.run([str(tool)], input=data, capture_output=True,
                       env=dict(os.environ, DKIM_VERIFY_KEYS=str(keyfile)))
    lines = sorted(f"{x.split()[0]} {x.split()[-1]}"
                   for x in r.stdout.decode().splitlines() if x.strip())
    if r.returncode != 0 or lines != ["ed25519-sha256 pass",
                                      "rsa-sha256 pass"]:
        bad.append(f"libopendkim: rc {r.returncode} {r.stdout!r} "
                   f"{r.stderr!r}")
    return bad


def dkim_keyfile(path, txt):
    """Write txt ({TXT name.: record}) as test_dkim's keys file."""
    path.write_text("".join(f"{n.rstrip('.')} {v}\n"
                            for n, v in txt.items()))
    return path


def metrics(text):
    """Prometheus text -> {'name{labels}': value}."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            try:
                out[k] = float(v)
            except ValueError:
                pass
    return out
