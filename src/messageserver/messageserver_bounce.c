/* SPDX-License-Identifier: MIT */
/*
 * messageserver_bounce.c - bounces to bounces[+TOKEN]@domain (every copy's
 * envelope sender) and group+bounces[-TOKEN]@domain (older copies).
 *
 * TOKEN is karl's short signature (token.h, key and purpose "verp") over
 * the VERP string of the copy that bounced: "<account>.<message>" for a
 * post, "n<outbox id>" for a notice, "p<account>" for a bounce probe.  A
 * token that does not verify is ignored (logged, nothing recorded).  The
 * message itself is read with dsn_parse for the kind (hard, soft), status
 * and diagnostic.  The VERP names the account, so a post copy's or a
 * probe's bounce that dsn_parse does not understand still counts as one
 * hard bounce (the address failed, we just cannot say how), unless it
 * looks like an auto-responder's answer or is an RFC 3464 report that
 * names no failed recipient (delivered, relayed, expanded).  Without a token (bare
 * group+bounces@) only the DSN's failed addresses that are accounts
 * count.  Delivery reports that are not failures record nothing.  Every
 * event goes through messageserver_bounce_record (state, repeats);
 * docs/bounces.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "db.h"
#include "dsn.h"
#include "log.h"
#include "messageserver.h"
#include "token.h"
#include "xalloc.h"

#define DIAG_SUBJECT_MAX	400	/* bytes of a subject in a diagnostic */

/* What one bounce message did, for the action's reason. */
struct bounce_ctx {
	struct db			*d;
	const struct ms_submission	*s;
	const struct dsn_result		*dsn;
	size_t				 n;	/* recipients dsn_parse found */
	char				 gid[24];	/* the route's group */
	int				 recorded;
	int				 repeats;
	char				 first[160];	/* the first event */
};

/* pick - the recipient of a VERP copy's DSN: email's own entry if it
 * failed, else the first hard failure, else the first soft one; NULL when
 * nothing failed (delivered, relayed, expanded). */
static const struct dsn_rcpt *
pick(const struct dsn_result *r, size_t n, const char *email)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (r->rcpt[i].kind != DSN_NONE &&
		    strcasecmp(r->rcpt[i].addr, email) == 0)
			return &r->rcpt[i];
	for (i = 0; i < n; i++)
		if (r->rcpt[i].kind == DSN_HARD)
			return &r->rcpt[i];
	for (i = 0; i < n; i++)
		if (r->rcpt[i].kind == DSN_SOFT)
			return &r->rcpt[i];
	return NULL;
}

/* record - one event for account acct (address email); rc NULL is the
 * hard bounce of a message dsn_parse did not understand.  0 or -1. */
static int
record(struct bounce_ctx *c, const char *acct, const char *email,
    const char *gid, const char *source, const struct dsn_rcpt *rc,
    const char *msgid)
{
	struct ms_bounce_event e;
	char diag[DSN_TEXT_MAX + 1];
	const char *subj;
	size_t len;
	int n;

	memset(&e, 0, sizeof(e));
	e.account_id = acct;
	e.email = email;
	e.group_id = gid;
	e.source = source;
	e.reporting_mta = c->dsn->reporting_mta;
	e.message_id = msgid[0] ? msgid : c->dsn->original_message_id;
	if (rc != NULL) {
		e.type = rc->kind == DSN_HARD ? "hard" : "soft";
		e.action = rc->action;
		e.status = rc->status;
		e.remote_mta = rc->remote_mta;
		e.diagnostic = rc->diagnostic;
	} else {
		e.type = "hard";
		subj = c->s->p->subject ? c->s->p->subject : "";
		/* cut on a character boundary: the column takes UTF-8 only */
		if ((len = strlen(subj)) > DIAG_SUBJECT_MAX)
			for (len = DIAG_SUBJECT_MAX; len > 0 &&
			    ((unsigned char)subj[len] & 0xc0) == 0x80; len--)
				;
		snprintf(diag, sizeof(diag), "bounce not understood; subject: "
		    "%.*s", (int)len, subj);
		e.diagnostic = diag;
	}
	e.counts = messageserver_bounce_counts(e.status);
	if ((n = messageserver_bounce_record(c->d, &e)) == -1)
		return -1;
	if (n == 0) {
		c->repeats++;
		return 0;
	}
	log_info("%s messageserver: bounce of %s (account %s, %s): %s %s%s",
	    c->s->cid, email, acct, source, e.type,
	    e.status && e.status[0] ? e.status : "-",
	    e.counts ? "" : ", does not count");
	if (c->recorded++ == 0)
		snprintf(c->first, sizeof(c->first), "%s%s%s %s of account %s",
		    e.type, e.status && e.status[0] ? " " : "",
		    e.status ? e.status : "", email, acct);
	return 0;
}

/* by_account - a post copy's or a probe's bounce: exactly account acct
 * (message mid, "" for a probe).  0 or -1; *why set when nothing is. */
static int
by_account(struct bounce_ctx *c, const char *acct, const char *mid,
    const char *source, const char **why)
{
	char email[MS_ADDR_MAX + 1], msgid[MS_MSGID_MAX + 1] = "";
	const struct dsn_rcpt *rc;
	int found;

	found = db_query_value(c->d, "SELECT email FROM accounts WHERE "
	    "id = $1::bigint", DB_PARAMS(acct), email, sizeof(email));
	if (found <= 0) {
		*why = "the account is gone";
		return found;
	}
	if (mid[0] != '\0' && db_query_value(c->d, "SELECT message_id FROM "
	    "messages WHERE id = $1::bigint", DB_PARAMS(mid), msgid,
	    sizeof(msgid)) == -1)
		return -1;
	/* the domain's bounce address names no group: a post's is its
	 * message's, a probe's the one the bouncer sent it through (that of
	 * the account's latest bounce with a group) */
	if (c->gid[0] == '\0' && (mid[0] != '\0' ? db_query_value(c->d,
	    "SELECT group_id::text FROM messages WHERE id = $1::bigint",
	    DB_PARAMS(mid), c->gid, sizeof(c->gid)) : db_query_value(c->d,
	    "SELECT group_id::text FROM bounce_events WHERE account_id = "
	    "$1::bigint AND group_id IS NOT NULL ORDER BY id DESC LIMIT 1",
	    DB_PARAMS(acct), c->gid, sizeof(c->gid))) == -1)
		return -1;
	if (c->n == 0 && c->dsn->is_dsn) {
		*why = "a delivery report, not a failure";
		return 0;
	}
	if (c->n == 0) {
		if (messageserver_bounce_autoreply(c->s->p)) {
			*why = "an auto-reply, not a bounce";
			return 0;
		}
		return record(c, acct, email, c->gid, source, NULL, msgid);
	}
	if ((rc = pick(c->dsn, c->n, email)) == NULL) {
		*why = "a delivery report, not a failure";
		return 0;
	}
	return record(c, acct, email, c->gid, source, rc, msgid);
}

/* by_notice - a notice's bounce: the DSN's failed addresses that were
 * receivers of outbox row oid (any account, if the row was pruned); a
 * notice to one receiver counts as that one's hard bounce when the DSN is
 * not understood.  Unknown addresses are ignored. */
static int
by_notice(struct bounce_ctx *c, const char *oid, const char **why)
{
	char gid[24] = "", acct[24], email[MS_ADDR_MAX + 1];
	const char *addr;
	PGresult *res;
	size_t i;
	int found;

	if ((found = db_query_value(c->d, "SELECT coalesce(group_id::text, "
	    "'') FROM outbox WHERE id = $1::bigint", DB_PARAMS(oid), gid,
	    sizeof(gid))) == -1)
		return -1;
	if (found == 0 || gid[0] == '\0')
		strlcpy_chk(gid, c->gid, sizeof(gid));
	if (c->n == 0) {
		res = db_query(c->d, "SELECT a.id, a.email FROM outbox o "
		    "JOIN accounts a ON lower(a.email) = "
		    "lower(o.receivers->0->>'to') WHERE o.id = $1::bigint "
		    "AND jsonb_array_length(o.receivers) = 1", DB_PARAMS(oid));
		if (res == NULL)
			return -1;
		if (PQntuples(res) == 0 || c->dsn->is_dsn ||
		    messageserver_bounce_autoreply(c->s->p)) {
			PQclear(res);
			*why = "not a bounce we understand";
			return 0;
		}
		strlcpy_chk(acct, PQgetvalue(res, 0, 0), sizeof(acct));
		strlcpy_chk(email, PQgetvalue(res, 0, 1), sizeof(email));
		PQclear(res);
		return record(c, acct, email, gid, "verp", NULL, "");
	}
	for (i = 0; i < c->n; i++) {
		if (c->dsn->rcpt[i].kind == DSN_NONE)
			continue;
		addr = c->dsn->rcpt[i].addr;
		found = db_query_value(c->d, "SELECT a.id FROM accounts a "
		    "WHERE lower(a.email) = lower($1) AND (NOT EXISTS (SELECT 1 "
		    "FROM outbox o WHERE o.id = $2::bigint) OR EXISTS (SELECT 1 "
		    "FROM outbox o, jsonb_array_elements(o.receivers) x WHERE "
		    "o.id = $2::bigint AND lower(x->>'to') = lower($1)))",
		    DB_PARAMS(addr, oid), acct, sizeof(acct));
		if (found == -1)
			return -1;
		if (found == 1 && record(c, acct, addr, gid, "verp",
		    &c->dsn->rcpt[i], "") == -1)
			return -1;
	}
	*why = "no failed receiver of the notice is an account";
	return 0;
}

/* by_address - a bounce without VERP: the DSN's failed addresses that
 * are accounts. */
static int
by_address(struct bounce_ctx *c, const char **why)
{
	char acct[24];
	size_t i;
	int found;

	*why = c->n == 0 ? "not a bounce we understand" :
	    "no failed address is an account";
	for (i = 0; i < c->n; i++) {
		if (c->dsn->rcpt[i].kind == DSN_NONE)
			continue;
		found = db_query_value(c->d, "SELECT id FROM accounts WHERE "
		    "lower(email) = lower($1)", DB_PARAMS(c->dsn->rcpt[i].addr),
		    acct, sizeof(acct));
		if (found == -1)
			return -1;
		if (found == 1 && record(c, acct, c->dsn->rcpt[i].addr, c->gid,
		    "dsn", &c->dsn->rcpt[i], "") == -1)
			return -1;
	}
	return 0;
}

int
messageserver_bounce_in(struct db *d, const struct ms_route *r,
    const struct ms_submission *s, struct ms_action *a)
{
	unsigned char key[TOKEN_KEY_LEN];
	char payload[TOKEN_SHORT_PAYLOAD_MAX + 1];
	struct dsn_result *dsn;
	struct bounce_ctx c;
	struct ms_verp v;
	const char *why = "nothing recorded";
	int rc;

	memset(&v, 0, sizeof(v));
	a->status = "ignored";
	if (r->detail[0] != '\0') {
		token_derive(cfg.secret, cfg.secret ? strlen(cfg.secret) : 0,
		    "verp", key);
		if (token_short_verify(key, "verp", r->detail, payload,
		    sizeof(payload)) != TOKEN_OK ||
		    messageserver_verp_parse(payload, &v) == -1) {
			snprintf(a->reason, sizeof(a->reason),
			    "forged or damaged VERP token");
			return 0;
		}
	}
	memset(&c, 0, sizeof(c));
	c.d = d;
	c.s = s;
	if (db_query_value(d, "SELECT id FROM groups WHERE domain = $1 AND "
	    "name = $2", DB_PARAMS(r->domain, r->group), c.gid,
	    sizeof(c.gid)) == -1)
		return -1;
	dsn = xcalloc(1, sizeof(*dsn));
	c.dsn = dsn;
	c.n = dsn_parse((const char *)s->raw, s->rawlen, dsn);
	if (r->detail[0] == '\0')
		rc = by_address(&c, &why);
	else if (v.kind == MS_VERP_NOTICE)
		rc = by_notice(&c, v.id, &why);
	else
		rc = by_account(&c, v.id, v.message, v.kind == MS_VERP_PROBE ?
		    "probe" : "verp", &why);
	free(dsn);
	if (rc == -1)
		return -1;
	if (c.recorded > 0) {
		a->status = "recorded";
		snprintf(a->reason, sizeof(a->reason), "%s%s", c.first,
		    c.recorded > 1 ? " and more" : "");
	} else
		snprintf(a->reason, sizeof(a->reason), "%s", c.repeats > 0 ?
		    "already recorded" : why);
	return 0;
}
