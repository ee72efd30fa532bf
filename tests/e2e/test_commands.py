# SPDX-License-Identifier: MIT
"""Email commands end to end (docs/commands.md): routing of command
addresses and forward rules, subscribe and unsubscribe with their
confirmation by reply and by the web link, the token commands (forged,
expired, spent, replayed), the loop and abuse guards (machines get no
reply; replies to one address are limited per hour), the delivery
switches, vacations and mute/follow as the next post's receivers show
them, and what strangers are told.

One private stack: karl delivers by SMTP to an aiosmtpd sink, where the
replies are read as a member would read them.  Commands go in through
messageserver's /v1/inbound as smtpd hands them over (the reply lists
each recipient's action), and once by SMTP through nginx."""
import base64
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
RULES = "sales sales-team@example.net, Info info-desk@example.com"


@pytest.fixture(scope="module")
def cmd_stack(test_dns):
    st = Stack(extra_conf={"dns_resolver": test_dns.resolver,
                           "forward_rules": RULES, "karl_retry_min": "1",
                           "karl_retry_max": "2"})
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


def addr(prefix="u", domain="example.org"):
    """A fresh address: the reply limit is per address."""
    return f"{prefix}{uuid.uuid4().hex[:10]}@{domain}"


def key(st, purpose):
    secret = (st.var / "secret").read_bytes().rstrip()
    return hmac.new(secret, purpose.encode(), hashlib.sha256).digest()


def long_token(st, purpose, payload, expires=0):
    """A token.h token, signed as messageserver signs it."""
    mac = hmac.new(key(st, purpose), purpose.encode() + b"\n" +
                   payload.encode() + b"\n" + str(expires).encode(),
                   hashlib.sha256).digest()
    return f"{b64url(payload.encode())}.{expires}.{b64url(mac)}"


def short_token(st, purpose, payload):
    mac = hmac.new(key(st, purpose), purpose.encode() + b"\n" +
                   payload.encode() + b"\n0", hashlib.sha256).digest()[:10]
    return payload + "." + base64.b32encode(mac).decode().lower()


def make_group(st, members=(), **settings):
    """A group (columns of groups) with members [(email, {membership
    columns})]; returns (name, {email: membership id})."""
    name = "cm" + uuid.uuid4().hex[:10]
    cols = ["domain", "name", "title", "description"] + list(settings)
    vals = [DOMAIN, name, f"Group {name}", "A group for testing commands."
            ] + [str(v) for v in settings.values()]
    ph = ", ".join(f":'v{i}'" for i in range(1, len(vals) + 1))
    gid = st.sql(f"INSERT INTO groups ({', '.join(cols)}) VALUES ({ph}) "
                 "RETURNING id", *vals)[0][0]
    ids = {}
    for email, m in members:
        aid = st.sql("INSERT INTO accounts (email, display_name) VALUES "
                     "(:'v1', 'M') ON CONFLICT (lower(email)) DO UPDATE SET "
                     "status = 'active' RETURNING id", email)[0][0]
        mcols = ["group_id", "account_id"] + list(m)
        mvals = [gid, aid] + [str(v) for v in m.values()]
        ph = ", ".join(f":'v{i}'" for i in range(1, len(mvals) + 1))
        ids[email] = st.sql(f"INSERT INTO memberships ({', '.join(mcols)}) "
                            f"VALUES ({ph}) RETURNING id", *mvals)[0][0]
    return name, ids


def message(to, sender, subject="command", extra="", body="\r\n"):
    return (f"From: Someone <{sender}>\r\nTo: {to}\r\n"
            f"Subject: {subject}\r\nMessage-ID: <{uuid.uuid4().hex}"
            f"@example.org>\r\nDate: Thu, 03 Dec 2026 12:00:00 +0000\r\n"
            f"{extra}\r\n{body}").encode()


def command(st, rcpt, sender, mail_from=None, **kw):
    """Send a message to rcpt as smtpd would; returns its one action."""
    r = st.post("messageserver", "/v1/inbound", {
        "mail_from": sender if mail_from is None else mail_from,
        "rcpts": [rcpt], "client_addr": "127.0.0.1",
        "client_helo": "client.example", "cid": "cmd-" + uuid.uuid4().hex[:8],
        "raw": b64url(message(rcpt, sender, **kw))})
    assert r.status == 200, r
    j = r.json()
    assert j["status"] == "accepted" and len(j["actions"]) == 1, j
    return j["actions"][0]


def queued(st, to):
    """How many replies were queued for address to."""
    return int(st.sql("SELECT count(*) FROM outbox WHERE kind = 'notice' "
                      "AND receivers @> jsonb_build_array(jsonb_build_object("
                      "'to', :'v1'::text))", to)[0][0])


def replies(sink, to, n=1, timeout=30):
    """The first n replies (not posts) delivered to to, parsed."""
    def got():
        with sink.lock:
            return [message_from_bytes(data, policy=default_policy)
                    for _, data in sink.got.get(to, [])
                    if b"Auto-Submitted: auto-replied" in data]
    assert wait_for(lambda: len(got()) >= n, timeout), \
        f"{to} got {len(got())} of {n} replies"
    return got()[:n]


def membership(st, g, email):
    """(status, delivery, nomail_until) of email in g, or None."""
    rows = st.sql("SELECT m.status, m.delivery, coalesce(m.nomail_until::"
                  "text, '') FROM memberships m JOIN accounts a ON a.id = "
                  "m.account_id JOIN groups g ON g.id = m.group_id WHERE "
                  "g.name = :'v1' AND lower(a.email) = lower(:'v2')", g, email)
    return tuple(rows[0]) if rows else None


def confirm_address(msg):
    """The group+confirm-TOKEN address a confirmation request names."""
    reply_to = str(msg["Reply-To"]).strip("<> ")
    assert "+confirm-" in reply_to, reply_to
    return reply_to


def receivers_of_next_post(st, sink, g, sender, subject=None):
    """Post to g; the addresses the sink got it at once karl delivered
    every copy, and the post's result."""
    rcpt = f"{g}@{DOMAIN}"
    raw = message(rcpt, sender, subject=subject or "post " +
                  uuid.uuid4().hex[:6], body="text\r\n")
    msgid = raw.split(b"Message-ID: <", 1)[1].split(b">", 1)[0]
    r = st.post("messageserver", "/v1/inbound", {
        "mail_from": sender, "rcpts": [rcpt], "client_addr": "127.0.0.1",
        "client_helo": "c", "raw": b64url(raw)})
    res = r.json()["messages"][0]
    assert res["status"] == "archived", res
    rows = []

    def done():
        rows[:] = st.sql("SELECT o.status, o.receivers_sent FROM outbox o "
                         "JOIN messages m ON m.id = o.message_id JOIN groups "
                         "g ON g.id = m.group_id WHERE g.name = :'v1' AND "
                         "m.number = :'v2'", g, res["number"])
        return rows and rows[0][0] == "done"
    assert wait_for(done, 20), rows

    def got():
        with sink.lock:
            return sorted(to for to, msgs in sink.got.items()
                          if any(msgid in data for _, data in msgs))
    assert wait_for(lambda: len(got()) >= int(rows[0][1]), 30), \
        (got(), rows)
    return got(), res


# ------------------------------------------------------------------ routes

@pytest.mark.parametrize("local,command,detail", [
    ("demo+join", "subscribe", ""),
    ("demo+SignOff", "unsubscribe", ""),
    ("demo+mail", "single", ""),
    ("demo+confirm-s12.1767225600.abcdefghijklmnop", "confirm",
     "s12.1767225600.abcdefghijklmnop"),
    ("demo+unsubscribe-MTIz.0.AbC_d-e", "unsubscribe", "MTIz.0.AbC_d-e"),
    ("demo+mute-tag-Picnic", "mute-tag", "Picnic"),
    ("demo+follow-tag-news", "follow-tag", "news"),
    ("demo+follow-42", "follow", "42"),
])
def test_command_routes(cmd_stack, local, command, detail):
    st, _ = cmd_stack
    r = st.post("messageserver", "/v1/rcpt", {"rcpt": f"{local}@{DOMAIN}"})
    assert r.status == 200, r
    assert (r.json()["route"], r.json()["command"], r.json()["detail"]) == \
        ("command", command, detail)


@pytest.mark.parametrize("local", [
    "demo+nomail-until-2027-02-30", "demo+mute-tag-a#b", "demo+mute-x1",
    "demo+confirm-a=b", "demo+subscribe-now", "nosuchgroup+help"])
def test_bad_command_addresses_are_404(cmd_stack, local):
    st, _ = cmd_stack
    assert st.post("messageserver", "/v1/rcpt",
                   {"rcpt": f"{local}@{DOMAIN}"}).status == 404


def test_forward_rules_from_config_and_postmaster(cmd_stack):
    st, _ = cmd_stack

    def route(a):
        r = st.post("messageserver", "/v1/rcpt", {"rcpt": a})
        return (r.json()["route"], r.json()["detail"]) if r.status == 200 \
            else r.status
    assert route("Sales@localhost") == ("forward", "sales-team@example.net")
    assert route("info@LOCALHOST") == ("forward", "info-desk@example.com")
    assert route("salesx@localhost") == 404
    # a forward_rules row comes before the configuration
    st.sql("INSERT INTO forward_rules (domain, local_part, target_address) "
           "VALUES ('localhost', 'info', 'table@example.org')")
    assert route("info@localhost") == ("forward", "table@example.org")
    # postmaster: the first site admin with an address outside our
    # domains when no rule names it (the seeded admin@localhost is ours)
    seeded = st.sql("SELECT email FROM accounts WHERE is_admin AND status = "
                    "'active' ORDER BY id")
    assert seeded == [["admin@localhost"]], seeded
    assert route("postmaster@localhost") == 404
    st.sql("INSERT INTO domains (name) VALUES ('ours.test') ON CONFLICT "
           "DO NOTHING")
    admins = [addr("admin", d) for d in ("ours.test", "example.net",
                                         "example.com")]
    for a in admins:
        st.sql("INSERT INTO accounts (email, is_admin) VALUES (:'v1', "
               "true)", a)
    try:
        assert route("PostMaster@localhost") == ("forward", admins[1])
        st.sql("UPDATE accounts SET status = 'disabled' WHERE email = "
               ":'v1'", admins[1])
        assert route("postmaster@localhost") == ("forward", admins[2])
    finally:
        st.sql("UPDATE accounts SET is_admin = false WHERE email IN "
               "(:'v1', :'v2', :'v3')", *admins)
    assert route("postmaster@localhost") == 404


# ------------------------------------------------------------- subscribing

def test_subscribe_confirm_by_reply(cmd_stack):
    st, sink = cmd_stack
    g, _ = make_group(st, [("member@example.org", {})])
    who = addr("joiner")
    raw = message(f"{g}+subscribe@{DOMAIN}", who, subject="please")
    # the real way in: SMTP through nginx
    with smtplib.SMTP("127.0.0.1", st.ports["smtp_public"], timeout=30) as s:
        s.sendmail(who, [f"{g}+subscribe@{DOMAIN}"], raw)
    req = replies(sink, who)[0]
    assert membership(st, g, who)[0] == "pending_confirmation"
    assert st.sql("SELECT status, email_verified FROM accounts WHERE "
                  "email = :'v1'", who) == [["pending", "f"]]
    assert req["Auto-Submitted"] == "auto-replied"
    assert str(req["From"]).endswith(f"<{g}+owner@{DOMAIN}>")
    assert req["In-Reply-To"] is not None
    body = req.get_content()
    assert "To confirm, reply to this message" in body
    caddr = confirm_address(req)
    token = caddr.split("+confirm-", 1)[1].split("@")[0]
    assert f"/confirm?t={token}" in body
    mid = st.sql("SELECT m.id FROM memberships m JOIN accounts a ON a.id = "
                 "m.account_id WHERE a.email = :'v1'", who)[0][0]
    assert verify_short_token(st, "confirm", token).startswith(f"s{mid}.")
    # the reply to the request (any case) confirms
    a = command(st, caddr.upper().replace("@LOCALHOST", "@localhost"), who,
                subject="Re: confirm")
    assert (a["status"], a["reason"]) == ("done", "subscribed"), a
    assert membership(st, g, who) == ("active", "individual", "")
    assert st.sql("SELECT status, email_verified FROM accounts WHERE "
                  "email = :'v1'", who) == [["active", "t"]]
    assert st.sql("SELECT count(*) FROM activity_log l JOIN groups g ON "
                  "g.id = l.group_id WHERE g.name = :'v1' AND l.action = "
                  "'member.join'", g) == [["1"]]
    welcome = replies(sink, who, 2)[1]
    assert "you are now a member" in welcome.get_content()
    # a replay changes nothing and gets no answer
    a = command(st, caddr, who)
    assert (a["status"], a["reason"]) == ("ignored", "spent_token")
    assert queued(st, who) == 2
    # the new member gets the next post
    got, _ = receivers_of_next_post(st, sink, g, "member@example.org")
    assert who in got


def test_subscribe_confirm_on_the_web(cmd_stack):
    st, sink = cmd_stack
    g, _ = make_group(st)
    who = addr("webjoin")
    a = command(st, f"{g}+join@{DOMAIN}", who)
    assert (a["status"], a["reason"]) == ("confirm", "subscribe")
    body = replies(sink, who)[0].get_content()
    link = next(w for w in body.split() if "/confirm?t=" in w).rstrip(".")
    path = "/confirm?t=" + link.split("?t=", 1)[1]
    # GET shows a button and changes nothing (link scanners)
    for _ in range(2):
        r = st.https("GET", path)
        assert r.status == 200, r
        assert 'method="post"' in r.text and who in r.text and g in r.text
    assert membership(st, g, who)[0] == "pending_confirmation"
    r = st.https("POST", path, body=b"",
                 headers={"Content-Type":
                          "application/x-www-form-urlencoded"})
    assert r.status == 200, r
    assert "now a member" in r.text
    assert membership(st, g, who)[0] == "active"
    assert "you are now a member" in replies(sink, who, 2)[1].get_content()
    # again: nothing to confirm, nothing changes
    r = st.https("POST", path, body=b"")
    assert r.status == 200 and "Nothing to confirm" in r.text
    assert queued(st, who) == 2
    # a damaged link is refused
    bad = path[:-3] + ("aaa" if not path.endswith("aaa") else "bbb")
    assert st.https("GET", bad).status == 400
    assert st.https("POST", bad, body=b"").status == 400


def test_restricted_group_waits_for_moderators(cmd_stack):
    st, sink = cmd_stack
    owner = addr("owner")
    g, _ = make_group(st, [(owner, {"role": "owner"})],
                      restricted_membership="true",
                      join_question="Why do you want to join?")
    who = addr("asker")
    a = command(st, f"{g}+subscribe@{DOMAIN}", who,
                body="I grow tomatoes.\r\n-- \r\nmy signature\r\n")
    assert a["status"] == "confirm"
    req = replies(sink, who)[0].get_content()
    assert "Why do you want to join?" in req and "I grow tomatoes." in req
    a = command(st, confirm_address(replies(sink, who)[0]), who)
    assert (a["status"], a["reason"]) == ("done", "pending_approval"), a
    assert membership(st, g, who)[0] == "pending_approval"
    assert st.sql("SELECT m.join_answer FROM memberships m JOIN accounts a "
                  "ON a.id = m.account_id WHERE a.email = :'v1'", who) == [
        ["I grow tomatoes."]]
    # the moderators are told
    assert queued(st, owner) == 1
    # subscribing again says it waits
    a = command(st, f"{g}+subscribe@{DOMAIN}", who)
    assert (a["status"], a["reason"]) == ("done", "pending_approval")


def test_subscribe_refusals(cmd_stack):
    st, sink = cmd_stack
    member = addr("already")
    g, _ = make_group(st, [(member, {})])
    a = command(st, f"{g}+subscribe@{DOMAIN}", member)
    assert (a["status"], a["reason"]) == ("done", "already_member")
    assert "already a member" in replies(sink, member)[0].get_content()
    st.sql("INSERT INTO group_bans (group_id, pattern) SELECT id, "
           "'@banned.test' FROM groups WHERE name = :'v1'", g)
    who = addr("spam", "banned.test")
    a = command(st, f"{g}+subscribe@{DOMAIN}", who)
    assert (a["status"], a["reason"]) == ("done", "banned")
    assert membership(st, g, who) is None
    assert "cannot join" in replies(sink, who)[0].get_content()


# ------------------------------------------------------------ unsubscribing

def test_unsubscribe_needs_confirmation(cmd_stack):
    st, sink = cmd_stack
    who = addr("leaver")
    g, _ = make_group(st, [(who, {})])
    a = command(st, f"{g}+leave@{DOMAIN}", who)
    assert (a["status"], a["reason"]) == ("confirm", "unsubscribe")
    # a forged From alone removes nobody
    assert membership(st, g, who)[0] == "active"
    req = replies(sink, who)[0]
    assert "you stay a member" in req.get_content()
    a = command(st, confirm_address(req), who)
    assert (a["status"], a["reason"]) == ("done", "unsubscribed"), a
    assert membership(st, g, who) is None
    assert st.sql("SELECT details->>'via' FROM activity_log l JOIN groups g "
                  "ON g.id = l.group_id WHERE g.name = :'v1' AND l.action = "
                  "'member.unsubscribe'", g) == [["email-confirmed"]]
    assert "no longer a member" in replies(sink, who, 2)[1].get_content()
    a = command(st, confirm_address(req), who)
    assert (a["status"], a["reason"]) == ("ignored", "spent_token")
    # an owner is not removed by email
    owner = addr("owner")
    g2, _ = make_group(st, [(owner, {"role": "owner"})])
    a = command(st, f"{g2}+unsubscribe@{DOMAIN}", owner)
    assert (a["status"], a["reason"]) == ("done", "owner")


def test_unsubscribe_on_the_web(cmd_stack):
    st, sink = cmd_stack
    who = addr("webleave")
    g, _ = make_group(st, [(who, {})])
    command(st, f"{g}+unsubscribe@{DOMAIN}", who)
    token = confirm_address(replies(sink, who)[0]).split(
        "+confirm-", 1)[1].split("@")[0]
    r = st.https("GET", "/confirm?t=" + token)
    assert r.status == 200 and "Remove" in r.text
    assert membership(st, g, who) is not None
    r = st.https("POST", "/confirm?t=" + token, body=b"")
    assert r.status == 200 and "no longer a member" in r.text
    assert membership(st, g, who) is None


def test_unsubscribe_token_from_the_footer(cmd_stack):
    st, sink = cmd_stack
    who = addr("footer")
    g, ids = make_group(st, [(who, {})])
    token = long_token(st, "unsubscribe", ids[who])
    forged = long_token(st, "settings", ids[who])
    a = command(st, f"{g}+unsubscribe-{forged}@{DOMAIN}", who)
    assert (a["status"], a["reason"]) == ("ignored", "bad_token")
    assert membership(st, g, who) is not None
    # any sender: the token is the authority; the member is told
    a = command(st, f"{g}+unsubscribe-{token}@{DOMAIN}", addr("other"))
    assert (a["status"], a["reason"]) == ("done", "unsubscribed")
    assert membership(st, g, who) is None
    assert "no longer a member" in replies(sink, who)[0].get_content()
    a = command(st, f"{g}+unsubscribe-{token}@{DOMAIN}", who)
    assert (a["status"], a["reason"]) == ("ignored", "spent_token")


# ------------------------------------------------------------------ tokens

def test_forged_expired_and_foreign_tokens(cmd_stack):
    st, sink = cmd_stack
    who = addr("tok")
    g, _ = make_group(st)
    command(st, f"{g}+subscribe@{DOMAIN}", who)
    good = confirm_address(replies(sink, who)[0]).split(
        "+confirm-", 1)[1].split("@")[0]
    payload, mac = good.rsplit(".", 1)
    mid = payload[1:].split(".")[0]
    for bad in (payload + "." + ("a" * 16 if mac != "a" * 16 else "b" * 16),
                short_token(st, "verp", payload),
                f"u{mid}.{payload.split('.')[1]}.{mac}"):
        a = command(st, f"{g}+confirm-{bad}@{DOMAIN}", who)
        assert (a["status"], a["reason"]) == ("ignored", "bad_token"), bad
    # expired: genuine but old; nothing changes, a short answer
    old = short_token(st, "confirm", f"s{mid}.{int(time.time()) - 60}")
    a = command(st, f"{g}+confirm-{old}@{DOMAIN}", who)
    assert (a["status"], a["reason"]) == ("done", "expired_token")
    assert "expired" in replies(sink, who, 2)[1].get_content()
    r = st.https("GET", "/confirm?t=" + old)
    assert r.status == 200 and "expired" in r.text
    assert membership(st, g, who)[0] == "pending_confirmation"
    # a token of this group is nothing in another
    g2, _ = make_group(st)
    a = command(st, f"{g2}+confirm-{good}@{DOMAIN}", who)
    assert (a["status"], a["reason"]) == ("ignored", "spent_token")
    assert membership(st, g, who)[0] == "pending_confirmation"
    assert queued(st, who) == 2


# -------------------------------------------------------- machines, limits

@pytest.mark.parametrize("extra,mail_from,reason", [
    ("", "", "null_sender"),
    ("Auto-Submitted: auto-replied\r\n", None, "auto_submitted"),
    ("Auto-Submitted: auto-generated\r\n", None, "auto_submitted"),
    ("Precedence: bulk\r\n", None, "precedence"),
    ("Precedence: junk\r\n", None, "precedence"),
    ("Precedence: list\r\n", None, "precedence"),
    ("X-Autoreply: yes\r\n", None, "auto_reply"),
    ("List-Id: Other <other.localhost>\r\n", None, "loop"),
    ("X-Loop: other@localhost\r\n", None, "loop"),
])
def test_machines_get_no_answer(cmd_stack, extra, mail_from, reason):
    st, _ = cmd_stack
    g, _ = make_group(st)
    who = addr("robot")
    for c in ("help", "subscribe"):
        a = command(st, f"{g}+{c}@{DOMAIN}", who, mail_from=mail_from,
                    extra=extra)
        assert (a["status"], a["reason"]) == ("ignored", reason), a
    assert queued(st, who) == 0
    assert membership(st, g, who) is None


def test_vacation_reply_to_a_request_confirms_nothing(cmd_stack):
    st, sink = cmd_stack
    g, _ = make_group(st)
    who = addr("away")
    command(st, f"{g}+subscribe@{DOMAIN}", who)
    caddr = confirm_address(replies(sink, who)[0])
    a = command(st, caddr, who, subject="Out of office",
                extra="Auto-Submitted: auto-replied\r\n")
    assert (a["status"], a["reason"]) == ("ignored", "auto_submitted")
    assert membership(st, g, who)[0] == "pending_confirmation"
    assert queued(st, who) == 1


def test_auto_submitted_no_is_a_person(cmd_stack):
    st, sink = cmd_stack
    g, _ = make_group(st)
    who = addr("person")
    a = command(st, f"{g}+help@{DOMAIN}", who, extra="Auto-Submitted: no\r\n")
    assert a["status"] == "done"


def test_no_reply_to_our_own_addresses(cmd_stack):
    st, _ = cmd_stack
    g, _ = make_group(st)
    for who in (f"x{uuid.uuid4().hex[:6]}@localhost",
                f"{g}+owner@LOCALHOST"):
        a = command(st, f"{g}+help@{DOMAIN}", who)
        assert a["status"] == "done" and "no reply" in a["reason"], a
        assert queued(st, who) == 0


def test_replies_are_limited_per_address(cmd_stack):
    st, sink = cmd_stack
    g1, _ = make_group(st)
    g2, _ = make_group(st)
    who = addr("noisy")
    for i in range(5):
        a = command(st, f"{(g1, g2)[i % 2]}+help@{DOMAIN}", who)
        assert (a["status"], a["reason"]) == ("done", "help"), (i, a)
    for g in (g1, g2):
        a = command(st, f"{g}+help@{DOMAIN}", who)
        assert (a["status"], a["reason"]) == \
            ("done", "help (no reply: limit)"), a
    assert queued(st, who) == 5
    # an hour later the address may hear from us again
    st.sql("UPDATE command_replies SET sent_at = sent_at - interval "
           "'61 minutes' WHERE email = :'v1'", who)
    assert command(st, f"{g1}+help@{DOMAIN}", who)["reason"] == "help"
    assert queued(st, who) == 6
    assert len(replies(sink, who, 6)) == 6


def test_help(cmd_stack):
    st, sink = cmd_stack
    g, _ = make_group(st)
    who = addr("helpme")
    a = command(st, f"{g}+help@{DOMAIN}", who)
    assert (a["status"], a["reason"]) == ("done", "help")
    msg = replies(sink, who)[0]
    body = msg.get_content()
    assert str(msg["Subject"]) == f"{g}: help"
    assert "A group for testing commands." in body
    assert f"/g/{g}" in body
    for c in ("subscribe", "unsubscribe", "digest", "plaindigest",
              "summary", "special", "nomail", "single",
              "nomail-until-YYYY-MM-DD", "mute-N", "follow-N",
              "mute-tag-NAME", "follow-tag-NAME", "help", "owner"):
        assert f"{g}+{c}@{DOMAIN}" in body, c


# --------------------------------------------------------- member settings

@pytest.mark.parametrize("cmd,delivery", [
    ("digest", "full_digest"), ("plaindigest", "plain_digest"),
    ("summary", "daily_summary"), ("special", "special_only"),
    ("nomail", "no_email")])
def test_delivery_switches_change_the_next_post(cmd_stack, cmd, delivery):
    st, sink = cmd_stack
    who = addr("switch")
    g, _ = make_group(st, [("poster@example.org", {}), (who, {})])
    a = command(st, f"{g}+{cmd}@{DOMAIN}", who)
    assert (a["status"], a["reason"]) == ("done", f"delivery={delivery}")
    assert membership(st, g, who)[1] == delivery
    assert "From now on you get" in replies(sink, who)[0].get_content()
    got, _ = receivers_of_next_post(st, sink, g, "poster@example.org")
    assert who not in got and "poster@example.org" in got
    a = command(st, f"{g}+individual@{DOMAIN}", who)
    assert (a["status"], a["reason"]) == ("done", "delivery=individual")
    got, _ = receivers_of_next_post(st, sink, g, "poster@example.org")
    assert who in got


def test_nomail_until_skips_then_resumes(cmd_stack):
    st, sink = cmd_stack
    who = addr("vacation")
    g, _ = make_group(st, [("poster@example.org", {}), (who, {})])
    day = st.sql("SELECT (current_date + 10)::text")[0][0]
    a = command(st, f"{g}+nomail-until-{day}@{DOMAIN}", who)
    assert (a["status"], a["reason"]) == ("done", f"nomail_until={day}")
    assert membership(st, g, who) == ("active", "individual", day)
    assert day in replies(sink, who)[0].get_content()
    got, _ = receivers_of_next_post(st, sink, g, "poster@example.org")
    assert who not in got
    # the last day of the vacation still has no mail
    st.sql("UPDATE memberships SET nomail_until = current_date WHERE "
           "id IN (SELECT m.id FROM memberships m JOIN accounts a ON a.id = "
           "m.account_id WHERE a.email = :'v1')", who)
    assert who not in receivers_of_next_post(st, sink, g,
                                             "poster@example.org")[0]
    # the day after, mail resumes by itself
    st.sql("UPDATE memberships SET nomail_until = current_date - 1 WHERE "
           "id IN (SELECT m.id FROM memberships m JOIN accounts a ON a.id = "
           "m.account_id WHERE a.email = :'v1')", who)
    assert who in receivers_of_next_post(st, sink, g,
                                         "poster@example.org")[0]
    # dates that are past, today, or more than a year ahead are refused
    for expr in ("current_date - 1", "current_date",
                 "current_date + interval '1 year' + interval '1 day'"):
        bad = st.sql(f"SELECT ({expr})::date::text")[0][0]
        a = command(st, f"{g}+nomail-until-{bad}@{DOMAIN}", who)
        assert (a["status"], a["reason"]) == ("done", "bad_date"), bad
    # a year ahead is the furthest
    ok = st.sql("SELECT (current_date + interval '1 year')::date::text")[0][0]
    a = command(st, f"{g}+nomail-until-{ok}@{DOMAIN}", who)
    assert (a["status"], a["reason"]) == ("done", f"nomail_until={ok}")


def test_mute_and_follow_topics_and_hashtags(cmd_stack):
    st, sink = cmd_stack
    who = addr("muter")
    g, ids = make_group(st, [("poster@example.org", {}), (who, {})])
    got, res = receivers_of_next_post(st, sink, g, "poster@example.org",
                                      subject="#Garden plans")
    topic = res["topic_id"]
    assert who in got
    a = command(st, f"{g}+mute-{topic}@{DOMAIN}", who)
    assert (a["status"], a["reason"]) == ("done", f"mute topic {topic}")
    assert "Garden plans" in replies(sink, who)[0].get_content()
    got, res = receivers_of_next_post(st, sink, g, "poster@example.org",
                                      subject="Re: #Garden plans")
    assert res["topic_id"] == topic and who not in got
    a = command(st, f"{g}+follow-{topic}@{DOMAIN}", who)
    assert (a["status"], a["reason"]) == ("done", f"follow topic {topic}")
    assert who in receivers_of_next_post(st, sink, g, "poster@example.org",
                                         subject="Re: #Garden plans")[0]
    # hashtags by name, any case: mute-tag-NAME
    a = command(st, f"{g}+mute-tag-GARDEN@{DOMAIN}", who)
    assert (a["status"], a["reason"]) == ("done", "mute hashtag GARDEN"), a
    assert st.sql("SELECT h.name, s.mode FROM hashtag_subscriptions s JOIN "
                  "hashtags h ON h.id = s.hashtag_id WHERE s.membership_id "
                  "= :'v1'", ids[who]) == [["Garden", "mute"]]
    assert who not in receivers_of_next_post(
        st, sink, g, "poster@example.org", subject="#garden tools")[0]
    a = command(st, f"{g}+follow-tag-garden@{DOMAIN}", who)
    assert a["reason"] == "follow hashtag garden"
    assert who in receivers_of_next_post(
        st, sink, g, "poster@example.org", subject="#garden seeds")[0]
    # a topic or hashtag of another group is not this group's
    other, _ = make_group(st, [("poster@example.org", {})])
    _, res2 = receivers_of_next_post(st, sink, other, "poster@example.org",
                                     subject="#elsewhere")
    a = command(st, f"{g}+mute-{res2['topic_id']}@{DOMAIN}", who)
    assert (a["status"], a["reason"]) == ("done", "no_such_topic")
    a = command(st, f"{g}+follow-tag-elsewhere@{DOMAIN}", who)
    # (the sixth answer to who this hour is not sent: the limit)
    assert (a["status"], a["reason"]) == \
        ("done", "no_such_hashtag (no reply: limit)")


def test_strangers_are_told_they_are_not_members(cmd_stack):
    st, sink = cmd_stack
    pending = addr("pending")
    g, _ = make_group(st, [(pending, {"status": "pending_confirmation"})])
    who = addr("stranger")
    for c in ("digest", "nomail", "single", "mute-1", "follow-tag-x"):
        a = command(st, f"{g}+{c}@{DOMAIN}", who)
        assert (a["status"], a["reason"]) == ("done", "not_member"), c
    body = replies(sink, who)[0].get_content()
    assert "is not a member" in body and f"{g}+subscribe@{DOMAIN}" in body
    a = command(st, f"{g}+unsubscribe@{DOMAIN}", addr("stranger"))
    assert (a["status"], a["reason"]) == ("done", "not_member")
    # a membership not yet confirmed is not one
    a = command(st, f"{g}+digest@{DOMAIN}", pending)
    assert a["reason"] == "not_member"
    assert membership(st, g, pending)[1] == "individual"


# ------------------------------------------------- strangers and members

@pytest.fixture(scope="module")
def topic_group(cmd_stack):
    """A group with one member and a topic tagged #Picnic, for the
    commands that name a topic or hashtag: (name, member, topic id)."""
    st, sink = cmd_stack
    member = addr("topical")
    g, _ = make_group(st, [(member, {})])
    _, res = receivers_of_next_post(st, sink, g, member,
                                    subject="#Picnic plans")
    return g, member, res["topic_id"]


def subscriptions(st, g):
    """Rows of topic_ and hashtag_subscriptions of g's memberships."""
    return st.sql("SELECT (SELECT count(*) FROM topic_subscriptions t JOIN "
                  "memberships m ON m.id = t.membership_id JOIN groups g ON "
                  "g.id = m.group_id WHERE g.name = :'v1'), (SELECT count(*) "
                  "FROM hashtag_subscriptions h JOIN memberships m ON m.id = "
                  "h.membership_id JOIN groups g ON g.id = m.group_id WHERE "
                  "g.name = :'v1')", g)[0]


@pytest.mark.parametrize("cmd", [
    "plaindigest", "summary", "special", "digest", "nomail", "single",
    "individual", "mail", "nomail-until-DAY", "mute-TOPIC", "follow-TOPIC",
    "mute-tag-picnic", "follow-tag-Picnic"])
def test_members_commands_from_a_stranger(cmd_stack, topic_group, cmd):
    """Every member-only command from a stranger: a reply saying so and
    how to join; nothing changes, not even an account is made."""
    st, sink = cmd_stack
    g, member, topic = topic_group
    day = st.sql("SELECT (current_date + 5)::text")[0][0]
    cmd = cmd.replace("DAY", day).replace("TOPIC", str(topic))
    before = (membership(st, g, member), subscriptions(st, g))
    who = addr("outsider")
    a = command(st, f"{g}+{cmd}@{DOMAIN}", who)
    assert (a["status"], a["reason"]) == ("done", "not_member"), a
    msg = replies(sink, who)[0]
    assert str(msg["Subject"]).startswith(f"{g}: ")
    body = msg.get_content()
    assert f"{who} is not a member of {g}@{DOMAIN}, so this command does " \
        "nothing." in " ".join(body.split()), body
    assert f"{g}+subscribe@{DOMAIN}" in body
    assert (membership(st, g, member), subscriptions(st, g)) == before
    assert membership(st, g, who) is None
    assert st.sql("SELECT count(*) FROM accounts WHERE lower(email) = "
                  "lower(:'v1')", who) == [["0"]]
    assert queued(st, who) == 1


def test_stranger_with_a_forged_confirm_token(cmd_stack):
    """confirm-TOKEN from a stranger with a token that is not ours: no
    reply, nothing changes (a pending membership stays pending)."""
    st, sink = cmd_stack
    pending = addr("waiting")
    g, ids = make_group(st, [(pending, {"status": "pending_confirmation"})])
    who = addr("forger")
    exp = int(time.time()) + 86400
    for tok in (f"s{ids[pending]}.{exp}.{'a' * 16}",
                short_token(st, "unsubscribe", f"s{ids[pending]}.{exp}")):
        a = command(st, f"{g}+confirm-{tok}@{DOMAIN}", who)
        assert (a["status"], a["reason"]) == ("ignored", "bad_token"), a
    assert membership(st, g, pending)[0] == "pending_confirmation"
    assert queued(st, who) == 0 and queued(st, pending) == 0


def test_help_from_a_member(cmd_stack):
    st, sink = cmd_stack
    who = addr("memberhelp")
    g, _ = make_group(st, [(who, {"delivery": "full_digest"})])
    a = command(st, f"{g}+help@{DOMAIN}", who)
    assert (a["status"], a["reason"]) == ("done", "help")
    msg = replies(sink, who)[0]
    assert str(msg["Subject"]) == f"{g}: help"
    body = msg.get_content()
    assert "A group for testing commands." in body
    for c in ("unsubscribe", "single", "nomail-until-YYYY-MM-DD"):
        assert f"{g}+{c}@{DOMAIN}" in body, c
    # help only tells
    assert membership(st, g, who) == ("active", "full_digest", "")


@pytest.mark.parametrize("alias", ["single", "individual", "mail"])
def test_single_and_its_aliases_from_a_member(cmd_stack, alias):
    """A member on no mail and a vacation: +single (or an alias) makes the
    delivery individual, ends the vacation, and the next post reaches the
    member."""
    st, sink = cmd_stack
    who = addr("back")
    day = st.sql("SELECT (current_date + 20)::text")[0][0]
    g, _ = make_group(st, [("poster@example.org", {}),
                           (who, {"delivery": "no_email",
                                  "nomail_until": day})])
    assert who not in receivers_of_next_post(st, sink, g,
                                             "poster@example.org")[0]
    a = command(st, f"{g}+{alias}@{DOMAIN}", who)
    assert (a["status"], a["reason"]) == ("done", "delivery=individual"), a
    assert membership(st, g, who) == ("active", "individual", "")
    msg = replies(sink, who)[0]
    assert str(msg["Subject"]) == f"{g}: single"
    assert "each message as it is posted" in msg.get_content()
    assert who in receivers_of_next_post(st, sink, g,
                                         "poster@example.org")[0]


def test_owner_address_from_a_plain_member(cmd_stack):
    """A member writing to +owner reaches the owners and moderators, not
    the other members and not the member's own mailbox; no command reply."""
    st, sink = cmd_stack
    owner, mod, member, other = (addr("own"), addr("mod"), addr("plain"),
                                 addr("other"))
    g, _ = make_group(st, [(owner, {"role": "owner"}),
                           (mod, {"role": "moderator"}), (member, {}),
                           (other, {})])
    raw = message(f"{g}+owner@{DOMAIN}", member, subject="A question")
    msgid = raw.split(b"Message-ID: <", 1)[1].split(b">", 1)[0]
    r = st.post("messageserver", "/v1/inbound", {
        "mail_from": member, "rcpts": [f"{g}+owner@{DOMAIN}"],
        "client_addr": "127.0.0.1", "client_helo": "c",
        "raw": b64url(raw)})
    a = r.json()["actions"][0]
    assert a["status"] == "forwarded" and "2 receivers" in a["reason"], a

    def copies(to):
        with sink.lock:
            return [d for _, d in sink.got.get(to, []) if msgid in d]
    assert wait_for(lambda: copies(owner) and copies(mod), 30)
    assert wait_for(lambda: st.sql(
        "SELECT count(*) FROM outbox WHERE status = 'pending'") == [["0"]],
        30)
    assert len(copies(owner)) == 1 and len(copies(mod)) == 1
    assert not copies(member) and not copies(other)
    m = message_from_bytes(copies(owner)[0], policy=default_policy)
    assert m["X-Original-To"] == f"{g}+owner@{DOMAIN}"
    assert m["From"].addresses[0].addr_spec == member
    assert queued(st, member) == 0


# ------------------------------------------- confirming from elsewhere

def test_confirm_from_another_address(cmd_stack):
    """The token is the proof (docs/commands.md): a confirmation sent from
    another From (a forwarding mailbox, another account of the member)
    confirms, and the reply goes to the membership's address, never to
    the From of the confirming message."""
    st, sink = cmd_stack
    g, _ = make_group(st)
    who, elsewhere = addr("joinfwd"), addr("elsewhere")
    command(st, f"{g}+subscribe@{DOMAIN}", who)
    caddr = confirm_address(replies(sink, who)[0])
    a = command(st, caddr, elsewhere, subject="Re: confirm")
    assert (a["status"], a["reason"]) == ("done", "subscribed"), a
    assert membership(st, g, who) == ("active", "individual", "")
    assert membership(st, g, elsewhere) is None
    assert "you are now a member" in replies(sink, who, 2)[1].get_content()
    assert queued(st, elsewhere) == 0
    assert st.sql("SELECT count(*) FROM accounts WHERE lower(email) = "
                  "lower(:'v1')", elsewhere) == [["0"]]
    # leaving the same way: the member is removed and told
    command(st, f"{g}+unsubscribe@{DOMAIN}", who)
    caddr = confirm_address(replies(sink, who, 3)[2])
    a = command(st, caddr, elsewhere)
    assert (a["status"], a["reason"]) == ("done", "unsubscribed"), a
    assert membership(st, g, who) is None
    assert "no longer a member" in replies(sink, who, 4)[3].get_content()
    assert queued(st, elsewhere) == 0


# --------------------------------------------- refusals and no replies

def test_ban_is_checked_again_when_confirming(cmd_stack):
    """Banned between the request and the confirmation: not admitted, by
    reply or on the web; the member is told."""
    st, sink = cmd_stack
    g, _ = make_group(st)
    who, webwho = addr("latebanned"), addr("webbanned", "banlate.test")
    for w in (who, webwho):
        assert command(st, f"{g}+subscribe@{DOMAIN}", w)["status"] == \
            "confirm"
    mail_req, web_req = replies(sink, who)[0], replies(sink, webwho)[0]
    st.sql("INSERT INTO group_bans (group_id, pattern) SELECT id, lower("
           ":'v2') FROM groups WHERE name = :'v1' UNION ALL SELECT id, "
           "'@banlate.test' FROM groups WHERE name = :'v1'", g, who)
    a = command(st, confirm_address(mail_req), who)
    assert (a["status"], a["reason"]) == ("done", "banned"), a
    assert membership(st, g, who)[0] == "pending_confirmation"
    assert "cannot join" in replies(sink, who, 2)[1].get_content()
    token = confirm_address(web_req).split("+confirm-", 1)[1].split("@")[0]
    r = st.https("POST", "/confirm?t=" + token, body=b"")
    assert r.status == 200 and "Not confirmed" in r.text, r
    assert membership(st, g, webwho)[0] == "pending_confirmation"
    assert "cannot join" in replies(sink, webwho, 2)[1].get_content()
    assert st.sql("SELECT count(*) FROM activity_log l JOIN groups g ON "
                  "g.id = l.group_id WHERE g.name = :'v1' AND l.action = "
                  "'member.join'", g) == [["0"]]


def test_archived_group_takes_no_new_members(cmd_stack):
    st, sink = cmd_stack
    early = addr("early")
    g, _ = make_group(st)
    command(st, f"{g}+subscribe@{DOMAIN}", early)
    caddr = confirm_address(replies(sink, early)[0])
    st.sql("UPDATE groups SET status = 'archived' WHERE name = :'v1'", g)
    who = addr("late")
    a = command(st, f"{g}+subscribe@{DOMAIN}", who)
    assert (a["status"], a["reason"]) == ("done", "archived"), a
    assert "archived and takes no new members" in \
        replies(sink, who)[0].get_content()
    assert membership(st, g, who) is None
    assert st.sql("SELECT count(*) FROM accounts WHERE lower(email) = "
                  "lower(:'v1')", who) == [["0"]]
    # a request made before the group was archived no longer admits
    a = command(st, caddr, early)
    assert (a["status"], a["reason"]) == ("done", "archived"), a
    assert membership(st, g, early)[0] == "pending_confirmation"
    assert "archived" in replies(sink, early, 2)[1].get_content()


@pytest.mark.parametrize("astatus", ["disabled", "deleted"])
def test_disabled_account_cannot_join(cmd_stack, astatus):
    st, sink = cmd_stack
    g, _ = make_group(st)
    who = addr("off")
    st.sql("INSERT INTO accounts (email, status) VALUES (:'v1', :'v2')",
           who, astatus)
    a = command(st, f"{g}+subscribe@{DOMAIN}", who)
    assert (a["status"], a["reason"]) == ("done", "account_disabled"), a
    assert "cannot join" in replies(sink, who)[0].get_content()
    assert membership(st, g, who) is None
    # disabled between the request and the confirmation: not admitted
    later = addr("laterdisabled")
    command(st, f"{g}+subscribe@{DOMAIN}", later)
    caddr = confirm_address(replies(sink, later)[0])
    st.sql("UPDATE accounts SET status = :'v2' WHERE email = :'v1'", later,
           astatus)
    a = command(st, caddr, later)
    assert (a["status"], a["reason"]) == ("done", "account_disabled"), a
    assert membership(st, g, later)[0] == "pending_confirmation"
    assert "cannot join" in replies(sink, later, 2)[1].get_content()


def command_raw(st, rcpt, raw, mail_from):
    r = st.post("messageserver", "/v1/inbound", {
        "mail_from": mail_from, "rcpts": [rcpt], "client_addr": "127.0.0.1",
        "client_helo": "client.example", "raw": b64url(raw)})
    assert r.status == 200, r
    return r.json()["actions"][0]


@pytest.mark.parametrize("extra,reason", [
    ("X-Autorespond: yes\r\n", "auto_reply"),
    ("Precedence: auto_reply\r\n", "precedence"),
    ("Precedence: Bulk; comment\r\n", "precedence"),
])
def test_more_machines_get_no_answer(cmd_stack, extra, reason):
    st, _ = cmd_stack
    g, _ = make_group(st)
    who = addr("robot")
    for c in ("help", "subscribe", "digest"):
        a = command(st, f"{g}+{c}@{DOMAIN}", who, extra=extra)
        assert (a["status"], a["reason"]) == ("ignored", reason), (c, a)
    assert queued(st, who) == 0
    assert membership(st, g, who) is None


def raw_command(rcpt, from_field):
    return ((from_field or "") + f"To: {rcpt}\r\nSubject: x\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@example.org>\r\n\r\n"
            "hi\r\n").encode()


@pytest.mark.parametrize("from_field,mail_from", [
    ("From: Nobody\r\n", "ENV"),          # a From that is no address
    ("From: nobody\r\n", "nobody"),
    (None, "nobody"),                       # no From, no envelope domain
    ("From: undisclosed-recipients:;\r\n", "mailer"),
])
def test_no_usable_from_gets_no_answer(cmd_stack, from_field, mail_from):
    """No address to answer: the From names no address with a domain, and
    neither does the envelope sender it falls back to.  Ignored
    (no_sender), nobody is subscribed, nothing is queued."""
    st, _ = cmd_stack
    g, _ = make_group(st)
    env = addr("envonly") if mail_from == "ENV" else mail_from
    for c in ("help", "subscribe", "digest"):
        rcpt = f"{g}+{c}@{DOMAIN}"
        a = command_raw(st, rcpt, raw_command(rcpt, from_field), env)
        assert (a["status"], a["reason"]) == ("ignored", "no_sender"), \
            (from_field, a)
    assert queued(st, env) == 0
    assert st.sql("SELECT count(*) FROM memberships m JOIN groups g ON "
                  "g.id = m.group_id WHERE g.name = :'v1'", g) == [["0"]]


@pytest.mark.parametrize("from_field", [
    None, "From: undisclosed-recipients:;\r\n", "From: <>\r\n"])
def test_from_without_a_mailbox_is_answered_at_the_envelope(cmd_stack,
                                                            from_field):
    """A From with no mailbox at all (missing, an empty group, <>): the
    envelope sender is the sender, as for posts (docs/commands.md)."""
    st, sink = cmd_stack
    g, _ = make_group(st)
    env = addr("envelope")
    rcpt = f"{g}+help@{DOMAIN}"
    a = command_raw(st, rcpt, raw_command(rcpt, from_field), env)
    assert (a["status"], a["reason"]) == ("done", "help"), a
    assert str(replies(sink, env)[0]["Subject"]) == f"{g}: help"


def test_subscribe_confirmed_on_the_web_into_a_restricted_group(cmd_stack):
    """The web link of a restricted group ends at "waiting for approval":
    the page says so, the membership is pending_approval, the moderators
    are told once and the member gets the same reply as by mail."""
    st, sink = cmd_stack
    owner = addr("webowner")
    g, _ = make_group(st, [(owner, {"role": "owner"})],
                      restricted_membership="true")
    who = addr("webask")
    assert command(st, f"{g}+subscribe@{DOMAIN}", who)["status"] == \
        "confirm"
    token = confirm_address(replies(sink, who)[0]).split(
        "+confirm-", 1)[1].split("@")[0]
    r = st.https("POST", "/confirm?t=" + token, body=b"",
                 headers={"Content-Type":
                          "application/x-www-form-urlencoded"})
    assert r.status == 200, r
    assert "Waiting for approval" in r.text and who in r.text, r.text
    assert "now a member" not in r.text
    assert membership(st, g, who)[0] == "pending_approval"
    assert st.sql("SELECT count(*) FROM activity_log l JOIN groups g ON "
                  "g.id = l.group_id WHERE g.name = :'v1' AND l.action = "
                  "'member.request'", g) == [["1"]]
    assert queued(st, owner) == 1
    assert "moderators approve new members" in \
        replies(sink, who, 2)[1].get_content()
    # the link again: nothing to confirm, no second notice
    r = st.https("POST", "/confirm?t=" + token, body=b"")
    assert r.status == 200 and "Nothing to confirm" in r.text
    assert queued(st, owner) == 1 and queued(st, who) == 2
