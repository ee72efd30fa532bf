# SPDX-License-Identifier: MIT
"""test_karl_intake.py - karl's intake API against the real karl.

POST /v1/send takes a job in batches: each is answered 202 only once it is
synced to the spool, a batch sent again is a 202 "duplicate" that changes
nothing, batches out of order or after the last are 409, malformed bodies
400 and callers without the API secret 401.  GET /v1/jobs/{id} counts the
receivers and GET /v1/jobs/{id}/receivers lists them.  A karl killed with
SIGKILL right after a 202 comes back (groups-supervise restarts it) with
the job and every receiver still there.  A message larger than the default
body bound goes through (the route has its own bound).  The C client
(karl_clnt_send) is driven against this karl through the unit test
program's real-karl case.
"""
import base64
import os
import re
import signal
import subprocess
import threading
import uuid

import pytest

from stack import bin_dir

MESSAGE = (b"From: demo@lists.example\r\nTo: demo@lists.example\r\n"
           b"Subject: caf\xe9\r\n\r\n8-bit body \xff\r\n")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_job():
    return "t:" + uuid.uuid4().hex


# karl delivers as soon as it holds a batch (to the stack's relay port,
# where nothing may listen): a receiver is in one of these states
STATES = ("queued", "sent", "deferred", "failed")


def accounted(job):
    """Receivers of a job status in any state."""
    return sum(job[k] for k in STATES)


def receivers(n, start=0, domain="example.org"):
    return [{"to": f"r{i}@{domain}", "verp": f"{i}",
             "data": {"name": f"Receiver {i}",
                      "unsubscribe_url": f"https://x.example/u/{i}"}}
            for i in range(start, start + n)]


def batch0(job, rcpts, last=True, message=MESSAGE, kind="post"):
    return {"job": job, "batch": 0, "last": last, "kind": kind,
            "message": b64url(message),
            "footer": {"text": "-- \n{{unsubscribe_url}}",
                       "html": "<p>{{group}}</p>"},
            "sender": {"local": "demo+bounces", "domain": "lists.example"},
            "sign_domain": "lists.example",
            "receivers": rcpts}


def later(job, n, rcpts, last=False, kind="post"):
    return {"job": job, "batch": n, "last": last, "kind": kind,
            "receivers": rcpts}


def send(stack, body, **kw):
    return stack.post("karl", "/v1/send", body, **kw)


def status(stack, job):
    return stack.get("karl", f"/v1/jobs/{job}", auth=True)


def listing(stack, job):
    return stack.get("karl", f"/v1/jobs/{job}/receivers", auth=True)


def metric(stack, name):
    text = stack.get("karl", "/metrics").text
    m = re.search(rf"^{name}(?:{{[^}}]*}})? (\d+)$", text, re.M)
    return int(m.group(1)) if m else 0


def test_send_then_duplicate(stack):
    job = new_job()
    body = batch0(job, receivers(2))
    r = send(stack, body)
    assert r.status == 202, r
    assert r.json() == {"job": job, "batch": 0, "receivers": 2,
                        "duplicate": False}
    r = send(stack, body)
    assert r.status == 202, r
    assert r.json()["duplicate"] is True
    assert r.json()["receivers"] == 2
    s = status(stack, job)
    assert s.status == 200, s
    j = s.json()
    assert {k: j[k] for k in ("job", "kind", "batches", "complete",
                              "receivers")} == {
        "job": job, "kind": "post", "batches": 1, "complete": True,
        "receivers": 2}
    assert accounted(j) == 2


def test_message_as_held(stack):
    job = new_job()
    assert send(stack, batch0(job, receivers(1))).status == 202
    r = stack.get("karl", f"/v1/jobs/{job}/message", auth=True)
    assert r.status == 200 and r.body == MESSAGE
    assert r.headers.get("Content-Type") == "message/rfc822"
    assert stack.get("karl", "/v1/jobs/nosuchjob/message",
                     auth=True).status == 404
    assert stack.get("karl", f"/v1/jobs/{job}/message").status == 401


def test_three_batches_in_order(stack):
    job = new_job()
    before = {m: metric(stack, m) for m in (
        "karl_jobs_accepted_total", "karl_batches_accepted_total",
        "karl_batches_duplicate_total", "karl_receivers_queued_total")}
    assert send(stack, batch0(job, receivers(3), last=False)).status == 202
    s = status(stack, job).json()
    assert s["batches"] == 1 and s["complete"] is False
    assert send(stack, later(job, 1, receivers(2, 3))).status == 202
    r = send(stack, later(job, 2, receivers(1, 5), last=True))
    assert r.status == 202, r
    assert r.json()["receivers"] == 1
    s = status(stack, job).json()
    assert (s["batches"], s["complete"], s["receivers"], accounted(s)) == \
        (3, True, 6, 6)
    lst = listing(stack, job)
    assert lst.status == 200, lst
    assert lst.json()["job"] == job
    assert lst.json()["truncated"] is False
    got = lst.json()["receivers"]
    assert [x["to"] for x in got] == [f"r{i}@example.org" for i in range(6)]
    assert all(x["state"] in STATES for x in got)
    # the listing shows what each receiver carries
    assert got[5]["verp"] == "5"
    assert got[5]["data"] == {"name": "Receiver 5",
                              "unsubscribe_url": "https://x.example/u/5"}
    # a retry of a middle batch after the last is still a duplicate
    r = send(stack, later(job, 1, receivers(2, 3)))
    assert r.status == 202 and r.json()["duplicate"] is True, r
    after = {m: metric(stack, m) for m in before}
    assert after["karl_jobs_accepted_total"] - \
        before["karl_jobs_accepted_total"] >= 1
    assert after["karl_batches_accepted_total"] - \
        before["karl_batches_accepted_total"] >= 3
    assert after["karl_batches_duplicate_total"] - \
        before["karl_batches_duplicate_total"] >= 1
    assert after["karl_receivers_queued_total"] - \
        before["karl_receivers_queued_total"] >= 6
    assert metric(stack, "karl_spool_jobs") >= 1


def test_later_batch_may_omit_kind_but_not_change_it(stack):
    job = new_job()
    assert send(stack, batch0(job, receivers(1), last=False)).status == 202
    body = later(job, 1, receivers(1, 1))
    del body["kind"]
    assert send(stack, body).status == 202
    r = send(stack, later(job, 2, receivers(1, 2), kind="digest"))
    assert r.status == 409, r
    assert "kind" in r.json()["error"]


def test_gap_and_after_last_are_409(stack):
    job = new_job()
    r = send(stack, later(job, 1, receivers(1)))
    assert r.status == 409, r           # no batch 0 at all
    assert status(stack, job).status == 404
    assert send(stack, batch0(job, receivers(1), last=False)).status == 202
    r = send(stack, later(job, 2, receivers(1, 1)))
    assert r.status == 409, r           # batch 1 missing
    assert "error" in r.json()
    assert send(stack, later(job, 1, receivers(1, 1), last=True)).status \
        == 202
    r = send(stack, later(job, 2, receivers(1, 2)))
    assert r.status == 409, r           # after the last
    s = status(stack, job).json()
    assert (s["batches"], s["receivers"]) == (2, 2)


def _bad_bodies():
    job = "t:bad"
    ok = batch0(job, receivers(1))
    cases = {
        "not json": b"{\"job\":",
        "array": [ok],
        "no receivers": {k: v for k, v in ok.items() if k != "receivers"},
        "empty receivers": dict(ok, receivers=[]),
        "too many receivers": dict(ok, receivers=receivers(1001)),
        "batch 0 without message": {k: v for k, v in ok.items()
                                    if k != "message"},
        "batch 0 without sender": {k: v for k, v in ok.items()
                                   if k != "sender"},
        "later batch with message": dict(later(job, 1, receivers(1)),
                                         message=b64url(b"x")),
        "bad base64": dict(ok, message="not base64!"),
        "bad address": dict(ok, receivers=[{"to": "no-at-sign"}]),
        "address with CRLF": dict(ok, receivers=[{"to": "a@b\r\nDATA"}]),
        "data not strings": dict(ok, receivers=[{"to": "a@b.c",
                                                 "data": {"n": 1}}]),
        "verp too long": dict(ok, receivers=[{"to": "a@b.c",
                                              "verp": "v" * 129}]),
        "unknown kind": dict(ok, kind="spam"),
        "unknown field": dict(ok, priority=1),
        "job id with slash": dict(ok, job="a/b"),
        "negative batch": dict(ok, batch=-1),
        "batch as string": dict(ok, batch="0"),
        "last missing": {k: v for k, v in ok.items() if k != "last"},
    }
    return cases


BAD = _bad_bodies()


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_is_400(stack, case):
    body = BAD[case]
    headers = {"Content-Type": "application/json"} \
        if isinstance(body, bytes) else None
    r = stack.post("karl", "/v1/send", body, headers=headers)
    assert r.status == 400, (case, r)
    assert r.json()["error"]
    assert status(stack, "t:bad").status == 404


def test_secret_required(stack):
    job = new_job()
    assert send(stack, batch0(job, receivers(1)), auth=False).status == 401
    assert send(stack, batch0(job, receivers(1)),
                auth="Bearer wrong").status == 401
    assert stack.get("karl", f"/v1/jobs/{job}").status == 401
    assert status(stack, job).status == 404


def test_unknown_jobs_and_paths(stack):
    assert status(stack, new_job()).status == 404
    assert listing(stack, new_job()).status == 404
    assert status(stack, "a%2Fb").status == 404
    assert stack.get("karl", "/v1/jobs/", auth=True).status == 404
    job = new_job()
    assert send(stack, batch0(job, receivers(1))).status == 202
    assert stack.get("karl", f"/v1/jobs/{job}/other",
                     auth=True).status == 404


def test_large_message(stack):
    """Over the default 1 MiB body bound: the route has its own."""
    job = new_job()
    big = MESSAGE + (b"x" * 76 + b"\r\n") * (5 * 1024 * 1024 // 78)
    r = send(stack, batch0(job, receivers(1), message=big), timeout=60)
    assert r.status == 202, r
    assert status(stack, job).json()["receivers"] == 1


def test_concurrent_same_batch_stored_once(stack):
    job = new_job()
    body = batch0(job, receivers(50))
    results = []

    def go():
        r = send(stack, body)
        results.append((r.status, r.json().get("duplicate")))
    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results, key=str) == \
        sorted([(202, False)] + [(202, True)] * 7, key=str)
    assert status(stack, job).json()["receivers"] == 50


def test_kill9_after_202_keeps_the_job(stack):
    job = new_job()
    old = stack.pid("karl")
    assert old
    assert send(stack, batch0(job, receivers(1000), last=False)).status \
        == 202
    r = send(stack, later(job, 1, receivers(500, 1000), last=True))
    assert r.status == 202, r
    os.kill(old, signal.SIGKILL)
    new = stack.wait_new_pid("karl", old, timeout=20)
    assert new, "karl was not restarted"
    assert stack.wait_healthy("karl", timeout=20)
    s = status(stack, job)
    assert s.status == 200, s
    assert (s.json()["batches"], s.json()["complete"],
            s.json()["receivers"], accounted(s.json())) == (2, True, 1500,
                                                            1500)
    lst = listing(stack, job).json()["receivers"]
    assert [x["to"] for x in lst] == \
        [f"r{i}@example.org" for i in range(1500)]
    assert all(x["state"] in STATES for x in lst)
    # a retry after the restart is recognised as held
    r = send(stack, later(job, 1, receivers(500, 1000), last=True))
    assert r.status == 202 and r.json()["duplicate"] is True, r


def test_job_ids_do_not_overlap(stack):
    """Job "x" and job "x.y" (a prefix of each other's keys but for the
    slash) keep their own receivers."""
    job = new_job()
    assert send(stack, batch0(job, receivers(2))).status == 202
    assert send(stack, batch0(job + ".y", receivers(3))).status == 202
    assert status(stack, job).json()["receivers"] == 2
    assert len(listing(stack, job).json()["receivers"]) == 2
    assert accounted(status(stack, job + ".y").json()) == 3



def test_through_the_c_client(stack):
    """karl_clnt_send (the unit test's real-karl case) against this karl."""
    prog = bin_dir().parent / "tests" / "test_karl_clnt"
    if not prog.exists():
        pytest.skip(f"{prog} not built")
    job = new_job()
    env = dict(os.environ, KARL_TEST_URL=f"http://127.0.0.1:"
               f"{stack.port('karl')}", KARL_TEST_SECRET=stack.api_secret,
               KARL_TEST_JOB=job)
    r = subprocess.run([str(prog)], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "test_clnt_real_karl" in r.stdout
    assert "SKIPPED" not in r.stdout, r.stdout
    s = status(stack, job).json()
    assert (s["batches"], s["complete"], s["receivers"]) == (2, True, 3)
