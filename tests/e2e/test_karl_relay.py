# SPDX-License-Identifier: MIT
"""test_karl_relay.py - karl's relay options against real relays (aiosmtpd
with STARTTLS and AUTH as configured per test).

karl_relay_tls = require: a relay whose certificate karl trusts (through
SSL_CERT_FILE, which OpenSSL's default verify paths read) takes the mail
over TLS; a relay without STARTTLS, with a certificate karl does not
trust, or with a trusted one for another name, gets nothing (no RCPT,
no password in clear) and the receiver stays deferred, delivered once
karl_relay_tls = try.  AUTH LOGIN towards a relay that offers only
LOGIN.  A refused relay password is a temporary failure: the receiver is
deferred, never failed or reported as a bounce, and goes out once the
relay takes the password (docs/karl.md, Delivery).  karl_relay_ca_file
replaces the system's CAs for require; a file without a certificate stops
karl at start with a line saying so.
"""
import os
import shutil
import signal
import tempfile
import uuid
from pathlib import Path

import pytest

from mailtest import Sink, tls_cert
from stack import wait_for
from test_karl_delivery import (ConfStack, job_status, keygen, new_job, rcpt,
                                send_job, start_stack)

from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import AuthResult  # noqa: E402

USER, PASSWORD = "karl", "right horse battery"


class TrustStack(ConfStack):
    """karl trusts exactly the certificate in ca_file (SSL_CERT_FILE)."""

    def __init__(self, ca_file, **kw):
        super().__init__(**kw)
        self.ca_file = ca_file

    def env(self):
        e = super().env()
        e["SSL_CERT_FILE"] = str(self.ca_file)
        return e


@pytest.fixture(scope="module")
def relay_env():
    """(stack, dir): a trusted and an untrusted certificate for
    127.0.0.1, the password file, fast retries; karl_relay_tls starts as
    require."""
    d = Path(tempfile.mkdtemp(prefix="karl-relay-"))
    os.chmod(d, 0o755)
    tls_cert(d, "trusted")
    tls_cert(d, "untrusted")
    # trusted, but for another name (CN=localhost alone does not count)
    tls_cert(d, "othername", san="DNS:relay.example")
    (d / "ca.pem").write_bytes((d / "trusted.pem").read_bytes() +
                               (d / "othername.pem").read_bytes())
    (d / "password").write_text(PASSWORD + "\n")
    os.chmod(d / "password", 0o644)
    conf, _ = keygen(d)
    st = start_stack(TrustStack(d / "ca.pem", extra_conf={
        "dkim_keys": conf, "karl_retry_min": "1", "karl_retry_max": "2",
        "karl_max_age": "600", "karl_relay_user": USER,
        "karl_relay_password_file": str(d / "password"),
        "karl_relay_tls": "require"}))
    st.relay_tls = "require"
    yield st, d
    st.stop()
    shutil.rmtree(d, ignore_errors=True)
    assert not st.sanitizer_reports, st.sanitizer_reports


def relay_tls(st, mode):
    """Set karl_relay_tls, restarting karl only when it changes (each
    restart within 30 s doubles groups-supervise's delay)."""
    if st.relay_tls != mode:
        st.set_conf("karl_relay_tls", mode)
        st.restart_karl()
        st.relay_tls = mode


class Relay:
    """aiosmtpd on the stack's relay port.  cert: None (no STARTTLS) or a
    certificate name in d; auth: require AUTH with USER and password;
    mechs: the AUTH mechanisms offered.  Stopping it closes its sessions,
    so karl's idle ones do not outlive it."""

    def __init__(self, st, d, cert=None, auth=True, mechs=None,
                 password=PASSWORD):
        import ssl
        self.sink = Sink()
        self.mechanisms = []
        self.password = password
        kw = {}
        if cert is not None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(str(d / f"{cert}.pem"), str(d / f"{cert}.key"))
            kw.update(tls_context=ctx, require_starttls=True)
        if auth:
            kw.update(auth_required=True, authenticator=self.check,
                      auth_require_tls=cert is not None)
        if mechs is not None:
            kw["auth_exclude_mechanism"] = [m for m in ("PLAIN", "LOGIN")
                                            if m not in mechs]
        self.ctl = Controller(self.sink, hostname="127.0.0.1",
                              port=st.ports["karl_relay"], **kw)
        self.ctl.start()

    def check(self, server, session, envelope, mechanism, auth_data):
        self.mechanisms.append(mechanism)
        ok = (auth_data.login.decode(), auth_data.password.decode()) == \
            (USER, self.password)
        # handled=False: aiosmtpd answers a failure with 535 itself (the
        # default, True, would leave the client waiting for a reply)
        return AuthResult(success=ok, handled=ok,
                          auth_data=auth_data.login.decode())

    def close(self):
        self.ctl.stop()


def deferred_total(st):
    return st.get("karl", "/v1/stats", auth=True).json()["deferred"]


def one_receiver(st):
    job = new_job()
    addr = f"r{uuid.uuid4().hex[:8]}@example.org"
    send_job(st, job, [rcpt(addr, 1)])
    return job, addr


def deferred_twice(st, job, before):
    """Wait until karl has deferred at least two attempts since before and
    the job shows its receiver deferred."""
    return wait_for(lambda: deferred_total(st) >= before + 2 and
                    job_status(st, job)["deferred"] == 1, 30)


def test_require_with_starttls_delivers_over_tls(relay_env):
    st, d = relay_env
    relay_tls(st, "require")
    r = Relay(st, d, cert="trusted")
    try:
        job, addr = one_receiver(st)
        assert wait_for(lambda: addr in r.sink.got, 30), st.log_tails()
        assert r.sink.how == {(True, USER)}, r.sink.how
        assert wait_for(lambda: job_status(st, job)["sent"] == 1, 10)
    finally:
        r.close()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("cert", [None, "untrusted", "othername"])
def test_require_never_sends_in_clear_or_to_an_unverified_relay(relay_env,
                                                                 cert):
    """No STARTTLS offered, a certificate karl does not trust, or one it
    trusts for another name than the relay's (127.0.0.1): nothing
    is sent (not even a RCPT), the receiver is deferred, not failed; with
    karl_relay_tls = try the same receiver then goes out."""
    st, d = relay_env
    relay_tls(st, "require")
    r = Relay(st, d, cert=cert)
    try:
        before = deferred_total(st)
        job, addr = one_receiver(st)
        assert deferred_twice(st, job, before), st.log_tails()
        # not a RCPT, and not the password, in clear
        assert r.sink.tries[addr] == 0 and r.sink.count == 0
        assert r.mechanisms == []
        s = job_status(st, job)
        assert (s["sent"], s["failed"]) == (0, 0), s
        relay_tls(st, "try")
        assert wait_for(lambda: addr in r.sink.got, 30), st.log_tails()
        assert len(r.sink.got[addr]) == 1
        assert r.sink.how == {(cert is not None, USER)}
        assert wait_for(lambda: job_status(st, job)["sent"] == 1, 10)
    finally:
        r.close()


def test_auth_login_when_only_login_is_offered(relay_env):
    st, d = relay_env
    relay_tls(st, "try")
    r = Relay(st, d, cert="trusted", mechs=("LOGIN",))
    try:
        job, addr = one_receiver(st)
        assert wait_for(lambda: addr in r.sink.got, 30), st.log_tails()
        assert set(r.mechanisms) == {"LOGIN"}, r.mechanisms
        assert r.sink.how == {(True, USER)}, r.sink.how
        assert wait_for(lambda: job_status(st, job)["sent"] == 1, 10)
    finally:
        r.close()


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_wrong_password_defers_never_bounces(relay_env, mech):
    """The relay refuses karl's password (535): the receiver is deferred,
    never failed or reported; once the relay takes it, it goes out."""
    st, d = relay_env
    relay_tls(st, "try")
    r = Relay(st, d, cert="trusted", mechs=(mech,), password="another")
    try:
        before = deferred_total(st)
        job, addr = one_receiver(st)
        assert deferred_twice(st, job, before), st.log_tails()
        assert r.sink.count == 0 and set(r.mechanisms) == {mech}
        s = job_status(st, job)
        assert (s["sent"], s["failed"]) == (0, 0), s
        assert st.get("karl", "/v1/stats", auth=True).json()[
            "domains"]["example.org"]["failed"] == 0
        # karl reported nothing to messageserver
        assert st.sql("SELECT count(*) FROM bounce_events WHERE "
                      "karl_job = :'v1'", job) == [["0"]]
        r.password = PASSWORD
        assert wait_for(lambda: addr in r.sink.got, 30), st.log_tails()
        assert len(r.sink.got[addr]) == 1
        assert wait_for(lambda: job_status(st, job)["sent"] == 1, 10)
    finally:
        r.close()


def test_relay_ca_file_is_the_only_ca_trusted(relay_env):
    """karl_relay_ca_file = untrusted.pem: a relay showing that
    certificate takes the mail over TLS, and one showing the certificate
    in SSL_CERT_FILE (the system's store here) gets nothing: the file
    replaces the system's CAs, it does not add to them."""
    st, d = relay_env
    relay_tls(st, "require")
    st.set_conf("karl_relay_ca_file", str(d / "untrusted.pem"))
    st.restart_karl()
    try:
        r = Relay(st, d, cert="trusted")
        try:
            before = deferred_total(st)
            job, addr = one_receiver(st)
            assert deferred_twice(st, job, before), st.log_tails()
            assert r.sink.tries[addr] == 0 and r.sink.count == 0
        finally:
            r.close()
        r = Relay(st, d, cert="untrusted")
        try:
            assert wait_for(lambda: addr in r.sink.got, 30), st.log_tails()
            assert len(r.sink.got[addr]) == 1
            assert r.sink.how == {(True, USER)}, r.sink.how
            assert wait_for(lambda: job_status(st, job)["sent"] == 1, 10)
        finally:
            r.close()
    finally:
        st.set_conf("karl_relay_ca_file", "")
        st.restart_karl()


def test_relay_ca_file_without_a_certificate_stops_karl(relay_env):
    """A karl_relay_ca_file that holds no certificate (here the password
    file) is a configuration error: karl does not start and says why;
    with the line removed it starts again."""
    st, d = relay_env
    st.set_conf("karl_relay_ca_file", str(d / "password"))
    try:
        old = st.pid("karl")
        os.kill(old, signal.SIGKILL)
        ev = st.wait_errord_event(
            lambda e: "karl_relay_ca_file" in e.get("message", ""),
            timeout=30, daemon="karl", text="karl_relay_ca_file")
        assert ev is not None, st.log_tails()
        assert str(d / "password") in ev["message"], ev
        assert ev["level"] in ("err", "error", "crit"), ev
        assert st.healthz("karl") != 200
    finally:
        st.set_conf("karl_relay_ca_file", "")
    assert st.wait_healthy("karl", timeout=30), st.log_tails()
