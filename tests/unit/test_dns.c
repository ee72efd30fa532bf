/* SPDX-License-Identifier: MIT */
/*
 * test_dns.c - unit tests of the DNS lookups (dns.c) and DMARC policy
 * discovery (dmarc.c) against a real DNS server.
 *
 * The server is dnsmasq on 127.0.0.1 at a free port, in the foreground
 * (--no-daemon: no pid file, no change of user, so root is no different),
 * answering only from its command line (--local=/test/ makes unknown names
 * NXDOMAIN instead of REFUSED).  Covered: TXT (multi-string, several
 * records, one too large, one over TCP), MX order, A and AAAA (one type,
 * both, several records, one type's tempfail), NXDOMAIN and no-data,
 * bad names, every DMARC outcome including the organizational-domain
 * fallback with sp=, a timeout against a socket that never answers, the
 * cache (hit with the server gone, flush, TTL expiry, LRU eviction, off),
 * IPv6 "[::1]:port", resolver syntax, and lookups from several threads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "dmarc.h"
#include "dns.h"
#include "log.h"
#include "../testutil.h"
#include "xalloc.h"

#define DNSMASQ		"/usr/sbin/dnsmasq"
#define BIG_STRINGS	20	/* 20 x 250 bytes: more than UDP's 512 */
#define HUGE_STRINGS	40	/* 40 x 250 bytes: over DNS_TXT_MAX */

static struct fixture *fx;
static pid_t dnsmasq_pid = -1;
static int dnsmasq_port;
static int have_v6;
static char resolver[64];

/* The zone: dnsmasq options after the fixed ones.  No shell in between,
 * and dnsmasq reads quotes only in its config file: a ',' always starts
 * another string of the record. */
static const char *const records[] = {
	"--txt-record=ready.test,ready",
	"--txt-record=_dmarc.reject.test,v=DMARC1; p=reject",
	"--txt-record=_dmarc.quar.test,v=DMARC1; p=quarantine; pct=50",
	"--txt-record=_dmarc.none.test,v=DMARC1; p=none; rua=mailto:a@n.test",
	"--txt-record=_dmarc.org.test,v=DMARC1; p=reject; sp=quarantine",
	"--txt-record=_dmarc.orgp.test,v=DMARC1; p=reject",
	"--txt-record=_dmarc.multi.test,v=DMARC1; ,p=rej,ect",
	"--txt-record=_dmarc.two.test,v=DMARC1; p=reject",
	"--txt-record=_dmarc.two.test,v=DMARC1; p=none",
	"--txt-record=_dmarc.mixed.test,v=spf1 -all",
	"--txt-record=_dmarc.mixed.test,v=DMARC1; p=quarantine",
	"--txt-record=_dmarc.badorg.test,v=DMARC1; p=reject",
	"--txt-record=_dmarc.sub.badorg.test,v=DMARC1; p=bogus",
	"--txt-record=_dmarc.spf.test,v=spf1 -all",
	"--txt-record=_dmarc.sub.spf.test,not dmarc",
	"--txt-record=a.test,one",
	"--txt-record=b.test,two",
	"--txt-record=c.test,three",
	"--mx-host=mx.test,mx2.mx.test,20",
	"--mx-host=mx.test,mx1.mx.test,10",
	"--mx-host=mx.test,mx3.mx.test,20",
	"--mx-host=mx.test,mx0.mx.test,5",
	"--host-record=mx1.mx.test,192.0.2.1",
	"--host-record=multi.test,192.0.2.11",
	"--host-record=multi.test,192.0.2.12",
	"--host-record=multi.test,192.0.2.13",
	"--host-record=six.test,2001:db8::6",
	"--host-record=both.test,192.0.2.7,2001:db8::7",
	"--host-record=Mixed.Case.test,192.0.2.8",
	"--cname=alias.test,both.test",
};

static char *big_arg, *huge_arg;

/* txt_arg - "--txt-record=name,ccc...,ccc..." with n strings of 250. */
static char *
txt_arg(const char *name, int n, char c)
{
	char s[251];
	char *arg = xasprintf("--txt-record=%s", name), *t;
	int i;

	memset(s, c, 250);
	s[250] = '\0';
	for (i = 0; i < n; i++) {
		t = xasprintf("%s,%s", arg, s);
		free(arg);
		arg = t;
	}
	return arg;
}

/* free_port - a port free for UDP and TCP on 127.0.0.1 now; the UDP
 * port the kernel picks may be one a dnsmasq of an earlier test left in
 * TCP TIME_WAIT, so try a few. */
static int
free_port(void)
{
	struct sockaddr_in sin;
	socklen_t sl;
	int u, t, i, port = -1;

	for (i = 0; i < 50 && port == -1; i++) {
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sl = sizeof(sin);
		if ((u = socket(AF_INET, SOCK_DGRAM, 0)) == -1)
			return -1;
		if (bind(u, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
		    getsockname(u, (struct sockaddr *)&sin, &sl) == 0) {
			t = socket(AF_INET, SOCK_STREAM, 0);
			if (t != -1 && bind(t, (struct sockaddr *)&sin,
			    sizeof(sin)) == 0)
				port = ntohs(sin.sin_port);
			if (t != -1)
				close(t);
		}
		close(u);
	}
	return port;
}

static void
stop_dnsmasq(void)
{
	if (dnsmasq_pid > 0) {
		kill(dnsmasq_pid, SIGTERM);
		waitpid(dnsmasq_pid, NULL, 0);
	}
	dnsmasq_pid = -1;
}

/* start_dnsmasq - serve the zone with this TTL; 0 once it answers. */
static int
start_dnsmasq(int ttl)
{
	char port[32], ttlarg[32], log[PATH_MAX + 32];
	const char *argv[64];
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	size_t i, n;
	int attempt, tries, fd, rc;
	char **txt;
	size_t ntxt;

	for (attempt = 0; attempt < 5; attempt++) {
		if ((dnsmasq_port = free_port()) == -1)
			return -1;
		snprintf(port, sizeof(port), "--port=%d", dnsmasq_port);
		snprintf(ttlarg, sizeof(ttlarg), "--local-ttl=%d", ttl);
		snprintf(log, sizeof(log), "%s/dnsmasq.log", fx->dir);
		n = 0;
		argv[n++] = DNSMASQ;
		argv[n++] = "--no-daemon";
		argv[n++] = port;
		argv[n++] = have_v6 ? "--listen-address=127.0.0.1,::1" :
		    "--listen-address=127.0.0.1";
		argv[n++] = "--bind-interfaces";
		argv[n++] = "--no-resolv";
		argv[n++] = "--no-hosts";
		argv[n++] = "--conf-file=/dev/null";
		argv[n++] = "--local=/test/";
		argv[n++] = "--log-facility=-";
		argv[n++] = ttlarg;
		argv[n++] = big_arg;
		argv[n++] = huge_arg;
		for (i = 0; i < NELEM(records); i++)
			argv[n++] = records[i];
		argv[n] = NULL;
		if ((dnsmasq_pid = fork()) == -1)
			return -1;
		if (dnsmasq_pid == 0) {
			fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
			if (fd != -1) {
				dup2(fd, 1);
				dup2(fd, 2);
			}
			execv(DNSMASQ, (char *const *)(uintptr_t)argv);
			_exit(127);
		}
		/* ask for a known name, uncached, until it answers */
		snprintf(resolver, sizeof(resolver), "127.0.0.1:%d",
		    dnsmasq_port);
		free(cfg.dns_resolver);
		cfg.dns_resolver = xstrdup(resolver);
		for (tries = 0; tries < 250; tries++) {
			if (waitpid(dnsmasq_pid, NULL, WNOHANG) != 0) {
				dnsmasq_pid = -1;  /* port taken? another */
				break;
			}
			dns_cache_flush();
			rc = dns_txt("ready.test", &txt, &ntxt);
			dns_txt_free(txt, ntxt);
			if (rc == DNS_OK) {
				dns_cache_flush();
				return 0;
			}
			nanosleep(&ts, NULL);
		}
		stop_dnsmasq();
	}
	snprintf(log, sizeof(log), "cat '%s/dnsmasq.log' >&2", fx->dir);
	if (system(log) != 0)
		fprintf(stderr, "test_dns: no dnsmasq log\n");
	return -1;
}

static int
have_ipv6_loopback(void)
{
	struct sockaddr_in6 s6;
	int fd, ok;

	memset(&s6, 0, sizeof(s6));
	s6.sin6_family = AF_INET6;
	s6.sin6_addr = in6addr_loopback;
	if ((fd = socket(AF_INET6, SOCK_DGRAM, 0)) == -1)
		return 0;
	ok = bind(fd, (struct sockaddr *)&s6, sizeof(s6)) == 0;
	close(fd);
	return ok;
}

static int
group_setup(void **state)
{
	log_init("test_dns", 1);
	config_defaults(&cfg);
	cfg.dns_timeout_ms = 1000;
	cfg.dns_cache_entries = 100;
	if (access(DNSMASQ, X_OK) != 0) {
		fprintf(stderr, "test_dns: no %s, DNS tests skipped\n",
		    DNSMASQ);
		return 0;
	}
	if (setup_dir(state) == -1)
		return -1;
	fx = *state;
	have_v6 = have_ipv6_loopback();
	big_arg = txt_arg("big.test", BIG_STRINGS, 'b');
	huge_arg = txt_arg("huge.test", HUGE_STRINGS, 'h');
	return 0;
}

static int
group_teardown(void **state)
{
	stop_dnsmasq();
	dns_cache_flush();
	free(big_arg);
	free(huge_arg);
	config_free(&cfg);
	return fx ? teardown_dir(state) : 0;
}

/* Every test starts with a fresh server and an empty cache. */
static int
setup(void **state)
{
	(void)state;
	if (fx == NULL)
		return 0;
	cfg.dns_timeout_ms = 1000;
	cfg.dns_cache_entries = 100;
	if (dnsmasq_pid == -1 && start_dnsmasq(300) == -1)
		return -1;
	free(cfg.dns_resolver);
	cfg.dns_resolver = xstrdup(resolver);
	dns_cache_flush();
	return 0;
}

#define NEED_DNSMASQ()	do { if (fx == NULL) skip(); } while (0)

static void
test_txt(void **state)
{
	char **txt;
	size_t n, i;
	int seen_two = 0;

	(void)state;
	NEED_DNSMASQ();
	assert_int_equal(dns_txt("_dmarc.reject.test", &txt, &n), DNS_OK);
	assert_int_equal(n, 1);
	assert_string_equal(txt[0], "v=DMARC1; p=reject");
	txt = dns_txt_free(txt, n);
	assert_null(txt);

	/* one record of three strings, joined without separators */
	assert_int_equal(dns_txt("_dmarc.multi.test", &txt, &n), DNS_OK);
	assert_int_equal(n, 1);
	assert_string_equal(txt[0], "v=DMARC1; p=reject");
	dns_txt_free(txt, n);

	/* two records; case and a trailing dot do not matter */
	assert_int_equal(dns_txt("_DMARC.Two.TEST.", &txt, &n), DNS_OK);
	assert_int_equal(n, 2);
	for (i = 0; i < n; i++)
		seen_two += strcmp(txt[i], "v=DMARC1; p=reject") == 0 ||
		    strcmp(txt[i], "v=DMARC1; p=none") == 0;
	assert_int_equal(seen_two, 2);
	dns_txt_free(txt, n);

	/* 5000 bytes: truncated over UDP, so res_nsend asks again over TCP */
	assert_int_equal(dns_txt("big.test", &txt, &n), DNS_OK);
	assert_int_equal(n, 1);
	assert_int_equal(strlen(txt[0]), BIG_STRINGS * 250);
	assert_int_equal(txt[0][0], 'b');
	dns_txt_free(txt, n);

	/* 10000 bytes is over DNS_TXT_MAX: left out, so nothing is left */
	assert_int_equal(dns_txt("huge.test", &txt, &n), DNS_NXDOMAIN);
	assert_null(txt);
	assert_int_equal(n, 0);
}

static void
test_nxdomain_nodata(void **state)
{
	char **txt = (char **)1;
	struct dns_mx *mx = (struct dns_mx *)1;
	size_t n = 7;

	(void)state;
	NEED_DNSMASQ();
	assert_int_equal(dns_txt("_dmarc.nothing.test", &txt, &n),
	    DNS_NXDOMAIN);
	assert_null(txt);
	assert_int_equal(n, 0);
	/* the name exists with MX only: no data, same answer */
	assert_int_equal(dns_txt("mx.test", &txt, &n), DNS_NXDOMAIN);
	assert_int_equal(dns_mx("a.test", &mx, &n), DNS_NXDOMAIN);
	assert_null(mx);
	/* and from the cache the same */
	assert_int_equal(dns_txt("_dmarc.nothing.test", &txt, &n),
	    DNS_NXDOMAIN);
	assert_int_equal(dns_mx("a.test", &mx, &n), DNS_NXDOMAIN);
}

static void
test_mx(void **state)
{
	struct dns_mx *mx;
	size_t n;

	(void)state;
	NEED_DNSMASQ();
	assert_int_equal(dns_mx("mx.test", &mx, &n), DNS_OK);
	assert_int_equal(n, 4);
	assert_int_equal(mx[0].pref, 5);
	assert_string_equal(mx[0].host, "mx0.mx.test");
	assert_int_equal(mx[1].pref, 10);
	assert_string_equal(mx[1].host, "mx1.mx.test");
	assert_int_equal(mx[2].pref, 20);
	assert_int_equal(mx[3].pref, 20);
	assert_true((strcmp(mx[2].host, "mx2.mx.test") == 0 &&
	    strcmp(mx[3].host, "mx3.mx.test") == 0) ||
	    (strcmp(mx[2].host, "mx3.mx.test") == 0 &&
	    strcmp(mx[3].host, "mx2.mx.test") == 0));
	free(mx);
	/* cached copy parses the same */
	assert_int_equal(dns_mx("MX.test.", &mx, &n), DNS_OK);
	assert_int_equal(n, 4);
	assert_string_equal(mx[0].host, "mx0.mx.test");
	free(mx);
}

/* has_addr - one of a[0..n) is the family's address text. */
static int
has_addr(const struct dns_addr *a, size_t n, int family, const char *text)
{
	unsigned char want[16];
	size_t i;

	assert_int_equal(inet_pton(family, text, want), 1);
	for (i = 0; i < n; i++)
		if (a[i].family == family && memcmp(family == AF_INET ?
		    (const void *)&a[i].u.v4 : (const void *)&a[i].u.v6, want,
		    family == AF_INET ? 4 : 16) == 0)
			return 1;
	return 0;
}

static void
test_addr(void **state)
{
	struct dns_addr *a = (struct dns_addr *)1;
	size_t n = 7;

	(void)state;
	NEED_DNSMASQ();
	/* one A record, the MX target of mx.test */
	assert_int_equal(dns_addr("mx1.mx.test", AF_INET, &a, &n), DNS_OK);
	assert_int_equal(n, 1);
	assert_true(has_addr(a, n, AF_INET, "192.0.2.1"));
	free(a);
	/* three A records, all of them; the cached copy the same */
	assert_int_equal(dns_addr("multi.test", AF_UNSPEC, &a, &n), DNS_OK);
	assert_int_equal(n, 3);
	assert_true(has_addr(a, n, AF_INET, "192.0.2.11"));
	assert_true(has_addr(a, n, AF_INET, "192.0.2.12"));
	assert_true(has_addr(a, n, AF_INET, "192.0.2.13"));
	free(a);
	assert_int_equal(dns_addr("MULTI.test.", AF_INET, &a, &n), DNS_OK);
	assert_int_equal(n, 3);
	free(a);
	/* AAAA only: no A (no data), the AAAA with AF_UNSPEC */
	assert_int_equal(dns_addr("six.test", AF_INET, &a, &n), DNS_NXDOMAIN);
	assert_null(a);
	assert_int_equal(n, 0);
	assert_int_equal(dns_addr("six.test", AF_INET6, &a, &n), DNS_OK);
	assert_int_equal(n, 1);
	assert_true(has_addr(a, n, AF_INET6, "2001:db8::6"));
	free(a);
	assert_int_equal(dns_addr("six.test", AF_UNSPEC, &a, &n), DNS_OK);
	assert_int_equal(n, 1);
	assert_int_equal(a[0].family, AF_INET6);
	free(a);
	/* both: the A record first */
	assert_int_equal(dns_addr("both.test", AF_UNSPEC, &a, &n), DNS_OK);
	assert_int_equal(n, 2);
	assert_int_equal(a[0].family, AF_INET);
	assert_true(has_addr(a, 1, AF_INET, "192.0.2.7"));
	assert_int_equal(a[1].family, AF_INET6);
	assert_true(has_addr(a + 1, 1, AF_INET6, "2001:db8::7"));
	free(a);
	/* through a CNAME */
	assert_int_equal(dns_addr("alias.test", AF_UNSPEC, &a, &n), DNS_OK);
	assert_int_equal(n, 2);
	free(a);
	assert_int_equal(dns_addr("mixed.case.TEST", AF_INET, &a, &n), DNS_OK);
	free(a);
	/* no such name, a name with other records only, bad input */
	assert_int_equal(dns_addr("nothing.test", AF_UNSPEC, &a, &n),
	    DNS_NXDOMAIN);
	assert_null(a);
	assert_int_equal(dns_addr("mx.test", AF_UNSPEC, &a, &n),
	    DNS_NXDOMAIN);
	assert_int_equal(dns_addr("a b.test", AF_UNSPEC, &a, &n),
	    DNS_BADNAME);
	assert_int_equal(dns_addr("both.test", AF_UNIX, &a, &n),
	    DNS_BADNAME);
	assert_null(a);
	assert_int_equal(n, 0);
}

/* With AF_UNSPEC one type's answer is enough; a tempfail of both, or a
 * tempfail beside a negative answer, is a tempfail. */
static void
test_addr_tempfail(void **state)
{
	struct dns_addr *a;
	size_t n;

	(void)state;
	NEED_DNSMASQ();
	assert_int_equal(dns_addr("both.test", AF_INET, &a, &n), DNS_OK);
	free(a);
	assert_int_equal(dns_addr("six.test", AF_INET, &a, &n), DNS_NXDOMAIN);
	assert_int_equal(dns_addr("multi.test", AF_UNSPEC, &a, &n), DNS_OK);
	free(a);
	stop_dnsmasq();
	/* A from the cache, AAAA not answered: the A record */
	assert_int_equal(dns_addr("both.test", AF_UNSPEC, &a, &n), DNS_OK);
	assert_int_equal(n, 1);
	assert_int_equal(a[0].family, AF_INET);
	free(a);
	/* the negative A from the cache, AAAA not answered */
	assert_int_equal(dns_addr("six.test", AF_UNSPEC, &a, &n),
	    DNS_TEMPFAIL);
	assert_null(a);
	assert_int_equal(n, 0);
	/* both cached (AAAA negative): no query needed */
	assert_int_equal(dns_addr("multi.test", AF_UNSPEC, &a, &n), DNS_OK);
	assert_int_equal(n, 3);
	free(a);
	assert_int_equal(dns_addr("nothing.test", AF_UNSPEC, &a, &n),
	    DNS_TEMPFAIL);
	assert_int_equal(dns_addr("nothing.test", AF_INET6, &a, &n),
	    DNS_TEMPFAIL);
}

static void
test_bad_names(void **state)
{
	char name[300], **txt;
	struct dns_mx *mx;
	size_t n;

	(void)state;
	assert_int_equal(dns_txt("", &txt, &n), DNS_BADNAME);
	assert_int_equal(dns_txt(".", &txt, &n), DNS_BADNAME);
	assert_int_equal(dns_txt("a..test", &txt, &n), DNS_BADNAME);
	assert_int_equal(dns_txt(".a.test", &txt, &n), DNS_BADNAME);
	assert_int_equal(dns_txt("a.test..", &txt, &n), DNS_BADNAME);
	assert_int_equal(dns_txt("exa mple.test", &txt, &n), DNS_BADNAME);
	assert_int_equal(dns_txt("a\\.test", &txt, &n), DNS_BADNAME);
	assert_int_equal(dns_txt("b\xc3\xa9.test", &txt, &n), DNS_BADNAME);
	assert_int_equal(dns_mx("a/b.test", &mx, &n), DNS_BADNAME);
	assert_null(txt);
	assert_null(mx);
	/* labels of 63 are fine, 64 are not */
	memset(name, 'a', 63);
	snprintf(name + 63, sizeof(name) - 63, ".test");
	assert_true(dns_name_valid(name));
	memset(name, 'a', 64);
	snprintf(name + 64, sizeof(name) - 64, ".test");
	assert_false(dns_name_valid(name));
	/* 253 characters are fine (with or without the root dot), 254 not */
	memset(name, 'a', sizeof(name));
	for (n = 63; n < 253; n += 64)
		name[n] = '.';
	name[253] = '\0';
	assert_true(dns_name_valid(name));
	name[253] = '.';
	name[254] = '\0';
	assert_true(dns_name_valid(name));
	name[253] = 'a';
	assert_false(dns_name_valid(name));
	assert_int_equal(dns_txt(name, &txt, &n), DNS_BADNAME);
	assert_true(dns_name_valid("_dmarc.x-1.test"));
	assert_false(dns_name_valid(NULL));
	assert_string_equal(dns_strerror(DNS_TEMPFAIL), "tempfail");
}

static void
test_dmarc_policies(void **state)
{
	enum dmarc_p p = DMARC_TEMPFAIL;

	(void)state;
	NEED_DNSMASQ();
	assert_int_equal(dmarc_policy("reject.test", &p), DMARC_REJECT);
	assert_int_equal(p, DMARC_REJECT);
	assert_int_equal(dmarc_policy("Quar.Test.", NULL), DMARC_QUARANTINE);
	assert_int_equal(dmarc_policy("none.test", &p), DMARC_NONE);
	assert_int_equal(p, DMARC_NONE);
	/* no record at all, at either place */
	assert_int_equal(dmarc_policy("nothing.test", &p), DMARC_NONE);
	assert_int_equal(dmarc_policy("a.b.nothing.test", &p), DMARC_NONE);
	/* the organizational domain's sp= for a subdomain, p= for itself */
	assert_int_equal(dmarc_policy("org.test", &p), DMARC_REJECT);
	assert_int_equal(dmarc_policy("sub.org.test", &p), DMARC_QUARANTINE);
	assert_int_equal(dmarc_policy("a.b.c.org.test", &p),
	    DMARC_QUARANTINE);
	/* no sp=: p= applies to subdomains */
	assert_int_equal(dmarc_policy("deep.sub.orgp.test", &p),
	    DMARC_REJECT);
	/* a record split over strings */
	assert_int_equal(dmarc_policy("multi.test", &p), DMARC_REJECT);
	/* two DMARC records: none (RFC 7489 6.6.3 step 5) */
	assert_int_equal(dmarc_policy("two.test", &p), DMARC_NONE);
	/* other TXT records beside the one DMARC record do not count */
	assert_int_equal(dmarc_policy("mixed.test", &p), DMARC_QUARANTINE);
	/* a malformed DMARC record at the From: domain ends discovery: the
	 * organizational domain's p=reject is not consulted */
	assert_int_equal(dmarc_policy("sub.badorg.test", &p), DMARC_NONE);
	/* a record that is not DMARC is no record: on to the org domain */
	assert_int_equal(dmarc_policy("sub.spf.test", &p), DMARC_NONE);
	/* not a host name: no record can exist */
	assert_int_equal(dmarc_policy("bad domain", &p), DMARC_NONE);
	assert_int_equal(dmarc_policy("", &p), DMARC_NONE);
	assert_string_equal(dmarc_name(DMARC_QUARANTINE), "quarantine");
}

/* A UDP socket that reads nothing and answers nothing. */
static int
black_hole(int *port)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	int fd;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_DGRAM, 0)) == -1)
		return -1;
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sin, &sl) == -1) {
		close(fd);
		return -1;
	}
	*port = ntohs(sin.sin_port);
	return fd;
}

static double
since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) +
	    (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static void
test_timeout(void **state)
{
	struct timespec t0;
	enum dmarc_p p;
	char **txt;
	size_t n;
	int fd, port = 0;
	double el;

	(void)state;
	assert_int_not_equal(fd = black_hole(&port), -1);
	free(cfg.dns_resolver);
	cfg.dns_resolver = xasprintf("127.0.0.1:%d", port);
	cfg.dns_timeout_ms = 1000;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(dns_txt("_dmarc.reject.test", &txt, &n),
	    DNS_TEMPFAIL);
	el = since(&t0);
	assert_null(txt);
	assert_true(el >= 0.9 && el < 2.5);
	/* a tempfail is remembered (DNS_FAIL_TTL): the next caller is told
	 * at once instead of waiting out the timeout again */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(dns_txt("_dmarc.reject.test", &txt, &n),
	    DNS_TEMPFAIL);
	assert_true(since(&t0) < 0.5);
	/* forgotten with the cache, and DMARC says so */
	dns_cache_flush();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(dmarc_policy("reject.test", &p), DMARC_TEMPFAIL);
	assert_int_equal(p, DMARC_TEMPFAIL);
	assert_true(since(&t0) >= 0.9);
	/* 300 ms is rounded up to libresolv's one second */
	cfg.dns_timeout_ms = 300;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(dns_txt("x.test", &txt, &n), DNS_TEMPFAIL);
	el = since(&t0);
	assert_true(el >= 0.9 && el < 2.5);
	close(fd);
	/* nothing listening: refused at once, still a tempfail */
	dns_cache_flush();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(dns_txt("x.test", &txt, &n), DNS_TEMPFAIL);
	assert_true(since(&t0) < 0.9);
}

static void
test_cache_hit_and_flush(void **state)
{
	char **txt;
	struct dns_mx *mx;
	size_t n;

	(void)state;
	NEED_DNSMASQ();
	assert_int_equal(dmarc_policy("reject.test", NULL), DMARC_REJECT);
	assert_int_equal(dns_mx("mx.test", &mx, &n), DNS_OK);
	free(mx);
	assert_int_equal(dns_txt("_dmarc.nothing.test", &txt, &n),
	    DNS_NXDOMAIN);
	stop_dnsmasq();
	/* the server is gone; answers and the negative answer remain */
	assert_int_equal(dmarc_policy("reject.test", NULL), DMARC_REJECT);
	assert_int_equal(dns_txt("_dmarc.reject.test", &txt, &n), DNS_OK);
	assert_string_equal(txt[0], "v=DMARC1; p=reject");
	dns_txt_free(txt, n);
	assert_int_equal(dns_mx("mx.test", &mx, &n), DNS_OK);
	assert_int_equal(n, 4);
	free(mx);
	assert_int_equal(dns_txt("_dmarc.nothing.test", &txt, &n),
	    DNS_NXDOMAIN);
	/* a type is part of the key */
	assert_int_equal(dns_txt("mx.test", &txt, &n), DNS_TEMPFAIL);
	dns_cache_flush();
	assert_int_equal(dns_txt("_dmarc.reject.test", &txt, &n),
	    DNS_TEMPFAIL);
	assert_int_equal(dmarc_policy("reject.test", NULL), DMARC_TEMPFAIL);
}

static void
test_cache_ttl(void **state)
{
	struct timespec ts = { 2, 200 * 1000 * 1000 };
	char **txt;
	size_t n;

	(void)state;
	NEED_DNSMASQ();
	stop_dnsmasq();
	assert_int_equal(start_dnsmasq(1), 0);
	assert_int_equal(dns_txt("a.test", &txt, &n), DNS_OK);
	dns_txt_free(txt, n);
	stop_dnsmasq();
	assert_int_equal(dns_txt("a.test", &txt, &n), DNS_OK);
	dns_txt_free(txt, n);
	nanosleep(&ts, NULL);
	assert_int_equal(dns_txt("a.test", &txt, &n), DNS_TEMPFAIL);
}

static void
test_cache_lru_and_off(void **state)
{
	char **txt;
	size_t n;

	(void)state;
	NEED_DNSMASQ();
	cfg.dns_cache_entries = 2;
	assert_int_equal(dns_txt("a.test", &txt, &n), DNS_OK);
	dns_txt_free(txt, n);
	assert_int_equal(dns_txt("b.test", &txt, &n), DNS_OK);
	dns_txt_free(txt, n);
	/* a used again: b is now the least recently used */
	assert_int_equal(dns_txt("a.test", &txt, &n), DNS_OK);
	dns_txt_free(txt, n);
	assert_int_equal(dns_txt("c.test", &txt, &n), DNS_OK);
	dns_txt_free(txt, n);
	/* with cache off nothing new is kept */
	cfg.dns_cache_entries = 0;
	assert_int_equal(dns_txt("_dmarc.reject.test", &txt, &n), DNS_OK);
	dns_txt_free(txt, n);
	stop_dnsmasq();
	assert_int_equal(dns_txt("a.test", &txt, &n), DNS_OK);
	assert_string_equal(txt[0], "one");
	dns_txt_free(txt, n);
	assert_int_equal(dns_txt("c.test", &txt, &n), DNS_OK);
	assert_string_equal(txt[0], "three");
	dns_txt_free(txt, n);
	assert_int_equal(dns_txt("b.test", &txt, &n), DNS_TEMPFAIL);
	assert_int_equal(dns_txt("_dmarc.reject.test", &txt, &n),
	    DNS_TEMPFAIL);
}

static void
test_ipv6(void **state)
{
	char **txt;
	size_t n;

	(void)state;
	NEED_DNSMASQ();
	if (!have_v6)
		skip();
	free(cfg.dns_resolver);
	cfg.dns_resolver = xasprintf("[::1]:%d", dnsmasq_port);
	assert_int_equal(dns_txt("_dmarc.quar.test", &txt, &n), DNS_OK);
	assert_string_equal(txt[0], "v=DMARC1; p=quarantine; pct=50");
	dns_txt_free(txt, n);
	/* TCP over IPv6 too */
	assert_int_equal(dns_txt("big.test", &txt, &n), DNS_OK);
	dns_txt_free(txt, n);
}

static void
test_resolver_syntax(void **state)
{
	static const char *const good[] = { "", "127.0.0.1", "10.0.0.1:53",
	    "127.0.0.1:65535", "::1", "[::1]", "[::1]:5353",
	    "2001:db8::1", "[2001:db8::1]:53" };
	static const char *const bad[] = { "localhost", "127.0.0.1:",
	    "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:+53",
	    "127.0.0.1:53x", "[::1", "[::1]53", "[127.0.0.1]:53",
	    "1.2.3", "[::1]:", "::1:53:zz" };
	char err[256], **txt;
	size_t i, n;

	(void)state;
	for (i = 0; i < NELEM(good); i++) {
		free(cfg.dns_resolver);
		cfg.dns_resolver = xstrdup(good[i]);
		assert_int_equal(dns_check_config(err, sizeof(err)), 0);
	}
	for (i = 0; i < NELEM(bad); i++) {
		free(cfg.dns_resolver);
		cfg.dns_resolver = xstrdup(bad[i]);
		err[0] = '\0';
		assert_int_equal(dns_check_config(err, sizeof(err)), -1);
		assert_non_null(strstr(err, "dns_resolver"));
	}
	/* a bad resolver is a tempfail, not a crash */
	assert_int_equal(dns_txt("a.test", &txt, &n), DNS_TEMPFAIL);
}

#define THREADS		4
#define ROUNDS		200

static void *
worker(void *arg)
{
	static const char *const doms[] = { "reject.test", "quar.test",
	    "none.test", "sub.org.test", "nothing.test" };
	static const enum dmarc_p want[] = { DMARC_REJECT, DMARC_QUARANTINE,
	    DMARC_NONE, DMARC_QUARANTINE, DMARC_NONE };
	long id = (long)(intptr_t)arg, bad = 0;
	struct dns_mx *mx;
	size_t n;
	int i;

	for (i = 0; i < ROUNDS; i++) {
		size_t k = (size_t)(i + id) % NELEM(doms);

		if (dmarc_policy(doms[k], NULL) != (int)want[k])
			bad++;
		if (dns_mx("mx.test", &mx, &n) != DNS_OK || n != 4)
			bad++;
		free(mx);
		if (id == 0 && i % 50 == 0)
			dns_cache_flush();
	}
	return (void *)(intptr_t)bad;
}

static void
test_threads(void **state)
{
	pthread_t t[THREADS];
	void *bad;
	long i;

	(void)state;
	NEED_DNSMASQ();
	cfg.dns_cache_entries = 3;	/* plenty of evictions too */
	for (i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, worker,
		    (void *)(intptr_t)i), 0);
	for (i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(t[i], &bad), 0);
		assert_int_equal((intptr_t)bad, 0);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_txt, setup),
		cmocka_unit_test_setup(test_nxdomain_nodata, setup),
		cmocka_unit_test_setup(test_mx, setup),
		cmocka_unit_test_setup(test_addr, setup),
		cmocka_unit_test_setup(test_addr_tempfail, setup),
		cmocka_unit_test_setup(test_bad_names, setup),
		cmocka_unit_test_setup(test_dmarc_policies, setup),
		cmocka_unit_test_setup(test_ipv6, setup),
		cmocka_unit_test_setup(test_threads, setup),
		cmocka_unit_test_setup(test_timeout, setup),
		cmocka_unit_test_setup(test_resolver_syntax, setup),
		cmocka_unit_test_setup(test_cache_hit_and_flush, setup),
		cmocka_unit_test_setup(test_cache_lru_and_off, setup),
		cmocka_unit_test_setup(test_cache_ttl, setup),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
