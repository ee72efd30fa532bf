/* SPDX-License-Identifier: MIT */
/*
 * dns.h - TXT, MX, A and AAAA lookups through glibc's libresolv, with a
 * cache.
 *
 * Queries go to cfg.dns_resolver ("ip", "ip:port", "[v6]:port"; empty: the
 * servers of /etc/resolv.conf), each server tried once for
 * cfg.dns_timeout_ms rounded up to whole seconds (libresolv's timer has
 * one-second granularity).  Every call builds and frees its own resolver
 * state, so any thread may call; the cache is shared under a mutex.
 *
 * The cache (cfg.dns_cache_entries answers, 0: none) is keyed by type and
 * name and keeps the answer for its TTL, at most DNS_TTL_MAX; negative
 * answers for the SOA minimum, at most DNS_NEG_TTL_MAX.  Temporary failures
 * are never cached.  When full, the least recently used answer goes.
 */
#ifndef DNS_H
#define DNS_H

#include <stddef.h>

#include <netinet/in.h>

#define DNS_NAME_MAX		253	/* without the trailing dot */
#define DNS_LABEL_MAX		63
#define DNS_TXT_MAX		8192	/* bytes of one TXT record, joined */
#define DNS_RR_MAX		64	/* records taken from one answer */
#define DNS_TTL_MAX		3600	/* seconds an answer is cached */
#define DNS_NEG_TTL_MAX		300	/* ... a negative answer */
#define DNS_NEG_TTL_NOSOA	60	/* ... one that carries no SOA */
#define DNS_CACHE_ANSWER_MAX	4096	/* larger answers are not cached */
#define DNS_FAIL_TTL		30	/* seconds a failed lookup is remembered
					 * (RFC 2308 7: at most 5 minutes) */

/* Results of every lookup. */
#define DNS_OK		0
#define DNS_NXDOMAIN	1	/* no such name, or no record of the type */
#define DNS_TEMPFAIL	2	/* timeout, SERVFAIL, REFUSED: try later */
#define DNS_BADNAME	3	/* not a valid host name; nothing was sent */

/* An exchange; host is "" for a null MX, "no mail here" (RFC 7505). */
struct dns_mx {
	unsigned	 pref;
	char		 host[DNS_NAME_MAX + 1];
};

/* An address of a host (A or AAAA record). */
struct dns_addr {
	int		 family;	/* AF_INET or AF_INET6 */
	union {
		struct in_addr	 v4;
		struct in6_addr	 v6;
	}		 u;
};

/* dns_txt - the TXT records of name, each one's strings joined (RFC 7208
 * 3.3); records over DNS_TXT_MAX or holding a NUL byte are left out.  On
 * DNS_OK *out is an allocated array of *n >= 1 allocated strings (free with
 * dns_txt_free); otherwise *out is NULL and *n 0. */
int	 dns_txt(const char *name, char ***out, size_t *n);
/* dns_txt_free - frees what dns_txt returned; returns NULL. */
char	**dns_txt_free(char **txt, size_t n);
/* dns_mx - the MX records of domain, by preference (equal preferences in
 * the order of the answer; a sender may shuffle them).  On DNS_OK *out is
 * one allocated array of *n >= 1 entries (caller frees); otherwise NULL. */
int	 dns_mx(const char *domain, struct dns_mx **out, size_t *n);
/* dns_addr - the addresses of name: its A records (family AF_INET), its
 * AAAA records (AF_INET6), or both (AF_UNSPEC: the A records first, then
 * the AAAA ones, each in the order of its answer).  With AF_UNSPEC one
 * type's answer is enough: DNS_OK if either has addresses, DNS_NXDOMAIN
 * only if both are negative, else DNS_TEMPFAIL.  Another family is
 * DNS_BADNAME.  On DNS_OK *out is one allocated array of *n >= 1 entries
 * (caller frees); otherwise NULL. */
int	 dns_addr(const char *name, int family, struct dns_addr **out,
	    size_t *n);

/* dns_name_valid - 1 if name (one trailing dot allowed) is at most
 * DNS_NAME_MAX long, with labels of 1..DNS_LABEL_MAX letters, digits, '-'
 * or '_'.  Other bytes (UTF-8, '\\', spaces) are refused: IDNs must come
 * as A-labels. */
int	 dns_name_valid(const char *name);
/* dns_check_config - 0 if cfg.dns_resolver is usable, else -1 with a
 * reason in err (for start-up checks). */
int	 dns_check_config(char *err, size_t errlen);
/* dns_cache_flush - forget every cached answer (tests, reloads). */
void	 dns_cache_flush(void);
/* dns_strerror - "ok", "nxdomain", "tempfail", "badname". */
const char *dns_strerror(int);

#endif
