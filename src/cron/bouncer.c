/* SPDX-License-Identifier: MIT */
/*
 * bouncer - daily: soft bounces that persist, bounce probes, bounced
 * addresses and the moderators' notices, and the ageing out of events.
 *
 * A run, in order (docs/bouncer.md):
 *  1. soft	an 'ok' account whose counted soft bounces since it was last
 *		ok form a run (no quiet spell over bounce_soft_days) that
 *		began bounce_soft_days ago and still goes on (one within
 *		a few days) becomes 'bouncing' (hard ones: messageserver);
 *  2. probe	a 'bouncing' account gets a probe through the outbox (VERP
 *		"p<account>", a signed restore link), the first at once,
 *		then one every bounce_probe_days, bounce_probes in all;
 *  3. bounced	a 'bouncing' account whose last probe went unanswered for
 *		bounce_probe_days becomes 'bounced'; each of its groups'
 *		owners and moderators get one notice per run;
 *  4. age out	bounce events older than bounce_event_days are deleted.
 *
 * Every decision is a timestamp compared in the UPDATE that acts on it,
 * and each account's change commits with the mail it causes, so a second
 * run changes nothing and sends nothing; a session advisory lock keeps two
 * runs from working at once.  Progress on stderr when it is a terminal;
 * one summary line to the log.  Exit 0, or 1 on a database error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "compose_min.h"
#include "config.h"
#include "daemon.h"
#include "db.h"
#include "log.h"
#include "strbuf.h"
#include "token.h"
#include "xalloc.h"

/* Session advisory lock of a run: "grpsbnce" as a bigint. */
#define BOUNCER_LOCK_KEY	"7454143974126543717"
/* A soft bounce this recent means the address is still failing. */
#define BOUNCER_RECENT_DAYS	3
/* Cron starts a few seconds late or early: a probe 7 days minus this
 * ago counts as 7 days old, and a second run the same day still sees a
 * probe of today as fresh. */
#define BOUNCER_SLACK		"interval '1 hour'"
/* The restore link outlives the last probe's deadline by this much. */
#define BOUNCER_LINK_DAYS	14
#define BOUNCER_PURPOSE		"bounce"	/* token label and purpose */
#define BOUNCER_GROUPS_MAX	50	/* groups named in a probe */
#define BOUNCER_LIST_MAX	100	/* addresses named in a notice */
#define BOUNCER_STAFF_MAX	"100"	/* receivers of a notice */
#define BOUNCER_DELETE_BATCH	"5000"	/* events per DELETE */

struct tally {
	long	examined;
	long	bouncing;
	long	probes;
	long	no_group;	/* bouncing, but in no group to probe from */
	long	bounced;
	long	notices;
	long	deleted;
};

/* ------------------------------------------------------------ progress */

struct progress {
	const char	*phase;
	const char	*unit;
	long		 total;
	long		 done;
	long		 hits;		/* what the phase did */
	const char	*hits_what;
	struct timespec	 shown;
	int		 tty;
};

static double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* progress_show - redraw the phase's line, at most ten times a second
 * unless final. */
static void
progress_show(struct progress *p, int final)
{
	static double last;
	char bar[21];
	double now = mono_now();
	long fill;

	if (!p->tty || (!final && now - last < 0.1))
		return;
	last = now;
	fill = p->total > 0 ? p->done * 20 / p->total : 20;
	memset(bar, '#', (size_t)fill);
	memset(bar + fill, '.', (size_t)(20 - fill));
	bar[20] = '\0';
	fprintf(stderr, "\rbouncer: %-8s [%s] %ld/%ld %s, %ld %s%s",
	    p->phase, bar, p->done, p->total, p->unit, p->hits, p->hits_what,
	    final ? "\n" : "");
	fflush(stderr);
}

static void
progress_start(struct progress *p, const char *phase, const char *unit,
    const char *hits_what, long total)
{
	memset(p, 0, sizeof(*p));
	p->phase = phase;
	p->unit = unit;
	p->hits_what = hits_what;
	p->total = total;
	p->tty = isatty(STDERR_FILENO);
	progress_show(p, 0);
}

static void
progress_step(struct progress *p, int hit)
{
	p->done++;
	p->hits += hit;
	progress_show(p, 0);
}

/* ------------------------------------------------------------- helpers */

static char *
int_str(char *buf, size_t len, long v)
{
	snprintf(buf, len, "%ld", v);
	return buf;
}

/* outbox_notice - queue a composed notice for receivers (a JSON array,
 * borrowed) through group gid, in d's transaction.  0 or -1. */
static int
outbox_notice(struct db *d, const char *gid, const struct strbuf *msg,
    json_t *receivers)
{
	char *js = json_dumps(receivers, JSON_COMPACT);
	long rc;

	/* the composed bytes are 7-bit (or UTF-8 addresses): text is exact */
	rc = db_exec(d, "INSERT INTO outbox (kind, group_id, raw, receivers) "
	    "VALUES ('notice', $1::bigint, convert_to($2, 'UTF8'), "
	    "$3::jsonb)", DB_PARAMS(gid, strbuf_str(msg), js));
	free(js);
	return rc == -1 ? -1 : 0;
}

/* group_label - "Title (name@domain)" or "name@domain" into sb. */
static void
group_label(struct strbuf *sb, const char *name, const char *domain,
    const char *title)
{
	if (title[0] != '\0')
		strbuf_appendf(sb, "%s (%s@%s)", title, name, domain);
	else
		strbuf_appendf(sb, "%s@%s", name, domain);
}

/* day_text - the UTC date t days from now, "3 December 2026". */
static void
day_text(char *buf, size_t len, int days)
{
	static const char *const mon[] = { "January", "February", "March",
	    "April", "May", "June", "July", "August", "September", "October",
	    "November", "December" };
	time_t t = time(NULL) + (time_t)days * 86400;
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(buf, len, "%d %s %d", tm.tm_mday, mon[tm.tm_mon],
	    tm.tm_year + 1900);
}

/* ---------------------------------------------------- 1. soft bounces */

/* Counted soft bounces of account $1 since `since` form a run that began
 * at least $2 days ago and goes on (the latest within $3 days): a run
 * starts at the first event or after a quiet spell of more than $2 days,
 * as messageserver dates first_bounce_at.  NULL (false) without events. */
#define SOFT_SPAN(since)						\
	"(SELECT max(r.received_at) FILTER (WHERE r.starts) <= now() - "\
	"make_interval(days => $2::int) AND max(r.received_at) >= now() "\
	"- make_interval(days => $3::int) FROM (SELECT e.received_at, "	\
	"coalesce(e.received_at - lag(e.received_at) OVER (ORDER BY "	\
	"e.received_at) > make_interval(days => $2::int), true) AS "	\
	"starts FROM bounce_events e WHERE e.account_id = $1::bigint "	\
	"AND e.counts AND e.type = 'soft' AND e.received_at > " since	\
	") r)"

/* soft_one - make account id bouncing if its soft bounces persist: 1 if
 * it changed, 0 if not, -1 on error. */
static int
soft_one(struct db *d, const char *id, const char *days, const char *recent)
{
	long n;

	n = db_exec(d, "UPDATE bounce_state s SET status = 'bouncing', "
	    "bouncing_since = now(), bounced_at = NULL, probes_sent = 0 "
	    "WHERE s.account_id = $1::bigint AND s.status = 'ok' AND "
	    SOFT_SPAN("coalesce(s.ok_since, '-infinity')"),
	    DB_PARAMS(id, days, recent));
	if (n != 0)
		return n < 0 ? -1 : 1;
	/* an account messageserver never gave a state row */
	n = db_exec(d, "INSERT INTO bounce_state (account_id, status, "
	    "bouncing_since, first_bounce_at, last_bounce_at) "
	    "SELECT $1::bigint, 'bouncing', now(), min(received_at), "
	    "max(received_at) FROM bounce_events WHERE account_id = "
	    "$1::bigint AND counts AND type = 'soft' HAVING "
	    SOFT_SPAN("'-infinity'") " AND NOT EXISTS (SELECT 1 FROM "
	    "bounce_state WHERE account_id = $1::bigint) "
	    "ON CONFLICT (account_id) DO NOTHING",
	    DB_PARAMS(id, days, recent));
	return n < 0 ? -1 : n > 0;
}

/* phase_soft - step 1 over every 'ok' account with counted soft bounces
 * since it was last ok. */
static int
phase_soft(struct db *d, struct tally *t)
{
	char days[16], recent[16];
	struct progress p;
	PGresult *r;
	int i, n, rc = 0, changed;

	int_str(days, sizeof(days), cfg.bounce_soft_days);
	int_str(recent, sizeof(recent), cfg.bounce_soft_days <
	    BOUNCER_RECENT_DAYS ? cfg.bounce_soft_days : BOUNCER_RECENT_DAYS);
	r = db_query(d, "SELECT DISTINCT e.account_id FROM bounce_events e "
	    "LEFT JOIN bounce_state s ON s.account_id = e.account_id "
	    "WHERE e.account_id IS NOT NULL AND e.counts AND e.type = 'soft' "
	    "AND coalesce(s.status, 'ok') = 'ok' AND e.received_at > "
	    "coalesce(s.ok_since, '-infinity') ORDER BY 1", DB_NOPARAMS);
	if (r == NULL)
		return -1;
	n = PQntuples(r);
	progress_start(&p, "soft", "accounts", "now bouncing", n);
	for (i = 0; i < n && !daemon_stopping(); i++) {
		if ((changed = soft_one(d, PQgetvalue(r, i, 0), days,
		    recent)) == -1) {
			rc = -1;
			break;
		}
		if (changed)
			log_info("bouncer: account %s is bouncing (soft "
			    "bounces for %s days)", PQgetvalue(r, i, 0), days);
		t->bouncing += changed;
		progress_step(&p, changed);
	}
	t->examined += i;
	progress_show(&p, 1);
	PQclear(r);
	return rc;
}

/* ------------------------------------------------------------ 2. probes */

/* A bouncing account due a probe: none sent yet in this episode, or the
 * last one bounce_probe_days ($2) old, and fewer than bounce_probes ($1). */
#define PROBE_DUE							\
	"s.status = 'bouncing' AND s.probes_sent < $1::int AND "	\
	"(s.probes_sent = 0 OR s.last_probe_at IS NULL OR "		\
	"s.last_probe_at <= now() - make_interval(days => $2::int) + "	\
	BOUNCER_SLACK ")"

/* restore_link - the probe's link for account id; returns allocated. */
static char *
restore_link(const char *id)
{
	unsigned char key[TOKEN_KEY_LEN];
	time_t expires;
	char *tok, *url;

	token_derive(cfg.secret, strlen(cfg.secret), BOUNCER_PURPOSE, key);
	expires = time(NULL) + ((time_t)cfg.bounce_probes *
	    cfg.bounce_probe_days + BOUNCER_LINK_DAYS) * 86400;
	if ((tok = token_sign(key, BOUNCER_PURPOSE, id, strlen(id),
	    expires)) == NULL)
		panic("bouncer: account id %s too long for a token", id);
	url = xasprintf("%s/bounce?t=%s", cfg.public_url, tok);
	free(tok);
	return url;
}

/* probe_compose - the probe to email for the groups in r (id, name,
 * domain, title; the first is the sender); returns allocated. */
static struct strbuf *
probe_compose(const char *id, const char *email, PGresult *r, int sent)
{
	struct compose_min c;
	struct strbuf *body = strbuf_new(2048), *msg;
	char *link, *from, *subject, until[40], expires[40];
	int i, n = PQntuples(r);

	strbuf_appendf(body, "Hello,\n\nMail from the groups below to %s has "
	    "been coming back undelivered (bouncing), so delivery to this "
	    "address is paused:\n\n", email);
	for (i = 0; i < n && i < BOUNCER_GROUPS_MAX; i++) {
		strbuf_puts(body, "  ");
		group_label(body, PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
		    PQgetvalue(r, i, 3));
		strbuf_putc(body, '\n');
	}
	if (n > BOUNCER_GROUPS_MAX)
		strbuf_puts(body, "  and more\n");
	link = restore_link(id);
	day_text(until, sizeof(until), (cfg.bounce_probes - sent + 1) *
	    cfg.bounce_probe_days);
	day_text(expires, sizeof(expires), cfg.bounce_probes *
	    cfg.bounce_probe_days + BOUNCER_LINK_DAYS);
	strbuf_appendf(body, "\nIf you can read this, the address works "
	    "again. To restore delivery, open this link and press the "
	    "button on the page:\n\n  %s\n\nThis is check %d of %d. Without "
	    "an answer the address will be marked as bounced after %s; the "
	    "link keeps working until %s.\n\nQuestions go to the group's "
	    "owners: %s+owner@%s\n", link, sent, cfg.bounce_probes, until,
	    expires, PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2));
	from = xasprintf("%s+owner@%s", PQgetvalue(r, 0, 1),
	    PQgetvalue(r, 0, 2));
	subject = xasprintf("Mail to %s is bouncing: restore delivery",
	    email);
	memset(&c, 0, sizeof(c));
	c.from_addr = from;
	c.from_name = PQgetvalue(r, 0, 3)[0] != '\0' ? PQgetvalue(r, 0, 3) :
	    PQgetvalue(r, 0, 1);
	c.to = email;
	c.subject = subject;
	c.msgid_domain = PQgetvalue(r, 0, 2);
	c.auto_submitted = "auto-generated";
	c.text = strbuf_str(body);
	msg = compose_min_message(&c);
	free(subject);
	free(from);
	free(link);
	strbuf_free(body);
	return msg;
}

/* probe_one - send account id its probe if still due: 1 if sent, 0 if
 * not (no longer due, or in no group), -1 on error.  The state change and
 * the outbox row commit together. */
static int
probe_one(struct db *d, const char *id, const char *max, const char *days,
    struct tally *t)
{
	char sent[16], email[320], verp[32];
	PGresult *r;
	struct strbuf *msg;
	json_t *rcv;
	int rc;

	if (db_begin(d) == -1)
		return -1;
	rc = db_query_value(d, "UPDATE bounce_state s SET probes_sent = "
	    "probes_sent + 1, last_probe_at = now() WHERE s.account_id = "
	    "$3::bigint AND " PROBE_DUE " RETURNING probes_sent",
	    DB_PARAMS(max, days, id), sent, sizeof(sent));
	if (rc != 1)
		goto done;
	/* the groups, the one of the latest bounce first: it sends */
	r = db_query(d, "SELECT g.id, g.name, g.domain, g.title, a.email "
	    "FROM accounts a JOIN memberships m ON m.account_id = a.id "
	    "AND m.status = 'active' JOIN groups g ON g.id = m.group_id "
	    "AND g.status <> 'disabled' WHERE a.id = $1::bigint "
	    "ORDER BY (SELECT max(e.received_at) FROM bounce_events e "
	    "WHERE e.account_id = a.id AND e.group_id = g.id) DESC NULLS "
	    "LAST, g.id", DB_PARAMS(id));
	if (r == NULL) {
		rc = -1;
		goto done;
	}
	if (PQntuples(r) == 0) {
		t->no_group++;
		PQclear(r);
		rc = 0;
		goto done;
	}
	strlcpy_chk(email, PQgetvalue(r, 0, 4), sizeof(email));
	msg = probe_compose(id, email, r, atoi(sent));
	snprintf(verp, sizeof(verp), "p%s", id);
	rcv = json_pack("[{s:s,s:s}]", "to", email, "verp", verp);
	rc = outbox_notice(d, PQgetvalue(r, 0, 0), msg, rcv) == 0 ? 1 : -1;
	if (rc == 1)
		log_info("bouncer: probe %s of %d to %s (account %s) through "
		    "%s@%s", sent, cfg.bounce_probes, email, id,
		    PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2));
	json_decref(rcv);
	strbuf_free(msg);
	PQclear(r);
done:
	if (rc == 1 && db_commit(d) == -1)
		return -1;
	if (rc != 1)
		db_rollback(d);
	return rc;
}

/* phase_probe - step 2 over the bouncing accounts that look due. */
static int
phase_probe(struct db *d, struct tally *t)
{
	char max[16], days[16];
	struct progress p;
	PGresult *r;
	int i, n, rc = 0, sent;

	int_str(max, sizeof(max), cfg.bounce_probes);
	int_str(days, sizeof(days), cfg.bounce_probe_days);
	r = db_query(d, "SELECT s.account_id FROM bounce_state s JOIN "
	    "accounts a ON a.id = s.account_id WHERE a.status = 'active' "
	    "AND " PROBE_DUE " ORDER BY 1", DB_PARAMS(max, days));
	if (r == NULL)
		return -1;
	n = PQntuples(r);
	progress_start(&p, "probe", "accounts", "probes sent", n);
	for (i = 0; i < n && !daemon_stopping(); i++) {
		if ((sent = probe_one(d, PQgetvalue(r, i, 0), max, days,
		    t)) == -1) {
			rc = -1;
			break;
		}
		t->probes += sent;
		progress_step(&p, sent);
	}
	t->examined += i;
	progress_show(&p, 1);
	PQclear(r);
	return rc;
}

/* ----------------------------------------------------------- 3. bounced */

/* notice_compose - the moderators' notice of group (id, name, domain,
 * title, count) listing the addresses in who; returns allocated. */
static struct strbuf *
notice_compose(PGresult *g, int row, PGresult *who)
{
	struct compose_min c;
	struct strbuf *body = strbuf_new(2048), *label = strbuf_new(256);
	struct strbuf *msg;
	const char *name = PQgetvalue(g, row, 1), *domain = PQgetvalue(g,
	    row, 2), *title = PQgetvalue(g, row, 3);
	long count = atol(PQgetvalue(g, row, 4));
	char *from, *subject;
	int i;

	group_label(label, name, domain, title);
	strbuf_appendf(body, "Mail to %s member%s of %s kept bouncing and "
	    "went unanswered after %d check%s over %d days, so %s now "
	    "marked as bounced and get%s no mail from the group:\n\n",
	    count == 1 ? "one" : "these", count == 1 ? "" : "s",
	    strbuf_str(label), cfg.bounce_probes,
	    cfg.bounce_probes == 1 ? "" : "s",
	    cfg.bounce_probes * cfg.bounce_probe_days,
	    count == 1 ? "it is" : "they are", count == 1 ? "s" : "");
	for (i = 0; i < PQntuples(who); i++)
		strbuf_appendf(body, "  %s\n", PQgetvalue(who, i, 0));
	if (count > PQntuples(who))
		strbuf_appendf(body, "  and %ld more\n",
		    count - PQntuples(who));
	strbuf_puts(body, "\nThey stay members. A member can restore "
	    "delivery with the link in the last check we sent, or by "
	    "asking you; their address may also simply be gone.\n");
	from = xasprintf("%s+owner@%s", name, domain);
	subject = xasprintf("%s: %ld member%s marked as bounced",
	    title[0] != '\0' ? title : name, count, count == 1 ? "" : "s");
	memset(&c, 0, sizeof(c));
	c.from_addr = from;
	c.from_name = title[0] != '\0' ? title : name;
	c.to = from;
	c.subject = subject;
	c.msgid_domain = domain;
	c.auto_submitted = "auto-generated";
	c.text = strbuf_str(body);
	msg = compose_min_message(&c);
	free(subject);
	free(from);
	strbuf_free(label);
	strbuf_free(body);
	return msg;
}

/* notice_one - queue group row's notice to its staff: 1, 0 when it has no
 * staff to tell, -1 on error. */
static int
notice_one(struct db *d, PGresult *g, int row)
{
	const char *gid = PQgetvalue(g, row, 0);
	char lim[16];
	PGresult *who, *staff;
	struct strbuf *msg;
	json_t *rcv;
	int i, rc;

	int_str(lim, sizeof(lim), BOUNCER_LIST_MAX);
	/* marked in this transaction: bounced_at is its now() */
	who = db_query(d, "SELECT a.email FROM bounce_state s JOIN accounts a "
	    "ON a.id = s.account_id JOIN memberships m ON m.account_id = "
	    "a.id AND m.status = 'active' WHERE m.group_id = $1::bigint AND "
	    "s.status = 'bounced' AND s.bounced_at = now() ORDER BY "
	    "lower(a.email) LIMIT $2::int", DB_PARAMS(gid, lim));
	staff = db_query(d, "SELECT a.email FROM memberships m JOIN accounts "
	    "a ON a.id = m.account_id LEFT JOIN bounce_state s ON "
	    "s.account_id = a.id WHERE m.group_id = $1::bigint AND m.role IN "
	    "('owner', 'moderator') AND m.status = 'active' AND a.status = "
	    "'active' AND coalesce(s.status, 'ok') = 'ok' ORDER BY m.id "
	    "LIMIT " BOUNCER_STAFF_MAX, DB_PARAMS(gid));
	if (who == NULL || staff == NULL) {
		rc = -1;
	} else if (PQntuples(staff) == 0) {
		log_warnx("bouncer: group %s@%s has members marked bounced "
		    "but no owner or moderator to tell", PQgetvalue(g, row, 1),
		    PQgetvalue(g, row, 2));
		rc = 0;
	} else {
		msg = notice_compose(g, row, who);
		rcv = json_array();
		for (i = 0; i < PQntuples(staff); i++)
			json_array_append_new(rcv, json_pack("{s:s}", "to",
			    PQgetvalue(staff, i, 0)));
		rc = outbox_notice(d, gid, msg, rcv) == 0 ? 1 : -1;
		json_decref(rcv);
		strbuf_free(msg);
	}
	PQclear(who);
	PQclear(staff);
	return rc;
}

/* phase_bounced - step 3 in one transaction: the marks and the notices
 * they cause commit together or not at all. */
static int
phase_bounced(struct db *d, struct tally *t)
{
	char max[16], days[16];
	struct progress p;
	PGresult *g = NULL;
	long n, notices = 0;
	int i, rc;

	int_str(max, sizeof(max), cfg.bounce_probes);
	int_str(days, sizeof(days), cfg.bounce_probe_days);
	if (db_begin(d) == -1)
		return -1;
	n = db_exec(d, "UPDATE bounce_state SET status = 'bounced', "
	    "bounced_at = now() WHERE status = 'bouncing' AND probes_sent >= "
	    "$1::int AND last_probe_at <= now() - make_interval(days => "
	    "$2::int) + " BOUNCER_SLACK, DB_PARAMS(max, days));
	if (n == -1)
		goto fail;
	if (n > 0 && (g = db_query(d, "SELECT gr.id, gr.name, gr.domain, "
	    "gr.title, count(*) FROM bounce_state s JOIN memberships m ON "
	    "m.account_id = s.account_id AND m.status = 'active' JOIN groups "
	    "gr ON gr.id = m.group_id WHERE s.status = 'bounced' AND "
	    "s.bounced_at = now() GROUP BY gr.id ORDER BY gr.id",
	    DB_NOPARAMS)) == NULL)
		goto fail;
	progress_start(&p, "bounced", "groups", "notices",
	    g != NULL ? PQntuples(g) : 0);
	for (i = 0; g != NULL && i < PQntuples(g); i++) {
		if ((rc = notice_one(d, g, i)) == -1)
			goto fail;
		notices += rc;
		progress_step(&p, rc);
	}
	if (db_commit(d) == -1)
		goto fail;
	progress_show(&p, 1);
	if (n > 0)
		log_info("bouncer: %ld account(s) marked bounced after %d "
		    "unanswered probe(s)", n, cfg.bounce_probes);
	t->bounced += n;
	t->notices += notices;
	PQclear(g);
	return 0;
fail:
	db_rollback(d);
	PQclear(g);
	return -1;
}

/* ----------------------------------------------------------- 4. age out */

/* phase_age - delete old events in batches (short transactions, so the
 * inbound side is never blocked long). */
static int
phase_age(struct db *d, struct tally *t)
{
	char days[16], count[32];
	struct progress p;
	long n;

	int_str(days, sizeof(days), cfg.bounce_event_days);
	if (db_query_value(d, "SELECT count(*) FROM bounce_events WHERE "
	    "received_at < now() - make_interval(days => $1::int)",
	    DB_PARAMS(days), count, sizeof(count)) != 1)
		return -1;
	progress_start(&p, "age out", "events", "deleted", atol(count));
	do {
		n = db_exec(d, "DELETE FROM bounce_events WHERE id IN (SELECT "
		    "id FROM bounce_events WHERE received_at < now() - "
		    "make_interval(days => $1::int) LIMIT "
		    BOUNCER_DELETE_BATCH ")", DB_PARAMS(days));
		if (n == -1)
			return -1;
		t->deleted += n;
		p.done += n;
		p.hits += n;
		progress_show(&p, 0);
	} while (n > 0 && !daemon_stopping());
	progress_show(&p, 1);
	return 0;
}

/* ------------------------------------------------------------------ run */

/* summary - the run's one line, whatever happened. */
static void
summary(const struct tally *t, int rc)
{
	log_info("bouncer: %ld candidate(s) examined: %ld now bouncing, "
	    "%ld probe(s) sent, %ld in no group, %ld bounced, %ld moderator "
	    "notice(s), %ld old event(s) deleted%s", t->examined, t->bouncing,
	    t->probes, t->no_group, t->bounced, t->notices, t->deleted,
	    rc == 0 ? "" : " (incomplete)");
}

/* bouncer_run - the four phases under the run's lock on d. */
static int
bouncer_run(struct db *d, struct tally *t)
{
	char locked[8];
	int rc = 0;

	if (db_query_value(d, "SELECT pg_try_advisory_lock("
	    BOUNCER_LOCK_KEY ")", DB_NOPARAMS, locked, sizeof(locked)) != 1)
		return -1;
	if (strcmp(locked, "t") != 0) {
		log_info("bouncer: another run is working; nothing done");
		return 0;
	}
	if (phase_soft(d, t) == -1 || phase_probe(d, t) == -1 ||
	    phase_bounced(d, t) == -1 || phase_age(d, t) == -1)
		rc = -1;
	if (rc == 0 && daemon_stopping()) {
		log_warnx("bouncer: stopped by a signal before the end");
		rc = -1;
	}
	db_exec(d, "SELECT pg_advisory_unlock(" BOUNCER_LOCK_KEY ")",
	    DB_NOPARAMS);
	return rc;
}

static int
bouncer_job(void)
{
	struct tally t;
	struct db *d;
	int rc = -1;

	memset(&t, 0, sizeof(t));
	if (cfg.secret == NULL || cfg.public_url == NULL) {
		log_err("bouncer: no secret or public_url configured");
	} else if ((d = db_get(daemon_db)) != NULL) {
		rc = bouncer_run(d, &t);
		db_put(daemon_db, d);
	}
	summary(&t, rc);
	return rc;
}

static const struct daemon_spec bouncer_spec = {
	.name = "bouncer",
	.flags = DAEMON_NO_HTTP | DAEMON_USES_DB,
};

int
main(int argc, char **argv)
{
	return daemon_cron(argc, argv, &bouncer_spec, bouncer_job);
}
