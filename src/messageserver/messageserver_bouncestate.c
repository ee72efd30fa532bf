/* SPDX-License-Identifier: MIT */
/*
 * messageserver_bouncestate.c - bounce events and the bounce state of
 * accounts: the one place both are written, for bounces that come back by
 * mail (messageserver_bounce.c) and for karl's synchronous reports
 * (messageserver_bounces.c).
 *
 * An event is a bounce_events row.  One that counts (dsn_counts: not a
 * policy or size rejection caused by the message) moves the account's
 * bounce_state: a hard bounce makes an 'ok' account 'bouncing' at once; a
 * soft one only dates the run (first_bounce_at, last_bounce_at), and the
 * bouncer cron turns soft bounces that persist into 'bouncing'.  'bouncing'
 * and 'bounced' are never changed here except for the dates.  The state
 * row is locked first, so two copies of one bounce in concurrent
 * transactions are told apart as a repeat.  docs/bounces.md.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "db.h"
#include "dsn.h"
#include "log.h"
#include "messageserver.h"
#include "xalloc.h"

/* digits - 1 if s is 1..18 decimal digits (fits a bigint). */
static int
digits(const char *s, size_t n)
{
	return n > 0 && n <= 18 && strspn(s, "0123456789") >= n;
}

int
messageserver_verp_parse(const char *s, struct ms_verp *v)
{
	const char *dot;
	size_t n;

	memset(v, 0, sizeof(*v));
	if (s == NULL)
		return -1;
	if (s[0] == 'n' || s[0] == 'p') {
		n = strlen(s + 1);
		if (!digits(s + 1, n))
			return -1;
		v->kind = s[0] == 'n' ? MS_VERP_NOTICE : MS_VERP_PROBE;
		memcpy(v->id, s + 1, n + 1);
		return 0;
	}
	if ((dot = strchr(s, '.')) == NULL)
		return -1;
	n = (size_t)(dot - s);
	if (!digits(s, n) || !digits(dot + 1, strlen(dot + 1)))
		return -1;
	v->kind = MS_VERP_POST;
	memcpy(v->id, s, n);
	v->id[n] = '\0';
	memcpy(v->message, dot + 1, strlen(dot + 1) + 1);
	return 0;
}

int
messageserver_bounce_counts(const char *status)
{
	/* dsn_counts takes NULL as "no status given" */
	return dsn_counts(status != NULL && status[0] != '\0' ? status :
	    NULL);
}

/* Subjects auto-responders start with (compared case-insensitively);
 * bounces say "Undelivered", "Delivery Status", "Returned mail", ... */
static const char *const autoreply_subjects[] = {
	"auto:", "autoreply", "auto-reply", "auto reply", "automatic reply",
	"automatische antwort", "out of office", "out of the office",
	"vacation", "away from", "abwesend", "absence", "réponse automatique",
	NULL
};

int
messageserver_bounce_autoreply(const struct ms_parsed *p)
{
	const char *subj;
	size_t i;

	if (p->autoreply)
		return 1;
	if (p->precedence != NULL && (strcasecmp(p->precedence,
	    "auto_reply") == 0 || strcasecmp(p->precedence, "junk") == 0 ||
	    strcasecmp(p->precedence, "bulk") == 0 ||
	    strcasecmp(p->precedence, "list") == 0))
		return 1;
	subj = p->subject != NULL ? p->subject : "";
	while (*subj == ' ' || *subj == '\t')
		subj++;
	for (i = 0; autoreply_subjects[i] != NULL; i++)
		if (strncasecmp(subj, autoreply_subjects[i],
		    strlen(autoreply_subjects[i])) == 0)
			return 1;
	return 0;
}

/* nz - "" for NULL. */
static const char *
nz(const char *s)
{
	return s != NULL ? s : "";
}

int
messageserver_bounce_record(struct db *d, const struct ms_bounce_event *e)
{
	const char *acct = nz(e->account_id);
	char days[16], diagmax[16];
	long n;

	snprintf(diagmax, sizeof(diagmax), "%d", MS_BOUNCE_DIAG_MAX);
	/* lock the account's state row: a concurrent copy of this bounce
	 * waits here and then sees this one as a repeat */
	if (acct[0] != '\0' && (db_exec(d, "INSERT INTO bounce_state "
	    "(account_id) VALUES ($1::bigint) ON CONFLICT DO NOTHING",
	    DB_PARAMS(acct)) == -1 || db_query_value(d, "SELECT 1 FROM "
	    "bounce_state WHERE account_id = $1::bigint FOR UPDATE",
	    DB_PARAMS(acct), NULL, 0) == -1))
		return -1;
	n = db_exec(d, "INSERT INTO bounce_events (account_id, email, "
	    "group_id, type, source, dsn_action, dsn_status, remote_mta, "
	    "reporting_mta, diagnostic, original_message_id, karl_job, counts) "
	    "SELECT nullif($1, '')::bigint, $2, nullif($3, '')::bigint, $4, $5, "
	    "nullif($6, ''), nullif($7, ''), nullif(left($8, 255), ''), "
	    "nullif(left($9, 255), ''), left($10, $15::int), "
	    "nullif(left($11, 998), ''), nullif($12, ''), $13::boolean "
	    "WHERE $12 <> '' OR $1 = '' OR NOT EXISTS (SELECT 1 FROM "
	    "bounce_events b WHERE b.account_id = nullif($1, '')::bigint "
	    "AND b.received_at > now() - $14::interval AND b.type = $4 "
	    "AND b.karl_job IS NULL "
	    "AND b.original_message_id IS NOT DISTINCT FROM "
	    "nullif(left($11, 998), '') "
	    "AND b.dsn_status IS NOT DISTINCT FROM nullif($7, '')) "
	    "ON CONFLICT (karl_job, lower(email)) WHERE karl_job IS NOT NULL "
	    "DO NOTHING", DB_PARAMS(acct, e->email, nz(e->group_id), e->type,
	    e->source, nz(e->action), nz(e->status), nz(e->remote_mta),
	    nz(e->reporting_mta), nz(e->diagnostic), nz(e->message_id),
	    nz(e->karl_job), e->counts ? "true" : "false", MS_BOUNCE_REPEAT,
	    diagmax));
	if (n <= 0 || acct[0] == '\0' || !e->counts)
		return n == -1 ? -1 : n > 0;
	/* a run of bounces starts again after a quiet bounce_soft_days, or
	 * when the address was restored since it began (ok_since), as the
	 * bouncer reads the events */
	snprintf(days, sizeof(days), "%d", cfg.bounce_soft_days);
	if (db_exec(d, "UPDATE bounce_state SET "
	    "first_bounce_at = CASE WHEN first_bounce_at IS NULL OR "
	    "(status = 'ok' AND (last_bounce_at < now() - "
	    "make_interval(days => $3::int) OR first_bounce_at < ok_since)) "
	    "THEN now() ELSE first_bounce_at END, last_bounce_at = now(), "
	    "status = CASE WHEN status = 'ok' AND $2 = 'hard' "
	    "THEN 'bouncing' ELSE status END, "
	    "bouncing_since = CASE WHEN status = 'ok' AND $2 = 'hard' "
	    "THEN now() ELSE bouncing_since END, "
	    "probes_sent = CASE WHEN status = 'ok' AND $2 = 'hard' "
	    "THEN 0 ELSE probes_sent END "
	    "WHERE account_id = $1::bigint",
	    DB_PARAMS(acct, e->type, days)) == -1)
		return -1;
	return 1;
}
