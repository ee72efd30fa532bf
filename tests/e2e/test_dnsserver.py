# SPDX-License-Identifier: MIT
"""Self-test of the DNS server helper (dnsserver.py): the records it is
given are what dnsmasq answers, names it does not know under its local
domains are NXDOMAIN, other names are refused, and stop() stops it."""
import socket

import pytest

from dnsserver import T_MX, T_TXT, DnsServer, query

NOERROR, NXDOMAIN, REFUSED = 0, 3, 5


def test_records_as_given():
    txt = {
        "_dmarc.reject.test": "v=DMARC1; p=reject",
        "split.test": ("v=DMARC1; ", "p=quarantine"),
        "two.test": ["one", ("t", "wo")],
        "quoted.test": 'a, "b" \\ c',
    }
    mx = {"mail.test": [(20, "mx2.mail.test"), (10, "mx1.mail.test")]}
    with DnsServer(txt=txt, mx=mx) as dns:
        host, port = dns.resolver.split(":")
        assert host == "127.0.0.1" and 0 < int(port) < 65536
        assert dns.query("_dmarc.reject.test") == (
            NOERROR, [["v=DMARC1; p=reject"]])
        assert dns.query("split.test") == (
            NOERROR, [["v=DMARC1; ", "p=quarantine"]])
        rc, ans = dns.query("two.test")
        assert rc == NOERROR and sorted(ans) == [["one"], ["t", "wo"]]
        assert dns.query("quoted.test") == (NOERROR, [['a, "b" \\ c']])
        rc, ans = dns.query("mail.test", T_MX)
        assert rc == NOERROR
        assert sorted(ans) == [(10, "mx1.mail.test"), (20, "mx2.mail.test")]
        # unknown under a local domain: NXDOMAIN; a known name without
        # that type: no data
        assert dns.query("_dmarc.nothing.test") == (NXDOMAIN, [])
        assert dns.query("mail.test", T_TXT) == (NOERROR, [])
        # outside the local domains there is no upstream: refused
        assert dns.query("example.invalid")[0] == REFUSED
        server = ("127.0.0.1", dns.port)
    with pytest.raises(OSError):
        query(server, "_dmarc.reject.test", timeout=0.5)


def test_local_domains_and_bad_strings():
    with DnsServer(txt={"_dmarc.example.org": "v=DMARC1; p=none"},
                   local=("org",)) as dns:
        assert dns.query("_dmarc.example.org") == (
            NOERROR, [["v=DMARC1; p=none"]])
        assert dns.query("other.org")[0] == NXDOMAIN
        assert dns.query("x.test")[0] == REFUSED
    with pytest.raises(ValueError):
        DnsServer(txt={"x.test": "a" * 256}).start()
    with pytest.raises(ValueError):
        DnsServer(txt={"x.test": "two\nlines"}).start()


def test_two_servers_at_once():
    with DnsServer(txt={"a.test": "1"}) as one, \
            DnsServer(txt={"a.test": "2"}) as two:
        assert one.port != two.port
        assert one.query("a.test") == (NOERROR, [["1"]])
        assert two.query("a.test") == (NOERROR, [["2"]])
    # both gone, their ports free again
    for port in (one.port, two.port):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", port))
        s.close()
