/* SPDX-License-Identifier: MIT */
/*
 * compose_min.h - a small RFC 5322 composer for programs that send plain
 * notices without GMime (the cron jobs): one text/plain UTF-8 part,
 * quoted-printable, CRLF line ends, RFC 2047 headers when not ASCII.
 *
 * Header values are cleaned of control characters (no header injection
 * from a group title or an address read from the database).  The body
 * is UTF-8 text with "\n" line ends.
 */
#ifndef COMPOSE_MIN_H
#define COMPOSE_MIN_H

#include <stddef.h>
#include <time.h>

#include "strbuf.h"

#define COMPOSE_MIN_QP_LINE	76	/* RFC 2045 6.7: encoded line length */
#define COMPOSE_MIN_WORD	75	/* RFC 2047 2: an encoded-word */

struct compose_min {
	const char	*from_addr;	/* local@domain */
	const char	*from_name;	/* display name or NULL */
	const char	*to;		/* one address */
	const char	*subject;
	const char	*msgid_domain;	/* right side of the Message-ID */
	const char	*auto_submitted; /* RFC 3834 value, NULL: none */
	const char	*text;		/* UTF-8, "\n" line ends */
	time_t		 date;		/* 0: now */
};

/* compose_min_message - the whole message; returns allocated, caller
 * frees with strbuf_free. */
struct strbuf *compose_min_message(const struct compose_min *);

/* compose_min_header_text - append a header value: control characters
 * become spaces; a value with 8-bit bytes becomes RFC 2047 "B" words of
 * UTF-8, split between characters. */
void	 compose_min_header_text(struct strbuf *, const char *value);

/* compose_min_qp - append text as quoted-printable with CRLF line ends
 * ("\n" and "\r\n" in text both end a line). */
void	 compose_min_qp(struct strbuf *, const char *text);

#endif
