# SPDX-License-Identifier: MIT
"""Self-test of the DNS server helper (dnsserver.py): the records it is
given are what dnsmasq answers (TXT, MX, A, AAAA; several addresses in
the order given unless rotated), names it does not know under its local
domains are NXDOMAIN, other names are refused, and stop() stops it."""
import socket

import pytest

from dnsserver import T_A, T_AAAA, T_MX, T_TXT, DnsServer, query

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


def test_address_records():
    a = {"one.test": "127.0.0.9",
         "three.test": ["192.0.2.1", "192.0.2.2", "192.0.2.3"],
         "both.test": "192.0.2.7"}
    aaaa = {"both.test": "2001:db8::7",
            "six.test": ["::1", "::ffff:127.0.0.9"]}
    with DnsServer(a=a, aaaa=aaaa, mx={"mx.test": [(10, "one.test")]},
                   round_robin=False) as dns:
        assert dns.query("one.test", T_A) == (NOERROR, ["127.0.0.9"])
        # in the order given, every time
        for _ in range(3):
            assert dns.query("three.test", T_A) == (
                NOERROR, ["192.0.2.1", "192.0.2.2", "192.0.2.3"])
        assert dns.query("both.test", T_A) == (NOERROR, ["192.0.2.7"])
        assert dns.query("both.test", T_AAAA) == (NOERROR, ["2001:db8::7"])
        assert dns.query("six.test", T_AAAA) == (
            NOERROR, ["::1", "::ffff:127.0.0.9"])
        # a name with AAAA only, or MX only, has no A: no data
        assert dns.query("six.test", T_A) == (NOERROR, [])
        assert dns.query("mx.test", T_A) == (NOERROR, [])
        assert dns.query("one.test", T_AAAA) == (NOERROR, [])
        assert dns.query("nothing.test", T_A) == (NXDOMAIN, [])
        assert dns.query("mx.test", T_MX) == (NOERROR, [(10, "one.test")])
    # dnsmasq's default rotates them
    with DnsServer(a=a) as dns:
        seen = {tuple(dns.query("three.test", T_A)[1]) for _ in range(6)}
        assert len(seen) > 1 and all(sorted(s) == a["three.test"]
                                     for s in seen)
    with pytest.raises(OSError):
        DnsServer(a={"x.test": "::1"}).start()
    with pytest.raises(OSError):
        DnsServer(aaaa={"x.test": "300.1.1.1"}).start()


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
