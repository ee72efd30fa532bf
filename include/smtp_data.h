/* SPDX-License-Identifier: MIT */
/*
 * smtp_data.h - the body of SMTP's DATA command: dot-unstuffing, the size
 * bound and the SMTP smuggling defence, as a pure state machine that smtpd
 * feeds and the fuzzer drives.
 *
 * The caller splits its input after each LF (a piece without LF is a part
 * of a longer line; it must not end in CR unless more input can never
 * come).  Only <CRLF>.<CRLF> ends the data; a bare LF or a bare CR anywhere
 * sets bad_eol, and the message must then be refused (550 5.6.0).  Bytes
 * beyond max are counted but not kept (too_big: 552 5.3.4).  A line of
 * more than SMTP_MAX_DATA_LINE bytes (as sent, without its CRLF) sets
 * long_line: refuse it too (550 5.6.0).
 */
#ifndef SMTP_DATA_H
#define SMTP_DATA_H

#include <stddef.h>

#include "strbuf.h"

struct smtp_data {
	struct strbuf	*msg;		/* owned: the unstuffed message */
	size_t		 size;		/* bytes seen after unstuffing */
	size_t		 max;
	int		 too_big;
	int		 bad_eol;
	int		 long_line;
	size_t		 line;		/* bytes of the line so far */
	int		 at_bol;	/* the previous piece ended in CRLF */
};

/* smtp_data_begin - start a message of at most max bytes. */
void	 smtp_data_begin(struct smtp_data *, size_t max);
/* smtp_data_feed - one line with its LF (lf set) or a piece of a line
 * without LF; returns 1 when it was the final dot, 0 otherwise. */
int	 smtp_data_feed(struct smtp_data *, const char *p, size_t n, int lf);
/* smtp_data_end - free the message (d may be reused after begin). */
void	 smtp_data_end(struct smtp_data *);

#endif
