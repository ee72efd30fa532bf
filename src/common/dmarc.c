/* SPDX-License-Identifier: MIT */
/*
 * dmarc.c - DMARC policy records (RFC 7489 6.3, 6.4) and discovery (6.6.3).
 *
 * The parser walks the record once, tag by tag (tags split at ';', name and
 * value at the first '=', whitespace around both trimmed), without copying
 * it.  It leans towards finding a policy where the RFC leaves room: the
 * only use here is to decide whether a list must rewrite From:, and a
 * needless rewrite is harmless while a missed one gets posts rejected.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmarc.h"
#include "dns.h"
#include "log.h"
#include "xalloc.h"

#define DMARC_TAG_NAME_MAX	32

/* A tag as pointers into the record: name [n, ne), value [v, ve). */
struct dmarc_tag {
	const char	*n, *ne, *v, *ve;
};

static int
dmarc_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* dmarc_next_tag - the next non-empty tag from *s; 1 and *t, 0 at the end,
 * -1 if malformed (no '=', bad name). */
static int
dmarc_next_tag(const char **s, struct dmarc_tag *t)
{
	const char *p = *s, *end, *eq, *q;

	for (;;) {
		while (dmarc_ws(*p))
			p++;
		if (*p == '\0') {
			*s = p;
			return 0;
		}
		if (*p != ';')
			break;
		p++;			/* an empty tag */
	}
	end = strchr(p, ';');
	if (end == NULL)
		end = p + strlen(p);
	*s = *end == ';' ? end + 1 : end;
	if ((eq = memchr(p, '=', (size_t)(end - p))) == NULL)
		return -1;
	t->n = p;
	for (t->ne = eq; t->ne > p && dmarc_ws(t->ne[-1]); t->ne--)
		;
	/* tag-name = ALPHA *(ALPHA / DIGIT / "_") */
	if (t->ne == p || !isalpha((unsigned char)*p) ||
	    t->ne - p > DMARC_TAG_NAME_MAX)
		return -1;
	for (q = p; q < t->ne; q++)
		if (!isascii((unsigned char)*q) ||
		    !(isalnum((unsigned char)*q) || *q == '_'))
			return -1;
	for (t->v = eq + 1; t->v < end && dmarc_ws(*t->v); t->v++)
		;
	for (t->ve = end; t->ve > t->v && dmarc_ws(t->ve[-1]); t->ve--)
		;
	return 1;
}

/* dmarc_is - 1 if [s, e) is word, ignoring case. */
static int
dmarc_is(const char *s, const char *e, const char *word)
{
	size_t l = strlen(word);

	return (size_t)(e - s) == l && strncasecmp(s, word, l) == 0;
}

static int
dmarc_policy_word(const char *s, const char *e, enum dmarc_p *p)
{
	if (dmarc_is(s, e, "none"))
		*p = DMARC_NONE;
	else if (dmarc_is(s, e, "quarantine"))
		*p = DMARC_QUARANTINE;
	else if (dmarc_is(s, e, "reject"))
		*p = DMARC_REJECT;
	else
		return -1;
	return 0;
}

int
dmarc_is_dmarc(const char *record)
{
	struct dmarc_tag t;
	const char *s = record;

	if (record == NULL || strnlen(record, DMARC_RECORD_MAX + 1) >
	    DMARC_RECORD_MAX)
		return 0;
	/* the very first thing, so not after an empty tag either */
	while (dmarc_ws(*s))
		s++;
	if (*s == ';')
		return 0;
	return dmarc_next_tag(&s, &t) == 1 && dmarc_is(t.n, t.ne, "v") &&
	    dmarc_is(t.v, t.ve, "DMARC1");
}

int
dmarc_parse(const char *record, struct dmarc_record *out)
{
	static const char *const known[] = { "v", "p", "sp", "pct", "adkim",
	    "aspf", "rua", "ruf", "fo", "rf", "ri" };
	struct dmarc_tag t;
	const char *s = record;
	unsigned seen = 0;
	size_t k;
	int r, has_p = 0, has_sp = 0, bad_sp = 0;
	char *end;
	long v;

	memset(out, 0, sizeof(*out));
	out->pct = 100;
	if (!dmarc_is_dmarc(record))
		return -1;
	while ((r = dmarc_next_tag(&s, &t)) == 1) {
		for (k = 0; k < NELEM(known); k++)
			if (dmarc_is(t.n, t.ne, known[k]))
				break;
		if (k == NELEM(known))
			continue;	/* unknown tags MUST be ignored */
		if (seen & (1u << k))
			return -1;
		seen |= 1u << k;
		if (dmarc_is(t.n, t.ne, "p")) {
			has_p = dmarc_policy_word(t.v, t.ve, &out->p) == 0;
		} else if (dmarc_is(t.n, t.ne, "sp")) {
			has_sp = dmarc_policy_word(t.v, t.ve, &out->sp) == 0;
			bad_sp = !has_sp;
		} else if (dmarc_is(t.n, t.ne, "pct")) {
			/* 1*3DIGIT; strtol would also take "+5" or " 5" */
			if (t.ve - t.v < 1 || t.ve - t.v > 3 ||
			    !isdigit((unsigned char)*t.v))
				continue;
			v = strtol(t.v, &end, 10);
			if (end == t.ve && v <= 100)
				out->pct = (int)v;
		} else if (dmarc_is(t.n, t.ne, "adkim")) {
			out->adkim_strict = dmarc_is(t.v, t.ve, "s");
		} else if (dmarc_is(t.n, t.ne, "aspf")) {
			out->aspf_strict = dmarc_is(t.v, t.ve, "s");
		} else if (dmarc_is(t.n, t.ne, "rua")) {
			out->has_rua = memchr(t.v, ':',
			    (size_t)(t.ve - t.v)) != NULL;
		}
	}
	if (r == -1)
		return -1;
	if (!has_p || bad_sp) {
		/* RFC 7489 6.6.3 step 6 */
		if (!out->has_rua)
			return -1;
		out->p = out->sp = DMARC_NONE;
		return 0;
	}
	if (!has_sp)
		out->sp = out->p;
	return 0;
}

const char *
dmarc_org_domain(const char *domain)
{
	static const char *const sld[] = { "ac", "co", "com", "edu", "gov",
	    "mil", "ne", "net", "or", "org" };
	const char *dot[3] = { NULL, NULL, NULL };	/* the last dots */
	const char *p, *second;
	size_t i, n = 0, l;

	for (p = domain + strlen(domain); p > domain && n < 3; p--)
		if (p[-1] == '.')
			dot[n++] = p - 1;
	if (n < 2)
		return domain;	/* one or two labels */
	if (strlen(dot[0] + 1) == 2) {
		second = dot[1] + 1;
		l = (size_t)(dot[0] - second);
		for (i = 0; i < NELEM(sld); i++)
			if (strlen(sld[i]) == l &&
			    strncasecmp(second, sld[i], l) == 0)
				return n == 3 ? dot[2] + 1 : domain;
	}
	return dot[1] + 1;
}

const char *
dmarc_name(enum dmarc_p p)
{
	switch (p) {
	case DMARC_NONE:
		return "none";
	case DMARC_QUARANTINE:
		return "quarantine";
	case DMARC_REJECT:
		return "reject";
	case DMARC_TEMPFAIL:
		return "tempfail";
	}
	return "?";
}

#define DMARC_L_FOUND	0
#define DMARC_L_ABSENT	1	/* no DMARC record: look further */
#define DMARC_L_UNUSABLE	2	/* several, or malformed: no policy */
#define DMARC_L_TEMPFAIL	3

/* dmarc_lookup - the DMARC record at _dmarc.<domain>. */
static int
dmarc_lookup(const char *domain, struct dmarc_record *rec)
{
	char name[DNS_NAME_MAX + 2], **txt;
	size_t n, i, found = 0, which = 0;
	int rc;

	if ((size_t)snprintf(name, sizeof(name), "_dmarc.%s", domain) >=
	    sizeof(name))
		return DMARC_L_ABSENT;	/* too long to exist */
	rc = dns_txt(name, &txt, &n);
	if (rc == DNS_TEMPFAIL)
		return DMARC_L_TEMPFAIL;
	if (rc != DNS_OK)
		return DMARC_L_ABSENT;
	for (i = 0; i < n; i++)
		if (dmarc_is_dmarc(txt[i])) {
			found++;
			which = i;
		}
	if (found == 0)
		rc = DMARC_L_ABSENT;
	else if (found > 1)
		rc = DMARC_L_UNUSABLE;
	else
		rc = dmarc_parse(txt[which], rec) == 0 ? DMARC_L_FOUND :
		    DMARC_L_UNUSABLE;
	if (rc == DMARC_L_UNUSABLE)
		log_info("dmarc: %s: %s, no policy applies", name,
		    found > 1 ? "several DMARC records" : "malformed record");
	dns_txt_free(txt, n);
	return rc;
}

int
dmarc_policy(const char *from_domain, enum dmarc_p *policy)
{
	char d[DNS_NAME_MAX + 1];
	struct dmarc_record rec;
	const char *org;
	size_t i;
	int rc, res = DMARC_NONE;

	if (!dns_name_valid(from_domain))
		goto out;
	for (i = 0; from_domain[i] != '\0' && i < DNS_NAME_MAX; i++)
		d[i] = (char)tolower((unsigned char)from_domain[i]);
	d[i] = '\0';
	if (i > 0 && d[i - 1] == '.')
		d[i - 1] = '\0';
	rc = dmarc_lookup(d, &rec);
	if (rc == DMARC_L_FOUND) {
		res = rec.p;
		goto out;
	}
	if (rc != DMARC_L_ABSENT) {
		res = rc == DMARC_L_TEMPFAIL ? DMARC_TEMPFAIL : DMARC_NONE;
		goto out;
	}
	org = dmarc_org_domain(d);
	if (org == d)
		goto out;
	rc = dmarc_lookup(org, &rec);
	if (rc == DMARC_L_FOUND)
		res = rec.sp;
	else if (rc == DMARC_L_TEMPFAIL)
		res = DMARC_TEMPFAIL;
out:
	if (policy != NULL)
		*policy = (enum dmarc_p)res;
	return res;
}
