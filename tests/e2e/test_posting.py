# SPDX-License-Identifier: MIT
"""The posting path end to end: posting policy and member posting status,
holds with the moderators' notice, rejections with the poster's notice,
loop and auto-responder checks, hashtags, POST /v1/posts, and the hand-over
to the real karl (receivers, batches, the members' copy with its list
headers and DMARC From rewriting, retries while karl is down).

Each test makes its own group with the settings it needs, through SQL on
the stack's cluster; messages go in through messageserver's /v1/inbound
(as smtpd sends them), /v1/posts, or SMTP through nginx.  What karl was
given is read back from karl's own API."""
import base64
import email
import email.policy
import hashlib
import smtplib
import subprocess
import time
import uuid

import pytest

from mailtest import verify_token
from stack import wait_for

DOMAIN = "localhost"


# ------------------------------------------------------------------ helpers

def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def uniq(prefix="g"):
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def make_group(stack, members=(), **settings):
    """A group with settings (columns of groups) and members: a list of
    (email, {membership columns}).  Returns (name, {email: membership id}).
    """
    name = uniq("pg")
    cols = ["domain", "name", "title"] + list(settings)
    vals = [DOMAIN, name, f"Group {name}"] + [str(v) for v in settings.values()]
    ph = ", ".join(f":'v{i}'" for i in range(1, len(vals) + 1))
    gid = stack.sql(f"INSERT INTO groups ({', '.join(cols)}) VALUES ({ph}) "
                    "RETURNING id", *vals)[0][0]
    ids = {}
    for email, m in members:
        m = dict(m)
        acct_status = m.pop("account_status", "active")
        bounce = m.pop("bounce", None)
        aid = stack.sql("INSERT INTO accounts (email, display_name, status) "
                        "VALUES (:'v1', :'v2', :'v3') ON CONFLICT "
                        "(lower(email)) DO UPDATE SET status = :'v3' "
                        "RETURNING id", email, email.split("@")[0].title(),
                        acct_status)[0][0]
        if bounce:
            stack.sql("INSERT INTO bounce_state (account_id, status) VALUES "
                      "(:'v1', :'v2') ON CONFLICT (account_id) DO UPDATE "
                      "SET status = :'v2'", aid, bounce)
        mcols = ["group_id", "account_id"] + list(m)
        mvals = [gid, aid] + [str(v) for v in m.values()]
        ph = ", ".join(f":'v{i}'" for i in range(1, len(mvals) + 1))
        ids[email] = stack.sql(f"INSERT INTO memberships ({', '.join(mcols)}) "
                               f"VALUES ({ph}) RETURNING id", *mvals)[0][0]
    return name, ids


def message(group, sender="member@example.org", subject=None, extra="",
            body="hello group\r\n", msgid=None, name="Poster"):
    msgid = msgid or f"{uuid.uuid4().hex}@example.org"
    subject = subject or f"topic {uuid.uuid4().hex[:8]}"
    raw = (f"From: {name} <{sender}>\r\nTo: {group}@{DOMAIN}\r\n"
           f"Subject: {subject}\r\nMessage-ID: <{msgid}>\r\n{extra}"
           f"Date: Thu, 03 Dec 2026 12:00:00 +0000\r\n\r\n{body}").encode()
    return raw, msgid


def inbound(stack, group, raw, mail_from="member@example.org"):
    r = stack.post("messageserver", "/v1/inbound", {
        "mail_from": mail_from, "rcpts": [f"{group}@{DOMAIN}"],
        "client_addr": "127.0.0.1", "client_helo": "client.example",
        "cid": "posting-" + uuid.uuid4().hex[:8], "raw": b64url(raw)})
    assert r.status == 200, r
    j = r.json()
    assert len(j["messages"]) == 1, j
    return j["messages"][0]


def post(stack, group, sender="member@example.org", **kw):
    raw, msgid = message(group, sender=sender, **kw)
    return inbound(stack, group, raw, mail_from=sender), msgid


def outbox(stack, group, kind):
    """[id, status, receivers_sent, raw (str), receivers (JSON text)] of
    group's outbox rows of kind."""
    rows = stack.sql("SELECT o.id, o.status, o.receivers_sent, "
                     "translate(encode(coalesce(o.raw, ''::bytea), 'base64'), "
                     "E'\\n', ''), coalesce(o.receivers::text, '') "
                     "FROM outbox o JOIN groups g ON g.id = o.group_id "
                     "WHERE g.name = :'v1' AND o.kind = :'v2' ORDER BY o.id",
                     group, kind)
    for r in rows:
        r[3] = base64.b64decode(r[3]).decode("utf-8", "replace")
    return rows


def karl_job(stack, job):
    r = stack.get("karl", f"/v1/jobs/{job}", auth=True)
    return r.json() if r.status == 200 else None


def karl_receivers(stack, job):
    r = stack.get("karl", f"/v1/jobs/{job}/receivers", auth=True)
    assert r.status == 200, r
    return sorted(x["to"] for x in r.json()["receivers"])


def karl_message(stack, job):
    r = stack.get("karl", f"/v1/jobs/{job}/message", auth=True)
    assert r.status == 200, r
    return r.body


def handed_over(stack, group, kind="post", n=1, timeout=15):
    """Wait until n outbox rows of group are done; returns them."""
    rows = []

    def done():
        rows[:] = outbox(stack, group, kind)
        return len(rows) >= n and all(r[1] == "done" for r in rows)
    assert wait_for(done, timeout), f"outbox not handed over: {rows}"
    return rows


MEMBER = ("member@example.org", {})


# ------------------------------------------------------------------ policy

def test_member_post_is_archived_and_handed_to_karl(stack):
    g, _ = make_group(stack, [MEMBER, ("other@example.net", {})])
    res, msgid = post(stack, g)
    assert res["status"] == "archived" and res["number"] == 1
    rows = handed_over(stack, g)
    assert len(rows) == 1 and rows[0][2] == "2"
    job = karl_job(stack, f"post-{rows[0][0]}")
    assert job["complete"] is True and job["receivers"] == 2
    assert karl_receivers(stack, f"post-{rows[0][0]}") == [
        "member@example.org", "other@example.net"]


def posts_metric(stack, result):
    r = stack.get("messageserver", "/metrics")
    for line in r.text.splitlines():
        if line.startswith(f'messageserver_posts_total{{result="{result}"}}'):
            return int(line.split()[-1])
    raise AssertionError(f"no messageserver_posts_total for {result}")


def test_non_member_is_rejected_with_a_notice(stack):
    before = posts_metric(stack, "rejected")
    g, _ = make_group(stack, [MEMBER])
    res, msgid = post(stack, g, sender="stranger@example.com",
                      subject="let me in")
    assert res["status"] == "rejected" and res["reason"] == "non_member"
    assert posts_metric(stack, "rejected") == before + 1
    assert stack.sql("SELECT count(*) FROM messages m JOIN groups g ON "
                     "g.id = m.group_id WHERE g.name = :'v1'", g) == [["0"]]
    rows = handed_over(stack, g, kind="notice")
    assert len(rows) == 1
    raw, receivers = rows[0][3], rows[0][4]
    assert "stranger@example.com" in receivers
    assert "Auto-Submitted: auto-replied" in raw
    assert f"Not posted to {g}: let me in" in raw
    assert "only members may post" in raw
    assert karl_receivers(stack, f"notice-{rows[0][0]}") == [
        "stranger@example.com"]
    # a second attempt within the hour gets no second notice
    res, _ = post(stack, g, sender="stranger@example.com")
    assert res["status"] == "rejected"
    time.sleep(0.3)
    assert len(outbox(stack, g, "notice")) == 1


def test_non_member_is_held_when_the_group_moderates_them(stack):
    g, _ = make_group(stack, [("owner@example.org", {"role": "owner"}),
                              ("mod@example.org", {"role": "moderator"}),
                              MEMBER], nonmember_posts="moderate")
    res, msgid = post(stack, g, sender="stranger@example.com",
                      subject="please approve")
    assert res["status"] == "held" and res["reason"] == "non_member"
    pid = res["pending_id"]
    assert stack.sql("SELECT status, reason, from_address, message_id, "
                     "expires_at > now() + interval '13 days' FROM "
                     "pending_messages WHERE id = :'v1'", pid) == [
        ["pending", "non_member", "stranger@example.com", msgid, "t"]]
    rows = handed_over(stack, g, kind="notice")
    raw = rows[0][3]
    assert karl_receivers(stack, f"notice-{rows[0][0]}") == [
        "mod@example.org", "owner@example.org"]
    assert "message held for approval: please approve" in raw
    # the reply address carries a signed token that routes as a command
    addr = header(raw.encode(), "Reply-To")[0].strip("<>")
    assert addr.startswith(f"{g}+approve-") and addr.endswith("@localhost")
    r = stack.post("messageserver", "/v1/rcpt", {"rcpt": addr})
    assert r.status == 200 and r.json()["route"] == "command"
    assert r.json()["command"] == "approve"
    token = r.json()["detail"]
    assert f"{g}+reject-{token}@localhost" in raw.replace("=\r\n", "")
    # the same message again is a duplicate, not a second hold
    raw2, _ = message(g, sender="stranger@example.com", msgid=msgid)
    again = inbound(stack, g, raw2, mail_from="stranger@example.com")
    assert again["status"] == "duplicate" and again["pending_id"] == pid


@pytest.mark.parametrize("membership,reason", [
    ({"posting": "moderated"}, "moderated_member"),
    ({"posting": "new_member_moderated"}, "new_member"),
])
def test_member_posting_status_holds(stack, membership, reason):
    g, _ = make_group(stack, [("member@example.org", membership),
                              ("owner@example.org", {"role": "owner"})])
    res, _ = post(stack, g)
    assert res["status"] == "held" and res["reason"] == reason


def test_banned_member_and_banned_domain_are_rejected(stack):
    g, _ = make_group(stack, [("member@example.org", {"posting": "banned"}),
                              ("ok@spam.example", {})])
    res, _ = post(stack, g)
    assert res["status"] == "rejected" and res["reason"] == "banned"
    stack.sql("INSERT INTO group_bans (group_id, pattern) SELECT id, "
              "'@spam.example' FROM groups WHERE name = :'v1'", g)
    res, _ = post(stack, g, sender="ok@spam.example")
    assert res["status"] == "rejected" and res["reason"] == "banned"


def test_moderated_group_holds_members_not_moderators(stack):
    g, _ = make_group(stack, [MEMBER, ("mod@example.org",
                                       {"role": "moderator"})],
                      moderate_all="true")
    res, _ = post(stack, g)
    assert res["status"] == "held" and res["reason"] == "moderated_group"
    res, _ = post(stack, g, sender="mod@example.org")
    assert res["status"] == "archived"


def test_announcement_only_group(stack):
    g, _ = make_group(stack, [MEMBER, ("owner@example.org", {"role": "owner"})],
                      who_can_post="moderators")
    res, _ = post(stack, g)
    assert res["status"] == "rejected" and res["reason"] == "announce_only"
    res, _ = post(stack, g, sender="owner@example.org")
    assert res["status"] == "archived"


def test_archived_group_takes_no_posts(stack):
    g, _ = make_group(stack, [MEMBER], status="archived")
    res, _ = post(stack, g)
    assert res["status"] == "rejected" and res["reason"] == "group_archived"


def test_anyone_may_post(stack):
    g, _ = make_group(stack, [MEMBER], who_can_post="anyone")
    res, _ = post(stack, g, sender="passer-by@example.com")
    assert res["status"] == "archived"


def test_new_topic_moderation(stack):
    g, _ = make_group(stack, [MEMBER, ("mod@example.org",
                                       {"role": "moderator"})],
                      moderate_new_topics="true")
    res, first = post(stack, g, sender="mod@example.org", subject="Agenda")
    assert res["status"] == "archived"
    res, _ = post(stack, g, subject="Re: Agenda",
                  extra=f"In-Reply-To: <{first}>\r\n")
    assert res["status"] == "archived"
    res, _ = post(stack, g, subject="A brand new topic")
    assert res["status"] == "held" and res["reason"] == "new_topic"


def test_hashtags_moderate_and_silence(stack):
    g, _ = make_group(stack, [MEMBER, ("owner@example.org", {"role": "owner"})])
    stack.sql("INSERT INTO hashtags (group_id, name, moderated, no_email, "
              "moderators_only) SELECT id, t.n, t.m, t.e, t.s FROM groups, "
              "(VALUES ('review', true, false, false), "
              "('quiet', false, true, false), "
              "('staff', false, false, true)) AS t(n, m, e, s) "
              "WHERE name = :'v1'", g)
    res, _ = post(stack, g, subject="#Review my draft")
    assert res["status"] == "held" and res["reason"] == "hashtag"
    res, _ = post(stack, g, subject="#staff only")
    assert res["status"] == "held" and res["reason"] == "hashtag"
    res, _ = post(stack, g, subject="#quiet archived, not mailed")
    assert res["status"] == "archived"
    assert res["reason"] == "no_email_hashtag"
    res, _ = post(stack, g, subject="an ordinary post")
    assert res["status"] == "archived"
    rows = handed_over(stack, g)
    assert len(rows) == 1     # only the ordinary post goes out


@pytest.mark.parametrize("extra,mail_from,verdict,reason", [
    ("X-Loop: {g}@localhost\r\n", None, "dropped", "loop"),
    ("List-Id: Our list <{g}.localhost>\r\n", None, "dropped", "loop"),
    ("Auto-Submitted: auto-replied\r\n", None, "dropped", "auto_reply"),
    ("X-Autoreply: yes\r\n", None, "dropped", "auto_reply"),
    ("Precedence: junk\r\n", None, "dropped", "auto_reply"),
    ("", "", "dropped", "null_sender"),
    ("Auto-Submitted: auto-generated\r\n", None, "held", "auto_submitted"),
    ("Precedence: bulk\r\n", None, "held", "bulk"),
    ("Auto-Submitted: no\r\n", None, "archived", ""),
    ("List-Id: another list <other.example.net>\r\n", None, "archived", ""),
])
def test_loops_and_auto_responders(stack, extra, mail_from, verdict, reason):
    g, _ = make_group(stack, [MEMBER, ("owner@example.org", {"role": "owner"})])
    raw, _ = message(g, extra=extra.format(g=g))
    res = inbound(stack, g, raw, mail_from="member@example.org"
                  if mail_from is None else mail_from)
    assert (res["status"], res["reason"]) == (verdict, reason)
    if verdict == "dropped":
        time.sleep(0.3)
        assert outbox(stack, g, "notice") == []    # no reply storm


def test_size_and_attachment_limits(stack):
    g, _ = make_group(stack, [MEMBER], max_message_size=2048,
                      allow_attachments="false")
    res, _ = post(stack, g, body="x" * 3000 + "\r\n")
    assert res["status"] == "rejected" and res["reason"] == "size"
    att = ("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
           "boundary=b\r\n")
    body = ("--b\r\nContent-Type: text/plain\r\n\r\nsee file\r\n--b\r\n"
            "Content-Type: application/octet-stream\r\nContent-Disposition: "
            "attachment; filename=a.bin\r\n\r\nAAAA\r\n--b--\r\n")
    res, _ = post(stack, g, extra=att, body=body)
    assert res["status"] == "rejected" and res["reason"] == "attachments"


def with_attachment(size, name="a.bin"):
    """(extra headers, body) of a post with an attachment of size bytes,
    and the bytes."""
    data = (bytes(range(256)) * (size // 256 + 1))[:size]
    b64 = base64.encodebytes(data).decode().replace("\n", "\r\n")
    extra = ("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
             "boundary=b\r\n")
    body = ("--b\r\nContent-Type: text/plain\r\n\r\nsee file\r\n--b\r\n"
            "Content-Type: application/octet-stream\r\n"
            "Content-Transfer-Encoding: base64\r\nContent-Disposition: "
            f"attachment; filename={name}\r\n\r\n{b64}--b--\r\n")
    return extra, body, data


def notice_text(raw):
    """The decoded text of a notice (its bytes as outbox() gives them)."""
    msg = email.message_from_string(raw, policy=email.policy.default)
    return msg.get_body(("plain",)).get_content()


def test_attachment_size_limit(stack):
    """groups.max_attachment_size (007): an attachment over it (decoded
    bytes) is rejected with a notice naming it; one at or under it is
    archived and stored; NULL (the default) is no limit of its own."""
    g, _ = make_group(stack, [MEMBER, ("big@example.org", {})],
                      max_attachment_size=2048)
    extra, body, _ = with_attachment(2049, "big.bin")
    res, _ = post(stack, g, sender="big@example.org", subject="too big",
                  extra=extra, body=body)
    assert (res["status"], res["reason"]) == ("rejected", "attachment_size")
    rows = handed_over(stack, g, kind="notice")
    assert len(rows) == 1 and "big@example.org" in rows[0][4]
    text = " ".join(notice_text(rows[0][3]).split())
    assert ('was not posted: the attachment "big.bin" (2049 bytes) is '
            'larger than this group accepts (at most 2048 bytes an '
            'attachment).') in text
    assert stack.sql("SELECT count(*) FROM messages m JOIN groups g ON "
                     "g.id = m.group_id WHERE g.name = :'v1'", g) == [["0"]]
    # at the limit, in a message larger than it: archived, stored
    extra, body, data = with_attachment(2048, "fits.bin")
    res, msgid = post(stack, g, extra=extra, body=body + "x" * 3000)
    assert res["status"] == "archived", res
    assert stack.sql("SELECT a.filename, a.size, a.sha256, "
                     "encode(a.content, 'hex') FROM attachments a JOIN "
                     "messages m ON m.id = a.message_id WHERE "
                     "m.message_id = :'v1'", msgid) == [
        ["fits.bin", "2048", hashlib.sha256(data).hexdigest(), data.hex()]]
    # no limit of its own by default
    g2, _ = make_group(stack, [MEMBER])
    extra, body, _ = with_attachment(100000)
    res, _ = post(stack, g2, extra=extra, body=body)
    assert res["status"] == "archived", res
    # the column's check: the same range as max_message_size
    with pytest.raises(subprocess.CalledProcessError):
        stack.sql("UPDATE groups SET max_attachment_size = 1023 "
                  "WHERE name = :'v1'", g2)


def test_numbers_per_group_and_only_for_archived_posts(stack):
    """docs/schema.md: each group numbers its messages 1, 2, 3 ... without
    gaps.  Posts to two groups interleave; between them the first group
    rejects, holds, drops and sees a duplicate, none of which takes a
    number; the held one, approved by its moderator's reply, takes the
    next number then."""
    a, _ = make_group(stack, [MEMBER, ("owner@example.org", {"role": "owner"}),
                              ("held@example.org", {"posting": "moderated"})])
    b, _ = make_group(stack, [MEMBER])
    got = {a: [], b: []}
    held = None
    for i in range(3):
        for g in (a, b):
            res, msgid = post(stack, g, subject=f"post {i} to {g}")
            assert res["status"] == "archived"
            got[g].append(res["number"])
            if g == a:
                last_a = msgid
        res, _ = post(stack, a, sender=f"stranger{i}@example.com")
        assert res["status"] == "rejected"
        if held is None:
            res, held = post(stack, a, sender="held@example.org",
                             subject="held post")
            assert res["status"] == "held"
        res, _ = post(stack, a, extra=f"X-Loop: {a}@localhost\r\n")
        assert res["status"] == "dropped"
        raw, _ = message(a, msgid=last_a)
        assert inbound(stack, a, raw)["status"] == "duplicate"
    assert got == {a: [1, 2, 3], b: [1, 2, 3]}
    # the moderator approves by replying to the held notice
    notice = next(r[3] for r in outbox(stack, a, "notice")
                  if "held for approval" in r[3])
    approve = header(notice.encode(), "Reply-To")[0].strip("<>")
    raw, _ = message(a, sender="owner@example.org", subject="Re: held post",
                     body="approved\r\n")
    r = stack.post("messageserver", "/v1/inbound", {
        "mail_from": "owner@example.org", "rcpts": [approve],
        "client_addr": "127.0.0.1", "client_helo": "client.example",
        "cid": "posting-" + uuid.uuid4().hex[:8], "raw": b64url(raw)})
    assert r.status == 200, r
    assert r.json()["actions"][0]["status"] == "done", r.json()
    assert stack.sql("SELECT g.name, m.number FROM messages m JOIN groups g "
                     "ON g.id = m.group_id WHERE m.message_id = :'v1'",
                     held) == [[a, "4"]]
    for g, n in ((a, 4), (b, 3)):
        assert stack.sql("SELECT array_agg(m.number ORDER BY m.number)::text "
                         "FROM messages m JOIN groups g ON g.id = m.group_id "
                         "WHERE g.name = :'v1'", g) == [
            ["{" + ",".join(str(k) for k in range(1, n + 1)) + "}"]]
        assert stack.sql("SELECT c.message_count FROM group_counters c JOIN "
                         "groups g ON g.id = c.group_id WHERE "
                         "g.name = :'v1'", g) == [[str(n)]]


# ------------------------------------------------------------- /v1/posts

def web_post(stack, group, **kw):
    body = {"group": group, "from": "member@example.org",
            "from_name": "Web Poster", "subject": "from the web",
            "text": "posted on the web\n", "source": "web"}
    body.update(kw)
    return stack.post("messageserver", "/v1/posts", body)


def test_web_post_goes_through_the_same_pipeline(stack):
    g, _ = make_group(stack, [MEMBER])
    r = web_post(stack, g, subject="Caf\u00e9 opening", html="<p>hi</p>")
    assert r.status == 200, r
    m = r.json()["messages"][0]
    assert m["status"] == "archived" and m["number"] == 1
    row = stack.sql("SELECT source, subject, from_name, body_text, "
                    "message_id FROM messages WHERE topic_id = :'v1'",
                    m["topic_id"])[0]
    assert row[:4] == ["web", "Caf\u00e9 opening", "Web Poster",
                       "posted on the web\n"]
    # a reply threads by in_reply_to
    r = web_post(stack, g, subject="something else", in_reply_to=row[4])
    assert r.json()["messages"][0]["topic_id"] == m["topic_id"]
    # a stranger's web post meets the same policy
    r = web_post(stack, g, **{"from": "stranger@example.com"})
    assert r.json()["messages"][0]["status"] == "rejected"


def test_feed_post_with_message_id_is_idempotent(stack):
    g, _ = make_group(stack, [MEMBER])
    mid = f"feed-{uuid.uuid4().hex}@feeds.localhost"
    a = web_post(stack, g, source="feed", message_id=mid).json()
    b = web_post(stack, g, source="feed", message_id=mid).json()
    assert a["messages"][0]["status"] == "archived"
    assert b["messages"][0]["status"] == "duplicate"
    assert a["messages"][0]["number"] == b["messages"][0]["number"]


@pytest.mark.parametrize("body,status", [
    ({"group": "x"}, 400),
    ({"group": "x", "from": "a@b", "subject": "s", "text": "t",
      "source": "email"}, 400),
    ({"group": "x", "from": "nobody", "subject": "s", "text": "t",
      "source": "web"}, 400),
    ({"group": "x", "from": "a@b", "subject": "s", "text": "t",
      "source": "web", "extra": 1}, 400),
    ({"group": "no-such-group", "from": "a@b", "subject": "s", "text": "t",
      "source": "web"}, 404),
])
def test_web_post_refusals(stack, body, status):
    assert stack.post("messageserver", "/v1/posts", body).status == status


# ----------------------------------------------------------------- fan-out

def test_receivers_follow_delivery_settings(stack):
    members = [
        ("individual@example.org", {}),
        ("nomail@example.org", {"delivery": "no_email"}),
        ("digest@example.org", {"delivery": "full_digest"}),
        ("special@example.org", {"delivery": "special_only"}),
        ("bouncing@example.org", {"bounce": "bouncing"}),
        ("pending@example.org", {"status": "pending_confirmation"}),
        ("disabled@example.org", {"account_status": "disabled"}),
        ("muter@example.org", {}),
        ("tagmuter@example.org", {}),
        ("follower@example.org", {"following_only": "true"}),
        ("notfollowing@example.org", {"following_only": "true"}),
        ("member@example.org", {}),
    ]
    g, ids = make_group(stack, members)
    res, first = post(stack, g, subject="#plans for the week")
    topic = res["topic_id"]
    handed_over(stack, g)
    stack.sql("INSERT INTO topic_subscriptions (membership_id, topic_id, "
              "mode) VALUES (:'v1', :'v3', 'mute'), (:'v2', :'v3', 'follow')",
              ids["muter@example.org"], ids["follower@example.org"], topic)
    stack.sql("INSERT INTO hashtag_subscriptions (membership_id, hashtag_id, "
              "mode) SELECT :'v1', h.id, 'mute' FROM hashtags h JOIN groups g "
              "ON g.id = h.group_id WHERE g.name = :'v2' AND h.name = 'plans'",
              ids["tagmuter@example.org"], g)
    res, _ = post(stack, g, subject="Re: #plans for the week",
                  extra=f"In-Reply-To: <{first}>\r\n")
    assert res["topic_id"] == topic
    rows = handed_over(stack, g, n=2)
    assert karl_receivers(stack, f"post-{rows[1][0]}") == [
        "follower@example.org", "individual@example.org",
        "member@example.org"]
    # a special notice reaches special-only members too
    r = web_post(stack, g, special=True, subject="Special notice")
    assert r.json()["messages"][0]["status"] == "archived"
    rows = handed_over(stack, g, n=3)
    got = karl_receivers(stack, f"post-{rows[2][0]}")
    assert "special@example.org" in got and "digest@example.org" not in got


def test_large_group_goes_in_batches(stack):
    g, _ = make_group(stack, [MEMBER])
    stack.sql("WITH a AS (INSERT INTO accounts (email) SELECT "
              "'bulk' || i || '-' || :'v1' || '@example.net' FROM "
              "generate_series(1, 2500) AS i RETURNING id) "
              "INSERT INTO memberships (group_id, account_id) "
              "SELECT g.id, a.id FROM a, groups g WHERE g.name = :'v1'", g)
    res, _ = post(stack, g)
    assert res["status"] == "archived"
    rows = handed_over(stack, g, timeout=60)
    assert rows[0][2] == "2501"
    job = karl_job(stack, f"post-{rows[0][0]}")
    assert job["batches"] == 3 and job["complete"] is True
    assert job["receivers"] == 2501
    got = karl_receivers(stack, f"post-{rows[0][0]}")
    assert len(got) == len(set(got)) == 2501


def header(msg, name):
    """Unfolded values of header name in the bytes of msg."""
    head = msg.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    head = head.replace("\r\n ", " ").replace("\r\n\t", " ")
    return [line.split(":", 1)[1].strip() for line in head.split("\r\n")
            if line.lower().startswith(name.lower() + ":")]


def test_members_copy_has_list_headers(stack):
    g, _ = make_group(stack, [MEMBER], subject_tag="[Club]")
    raw, msgid = message(g, subject="Meeting notes", extra=(
        "List-Id: somebody else's list <other.example.net>\r\n"
        "Return-Path: <bogus@example.net>\r\nX-Custom: kept\r\n"))
    res = inbound(stack, g, raw)
    rows = handed_over(stack, g)
    msg = karl_message(stack, f"post-{rows[0][0]}")
    assert header(msg, "Subject") == ["[Club] Meeting notes"]
    assert header(msg, "List-Id") == [f"Group {g} <{g}.localhost>"]
    assert header(msg, "List-Post") == [f"<mailto:{g}@localhost>"]
    assert header(msg, "List-Help") == [f"<mailto:{g}+help@localhost>"]
    assert header(msg, "List-Subscribe") == [
        f"<mailto:{g}+subscribe@localhost>"]
    assert header(msg, "List-Archive")[0].endswith(f"/g/{g}>")
    assert header(msg, "Archived-At")[0].endswith(
        f"/g/{g}/message/{res['number']}>")
    assert header(msg, "Sender") == [f"<{g}+owner@localhost>"]
    assert header(msg, "Precedence") == ["list"]
    assert header(msg, "X-Loop") == [f"{g}@localhost"]
    assert header(msg, "Reply-To") == [f"<{g}@localhost>"]
    assert header(msg, "Return-Path") == []
    assert header(msg, "X-Custom") == ["kept"]
    assert header(msg, "Message-ID") == [f"<{msgid}>"]
    assert header(msg, "From") == ["Poster <member@example.org>"]
    assert msg.endswith(b"\r\n\r\nhello group\r\n")
    # no subject_tag: the subject stays as the poster wrote it
    g2, _ = make_group(stack, [MEMBER])
    raw, _ = message(g2, subject="Untagged")
    inbound(stack, g2, raw)
    rows2 = handed_over(stack, g2)
    assert header(karl_message(stack, f"post-{rows2[0][0]}"),
                  "Subject") == ["Untagged"]
    # a reply keeps one tag, not two
    raw, _ = message(g, subject="Re: [Club] Meeting notes",
                     extra=f"In-Reply-To: <{msgid}>\r\n")
    inbound(stack, g, raw)
    rows = handed_over(stack, g, n=2)
    msg = karl_message(stack, f"post-{rows[1][0]}")
    assert header(msg, "Subject") == ["Re: [Club] Meeting notes"]


def test_members_copy_of_a_post_without_a_blank_line(stack):
    """A header block that ends at a line that is no field, without the
    blank line (as Postfix and Python take it, the body starts there): the
    archive has that text as the body, and the members' copy gets the
    blank line, so the list's headers stay in its header block."""
    g, _ = make_group(stack, [MEMBER])
    raw, msgid = message(g, subject="no separator")
    head, _ = raw.split(b"\r\n\r\n", 1)
    raw = head + b"\r\nthis line is no header\r\nand the body goes on\r\n"
    assert inbound(stack, g, raw)["status"] == "archived"
    assert stack.sql("SELECT body_text FROM messages WHERE "
                     "message_id = :'v1'", msgid) == [
        ["this line is no header\nand the body goes on\n"]]
    rows = handed_over(stack, g)
    out = karl_message(stack, f"post-{rows[0][0]}")
    msg = email.message_from_bytes(out, policy=email.policy.default)
    assert msg.defects == []
    assert msg["List-Id"] == f"Group {g} <{g}.localhost>"
    assert msg["Subject"] == "no separator"
    assert msg.get_content().splitlines() == [
        "this line is no header", "and the body goes on"]
    assert out.endswith(b"\r\n\r\nthis line is no header\r\n"
                        b"and the body goes on\r\n")


@pytest.mark.parametrize("policy,dmarc,own,expected", [
    ("group", "never", False, ["<{g}@localhost>"]),
    ("group", "never", True, ["<{g}@localhost>"]),
    ("sender", "never", False, []),
    ("sender", "never", True, ["<home@example.net>"]),
    ("group_and_sender", "never", False,
     ["Poster <member@example.org>, <{g}@localhost>"]),
    ("group_and_sender", "never", True,
     ["Poster <member@example.org>, <{g}@localhost>"]),
    ("moderators", "never", False, ["<{g}+owner@localhost>"]),
    ("moderators", "never", True, ["<{g}+owner@localhost>"]),
    # From rewritten: the poster must be in Reply-To whatever the policy
    ("sender", "always", True, ["Poster <member@example.org>"]),
    ("moderators", "always", False,
     ["<{g}+owner@localhost>, Poster <member@example.org>"]),
])
def test_members_copy_reply_to_by_policy(stack, policy, dmarc, own, expected):
    """groups.reply_to as the members' copy shows it: group → the list;
    sender → nothing added (the poster's own Reply-To, if any, answers);
    group_and_sender → the poster and the list; moderators → the owners'
    address.  A poster's Reply-To is replaced except under sender."""
    g, _ = make_group(stack, [MEMBER], reply_to=policy, dmarc_rewrite=dmarc)
    raw, _ = message(g, extra="Reply-To: <home@example.net>\r\n"
                     if own else "")
    assert inbound(stack, g, raw)["status"] == "archived"
    rows = handed_over(stack, g)
    msg = karl_message(stack, f"post-{rows[0][0]}")
    assert header(msg, "Reply-To") == [e.format(g=g) for e in expected]


@pytest.mark.parametrize("sender,rewritten", [
    ("alice@reject.test", True),
    ("bob@quarantine.test", True),
    ("carol@none.test", False),
    ("dave@norecord.test", False),
    ("erin@mail.orgreject.test", True),     # sp=reject of the org domain
])
def test_dmarc_from_rewrite(stack, sender, rewritten):
    g, _ = make_group(stack, [(sender, {})], reply_to="group",
                      subject_tag="[T]")
    raw, _ = message(g, sender=sender, name="Pat Poster",
                     extra="DKIM-Signature: v=1; a=rsa-sha256; d=x; b=abc\r\n")
    assert inbound(stack, g, raw, mail_from=sender)["status"] == "archived"
    rows = handed_over(stack, g)
    msg = karl_message(stack, f"post-{rows[0][0]}")
    if rewritten:
        assert [f.replace('"', "") for f in header(msg, "From")] == [
            f"Pat Poster via Group {g} <{g}@localhost>"]
        assert header(msg, "Reply-To") == [
            f"Pat Poster <{sender}>, <{g}@localhost>"]
    else:
        assert header(msg, "From") == [f"Pat Poster <{sender}>"]
        assert header(msg, "Reply-To") == [f"<{g}@localhost>"]
    # the subject tag changed a signed header: the old signature goes
    assert header(msg, "DKIM-Signature") == []


def test_karl_down_then_up_hands_over_once(stack):
    g, _ = make_group(stack, [MEMBER, ("b@example.net", {})])
    sup = stack.supervisor_pid()
    assert sup
    import os
    import signal
    old = stack.pid("karl")
    # stop karl for a while: SIGSTOP makes it unreachable without a restart
    os.kill(old, signal.SIGSTOP)
    try:
        res, _ = post(stack, g)
        assert res["status"] == "archived"
        time.sleep(3)
        rows = outbox(stack, g, "post")
        assert rows[0][1] == "pending"
    finally:
        os.kill(old, signal.SIGCONT)
    rows = handed_over(stack, g, timeout=60)
    job = karl_job(stack, f"post-{rows[0][0]}")
    assert job["receivers"] == 2
    assert karl_receivers(stack, f"post-{rows[0][0]}") == [
        "b@example.net", "member@example.org"]


# ------------------------------------------------------ SMTP through nginx

def smtp(stack):
    return smtplib.SMTP("127.0.0.1", stack.ports["smtp_public"], timeout=20)


def test_smtp_member_post_and_reply_through_nginx(stack):
    g, _ = make_group(stack, [MEMBER])
    raw, first = message(g, subject="Walk on Sunday")
    with smtp(stack) as s:
        s.sendmail("member@example.org", [f"{g}@localhost"], raw)
        raw2, second = message(g, subject="Re: Walk on Sunday",
                               extra=f"In-Reply-To: <{first}>\r\n")
        s.sendmail("member@example.org", [f"{g}@localhost"], raw2)
    rows = stack.sql("SELECT m.number, m.topic_id, m.message_id FROM "
                     "messages m JOIN groups g ON g.id = m.group_id WHERE "
                     "g.name = :'v1' ORDER BY m.number", g)
    assert [r[0] for r in rows] == ["1", "2"]
    assert rows[0][1] == rows[1][1]
    assert [r[2] for r in rows] == [first, second]


def test_smtp_non_member_and_moderated_member_through_nginx(stack):
    g, _ = make_group(stack, [MEMBER, ("held@example.org",
                                       {"posting": "moderated"}),
                              ("owner@example.org", {"role": "owner"})])
    with smtp(stack) as s:
        raw, _ = message(g, sender="stranger@example.com")
        s.sendmail("stranger@example.com", [f"{g}@localhost"], raw)
        raw, held = message(g, sender="held@example.org")
        s.sendmail("held@example.org", [f"{g}@localhost"], raw)
    assert stack.sql("SELECT count(*) FROM messages m JOIN groups g ON "
                     "g.id = m.group_id WHERE g.name = :'v1'", g) == [["0"]]
    assert stack.sql("SELECT p.message_id, p.reason FROM pending_messages p "
                     "JOIN groups g ON g.id = p.group_id WHERE "
                     "g.name = :'v1'", g) == [[held, "moderated_member"]]
    rows = handed_over(stack, g, kind="notice", n=2)
    tos = sorted(r[4] for r in rows)
    assert any("stranger@example.com" in t for t in tos)
    assert any("owner@example.org" in t for t in tos)


def test_member_posting_from_an_alias_is_known_by_envelope(stack):
    g, _ = make_group(stack, [MEMBER])
    raw, _ = message(g, sender="alias@example.net")
    res = inbound(stack, g, raw, mail_from="member@example.org")
    assert res["status"] == "archived"


def test_messageserver_killed_during_fan_out_loses_nobody(make_stack):
    """kill -9 messageserver while a 2,501-receiver post is being handed
    to karl: after the restart (and the outbox lease), karl has every
    receiver exactly once."""
    st = make_stack(extra_conf={"messageserver_outbox_lease": 3})
    g, _ = make_group(st, [MEMBER])
    st.sql("WITH a AS (INSERT INTO accounts (email) SELECT "
           "'k' || i || '@example.net' FROM generate_series(1, 2500) AS i "
           "RETURNING id) INSERT INTO memberships (group_id, account_id) "
           "SELECT g.id, a.id FROM a, groups g WHERE g.name = :'v1'", g)
    old = st.pid("messageserver")
    res, _ = post(st, g)
    assert res["status"] == "archived"
    import os
    import signal
    os.kill(old, signal.SIGKILL)
    st.wait_new_pid("messageserver", old, timeout=15)
    rows = handed_over(st, g, timeout=60)
    job = f"post-{rows[0][0]}"
    got = karl_receivers(st, job)
    assert len(got) == len(set(got)) == 2501
    assert karl_job(st, job)["complete"] is True


def test_messageserver_stopped_then_started_archives_once(make_stack):
    """Through nginx: messageserver stops answering between RCPT and the
    end of DATA: 451 4.3.0; it resumes (and may finish the stalled request
    late); the sender's retry is a 250 and the group has the message once.
    """
    import os
    import signal
    st = make_stack(extra_conf={"http_timeout_ms": 2000})
    g, _ = make_group(st, [MEMBER])
    raw, msgid = message(g, subject="retried after a 451")
    ms = st.pid("messageserver")
    s = smtp(st)
    try:
        s.ehlo("client.example")
        assert s.mail("member@example.org")[0] == 250
        assert s.rcpt(f"{g}@localhost")[0] == 250
        os.kill(ms, signal.SIGSTOP)
        try:
            code, text = s.data(raw)
            assert code == 451 and b"4.3.0" in text, (code, text)
        finally:
            os.kill(ms, signal.SIGCONT)
    finally:
        s.close()
    # like an MTA: retry after a 4xx (the late request may still be
    # committing: a concurrent copy is 451 too, never a second message)
    codes = []
    for _ in range(20):
        with smtp(st) as s:
            try:
                s.sendmail("member@example.org", [f"{g}@localhost"], raw)
                codes.append(250)
                break
            except smtplib.SMTPDataError as e:
                assert e.smtp_code == 451, e
                codes.append(451)
        time.sleep(0.5)
    assert codes[-1] == 250, codes
    with smtp(st) as s:      # once more: a duplicate, taken and dropped
        s.sendmail("member@example.org", [f"{g}@localhost"], raw)
    assert st.sql("SELECT count(*) FROM messages m JOIN groups g ON "
                  "g.id = m.group_id WHERE g.name = :'v1' AND "
                  "m.message_id = :'v2'", g, msgid) == [["1"]]


def test_receivers_carry_signed_footer_data(stack):
    # addresses of this test only, so that their names are the ones set
    names = {f"{uniq('fa')}@example.org": "Zo\u00eb \"Z\" M\u00fcller",
             f"{uniq('fb')}@example.net": ""}
    g, ids = make_group(stack, [(e, {}) for e in names])
    for e, n in names.items():
        stack.sql("UPDATE accounts SET display_name = :'v2' WHERE "
                  "lower(email) = lower(:'v1')", e, n)
    res, _ = post(stack, g, sender=next(iter(names)))
    assert res["status"] == "archived"
    rows = handed_over(stack, g)
    r = stack.get("karl", f"/v1/jobs/post-{rows[0][0]}/receivers", auth=True)
    by_to = {x["to"]: x for x in r.json()["receivers"]}
    mid = stack.sql("SELECT m.id FROM messages m JOIN groups g ON "
                    "g.id = m.group_id WHERE g.name = :'v1'", g)[0][0]
    for email, membership in ids.items():
        rc = by_to[email]
        d = rc["data"]
        assert d["email"] == email and d["group"] == g
        assert d["name"] == names[email]
        aid = stack.sql("SELECT id FROM accounts WHERE email = :'v1'",
                        email)[0][0]
        assert rc["verp"] == f"{aid}.{mid}"
        assert d["message_url"].endswith(f"/g/{g}/message/{res['number']}")
        unsub = d["unsubscribe_url"].split("?t=", 1)[1]
        assert verify_token(stack, "unsubscribe", unsub) == membership
        assert d["unsubscribe_mailto"] == \
            f"mailto:{g}+unsubscribe-{unsub}@localhost"
        settings = d["settings_url"].split("?t=", 1)[1]
        assert verify_token(stack, "settings", settings) == membership
        # a token for one purpose is no good for another
        assert verify_token(stack, "settings", unsub) is None


# ------------------------------------------------- karl's bounce reports

def test_karl_bounce_report_is_stored_once(stack):
    g, _ = make_group(stack, [MEMBER, ("gone@example.net", {})])
    res, msgid = post(stack, g)
    rows = handed_over(stack, g)
    job = f"post-{rows[0][0]}"
    r = stack.get("karl", f"/v1/jobs/{job}/receivers", auth=True)
    verp = next(x["verp"] for x in r.json()["receivers"]
                if x["to"] == "gone@example.net")
    report = {"job": job, "rcpt": "gone@example.net", "verp": verp,
              "code": 550, "status": "5.1.1",
              "diagnostic": "550 5.1.1 <gone@example.net>: no such user"}
    r = stack.post("messageserver", "/v1/bounces", report)
    assert r.status == 200 and r.json()["status"] == "recorded", r
    r = stack.post("messageserver", "/v1/bounces", report)
    assert r.status == 200 and r.json()["status"] == "duplicate", r
    rows = stack.sql("SELECT a.email, g.name, b.type, b.source, "
                     "b.dsn_status, b.original_message_id, b.diagnostic "
                     "FROM bounce_events b JOIN accounts a ON "
                     "a.id = b.account_id JOIN groups g ON g.id = b.group_id "
                     "WHERE b.karl_job = :'v1'", job)
    assert rows == [["gone@example.net", g, "hard", "karl", "5.1.1", msgid,
                     report["diagnostic"]]]
    # a notice's receiver (no member VERP) aged out: soft, by address;
    # its outbox row is gone, so no group
    r = stack.post("messageserver", "/v1/bounces", {
        "job": "notice-x1", "rcpt": "Gone@Example.net",
        "verp": "n999999999",
        "code": 0, "status": "", "diagnostic": "gave up after 5 days"})
    assert r.status == 200
    assert stack.sql("SELECT type, account_id IS NOT NULL, group_id IS NULL "
                     "FROM bounce_events WHERE karl_job = 'notice-x1'") == [
        ["soft", "t", "t"]]


@pytest.mark.parametrize("body", [
    {},
    {"job": "j", "rcpt": "no-at-sign", "verp": "", "code": 550,
     "status": "", "diagnostic": ""},
    {"job": "j", "rcpt": "a@b", "verp": "", "code": 9999, "status": "",
     "diagnostic": ""},
    {"job": "", "rcpt": "a@b", "verp": "", "code": 550, "status": "",
     "diagnostic": ""},
    {"job": "j", "rcpt": "a@b", "verp": "", "code": 550, "status": "",
     "diagnostic": "", "extra": 1},
])
def test_karl_bounce_report_refusals(stack, body):
    assert stack.post("messageserver", "/v1/bounces", body).status == 400
