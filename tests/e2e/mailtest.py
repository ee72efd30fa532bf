# SPDX-License-Identifier: MIT
"""mailtest.py - what the end-to-end tests of outgoing mail share: an
aiosmtpd handler that keeps what it is given (and defers, rejects by
local part), DKIM keys made with openssl for a domain, and token.h's
tokens checked the way messageserver checks them.  Standard library,
aiosmtpd and openssl only."""
import base64
import collections
import hashlib
import hmac
import os
import subprocess
import threading


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
