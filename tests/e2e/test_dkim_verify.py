# SPDX-License-Identifier: MIT
"""Signatures of src/common/dkim.c checked by an independent verifier,
python3-dkim (dkimpy), for rsa-sha256 and ed25519-sha256.

The signer is driven through the unit test binary's test-only mode
(build/tests/test_dkim with DKIM_SIGN_KEY, DKIM_SIGN_DOMAIN and
DKIM_SIGN_SELECTOR set signs stdin and prints the signed message), with
keys made by `openssl genpkey` and published the way docs/dkim.md tells
operators to: p= is the SPKI DER for RSA and the raw 32-byte key for
Ed25519 (RFC 8463 4.2).  dkimpy reads them through dnsfunc, not DNS.  No
stack is needed.
"""
import base64
import os
import subprocess
from pathlib import Path

import pytest

import dkim

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("GROUPS_BIN", REPO / "build" / "bin"))
SIGNER = BIN.parent / "tests" / "test_dkim"
DOMAIN = "example.org"
ALGS = {"rsa": "rsa-sha256", "ed25519": "ed25519-sha256"}

HDRS = (b"From: Alice <alice@example.org>\r\n"
        b"To: group@example.org\r\n"
        b"Subject: hello\r\n"
        b"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\n"
        b"Message-ID: <1@example.org>\r\n")

MESSAGES = {
    "simple": HDRS + b"\r\nHello, world.\r\n",
    "folded": (b"From:   Alice\r\n\t<alice@example.org>  \r\n"
               b"To: a@example.org,\r\n   b@example.org,\r\n"
               b"\tc@example.org\r\n"
               b"Subject:  a  long\t\tsubject  \r\n   folded twice\r\n"
               b"Received: from x by y; Thu, 03 Dec 2026 10:00:00 +0000\r\n"
               b"\r\nbody\r\n"),
    "trailing-wsp": HDRS + (b"\r\nline  with   runs \t \r\n\t\tindented\r\n"
                            b" \r\n\r\n\r\n"),
    "empty-body": HDRS + b"\r\n",
    "no-body": HDRS,
    "repeated": (b"Received: one\r\nFrom: alice@example.org\r\n"
                 b"To: first@example.org\r\nSubject: s\r\n"
                 b"To: second@example.org\r\n"
                 b"List-Id: <g.example.org>\r\n"
                 b"List-Unsubscribe: <mailto:u@example.org>\r\n"
                 b"MIME-Version: 1.0\r\n"
                 b"Content-Type: text/plain; charset=utf-8\r\n"
                 b"\r\nbody\r\n"),
    "utf8": ("From: =?utf-8?q?Zo=C3=AB?= <zoe@example.org>\r\n"
             "To: group@example.org\r\n"
             "Subject: café ☕\r\n"
             "MIME-Version: 1.0\r\n"
             "Content-Type: text/plain; charset=utf-8\r\n"
             "Content-Transfer-Encoding: 8bit\r\n"
             "\r\nHéllo — 😀  naïve\r\n日本語\r\n").encode(),
}


def crlf(data):
    """data with every line ending in CRLF, as it travels over SMTP."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def real_world():
    return {p.name: crlf(p.read_bytes())
            for p in sorted((REPO / "tests" / "data" / "mail").glob("*.eml"))}


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """{alg: (pem path, selector)} and the TXT records, keyed by DNS name."""
    if not SIGNER.exists():
        pytest.fail(f"{SIGNER} is not built (make {SIGNER.relative_to(REPO)}"
                    " or make e2e)", pytrace=False)
    d = tmp_path_factory.mktemp("dkim")
    out, txt = {}, {}
    for alg, genopts in (("rsa", ["-algorithm", "RSA", "-pkeyopt",
                                  "rsa_keygen_bits:2048"]),
                         ("ed25519", ["-algorithm", "ED25519"])):
        pem = d / f"{alg}.pem"
        subprocess.run(["openssl", "genpkey", *genopts, "-out", str(pem)],
                       check=True, capture_output=True)
        der = subprocess.run(["openssl", "pkey", "-in", str(pem), "-pubout",
                              "-outform", "DER"],
                             check=True, capture_output=True).stdout
        # RFC 8463 4.2: the raw key, which ends the SPKI DER
        pub = der if alg == "rsa" else der[-32:]
        sel = f"sel-{alg}"
        txt[f"{sel}._domainkey.{DOMAIN}.".encode()] = (
            f"v=DKIM1; k={alg}; p=".encode() + base64.b64encode(pub))
        out[alg] = (pem, sel)
    return out, txt


def sign(keys, alg, msg):
    (pem, sel) = keys[0][alg]
    env = dict(os.environ, DKIM_SIGN_KEY=str(pem), DKIM_SIGN_DOMAIN=DOMAIN,
               DKIM_SIGN_SELECTOR=sel)
    r = subprocess.run([str(SIGNER)], input=msg, env=env,
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert r.stdout.endswith(msg)
    return r.stdout


def verify(keys, signed):
    txt = keys[1]

    def dnsfunc(name, timeout=5):
        return txt.get(name)
    return dkim.verify(signed, dnsfunc=dnsfunc)


def test_nacl_present():
    # python3-dkim verifies ed25519 only with python3-nacl installed
    import nacl.signing  # noqa: F401


@pytest.mark.parametrize("alg", ALGS)
@pytest.mark.parametrize("name", MESSAGES)
def test_verifies(keys, alg, name):
    signed = sign(keys, alg, MESSAGES[name])
    assert signed.startswith(b"DKIM-Signature: v=1; a=%s; "
                             % ALGS[alg].encode())
    assert verify(keys, signed), signed.decode(errors="replace")


@pytest.mark.parametrize("alg", ALGS)
def test_real_world_messages(keys, alg):
    msgs = real_world()
    assert msgs, "no tests/data/mail/*.eml"
    for name, msg in msgs.items():
        signed = sign(keys, alg, msg)
        assert verify(keys, signed), name


@pytest.mark.parametrize("alg", ALGS)
def test_tampering_fails(keys, alg):
    signed = sign(keys, alg, MESSAGES["repeated"])
    assert verify(keys, signed)
    for old, new in ((b"\r\n\r\nbody", b"\r\n\r\nBody"),
                     (b"Subject: s", b"Subject: t"),
                     (b"first@", b"First@"),
                     (b"second@", b"Second@"),
                     (b"List-Id: <g.", b"List-Id: <h."),
                     # a From added above: the over-signed "from" covers it
                     (b"Received: one",
                      b"From: mallory@example.org\r\nReceived: one")):
        assert old in signed
        assert not verify(keys, signed.replace(old, new, 1)), new
    # what relaxed canonicalisation and h= allow
    for old, new in ((b"Received: one", b"Received: two\r\nX-New: 1"),
                     (b"Subject: s", b"Subject:   s  "),
                     (b"\r\n\r\nbody\r\n", b"\r\n\r\nbody \r\n\r\n")):
        assert verify(keys, signed.replace(old, new, 1)), new


def test_signer_refuses_bad_message(keys):
    (pem, sel) = keys[0]["rsa"]
    env = dict(os.environ, DKIM_SIGN_KEY=str(pem), DKIM_SIGN_DOMAIN=DOMAIN,
               DKIM_SIGN_SELECTOR=sel)
    r = subprocess.run([str(SIGNER)], input=b"To: a@example.org\r\n\r\nx\r\n",
                       env=env, capture_output=True, timeout=30)
    assert r.returncode == 1
    assert b"no From" in r.stderr
