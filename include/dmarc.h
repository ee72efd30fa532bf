/* SPDX-License-Identifier: MIT */
/*
 * dmarc.h - DMARC policy records (RFC 7489) and policy discovery.
 *
 * A list that sends a post under the poster's From: breaks that domain's
 * DMARC alignment, so messageserver asks dmarc_policy() for the From:
 * domain and rewrites From: unless the answer is DMARC_NONE.  DMARC_TEMPFAIL
 * (the DNS did not answer) is to be treated like a policy: rewriting a
 * From: that did not need it costs little, a rejected post costs the list
 * its deliverability.  Lookups go through dns.h (and its cache).
 */
#ifndef DMARC_H
#define DMARC_H

#define DMARC_RECORD_MAX	4096	/* longer records are refused */

enum dmarc_p {
	DMARC_NONE,
	DMARC_QUARANTINE,
	DMARC_REJECT,
	DMARC_TEMPFAIL,		/* only from dmarc_policy: DNS failed */
};

struct dmarc_record {
	enum dmarc_p	 p;		/* NONE, QUARANTINE or REJECT */
	enum dmarc_p	 sp;		/* for subdomains: p when absent */
	int		 pct;		/* 0..100, 100 when absent */
	int		 adkim_strict;	/* adkim=s */
	int		 aspf_strict;	/* aspf=s */
	int		 has_rua;	/* a rua= tag with a URI in it */
};

/* dmarc_parse - parse one TXT record.  0 and *out filled, or -1 if it is
 * not a DMARC record or is malformed: not starting with v=DMARC1, a tag
 * without '=', a bad tag name, a known tag twice, or over
 * DMARC_RECORD_MAX.  Unknown tags, empty tags (";;") and whitespace around
 * tags, '=' and ';' are fine; tag names and keywords are case-insensitive
 * (DMARC1 too: missing a policy costs more than honouring a sloppy one).
 * A bad pct=, adkim= or aspf= leaves the default.  A missing or
 * bad p= (or bad sp=) with a rua= present reads as p=none (RFC 7489
 * 6.6.3 step 6); without rua= the record is refused. */
int	 dmarc_parse(const char *record, struct dmarc_record *out);

/* dmarc_is_dmarc - 1 if the record starts with a v=DMARC1 tag, the test
 * that decides whether it counts in discovery (RFC 7489 6.6.3 steps 2, 4).
 */
int	 dmarc_is_dmarc(const char *record);

/* dmarc_org_domain - the organizational domain of domain (lower case, no
 * trailing dot), a suffix of it (borrowed).  No Public Suffix List: the
 * last two labels, or the last three when the TLD has two letters and the
 * label before it is a common second level (co, com, org, net, ac, gov,
 * edu, ...), so mail.example.co.uk gives example.co.uk.  Wrong for deeper
 * or rarer public suffixes (a.city.kawasaki.jp gives kawasaki.jp): good
 * enough to find a policy, not a security boundary. */
const char *dmarc_org_domain(const char *domain);

/*
 * dmarc_policy - the policy the owner of from_domain asks receivers to
 * apply: _dmarc.<from_domain>, and if it has no DMARC record,
 * _dmarc.<organizational domain> with its sp= (or p=).  Several DMARC
 * records in one place, or a malformed one, mean none (RFC 7489 6.6.3).
 * pct= is ignored: a receiver may apply the policy to any one message.
 * Returns DMARC_NONE, DMARC_QUARANTINE, DMARC_REJECT or DMARC_TEMPFAIL and
 * stores the same in *policy (may be NULL).  A from_domain that is not a
 * valid host name is DMARC_NONE: it can have no record.
 */
int	 dmarc_policy(const char *from_domain, enum dmarc_p *policy);

/* dmarc_name - "none", "quarantine", "reject", "tempfail". */
const char *dmarc_name(enum dmarc_p);

#endif
