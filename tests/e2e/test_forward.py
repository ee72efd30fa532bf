# SPDX-License-Identifier: MIT
"""The owners' address and forward rules end to end: mail to
group+owner reaches every active owner and moderator once (not the
members, not the sender), intact but for trace headers on top; a sender
whose domain publishes p=reject gets a From of ours and a Reply-To of
their own; forward rules (rows of forward_rules) reach an outside address,
or a group through its own posting policy; loops stop: a forward that
comes back, automatic replies, our own notices; an address without a
group or rule is refused at RCPT through nginx.

A private stack whose karl delivers by SMTP to an aiosmtpd sink."""
import base64
import smtplib
import uuid
from email import message_from_bytes
from email.policy import default as default_policy

import pytest
from aiosmtpd.controller import Controller

from mailtest import Sink
from stack import Stack, wait_for

DOMAIN = "localhost"
# forward rules of the configuration (main domain): local part, target
CONFIG_RULES = [("cfg-sales", "sales-team@example.net"),
                ("cfg-abuse", "abuse-desk@example.net"),
                ("abuse", "abuse-team@example.net")]


@pytest.fixture(scope="module")
def fwd(test_dns):
    st = Stack(extra_conf={"dns_resolver": test_dns.resolver,
                           "karl_retry_min": "1", "karl_retry_max": "2",
                           "forward_rules": ", ".join(
                               f"{l} {t}" for l, t in CONFIG_RULES)})
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
    name = uniq("fw")
    cols = ["domain", "name", "title"] + list(settings)
    vals = [DOMAIN, name, f"Group {name}"] + [str(v) for v in
                                              settings.values()]
    ph = ", ".join(f":'v{i}'" for i in range(1, len(vals) + 1))
    gid = st.sql(f"INSERT INTO groups ({', '.join(cols)}) VALUES ({ph}) "
                 "RETURNING id", *vals)[0][0]
    for email, m in members:
        aid = st.sql("INSERT INTO accounts (email) VALUES (:'v1') ON "
                     "CONFLICT (lower(email)) DO UPDATE SET status = "
                     "'active' RETURNING id", email)[0][0]
        mcols = ["group_id", "account_id"] + list(m)
        mvals = [gid, aid] + [str(v) for v in m.values()]
        ph = ", ".join(f":'v{i}'" for i in range(1, len(mvals) + 1))
        st.sql(f"INSERT INTO memberships ({', '.join(mcols)}) VALUES ({ph})",
               *mvals)
    return name, gid


def message(to, sender, subject, body="hello owners\r\n", extra=""):
    msgid = f"{uuid.uuid4().hex}@example.org"
    raw = (f"From: Sender Name <{sender}>\r\nTo: {to}\r\n"
           f"Subject: {subject}\r\nMessage-ID: <{msgid}>\r\n{extra}"
           f"Date: Thu, 03 Dec 2026 12:00:00 +0000\r\n\r\n{body}").encode()
    return raw, msgid


def inbound(st, rcpt, raw, mail_from):
    r = st.post("messageserver", "/v1/inbound", {
        "mail_from": mail_from, "rcpts": [rcpt], "client_addr": "127.0.0.1",
        "client_helo": "client.example", "cid": "fwd-" + uuid.uuid4().hex[:8],
        "raw": b64url(raw)})
    assert r.status == 200, r
    return r.json()


def action(st, rcpt, raw, mail_from):
    j = inbound(st, rcpt, raw, mail_from)
    assert len(j["actions"]) == 1, j
    return j["actions"][0]


def smtp_send(st, mail_from, rcpt, raw):
    with smtplib.SMTP("127.0.0.1", st.ports["smtp_public"],
                      timeout=30) as s:
        s.ehlo("client.example")
        assert s.sendmail(mail_from, [rcpt], raw) == {}


def got(sink, rcpt, msgid):
    """(envelope sender, bytes) of what rcpt got with Message-ID msgid."""
    with sink.lock:
        items = list(sink.got.get(rcpt, []))
    return [(f, d) for f, d in items
            if message_from_bytes(d, policy=default_policy)["Message-ID"]
            == f"<{msgid}>"]


def wait_got(sink, rcpt, msgid, timeout=20):
    assert wait_for(lambda: got(sink, rcpt, msgid), timeout), \
        (rcpt, list(sink.got))
    return got(sink, rcpt, msgid)


def settle(st):
    """Wait until the outbox has nothing pending: every copy queued so far
    is with the sink (or failed)."""
    assert wait_for(lambda: st.sql("SELECT count(*) FROM outbox WHERE "
                                   "status = 'pending'") == [["0"]], 20)


def head_and_body(data):
    i = data.index(b"\r\n\r\n")
    return data[:i + 2], data[i + 4:]


def addr(tag):
    return f"{tag}-{uuid.uuid4().hex[:6]}@example.org"


# ------------------------------------------------------------ +owner

def test_owner_address_reaches_staff_once(fwd):
    st, sink = fwd
    owner, moder, member = addr("owner"), addr("mod"), addr("member")
    gone = addr("gone")
    g, _ = make_group(st, [(owner, {"role": "owner"}),
                           (moder, {"role": "moderator"}), (member, {}),
                           (gone, {"role": "owner",
                                   "status": "pending_confirmation"})])
    outsider = addr("outsider")
    body = ("Hello owners,\r\n\r\n-- \r\nnot a footer, just text\r\n" +
            "x" * 100 + "\r\n")
    raw, msgid = message(f"{g}+owner@{DOMAIN}", outsider, "A question",
                         body=body, extra="Return-Path: <forged@x.test>\r\n")
    smtp_send(st, outsider, f"{g}+owner@{DOMAIN}", raw)

    for who in (owner, moder):
        copies = wait_got(sink, who, msgid)
        assert len(copies) == 1, who
        env, data = copies[0]
        # our bounce address, so a failed forward comes back to us
        assert env.startswith("bounces+") and \
            env.endswith(f"@{DOMAIN}"), env
        head, rest = head_and_body(data)
        assert rest == body.encode()          # the body byte for byte
        m = message_from_bytes(data, policy=default_policy)
        assert m["X-Loop"] == f"{g}+owner@{DOMAIN}"
        assert m["X-Original-To"] == f"{g}+owner@{DOMAIN}"
        assert str(m["Resent-From"]).strip("<>") == f"{g}+owner@{DOMAIN}"
        assert m["Resent-Date"] and m["Resent-Message-ID"]
        assert m["From"].addresses[0].addr_spec == outsider  # no DMARC need
        assert m["Subject"] == "A question"
        assert b"forged@x.test" not in head
    settle(st)
    for who in (member, gone, outsider):
        assert not got(sink, who, msgid), who
    assert len(got(sink, owner, msgid)) == 1

    # an owner writing to +owner reaches the others, not themselves
    raw, msgid = message(f"{g}+owner@{DOMAIN}", owner, "Among us")
    a = action(st, f"{g}+owner@{DOMAIN}", raw, owner)
    assert a["status"] == "forwarded" and "1 receiver" in a["reason"], a
    wait_got(sink, moder, msgid)
    settle(st)
    assert not got(sink, owner, msgid)


def test_owner_address_rewrites_from_for_dmarc_reject(fwd):
    st, sink = fwd
    owner = addr("owner")
    g, _ = make_group(st, [(owner, {"role": "owner"})])
    sender = f"alice-{uuid.uuid4().hex[:6]}@reject.test"
    raw, msgid = message(f"{g}+owner@{DOMAIN}", sender, "Strict domain",
                         extra="DKIM-Signature: v=1; a=rsa-sha256; "
                         "d=reject.test; s=x; h=from; bh=AAAA; b=BBBB\r\n")
    a = action(st, f"{g}+owner@{DOMAIN}", raw, sender)
    assert a["status"] == "forwarded" and "DMARC" in a["reason"], a
    env, data = wait_got(sink, owner, msgid)[0]
    m = message_from_bytes(data, policy=default_policy)
    assert m["From"].addresses[0].addr_spec == f"{g}+owner@{DOMAIN}"
    assert "Sender Name via" in m["From"].addresses[0].display_name
    assert m["Reply-To"].addresses[0].addr_spec == sender
    assert sender in str(m["X-Original-From"])
    assert m["DKIM-Signature"] is None or "reject.test" not in \
        str(m["DKIM-Signature"])
    assert head_and_body(data)[1] == b"hello owners\r\n"


def test_owner_address_loops_stop(fwd):
    st, sink = fwd
    owner = addr("owner")
    g, _ = make_group(st, [(owner, {"role": "owner"})])
    rcpt = f"{g}+owner@{DOMAIN}"
    outsider = addr("outsider")
    cases = [
        (f"X-Loop: {rcpt}\r\n", outsider, "loop"),
        (f"X-Loop: <{rcpt.upper()}>\r\n", outsider, "loop"),
        ("Auto-Submitted: auto-replied\r\n", outsider, "automatic reply"),
        ("X-Autoreply: yes\r\n", outsider, "automatic reply"),
        ("Precedence: junk\r\n", outsider, "automatic reply"),
        # one of our own notices (another group's) arriving here
        ("Auto-Submitted: auto-generated\r\n", f"other+owner@{DOMAIN}",
         "our own"),
    ]
    ids = []
    for extra, sender, reason in cases:
        raw, msgid = message(rcpt, sender, "loop?", extra=extra)
        ids.append(msgid)
        a = action(st, rcpt, raw, sender)
        assert a["status"] == "ignored" and reason in a["reason"], \
            (extra, a)
    # the null sender (a DSN) is forwarded once ...
    raw, msgid = message(rcpt, "mailer-daemon@example.net", "Undelivered")
    a = action(st, rcpt, raw, "")
    assert a["status"] == "forwarded", a
    env, data = wait_got(sink, owner, msgid)[0]
    # ... and the forward coming back (an owner's alias pointing here) stops
    a = action(st, rcpt, data, env)
    assert a["status"] == "ignored" and "loop" in a["reason"], a
    settle(st)
    assert len(got(sink, owner, msgid)) == 1
    for i in ids:
        assert not got(sink, owner, i)


def test_group_without_owners(fwd):
    st, sink = fwd
    g, _ = make_group(st, [(addr("member"), {})])
    raw, _ = message(f"{g}+owner@{DOMAIN}", addr("x"), "anyone there?")
    a = action(st, f"{g}+owner@{DOMAIN}", raw, "x@example.org")
    assert a["status"] == "ignored" and "no owners" in a["reason"], a
    assert st.sql("SELECT count(*) FROM outbox WHERE group_id = (SELECT id "
                  "FROM groups WHERE name = :'v1')", g) == [["0"]]


# ------------------------------------------------------------ forward rules

def add_rule(st, local, target_address=None, group_id=None, enabled=True):
    st.sql("INSERT INTO forward_rules (domain, local_part, target_address, "
           "target_group_id, enabled) VALUES (:'v1', :'v2', "
           "nullif(:'v3', ''), nullif(:'v4', '')::bigint, :'v5')", DOMAIN,
           local, target_address or "", group_id or "",
           "true" if enabled else "false")


def test_rule_to_an_address(fwd):
    st, sink = fwd
    make_group(st, [])      # the domain has a group to send through
    local, target = uniq("info-"), addr("target")
    add_rule(st, local, target_address=target)
    sender = addr("customer")
    raw, msgid = message(f"{local}@{DOMAIN}", sender, "Hello info",
                         body="Question about your service\r\n")
    smtp_send(st, sender, f"{local}@{DOMAIN}", raw)
    env, data = wait_got(sink, target, msgid)[0]
    m = message_from_bytes(data, policy=default_policy)
    assert m["X-Original-To"] == f"{local}@{DOMAIN}"
    assert m["X-Loop"] == f"{local}@{DOMAIN}"
    assert m["From"].addresses[0].addr_spec == sender
    assert head_and_body(data)[1] == b"Question about your service\r\n"
    assert env.endswith(f"@{DOMAIN}") and env.startswith("bounces+"), env

    # the forward comes back (the target forwards to us again): dropped
    a = action(st, f"{local}@{DOMAIN}", data, target)
    assert a["status"] == "ignored" and "loop" in a["reason"], a
    # the target writing to the rule is not sent its own mail back
    raw, msgid2 = message(f"{local}@{DOMAIN}", target, "from the target")
    a = action(st, f"{local}@{DOMAIN}", raw, target)
    assert a["status"] == "ignored" and "sender" in a["reason"], a
    settle(st)
    assert len(got(sink, target, msgid)) == 1
    assert not got(sink, target, msgid2)

    # p=reject: From becomes the rule's address, the sender in Reply-To
    strict = f"bob-{uuid.uuid4().hex[:6]}@reject.test"
    raw, msgid = message(f"{local}@{DOMAIN}", strict, "strict")
    assert action(st, f"{local}@{DOMAIN}", raw, strict)["status"] == \
        "forwarded"
    m = message_from_bytes(wait_got(sink, target, msgid)[0][1],
                           policy=default_policy)
    assert m["From"].addresses[0].addr_spec == f"{local}@{DOMAIN}"
    assert m["Reply-To"].addresses[0].addr_spec == strict


def test_rule_to_a_group_goes_through_its_policy(fwd):
    st, sink = fwd
    member, other = addr("member"), addr("other")
    g, gid = make_group(st, [(member, {}), (other, {})])
    local = uniq("alias-")
    add_rule(st, local, group_id=gid)
    raw, msgid = message(f"{local}@{DOMAIN}", member, "via the alias")
    smtp_send(st, member, f"{local}@{DOMAIN}", raw)
    data = wait_got(sink, other, msgid)[0][1]
    m = message_from_bytes(data, policy=default_policy)
    assert m["List-Id"] is not None and g in str(m["List-Id"])
    assert st.sql("SELECT count(*) FROM messages WHERE group_id = :'v1' "
                  "AND message_id = :'v2'", gid, msgid) == [["1"]]
    # a stranger through the alias meets the group's policy
    stranger = addr("stranger")
    raw, msgid = message(f"{local}@{DOMAIN}", stranger, "let me in")
    a = action(st, f"{local}@{DOMAIN}", raw, stranger)
    assert a["status"] == "forwarded" and "rejected non_member" in \
        a["reason"], a
    assert st.sql("SELECT count(*) FROM messages WHERE group_id = :'v1' "
                  "AND message_id = :'v2'", gid, msgid) == [["0"]]


def test_rule_to_a_groups_owner_address(fwd):
    st, sink = fwd
    owner = addr("owner")
    g, _ = make_group(st, [(owner, {"role": "owner"}), (addr("m"), {})])
    local = uniq("help-")
    add_rule(st, local, target_address=f"{g}+owner@{DOMAIN}")
    raw, msgid = message(f"{local}@{DOMAIN}", addr("asker"), "help me")
    a = action(st, f"{local}@{DOMAIN}", raw, "asker@example.org")
    assert a["status"] == "forwarded", a
    m = message_from_bytes(wait_got(sink, owner, msgid)[0][1],
                           policy=default_policy)
    assert m["X-Loop"] == f"{g}+owner@{DOMAIN}"
    # a rule to another of our addresses that is no group is not followed
    local2 = uniq("chain-")
    add_rule(st, local2, target_address=f"{local}@{DOMAIN}")
    raw, msgid = message(f"{local2}@{DOMAIN}", addr("asker"), "chain")
    a = action(st, f"{local2}@{DOMAIN}", raw, "asker@example.org")
    assert a["status"] == "ignored" and "not a group" in a["reason"], a


def test_unknown_addresses_are_refused_at_rcpt(fwd):
    st, _ = fwd
    g, _ = make_group(st, [])
    off = uniq("off-")
    add_rule(st, off, target_address="t@example.net", enabled=False)
    # one session per address: smtpd counts refused recipients as errors
    for rcpt, want in ((f"{uniq('nobody-')}@{DOMAIN}", 550),
                       (f"{off}@{DOMAIN}", 550),
                       (f"{g}+nosuchthing@{DOMAIN}", 550),
                       (f"{g}+owner@{DOMAIN}", 250)):
        with smtplib.SMTP("127.0.0.1", st.ports["smtp_public"],
                          timeout=30) as s:
            s.ehlo("client.example")
            s.mail("someone@example.org")
            code, text = s.rcpt(rcpt)
        assert code == want, (rcpt, code, text)
        if want == 550:
            assert b"5.1.1" in text, (rcpt, text)


@pytest.mark.parametrize("shape", ["lf", "no_body", "folded_from"])
def test_odd_messages_are_forwarded_intact(fwd, shape):
    """Bare-LF line ends, a message with no body at all, and a folded
    From that must be rewritten all reach the owner as parsable mail."""
    st, sink = fwd
    owner = addr("owner")
    g, _ = make_group(st, [(owner, {"role": "owner"})])
    rcpt = f"{g}+owner@{DOMAIN}"
    msgid = f"{uuid.uuid4().hex}@example.org"
    sender = addr("odd")
    if shape == "folded_from":
        sender = f"carol-{uuid.uuid4().hex[:6]}@reject.test"
    head = (f"From: =?utf-8?q?Carol_=C3=A9?=\r\n <{sender}>\r\n"
            f"To: {rcpt}\r\nSubject: odd {shape}\r\n"
            f"Message-ID: <{msgid}>\r\n")
    if shape == "lf":
        raw = (head + "\r\nline one\r\nline two\r\n").replace("\r\n", "\n")
    elif shape == "no_body":
        raw = head.rstrip("\r\n")
    else:
        raw = head + "\r\nbody\r\n"
    a = action(st, rcpt, raw.encode(), sender)
    assert a["status"] == "forwarded", a
    m = message_from_bytes(wait_got(sink, owner, msgid)[0][1],
                           policy=default_policy)
    assert m["X-Loop"] == rcpt
    assert str(m["Subject"]) == f"odd {shape}"
    if shape == "lf":
        assert m.get_content().splitlines() == ["line one", "line two"]
    if shape == "folded_from":
        assert m["From"].addresses[0].addr_spec == rcpt
        assert m["From"].addresses[0].display_name.startswith(
            "Carol \u00e9 via")
        assert m["Reply-To"].addresses[0].addr_spec == sender
        assert m.get_content().splitlines() == ["body"]


def test_config_rule_to_an_address(fwd):
    """A rule of the configuration's forward_rules works like a row: the
    copy names the rule's own address."""
    st, sink = fwd
    make_group(st, [])
    local, target = CONFIG_RULES[1]
    sender = addr("reporter")
    raw, msgid = message(f"{local}@{DOMAIN}", sender, "spam report")
    a = action(st, f"{local}@{DOMAIN}", raw, sender)
    assert a["status"] == "forwarded", a
    m = message_from_bytes(wait_got(sink, target, msgid)[0][1],
                           policy=default_policy)
    assert m["X-Original-To"] == f"{local}@{DOMAIN}"
    assert m["X-Loop"] == f"{local}@{DOMAIN}"


# ------------------------------------------------------ postmaster, roles

def admin(st, email):
    """A new active site administrator; returns the account id."""
    return st.sql("INSERT INTO accounts (email, is_admin, email_verified) "
                  "VALUES (:'v1', true, true) RETURNING id", email)[0][0]


def rcpt_code(st, rcpt):
    """What smtpd (through nginx) answers RCPT TO:<rcpt>."""
    with smtplib.SMTP("127.0.0.1", st.ports["smtp_public"],
                      timeout=30) as s:
        s.ehlo("client.example")
        s.mail("someone@example.org")
        return s.rcpt(rcpt)[0]


def test_postmaster_reaches_the_site_admin_once(fwd):
    """postmaster@ our domain without a rule: by SMTP through nginx, to the
    first active administrator whose address is outside our domains (the
    seeded admin@<domain> is one of ours, and our addresses are never
    receivers), once, as a forward."""
    st, sink = fwd
    make_group(st, [])      # the domain has a group to send through
    ours = st.sql("SELECT email FROM accounts WHERE is_admin ORDER BY id")
    assert ours and all(e[0].endswith(f"@{DOMAIN}") for e in ours), ours
    ops = addr("ops")
    aid = admin(st, ops)
    try:
        later = admin(st, addr("ops2"))    # a later admin gets nothing
        sender = addr("reporter")
        raw, msgid = message(f"PostMaster@{DOMAIN}", sender,
                             "your server", body="Hello postmaster\r\n")
        smtp_send(st, sender, f"PostMaster@{DOMAIN}", raw)
        env, data = wait_got(sink, ops, msgid)[0]
        assert env.startswith("bounces+") and env.endswith(f"@{DOMAIN}"), env
        m = message_from_bytes(data, policy=default_policy)
        assert m["X-Original-To"] == f"postmaster@{DOMAIN}"
        assert m["X-Loop"] == f"postmaster@{DOMAIN}"
        assert m["From"].addresses[0].addr_spec == sender
        assert head_and_body(data)[1] == b"Hello postmaster\r\n"
        settle(st)
        assert len(got(sink, ops, msgid)) == 1
        later_email = st.sql("SELECT email FROM accounts WHERE id = :'v1'",
                             later)[0][0]
        assert not got(sink, later_email, msgid)
    finally:
        st.sql("UPDATE accounts SET is_admin = false WHERE id = :'v1'", aid)
    # only admins at our own domains: postmaster would go nowhere, so it
    # is refused at RCPT (and logged: give it a rule)
    st.sql("UPDATE accounts SET is_admin = false WHERE id = :'v1'", later)
    assert rcpt_code(st, f"postmaster@{DOMAIN}") == 550
    assert wait_for(lambda: st.errord_events(
        daemon="messageserver", text=f"postmaster@{DOMAIN} has no forward "
        "rule"), 10)


def test_role_addresses_by_rule(fwd):
    """abuse@ by a rule of the configuration, support@ by a row, and a
    postmaster row that wins over the administrator: each delivered to
    its target once."""
    st, sink = fwd
    make_group(st, [])
    aid = admin(st, addr("ops"))
    support, pm = addr("support-desk"), addr("pm-desk")
    add_rule(st, "support", target_address=support)
    add_rule(st, "postmaster", target_address=pm)
    try:
        for local, target in (("abuse", dict(CONFIG_RULES)["abuse"]),
                              ("Support", support), ("postmaster", pm)):
            sender = addr("writer")
            raw, msgid = message(f"{local}@{DOMAIN}", sender, f"to {local}")
            smtp_send(st, sender, f"{local}@{DOMAIN}", raw)
            data = wait_got(sink, target, msgid)[0][1]
            m = message_from_bytes(data, policy=default_policy)
            assert m["X-Original-To"] == f"{local.lower()}@{DOMAIN}", local
            settle(st)
            assert len(got(sink, target, msgid)) == 1, local
            ops = st.sql("SELECT email FROM accounts WHERE id = :'v1'",
                         aid)[0][0]
            assert not got(sink, ops, msgid), local
    finally:
        st.sql("DELETE FROM forward_rules WHERE domain = :'v1' AND "
               "local_part IN ('support', 'postmaster')", DOMAIN)
        st.sql("UPDATE accounts SET is_admin = false WHERE id = :'v1'", aid)
