/* SPDX-License-Identifier: MIT */
/*
 * bouncer_mail.c - what the bouncer's two kinds of mail share: the probe
 * (bouncer_probe.c) and the moderators' notice (bouncer_notice.c) both
 * name groups the same way and both leave through the outbox as a
 * 'notice' row, which messageserver's fan-out hands to karl.  Queueing
 * in the caller's transaction is what lets a state change commit
 * together with the mail it causes.
 */
#include <stdlib.h>

#include <jansson.h>

#include "bouncer.h"
#include "db.h"
#include "strbuf.h"

/* bouncer_mail_queue - queue msg for receivers (borrowed) through group
 * gid, in d's transaction.  0 or -1. */
int
bouncer_mail_queue(struct db *d, const char *gid, const struct strbuf *msg,
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

/* bouncer_mail_group_label - "Title (name@domain)" or "name@domain" into
 * sb. */
void
bouncer_mail_group_label(struct strbuf *sb, const char *name,
    const char *domain, const char *title)
{
	if (title[0] != '\0')
		strbuf_appendf(sb, "%s (%s@%s)", title, name, domain);
	else
		strbuf_appendf(sb, "%s@%s", name, domain);
}
