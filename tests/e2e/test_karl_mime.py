# SPDX-License-Identifier: MIT
"""test_karl_mime.py - what karl does to the MIME structure of the copies
it sends, checked on the copies a real SMTP server (aiosmtpd) received.

A private stack relays to aiosmtpd; each job is one kind of message:
text/plain (UTF-8, quoted-printable, base64, ISO-8859-1), text/html,
multipart/alternative, a multipart/mixed with an attachment, a real
S/MIME multipart/signed message (openssl smime), and lines starting
with "." (dot-stuffing on the wire).  For every copy: both DKIM signatures
(rsa-sha256 and ed25519-sha256) pass python3-dkim and libopendkim
(test_dkim's DKIM_VERIFY_KEYS mode); Python's email parser finds no
defects; the receiver's footer is where docs/mime_footer.md puts it (end
of the text/plain part, before </body> of the text/html part, both
parts of an alternative, a new part next to a signed body whose bytes
and signature stay intact); every text part declares a charset that
decodes it to the text that was sent, with a valid transfer encoding.
"""
import base64
import email
import os
import quopri
import re
import shutil
import subprocess
import tempfile
from email import policy
from pathlib import Path

import pytest

from mailtest import Sink, dkim_keyfile, opendkim_verifier, verify_dkim_both
from stack import wait_for
from test_karl_delivery import (SIGN_DOMAIN, ConfStack, b64url, job_status,
                                keygen, new_job, start_stack)

pytest.importorskip("dkim")
from aiosmtpd.controller import Controller  # noqa: E402

FOOTER_TEXT = "-- \nFor {{name}}: {{unsubscribe_url}}"
FOOTER_HTML = '<p class="ft">For {{name}}: <a href="{{unsubscribe_url}}">' \
    'leave</a></p>'
NAME = "Zoë & <Ünï>"
HEAD = ("From: Ann <ann@example.org>\r\nTo: demo@lists.example\r\n"
        "Subject: {subject}\r\nMessage-ID: <{subject}@example.org>\r\n"
        "Date: Thu, 03 Dec 2026 17:00:00 +0000\r\n")


def text_footer(i):
    return f"-- \nFor {NAME}: https://x.example/u/{i}"


def html_footer(i):
    n = NAME.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f'<p class="ft">For {n}: <a href="https://x.example/u/{i}">' \
        'leave</a></p>'


def msg(subject, headers, body):
    """A message: the common header, then headers (a str of CRLF lines),
    then body (bytes)."""
    return (HEAD.format(subject=subject) + headers + "\r\n").encode() + body


PLAIN_TEXT = "Grüße aus Köln.\nZweite Zeile.\n"
QP_TEXT = "Café crème " + "long line " * 12 + "end.\nNext = line.\n"
B64_TEXT = "Привет, мир.\nВторая строка.\n"
LATIN1_TEXT = "Noël à la crème brûlée, façade.\n"
HTML = "<html><head><title>t</title></head><body><p>Hé, HTML.</p>" \
    "</body></html>\n"
DOTS_TEXT = ".one dot\n..two dots\n.\nmiddle\n. space\nend\n"
DOT_ATTACHMENT = b".\r\n..\r\n.x\r\nlast\r\n"


def crlf(s):
    return s.replace("\n", "\r\n")


def cases(smime):
    """(name, message bytes, what the copy must show)."""
    b1 = "=_alt_1"
    alt = msg("alt", "MIME-Version: 1.0\r\nContent-Type: multipart/"
              f'alternative; boundary="{b1}"\r\n',
              (f"--{b1}\r\nContent-Type: text/plain; charset=utf-8\r\n"
               "Content-Transfer-Encoding: quoted-printable\r\n\r\n").encode()
              + quopri.encodestring(crlf(QP_TEXT).encode())
              + (f"\r\n--{b1}\r\nContent-Type: text/html; charset=utf-8\r\n"
                 "Content-Transfer-Encoding: base64\r\n\r\n").encode()
              + base64.encodebytes(HTML.encode()).replace(b"\n", b"\r\n")
              + f"--{b1}--\r\n".encode())
    b2 = "=_mixed_2"
    mixed = msg("dots", "MIME-Version: 1.0\r\nContent-Type: multipart/"
                f'mixed; boundary="{b2}"\r\n',
                (f"--{b2}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                 + crlf(DOTS_TEXT) + f"--{b2}\r\nContent-Type: text/plain;"
                 ' charset=us-ascii\r\nContent-Disposition: attachment; '
                 'filename="dots.txt"\r\n\r\n').encode()
                + DOT_ATTACHMENT + f"\r\n--{b2}--\r\n".encode())
    return [
        ("plain", msg("plain", "MIME-Version: 1.0\r\nContent-Type: text/plain;"
                      " charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n",
                      crlf(PLAIN_TEXT).encode()),
         {"type": "text/plain", "plain": PLAIN_TEXT}),
        ("qp", msg("qp", "MIME-Version: 1.0\r\nContent-Type: text/plain; "
                   "charset=utf-8\r\nContent-Transfer-Encoding: "
                   "quoted-printable\r\n",
                   quopri.encodestring(crlf(QP_TEXT).encode())),
         {"type": "text/plain", "plain": QP_TEXT}),
        ("b64", msg("b64", "MIME-Version: 1.0\r\nContent-Type: text/plain; "
                    "charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n",
                    base64.encodebytes(crlf(B64_TEXT).encode())
                    .replace(b"\n", b"\r\n")),
         {"type": "text/plain", "plain": B64_TEXT}),
        ("latin1", msg("latin1", "MIME-Version: 1.0\r\nContent-Type: text/"
                       "plain; charset=iso-8859-1\r\n"
                       "Content-Transfer-Encoding: 8bit\r\n",
                       crlf(LATIN1_TEXT).encode("latin-1")),
         {"type": "text/plain", "plain": LATIN1_TEXT}),
        ("html", msg("html", "MIME-Version: 1.0\r\nContent-Type: text/html; "
                     "charset=utf-8\r\n", crlf(HTML).encode()),
         {"type": "text/html", "html": HTML}),
        ("alt", alt, {"type": "multipart/alternative", "plain": QP_TEXT,
                      "html": HTML}),
        ("dots", mixed, {"type": "multipart/mixed", "plain": DOTS_TEXT,
                         "attachment": DOT_ATTACHMENT}),
        # wrapped: the signed entity's own Content-Type goes with it
        ("signed", msg("signed", smime[0], smime[1]),
         {"type": "multipart/mixed",
          "signed": (smime[0].split("\r\n", 1)[1], smime[1])}),
    ]


@pytest.fixture(scope="module")
def mime(tmp_path_factory):
    """(stack, sink, DKIM TXT records, test_dkim keys file, S/MIME
    (Content-* header, body) and its signer's certificate)."""
    if not opendkim_verifier().exists():
        pytest.fail(f"{opendkim_verifier()} is not built (make BUILD=... "
                    "<build>/tests/test_dkim)", pytrace=False)
    d = Path(tempfile.mkdtemp(prefix="karl-mime-"))
    os.chmod(d, 0o755)
    conf, txt = keygen(d)
    keyfile = dkim_keyfile(d / "keys.txt", txt)
    smime = make_smime(d)
    st = start_stack(ConfStack(extra_conf={
        "dkim_keys": conf, "karl_retry_min": "1", "karl_retry_max": "2",
        "karl_relay_tls": "no"}))
    sink = Sink()
    ctl = Controller(sink, hostname="127.0.0.1", port=st.ports["karl_relay"])
    ctl.start()
    yield st, sink, txt, keyfile, smime
    ctl.stop()
    st.stop()
    shutil.rmtree(d, ignore_errors=True)
    assert not st.sanitizer_reports, st.sanitizer_reports


def make_smime(d):
    """A real S/MIME detached signature over a text part with dot lines:
    (its Content-Type header lines, the body with CRLF lines, the
    signer's certificate)."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", str(d / "smime.key"), "-out",
                    str(d / "smime.pem"), "-days", "1", "-subj",
                    "/CN=ann@example.org"], check=True, capture_output=True)
    (d / "inner").write_bytes(b"Content-Type: text/plain; charset=utf-8\r\n"
                              b"\r\nSigned text.\r\n.\r\n..dots\r\n")
    out = subprocess.run(["openssl", "smime", "-sign", "-in", str(d / "inner"),
                          "-signer", str(d / "smime.pem"), "-inkey",
                          str(d / "smime.key")], check=True,
                         capture_output=True).stdout
    out = re.sub(rb"\r?\n", b"\r\n", out)
    head, body = out.split(b"\r\n\r\n", 1)
    head = head.decode()
    assert head.startswith("MIME-Version: 1.0\r\nContent-Type: multipart/"
                           "signed"), head
    return head + "\r\n", body, d / "smime.pem"


def send(st, job, message, n=2):
    rs = [{"to": f"{job.split(':')[1][:8]}.{i}@example.org", "verp": f"{i}.9",
           "data": {"name": NAME, "unsubscribe_url": f"https://x.example/u/{i}",
                    "unsubscribe_mailto": f"mailto:u-{i}@lists.example"}}
          for i in range(n)]
    r = st.post("karl", "/v1/send", {
        "job": job, "batch": 0, "last": True, "kind": "post",
        "message": b64url(message),
        "footer": {"text": FOOTER_TEXT, "html": FOOTER_HTML},
        "sender": {"local": "demo+bounces", "domain": SIGN_DOMAIN},
        "sign_domain": SIGN_DOMAIN, "receivers": rs})
    assert r.status == 202, r
    return [r["to"] for r in rs]


def text_of(part):
    """A text part's content, decoded by its charset, with LF lines."""
    return part.get_content().replace("\r\n", "\n")


def check_encoding(part):
    """A leaf part's transfer encoding is valid for its bytes."""
    cte = part.get("Content-Transfer-Encoding", "7bit").lower()
    raw = part.get_payload(decode=False)
    assert cte in ("7bit", "quoted-printable", "base64"), cte
    assert raw.isascii(), (cte, raw[:200])
    assert cte == "7bit" or max(map(len, raw.splitlines())) <= 76, cte
    if part.get_content_maintype() == "text":
        # the declared charset decodes it (a wrong one raises or defects)
        part.get_content()


def check_copy(data, want, i, smime_cert, tmp):
    """What every copy must hold, for receiver i."""
    m = email.message_from_bytes(data, policy=policy.default)
    for p in m.walk():
        assert not p.defects, (p.get_content_type(), p.defects)
    # the whole copy is 7-bit with lines within RFC 5322's 998 octets:
    # every edited part was re-encoded, the rest was 7-bit already
    assert data.isascii()
    assert max(len(x) for x in data.split(b"\r\n")) <= 998
    assert b"\n" not in data.replace(b"\r\n", b"")
    for p in m.walk():
        if not p.is_multipart():
            check_encoding(p)
    assert m.get_content_type() == want["type"]
    if want["type"] == "multipart/alternative":
        assert [p.get_content_type() for p in m.iter_parts()] == \
            ["text/plain", "text/html"]
    if "plain" in want:
        body = m.get_body(("plain",))
        t = text_of(body)
        # the footer ends the text/plain part, after the text as sent
        assert t.rstrip("\n") == want["plain"].rstrip("\n") + "\n" + \
            text_footer(i), t
        assert body.get_content_charset() == "utf-8"
    if "html" in want:
        h = text_of(m.get_body(("html",)))
        foot = html_footer(i)
        assert h.count(foot) == 1, h
        # just before </body>: the html as sent, with the footer spliced in
        k = want["html"].index("</body>")
        assert h == want["html"][:k] + foot + want["html"][k:], h
    if "attachment" in want:
        att = next(p for p in m.walk()
                   if p.get_content_disposition() == "attachment")
        assert att.get_payload(decode=True) == want["attachment"]
    if "signed" in want:
        check_signed(data, m, want["signed"], i, smime_cert, tmp)


def check_signed(data, m, signed, i, cert, tmp):
    """The multipart/signed body went out byte for byte as the first part
    of a new multipart/mixed, the footer as the second; the S/MIME
    signature still verifies over the delivered bytes."""
    ctype, body = signed
    sig, foot = m.get_payload()
    assert sig.get_content_type() == "multipart/signed"
    assert foot.get_content_type() == "text/plain"
    assert text_of(foot).rstrip("\n") == text_footer(i)
    b = m.get_boundary().encode()
    raw = data.split(b"\r\n\r\n", 1)[1]
    first = raw.split(b"--" + b + b"\r\n", 1)[1].split(b"\r\n--" + b, 1)[0]
    fhead, fbody = first.split(b"\r\n\r\n", 1)
    # byte for byte (the CRLF before the next delimiter is the
    # delimiter's, RFC 2046)
    assert fbody == body, (fbody[-80:], body[-80:])
    assert fhead.decode() + "\r\n" == ctype
    f = tmp / f"part{i}.eml"
    f.write_bytes(first + b"\r\n")
    r = subprocess.run(["openssl", "smime", "-verify", "-noverify", "-in",
                        str(f), "-out", str(tmp / f"content{i}")],
                       capture_output=True)
    assert r.returncode == 0, r.stderr
    assert (tmp / f"content{i}").read_bytes().replace(b"\r\n", b"\n") == \
        b"Content-Type: text/plain; charset=utf-8\n\nSigned text.\n.\n" \
        b"..dots\n"
    # and a changed byte is caught: the check above means something
    f.write_bytes(first.replace(b"Signed text.", b"Signed text!") + b"\r\n")
    r = subprocess.run(["openssl", "smime", "-verify", "-noverify", "-in",
                        str(f), "-out", os.devnull], capture_output=True)
    assert r.returncode != 0


@pytest.mark.parametrize("case", ["plain", "qp", "b64", "latin1", "html",
                                  "alt", "dots", "signed"])
def test_copy_is_signed_sound_and_has_its_footer(mime, case, tmp_path):
    st, sink, txt, keyfile, smime = mime
    name, message, want = next(c for c in cases(smime) if c[0] == case)
    job = new_job()
    addrs = send(st, job, message)
    assert wait_for(lambda: all(a in sink.got for a in addrs), 30), \
        st.log_tails()
    for i, a in enumerate(addrs):
        assert len(sink.got[a]) == 1
        data = sink.got[a][0][1]
        bad = verify_dkim_both(data, txt, keyfile)
        assert not bad, (bad, data[:3000])
        check_copy(data, want, i, smime[2], tmp_path)
    assert wait_for(lambda: job_status(st, job)["sent"] == len(addrs), 10)
