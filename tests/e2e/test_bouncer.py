# SPDX-License-Identifier: MIT
"""The bouncer cron job and the restore link, end to end.

A history is seeded in SQL (accounts, memberships, bounce_state and
bounce_events at chosen ages through received_at), build/bin/bouncer runs
against the stack's configuration as cron runs it, and what it changed is
read back from the database; the probes and the moderators' notices are
read where karl delivered them, an aiosmtpd sink on the stack's relay
port.  The restore link is followed through nginx.  Every test makes its
own accounts and groups and looks only at them, since each run of the job
sees the whole database."""
import base64
import hashlib
import hmac
import os
import pty
import re
import select
import subprocess
import time
import urllib.parse
import uuid
from email import message_from_bytes
from email.policy import default as default_policy

import pytest
from aiosmtpd.controller import Controller

from mailtest import Sink, verify_short_token, verify_token
from stack import Stack, bin_dir, free_ports, wait_for

DOMAIN = "localhost"
PROBES = 3          # the stack's bounce_probes (default)
PROBE_DAYS = 7      # bounce_probe_days
SOFT_DAYS = 7       # bounce_soft_days
EVENT_DAYS = 90     # bounce_event_days


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


def account(st, prefix="m", state=None):
    """A new active account; state: bounce_state columns (SQL text values
    or expressions given as ("sql", expr)).  Returns (id, email)."""
    email = f"{uniq(prefix)}@example.org"
    aid = st.sql("INSERT INTO accounts (email, status) VALUES (:'v1', "
                 "'active') RETURNING id", email)[0][0]
    if state is not None:
        cols = ["account_id"] + list(state)
        vals = [aid] + [v for v in state.values()]
        st.sql(f"INSERT INTO bounce_state ({', '.join(cols)}) VALUES "
               f"({', '.join(vals)})")
    return aid, email


def group(st, members, title=None):
    """A group with members [(account id, role)]; returns (id, name)."""
    name = uniq("bg")
    gid = st.sql("INSERT INTO groups (domain, name, title) VALUES "
                 "(:'v1', :'v2', :'v3') RETURNING id", DOMAIN, name,
                 title if title is not None else f"Group {name}")[0][0]
    for aid, role in members:
        st.sql("INSERT INTO memberships (group_id, account_id, role, status, "
               "joined_at) VALUES (:'v1', :'v2', :'v3', 'active', now())",
               gid, aid, role)
    return gid, name


def event(st, aid, days, type_="soft", counts=True, gid=None):
    """A bounce event of account aid received days ago."""
    email = st.sql("SELECT email FROM accounts WHERE id = :'v1'", aid)[0][0]
    st.sql("INSERT INTO bounce_events (account_id, email, group_id, "
           "received_at, type, source, counts) VALUES (:'v1', :'v2', "
           "nullif(:'v3', '')::bigint, now() - make_interval(secs => "
           ":'v4'::float8 * 86400), :'v5', 'dsn', :'v6')", aid, email,
           gid or "", days, type_, "true" if counts else "false")


def state(st, aid):
    """bounce_state of aid as a dict, or None without a row."""
    rows = st.sql("SELECT status, probes_sent, coalesce(bouncing_since::text,"
                  " ''), coalesce(bounced_at::text, ''), coalesce("
                  "last_probe_at::text, ''), coalesce(ok_since::text, '') "
                  "FROM bounce_state WHERE account_id = :'v1'", aid)
    if not rows:
        return None
    r = rows[0]
    return {"status": r[0], "probes_sent": int(r[1]), "bouncing_since": r[2],
            "bounced_at": r[3], "last_probe_at": r[4], "ok_since": r[5]}


def ago(days):
    """SQL for a time days ago."""
    return f"now() - interval '{days} days'"


def run_bouncer(st, *extra, **kw):
    r = subprocess.run([str(bin_dir() / "bouncer"), "-f", str(st.conf),
                        *extra], capture_output=True, text=True, timeout=120,
                       **kw)
    assert r.returncode == 0, r.stderr
    return r


def notices_to(st, email):
    """Outbox notice rows that have email among their receivers:
    [id, group id, status, receivers text]."""
    return st.sql("SELECT id, group_id, status, receivers::text FROM outbox "
                  "WHERE kind = 'notice' AND receivers @> jsonb_build_array("
                  "jsonb_build_object('to', :'v1'::text)) ORDER BY id", email)


def outbox_idle(st):
    """No notice waits in the outbox (the fan-out has given all to karl)."""
    return not st.sql("SELECT 1 FROM outbox WHERE status = 'pending' "
                      "LIMIT 1")


def mail_for(sink, email):
    with sink.lock:
        return list(sink.got.get(email, []))


def wait_mail(sink, email, n=1, timeout=30):
    got = wait_for(lambda: len(mail_for(sink, email)) >= n, timeout)
    assert got, f"no mail for {email}"
    return mail_for(sink, email)


def parse(data):
    return message_from_bytes(data, policy=default_policy)


def sign_token(st, purpose, payload, expires):
    """A token.h token under the stack's secret (as token_sign makes)."""
    secret = (st.var / "secret").read_bytes().rstrip()
    key = hmac.new(secret, purpose.encode(), hashlib.sha256).digest()
    mac = hmac.new(key, f"{purpose}\n{payload}\n{expires}".encode(),
                   hashlib.sha256).digest()

    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    return f"{b64(payload.encode())}.{expires}.{b64(mac)}"


def restore_path(token):
    return "/bounce?t=" + urllib.parse.quote(token, safe="")


# -------------------------------------------------------------------- tests

def test_soft_bounces_that_persist_make_bouncing(bst):
    st, sink = bst
    persist, _ = account(st, "persist")      # 10 days of soft bounces
    known, _ = account(st, "known", {"status": "'ok'"})    # a state row
    recent, _ = account(st, "recent")        # only the last 2 days
    nocount, _ = account(st, "nocount")      # caused by the message
    stopped, _ = account(st, "stopped")      # old, nothing recent
    gapped, _ = account(st, "gapped")        # a new run began 2 days ago
    steady, _ = account(st, "steady")        # every 6 days for 13 days
    restored, _ = account(st, "restored", {  # restored 3 days ago
        "status": "'ok'", "ok_since": ago(3)})
    gid, _ = group(st, [(a, "member") for a in
                        (persist, known, recent, nocount, stopped,
                         gapped, steady, restored)])
    for d in (10, 5, 1):
        event(st, persist, d, gid=gid)
    for d in (SOFT_DAYS + 0.1, 2.5):
        event(st, known, d, gid=gid)
    for d in (2, 1):
        event(st, recent, d, gid=gid)
    for d in (12, 8, 4, 1):
        event(st, nocount, d, counts=False, gid=gid)
    for d in (20, 10):
        event(st, stopped, d, gid=gid)
    for d in (20, 12, 2):
        event(st, gapped, d, gid=gid)
    for d in (13, 7, 1):
        event(st, steady, d, gid=gid)
    for d in (12, 8, 5, 1):     # a run, but mostly before the restore
        event(st, restored, d, gid=gid)
    event(st, recent, 1, type_="hard", counts=False, gid=gid)

    run_bouncer(st)
    s = state(st, persist)
    assert s and s["status"] == "bouncing" and s["bouncing_since"], s
    s = state(st, known)
    assert s["status"] == "bouncing" and s["bouncing_since"], s
    assert state(st, recent) is None
    assert state(st, nocount) is None
    assert state(st, stopped) is None
    assert state(st, gapped) is None
    assert state(st, steady)["status"] == "bouncing"
    assert state(st, restored)["status"] == "ok"


def test_probe_through_karl_and_once_a_period(bst):
    st, sink = bst
    aid, email = account(st, "probe", {"status": "'bouncing'",
                                       "bouncing_since": ago(1)})
    first, g1 = group(st, [(aid, "member")], title="Älvsjö ringers")
    other, g2 = group(st, [(aid, "member")])
    event(st, aid, 2, type_="hard", gid=other)
    event(st, aid, 1, type_="hard", gid=first)      # latest: sends
    # a second probe is due after bounce_probe_days, not before; none
    # beyond bounce_probes
    due, due_email = account(st, "due", {
        "status": "'bouncing'", "probes_sent": "1",
        "last_probe_at": ago(PROBE_DAYS) + " + interval '5 minutes'"})
    early, early_email = account(st, "early", {
        "status": "'bouncing'", "probes_sent": "1",
        "last_probe_at": ago(PROBE_DAYS - 1)})
    done, done_email = account(st, "done", {
        "status": "'bouncing'", "probes_sent": str(PROBES),
        "last_probe_at": ago(2)})
    group(st, [(due, "member"), (early, "member"), (done, "member")])

    run_bouncer(st)
    s = state(st, aid)
    assert s["status"] == "bouncing" and s["probes_sent"] == 1, s
    assert s["last_probe_at"]
    assert state(st, due)["probes_sent"] == 2
    assert state(st, early)["probes_sent"] == 1
    assert state(st, done)["probes_sent"] == PROBES
    assert state(st, done)["status"] == "bouncing"
    assert len(notices_to(st, email)) == 1
    assert len(notices_to(st, due_email)) == 1
    assert notices_to(st, early_email) == []
    assert notices_to(st, done_email) == []

    got = wait_mail(sink, email)
    assert len(got) == 1
    mail_from, data = got[0]
    # VERP: bounces+<short token with payload p<account>>@domain, the
    # domain of the group of the latest bounce
    local, dom = mail_from.rsplit("@", 1)
    assert dom == DOMAIN and local.startswith("bounces+"), mail_from
    token = local[len("bounces+"):]
    assert verify_short_token(st, "verp", token) == f"p{aid}"
    m = parse(data)
    assert m["To"] == email
    assert m["From"].addresses[0].addr_spec == f"{g1}+owner@{DOMAIN}"
    assert m["From"].addresses[0].display_name == "Älvsjö ringers"
    assert m["Auto-Submitted"] == "auto-generated"
    assert m["Message-ID"] and m["Date"] and m["MIME-Version"] == "1.0"
    assert m.get_content_type() == "text/plain"
    assert m.get_content_charset() == "utf-8"
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
    body = m.get_content()
    assert email in body
    assert f"Älvsjö ringers ({g1}@{DOMAIN})" in body
    assert f"Group {g2} ({g2}@{DOMAIN})" in body
    link = re.search(r"https://\S+/bounce\?t=(\S+)", body)
    assert link, body
    assert link.group(0).startswith(
        f"https://localhost:{st.ports['web_public']}/bounce?t=")
    assert verify_token(st, "bounce", link.group(1)) == aid
    expires = int(link.group(1).split(".")[1])
    days = (expires - time.time()) / 86400
    assert PROBES * PROBE_DAYS < days < PROBES * PROBE_DAYS + 30, days
    wait_mail(sink, due_email)

    # the same day again: nothing more queued, nothing more delivered
    before = state(st, aid)
    run_bouncer(st)
    assert state(st, aid) == before
    assert state(st, due)["probes_sent"] == 2
    assert len(notices_to(st, email)) == 1
    assert len(notices_to(st, due_email)) == 1
    assert wait_for(lambda: outbox_idle(st), 30)
    assert len(mail_for(sink, email)) == 1
    assert len(mail_for(sink, due_email)) == 1

    # the probe's own link restores delivery (POST through nginx)
    r = st.https("POST", restore_path(urllib.parse.unquote(link.group(1))))
    assert r.status == 200 and "Delivery restored" in r.text, r
    assert state(st, aid)["status"] == "ok"


def test_two_runs_at_once_send_one_probe(bst):
    st, sink = bst
    aid, email = account(st, "twice", {"status": "'bouncing'"})
    group(st, [(aid, "member")])
    procs = [subprocess.Popen([str(bin_dir() / "bouncer"), "-f",
                               str(st.conf)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert state(st, aid)["probes_sent"] == 1
    assert len(notices_to(st, email)) == 1
    wait_mail(sink, email)
    assert wait_for(lambda: outbox_idle(st), 30)
    assert len(mail_for(sink, email)) == 1


def test_unanswered_probes_make_bounced_and_tell_moderators(bst):
    st, sink = bst
    old = ago(PROBE_DAYS) + " - interval '1 minute'"
    x, x_email = account(st, "gone", {
        "status": "'bouncing'", "probes_sent": str(PROBES),
        "last_probe_at": old})
    y, y_email = account(st, "gonetoo", {
        "status": "'bouncing'", "probes_sent": str(PROBES),
        "last_probe_at": old})
    # its last probe is recent: it keeps its chance
    z, z_email = account(st, "waiting", {
        "status": "'bouncing'", "probes_sent": str(PROBES),
        "last_probe_at": ago(3)})
    owner, owner_email = account(st, "owner")
    mod, mod_email = account(st, "mod")
    deadmod, deadmod_email = account(st, "deadmod", {"status": "'bounced'"})
    plain, plain_email = account(st, "plain")
    k, kname = group(st, [(owner, "owner"), (mod, "moderator"),
                          (deadmod, "moderator"), (plain, "member"),
                          (x, "member"), (y, "member"), (z, "member")])
    owner2, owner2_email = account(st, "owner2")
    k2, k2name = group(st, [(owner2, "owner"), (x, "member")])

    run_bouncer(st)
    for a in (x, y):
        s = state(st, a)
        assert s["status"] == "bounced" and s["bounced_at"], s
    assert state(st, z)["status"] == "bouncing"

    n = notices_to(st, owner_email)
    assert len(n) == 1 and n[0][1] == k, n
    # the same notice row (its status moves on as the fan-out sends it)
    assert [r[0] for r in notices_to(st, mod_email)] == [n[0][0]]
    assert notices_to(st, deadmod_email) == []
    assert notices_to(st, plain_email) == []
    n2 = notices_to(st, owner2_email)
    assert len(n2) == 1 and n2[0][1] == k2

    for who in (owner_email, mod_email):
        got = wait_mail(sink, who)
        assert len(got) == 1
        m = parse(got[0][1])
        assert m["From"].addresses[0].addr_spec == f"{kname}+owner@{DOMAIN}"
        assert m["Auto-Submitted"] == "auto-generated"
        assert "2 members marked as bounced" in m["Subject"]
        body = m.get_content()
        assert x_email in body and y_email in body and z_email not in body
    body2 = parse(wait_mail(sink, owner2_email)[0][1]).get_content()
    assert x_email in body2 and y_email not in body2

    # again: no second notice, no change
    before = [state(st, a) for a in (x, y, z)]
    run_bouncer(st)
    assert [state(st, a) for a in (x, y, z)] == before
    assert len(notices_to(st, owner_email)) == 1
    assert len(notices_to(st, owner2_email)) == 1
    assert wait_for(lambda: outbox_idle(st), 30)
    assert len(mail_for(sink, owner_email)) == 1
    assert len(mail_for(sink, deadmod_email)) == 0


def test_old_events_age_out(bst):
    st, sink = bst
    aid, _ = account(st, "aged")
    for d in (EVENT_DAYS + 5, EVENT_DAYS + 0.1, EVENT_DAYS - 0.1, 3):
        event(st, aid, d, counts=False)
    run_bouncer(st)
    left = st.sql("SELECT round(extract(epoch FROM now() - received_at) / "
                  "86400) FROM bounce_events WHERE account_id = :'v1' "
                  "ORDER BY received_at", aid)
    assert [int(float(r[0])) for r in left] == [EVENT_DAYS, 3]


def test_restore_link(bst):
    st, sink = bst
    aid, email = account(st, "back", {
        "status": "'bounced'", "probes_sent": str(PROBES),
        "bouncing_since": ago(30), "bounced_at": ago(2),
        "last_probe_at": ago(9)})
    group(st, [(aid, "member")])
    tok = sign_token(st, "bounce", aid, int(time.time()) + 86400)
    before = state(st, aid)

    # GET (what a scanner does) only asks
    r = st.https("GET", restore_path(tok))
    assert r.status == 200, r
    assert email in r.text and "<form method=\"post\"" in r.text
    assert "Restore delivery</button>" in r.text
    assert state(st, aid) == before

    # forged and expired tokens change nothing
    forged = tok[:-2] + ("AA" if not tok.endswith("AA") else "BB")
    other = sign_token(st, "unsubscribe", aid, int(time.time()) + 86400)
    for bad in (forged, other, "garbage", ""):
        r = st.https("POST", restore_path(bad))
        assert r.status == 400 and "Not a valid link" in r.text, (bad, r)
    expired = sign_token(st, "bounce", aid, int(time.time()) - 10)
    r = st.https("POST", restore_path(expired))
    assert r.status == 400 and "expired" in r.text
    r = st.https("GET", restore_path(forged))
    assert r.status == 400
    assert state(st, aid) == before
    assert st.sql("SELECT count(*) FROM activity_log WHERE actor_id = "
                  ":'v1'", aid) == [["0"]]

    r = st.https("POST", restore_path(tok))
    assert r.status == 200 and "Delivery restored" in r.text, r
    s = state(st, aid)
    assert s["status"] == "ok" and s["probes_sent"] == 0, s
    assert not s["bouncing_since"] and not s["bounced_at"] and s["ok_since"]
    log = st.sql("SELECT action, details->>'was' FROM activity_log WHERE "
                 "actor_id = :'v1'", aid)
    assert log == [["member.bounce_restore", "bounced"]]

    # a second POST finds nothing to do and logs nothing
    r = st.https("POST", restore_path(tok))
    assert r.status == 200 and "nothing to restore" in r.text
    assert len(st.sql("SELECT 1 FROM activity_log WHERE actor_id = :'v1'",
                      aid)) == 1


def test_progress_on_a_terminal_and_summary(bst):
    st, sink = bst
    aid, _ = account(st, "tty", {"status": "'bouncing'"})
    group(st, [(aid, "member")])
    n_before = len(st.errord_events(daemon="bouncer",
                                    text="candidate(s) examined",
                                    limit=1000))
    master, slave = pty.openpty()
    p = subprocess.Popen([str(bin_dir() / "bouncer"), "-f", str(st.conf)],
                         stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1)
        if not ready:
            if p.poll() is not None:
                break
            continue
        try:
            chunk = os.read(master, 4096)
        except OSError:         # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert p.wait(timeout=30) == 0
    text = out.decode()
    for phase in ("soft", "probe", "bounced", "age out"):
        assert re.search(rf"bouncer: {phase}\s+\[[#.]{{20}}\] \d+/\d+ \w+",
                         text), text
    m = re.search(r"bouncer: probe\s+\[#{20}\] (\d+)/(\d+) accounts, (\d+) "
                  r"probes sent", text)
    assert m and int(m.group(3)) >= 1, text
    assert state(st, aid)["probes_sent"] == 1

    # without a terminal: no progress, and one summary line in the log
    r = run_bouncer(st)
    assert "bouncer: soft" not in r.stderr and "\r" not in r.stderr
    evs = wait_for(lambda: len(st.errord_events(
        daemon="bouncer", text="candidate(s) examined", limit=1000))
        >= n_before + 2, 10)
    assert evs, "no summary lines in errord"
    ev = max(st.errord_events(daemon="bouncer", text="candidate(s) examined",
                              limit=1000), key=lambda e: e["time"])
    assert ev["level"] == "info"
    assert re.search(r"\d+ candidate\(s\) examined: \d+ now bouncing, \d+ "
                     r"probe\(s\) sent, .*\d+ bounced, \d+ moderator "
                     r"notice\(s\), \d+ old event\(s\) deleted$",
                     ev["message"]), ev


def test_database_down_exits_1_with_summary(bst, tmp_path):
    st, sink = bst
    port = free_ports(1)[0]
    bad = tmp_path / "nodb.conf"
    bad.write_text(re.sub(r"(?m)^db_conninfo = .*$",
                          f"db_conninfo = host=127.0.0.1 port={port} "
                          "dbname=groups connect_timeout=2",
                          st.conf.read_text()))
    r = subprocess.run([str(bin_dir() / "bouncer"), "-f", str(bad), "-d"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    assert re.search(r"bouncer: 0 candidate\(s\) examined: .* "
                     r"\(incomplete\)\n", r.stderr), r.stderr


# ----------------------------------------------------- non-default settings

def run_bouncer_with(st, tmp_path, **keys):
    """The bouncer with the stack's configuration plus keys (bounce_*
    settings the stack leaves at their defaults), as cron would run it
    with another groups.conf."""
    conf = tmp_path / f"bouncer-{uuid.uuid4().hex[:6]}.conf"
    text = st.conf.read_text()
    for k in keys:
        assert not re.search(rf"(?m)^{k}\s*=", text), k
    conf.write_text(text + "\n" + "".join(f"{k} = {v}\n"
                                          for k, v in keys.items()))
    r = subprocess.run([str(bin_dir() / "bouncer"), "-f", str(conf)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r


def test_soft_days_setting_moves_the_threshold(bst, tmp_path):
    """bounce_soft_days = 3: a run of soft bounces that began 4 days ago
    is enough (not with 7), and a quiet spell of 4 days ends a run (not
    with 7); the same history judged again with the default agrees with
    the default."""
    st, _ = bst
    short, _ = account(st, "short")      # 4, 2 and 0.5 days ago
    young, _ = account(st, "young")      # a run of 2.5 days: too young
    spaced, _ = account(st, "spaced")    # every 4 days since 9 days ago
    gid, _ = group(st, [(a, "member") for a in (short, young, spaced)])
    for d in (4, 2, 0.5):
        event(st, short, d, gid=gid)
    for d in (2.5, 1):
        event(st, young, d, gid=gid)
    for d in (9, 5, 1):
        event(st, spaced, d, gid=gid)

    run_bouncer_with(st, tmp_path, bounce_soft_days=3)
    assert state(st, short)["status"] == "bouncing"
    assert state(st, young) is None
    assert state(st, spaced) is None
    # with the default (7) the first would not have been paused yet, and
    # the third's bounces are one run that began 9 days ago
    run_bouncer(st)
    assert state(st, young) is None
    assert state(st, spaced)["status"] == "bouncing"


def test_probe_settings_move_the_thresholds(bst, tmp_path):
    """bounce_probes = 1, bounce_probe_days = 2: one probe ("check 1 of
    1", its link valid 1 x 2 + 14 days), then bounced 2 days later when it
    goes unanswered, and the moderators' notice says so."""
    st, sink = bst
    fresh, fresh_email = account(st, "one", {"status": "'bouncing'"})
    # its one probe 2 days old: marked bounced (with the defaults it
    # would wait 7 days and then get a second probe)
    spent, spent_email = account(st, "spent", {
        "status": "'bouncing'", "probes_sent": "1",
        "last_probe_at": ago(2) + " - interval '1 minute'"})
    # one probe a day old: still its chance
    recent, _ = account(st, "fresh", {
        "status": "'bouncing'", "probes_sent": "1",
        "last_probe_at": ago(1)})
    owner, owner_email = account(st, "owner")
    _, gname = group(st, [(owner, "owner"), (fresh, "member"),
                          (spent, "member"), (recent, "member")])
    keys = {"bounce_probes": 1, "bounce_probe_days": 2}

    run_bouncer_with(st, tmp_path, **keys)
    assert state(st, spent)["status"] == "bounced"
    assert state(st, recent)["status"] == "bouncing"
    assert state(st, recent)["probes_sent"] == 1
    s = state(st, fresh)
    assert s["status"] == "bouncing" and s["probes_sent"] == 1, s
    body = parse(wait_mail(sink, fresh_email)[0][1]).get_content()
    assert "This is check 1 of 1." in " ".join(body.split()), body
    tok = re.search(r"/bounce\?t=(\S+)", body).group(1)
    days = (int(tok.split(".")[1]) - time.time()) / 86400
    assert 1 * 2 + 13 < days < 1 * 2 + 15, days
    notice = parse(wait_mail(sink, owner_email)[0][1])
    assert "1 member marked as bounced" in notice["Subject"]
    text = " ".join(notice.get_content().split())
    assert spent_email in text and fresh_email not in text
    assert "after 1 check over 2 days" in text, text
    assert len(notices_to(st, spent_email)) == 0   # no second probe

    # two days on, the one probe unanswered: bounced, without another
    st.sql("UPDATE bounce_state SET last_probe_at = last_probe_at - "
           "interval '2 days' WHERE account_id = :'v1'", fresh)
    run_bouncer_with(st, tmp_path, **keys)
    s = state(st, fresh)
    assert s["status"] == "bounced" and s["probes_sent"] == 1, s
    assert len(notices_to(st, fresh_email)) == 1
    assert len(wait_mail(sink, owner_email, 2)) == 2


def test_event_days_setting_ages_out_sooner(bst, tmp_path):
    st, _ = bst
    aid, _ = account(st, "agedten")
    for d in (12, 10.1, 9, 3):
        event(st, aid, d, counts=False)
    run_bouncer(st)                 # 90 days: all stay
    assert len(st.sql("SELECT 1 FROM bounce_events WHERE account_id = "
                      ":'v1'", aid)) == 4
    run_bouncer_with(st, tmp_path, bounce_event_days=10)
    left = st.sql("SELECT round(extract(epoch FROM now() - received_at) / "
                  "86400) FROM bounce_events WHERE account_id = :'v1' "
                  "ORDER BY received_at", aid)
    assert [int(float(r[0])) for r in left] == [9, 3]


# ------------------------------------------------ bounced: no mail at all

def post_to(st, sink, gname, sender, wait_for_addr):
    """A post from member sender to gname through /v1/inbound; waits until
    its outbox row is done and wait_for_addr has its copy.  Returns the
    Message-ID."""
    msgid = f"{uuid.uuid4().hex}@example.org"
    raw = (f"From: <{sender}>\r\nTo: {gname}@{DOMAIN}\r\nSubject: news\r\n"
           f"Message-ID: <{msgid}>\r\n\r\nhello\r\n").encode()
    r = st.post("messageserver", "/v1/inbound", {
        "mail_from": sender, "rcpts": [f"{gname}@{DOMAIN}"],
        "client_addr": "127.0.0.1", "client_helo": "c",
        "raw": base64.urlsafe_b64encode(raw).rstrip(b"=").decode()})
    res = r.json()["messages"][0]
    assert res["status"] == "archived", res
    assert wait_for(lambda: st.sql(
        "SELECT o.status FROM outbox o JOIN messages m ON m.id = "
        "o.message_id WHERE m.message_id = :'v1'", msgid) == [["done"]], 30)
    assert wait_for(lambda: any(msgid.encode() in d for _, d in
                                mail_for(sink, wait_for_addr)), 30)
    return msgid


def test_bounced_by_the_bouncer_gets_nothing_from_any_group(bst):
    """Bounce state is the account's: once the bouncer marks it bounced,
    neither of its two groups sends it a post."""
    st, sink = bst
    x, x_email = account(st, "twogroups", {
        "status": "'bouncing'", "probes_sent": str(PROBES),
        "last_probe_at": ago(PROBE_DAYS) + " - interval '1 minute'"})
    a1, a1_email = account(st, "peer1")
    a2, a2_email = account(st, "peer2")
    _, g1 = group(st, [(a1, "owner"), (x, "member")])
    _, g2 = group(st, [(a2, "owner"), (x, "member")])
    run_bouncer(st)
    assert state(st, x)["status"] == "bounced"
    ids = [post_to(st, sink, g, peer, peer) for g, peer in
           ((g1, a1_email), (g2, a2_email))]
    assert not any(i.encode() in d for i in ids
                   for _, d in mail_for(sink, x_email))
    assert st.sql("SELECT sum(o.receivers_sent) FROM outbox o JOIN "
                  "messages m ON m.id = o.message_id WHERE m.message_id IN "
                  "(:'v1', :'v2')", *ids) == [["2"]]
    # restored, the next post of either group reaches it again
    st.sql("UPDATE bounce_state SET status = 'ok', bounced_at = NULL, "
           "ok_since = now() WHERE account_id = :'v1'", x)
    post_to(st, sink, g2, a2_email, x_email)
