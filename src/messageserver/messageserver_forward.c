/* SPDX-License-Identifier: MIT */
/*
 * messageserver_forward.c - the owners' address (group+owner@domain) and
 * forward rules (an address of ours → an outside address or a group).
 *
 * +owner: a copy to the group's active owners and moderators.  A rule to
 * an outside address: a copy to it.  A rule to one of our groups is an
 * alias of the group's list address: the message goes through that
 * group's posting pipeline (its policy, moderation and loop checks
 * apply, nothing bypasses them); a rule to a group's +owner address
 * reaches its owners; a rule to any other address of ours (a command, a
 * bounce address, another rule) is not followed, so rules never chain.
 *
 * A copy keeps the message as it came (body byte for byte) with trace
 * headers on top (X-Loop, X-Original-To, Resent-From/-Date/-Message-ID)
 * and goes to karl as an outbox notice: DKIM-signed for our domain, our
 * bounce address.  DMARC: when the sender's domain would make our copy
 * fail (messageserver_dmarc_rewrite; +owner by the group's setting,
 * rules "when_needed"), From becomes "Name via ..." <this address>, the
 * original From goes to X-Original-From and, when the message has no
 * Reply-To, to Reply-To; the sender's DKIM signatures are dropped, as
 * they cannot verify with a new From.
 *
 * Loops: mail carrying our X-Loop for this address is dropped (a forward
 * that came back), and so are automatic replies (RFC 3834 auto-replied,
 * X-Autoreply, Precedence junk/auto_reply: an out-of-office answering a
 * forward must not be forwarded again) and automatic mail from our own
 * domains (our notices).  The null sender (a DSN) is forwarded once; our
 * X-Loop stops it coming round.  A copy never goes back to the sender
 * (envelope or From) nor to an address of our own domains.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <gmime/gmime.h>

#include "config.h"
#include "db.h"
#include "log.h"
#include "messageserver.h"
#include "strbuf.h"
#include "token.h"
#include "xalloc.h"

#define FWD_STAFF_MAX_S	"100"	/* owners and moderators a copy goes to */
#define FWD_SELF_MAX	(2 * MS_ADDR_MAX + 16)	/* group+owner@domain */

/* Where a copy goes and in whose name. */
struct fwd {
	char	self[FWD_SELF_MAX];	/* the address written to */
	char	label[FWD_SELF_MAX + 8];	/* "Name via <label>" */
	const char *mode;		/* dmarc_rewrite mode */
	json_t	*rcv;			/* [{"to": ...}] */
};

/* Dropped from the original when From is rewritten (they cannot verify
 * or would contradict the new From). */
static const char *const drop_rewrite[] = {
	"From", "DKIM-Signature", "Sender", NULL
};

/* field_is - 1 if the header field at f is named name. */
static int
field_is(const char *f, size_t flen, const char *name)
{
	size_t n = strlen(name);

	return flen > n && strncasecmp(f, name, n) == 0 &&
	    (f[n] == ':' || f[n] == ' ' || f[n] == '\t');
}

/* same_line - 1 if one of the lines of list is addr (any case, blanks
 * and angle brackets around it ignored). */
static int
same_line(const char *list, const char *addr)
{
	const char *s, *e;
	size_t n = strlen(addr);

	for (s = list; s != NULL && *s != '\0'; s = *e ? e + 1 : e) {
		if ((e = strchr(s, '\n')) == NULL)
			e = s + strlen(s);
		while (s < e && (*s == ' ' || *s == '\t' || *s == '<'))
			s++;
		if ((size_t)(e - s) >= n && strncasecmp(s, addr, n) == 0) {
			const char *t = s + n;

			while (t < e && (*t == ' ' || *t == '\t' ||
			    *t == '>' || *t == '\r'))
				t++;
			if (t == e)
				return 1;
		}
	}
	return 0;
}

/* automatic - why this mail must not be forwarded, or NULL; -1 in *err
 * on a database error. */
static const char *
automatic(struct db *d, const struct ms_submission *s, const char *self,
    int *err)
{
	const struct ms_parsed *p = s->p;
	const char *as = p->auto_submitted, *pr = p->precedence;
	int own;

	*err = 0;
	if (same_line(p->x_loops, self))
		return "loop: our X-Loop for this address";
	while (as != NULL && (*as == ' ' || *as == '\t'))
		as++;
	while (pr != NULL && (*pr == ' ' || *pr == '\t'))
		pr++;
	if (p->autoreply || (as != NULL &&
	    strncasecmp(as, "auto-replied", 12) == 0) || (pr != NULL &&
	    (strncasecmp(pr, "junk", 4) == 0 ||
	    strncasecmp(pr, "auto_reply", 10) == 0)))
		return "automatic reply";
	if (as == NULL || *as == '\0' || strncasecmp(as, "no", 2) == 0)
		return NULL;
	if ((own = messageserver_own_address(d, p->from_addr)) == 0 &&
	    s->mail_from[0] != '\0')
		own = messageserver_own_address(d, s->mail_from);
	if (own == -1)
		*err = 1;
	return own == 1 ? "automatic mail from our own address" : NULL;
}

/* add_receiver - to into f->rcv unless it is the sender, ours, or there
 * already; 0 or -1. */
static int
add_receiver(struct db *d, const struct ms_submission *s, struct fwd *f,
    const char *to)
{
	json_t *v;
	size_t i;
	int own;

	if (strcasecmp(to, s->p->from_addr) == 0 ||
	    strcasecmp(to, s->mail_from) == 0)
		return 0;
	json_array_foreach(f->rcv, i, v)
		if (strcasecmp(json_string_value(json_object_get(v, "to")),
		    to) == 0)
			return 0;
	if ((own = messageserver_own_address(d, to)) != 0) {
		if (own == 1)
			log_warnx("%s messageserver: %s would forward to our "
			    "own address %s; skipped", s->cid, f->self, to);
		return own == 1 ? 0 : -1;
	}
	json_array_append_new(f->rcv, json_pack("{s:s}", "to", to));
	return 0;
}

/* add_staff - g's active owners and moderators into f; how many were
 * found (before the sender and our own were left out), or -1. */
static int
add_staff(struct db *d, const struct ms_submission *s,
    const struct ms_group *g, struct fwd *f)
{
	PGresult *r;
	int i, n;

	r = db_query(d, "SELECT a.email FROM memberships m JOIN accounts a "
	    "ON a.id = m.account_id WHERE m.group_id = $1 AND m.role IN "
	    "('owner', 'moderator') AND m.status = 'active' AND a.status = "
	    "'active' ORDER BY m.id LIMIT " FWD_STAFF_MAX_S,
	    DB_PARAMS(g->id));
	if (r == NULL)
		return -1;
	n = PQntuples(r);
	for (i = 0; i < n; i++)
		if (add_receiver(d, s, f, PQgetvalue(r, i, 0)) == -1) {
			PQclear(r);
			return -1;
		}
	PQclear(r);
	return n;
}

/* rfc5322_date - now, as a Date field body, into buf. */
static void
rfc5322_date(char *buf, size_t len)
{
	static const char *const day[] = { "Sun", "Mon", "Tue", "Wed", "Thu",
	    "Fri", "Sat" };
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May",
	    "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	snprintf(buf, len, "%s, %02d %s %04d %02d:%02d:%02d +0000",
	    day[tm.tm_wday], tm.tm_mday, mon[tm.tm_mon], tm.tm_year + 1900,
	    tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* from_via - "Name via label" <addr>, encoded (allocated). */
static char *
from_via(const char *name, const char *label, const char *addr)
{
	InternetAddress *ia;
	char *via, *s, *out;

	via = xasprintf("%s via %s", name, label);
	ia = internet_address_mailbox_new(via, addr);
	s = internet_address_to_string(ia, NULL, TRUE);
	out = xstrdup(s);
	g_free(s);
	g_object_unref(ia);
	free(via);
	return out;
}

/* copy - the forwarded message (allocated; *lenp its length): trace
 * headers, the original header block less what a rewrite drops, the
 * body as it came. */
static char *
copy(const struct ms_submission *s, const struct fwd *f, int rewrite,
    size_t *lenp)
{
	const char *raw = (const char *)s->raw, *nl = "\r\n", *e, *fstart;
	const char *orig_from = NULL;
	size_t len = s->rawlen, hend, i, flen, oflen = 0;
	int has_reply_to = 0;
	struct strbuf *sb;
	char date[64], rnd[33], *v, *out;

	/* the header block ends at the first empty line */
	for (hend = 0; hend < len; hend++) {
		if (raw[hend] != '\n')
			continue;
		if (hend > 0 && raw[hend - 1] != '\r')
			nl = "\n";
		if (hend + 1 < len && (raw[hend + 1] == '\n' ||
		    (raw[hend + 1] == '\r' && hend + 2 < len &&
		    raw[hend + 2] == '\n'))) {
			hend++;
			break;
		}
	}
	sb = strbuf_new(len + 1024);
	rfc5322_date(date, sizeof(date));
	token_random_id(rnd, 16);
	strbuf_appendf(sb, "X-Loop: %s%sX-Original-To: %s%s"
	    "Resent-From: <%s>%sResent-Date: %s%s"
	    "Resent-Message-ID: <%s@%s>%s", f->self, nl, f->self, nl, f->self,
	    nl, date, nl, rnd, strchr(f->self, '@') + 1, nl);
	/* each field with its continuation lines */
	for (i = 0; i < hend; i = (size_t)(e - raw)) {
		fstart = raw + i;
		e = fstart;
		do {
			const char *lf = memchr(e, '\n', (size_t)(raw + hend -
			    e));

			e = lf != NULL ? lf + 1 : raw + hend;
		} while (e < raw + hend && (*e == ' ' || *e == '\t'));
		flen = (size_t)(e - fstart);
		if (field_is(fstart, flen, "Return-Path"))
			continue;
		if (field_is(fstart, flen, "Reply-To"))
			has_reply_to = 1;
		if (field_is(fstart, flen, "From") && orig_from == NULL) {
			orig_from = fstart + 5;
			oflen = flen - 5;
		}
		if (rewrite) {
			size_t k;
			int drop = 0;

			for (k = 0; drop_rewrite[k] != NULL; k++)
				drop |= field_is(fstart, flen,
				    drop_rewrite[k]);
			if (drop)
				continue;
		}
		strbuf_append(sb, fstart, flen);
	}
	if (rewrite) {
		v = from_via(s->p->from_name[0] ? s->p->from_name :
		    s->p->from_addr, f->label, f->self);
		strbuf_appendf(sb, "From: %s%s", v, nl);
		free(v);
		if (orig_from != NULL) {
			/* the original field body, folding and all */
			strbuf_puts(sb, "X-Original-From:");
			strbuf_append(sb, orig_from, oflen);
			if (!has_reply_to) {
				strbuf_puts(sb, "Reply-To:");
				strbuf_append(sb, orig_from, oflen);
			}
		}
	}
	if (hend == len) {
		/* no body: end the last field and the header block */
		if (sb->len > 0 && sb->buf[sb->len - 1] != '\n')
			strbuf_puts(sb, nl);
		strbuf_puts(sb, nl);
	} else
		strbuf_append(sb, raw + hend, len - hend);
	*lenp = sb->len;
	out = xmalloc(sb->len + 1);
	memcpy(out, sb->buf, sb->len);
	out[sb->len] = '\0';
	strbuf_free(sb);
	return out;
}

/* send_copy - queue the copy for f's receivers through carrier's bounce
 * address; a->status set. */
static int
send_copy(struct db *d, const struct ms_group *carrier,
    const struct ms_submission *s, struct fwd *f, struct ms_action *a)
{
	char *raw;
	size_t len;
	int rewrite, rc;

	rewrite = messageserver_dmarc_rewrite(f->mode, s->p->from_addr);
	raw = copy(s, f, rewrite, &len);
	rc = messageserver_notice_raw(d, carrier, raw, len, f->rcv);
	free(raw);
	if (rc == -1)
		return -1;
	a->status = "forwarded";
	snprintf(a->reason, sizeof(a->reason), "to %zu receiver%s%s",
	    json_array_size(f->rcv), json_array_size(f->rcv) == 1 ? "" : "s",
	    rewrite ? ", From rewritten (DMARC)" : "");
	return 0;
}

/* to_owners - a copy to g's owners and moderators, written to self. */
static int
to_owners(struct db *d, const struct ms_group *g,
    const struct ms_submission *s, const char *self, struct ms_action *a)
{
	struct fwd f;
	const char *why;
	int n, err, rc;

	memset(&f, 0, sizeof(f));
	strlcpy_chk(f.self, self, sizeof(f.self));
	snprintf(f.label, sizeof(f.label), "%s owners",
	    g->title[0] ? g->title : g->name);
	f.mode = g->dmarc_rewrite;
	a->status = "ignored";
	if ((why = automatic(d, s, f.self, &err)) != NULL || err) {
		snprintf(a->reason, sizeof(a->reason), "%s", why ? why : "");
		return err ? -1 : 0;
	}
	f.rcv = json_array();
	if ((n = add_staff(d, s, g, &f)) == -1) {
		json_decref(f.rcv);
		return -1;
	}
	if (n == 0) {
		log_warnx("%s messageserver: mail to %s, but %s@%s has no "
		    "owners or moderators", s->cid, f.self, g->name,
		    g->domain);
		snprintf(a->reason, sizeof(a->reason), "the group has no "
		    "owners or moderators");
	} else if (json_array_size(f.rcv) == 0)
		snprintf(a->reason, sizeof(a->reason), "nobody to forward to "
		    "but the sender");
	rc = json_array_size(f.rcv) > 0 ? send_copy(d, g, s, &f, a) : 0;
	json_decref(f.rcv);
	return rc;
}

/* config_rule - the local part of cfg.forward_rules' first rule whose
 * target is target, into local; 1 found, 0 not. */
static int
config_rule(const char *target, char *local, size_t len)
{
	const char *s = cfg.forward_rules, *e, *sp;
	char tgt[MS_ADDR_MAX + 1];
	size_t n;

	for (; s != NULL && *s != '\0'; s = *e ? e + 1 : e) {
		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		if ((e = strchr(s, ',')) == NULL)
			e = s + strlen(s);
		if ((sp = memchr(s, ' ', (size_t)(e - s))) == NULL)
			continue;
		n = (size_t)(e - sp - 1);
		if (n >= sizeof(tgt) || (size_t)(sp - s) >= len)
			continue;
		memcpy(tgt, sp + 1, n);
		tgt[n] = '\0';
		while (n > 0 && (tgt[n - 1] == ' ' || tgt[n - 1] == '\t'))
			tgt[--n] = '\0';
		if (strcasecmp(tgt + strspn(tgt, " \t"), target) != 0)
			continue;
		memcpy(local, s, (size_t)(sp - s));
		local[sp - s] = '\0';
		return 1;
	}
	return 0;
}

/* rule_self - the rule's own address (local@domain) for a rule of domain
 * with target detail: the table's first such rule, else the config's;
 * 1, 0 when none is found (then "postmaster@domain"), -1 on error. */
static int
rule_self(struct db *d, const struct ms_route *r, char *self, size_t len)
{
	char local[MS_ADDR_MAX + 1];
	int rc;

	rc = db_query_value(d, "SELECT f.local_part FROM forward_rules f "
	    "LEFT JOIN groups g ON g.id = f.target_group_id WHERE "
	    "f.domain = $1 AND f.enabled AND lower(coalesce(f.target_address, "
	    "g.name || '@' || g.domain)) = lower($2) ORDER BY f.id LIMIT 1",
	    DB_PARAMS(r->domain, r->detail), local, sizeof(local));
	if (rc == -1)
		return -1;
	if (rc == 0 && !(cfg.domain != NULL && strcasecmp(r->domain,
	    cfg.domain) == 0 && config_rule(r->detail, local,
	    sizeof(local))))
		strlcpy_chk(local, "postmaster", sizeof(local));
	else
		rc = 1;
	snprintf(self, len, "%.64s@%.253s", local, r->domain);
	return rc;
}

/* to_group - a rule whose target is one of our addresses: a group's list
 * address (its pipeline) or its +owner (its owners); nothing else. */
static int
to_group(struct db *d, const struct ms_route *r,
    const struct ms_submission *s, const char *self, struct ms_action *a)
{
	struct ms_route t;
	struct ms_group g;
	struct ms_result res;
	char mark[FWD_SELF_MAX];
	int rc;

	a->status = "ignored";
	switch (messageserver_rcpt_resolve(d, r->detail, &t)) {
	case MS_RCPT_OK:
		break;
	case MS_RCPT_TEMPFAIL:
		return -1;
	default:
		snprintf(a->reason, sizeof(a->reason), "the rule's target "
		    "%.200s does not exist", r->detail);
		return 0;
	}
	if (t.kind != MS_ROUTE_POST && t.kind != MS_ROUTE_OWNER) {
		snprintf(a->reason, sizeof(a->reason), "the rule's target "
		    "%.200s is not a group; rules do not chain", r->detail);
		return 0;
	}
	if ((rc = messageserver_group_load(d, t.domain, t.group, &g)) != 1) {
		snprintf(a->reason, sizeof(a->reason), "no group %.200s",
		    r->detail);
		return rc;
	}
	if (t.kind == MS_ROUTE_OWNER) {
		snprintf(mark, sizeof(mark), "%s+owner@%s", g.name, g.domain);
		return to_owners(d, &g, s, mark, a);
	}
	/* an alias of the list address: the group's own policy decides */
	if (messageserver_post_group(d, &g, s, &res) == -1)
		return -1;
	a->status = "forwarded";
	snprintf(a->reason, sizeof(a->reason), "from %.60s to group "
	    "%.64s@%.60s: %s%s%s", self, g.name, g.domain, res.status,
	    res.reason[0] ? " " : "", res.reason);
	return 0;
}

/* to_address - a rule whose target is outside. */
static int
to_address(struct db *d, const struct ms_route *r,
    const struct ms_submission *s, const char *self, struct ms_action *a)
{
	struct ms_group carrier;
	char name[MS_ADDR_MAX + 1];
	const char *why;
	struct fwd f;
	int err, rc;

	memset(&f, 0, sizeof(f));
	strlcpy_chk(f.self, self, sizeof(f.self));
	strlcpy_chk(f.label, self, sizeof(f.label));
	f.mode = "when_needed";
	a->status = "ignored";
	if ((why = automatic(d, s, f.self, &err)) != NULL || err) {
		snprintf(a->reason, sizeof(a->reason), "%s", why ? why : "");
		return err ? -1 : 0;
	}
	/* karl sends a notice through a group's bounce address and signing
	 * domain: any group of the rule's domain carries it */
	rc = db_query_value(d, "SELECT name FROM groups WHERE domain = $1 "
	    "AND status <> 'disabled' ORDER BY id LIMIT 1",
	    DB_PARAMS(r->domain), name, sizeof(name));
	if (rc == 1)
		rc = messageserver_group_load(d, r->domain, name, &carrier);
	if (rc != 1) {
		if (rc == 0) {
			log_warnx("%s messageserver: %s: no group of %s to "
			    "send the forward through", s->cid, self,
			    r->domain);
			snprintf(a->reason, sizeof(a->reason), "no group of "
			    "the domain to send through");
		}
		return rc == -1 ? -1 : 0;
	}
	f.rcv = json_array();
	if (add_receiver(d, s, &f, r->detail) == -1) {
		json_decref(f.rcv);
		return -1;
	}
	if (json_array_size(f.rcv) == 0) {
		snprintf(a->reason, sizeof(a->reason), "the target is the "
		    "sender");
		rc = 0;
	} else
		rc = send_copy(d, &carrier, s, &f, a);
	json_decref(f.rcv);
	return rc;
}

int
messageserver_forward(struct db *d, const struct ms_route *r,
    const struct ms_submission *s, struct ms_action *a)
{
	struct ms_group g;
	char self[FWD_SELF_MAX];
	int rc;

	a->status = "ignored";
	if (r->kind == MS_ROUTE_OWNER) {
		if ((rc = messageserver_group_load(d, r->domain, r->group,
		    &g)) != 1) {
			snprintf(a->reason, sizeof(a->reason), "no such group");
			return rc;
		}
		snprintf(self, sizeof(self), "%s+owner@%s", g.name, g.domain);
		return to_owners(d, &g, s, self, a);
	}
	if ((rc = rule_self(d, r, self, sizeof(self))) == -1)
		return -1;
	if (rc == 0)
		log_warnx("%s messageserver: no rule of %s found for target "
		    "%s; forwarding as %s", s->cid, r->domain, r->detail,
		    self);
	if ((rc = messageserver_own_address(d, r->detail)) == -1)
		return -1;
	return rc == 1 ? to_group(d, r, s, self, a) :
	    to_address(d, r, s, self, a);
}
