# SPDX-License-Identifier: MIT
"""messageserver's /v1/rcpt and /v1/inbound against the real stack: recipient
routing, archiving with threading and deduplication, charset conversion,
attachments, and the refusals (400, 413, 422).  The inbound body is built
the way messageserver_clnt does it: JSON with the raw bytes in base64url
without padding.  The database is read with psql and the stack's
db_conninfo."""
import base64
import glob
import subprocess
import uuid
from pathlib import Path

import pytest

from stack import http_send_large

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


@pytest.mark.parametrize("addr,status", [
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


def test_corpus_never_crashes(stack):
    """Python's email test messages (libpython3.11-testsuite, installed by
    deploy/install-deps.sh): every one is archived or refused as
    unparsable, none crashes messageserver, and most are archived."""
    assert CORPUS, "libpython3.11-testsuite is missing: run install-deps"
    archived = 0
    for path in CORPUS:
        r = inbound(stack, Path(path).read_bytes())
        assert r.status in (200, 422), (path, r)
        archived += r.status == 200
    assert archived >= len(CORPUS) * 3 // 4, (archived, len(CORPUS))
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


def test_unicode_hashtags(stack):
    raw, msgid = message(f"#caf\u00e9\u00a0x (#\u00c9t\u00e9) x#no "
                         f"{uuid.uuid4().hex[:6]}")   # raw UTF-8 header
    assert inbound(stack, raw).status == 200
    rows = sql(stack, "SELECT h.name FROM messages m JOIN topic_hashtags th "
               "ON th.topic_id = m.topic_id JOIN hashtags h ON "
               "h.id = th.hashtag_id WHERE m.message_id = :'v1' "
               "ORDER BY h.name", msgid)
    assert rows == [["caf\u00e9"], ["\u00c9t\u00e9"]]
