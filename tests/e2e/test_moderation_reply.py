# SPDX-License-Identifier: MIT
"""Reply-based moderation end to end: a held post's notice reaches the
moderators through karl; a moderator's reply to its approve address (by
SMTP through nginx) releases the post to the members exactly once, and a
replay does nothing more; a reply to the reject address tells the poster,
with the moderator's reason.  Forged, damaged, expired and foreign tokens,
non-moderators and automatic replies change nothing.  Join requests
(memberships waiting for approval) are approved and rejected the same
way, with the token built here from the stack's secret.

A private stack whose karl delivers by SMTP to an aiosmtpd sink: what the
sink got is what people would read."""
import base64
import concurrent.futures
import hashlib
import hmac
import smtplib
import time
import uuid
from email import message_from_bytes
from email.policy import default as default_policy

import pytest
from aiosmtpd.controller import Controller

from mailtest import Sink, verify_short_token
from stack import Stack, wait_for

DOMAIN = "localhost"


@pytest.fixture(scope="module")
def mod(test_dns):
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

def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def uniq(prefix):
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def make_group(st, members, **settings):
    """A group and its members [(email, {membership columns})]; returns
    (name, {email: membership id})."""
    name = uniq("mr")
    cols = ["domain", "name", "title"] + list(settings)
    vals = [DOMAIN, name, f"Group {name}"] + [str(v) for v in
                                              settings.values()]
    ph = ", ".join(f":'v{i}'" for i in range(1, len(vals) + 1))
    gid = st.sql(f"INSERT INTO groups ({', '.join(cols)}) VALUES ({ph}) "
                 "RETURNING id", *vals)[0][0]
    ids = {}
    for email, m in members:
        aid = st.sql("INSERT INTO accounts (email, display_name) VALUES "
                     "(:'v1', :'v2') ON CONFLICT (lower(email)) DO UPDATE "
                     "SET status = 'active' RETURNING id", email,
                     email.split("@")[0].title())[0][0]
        mcols = ["group_id", "account_id"] + list(m)
        mvals = [gid, aid] + [str(v) for v in m.values()]
        ph = ", ".join(f":'v{i}'" for i in range(1, len(mvals) + 1))
        ids[email] = st.sql(f"INSERT INTO memberships ({', '.join(mcols)}) "
                            f"VALUES ({ph}) RETURNING id", *mvals)[0][0]
    return name, ids


def addr(tag, name):
    """A unique address at example.org, so that sink entries of one test
    never mix with another's."""
    return f"{tag}-{name}@example.org"


def message(to, sender, subject, body="hello group\r\n", extra=""):
    msgid = f"{uuid.uuid4().hex}@example.org"
    raw = (f"From: {sender.split('@')[0].title()} <{sender}>\r\n"
           f"To: {to}\r\nSubject: {subject}\r\nMessage-ID: <{msgid}>\r\n"
           f"{extra}Date: Thu, 03 Dec 2026 12:00:00 +0000\r\n\r\n"
           f"{body}").encode()
    return raw, msgid


def inbound(st, rcpt, raw, mail_from):
    r = st.post("messageserver", "/v1/inbound", {
        "mail_from": mail_from, "rcpts": [rcpt], "client_addr": "127.0.0.1",
        "client_helo": "client.example", "cid": "modr-" + uuid.uuid4().hex[:8],
        "raw": b64url(raw)})
    assert r.status == 200, r
    return r.json()


def act(st, rcpt, sender, body="ok\r\n", extra=""):
    """Send a reply to rcpt from sender; its one action."""
    raw, _ = message(rcpt, sender, "Re: moderation", body=body, extra=extra)
    j = inbound(st, rcpt, raw, sender)
    assert len(j["actions"]) == 1, j
    return j["actions"][0]


def hold(st, g, poster, subject):
    raw, msgid = message(f"{g}@{DOMAIN}", poster, subject)
    j = inbound(st, f"{g}@{DOMAIN}", raw, poster)
    assert j["messages"][0]["status"] == "held", j
    return j["messages"][0]["pending_id"], msgid


def delivered(sink, rcpt, pred=lambda m: True, n=1, timeout=20):
    """Wait until rcpt got n messages matching pred; returns them
    (email.message.EmailMessage)."""
    got = []

    def check():
        with sink.lock:
            raw = [d for _, d in sink.got.get(rcpt, [])]
        got[:] = [m for m in (message_from_bytes(r, policy=default_policy)
                              for r in raw) if pred(m)]
        return len(got) >= n
    assert wait_for(check, timeout), (rcpt, dict(sink.got).keys())
    return got


def copies(sink, rcpt, pred=lambda m: True):
    with sink.lock:
        raw = [d for _, d in sink.got.get(rcpt, [])]
    return [m for m in (message_from_bytes(r, policy=default_policy)
                        for r in raw) if pred(m)]


def subject_has(text):
    return lambda m: text in str(m["Subject"])


def text_of(m):
    return m.get_body(("plain",)).get_content()


def sign_token(st, item, last_day=None, secret=None):
    """A moderation token (token.h's short form, purpose "moderate") for
    item, valid until last_day (days since 1970; default: tomorrow),
    under the stack's secret or another one."""
    if last_day is None:
        last_day = int(time.time()) // 86400 + 1
    secret = secret or (st.var / "secret").read_bytes().rstrip()
    payload = f"{item}.{last_day}"
    key = hmac.new(secret, b"moderate", hashlib.sha256).digest()
    mac = hmac.new(key, b"moderate\n" + payload.encode() + b"\n0",
                   hashlib.sha256).digest()[:10]
    return f"{payload}.{base64.b32encode(mac).decode().lower()}"


def pending_row(st, pid):
    return st.sql("SELECT p.status, coalesce(a.email, ''), "
                  "p.result_message_id IS NOT NULL, p.decision_note "
                  "FROM pending_messages p LEFT JOIN accounts a ON "
                  "a.id = p.decided_by WHERE p.id = :'v1'", pid)[0]


def archived(st, g):
    return int(st.sql("SELECT count(*) FROM messages m JOIN groups g ON "
                      "g.id = m.group_id WHERE g.name = :'v1'", g)[0][0])


# ----------------------------------------------------------------- messages

def test_approve_by_reply_releases_once(mod):
    st, sink = mod
    owner, moder = addr("owner", "a"), addr("mod", "a")
    poster, other = addr("poster", "a"), addr("other", "a")
    g, _ = make_group(st, [(owner, {"role": "owner"}),
                           (moder, {"role": "moderator"}),
                           (poster, {"posting": "moderated"}), (other, {})])
    pid, msgid = hold(st, g, poster, "Please release me")

    # the notice reaches both moderators; its Reply-To approves
    n = delivered(sink, moder, subject_has("held for approval"))[0]
    delivered(sink, owner, subject_has("held for approval"))
    assert n["Auto-Submitted"] == "auto-generated"
    approve = n["Reply-To"].addresses[0].addr_spec
    assert approve.startswith(f"{g}+approve-")
    token = approve.split("+approve-", 1)[1].split("@")[0]
    assert len(approve.split("@")[0]) <= 64, approve
    assert verify_short_token(st, "moderate", token).split(".")[0] == \
        str(pid)
    assert not copies(sink, other, subject_has("Please release me"))

    # the moderator replies, by SMTP through nginx and smtpd
    raw, _ = message(approve, moder, "Re: " + str(n["Subject"]),
                     body="approved\r\n")
    with smtplib.SMTP("127.0.0.1", st.ports["smtp_public"],
                      timeout=30) as s:
        s.ehlo("mod.example")
        assert s.sendmail(moder, [approve], raw) == {}

    # the post reaches every member (the poster too) once
    def is_post(m):
        return m["Message-ID"] == f"<{msgid}>"
    for m in (other, poster, owner, moder):
        got = delivered(sink, m, is_post)
        assert len(got) == 1, m
    assert got[0]["List-Id"] is not None
    assert pending_row(st, pid) == ["approved", moder, "t", ""]
    assert st.sql("SELECT a.email FROM messages m JOIN accounts a ON "
                  "a.id = m.approved_by WHERE m.message_id = :'v1'",
                  msgid) == [[moder]]
    assert st.sql("SELECT l.action, l.details->>'pending_id', a.email FROM "
                  "activity_log l JOIN accounts a ON a.id = l.actor_id "
                  "WHERE l.action LIKE 'message.%' AND "
                  "l.details->>'pending_id' = :'v1'", pid) == [
        ["message.approved", str(pid), moder]]
    assert archived(st, g) == 1

    # a replay (the owner approves too late, the moderator again) changes
    # nothing and says so to the moderator only
    for who in (owner, moder):
        a = act(st, approve, who)
        assert a["status"] == "ignored" and "approved" in a["reason"], a
        delivered(sink, who, subject_has("nothing to do"))
    assert archived(st, g) == 1
    for m in (other, poster, owner, moder):
        assert len(copies(sink, m, is_post)) == 1, m
    assert not copies(sink, poster, subject_has("nothing to do"))


def test_approval_lifts_new_member_moderation(mod):
    st, sink = mod
    moder, poster = addr("mod", "nm"), addr("poster", "nm")
    g, ids = make_group(st, [(moder, {"role": "moderator"}),
                             (poster, {"posting": "new_member_moderated"})],
                        new_member_posts=1)
    pid, _ = hold(st, g, poster, "first post")
    a = act(st, f"{g}+approve-{sign_token(st, pid)}@{DOMAIN}", moder)
    assert a["status"] == "done", a
    assert st.sql("SELECT posting, approved_posts FROM memberships WHERE "
                  "id = :'v1'", ids[poster]) == [["unmoderated", "1"]]
    raw, _ = message(f"{g}@{DOMAIN}", poster, "second post")
    j = inbound(st, f"{g}@{DOMAIN}", raw, poster)
    assert j["messages"][0]["status"] == "archived", j


def test_reject_by_reply_tells_the_poster(mod):
    st, sink = mod
    moder, poster = addr("mod", "r"), addr("poster", "r")
    g, _ = make_group(st, [(moder, {"role": "moderator"}),
                           (poster, {})], moderate_all="true")
    pid, msgid = hold(st, g, poster, "Buy cheap things")
    n = delivered(sink, moder, subject_has("held for approval"))[0]
    body = text_of(n)
    reject = next(w for w in body.split() if f"{g}+reject-" in w)
    a = act(st, reject, moder,
            body="\r\nOff topic for this group\r\n\r\n> quoted notice\r\n")
    assert a["status"] == "done" and a["reason"].startswith("rejected"), a
    assert pending_row(st, pid) == ["rejected", moder, "f",
                                    "Off topic for this group"]
    got = delivered(sink, poster, subject_has("Not posted"))
    assert len(got) == 1
    m = got[0]
    assert m["Auto-Submitted"] == "auto-replied"
    assert m["In-Reply-To"] == f"<{msgid}>"
    assert m["From"].addresses[0].addr_spec == f"{g}+owner@{DOMAIN}"
    assert "Reason: Off topic for this group" in text_of(m)
    assert "Buy cheap things" in str(m["Subject"])
    assert archived(st, g) == 0
    # rejected stays rejected: a late approval does not post it
    token = reject.split("+reject-", 1)[1].split("@")[0]
    a = act(st, f"{g}+approve-{token}@{DOMAIN}", moder)
    assert a["status"] == "ignored" and "rejected" in a["reason"], a
    assert archived(st, g) == 0


def test_bad_tokens_and_senders_change_nothing(mod):
    st, sink = mod
    moder, member = addr("mod", "bad"), addr("member", "bad")
    poster, other_mod = addr("poster", "bad"), addr("othermod", "bad")
    g, _ = make_group(st, [(moder, {"role": "moderator"}), (member, {}),
                           (poster, {"posting": "moderated"})])
    h, _ = make_group(st, [(other_mod, {"role": "owner"}),
                           (poster, {"posting": "moderated"})])
    pid, _ = hold(st, g, poster, "in g")
    hpid, _ = hold(st, h, poster, "in h")
    good = sign_token(st, pid)
    item, day, mac = good.split(".")
    damaged = f"{item}.{day}.{mac[:-1]}{'a' if mac[-1] != 'a' else 'b'}"
    cases = [
        # (token, sender, extra headers, reason)
        (damaged, moder, "", "bad token"),
        (sign_token(st, pid, secret=b"not the secret"), moder, "",
         "bad token"),
        (f"{item}.{int(day) + 30}.{mac}", moder, "", "bad token"),
        (f"{item}.{day}", moder, "", "bad token"),
        (sign_token(st, pid, last_day=int(time.time()) // 86400 - 1),
         moder, "", "expired token"),
        # a genuine token of group h sent to g's address, by g's moderator
        (sign_token(st, hpid), moder, "", "no held message"),
        # a token whose payload names nothing
        (sign_token(st, "x1"), moder, "", "names nothing"),
        (good, member, "", "not a moderator"),
        (good, "stranger@example.net", "", "not a moderator"),
        # h's owner, with a genuine token of g
        (good, other_mod, "", "not a moderator"),
        (good, moder, "Auto-Submitted: auto-replied\r\n", "automatic"),
        (good, moder, "Precedence: bulk\r\n", "Precedence"),
    ]
    for token, sender, extra, reason in cases:
        for cmd in ("approve", "reject"):
            a = act(st, f"{g}+{cmd}-{token}@{DOMAIN}", sender, extra=extra)
            assert a["status"] == "ignored" and reason in a["reason"], \
                (token, sender, extra, a)
    # the null sender
    raw, _ = message(f"{g}+approve-{good}@{DOMAIN}", moder, "Re: x")
    j = inbound(st, f"{g}+approve-{good}@{DOMAIN}", raw, "")
    assert j["actions"][0]["status"] == "ignored", j
    assert pending_row(st, pid)[0] == "pending"
    assert pending_row(st, hpid)[0] == "pending"
    assert archived(st, g) == 0 and archived(st, h) == 0
    # the genuine reply still works afterwards
    a = act(st, f"{g}+approve-{good.upper()}@{DOMAIN}", moder)
    assert a["status"] == "done", a
    assert archived(st, g) == 1


def test_token_addresses_route_through_nginx(mod):
    """The approve address is taken at RCPT through nginx, whatever the
    token (it is checked later); a bare +approve is not an address."""
    st, _ = mod
    g, _ = make_group(st, [])
    token = sign_token(st, 1)
    with smtplib.SMTP("127.0.0.1", st.ports["smtp_public"],
                      timeout=30) as s:
        s.ehlo("client.example")
        s.mail("someone@example.org")
        assert s.rcpt(f"{g}+approve-{token}@{DOMAIN}")[0] == 250
        code, text = s.rcpt(f"{g}+approve@{DOMAIN}")
        assert code == 550 and b"5.1.1" in text, (code, text)


# ------------------------------------------------------------------ members

def test_join_requests_approved_and_rejected(mod):
    st, sink = mod
    moder, alice, bob = addr("mod", "j"), addr("alice", "j"), addr("bob",
                                                                    "j")
    g, ids = make_group(st, [(moder, {"role": "moderator"}),
                             (alice, {"status": "pending_approval"}),
                             (bob, {"status": "pending_approval"})],
                        restricted_membership="true")
    a = act(st, f"{g}+approve-{sign_token(st, 'm' + ids[alice])}"
            f"@{DOMAIN}", moder)
    assert a["status"] == "done" and alice in a["reason"], a
    assert st.sql("SELECT m.status, a.email, m.approved_at IS NOT NULL, "
                  "m.joined_at IS NOT NULL FROM memberships m JOIN accounts "
                  "a ON a.id = m.approved_by WHERE m.id = :'v1'",
                  ids[alice]) == [["active", moder, "t", "t"]]
    m = delivered(sink, alice, subject_has(f"Welcome to {g}"))[0]
    assert m["Auto-Submitted"] == "auto-replied"
    assert "you are a member now" in text_of(m)

    rej = sign_token(st, "m" + ids[bob])
    a = act(st, f"{g}+reject-{rej}@{DOMAIN}", moder,
            body="Members of the club only\r\n")
    assert a["status"] == "done" and bob in a["reason"], a
    assert st.sql("SELECT count(*) FROM memberships WHERE id = :'v1'",
                  ids[bob]) == [["0"]]
    m = delivered(sink, bob, subject_has("Your request to join"))[0]
    assert "declined" in text_of(m)
    assert "Reason: Members of the club only" in text_of(m)
    assert st.sql("SELECT action FROM activity_log WHERE details->>"
                  "'membership_id' IN (:'v1', :'v2') ORDER BY id",
                  ids[alice], ids[bob]) == [["member.approved"],
                                            ["member.rejected"]]

    # replays and a rejection after the approval change nothing
    for cmd, tok, who in (("approve", rej, bob), ("reject",
                          sign_token(st, "m" + ids[alice]), alice)):
        a = act(st, f"{g}+{cmd}-{tok}@{DOMAIN}", moder)
        assert a["status"] == "ignored", a
    assert st.sql("SELECT status FROM memberships WHERE id = :'v1'",
                  ids[alice]) == [["active"]]
    assert len(copies(sink, alice, subject_has("Welcome"))) == 1
    # a membership of another group through this group's address
    carol = addr("carol", "j")
    h, hids = make_group(st, [(carol, {"status": "pending_approval"})])
    a = act(st, f"{g}+approve-{sign_token(st, 'm' + hids[carol])}@{DOMAIN}",
            moder)
    assert a["status"] == "ignored", a
    assert st.sql("SELECT status FROM memberships WHERE id = :'v1'",
                  hids[carol]) == [["pending_approval"]]


def test_concurrent_approvals_release_once(mod):
    """Approvals arriving at once (two moderators, a retried delivery)
    are serialised on the held row: one releases, the others see it
    decided."""
    st, sink = mod
    mods = [addr(f"mod{i}", "cc") for i in range(4)]
    poster = addr("poster", "cc")
    g, _ = make_group(st, [(m, {"role": "moderator"}) for m in mods] +
                      [(poster, {"posting": "moderated"})])
    pid, msgid = hold(st, g, poster, "race me")
    rcpt = f"{g}+approve-{sign_token(st, pid)}@{DOMAIN}"
    with concurrent.futures.ThreadPoolExecutor(len(mods)) as ex:
        acts = list(ex.map(lambda m: act(st, rcpt, m), mods))
    assert sorted(a["status"] for a in acts) == \
        ["done", "ignored", "ignored", "ignored"], acts
    assert archived(st, g) == 1
    assert pending_row(st, pid)[0] == "approved"
    got = delivered(sink, poster, lambda m: m["Message-ID"] == f"<{msgid}>")
    assert len(got) == 1


def test_join_request_by_email_is_approved_from_its_notice(mod):
    """The whole way: subscribe to a restricted group by email, confirm
    by reply; the moderators' notice (messageserver_notice_member_pending)
    names the address and the join answer; replying to it admits the
    member."""
    st, sink = mod
    moder, owner, who = addr("mod", "jw"), addr("owner", "jw"), \
        addr("asker", "jw")
    g, _ = make_group(st, [(owner, {"role": "owner"}),
                           (moder, {"role": "moderator"})],
                      restricted_membership="true",
                      join_question="Why do you want to join?")
    a = act(st, f"{g}+subscribe@{DOMAIN}", who,
            body="I grow tomatoes.\r\n")
    assert a["status"] == "confirm", a
    req = delivered(sink, who, lambda m: "+confirm-" in str(m["Reply-To"]))
    a = act(st, req[0]["Reply-To"].addresses[0].addr_spec, who)
    assert a["status"] == "done", a
    mid = st.sql("SELECT m.id FROM memberships m JOIN accounts a ON a.id = "
                 "m.account_id JOIN groups g ON g.id = m.group_id WHERE "
                 "g.name = :'v1' AND a.email = :'v2' AND m.status = "
                 "'pending_approval'", g, who)[0][0]

    for m in (owner, moder):
        n = delivered(sink, m, subject_has(f"{who} asks to join"))
        assert len(n) == 1, m
    n = n[0]
    assert n["Auto-Submitted"] == "auto-generated"
    assert n["From"].addresses[0].addr_spec == f"{g}+owner@{DOMAIN}"
    text = text_of(n)
    assert who in text and "> I grow tomatoes." in text
    approve = n["Reply-To"].addresses[0].addr_spec
    assert len(approve.split("@")[0]) <= 64, approve
    token = approve.split("+approve-", 1)[1].split("@")[0]
    assert verify_short_token(st, "moderate", token).split(".")[0] == \
        f"m{mid}"
    assert f"{g}+reject-{token}@{DOMAIN}" in text

    # the moderator answers the notice
    a = act(st, approve, moder, body="Welcome aboard\r\n> quoted\r\n")
    assert a["status"] == "done" and who in a["reason"], a
    assert st.sql("SELECT status FROM memberships WHERE id = :'v1'",
                  mid) == [["active"]]
    delivered(sink, who, subject_has(f"Welcome to {g}"))
