/* SPDX-License-Identifier: MIT */
/*
 * dns.c - TXT, MX, A and AAAA lookups through glibc's libresolv, with a
 * cache.
 *
 * res_nmkquery + res_nsend rather than res_nquery: res_nquery hides the
 * length of a negative answer, and its SOA is what says how long to cache
 * it.  res_nsend checks that the reply matches the question, retries over
 * TCP when it is truncated and fails on SERVFAIL/REFUSED.
 *
 * Each call owns a struct __res_state (res_ninit .. res_nclose), so there is
 * no shared resolver state to lock; the cache is one hash table plus an LRU
 * list under one mutex, holding whole answer packets that are parsed again
 * on every hit (cheap, and one code path for fresh and cached answers).
 * What a lookup trusts: nothing in the answer beyond its bounds; names are
 * checked before they reach res_nmkquery, which would read '\\' escapes.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <resolv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "dns.h"
#include "log.h"
#include "metrics.h"
#include "xalloc.h"

#define DNS_ANSWER_MAX	65536		/* a TCP answer at most */
#define DNS_BUCKETS_MAX	65536

struct dns_entry {
	struct dns_entry *hnext;		/* hash chain */
	struct dns_entry *prev, *next;		/* LRU, most recent first */
	uint32_t	 hash;
	int		 type;
	int		 rc;			/* DNS_OK, DNS_NXDOMAIN or DNS_TEMPFAIL */
	int64_t		 expires;		/* CLOCK_MONOTONIC, ms */
	int		 len;
	unsigned char	*pkt;
	char		 name[DNS_NAME_MAX + 1];
};

static pthread_mutex_t dns_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dns_entry **dns_buckets;
static size_t dns_nbuckets, dns_count;
static struct dns_entry *dns_head, *dns_tail;

static pthread_once_t dns_metrics_once = PTHREAD_ONCE_INIT;
static struct metric *m_ok, *m_nx, *m_temp, *m_hits, *m_queries;

static void
dns_metrics_init(void)
{
	static const char help[] = "DNS lookups answered, by result";

	m_ok = metric_counter("dns_lookups_total", help, "result=\"ok\"");
	m_nx = metric_counter("dns_lookups_total", help,
	    "result=\"nxdomain\"");
	m_temp = metric_counter("dns_lookups_total", help,
	    "result=\"tempfail\"");
	m_hits = metric_counter("dns_cache_hits_total",
	    "DNS lookups answered from the cache", NULL);
	m_queries = metric_counter("dns_queries_total",
	    "DNS queries sent to a server", NULL);
}

/* dns_now - milliseconds: whole seconds would cut a 1 s TTL short. */
static int64_t
dns_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *
dns_strerror(int rc)
{
	switch (rc) {
	case DNS_OK:
		return "ok";
	case DNS_NXDOMAIN:
		return "nxdomain";
	case DNS_TEMPFAIL:
		return "tempfail";
	case DNS_BADNAME:
		return "badname";
	}
	return "unknown";
}

int
dns_name_valid(const char *name)
{
	size_t len, label = 0, i;

	if (name == NULL)
		return 0;
	len = strlen(name);
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > DNS_NAME_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!isascii(c) || !(isalnum(c) || c == '-' || c == '_'))
			return 0;
		if (++label > DNS_LABEL_MAX)
			return 0;
	}
	return label > 0;
}

/* dns_normalize - lower case, no trailing dot; 0, or -1 if invalid. */
static int
dns_normalize(const char *name, char out[DNS_NAME_MAX + 1])
{
	size_t i;

	if (!dns_name_valid(name))
		return -1;
	for (i = 0; name[i] != '\0' && i < DNS_NAME_MAX; i++)
		out[i] = (char)tolower((unsigned char)name[i]);
	out[i] = '\0';
	if (i > 0 && out[i - 1] == '.')
		out[i - 1] = '\0';
	return 0;
}

/* dns_parse_port - "1".."65535" only. */
static int
dns_parse_port(const char *s, in_port_t *port)
{
	char *end;
	long v;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 1 || v > 65535)
		return -1;
	*port = htons((uint16_t)v);
	return 0;
}

/* dns_parse_server - "ip", "ip:port", "v6", "[v6]" or "[v6]:port" into
 * sin or sin6; returns AF_INET, AF_INET6 or -1. */
static int
dns_parse_server(const char *spec, struct sockaddr_in *sin,
    struct sockaddr_in6 *sin6)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *port = NULL;
	in_port_t p = htons(NS_DEFAULTPORT);
	size_t hl;

	memset(sin, 0, sizeof(*sin));
	memset(sin6, 0, sizeof(*sin6));
	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');

		if (close == NULL || (close[1] != '\0' && close[1] != ':'))
			return -1;
		hl = (size_t)(close - spec - 1);
		if (hl >= sizeof(host))
			return -1;
		memcpy(host, spec + 1, hl);
		host[hl] = '\0';
		if (close[1] == ':')
			port = close + 2;
		if (port != NULL && dns_parse_port(port, &p) == -1)
			return -1;
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = p;
		return AF_INET6;
	}
	colon = strchr(spec, ':');
	if (colon != NULL && strchr(colon + 1, ':') != NULL) {
		/* two colons: a bare IPv6 address, default port */
		if (inet_pton(AF_INET6, spec, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = p;
		return AF_INET6;
	}
	hl = colon ? (size_t)(colon - spec) : strlen(spec);
	if (hl >= sizeof(host))
		return -1;
	memcpy(host, spec, hl);
	host[hl] = '\0';
	if (colon != NULL && dns_parse_port(colon + 1, &p) == -1)
		return -1;
	if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
		return -1;
	sin->sin_family = AF_INET;
	sin->sin_port = p;
	return AF_INET;
}

int
dns_check_config(char *err, size_t errlen)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;

	if (cfg.dns_resolver == NULL || cfg.dns_resolver[0] == '\0')
		return 0;
	if (dns_parse_server(cfg.dns_resolver, &sin, &sin6) == -1) {
		snprintf(err, errlen, "dns_resolver: \"%s\" is not ip, "
		    "ip:port or [ipv6]:port", cfg.dns_resolver);
		return -1;
	}
	return 0;
}

/*
 * dns_set_server - make st ask only spec.  glibc keeps IPv6 servers out of
 * nsaddr_list: sin_family 0 there means "see _u._ext.nsaddrs[i]", a
 * malloc'd sockaddr_in6 that res_nclose frees, as it frees the copies
 * res_nsend makes of IPv4 entries.  Copies res_ninit made for servers
 * beyond the new nscount would leak, so they go first.
 */
static int
dns_set_server(struct __res_state *st, const char *spec)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6, *p6;
	int af, i;

	if ((af = dns_parse_server(spec, &sin, &sin6)) == -1)
		return -1;
	for (i = 0; i < MAXNS; i++) {
		free(st->_u._ext.nsaddrs[i]);
		st->_u._ext.nsaddrs[i] = NULL;
	}
	if (af == AF_INET) {
		st->nsaddr_list[0] = sin;
	} else {
		p6 = xmalloc(sizeof(*p6));
		*p6 = sin6;
		memset(&st->nsaddr_list[0], 0, sizeof(st->nsaddr_list[0]));
		st->_u._ext.nsaddrs[0] = p6;
	}
	st->nscount = 1;
	return 0;
}

/* dns_query - send one query; returns the answer's length or -1. */
static int
dns_query(int type, const char *name, unsigned char *ans, int anslen)
{
	struct __res_state st;
	unsigned char q[NS_PACKETSZ];
	const char *server = cfg.dns_resolver ? cfg.dns_resolver : "";
	int qlen, n, saved;

	memset(&st, 0, sizeof(st));
	if (res_ninit(&st) == -1) {
		/* state half made: res_nclose could close fd 0 */
		log_warnx("dns: res_ninit failed");
		return -1;
	}
	st.retrans = (cfg.dns_timeout_ms + 999) / 1000;
	if (st.retrans < 1)
		st.retrans = 1;
	st.retry = 1;
	st.options &= ~(RES_DNSRCH | RES_DEFNAMES);
	if (server[0] != '\0' && dns_set_server(&st, server) == -1) {
		res_nclose(&st);
		log_warnx("dns: bad dns_resolver \"%s\"", server);
		return -1;
	}
	qlen = res_nmkquery(&st, ns_o_query, name, ns_c_in, type, NULL, 0,
	    NULL, q, sizeof(q));
	if (qlen < 0) {
		res_nclose(&st);
		return -1;
	}
	metric_add(m_queries, 1);
	n = res_nsend(&st, q, qlen, ans, anslen);
	saved = errno;
	res_nclose(&st);
	errno = saved;
	return n;
}

/* dns_classify - DNS_OK/NXDOMAIN/TEMPFAIL of an answer and how long it
 * may be cached (0: not at all).  Unparseable answers are TEMPFAIL. */
static int
dns_classify(int type, const unsigned char *pkt, int len, time_t *ttl)
{
	ns_msg msg;
	ns_rr rr;
	uint32_t min = UINT32_MAX;
	int i, count, rcode;

	*ttl = 0;
	if (ns_initparse(pkt, len, &msg) == -1)
		return DNS_TEMPFAIL;
	rcode = ns_msg_getflag(msg, ns_f_rcode);
	if (rcode != ns_r_noerror && rcode != ns_r_nxdomain)
		return DNS_TEMPFAIL;
	count = 0;
	for (i = 0; i < ns_msg_count(msg, ns_s_an); i++) {
		if (ns_parserr(&msg, ns_s_an, i, &rr) == -1)
			return DNS_TEMPFAIL;
		if ((int)ns_rr_type(rr) != type || ns_rr_class(rr) != ns_c_in)
			continue;
		count++;
		if (ns_rr_ttl(rr) < min)
			min = ns_rr_ttl(rr);
	}
	if (rcode == ns_r_noerror && count > 0) {
		*ttl = min > DNS_TTL_MAX ? DNS_TTL_MAX : (time_t)min;
		return DNS_OK;
	}
	/* negative: RFC 2308 5, min(SOA TTL, SOA minimum) */
	*ttl = DNS_NEG_TTL_NOSOA;
	for (i = 0; i < ns_msg_count(msg, ns_s_ns); i++) {
		if (ns_parserr(&msg, ns_s_ns, i, &rr) == -1)
			return DNS_TEMPFAIL;
		if (ns_rr_type(rr) == ns_t_soa && ns_rr_rdlen(rr) >= 22) {
			/* SOA rdata ends with 5 32-bit fields; MINIMUM last */
			min = ns_get32(ns_rr_rdata(rr) + ns_rr_rdlen(rr) - 4);
			if (ns_rr_ttl(rr) < min)
				min = ns_rr_ttl(rr);
			*ttl = (time_t)min;
			break;
		}
	}
	if (*ttl > DNS_NEG_TTL_MAX)
		*ttl = DNS_NEG_TTL_MAX;
	return DNS_NXDOMAIN;
}

static const char *
dns_type_name(int type)
{
	switch (type) {
	case ns_t_txt:
		return "TXT";
	case ns_t_mx:
		return "MX";
	case ns_t_a:
		return "A";
	case ns_t_aaaa:
		return "AAAA";
	}
	return "?";
}

static uint32_t
dns_hash(int type, const char *name)
{
	uint32_t h = 2166136261u ^ (uint32_t)type;

	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 16777619u;
	return h;
}

/* The cache; every function below runs with dns_lock held. */

static void
dns_lru_unlink(struct dns_entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		dns_head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		dns_tail = e->prev;
	e->prev = e->next = NULL;
}

static void
dns_lru_push(struct dns_entry *e)
{
	e->prev = NULL;
	e->next = dns_head;
	if (dns_head)
		dns_head->prev = e;
	dns_head = e;
	if (dns_tail == NULL)
		dns_tail = e;
}

static void
dns_entry_remove(struct dns_entry *e)
{
	struct dns_entry **pp = &dns_buckets[e->hash & (dns_nbuckets - 1)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	dns_lru_unlink(e);
	dns_count--;
	free(e->pkt);
	free(e);
}

static void
dns_cache_flush_locked(void)
{
	struct dns_entry *e, *next;

	for (e = dns_head; e != NULL; e = next) {
		next = e->next;
		free(e->pkt);
		free(e);
	}
	free(dns_buckets);
	dns_buckets = NULL;
	dns_head = dns_tail = NULL;
	dns_nbuckets = dns_count = 0;
}

void
dns_cache_flush(void)
{
	pthread_mutex_lock(&dns_lock);
	dns_cache_flush_locked();
	pthread_mutex_unlock(&dns_lock);
}

/* dns_cache_get - a copy of a live cached answer, or -1; a remembered
 * failure is DNS_TEMPFAIL with *pkt untouched. */
static int
dns_cache_get(int type, const char *name, unsigned char **pkt, int *len)
{
	struct dns_entry *e;
	uint32_t h = dns_hash(type, name);
	int rc = -1;

	pthread_mutex_lock(&dns_lock);
	if (dns_buckets == NULL)
		goto out;
	for (e = dns_buckets[h & (dns_nbuckets - 1)]; e; e = e->hnext)
		if (e->hash == h && e->type == type &&
		    strcmp(e->name, name) == 0)
			break;
	if (e == NULL)
		goto out;
	if (e->expires <= dns_now()) {
		dns_entry_remove(e);
		goto out;
	}
	dns_lru_unlink(e);
	dns_lru_push(e);
	if ((rc = e->rc) == DNS_TEMPFAIL)
		goto out;
	*pkt = xmalloc((size_t)e->len);
	memcpy(*pkt, e->pkt, (size_t)e->len);
	*len = e->len;
out:
	pthread_mutex_unlock(&dns_lock);
	return rc;
}

static void
dns_cache_put(int type, const char *name, int rc, const unsigned char *pkt,
    int len, time_t ttl)
{
	struct dns_entry *e, **b;
	size_t max = cfg.dns_cache_entries > 0 ?
	    (size_t)cfg.dns_cache_entries : 0;
	uint32_t h = dns_hash(type, name);

	if (max == 0 || ttl <= 0 || len > DNS_CACHE_ANSWER_MAX)
		return;
	pthread_mutex_lock(&dns_lock);
	if (dns_buckets == NULL) {
		for (dns_nbuckets = 16; dns_nbuckets < max &&
		    dns_nbuckets < DNS_BUCKETS_MAX; dns_nbuckets <<= 1)
			;
		dns_buckets = xcalloc(dns_nbuckets, sizeof(*dns_buckets));
	}
	b = &dns_buckets[h & (dns_nbuckets - 1)];
	for (e = *b; e; e = e->hnext)
		if (e->hash == h && e->type == type &&
		    strcmp(e->name, name) == 0)
			break;
	if (e != NULL)		/* another thread got there first */
		dns_entry_remove(e);
	while (dns_count >= max && dns_tail != NULL)
		dns_entry_remove(dns_tail);
	e = xcalloc(1, sizeof(*e));
	e->hash = h;
	e->type = type;
	e->rc = rc;
	e->expires = dns_now() + (int64_t)ttl * 1000;
	e->len = len;
	if (len > 0) {
		e->pkt = xmalloc((size_t)len);
		memcpy(e->pkt, pkt, (size_t)len);
	}
	(void)strlcpy_chk(e->name, name, sizeof(e->name));
	e->hnext = *b;
	*b = e;
	dns_lru_push(e);
	dns_count++;
	pthread_mutex_unlock(&dns_lock);
}

/* dns_resolve - the answer to (type, name) from the cache or a server.
 * On DNS_OK and DNS_NXDOMAIN *pkt is allocated (caller frees). */
static int
dns_resolve(int type, const char *name, unsigned char **pkt, int *len)
{
	unsigned char *ans;
	time_t ttl;
	int n, rc;

	pthread_once(&dns_metrics_once, dns_metrics_init);
	if ((rc = dns_cache_get(type, name, pkt, len)) != -1) {
		metric_add(m_hits, 1);
		metric_add(rc == DNS_OK ? m_ok : rc == DNS_NXDOMAIN ? m_nx :
		    m_temp, 1);
		return rc;
	}
	ans = xmalloc(DNS_ANSWER_MAX);
	if ((n = dns_query(type, name, ans, DNS_ANSWER_MAX)) < 0) {
		log_warnx("dns: %s %s: no answer (%s)", dns_type_name(type),
		    name, errno == ETIMEDOUT ? "timed out" :
		    errno == ECONNREFUSED ? "connection refused" :
		    "server failure");
		rc = DNS_TEMPFAIL;
	} else if ((rc = dns_classify(type, ans, n, &ttl)) == DNS_TEMPFAIL) {
		log_warnx("dns: %s %s: unusable answer", dns_type_name(type),
		    name);
	}
	if (rc == DNS_TEMPFAIL) {
		/* remembered briefly: a domain whose servers time out would
		 * otherwise cost every caller the whole timeout again */
		free(ans);
		dns_cache_put(type, name, rc, NULL, 0, DNS_FAIL_TTL);
		metric_add(m_temp, 1);
		return rc;
	}
	dns_cache_put(type, name, rc, ans, n, ttl);
	metric_add(rc == DNS_OK ? m_ok : m_nx, 1);
	*pkt = ans;
	*len = n;
	return rc;
}

/* dns_txt_join - the strings of one TXT rdata, joined, in buf; -1 if
 * malformed, over DNS_TXT_MAX or holding a NUL. */
static int
dns_txt_join(const unsigned char *p, size_t rdlen, char *buf, size_t size)
{
	const unsigned char *end = p + rdlen;
	size_t off = 0, l;

	while (p < end) {
		l = *p++;
		if (l > (size_t)(end - p) || off + l >= size ||
		    memchr(p, '\0', l) != NULL)
			return -1;
		memcpy(buf + off, p, l);
		off += l;
		p += l;
	}
	buf[off] = '\0';
	return 0;
}

int
dns_txt(const char *name, char ***out, size_t *n)
{
	char norm[DNS_NAME_MAX + 1], *buf;
	unsigned char *pkt;
	ns_msg msg;
	ns_rr rr;
	int i, len, rc;

	*out = NULL;
	*n = 0;
	if (dns_normalize(name, norm) == -1)
		return DNS_BADNAME;
	if ((rc = dns_resolve(ns_t_txt, norm, &pkt, &len)) != DNS_OK) {
		if (rc == DNS_NXDOMAIN)
			free(pkt);
		return rc;
	}
	buf = xmalloc(DNS_TXT_MAX + 1);
	/* dns_classify parsed it all before it was kept */
	(void)ns_initparse(pkt, len, &msg);
	for (i = 0; i < ns_msg_count(msg, ns_s_an) && *n < DNS_RR_MAX; i++) {
		if (ns_parserr(&msg, ns_s_an, i, &rr) == -1)
			break;
		if (ns_rr_type(rr) != ns_t_txt || ns_rr_class(rr) != ns_c_in)
			continue;
		if (dns_txt_join(ns_rr_rdata(rr), ns_rr_rdlen(rr), buf,
		    DNS_TXT_MAX + 1) == -1) {
			log_warnx("dns: TXT %s: record skipped (malformed, "
			    "NUL or over %d bytes)", norm, DNS_TXT_MAX);
			continue;
		}
		*out = xreallocarray(*out, *n + 1, sizeof(**out));
		(*out)[(*n)++] = xstrdup(buf);
	}
	free(buf);
	free(pkt);
	return *n > 0 ? DNS_OK : DNS_NXDOMAIN;
}

char **
dns_txt_free(char **txt, size_t n)
{
	size_t i;

	if (txt == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		free(txt[i]);
	free(txt);
	return NULL;
}

/* dns_mx_host - the exchange of an MX rdata into host; -1 if unusable. */
static int
dns_mx_host(const ns_msg *msg, const ns_rr *rr, char *host, size_t size)
{
	char raw[NS_MAXDNAME];
	size_t l;
	int used;

	if (ns_rr_rdlen(*rr) < 3)
		return -1;
	used = ns_name_uncompress(ns_msg_base(*msg), ns_msg_end(*msg),
	    ns_rr_rdata(*rr) + 2, raw, sizeof(raw));
	if (used < 0 || (size_t)used != ns_rr_rdlen(*rr) - 2u)
		return -1;
	if (strcmp(raw, ".") == 0 || raw[0] == '\0') {
		host[0] = '\0';		/* null MX: no mail (RFC 7505) */
		return 0;
	}
	if (!dns_name_valid(raw) || strlcpy_chk(host, raw, size) == -1)
		return -1;
	for (l = 0; host[l] != '\0'; l++)
		host[l] = (char)tolower((unsigned char)host[l]);
	if (l > 0 && host[l - 1] == '.')
		host[l - 1] = '\0';
	return 0;
}

int
dns_mx(const char *domain, struct dns_mx **out, size_t *n)
{
	char norm[DNS_NAME_MAX + 1];
	struct dns_mx *mx, tmp;
	unsigned char *pkt;
	ns_msg msg;
	ns_rr rr;
	size_t j;
	int i, len, rc;

	*out = NULL;
	*n = 0;
	if (dns_normalize(domain, norm) == -1)
		return DNS_BADNAME;
	if ((rc = dns_resolve(ns_t_mx, norm, &pkt, &len)) != DNS_OK) {
		if (rc == DNS_NXDOMAIN)
			free(pkt);
		return rc;
	}
	mx = xcalloc(DNS_RR_MAX, sizeof(*mx));
	(void)ns_initparse(pkt, len, &msg);
	for (i = 0; i < ns_msg_count(msg, ns_s_an) && *n < DNS_RR_MAX; i++) {
		if (ns_parserr(&msg, ns_s_an, i, &rr) == -1)
			break;
		if (ns_rr_type(rr) != ns_t_mx || ns_rr_class(rr) != ns_c_in)
			continue;
		if (dns_mx_host(&msg, &rr, mx[*n].host,
		    sizeof(mx[*n].host)) == -1) {
			log_warnx("dns: MX %s: unusable record skipped", norm);
			continue;
		}
		mx[*n].pref = ns_get16(ns_rr_rdata(rr));
		/* insertion sort: stable, and n is small */
		tmp = mx[*n];
		for (j = *n; j > 0 && mx[j - 1].pref > tmp.pref; j--)
			mx[j] = mx[j - 1];
		mx[j] = tmp;
		(*n)++;
	}
	free(pkt);
	if (*n == 0) {
		free(mx);
		return DNS_NXDOMAIN;
	}
	*out = mx;
	return DNS_OK;
}

/* dns_addr_one - append the A or AAAA records of norm to out[*n..]
 * (at most DNS_RR_MAX in all); the lookup's result. */
static int
dns_addr_one(const char *norm, int family, struct dns_addr *out, size_t *n)
{
	int type = family == AF_INET ? ns_t_a : ns_t_aaaa;
	size_t len1 = family == AF_INET ? 4 : 16, got = 0;
	unsigned char *pkt;
	ns_msg msg;
	ns_rr rr;
	int i, len, rc;

	if ((rc = dns_resolve(type, norm, &pkt, &len)) != DNS_OK) {
		if (rc == DNS_NXDOMAIN)
			free(pkt);
		return rc;
	}
	(void)ns_initparse(pkt, len, &msg);
	for (i = 0; i < ns_msg_count(msg, ns_s_an) && *n < DNS_RR_MAX; i++) {
		if (ns_parserr(&msg, ns_s_an, i, &rr) == -1)
			break;
		/* a CNAME's target records come along: any of the type will
		 * do, since the server followed the chain for this name */
		if ((int)ns_rr_type(rr) != type ||
		    ns_rr_class(rr) != ns_c_in)
			continue;
		if (ns_rr_rdlen(rr) != len1) {
			log_warnx("dns: %s %s: malformed record skipped",
			    dns_type_name(type), norm);
			continue;
		}
		memset(&out[*n], 0, sizeof(out[*n]));
		out[*n].family = family;
		memcpy(family == AF_INET ? (void *)&out[*n].u.v4 :
		    (void *)&out[*n].u.v6, ns_rr_rdata(rr), len1);
		(*n)++;
		got++;
	}
	free(pkt);
	return got > 0 ? DNS_OK : DNS_NXDOMAIN;
}

int
dns_addr(const char *name, int family, struct dns_addr **out, size_t *n)
{
	char norm[DNS_NAME_MAX + 1];
	struct dns_addr *a;
	int rc4 = DNS_NXDOMAIN, rc6 = DNS_NXDOMAIN;

	*out = NULL;
	*n = 0;
	if (family != AF_INET && family != AF_INET6 && family != AF_UNSPEC)
		return DNS_BADNAME;
	if (dns_normalize(name, norm) == -1)
		return DNS_BADNAME;
	a = xcalloc(DNS_RR_MAX, sizeof(*a));
	if (family != AF_INET6)
		rc4 = dns_addr_one(norm, AF_INET, a, n);
	if (family != AF_INET)
		rc6 = dns_addr_one(norm, AF_INET6, a, n);
	if (*n > 0) {
		*out = a;
		return DNS_OK;
	}
	free(a);
	return rc4 == DNS_TEMPFAIL || rc6 == DNS_TEMPFAIL ? DNS_TEMPFAIL :
	    DNS_NXDOMAIN;
}
