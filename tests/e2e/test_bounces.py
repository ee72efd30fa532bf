# SPDX-License-Identifier: MIT
"""Bounces end to end: a post goes through the real pipeline (SMTP through
nginx, smtpd, messageserver, karl) into an aiosmtpd sink; the VERP sender
the sink saw gets a real DSN back over SMTP through nginx, which
messageserver records as a bounce event and applies to the account's
bounce state; the next post skips a bouncing account.  Also: soft and
policy bounces, forged tokens, relays that change case, bounces without
VERP, notices and probes, karl's synchronous 5xx reports, and the two JSON
endpoints (docs/bounces.md)."""
import base64
import hashlib
import hmac
import json
import smtplib
import uuid

import pytest
from aiosmtpd.controller import Controller

from mailtest import Sink, verify_short_token
from stack import Stack, wait_for

DOMAIN = "localhost"


@pytest.fixture(scope="module")
def bst(test_dns):
    st = Stack(extra_conf={"dns_resolver": test_dns.resolver,
                           "karl_retry_min": "1", "karl_retry_max": "2"})
    try:
        st.start()
    except Exception:
        st.stop()
        raise
    sink = Sink()
    ctl = Controller(sink, hostname="127.0.0.1", port=st.ports["karl_relay"])
    ctl.start()
    yield st, sink
    ctl.stop()
    st.stop()
    assert not st.sanitizer_reports, st.sanitizer_reports


# ------------------------------------------------------------------ helpers

def uniq(prefix):
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def account(st, email):
    return st.sql("INSERT INTO accounts (email, display_name) VALUES "
                  "(:'v1', :'v2') RETURNING id", email,
                  email.split("@")[0].title())[0][0]


def group(st, accounts):
    """A group whose members are the given account ids; returns (name,
    id)."""
    name = uniq("bg")
    gid = st.sql("INSERT INTO groups (domain, name, title, who_can_post) "
                 "VALUES ('localhost', :'v1', :'v1', 'anyone') RETURNING id",
                 name)[0][0]
    for aid in accounts:
        st.sql("INSERT INTO memberships (group_id, account_id) VALUES "
               "(:'v1', :'v2')", gid, aid)
    return name, gid


def smtp(st, mail_from, rcpts, raw):
    with smtplib.SMTP("127.0.0.1", st.ports["smtp_public"], timeout=30) as s:
        s.sendmail(mail_from, rcpts, raw)


def post(st, sink, g, wait_for_addrs):
    """Post to group g by SMTP and wait until every address in
    wait_for_addrs has one more copy; returns (Message-ID, messages.id)."""
    before = {a: len(sink.got.get(a, [])) for a in wait_for_addrs}
    msgid = f"{uuid.uuid4().hex}@example.org"
    raw = (f"From: Poster <poster@example.org>\r\nTo: {g}@localhost\r\n"
           f"Subject: news {uuid.uuid4().hex[:6]}\r\n"
           f"Message-ID: <{msgid}>\r\n"
           "Date: Thu, 03 Dec 2026 12:00:00 +0000\r\n\r\nhello\r\n").encode()
    smtp(st, "poster@example.org", [f"{g}@localhost"], raw)
    assert wait_for(lambda: all(len(sink.got.get(a, [])) > before[a]
                                for a in wait_for_addrs), 60), \
        (dict(sink.got), st.log_tails())
    mid = st.sql("SELECT id FROM messages WHERE message_id = :'v1'",
                 msgid)[0][0]
    return msgid, mid


def verp_of(sink, addr):
    """The envelope sender of the last copy addr got."""
    return sink.got[addr][-1][0]


def dsn(to, rcpt, status="5.1.1", action="failed", orig=None,
        diag="550 5.1.1 <{r}>: Recipient address rejected: unknown user"):
    """An RFC 3464 report as Postfix writes one."""
    b = uuid.uuid4().hex
    diag = diag.format(r=rcpt)
    orig = orig or f"{uuid.uuid4().hex}@example.org"
    return (f"From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n"
            f"To: {to}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@mx.example.net>\r\n"
            "Date: Thu, 03 Dec 2026 12:05:00 +0000\r\n"
            "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/report; report-type=delivery-status;"
            f"\r\n\tboundary=\"{b}\"\r\n\r\n"
            f"--{b}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            "This is the mail system at host mx.example.net.\r\n\r\n"
            "I'm sorry to have to inform you that your message could not\r\n"
            "be delivered to one or more recipients.\r\n\r\n"
            f"--{b}\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.example.net\r\n"
            "Arrival-Date: Thu, 03 Dec 2026 12:04:00 +0000\r\n\r\n"
            f"Final-Recipient: rfc822; {rcpt}\r\n"
            f"Original-Recipient: rfc822;{rcpt}\r\n"
            f"Action: {action}\r\nStatus: {status}\r\n"
            "Remote-MTA: dns; mail.example.net\r\n"
            f"Diagnostic-Code: smtp; {diag}\r\n\r\n"
            f"--{b}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
            "From: Poster <poster@example.org>\r\n"
            f"Message-ID: <{orig}>\r\nSubject: news\r\n\r\n"
            f"--{b}--\r\n").encode()


def events(st, aid):
    return st.sql("SELECT e.type, e.source, coalesce(e.dsn_status, ''), "
                  "e.counts, coalesce(g.name, ''), "
                  "coalesce(e.original_message_id, ''), e.email "
                  "FROM bounce_events e LEFT JOIN groups g ON "
                  "g.id = e.group_id WHERE e.account_id = :'v1' "
                  "ORDER BY e.id", aid)


def state(st, aid):
    rows = st.sql("SELECT status, bouncing_since IS NOT NULL, "
                  "last_bounce_at IS NOT NULL FROM bounce_state "
                  "WHERE account_id = :'v1'", aid)
    return tuple(rows[0]) if rows else None


def member_with_copy(bst, prefix="m"):
    """A fresh account in a fresh group with one post delivered to it:
    (address, account id, group, Message-ID, messages.id, VERP)."""
    st, sink = bst
    addr = f"{uniq(prefix)}@example.net"
    aid = account(st, addr)
    g, _ = group(st, [aid])
    msgid, mid = post(st, sink, g, [addr])
    return addr, aid, g, msgid, mid, verp_of(sink, addr)


def short_sign(st, payload):
    """token_short_sign over payload with the stack's "verp" key."""
    secret = (st.var / "secret").read_bytes().rstrip()
    key = hmac.new(secret, b"verp", hashlib.sha256).digest()
    mac = hmac.new(key, b"verp\n" + payload.encode() + b"\n0",
                   hashlib.sha256).digest()[:10]
    return payload + "." + base64.b32encode(mac).decode().lower()


# -------------------------------------------------------------------- tests

def test_hard_dsn_makes_the_account_bouncing(bst):
    st, sink = bst
    addr = f"{uniq('hard')}@example.net"
    other = f"{uniq('other')}@example.net"
    aid, oid = account(st, addr), account(st, other)
    g1, _ = group(st, [aid, oid])
    g2, _ = group(st, [aid, oid])
    msgid, mid = post(st, sink, g1, [addr, other])
    verp = verp_of(sink, addr)
    token = verp.split("@")[0].split("bounces+", 1)[1]
    assert verify_short_token(st, "verp", token) == f"{aid}.{mid}"
    assert state(st, aid) is None
    bounce = dsn(verp, addr, orig=msgid)
    smtp(st, "", [verp], bounce)
    # smtpd's 250 comes after messageserver's COMMIT: no waiting
    assert events(st, aid) == [["hard", "verp", "5.1.1", "t", g1, msgid,
                                addr]]
    assert state(st, aid) == ("bouncing", "t", "t")
    diag = st.sql("SELECT diagnostic, remote_mta, reporting_mta FROM "
                  "bounce_events WHERE account_id = :'v1'", aid)[0]
    assert "Recipient address rejected" in diag[0], diag
    assert diag[1:] == ["mail.example.net", "mx.example.net"], diag
    # the same bounce again (a relay's retry) is recorded once
    smtp(st, "", [verp], bounce)
    assert len(events(st, aid)) == 1
    assert events(st, oid) == []
    # the account's other group skips it: the other member gets the post
    # and the outbox row is done, the bouncing one gets nothing more
    _, mid2 = post(st, sink, g2, [other])
    assert wait_for(lambda: st.sql("SELECT status FROM outbox WHERE "
                                   "message_id = :'v1'", mid2) ==
                    [["done"]], 30)
    assert len(sink.got[addr]) == 1
    assert st.sql("SELECT receivers_sent FROM outbox WHERE message_id = "
                  ":'v1'", mid2) == [["1"]]


def test_soft_dsn_is_recorded_and_state_stays_ok(bst):
    st, _ = bst
    addr, aid, g, msgid, _, verp = member_with_copy(bst, "soft")
    smtp(st, "", [verp], dsn(verp, addr, status="4.2.2", action="delayed",
                             orig=msgid, diag="452 4.2.2 mailbox full"))
    assert events(st, aid) == [["soft", "verp", "4.2.2", "t", g, msgid,
                                addr]]
    # a soft bounce dates the run; the bouncer cron decides the rest
    assert state(st, aid) == ("ok", "f", "t")


def test_policy_bounce_does_not_count(bst):
    st, _ = bst
    addr, aid, g, msgid, _, verp = member_with_copy(bst, "policy")
    smtp(st, "", [verp], dsn(verp, addr, status="5.7.1", orig=msgid,
                             diag="550 5.7.1 message rejected as spam"))
    assert events(st, aid) == [["hard", "verp", "5.7.1", "f", g, msgid,
                                addr]]
    assert state(st, aid) in (None, ("ok", "f", "f"))


def test_delivery_report_records_nothing(bst):
    st, _ = bst
    addr, aid, _, msgid, _, verp = member_with_copy(bst, "relayed")
    smtp(st, "", [verp], dsn(verp, addr, status="2.0.0", action="relayed",
                             orig=msgid, diag="250 2.0.0 Ok"))
    assert events(st, aid) == []
    assert state(st, aid) in (None, ("ok", "f", "f"))


def test_forged_or_damaged_token_records_nothing(bst):
    st, _ = bst
    addr, aid, g, msgid, mid, verp = member_with_copy(bst, "forged")
    local, dom = verp.split("@")
    head, token = local.split("+", 1)
    assert head == "bounces", local
    flip = "a" if token[-1] != "a" else "b"
    before = st.sql("SELECT count(*) FROM bounce_events")[0][0]
    bad = [f"bounces+{token[:-1]}{flip}@{dom}",             # forged MAC
           f"bounces+{token[:-4]}@{dom}",                   # cut short
           # a well-formed token for another account, MAC not ours
           f"bounces+{int(aid) + 1}.{mid}.{token.rsplit('.')[-1]}"
           f"@{dom}",
           f"bounces+garbage@{dom}",
           # the group's own form, forged the same way
           f"{g}+bounces-{token[:-1]}{flip}@{dom}"]
    for v in bad:
        smtp(st, "", [v], dsn(v, addr, orig=msgid))
    assert st.sql("SELECT count(*) FROM bounce_events")[0][0] == before
    assert state(st, aid) is None
    # logged, with the reason
    assert wait_for(lambda: st.errord_events(
        daemon="messageserver", text="forged or damaged VERP token"), 10)


def test_case_changed_by_a_relay_still_counts(bst):
    st, _ = bst
    addr, aid, g, msgid, _, verp = member_with_copy(bst, "upper")
    shout = verp.upper()
    assert shout != verp
    smtp(st, "", [shout], dsn(shout, addr.upper(), orig=msgid))
    assert events(st, aid) == [["hard", "verp", "5.1.1", "t", g, msgid,
                                addr]]
    assert state(st, aid)[0] == "bouncing"


def test_unparsable_verp_bounce_is_one_hard_bounce(bst):
    st, _ = bst
    addr, aid, g, _, _, verp = member_with_copy(bst, "odd")
    # an auto-responder's answer is not a bounce
    smtp(st, "", [verp], (f"From: {addr}\r\nTo: {verp}\r\n"
                          "Subject: Out of Office: back on Monday\r\n"
                          "Auto-Submitted: auto-replied\r\n\r\n"
                          "I am away.\r\n").encode())
    assert events(st, aid) == []
    # something no parser understands: the VERP proves the copy failed
    smtp(st, "", [verp], (f"From: postmaster@odd.example\r\nTo: {verp}\r\n"
                          "Subject: problem with your mail\r\n\r\n"
                          "It did not work out.\r\n").encode())
    ev = events(st, aid)
    assert [e[:5] for e in ev] == [["hard", "verp", "", "t", g]], ev
    assert st.sql("SELECT diagnostic FROM bounce_events WHERE account_id = "
                  ":'v1'", aid) == [["bounce not understood; subject: "
                                     "problem with your mail"]]
    assert state(st, aid)[0] == "bouncing"


def test_bounce_without_verp_uses_the_dsn(bst):
    st, _ = bst
    addr = f"{uniq('plain')}@example.net"
    aid = account(st, addr)
    g, _ = group(st, [aid])
    unknown = f"{uniq('nobody')}@example.net"
    to = f"{g}+bounces@localhost"
    before = st.sql("SELECT count(*) FROM bounce_events")[0][0]
    smtp(st, "", [to], dsn(to, unknown))
    assert st.sql("SELECT count(*) FROM bounce_events")[0][0] == before
    smtp(st, "", [to], dsn(to, addr.upper(), diag="550 5.1.1 gone"))
    ev = events(st, aid)
    assert [e[:5] for e in ev] == [["hard", "dsn", "5.1.1", "t", g]], ev
    assert state(st, aid)[0] == "bouncing"


def notice(st, gid, to, verp=None):
    """Queue a notice to one receiver through the outbox (as the
    bouncer's probes are queued); returns the outbox id."""
    rcv = {"to": to}
    if verp:
        rcv["verp"] = verp
    raw = (f"From: owner <{uniq('g')}+owner@localhost>\r\nTo: {to}\r\n"
           "Subject: a notice\r\nAuto-Submitted: auto-replied\r\n"
           f"Message-ID: <{uuid.uuid4().hex}@localhost>\r\n\r\n"
           "hello\r\n").encode()
    return st.sql("INSERT INTO outbox (kind, group_id, raw, receivers) "
                  "VALUES ('notice', :'v1', decode(:'v2', 'hex'), "
                  ":'v3'::jsonb) RETURNING id", gid, raw.hex(),
                  json.dumps([rcv]))[0][0]


def test_probe_bounce_has_source_probe(bst):
    """A probe's bounce (VERP p<account>, to bounces+TOKEN, which names no
    group) is recorded under the group of the account's latest bounce,
    the one the bouncer sent the probe through."""
    st, sink = bst
    addr = f"{uniq('probe')}@example.net"
    aid = account(st, addr)
    g, gid = group(st, [aid])
    g2, gid2 = group(st, [aid])
    st.sql("INSERT INTO bounce_events (account_id, email, group_id, type, "
           "source) VALUES (:'v1', :'v2', :'v3', 'soft', 'dsn')",
           aid, addr, gid2)
    notice(st, gid, addr, verp=f"p{aid}")
    assert wait_for(lambda: sink.got.get(addr), 30), st.log_tails()
    verp = verp_of(sink, addr)
    token = verp.split("@")[0].split("bounces+", 1)[1]
    assert verify_short_token(st, "verp", token) == f"p{aid}"
    smtp(st, "", [verp], dsn(verp, addr))
    ev = events(st, aid)
    assert [e[:5] for e in ev][1:] == [["hard", "probe", "5.1.1", "t", g2]], \
        ev


def test_long_group_name_bounce_address_fits(bst):
    """A group named with 60 characters: its copies' envelope sender is
    still within RFC 5321's 64 octets (bounces+TOKEN, not
    group+bounces-TOKEN), routes as a bounce, and a DSN to it marks the
    member, under that group."""
    st, sink = bst
    addr = f"{uniq('long')}@example.net"
    aid = account(st, addr)
    name = ("l" + uniq("g").replace("-", "") + "x" * 60)[:60]
    gid = st.sql("INSERT INTO groups (domain, name, title, who_can_post) "
                 "VALUES ('localhost', :'v1', :'v1', 'anyone') RETURNING id",
                 name)[0][0]
    st.sql("INSERT INTO memberships (group_id, account_id) VALUES "
           "(:'v1', :'v2')", gid, aid)
    msgid, mid = post(st, sink, name, [addr])
    verp = verp_of(sink, addr)
    local = verp.split("@")[0]
    assert local.startswith("bounces+") and len(local) <= 64, verp
    r = st.post("messageserver", "/v1/rcpt", {"rcpt": verp})
    assert r.status == 200 and r.json()["route"] == "bounce", r
    smtp(st, "", [verp], dsn(verp, addr, orig=msgid))
    ev = events(st, aid)
    assert [e[:5] for e in ev] == [["hard", "verp", "5.1.1", "t", name]], ev
    # no group may take the address's name
    with pytest.raises(Exception):
        st.sql("INSERT INTO groups (domain, name, title) VALUES "
               "('localhost', 'bounces', 'x')")


def test_notice_bounce_finds_the_receiver(bst):
    st, sink = bst
    addr = f"{uniq('notice')}@example.net"
    aid = account(st, addr)
    g, gid = group(st, [aid])
    oid = notice(st, gid, addr)
    assert wait_for(lambda: sink.got.get(addr), 30), st.log_tails()
    verp = verp_of(sink, addr)
    token = verp.split("@")[0].split("bounces+", 1)[1]
    assert verify_short_token(st, "verp", token) == f"n{oid}"
    # an address the notice was not sent to is not believed
    stranger = f"{uniq('stranger')}@example.net"
    account(st, stranger)
    smtp(st, "", [verp], dsn(verp, stranger))
    assert st.sql("SELECT count(*) FROM bounce_events WHERE email = "
                  ":'v1'", stranger) == [["0"]]
    smtp(st, "", [verp], dsn(verp, addr))
    ev = events(st, aid)
    assert [e[:5] for e in ev] == [["hard", "verp", "5.1.1", "t", g]], ev


def test_karl_report_counts_like_a_dsn_once(bst):
    st, sink = bst
    ok = f"{uniq('fine')}@example.net"
    bad = f"{uniq('reject')}@example.net"     # the sink answers 550 5.1.1
    aid, okid = account(st, bad), account(st, ok)
    g, _ = group(st, [aid, okid])
    msgid, mid = post(st, sink, g, [ok])
    assert wait_for(lambda: events(st, aid), 30), st.log_tails()
    assert events(st, aid) == [["hard", "karl", "5.1.1", "t", g, msgid,
                                bad]]
    assert state(st, aid) == ("bouncing", "t", "t")
    job = st.sql("SELECT karl_job FROM bounce_events WHERE account_id = "
                 ":'v1'", aid)[0][0]
    oid = st.sql("SELECT id FROM outbox WHERE message_id = :'v1'", mid)[0][0]
    assert job == f"post-{oid}"
    # karl repeating its report changes nothing
    r = st.post("messageserver", "/v1/bounces", {
        "job": job, "rcpt": bad, "verp": f"{aid}.{mid}", "code": 550,
        "status": "5.1.1", "diagnostic": "550 5.1.1 no such user here"})
    assert r.status == 200 and r.json()["status"] == "duplicate", r
    assert len(events(st, aid)) == 1
    # a policy rejection reported by karl is recorded, not counted
    pol = f"{uniq('pol')}@example.net"
    pid = account(st, pol)
    r = st.post("messageserver", "/v1/bounces", {
        "job": f"post-{oid}", "rcpt": pol, "verp": f"{pid}.{mid}",
        "code": 550, "status": "5.7.1", "diagnostic": "550 5.7.1 spam"})
    assert r.status == 200 and r.json()["status"] == "recorded", r
    assert events(st, pid) == [["hard", "karl", "5.7.1", "f", g, msgid,
                                pol]]
    assert state(st, pid) in (None, ("ok", "f", "f"))
    # a receiver karl gave up on after retrying is a soft bounce
    late = f"{uniq('late')}@example.net"
    lid = account(st, late)
    r = st.post("messageserver", "/v1/bounces", {
        "job": f"post-{oid}", "rcpt": late, "verp": f"{lid}.{mid}",
        "code": 0, "status": "", "diagnostic": "452 4.2.2 mailbox full"})
    assert r.status == 200
    assert [e[:4] for e in events(st, lid)] == [["soft", "karl", "", "t"]]
    assert state(st, lid) == ("ok", "f", "t")


def test_json_endpoints(bst):
    st, sink = bst
    addr, aid, g, msgid, mid, verp = member_with_copy(bst, "api")
    fine = f"{uniq('fine')}@example.net"
    fid = account(st, fine)
    gid = st.sql("SELECT id FROM groups WHERE name = :'v1'", g)[0][0]
    st.sql("INSERT INTO memberships (group_id, account_id) VALUES "
           "(:'v1', :'v2')", gid, fid)
    smtp(st, "", [verp], dsn(verp, addr, status="4.2.2", action="delayed",
                             orig=msgid, diag="452 4.2.2 mailbox full"))
    # the account is ok: the group has nobody bouncing yet
    path = f"/v1/groups/localhost/{g}/bouncing"
    r = st.get("messageserver", path, auth=True)
    assert r.status == 200, r
    assert r.json() == {"group": g, "domain": "localhost", "members": [],
                        "more": False}
    smtp(st, "", [verp], dsn(verp, addr, orig=msgid))

    r = st.get("messageserver", f"/v1/accounts/{aid}/bounces", auth=True)
    assert r.status == 200, r
    h = r.json()
    assert h["account"] == int(aid) and h["email"] == addr
    assert h["status"] == "bouncing" and h["bouncing_since"]
    assert h["last_bounce_at"].endswith("Z") and h["probes_sent"] == 0
    assert h["more"] is False
    ev = h["events"]
    # newest first
    assert [(e["type"], e["dsn_status"]) for e in ev] == [
        ("hard", "5.1.1"), ("soft", "4.2.2")]
    assert ev[0]["id"] > ev[1]["id"]
    assert ev[0]["group"] == g and ev[0]["domain"] == "localhost"
    assert ev[0]["message_id"] == msgid and ev[0]["source"] == "verp"
    assert ev[0]["counts"] is True and ev[0]["dsn_action"] == "failed"
    assert "unknown user" in ev[0]["diagnostic"]
    r = st.get("messageserver", f"/v1/accounts/{aid}/bounces?limit=1",
               auth=True)
    assert len(r.json()["events"]) == 1 and r.json()["more"] is True
    r = st.get("messageserver", f"/v1/accounts/{fid}/bounces", auth=True)
    assert r.json()["status"] == "ok" and r.json()["events"] == []

    r = st.get("messageserver", path.upper().replace("/V1/GROUPS/",
                                                     "/v1/groups/").replace(
        "/BOUNCING", "/bouncing"), auth=True)
    assert r.status == 200, r
    b = r.json()
    assert (b["group"], b["domain"]) == (g, "localhost")
    assert b["more"] is False and len(b["members"]) == 1, b
    m = b["members"][0]
    assert m["account"] == int(aid) and m["email"] == addr
    assert m["status"] == "bouncing" and m["bounces"] == 2
    assert m["last_type"] == "hard" and m["dsn_status"] == "5.1.1"
    assert "unknown user" in m["diagnostic"] and m["last_bounce_at"]

    # behind the API secret; strict paths and parameters
    for p in (f"/v1/accounts/{aid}/bounces", path):
        assert st.get("messageserver", p).status == 401
        assert st.get("messageserver", p, auth="Bearer wrong").status == 401
    for p, code in ((f"/v1/accounts/{aid}/bouncez", 404),
                    ("/v1/accounts/x1/bounces", 404),
                    ("/v1/accounts/99999999999/bounces", 404),
                    ("/v1/accounts//bounces", 404),
                    (f"/v1/accounts/{aid}/bounces?limit=0", 400),
                    (f"/v1/accounts/{aid}/bounces?limit=1x", 400),
                    ("/v1/groups/localhost/nosuchgroup/bouncing", 404),
                    (f"/v1/groups/localhost/{g}", 404),
                    (f"/v1/groups//{g}/bouncing", 404),
                    (f"{path}?limit=100000", 400)):
        r = st.get("messageserver", p, auth=True)
        assert r.status == code, (p, r)


def test_state_transitions(bst):
    st, _ = bst

    def report(addr, code, status):
        r = st.post("messageserver", "/v1/bounces", {
            "job": f"notice-{uuid.uuid4().hex[:8]}", "rcpt": addr,
            "verp": "", "code": code, "status": status,
            "diagnostic": f"{code} {status} test"})
        assert r.status == 200 and r.json()["status"] == "recorded", r

    def row(aid):
        return st.sql("SELECT status, first_bounce_at, last_bounce_at, "
                      "bouncing_since, bounced_at FROM bounce_state "
                      "WHERE account_id = :'v1'", aid)[0]

    # a bounced account stays bounced; only the last bounce is dated
    addr = f"{uniq('dead')}@example.net"
    aid = account(st, addr)
    st.sql("INSERT INTO bounce_state (account_id, status, bouncing_since, "
           "bounced_at, first_bounce_at, last_bounce_at) VALUES (:'v1', "
           "'bounced', now() - '20 days'::interval, now() - '5 days'::"
           "interval, now() - '21 days'::interval, now() - '5 days'::"
           "interval)", aid)
    old = row(aid)
    report(addr, 550, "5.1.1")
    new = row(aid)
    assert new[0] == "bounced" and new[1] == old[1] and new[3:] == old[3:]
    assert new[2] > old[2]

    # bouncing: a soft bounce changes nothing but the date
    addr = f"{uniq('bouncing')}@example.net"
    aid = account(st, addr)
    report(addr, 550, "5.2.1")
    old = row(aid)
    assert old[0] == "bouncing"
    report(addr, 0, "")
    new = row(aid)
    assert new[0] == "bouncing" and new[3] == old[3] and new[1] == old[1]

    # ok: a soft bounce long after the last one starts a new run; one
    # within bounce_soft_days keeps the run's start
    addr = f"{uniq('run')}@example.net"
    aid = account(st, addr)
    st.sql("INSERT INTO bounce_state (account_id, first_bounce_at, "
           "last_bounce_at) VALUES (:'v1', now() - '40 days'::interval, "
           "now() - '30 days'::interval)", aid)
    report(addr, 0, "")
    r = row(aid)
    assert r[0] == "ok" and r[1] == r[2], r
    st.sql("UPDATE bounce_state SET first_bounce_at = now() - "
           "'3 days'::interval, last_bounce_at = now() - '1 day'::interval "
           "WHERE account_id = :'v1'", aid)
    first = row(aid)[1]
    report(addr, 0, "")
    r = row(aid)
    assert r[0] == "ok" and r[1] == first and r[2] > first, r
    # and a hard bounce then makes it bouncing
    report(addr, 550, "5.1.1")
    r = row(aid)
    assert r[0] == "bouncing" and r[3] == r[2] and r[1] == first, r

    # restored since the run began (the probe link sets ok_since): the
    # next bounce starts a new run
    addr = f"{uniq('restored')}@example.net"
    aid = account(st, addr)
    st.sql("INSERT INTO bounce_state (account_id, first_bounce_at, "
           "last_bounce_at, ok_since) VALUES (:'v1', now() - '2 days'::"
           "interval, now() - '1 day'::interval, now() - '12 hours'::"
           "interval)", aid)
    report(addr, 0, "")
    r = row(aid)
    assert r[0] == "ok" and r[1] == r[2], r


def test_karl_report_stops_mail_from_the_other_group(bst):
    """A 5xx karl meets in one group's delivery (its report to
    messageserver) pauses the account for all its groups: the next post of
    its other group is not even tried at that address."""
    st, sink = bst
    bad = f"{uniq('reject')}@example.net"     # the sink answers 550 5.1.1
    ok1, ok2 = f"{uniq('fine')}@example.net", f"{uniq('fine')}@example.net"
    aid, id1, id2 = account(st, bad), account(st, ok1), account(st, ok2)
    g1, _ = group(st, [aid, id1])
    g2, _ = group(st, [aid, id2])
    post(st, sink, g1, [ok1])
    assert wait_for(lambda: state(st, aid) == ("bouncing", "t", "t"), 30), \
        st.log_tails()
    assert [e[:5] for e in events(st, aid)] == [["hard", "karl", "5.1.1",
                                                  "t", g1]]
    with sink.lock:
        tried = sink.tries[bad]
    assert tried >= 1
    _, mid2 = post(st, sink, g2, [ok2])
    assert wait_for(lambda: st.sql("SELECT status FROM outbox WHERE "
                                   "message_id = :'v1'", mid2) ==
                    [["done"]], 30)
    assert st.sql("SELECT receivers_sent FROM outbox WHERE message_id = "
                  ":'v1'", mid2) == [["1"]]
    with sink.lock:
        assert sink.tries[bad] == tried
    assert len(events(st, aid)) == 1
