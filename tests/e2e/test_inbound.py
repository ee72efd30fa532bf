# SPDX-License-Identifier: MIT
"""messageserver's /v1/rcpt and /v1/inbound against the real stack: recipient
routing, archiving with threading and deduplication, charset conversion,
attachments, the refusals (400, 413, 422), and the group commit (posts
waiting for the database share a transaction; one that fails fails alone;
kill -9 loses nothing acknowledged).  The inbound body is built
the way messageserver_clnt does it: JSON with the raw bytes in base64url
without padding.  The database is read with psql and the stack's
db_conninfo."""
import base64
import collections
import email
import email.policy
import glob
import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from stack import http_send_large, wait_for

REPO = Path(__file__).resolve().parents[2]
MAIL = REPO / "tests" / "data" / "mail"
DOMAIN = "localhost"


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def inbound_body(raw, rcpts=("demo@localhost",), mail_from="a@example.org"):
    return {"mail_from": mail_from, "rcpts": list(rcpts),
            "client_addr": "127.0.0.1", "client_helo": "client.example",
            "cid": "test-" + uuid.uuid4().hex[:8], "raw": b64url(raw)}


def inbound(stack, raw, **kw):
    return stack.post("messageserver", "/v1/inbound", inbound_body(raw, **kw))


def rcpt(stack, addr):
    return stack.post("messageserver", "/v1/rcpt", {"rcpt": addr})


def conninfo(stack):
    out = subprocess.run([str(stack.bin / "errord"), "-f", str(stack.conf),
                          "-n"], capture_output=True, text=True,
                         check=True).stdout
    return next(line.split(" = ", 1)[1] for line in out.splitlines()
                if line.startswith("db_conninfo = "))


def sql(stack, query, *args):
    """Rows of query (psql variables :'v1', :'v2'... for args)."""
    cmd = ["psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
           "-F", "\t", "-R", "\x1e", conninfo(stack)]
    for i, a in enumerate(args, 1):
        cmd += ["-v", f"v{i}={a}"]
    r = subprocess.run(cmd, input=query, capture_output=True, text=True,
                       check=True)
    out = r.stdout[:-1] if r.stdout.endswith("\n") else r.stdout
    return [rec.split("\t") for rec in out.split("\x1e") if rec]


def message(subject, msgid=None, extra="", body="hello\n"):
    msgid = msgid or f"{uuid.uuid4().hex}@example.org"
    return (f"From: Tester <tester@example.org>\r\nTo: demo@localhost\r\n"
            f"Subject: {subject}\r\nMessage-ID: <{msgid}>\r\n{extra}"
            f"Date: Thu, 03 Dec 2026 12:00:00 +0000\r\n\r\n{body}"
            ).encode(), msgid


def sample(name):
    tag = uuid.uuid4().hex[:12]
    return (MAIL / name).read_bytes().replace(b"MSGID", tag.encode()), tag


# ----------------------------------------------------------------- /v1/rcpt

@pytest.mark.parametrize("addr,route,extra", [
    ("demo@localhost", "post", {}),
    ("DEMO@LOCALHOST", "post", {}),
    ("demo+owner@localhost", "owner", {}),
    ("demo+subscribe@localhost", "command", {"command": "subscribe"}),
    ("demo+UNSUBSCRIBE@Localhost", "command", {"command": "unsubscribe"}),
    ("demo+bounces-abc123@localhost", "bounce", {"detail": "abc123"}),
    ("Demo+Bounces-AbC.12_3@localhost", "bounce", {"detail": "AbC.12_3"}),
    ("demo+approve-Tok.1797_xY@localhost", "command",
     {"command": "approve", "detail": "Tok.1797_xY"}),
    ("demo+REJECT-AbC@localhost", "command",
     {"command": "reject", "detail": "AbC"}),
    ("demo+nomail-until-2027-01-31@localhost", "command",
     {"command": "nomail-until", "detail": "2027-01-31"}),
    ("demo+mute-1234@localhost", "command",
     {"command": "mute", "detail": "1234"}),
    ("demo+plaindigest@localhost", "command", {"command": "plaindigest"}),
    ("demo+bounces-" + "t" * 90 + "@localhost", "bounce",
     {"detail": "t" * 90}),
])
def test_rcpt_routes(stack, addr, route, extra):
    r = rcpt(stack, addr)
    assert r.status == 200, r
    j = r.json()
    assert j["route"] == route
    assert j["group"] == "demo"
    assert j["domain"] == DOMAIN
    for k, v in extra.items():
        assert j[k] == v


@pytest.mark.parametrize("addr,detail", [
    ("bounces+12.345.k3v6abc@localhost", "12.345.k3v6abc"),
    ("BOUNCES+AbC-1@LOCALHOST", "AbC-1"),
    ("bounces@localhost", ""),
])
def test_rcpt_domain_bounce_address(stack, addr, detail):
    """bounces[+TOKEN]@domain, every copy's envelope sender: a bounce
    route without a group, the token kept as it came."""
    r = rcpt(stack, addr)
    assert r.status == 200, r
    j = r.json()
    assert (j["route"], j["group"], j["domain"], j.get("detail", "")) == \
        ("bounce", "", DOMAIN, detail), j


@pytest.mark.parametrize("addr,status", [
    ("bounces+@localhost", 404),
    ("bounces+a b@localhost", 404),
    ("bounces+x@example.com", 403),
    ("nosuch@localhost", 404),
    ("demo+nosuchcommand@localhost", 404),
    ("demo+approve-@localhost", 404),
    ("demo+approve@localhost", 404),
    ("x@example.com", 403),
    ("no-at-sign", 404),
])
def test_rcpt_refused(stack, addr, status):
    assert rcpt(stack, addr).status == status


def test_rcpt_forward_rule(stack):
    sql(stack, "INSERT INTO forward_rules (domain, local_part, "
        "target_address) VALUES ('localhost', 'postmaster', "
        "'admin@example.org') ON CONFLICT DO NOTHING")
    r = rcpt(stack, "Postmaster@localhost")
    assert r.status == 200, r
    assert r.json()["route"] == "forward"
    assert r.json()["detail"] == "admin@example.org"


def test_rcpt_needs_auth_and_fields(stack):
    assert stack.post("messageserver", "/v1/rcpt", {"rcpt": "demo@localhost"},
                      auth=False).status == 401
    assert stack.post("messageserver", "/v1/rcpt", {}).status == 400
    assert stack.post("messageserver", "/v1/rcpt",
                      {"rcpt": "demo@localhost", "x": 1}).status == 400


# -------------------------------------------------------------- /v1/inbound

def test_inbound_archives_in_order(stack):
    numbers = []
    for i in range(3):
        raw, msgid = message(f"ordered post {uuid.uuid4().hex[:6]} {i}")
        r = inbound(stack, raw)
        assert r.status == 200, r
        j = r.json()
        assert j["status"] == "archived"
        assert len(j["messages"]) == 1
        m = j["messages"][0]
        assert m["group"] == "demo"
        numbers.append(m["number"])
        rows = sql(stack, "SELECT number, from_address, from_name, "
                   "body_text FROM messages WHERE message_id = :'v1'", msgid)
        assert rows == [[str(m["number"]), "tester@example.org", "Tester",
                         "hello\n"]]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3
    assert numbers[0] >= 1


def test_reply_threads_by_in_reply_to(stack):
    raw, parent = message(f"original {uuid.uuid4().hex[:6]}")
    t1 = inbound(stack, raw).json()["messages"][0]["topic_id"]
    raw, _ = message("a completely different subject",
                     extra=f"In-Reply-To: <{parent}>\r\n")
    t2 = inbound(stack, raw).json()["messages"][0]["topic_id"]
    assert t1 == t2


def test_reply_threads_by_subject(stack):
    subj = f"Lunch plans {uuid.uuid4().hex[:6]}"
    raw, _ = message(subj)
    t1 = inbound(stack, raw).json()["messages"][0]["topic_id"]
    raw, _ = message(f"Re: [demo]  RE:   {subj.lower()}")
    t2 = inbound(stack, raw).json()["messages"][0]["topic_id"]
    assert t1 == t2
    raw, _ = message(f"Unrelated {uuid.uuid4().hex[:6]}")
    t3 = inbound(stack, raw).json()["messages"][0]["topic_id"]
    assert t3 != t1


def test_reply_threads_by_references(stack):
    """No In-Reply-To: a References id of the group gives the topic, whatever
    the subject; ids the group never saw do not."""
    raw, parent = message(f"root {uuid.uuid4().hex[:6]}")
    t1 = inbound(stack, raw).json()["messages"][0]["topic_id"]
    raw, _ = message(f"another subject {uuid.uuid4().hex[:6]}", extra=(
        f"References: <unknown-{uuid.uuid4().hex}@example.org>\r\n"
        f" <{parent}>\r\n"))
    assert inbound(stack, raw).json()["messages"][0]["topic_id"] == t1
    raw, _ = message(f"yet another {uuid.uuid4().hex[:6]}", extra=(
        f"References: <unknown-{uuid.uuid4().hex}@example.org>\r\n"))
    assert inbound(stack, raw).json()["messages"][0]["topic_id"] != t1


@pytest.mark.parametrize("prefix", [
    "Re:", "RE:", "re: Re:", "Fwd:", "FWD:", "Fw:", "AW:", "SV:", "WG:",
    "TR:", "Re[2]:", "Re(3):", "[demo]", "[any tag] Fwd: Re:",
    "Re: [demo] Fw:",
])
def test_subject_prefixes_are_stripped_for_threading(stack, prefix):
    subj = f"Quarterly figures {uuid.uuid4().hex[:6]}"
    raw, _ = message(subj)
    t1 = inbound(stack, raw).json()["messages"][0]["topic_id"]
    raw, _ = message(f"{prefix} {subj.upper()}")
    assert inbound(stack, raw).json()["messages"][0]["topic_id"] == t1
    assert sql(stack, "SELECT subject, subject_key FROM topics WHERE "
               "id = :'v1'", t1) == [[subj, subj.lower()]]


@pytest.mark.parametrize("prefix", ["Review:", "Re", "Fwd", "Rex:", "[]x"])
def test_words_like_prefixes_are_kept(stack, prefix):
    subj = f"figures {uuid.uuid4().hex[:6]}"
    raw, _ = message(subj)
    t1 = inbound(stack, raw).json()["messages"][0]["topic_id"]
    raw, _ = message(f"{prefix} {subj}")
    assert inbound(stack, raw).json()["messages"][0]["topic_id"] != t1


def test_full_text_search_finds_archived_words(stack):
    """The generated search vector of a message archived through the
    pipeline (docs/schema.md: 'simple', subject A, sender name B, body D):
    words of the decoded subject and body are found with the queries web
    uses, each with its weight, and other words are not."""
    tag = uuid.uuid4().hex[:8]
    raw, msgid = message(f"=?utf-8?q?Caf=C3=A9_zebra{tag}?= meeting",
                         body=f"The giraffe{tag} arrives on Tuesday.\r\n")
    assert inbound(stack, raw).json()["status"] == "archived"

    def found(query, fn="websearch_to_tsquery"):
        return sql(stack, "SELECT count(*) FROM messages WHERE "
                   f"message_id = :'v1' AND search @@ {fn}('simple', :'v2')",
                   msgid, query) == [["1"]]
    assert found(f"zebra{tag}") and found(f"giraffe{tag}")
    assert found(f"caf\u00e9 giraffe{tag}", "plainto_tsquery")
    assert found(f'"giraffe{tag} arrives"')     # a phrase
    assert found(f"Tester zebra{tag}")          # the sender's name
    assert not found(f"giraffe{tag} elephant{tag}")
    assert not found(f"giraffe{tag} -tuesday")
    # weights: the subject A, the body D
    assert found(f"zebra{tag}:A", "to_tsquery")
    assert not found(f"giraffe{tag}:A", "to_tsquery")
    assert found(f"giraffe{tag}:D", "to_tsquery")


def test_duplicate_message_id(stack):
    raw, msgid = message(f"dup {uuid.uuid4().hex[:6]}")
    r1 = inbound(stack, raw)
    assert r1.status == 200 and r1.json()["status"] == "archived"
    r2 = inbound(stack, raw)
    assert r2.status == 200, r2
    assert r2.json()["status"] == "duplicate"
    assert r2.json()["messages"][0]["number"] == \
        r1.json()["messages"][0]["number"]
    assert sql(stack, "SELECT count(*) FROM messages WHERE "
               "message_id = :'v1'", msgid) == [["1"]]


def test_latin1_subject_and_body_become_utf8(stack):
    raw, tag = sample("latin1.eml")
    r = inbound(stack, raw)
    assert r.status == 200, r
    rows = sql(stack, "SELECT subject, from_name, body_text FROM messages "
               "WHERE message_id = :'v1'", f"latin1-{tag}@example.org")
    assert rows[0][0] == "café au lait"
    assert rows[0][1] == "Renée Müller"
    assert rows[0][2].startswith("Un café crème, s'il vous plaît.")


def test_attachment_stored(stack):
    raw, tag = sample("multipart.eml")
    r = inbound(stack, raw)
    assert r.status == 200, r
    mid = f"multipart-{tag}@example.org"
    rows = sql(stack, "SELECT a.filename, a.content_type, a.size, "
               "encode(a.content, 'hex'), m.has_attachments, m.body_text "
               "FROM attachments a JOIN messages m ON m.id = a.message_id "
               "WHERE m.message_id = :'v1'", mid)
    assert rows == [["data.bin", "application/octet-stream", "10",
                     "00010203040506070809", "t",
                     "See the attached file \u2014 thanks."]]


def forward(inner_subject, disposition=""):
    """A post forwarding a message: a text part, then the message/rfc822
    part (disposition: its Content-Disposition line, "" for none); with
    text=False the message/rfc822 part is all there is."""
    inner = (f"From: Orig <orig@example.net>\r\nSubject: {inner_subject}"
             "\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
             "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
             "Gr=FC=DFe from the original.\r\n")
    return ("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
            "boundary=fw\r\n", "--fw\r\nContent-Type: text/plain\r\n\r\n"
            "See below.\r\n--fw\r\nContent-Type: message/rfc822\r\n"
            f"{disposition}\r\n{inner}--fw--\r\n")


@pytest.mark.parametrize("disposition,filename", [
    ("Content-Disposition: attachment; filename=\"fwd.eml\"\r\n",
     "fwd.eml"),
    ("Content-Disposition: attachment\r\n", "message.eml"),
    ("Content-Disposition: inline; filename=\"shown.eml\"\r\n",
     "shown.eml"),
])
def test_attached_message_is_an_attachment(stack, disposition, filename):
    extra, body = forward("the original", disposition)
    raw, msgid = message("fwd as attachment", extra=extra, body=body)
    assert inbound(stack, raw).json()["status"] == "archived"
    rows = sql(stack, "SELECT a.filename, a.content_type, a.disposition, "
               "convert_from(a.content, 'UTF8') ~ '^From: Orig', "
               "position('Subject: the original' IN "
               "convert_from(a.content, 'UTF8')) > 0, a.size = "
               "length(a.content), m.has_attachments, m.body_text FROM "
               "attachments a JOIN messages m ON m.id = a.message_id WHERE "
               "m.message_id = :'v1'", msgid)
    assert rows == [[filename, "message/rfc822", "inline"
                     if "inline" in disposition else "attachment",
                     "t", "t", "t", "t", "See below."]]


def test_message_forwarded_inline_is_read(stack):
    """A post that is nothing but a forwarded message (message/rfc822, as
    Groupwise forwards) has that message's text as its body, converted
    from its charset; a text part before it stays the body."""
    inner = ("From: Orig <orig@example.net>\r\nSubject: inner\r\n"
             "Content-Type: text/plain; charset=iso-8859-1\r\n"
             "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
             "Gr=FC=DFe from the original.\r\n")
    raw, msgid = message("forwarded", extra="MIME-Version: 1.0\r\n"
                         "Content-Type: message/rfc822\r\n", body=inner)
    assert inbound(stack, raw).json()["status"] == "archived"
    assert sql(stack, "SELECT body_text, has_attachments FROM messages "
               "WHERE message_id = :'v1'", msgid) == [
        ["Gr\u00fc\u00dfe from the original.\n", "f"]]
    extra, body = forward("inner")
    raw, msgid = message("forwarded after text", extra=extra, body=body)
    assert inbound(stack, raw).json()["status"] == "archived"
    assert sql(stack, "SELECT body_text, has_attachments FROM messages "
               "WHERE message_id = :'v1'", msgid) == [["See below.", "f"]]


@pytest.mark.parametrize("depth,read", [(16, True), (17, False)])
def test_forwards_are_read_to_a_depth(stack, depth, read):
    """Forwards of forwards are read for the body down to 16 levels
    (MS_EMBED_DEPTH); deeper text is not looked for."""
    raw, msgid = message("forwarded again", body="",
                         extra="MIME-Version: 1.0\r\n")
    raw = raw[:-2] + b"Content-Type: message/rfc822\r\n\r\n" * (depth - 1) + \
        b"Content-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\ndeep\r\n"
    head, _ = raw.split(b"\r\n\r\n", 1)
    assert b"Content-Type: message/rfc822" in head
    assert inbound(stack, raw).json()["status"] == "archived"
    assert sql(stack, "SELECT btrim(body_text, E'\\r\\n') = 'deep', "
               "body_text = '' FROM messages WHERE message_id = :'v1'",
               msgid) == [["t", "f"] if read else ["f", "t"]]


@pytest.mark.parametrize("head,body", [
    # no blank line: the body starts at the first line that is no field
    (b"Subject: no separator\r\n", b"counter to RFC 5322 \xe9\r\nmore\r\n"),
    # a Content-Type that is no type/subtype is text/plain (RFC 2045 5.2)
    (b"Subject: bad type\r\nContent-Type: text; charset=iso-8859-1\r\n\r\n",
     b"counter to RFC 5322 \xe9\r\nmore\r\n"),
    (b"Subject: bad type\r\nContent-Type: ;charset=iso-8859-1\r\n\r\n",
     b"counter to RFC 5322 \xe9\r\nmore\r\n"),
])
def test_malformed_structure_keeps_the_text(stack, head, body):
    msgid = f"{uuid.uuid4().hex}@example.org"
    raw = b"From: t@example.org\r\nMessage-ID: <" + msgid.encode() + \
        b">\r\n" + head + body
    assert inbound(stack, raw).json()["status"] == "archived"
    assert sql(stack, "SELECT body_text FROM messages WHERE "
               "message_id = :'v1'", msgid) == [
        ["counter to RFC 5322 \u00e9\nmore\n"]]


def test_only_a_content_type_header_is_a_message(stack):
    raw = (b"Content-Type: text/plain; charset=utf-8\r\n\r\nonly a type " +
           uuid.uuid4().hex.encode() + b"\r\n")
    r = inbound(stack, raw)
    assert r.status == 200 and r.json()["status"] == "archived", r


def test_html_only_body(stack):
    raw, tag = sample("html-only.eml")
    assert inbound(stack, raw).status == 200
    rows = sql(stack, "SELECT body_text FROM messages WHERE "
               "message_id = :'v1'", f"html-{tag}@example.org")
    assert "Hello world & friends" in rows[0][0]


def test_hashtags_and_raw_stored(stack):
    raw, msgid = message(f"Meeting #agenda {uuid.uuid4().hex[:6]}")
    assert inbound(stack, raw).status == 200
    rows = sql(stack, "SELECT h.name FROM messages m JOIN topic_hashtags th "
               "ON th.topic_id = m.topic_id JOIN hashtags h ON "
               "h.id = th.hashtag_id WHERE m.message_id = :'v1'", msgid)
    assert rows == [["agenda"]]
    rows = sql(stack, "SELECT encode(raw, 'base64') FROM messages WHERE "
               "message_id = :'v1'", msgid)
    assert base64.b64decode(rows[0][0].replace("\\n", "")) == raw


def test_missing_message_id_is_derived(stack):
    raw = (b"From: x@example.org\r\nSubject: no id " +
           uuid.uuid4().hex.encode() + b"\r\n\r\nbody\r\n")
    r1 = inbound(stack, raw)
    assert r1.status == 200 and r1.json()["status"] == "archived"
    assert inbound(stack, raw).json()["status"] == "duplicate"


def test_non_post_routes_accepted(stack):
    raw, _ = message("subscribe me")
    r = inbound(stack, raw, rcpts=["demo+subscribe@localhost"])
    assert r.status == 200, r
    assert r.json()["status"] == "accepted"


def test_garbage_is_422(stack):
    r = inbound(stack, b"\x00\x01\x02 this is not a message \xff\xfe")
    assert r.status == 422, r
    assert inbound(stack, b"").status in (400, 422)


@pytest.mark.parametrize("body", [
    {},
    {"rcpts": ["demo@localhost"]},
    {"mail_from": "", "rcpts": [], "client_addr": "", "client_helo": "",
     "raw": "eA"},
    {"mail_from": "", "rcpts": ["demo@localhost"], "client_addr": "",
     "client_helo": "", "raw": "!!!"},
    {"mail_from": 1, "rcpts": ["demo@localhost"], "client_addr": "",
     "client_helo": "", "raw": "eA"},
])
def test_bad_bodies_are_400(stack, body):
    assert stack.post("messageserver", "/v1/inbound", body).status == 400


@pytest.mark.parametrize("tail", [
    "==",        # padding
    "Q=",
    "+/",        # the standard alphabet, not the URL-safe one
    "Q",         # a length of 4n+1
    "QR",        # bits past the last byte are not zero
    "QUJ",       # (its last character would be QUI)
    "\u0000",
    " ",
])
def test_raw_must_be_canonical_base64url(stack, tail):
    """The raw bytes are base64url without padding, in its one canonical
    form (messageserver_clnt.c): anything else is 400, not a message."""
    body = inbound_body(message("b64")[0])
    body["raw"] = body["raw"][:len(body["raw"]) // 4 * 4] + tail
    assert stack.post("messageserver", "/v1/inbound", body).status == 400


@pytest.mark.parametrize("extra", range(6))
def test_raw_round_trips_every_length(stack, extra):
    """Every length modulo 3 decodes back to the bytes sent."""
    raw, msgid = message(f"b64 {extra} {uuid.uuid4().hex[:6]}",
                         body="x" * extra + "\n")
    raw += b"\xfe\x80"[:extra % 3]        # 8-bit bytes too
    assert inbound(stack, raw).status == 200
    rows = sql(stack, "SELECT encode(raw, 'base64') FROM messages WHERE "
               "message_id = :'v1'", msgid)
    assert base64.b64decode(rows[0][0].replace("\\n", "")) == raw


def test_malformed_json_is_400(stack):
    r = stack.post("messageserver", "/v1/inbound", b"{not json",
                   headers={"Content-Type": "application/json"})
    assert r.status == 400


def test_oversize_is_413(stack):
    status, _ = http_send_large(
        "127.0.0.1", stack.port("messageserver"), "/v1/inbound",
        {"Authorization": f"Bearer {stack.api_secret}",
         "Content-Type": "application/json"}, 40 * 1024 * 1024)
    assert status == 413
    assert stack.healthz("messageserver") == 200


CORPUS = sorted(glob.glob("/usr/lib/python3*/test/test_email/data/*.txt") +
                glob.glob("/usr/lib/python3*/test/test_email/data/*.eml"))


def corpus_group(stack, owner=None):
    """A fresh group anyone may post to; owner: an address made its owner
    (staff are not held for Precedence/Auto-Submitted)."""
    name = "corpus" + uuid.uuid4().hex[:10]
    gid = sql(stack, "INSERT INTO groups (domain, name, title, who_can_post) "
              "VALUES ('localhost', :'v1', 'Corpus', 'anyone') RETURNING id",
              name)[0][0]
    if owner:
        sql(stack, "WITH a AS (INSERT INTO accounts (email) VALUES (:'v1') "
            "ON CONFLICT ((lower(email))) DO UPDATE SET email = :'v1' "
            "RETURNING id) INSERT INTO memberships (group_id, account_id, "
            "role) SELECT :'v2', id, 'owner' FROM a", owner, gid)
    return name


def py_first_text(part):
    """Python's decoded first text/plain part that is not an attachment,
    in document order, inside message/rfc822 parts forwarded inline too
    (as messageserver_mime.c reads them); None if there is none."""
    if part.get_content_maintype() == "message" and part.is_attachment():
        return None
    if part.is_multipart():     # multipart/*, and message/rfc822 too
        for sub in part.get_payload():
            body = py_first_text(sub)
            if body is not None:
                return body
        return None
    if part.get_content_type() != "text/plain" or part.is_attachment() \
            or part.get_filename() is not None:
        return None
    return part.get_content()


def py_decoded(raw):
    """(message, subject, first text/plain body) as Python's email package
    decodes them (email.policy.default); None where there is none."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    subject = msg["subject"]
    return msg, None if subject is None else str(subject), \
        py_first_text(msg)


def archived_row(stack, group, number):
    rows = sql(stack, "SELECT row_to_json(t) FROM (SELECT m.subject, "
               "m.body_text FROM messages m JOIN groups g ON "
               "g.id = m.group_id WHERE g.name = :'v1' AND m.number = :'v2') "
               "t", group, number)
    return json.loads(rows[0][0])


def corpus_expected(msg, archived_ids):
    """(status, reason) the pipeline must give a corpus message in a group
    anyone may post to, from its own headers: a Message-ID archived before
    is a duplicate; Auto-Submitted (not "no") and Precedence: bulk hold it
    (docs/messageserver.md, the loop and machine table)."""
    mid = (msg["message-id"] or "").strip().strip("<>")
    if mid and mid in archived_ids:
        return "duplicate", ""
    auto = (msg["auto-submitted"] or "").strip().lower()
    if auto and not auto.startswith("no"):
        return "held", "auto_submitted"
    if (msg["precedence"] or "").strip().lower().startswith("bulk"):
        return "held", "bulk"
    return "archived", ""


def check_decoded(stack, path, group, number, subject, body, figures):
    """The archived subject of path is Python's; the body (whitespace
    normalised) is Python's first text/plain part."""
    row = archived_row(stack, group, number)
    if subject is not None:
        assert row["subject"] == subject, path
        figures["subjects equal"] += 1
    if body is not None:
        assert " ".join(row["body_text"].split()) == \
            " ".join(body.split()), path
        figures["bodies equal"] += 1


def test_corpus_archived_and_decoded(stack):
    """Python's email test messages (libpython3.11-testsuite, installed by
    deploy/install-deps.sh) into a group anyone may post to: each gets
    exactly the outcome its headers call for (corpus_expected), and the
    one Python finds no header in is 422; nothing crashes messageserver.
    The subject and the first text/plain part of every archived one are
    compared with Python's decoding (email.policy.default), and there is
    no exception.  The held and duplicate ones go again, each to a group
    of its own whose owner is the envelope sender (owners are not held),
    and are compared too, so every message with a From and a Subject is
    archived and checked."""
    assert CORPUS, "libpython3.11-testsuite is missing: run install-deps"
    g = corpus_group(stack)
    figures = collections.Counter()
    archived_ids, again = set(), []
    with_from_and_subject = 0
    for path in CORPUS:
        raw = Path(path).read_bytes()
        msg, subject, body = py_decoded(raw)
        with_from_and_subject += msg["from"] is not None and \
            subject is not None
        r = inbound(stack, raw, rcpts=[f"{g}@localhost"])
        if not msg.keys():      # Python sees no header either
            assert r.status == 422, (path, r)
            continue
        assert r.status == 200, (path, r)
        m = r.json()["messages"][0]
        assert (m["status"], m["reason"]) == \
            corpus_expected(msg, archived_ids), path
        figures[m["status"]] += 1
        if m["status"] != "archived":
            if msg["from"] is not None and subject is not None:
                again.append((path, raw, subject, body))
            continue
        archived_ids.add(msg["message-id"].strip().strip("<>")
                         if msg["message-id"] else None)
        figures["from and subject"] += msg["from"] is not None and \
            subject is not None
        check_decoded(stack, path, g, m["number"], subject, body, figures)
    for path, raw, subject, body in again:
        g2 = corpus_group(stack, owner="a@example.org")
        r = inbound(stack, raw, rcpts=[f"{g2}@localhost"])
        assert r.status == 200 and \
            r.json()["messages"][0]["status"] == "archived", (path, r)
        figures["from and subject"] += 1
        figures["archived again"] += 1
        check_decoded(stack, path, g2, r.json()["messages"][0]["number"],
                      subject, body, figures)
    print(f"corpus of {len(CORPUS)}: {dict(figures)}")
    # every message with a From and a Subject was archived and checked
    assert figures["from and subject"] == with_from_and_subject
    assert figures["bodies equal"] >= with_from_and_subject // 2
    assert stack.healthz("messageserver") == 200


NASTY = [
    b"Subject: only a header",
    b"Subject: x\r\n\r\n" + b"\xff" * 1000,
    b"Subject: =?x-unknown?Q?=FF=FE?=\r\nContent-Type: text/plain; "
    b"charset=x-no-such-charset\r\n\r\n\xe9\xe8\r\n",
    b"Subject: deep\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n" +
    b"--a\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n" * 200,
    b"Subject: bad b64\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: image/png; name=x.png\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n!!!%%%===\r\n--b--\r\n",
    b"Subject: " + b"A" * 100000 + b"\r\n\r\nlong header\r\n",
    b"From: <>\r\nMessage-ID: <>\r\nIn-Reply-To: <<<>>>\r\n"
    b"References: garbage <a@b> <\r\nDate: Mon, 99 Foo 99999 99:99:99\r\n"
    b"Subject: \x00nul\x00\r\n\r\nnul \x00 body\r\n",
    "Subject: #caf\u00e9\u00a0x #\u3000y #ok\r\n\r\nhashtags\r\n".encode(),
    b"Subject: rfc822\r\nContent-Type: message/rfc822\r\n\r\n"
    b"Subject: inner\r\n\r\ninner body\r\n",
    b"Subject: deep rfc822\r\n" +
    b"Content-Type: message/rfc822\r\n\r\n" * 3000 + b"\r\ninner\r\n",
    b"Subject: no separator\r\n" + b"x" * 5000 + b"\r\n" + b"\n" * 3,
]


@pytest.mark.parametrize("raw", NASTY, ids=range(len(NASTY)))
def test_nasty_messages_do_not_crash(stack, raw):
    r = inbound(stack, raw + uuid.uuid4().hex.encode())
    assert r.status in (200, 422), r
    assert stack.healthz("messageserver") == 200


def test_database_down_is_503_then_archived(make_stack):
    st = make_stack()
    raw, msgid = message(f"while the database is down {uuid.uuid4().hex}")
    # the server's own options (port, socket dir) to start it again with
    opts = (st.pg_datadir() / "postmaster.opts").read_text().strip()
    opts = opts.split(" ", 1)[1]
    r = st.pg_ctl("stop", "-m", "fast", "-w", "-t", "30")
    assert r.returncode == 0, r.stdout
    try:
        assert rcpt(st, "demo@localhost").status == 503
        assert inbound(st, raw).status == 503
    finally:
        log = str(st.var / "pg" / "postgresql.log")
        r = st.pg_ctl("start", "-w", "-t", "30", "-l", log, "-o", opts)
        assert r.returncode == 0, r.stdout
    assert st.wait_healthy("messageserver", timeout=10)
    r = inbound(st, raw)
    assert r.status == 200, r
    assert r.json()["status"] == "archived"
    assert sql(st, "SELECT count(*) FROM messages WHERE message_id = :'v1'",
               msgid) == [["1"]]


def test_large_message_is_stored_with_lz4(stack):
    """sql/008: the raw message and its text go to TOAST compressed with
    lz4, which costs a backend a fraction of pglz under ingest."""
    raw, msgid = message(f"lz4 {uuid.uuid4().hex[:6]}",
                         body="compressible line of text\n" * 400)
    assert inbound(stack, raw).status == 200
    assert sql(stack, "SELECT pg_column_compression(raw), "
               "pg_column_compression(body_text) FROM messages "
               "WHERE message_id = :'v1'", msgid) == [["lz4", "lz4"]]


def test_unicode_hashtags(stack):
    raw, msgid = message(f"#caf\u00e9\u00a0x (#\u00c9t\u00e9) x#no "
                         f"{uuid.uuid4().hex[:6]}")   # raw UTF-8 header
    assert inbound(stack, raw).status == 200
    rows = sql(stack, "SELECT h.name FROM messages m JOIN topic_hashtags th "
               "ON th.topic_id = m.topic_id JOIN hashtags h ON "
               "h.id = th.hashtag_id WHERE m.message_id = :'v1' "
               "ORDER BY h.name", msgid)
    assert rows == [["caf\u00e9"], ["\u00c9t\u00e9"]]


# ------------------------------------------------------------ group commit

def ms_metric(stack, name):
    m = re.search(rf"^{name} (-?\d+)$",
                  stack.get("messageserver", "/metrics").text, re.M)
    assert m, name
    return int(m.group(1))


def anyone_group(stack):
    """A group anyone may post to, and its id."""
    name = "gc" + uuid.uuid4().hex[:10]
    gid = sql(stack, "INSERT INTO groups (domain, name, who_can_post) "
              "VALUES ('localhost', :'v1', 'anyone') RETURNING id",
              name)[0][0]
    return name, gid


class CounterLock:
    """A psql session holding the group_counters row of a group FOR
    UPDATE: every post to the group updates that row, so its transaction
    waits until release() while the next requests queue up."""

    def __init__(self, stack, gid):
        self.p = subprocess.Popen(
            ["psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
             conninfo(stack)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True)
        self.p.stdin.write("BEGIN; SELECT 'locked' FROM group_counters "
                           f"WHERE group_id = {int(gid)} FOR UPDATE;\n")
        self.p.stdin.flush()
        assert self.p.stdout.readline().strip() == "locked"

    def release(self):
        if self.p.poll() is None:
            self.p.stdin.write("COMMIT;\n")
            self.p.stdin.close()
            self.p.wait(timeout=10)


def post_while_locked(stack, gid, bodies):
    """Post every body at once while the group's counter row is locked,
    release the lock once all of them wait in messageserver, and return
    the answers (in order) and how many transactions they took."""
    answers = [None] * len(bodies)
    waiting0 = ms_metric(stack, "messageserver_commit_waiting")
    lock = CounterLock(stack, gid)
    try:
        def send(i):
            answers[i] = stack.post("messageserver", "/v1/inbound",
                                    bodies[i], timeout=30)
        threads = [threading.Thread(target=send, args=(i,))
                   for i in range(len(bodies))]
        for t in threads:
            t.start()
        assert wait_for(lambda: ms_metric(
            stack, "messageserver_commit_waiting") - waiting0 ==
            len(bodies), 10), "the posts did not all reach the committers"
        batches0 = ms_metric(stack, "messageserver_commit_batches_total")
    finally:
        lock.release()
    for t in threads:
        t.join(30)
    return answers, ms_metric(
        stack, "messageserver_commit_batches_total") - batches0


def test_group_commit_shares_one_transaction(stack):
    """Posts that wait for the database at the same time are committed
    together: 12 posts queued behind a locked counter row take at most 3
    transactions once it is free (one per committer already blocked on
    the lock, then the rest in one), and each is answered with its own
    consecutive number."""
    g, gid = anyone_group(stack)
    msgs = [message(f"shared commit {i}")[0] for i in range(12)]
    answers, batches = post_while_locked(
        stack, gid, [inbound_body(raw, rcpts=(f"{g}@localhost",))
                     for raw in msgs])
    assert all(a is not None and a.status == 200 for a in answers), answers
    numbers = sorted(a.json()["messages"][0]["number"] for a in answers)
    assert numbers == list(range(1, 13))
    assert batches <= 3, batches
    assert sql(stack, "SELECT count(*) FROM messages WHERE group_id = "
               ":'v1'", gid) == [["12"]]


def test_group_commit_failure_fails_alone(stack):
    """A post that fails in the database fails alone (503: smtpd says
    451) and the others of its batch are archived; a Message-ID twice in
    one batch is archived once and a duplicate the second time."""
    g, gid = anyone_group(stack)
    fail = "fail-" + uuid.uuid4().hex[:8]
    fn = "e2e_" + uuid.uuid4().hex[:8]
    sql(stack, f"CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql "
        "AS $$ BEGIN RAISE EXCEPTION 'e2e: refused'; END $$; "
        f"CREATE TRIGGER {fn} BEFORE INSERT ON messages FOR EACH ROW "
        f"WHEN (NEW.subject = '{fail}') EXECUTE FUNCTION {fn}()")
    try:
        good = [message(f"good {i}") for i in range(8)]
        bad = [message(fail) for _ in range(2)]
        twice = good[3]
        bodies = [inbound_body(raw, rcpts=(f"{g}@localhost",))
                  for raw, _ in good[:5] + bad[:1] + [twice] + good[5:] +
                  bad[1:]]
        retried0 = ms_metric(stack, "messageserver_commit_retried_total")
        answers, _ = post_while_locked(stack, gid, bodies)
    finally:
        sql(stack, f"DROP TRIGGER {fn} ON messages; DROP FUNCTION {fn}()")
    assert [a.status for a in answers] == [200] * 5 + [503] + [200] * 4 + \
        [503]
    assert ms_metric(stack, "messageserver_commit_retried_total") > retried0
    st = collections.Counter(a.json()["messages"][0]["status"]
                             for a in answers if a.status == 200)
    assert st == {"archived": 8, "duplicate": 1}
    rows = sql(stack, "SELECT message_id FROM messages WHERE group_id = "
               ":'v1'", gid)
    assert sorted(r[0] for r in rows) == sorted(m for _, m in good)


def test_same_message_id_on_both_committers_is_one_post(stack):
    """The same Message-ID taken by both committers at once (each checked
    it, found nothing and then waited on the group's counter row) is
    archived once: the one that loses the insert runs again and is
    answered as a duplicate, not with a 503 that would make the MTA try
    again."""
    g, gid = anyone_group(stack)
    raw, msgid = message("on both committers")
    body = inbound_body(raw, rcpts=(f"{g}@localhost",))
    answers = [None, None]

    def locked_backends():
        return int(sql(stack, "SELECT count(*) FROM pg_stat_activity "
                       "WHERE wait_event_type = 'Lock' AND "
                       "datname = current_database()")[0][0])

    lock = CounterLock(stack, gid)
    try:
        def send(i):
            answers[i] = stack.post("messageserver", "/v1/inbound", body,
                                    timeout=30)
        threads = [threading.Thread(target=send, args=(i,)) for i in (0, 1)]
        for i, t in enumerate(threads):
            t.start()
            assert wait_for(lambda: locked_backends() >= i + 1, 10), \
                f"post {i} did not reach a committer"
    finally:
        lock.release()
    for t in threads:
        t.join(30)
    assert [a.status for a in answers] == [200, 200]
    assert sorted(a.json()["messages"][0]["status"] for a in answers) == \
        ["archived", "duplicate"]
    assert sql(stack, "SELECT count(*) FROM messages WHERE group_id = :'v1' "
               "AND message_id = :'v2'", gid, msgid) == [["1"]]


def test_kill9_during_group_commit_loses_nothing_acknowledged(make_stack):
    """kill -9 messageserver while 6 senders post as fast as they can:
    every post answered 200 is archived; the others are sent again (as
    smtpd's 451 makes an MTA do) until answered, and then every post is
    in the archive exactly once."""
    st = make_stack()
    g, gid = anyone_group(st)
    acked, unacked, lock = [], [], threading.Lock()
    stop = threading.Event()

    def sender():
        while not stop.is_set():
            raw, msgid = message("kill -9 " + uuid.uuid4().hex[:6])
            try:
                r = inbound(st, raw, rcpts=(f"{g}@localhost",))
                ok = r.status == 200
            except OSError:
                ok = False
            with lock:
                (acked if ok else unacked).append((raw, msgid))
    threads = [threading.Thread(target=sender) for _ in range(6)]
    for t in threads:
        t.start()
    try:
        assert wait_for(lambda: len(acked) >= 30, 20)
        old = st.pid("messageserver")
        os.kill(old, signal.SIGKILL)
        assert st.wait_new_pid("messageserver", old, timeout=15)
        assert st.wait_healthy("messageserver", timeout=15)
        n = len(acked)
        assert wait_for(lambda: len(acked) >= n + 30, 20)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    rows = sql(st, "SELECT message_id FROM messages WHERE group_id = :'v1'",
               gid)
    archived = collections.Counter(r[0] for r in rows)
    assert all(archived[m] == 1 for _, m in acked), "acknowledged, lost"
    assert unacked, "the kill interrupted no post"
    for raw, msgid in unacked:
        r = inbound(st, raw, rcpts=(f"{g}@localhost",))
        assert r.status == 200, r
        assert r.json()["messages"][0]["status"] in ("archived",
                                                     "duplicate")
    rows = sql(st, "SELECT message_id FROM messages WHERE group_id = :'v1'",
               gid)
    assert sorted(r[0] for r in rows) == sorted(m for _, m in acked +
                                                unacked)
