/* SPDX-License-Identifier: MIT */
/*
 * bouncer_probe.c - phase 2: the probes, and the message they carry.
 *
 * A 'bouncing' account of an active account gets a probe through the
 * outbox, the first at once, then one every bounce_probe_days,
 * bounce_probes in all.  It is sent with VERP "p<account>", so a probe
 * that bounces comes back to messageserver as a bounce of that account,
 * and it carries a signed restore link (web's /bounce) that outlives the
 * day the address would be marked bounced.  The UPDATE that counts the
 * probe re-checks that it is due and commits with the outbox row, so a
 * second run sends nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "bouncer.h"
#include "compose_min.h"
#include "config.h"
#include "daemon.h"
#include "db.h"
#include "log.h"
#include "strbuf.h"
#include "token.h"
#include "xalloc.h"

/* The restore link outlives the last probe's deadline by this much. */
#define BOUNCER_LINK_DAYS	14
#define BOUNCER_PURPOSE		"bounce"	/* token label and purpose */
#define BOUNCER_GROUPS_MAX	50	/* groups named in a probe */

/* A bouncing account due a probe: none sent yet in this episode, or the
 * last one bounce_probe_days ($2) old, and fewer than bounce_probes ($1). */
#define PROBE_DUE							\
	"s.status = 'bouncing' AND s.probes_sent < $1::int AND "	\
	"(s.probes_sent = 0 OR s.last_probe_at IS NULL OR "		\
	"s.last_probe_at <= now() - make_interval(days => $2::int) + "	\
	BOUNCER_SLACK ")"

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
		bouncer_mail_group_label(body, PQgetvalue(r, i, 1),
		    PQgetvalue(r, i, 2), PQgetvalue(r, i, 3));
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
    struct bouncer_tally *t)
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
	rc = bouncer_mail_queue(d, PQgetvalue(r, 0, 0), msg, rcv) == 0 ?
	    1 : -1;
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

/* bouncer_probe_run - phase 2 over the bouncing accounts that look due;
 * probe_one checks again in the UPDATE that counts the probe. */
int
bouncer_probe_run(struct db *d, struct bouncer_tally *t)
{
	char max[16], days[16];
	struct bouncer_progress p;
	PGresult *r;
	int i, n, rc = 0, sent;

	bouncer_int_str(max, sizeof(max), cfg.bounce_probes);
	bouncer_int_str(days, sizeof(days), cfg.bounce_probe_days);
	r = db_query(d, "SELECT s.account_id FROM bounce_state s JOIN "
	    "accounts a ON a.id = s.account_id WHERE a.status = 'active' "
	    "AND " PROBE_DUE " ORDER BY 1", DB_PARAMS(max, days));
	if (r == NULL)
		return -1;
	n = PQntuples(r);
	bouncer_progress_start(&p, "probe", "accounts", "probes sent", n);
	for (i = 0; i < n && !daemon_stopping(); i++) {
		if ((sent = probe_one(d, PQgetvalue(r, i, 0), max, days,
		    t)) == -1) {
			rc = -1;
			break;
		}
		t->probes += sent;
		bouncer_progress_step(&p, sent);
	}
	t->examined += i;
	bouncer_progress_show(&p, 1);
	PQclear(r);
	return rc;
}
