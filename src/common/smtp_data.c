/* SPDX-License-Identifier: MIT */
/*
 * smtp_data.c - DATA bodies: dot-unstuffing (RFC 5321 4.5.2), the size
 * bound, and the SMTP smuggling defence (only CRLF.CRLF ends the data; a
 * bare CR or LF marks the message as one to refuse), and the line length
 * bound.  See smtp_data.h.
 */
#include <string.h>

#include "bounds.h"
#include "smtp_data.h"

void
smtp_data_begin(struct smtp_data *d, size_t max)
{
	memset(d, 0, sizeof(*d));
	d->msg = strbuf_new(8192);
	d->max = max;
	d->at_bol = 1;		/* DATA's own CRLF came before */
}

void
smtp_data_end(struct smtp_data *d)
{
	d->msg = strbuf_free(d->msg);
}

static void
append(struct smtp_data *d, const char *p, size_t n)
{
	d->size += n;
	if (d->size > d->max) {
		if (!d->too_big)
			strbuf_reset(d->msg);
		d->too_big = 1;
		return;
	}
	strbuf_append(d->msg, p, n);
}

/* line_add - n more bytes of the current line (as sent). */
static void
line_add(struct smtp_data *d, size_t n)
{
	d->line += n;
	if (d->line > SMTP_MAX_DATA_LINE)
		d->long_line = 1;
}

int
smtp_data_feed(struct smtp_data *d, const char *p, size_t n, int lf)
{
	size_t content, skip = 0;
	int crlf;

	if (n == 0)
		return 0;
	if (!lf) {
		/* A piece of a long line: any CR in it is bare (a CR right
		 * before the LF is kept back by the caller). */
		if (memchr(p, '\r', n) != NULL)
			d->bad_eol = 1;
		if (d->at_bol && p[0] == '.')
			skip = 1;
		append(d, p + skip, n - skip);
		d->at_bol = 0;
		line_add(d, n);
		return 0;
	}
	crlf = n >= 2 && p[n - 2] == '\r';
	content = n - (crlf ? 2 : 1);
	if (!crlf || memchr(p, '\r', content) != NULL)
		d->bad_eol = 1;
	line_add(d, content);
	d->line = 0;
	if (crlf && d->at_bol && content == 1 && p[0] == '.')
		return 1;
	if (d->at_bol && content > 0 && p[0] == '.')
		skip = 1;
	append(d, p + skip, n - skip);
	d->at_bol = crlf;
	return 0;
}
