/* SPDX-License-Identifier: MIT */
/*
 * compose_min.c - plain notices as RFC 5322 bytes without GMime: the cron
 * jobs (bouncer's probes and moderators' notices) are not linked with
 * messageserver's composer and need only one text part.
 *
 * Everything is CRLF and 7-bit on the wire: headers with 8-bit text become
 * RFC 2047 encoded-words, the body quoted-printable (RFC 2045), so karl
 * never needs 8BITMIME for a notice and a DKIM body hash cannot be broken
 * by a relay downgrading it.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "compose_min.h"
#include "token.h"

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char hexdig[] = "0123456789ABCDEF";

/* b64_append - standard base64 with padding (RFC 2047 "B"). */
static void
b64_append(struct strbuf *sb, const unsigned char *p, size_t n)
{
	unsigned v;
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
		strbuf_putc(sb, b64[v >> 18 & 63]);
		strbuf_putc(sb, b64[v >> 12 & 63]);
		strbuf_putc(sb, b64[v >> 6 & 63]);
		strbuf_putc(sb, b64[v & 63]);
	}
	if (n - i == 1) {
		v = (unsigned)p[i] << 16;
		strbuf_putc(sb, b64[v >> 18 & 63]);
		strbuf_putc(sb, b64[v >> 12 & 63]);
		strbuf_puts(sb, "==");
	} else if (n - i == 2) {
		v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
		strbuf_putc(sb, b64[v >> 18 & 63]);
		strbuf_putc(sb, b64[v >> 12 & 63]);
		strbuf_putc(sb, b64[v >> 6 & 63]);
		strbuf_putc(sb, '=');
	}
}

/* has_8bit - non-zero if s has a byte above 127. */
static int
has_8bit(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s > 127)
			return 1;
	return 0;
}

void
compose_min_header_text(struct strbuf *sb, const char *value)
{
	/* bytes of text per encoded-word: 4/3 of it plus "=?UTF-8?B??="
	 * stays within COMPOSE_MIN_WORD */
	const size_t chunk = (COMPOSE_MIN_WORD - 12) / 4 * 3;
	unsigned char word[64];
	size_t n, cut;
	const char *p;

	if (!has_8bit(value)) {
		for (p = value; *p != '\0'; p++)
			strbuf_putc(sb, (unsigned char)*p < 32 || *p == 127 ?
			    ' ' : *p);
		return;
	}
	p = value;
	while (*p != '\0') {
		n = strlen(p);
		cut = n < chunk ? n : chunk;
		/* never split a UTF-8 sequence: back off continuation bytes */
		while (cut < n && cut > 0 &&
		    ((unsigned char)p[cut] & 0xC0) == 0x80)
			cut--;
		if (cut == 0)
			cut = n < chunk ? n : chunk;
		memcpy(word, p, cut);
		for (n = 0; n < cut; n++)
			if (word[n] < 32 || word[n] == 127)
				word[n] = ' ';
		if (p != value)
			strbuf_puts(sb, "\r\n ");
		strbuf_puts(sb, "=?UTF-8?B?");
		b64_append(sb, word, cut);
		strbuf_puts(sb, "?=");
		p += cut;
	}
}

/* address - an address as is (RFC 6532 allows UTF-8), controls removed. */
static void
address(struct strbuf *sb, const char *a)
{
	for (; *a != '\0'; a++)
		if ((unsigned char)*a >= 32 && *a != 127 && *a != '<' &&
		    *a != '>')
			strbuf_putc(sb, *a);
}

/* display_name - a phrase: quoted when ASCII, encoded-words otherwise. */
static void
display_name(struct strbuf *sb, const char *name)
{
	const char *p;

	if (has_8bit(name)) {
		compose_min_header_text(sb, name);
		return;
	}
	strbuf_putc(sb, '"');
	for (p = name; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			strbuf_putc(sb, '\\');
		strbuf_putc(sb, (unsigned char)*p < 32 || *p == 127 ? ' ' :
		    *p);
	}
	strbuf_putc(sb, '"');
}

/* qp_line - one line of text (no line end) as quoted-printable. */
static void
qp_line(struct strbuf *sb, const char *s, size_t n)
{
	char enc[4];
	size_t i, col = 0, w;
	unsigned char c;

	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if ((c >= 33 && c <= 126 && c != '=') ||
		    ((c == ' ' || c == '\t') && i + 1 < n)) {
			enc[0] = (char)c;
			w = 1;
		} else {
			enc[0] = '=';
			enc[1] = hexdig[c >> 4];
			enc[2] = hexdig[c & 15];
			w = 3;
		}
		/* a soft break leaves room for its own "=" */
		if (col + w > COMPOSE_MIN_QP_LINE - 1) {
			strbuf_puts(sb, "=\r\n");
			col = 0;
		}
		strbuf_append(sb, enc, w);
		col += w;
	}
}

void
compose_min_qp(struct strbuf *sb, const char *text)
{
	const char *nl;
	size_t n;

	while (*text != '\0') {
		nl = strchr(text, '\n');
		n = nl != NULL ? (size_t)(nl - text) : strlen(text);
		qp_line(sb, text, n > 0 && text[n - 1] == '\r' ? n - 1 : n);
		strbuf_puts(sb, "\r\n");
		text += nl != NULL ? n + 1 : n;
	}
}

/* date_header - RFC 5322 date in UTC, locale-independent. */
static void
date_header(struct strbuf *sb, time_t t)
{
	static const char *const day[] = { "Sun", "Mon", "Tue", "Wed", "Thu",
	    "Fri", "Sat" };
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May",
	    "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;

	gmtime_r(&t, &tm);
	strbuf_appendf(sb, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n",
	    day[tm.tm_wday], tm.tm_mday, mon[tm.tm_mon], tm.tm_year + 1900,
	    tm.tm_hour, tm.tm_min, tm.tm_sec);
}

struct strbuf *
compose_min_message(const struct compose_min *c)
{
	struct strbuf *sb = strbuf_new(2048 + strlen(c->text) * 3 / 2);
	char id[33];

	strbuf_puts(sb, "From: ");
	if (c->from_name != NULL && c->from_name[0] != '\0') {
		display_name(sb, c->from_name);
		strbuf_puts(sb, " <");
		address(sb, c->from_addr);
		strbuf_puts(sb, ">\r\n");
	} else {
		address(sb, c->from_addr);
		strbuf_puts(sb, "\r\n");
	}
	strbuf_puts(sb, "To: ");
	address(sb, c->to);
	strbuf_puts(sb, "\r\nSubject: ");
	compose_min_header_text(sb, c->subject);
	strbuf_puts(sb, "\r\n");
	date_header(sb, c->date != 0 ? c->date : time(NULL));
	token_random_id(id, 16);
	strbuf_appendf(sb, "Message-ID: <%s@", id);
	address(sb, c->msgid_domain);
	strbuf_puts(sb, ">\r\n");
	if (c->auto_submitted != NULL) {
		strbuf_puts(sb, "Auto-Submitted: ");
		compose_min_header_text(sb, c->auto_submitted);
		strbuf_puts(sb, "\r\n");
	}
	strbuf_puts(sb, "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=UTF-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
	compose_min_qp(sb, c->text);
	return sb;
}
