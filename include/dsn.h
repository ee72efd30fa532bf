/* SPDX-License-Identifier: MIT */
/*
 * dsn.h - what a bounce message says: which addresses failed and whether
 * for good.
 *
 * dsn_parse reads a delivery status notification: RFC 3464
 * multipart/report (Reporting-MTA, Final-Recipient, Action, Status,
 * Diagnostic-Code, Remote-MTA) and the common non-standard formats of
 * widely used MTAs (qmail, Exim, Postfix and sendmail without a DSN part,
 * Microsoft, Yahoo, AOL, ...).  Built on GMime.  Never trusts its input:
 * every field is bounded, and a message that is not a bounce gives
 * DSN_NONE.
 */
#ifndef DSN_H
#define DSN_H

#include <stddef.h>

#define DSN_RCPT_MAX	32	/* failed recipients reported per message */
#define DSN_ADDR_MAX	320	/* bytes of an address */
#define DSN_TEXT_MAX	512	/* bytes of a diagnostic */
#define DSN_INPUT_MAX	(2 * 1024 * 1024)	/* bytes of a message read;
						 * the rest is ignored */

enum dsn_kind {
	DSN_NONE = 0,		/* not a bounce (or nothing recognised) */
	DSN_HARD,		/* permanent: 5.x.x, Action: failed */
	DSN_SOFT,		/* temporary: 4.x.x, Action: delayed */
};

struct dsn_rcpt {
	enum dsn_kind	kind;
	char	addr[DSN_ADDR_MAX + 1];	/* lower-cased domain, no <> */
	char	status[16];		/* "5.1.1"; "" when none given */
	char	action[16];		/* failed|delayed|...; "" */
	char	diagnostic[DSN_TEXT_MAX + 1];	/* one line, UTF-8 */
	char	remote_mta[256];
};

struct dsn_result {
	int		is_dsn;		/* RFC 3464 report seen and used
					 * (it named a usable address);
					 * with nrcpt 0: it reported only
					 * successes (delivered, relayed,
					 * expanded) */
	char		reporting_mta[256];
	char		original_message_id[256];	/* without <>; "" */
	size_t		nrcpt;
	struct dsn_rcpt	rcpt[DSN_RCPT_MAX];
	char		envelope_id[256];	/* Original-Envelope-Id; "" */
};

/* dsn_parse - fill *out from the raw message (any line endings); returns
 * the number of recipients found (0: not a bounce we understand).
 * Thread-safe; initialises GMime once if the program has not. */
size_t	 dsn_parse(const char *msg, size_t len, struct dsn_result *out);

/* dsn_counts - 1 if a failure with this enhanced status code counts
 * against the address: 5.7.x (policy, spam) and 5.3.4 / 5.2.3 (message
 * too big) were caused by the message or the list, not the address. */
int	 dsn_counts(const char *status);

#endif
