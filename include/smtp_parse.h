/* SPDX-License-Identifier: MIT */
/*
 * smtp_parse.h - the arguments of SMTP's MAIL and RCPT commands, parsed by
 * pure functions (no I/O, no globals) so that they can be unit-tested and
 * fuzzed on their own.
 *
 * Both parsers take the text after the verb ("FROM:<a@b> SIZE=10" for MAIL,
 * "TO:<a@b>" for RCPT) and return 0, or an SMTP reply code (501, 553, 555)
 * with the enhanced status code and the text of the reply in err, e.g.
 * "5.5.4 Unsupported parameter FOO".  Addresses are bounded: local part
 * SMTP_LOCAL_MAX, domain SMTP_DOMAIN_MAX, whole SMTP_ADDR_MAX (the same as
 * MS_ADDR_MAX in messageserver_clnt.h).
 */
#ifndef SMTP_PARSE_H
#define SMTP_PARSE_H

#include <stddef.h>

#include "bounds.h"

#define SMTP_PARSE_ERR_MAX	160

enum smtp_body {
	SMTP_BODY_NONE,		/* no BODY= given */
	SMTP_BODY_7BIT,
	SMTP_BODY_8BITMIME,
};

struct smtp_mail {
	char		 addr[SMTP_ADDR_MAX + 1];	/* "" for <> */
	long		 size;		/* SIZE=, -1 if not given */
	enum smtp_body	 body;
	int		 smtputf8;	/* SMTPUTF8 given */
};

struct smtp_rcpt {
	char		 addr[SMTP_ADDR_MAX + 1];
};

/* smtp_parse_mail - args of MAIL ("FROM:<addr> [params]"). */
int	 smtp_parse_mail(const char *args, struct smtp_mail *out, char *err,
	    size_t errlen);
/* smtp_parse_rcpt - args of RCPT ("TO:<addr>"); utf8: the transaction
 * declared SMTPUTF8, so non-ASCII addresses are allowed.  RCPT takes no
 * parameters (no DSN): any is a 555. */
int	 smtp_parse_rcpt(const char *args, int utf8, struct smtp_rcpt *out,
	    char *err, size_t errlen);
/* smtp_addr_valid - 1 if addr (without angle brackets) is local@domain
 * within the bounds; utf8 allows non-ASCII bytes (well-formed UTF-8). */
int	 smtp_addr_valid(const char *addr, int utf8);

#endif
