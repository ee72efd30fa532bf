# SPDX-License-Identifier: MIT
"""The whole way, with every part real: a member posts by SMTP through
nginx; smtpd, messageserver (policy, archive, outbox) and karl (footers,
VERP, List-Unsubscribe, DKIM) carry it to an aiosmtpd sink, where every
member's copy is checked: once per member, the list's headers, its own
footer and signed tokens, and both DKIM signatures verified by
python3-dkim against the keys the stack signs with."""
import os
import smtplib
import subprocess
import tempfile
import uuid
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import dkim
import pytest
from aiosmtpd.controller import Controller

from mailtest import Sink, dkim_keys, verify_short_token, verify_token
from stack import Stack, wait_for

DOMAIN = "localhost"


@pytest.fixture(scope="module")
def pipeline(test_dns):
    d = Path(tempfile.mkdtemp(prefix="pipeline-dkim-"))
    os.chmod(d, 0o755)
    conf, txt = dkim_keys(d, DOMAIN, ("s1", "s2"))
    st = Stack(extra_conf={"dns_resolver": test_dns.resolver,
                           "dkim_keys": conf, "karl_retry_min": "1",
                           "karl_retry_max": "2"})
    try:
        st.start()
    except Exception:
        st.stop()
        raise
    sink = Sink()
    ctl = Controller(sink, hostname="127.0.0.1", port=st.ports["karl_relay"])
    ctl.start()
    yield st, sink, txt
    ctl.stop()
    st.stop()
    subprocess.run(["rm", "-rf", str(d)], check=False)
    assert not st.sanitizer_reports, st.sanitizer_reports


# libopendkim's verifier, in test_dkim's verify mode
TEST_DKIM = Path(os.environ.get("GROUPS_BIN", Path(__file__).resolve()
                                .parents[2] / "build" / "bin")).parent / \
    "tests" / "test_dkim"


def test_post_reaches_every_member_signed(pipeline, tmp_path):
    st, sink, txt = pipeline
    keyfile = tmp_path / "keys.txt"
    keyfile.write_text("".join(f"{n.rstrip('.')} {v}\n"
                               for n, v in txt.items()))
    g = "pl" + uuid.uuid4().hex[:8]
    members = ["alice@example.org", "bob@example.net", "carol@example.com"]
    gid = st.sql("INSERT INTO groups (domain, name, title, subject_tag) "
                 "VALUES ('localhost', :'v1', 'Pipeline', '[PL]') "
                 "RETURNING id", g)[0][0]
    ids = {}
    for m in members:
        aid = st.sql("INSERT INTO accounts (email, display_name) VALUES "
                     "(:'v1', :'v2') RETURNING id", m,
                     m.split("@")[0].title())[0][0]
        ids[m] = (aid, st.sql("INSERT INTO memberships (group_id, "
                              "account_id) VALUES (:'v1', :'v2') "
                              "RETURNING id", gid, aid)[0][0])
    st.sql("INSERT INTO memberships (group_id, account_id, delivery) "
           "SELECT :'v1', id, 'no_email' FROM accounts WHERE email = "
           "'admin@localhost' ON CONFLICT DO NOTHING", gid)
    msgid = f"{uuid.uuid4().hex}@example.org"
    raw = (f"From: Alice <alice@example.org>\r\nTo: {g}@localhost\r\n"
           f"Subject: Picnic on Saturday\r\nMessage-ID: <{msgid}>\r\n"
           "Date: Thu, 03 Dec 2026 12:00:00 +0000\r\n\r\n"
           "Bring a blanket.\r\n").encode()
    with smtplib.SMTP("127.0.0.1", st.ports["smtp_public"], timeout=30) as s:
        s.sendmail("alice@example.org", [f"{g}@localhost"], raw)
    assert wait_for(lambda: all(m in sink.got for m in members), 60), \
        (dict(sink.got), st.log_tails())
    number, mid = st.sql("SELECT number, id FROM messages WHERE "
                         "message_id = :'v1'", msgid)[0]

    def dnsfunc(name, timeout=5):
        n = name.decode() if isinstance(name, bytes) else name
        return txt.get(n if n.endswith(".") else n + ".", "").encode()

    unsub_urls = {}
    for m in members:
        assert len(sink.got[m]) == 1, m
        mail_from, data = sink.got[m][0]
        aid, membership = ids[m]
        # VERP: bounces+<token>@domain, the token signed by karl
        # over "<account>.<message>", and routed back as a bounce
        local = mail_from.split("@")[0]
        assert local.startswith("bounces+") and \
            mail_from.endswith("@localhost"), mail_from
        token = local[len("bounces+"):]
        assert verify_short_token(st, "verp", token) == f"{aid}.{mid}"
        assert verify_short_token(st, "verp", token.upper()) == \
            f"{aid}.{mid}"
        # within RFC 5321's 64 octets (whatever the group's name)
        assert len(local) <= 64, local
        r = st.post("messageserver", "/v1/rcpt", {"rcpt": mail_from})
        assert r.status == 200 and r.json()["route"] == "bounce"
        assert r.json()["detail"] == token
        # both signatures verify over the delivered bytes, for
        # python3-dkim and for libopendkim's verifier
        for idx in range(2):
            assert dkim.DKIM(data).verify(idx=idx, dnsfunc=dnsfunc), idx
        r = subprocess.run([str(TEST_DKIM)], input=data, env=dict(
            os.environ, DKIM_VERIFY_KEYS=str(keyfile)), capture_output=True)
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert sorted(r.stdout.decode().split("\n")[:2]) == [
            "ed25519-sha256 localhost s2 pass",
            "rsa-sha256 localhost s1 pass"], r.stdout
        msg = message_from_bytes(data, policy=default_policy)
        assert msg["Subject"] == "[PL] Picnic on Saturday"
        assert msg["List-Id"] == f"Pipeline <{g}.localhost>"
        assert msg["Message-ID"] == f"<{msgid}>"
        assert msg["Archived-At"].endswith(f"/g/{g}/message/{number}>")
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        urls = [u.strip().strip("<>") for u in
                str(msg["List-Unsubscribe"]).split(",")]
        https = next(u for u in urls if u.startswith("https://"))
        mailto = next(u for u in urls if u.startswith("mailto:"))
        unsub = https.split("?t=", 1)[1]
        assert verify_token(st, "unsubscribe", unsub) == membership
        assert mailto == f"mailto:{g}+unsubscribe-{unsub}@localhost"
        body = msg.get_content()
        assert body.startswith("Bring a blanket.")
        # the footer is this member's: their own unsubscribe link
        assert https in body and "Pipeline" not in body.split("-=-")[0]
        # the MIME structure is sound for Python's parser
        assert not msg.defects and all(not p.defects for p in msg.walk())
        unsub_urls[m] = https
    # karl finished the job; its outbox row is done
    assert st.sql("SELECT o.status, o.receivers_sent FROM outbox o "
                  "WHERE o.message_id = :'v1'", mid) == [["done", "3"]]

    # RFC 8058 one-click: the URL POSTed through nginx, no cookie, the
    # body mail providers send: bob is out, the others stay
    path = unsub_urls["bob@example.net"].split("://", 1)[1]
    path = path[path.index("/"):]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    r = st.https("GET", path)
    assert r.status == 200 and b'method="post"' in r.body
    assert member_count(st, gid) == 3      # GET changes nothing
    r = st.https("POST", path, body=b"List-Unsubscribe=One-Click",
                 headers=form)
    assert r.status == 200 and b"no longer a member" in r.body, r
    assert sorted(x[0] for x in st.sql(
        "SELECT a.email FROM memberships m JOIN accounts a ON "
        "a.id = m.account_id WHERE m.group_id = :'v1' AND "
        "a.email <> 'admin@localhost'", gid)) == [
        "alice@example.org", "carol@example.com"]
    assert st.sql("SELECT count(*) FROM activity_log WHERE group_id = :'v1' "
                  "AND action = 'member.unsubscribe'", gid) == [["1"]]
    r = st.https("POST", path, body=b"List-Unsubscribe=One-Click",
                 headers=form)
    assert r.status == 200 and b"Not subscribed" in r.body
    # a forged or damaged token does nothing
    bad = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    r = st.https("POST", bad, body=b"List-Unsubscribe=One-Click",
                 headers=form)
    assert r.status == 400
    r = st.https("POST", "/unsubscribe", body=b"", headers=form)
    assert r.status == 400
    assert member_count(st, gid) == 2


def member_count(st, gid):
    return int(st.sql("SELECT count(*) FROM memberships m JOIN accounts a "
                      "ON a.id = m.account_id WHERE m.group_id = :'v1' AND "
                      "a.email <> 'admin@localhost'", gid)[0][0])
