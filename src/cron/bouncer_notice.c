/* SPDX-License-Identifier: MIT */
/*
 * bouncer_notice.c - phase 3: bounced addresses and the moderators'
 * notices.
 *
 * A 'bouncing' account whose last probe went unanswered for
 * bounce_probe_days becomes 'bounced'; each group it is an active member
 * of gets one notice per run to its active owners and moderators (whose
 * own address is not paused), listing the members marked in this run.
 * The marks and the notices are one transaction, so they commit together
 * or not at all, and the accounts of this run are found by bounced_at =
 * now() (one value per transaction).
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bouncer.h"
#include "compose_min.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "strbuf.h"
#include "xalloc.h"

#define BOUNCER_LIST_MAX	100	/* addresses named in a notice */
#define BOUNCER_STAFF_MAX	"100"	/* receivers of a notice */

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

	bouncer_mail_group_label(label, name, domain, title);
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

	bouncer_int_str(lim, sizeof(lim), BOUNCER_LIST_MAX);
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
		rc = bouncer_mail_queue(d, gid, msg, rcv) == 0 ? 1 : -1;
		json_decref(rcv);
		strbuf_free(msg);
	}
	PQclear(who);
	PQclear(staff);
	return rc;
}

/* bouncer_notice_run - phase 3 in one transaction: the marks and the
 * notices they cause commit together or not at all. */
int
bouncer_notice_run(struct db *d, struct bouncer_tally *t)
{
	char max[16], days[16];
	struct bouncer_progress p;
	PGresult *g = NULL;
	long n, notices = 0;
	int i, rc;

	bouncer_int_str(max, sizeof(max), cfg.bounce_probes);
	bouncer_int_str(days, sizeof(days), cfg.bounce_probe_days);
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
	bouncer_progress_start(&p, "bounced", "groups", "notices",
	    g != NULL ? PQntuples(g) : 0);
	for (i = 0; g != NULL && i < PQntuples(g); i++) {
		if ((rc = notice_one(d, g, i)) == -1)
			goto fail;
		notices += rc;
		bouncer_progress_step(&p, rc);
	}
	if (db_commit(d) == -1)
		goto fail;
	bouncer_progress_show(&p, 1);
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
