/* SPDX-License-Identifier: MIT */
/*
 * test_compose_min.c - unit tests of the small RFC 5322 composer
 * (compose_min.c) the cron jobs write their notices with.
 *
 * Known answers (base64 and quoted-printable computed with Python's base64
 * and quopri modules, the date with email.utils) for header words, the
 * body and the Date field; RFC 2047 words within 75 characters and never
 * split inside a UTF-8 sequence (decoded here, word by word); the 76
 * character quoted-printable line and its soft breaks, decoded back to the
 * input; CRLF everywhere, whatever line ends the text had; control
 * characters kept out of headers (no header injection); empty inputs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "compose_min.h"
#include "strbuf.h"
#include "xalloc.h"

/* header - compose_min_header_text of value (allocated). */
static char *
header(const char *value)
{
	struct strbuf *sb = strbuf_new(64);
	char *s;

	compose_min_header_text(sb, value);
	s = xstrdup(sb->buf);
	strbuf_free(sb);
	return s;
}

/* qp - compose_min_qp of text (allocated). */
static char *
qp(const char *text)
{
	struct strbuf *sb = strbuf_new(64);
	char *s;

	compose_min_qp(sb, text);
	s = xstrdup(sb->buf);
	strbuf_free(sb);
	return s;
}

/* b64_value - the value of a base64 character, -1 if it is none. */
static int
b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* b64_decode - padded base64 of n characters appended to out; fails the
 * test on anything else. */
static void
b64_decode(const char *s, size_t n, struct strbuf *out)
{
	size_t i;
	int v[4], k;

	assert_int_equal(n % 4, 0);
	for (i = 0; i < n; i += 4) {
		for (k = 0; k < 4; k++) {
			v[k] = s[i + k] == '=' && i + 4 == n && k >= 2 ? 0 :
			    b64_value(s[i + k]);
			assert_true(v[k] >= 0);
		}
		strbuf_putc(out, (char)(v[0] << 2 | v[1] >> 4));
		if (s[i + 2] != '=')
			strbuf_putc(out, (char)((v[1] & 15) << 4 | v[2] >> 2));
		if (s[i + 3] != '=')
			strbuf_putc(out, (char)((v[2] & 3) << 6 | v[3]));
	}
}

/* utf8_valid - 1 if s (n bytes) is complete, valid UTF-8. */
static int
utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0, k, len;

	while (i < n) {
		if (s[i] < 0x80)
			len = 1;
		else if ((s[i] & 0xE0) == 0xC0)
			len = 2;
		else if ((s[i] & 0xF0) == 0xE0)
			len = 3;
		else if ((s[i] & 0xF8) == 0xF0)
			len = 4;
		else
			return 0;
		if (i + len > n)
			return 0;
		for (k = 1; k < len; k++)
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
		i += len;
	}
	return 1;
}

/* decode_words - check that h is encoded-words "=?UTF-8?B?...?=" joined
 * by "\r\n ", each at most COMPOSE_MIN_WORD characters and, when
 * whole_chars, valid UTF-8 on its own; returns the decoded text
 * (allocated) and the number of words in *nwords. */
static char *
decode_words(const char *h, int whole_chars, size_t *nwords)
{
	struct strbuf *out = strbuf_new(64), *one;
	const char *p = h, *end;
	char *s;

	*nwords = 0;
	for (;;) {
		assert_memory_equal(p, "=?UTF-8?B?", 10);
		end = strstr(p + 10, "?=");
		assert_non_null(end);
		assert_true((size_t)(end + 2 - p) <= COMPOSE_MIN_WORD);
		one = strbuf_new(64);
		b64_decode(p + 10, (size_t)(end - p - 10), one);
		if (whole_chars)
			assert_true(utf8_valid((unsigned char *)one->buf,
			    one->len));
		strbuf_append(out, one->buf, one->len);
		strbuf_free(one);
		(*nwords)++;
		p = end + 2;
		if (*p == '\0')
			break;
		assert_memory_equal(p, "\r\n ", 3);
		p += 3;
	}
	s = xstrdup(out->buf);
	strbuf_free(out);
	return s;
}

/* qp_decode - decode quoted-printable with CRLF lines, checking it on
 * the way: every line at most COMPOSE_MIN_QP_LINE characters, no bare
 * CR or LF, only printable ASCII, "=" always a soft break or two upper
 * case hex digits, no space or tab at the end of a line; returns the text
 * with "\n" line ends (allocated). */
static char *
qp_decode(const char *q)
{
	struct strbuf *out = strbuf_new(64);
	const char *p = q, *eol;
	size_t n, i;
	char *s, hex[3] = { 0 };

	while (*p != '\0') {
		eol = strstr(p, "\r\n");
		assert_non_null(eol);
		n = (size_t)(eol - p);
		assert_true(n <= COMPOSE_MIN_QP_LINE);
		assert_null(memchr(p, '\n', n));
		assert_null(memchr(p, '\r', n));
		if (n > 0)
			assert_true(p[n - 1] != ' ' && p[n - 1] != '\t');
		for (i = 0; i < n; i++) {
			assert_true((p[i] >= 33 && p[i] <= 126) ||
			    p[i] == ' ' || p[i] == '\t');
			if (p[i] != '=') {
				strbuf_putc(out, p[i]);
				continue;
			}
			if (i + 1 == n) {	/* soft break */
				assert_true(n <= COMPOSE_MIN_QP_LINE);
				break;
			}
			assert_true(i + 2 < n);
			assert_non_null(strchr("0123456789ABCDEF", p[i + 1]));
			assert_non_null(strchr("0123456789ABCDEF", p[i + 2]));
			hex[0] = p[i + 1];
			hex[1] = p[i + 2];
			strbuf_putc(out, (char)strtol(hex, NULL, 16));
			i += 2;
		}
		if (n == 0 || p[n - 1] != '=')
			strbuf_putc(out, '\n');
		p = eol + 2;
	}
	s = xstrdup(out->buf);
	strbuf_free(out);
	return s;
}

static void
test_header_ascii(void **state)
{
	char *h;

	(void)state;
	h = header("Probe: is ann@example.net still there?");
	assert_string_equal(h, "Probe: is ann@example.net still there?");
	free(h);
	/* no header injection: control characters become spaces */
	h = header("Hi\r\nBcc: x@example.net\tend\x7f");
	assert_string_equal(h, "Hi  Bcc: x@example.net end ");
	free(h);
	h = header("");
	assert_string_equal(h, "");
	free(h);
}

static void
test_header_encoded_known(void **state)
{
	char a44[64], a45[64], want[256], *h;

	(void)state;
	h = header("Caf\xc3\xa9");
	assert_string_equal(h, "=?UTF-8?B?Q2Fmw6k=?=");
	free(h);

	/* 45 bytes fill one word; the next character starts a second */
	memset(a45, 'a', 45);
	strlcpy_chk(a45 + 45, "\xc3\xa9", sizeof(a45) - 45);
	h = header(a45);
	snprintf(want, sizeof(want), "=?UTF-8?B?%s?=\r\n =?UTF-8?B?w6k=?=",
	    "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFh");
	assert_string_equal(h, want);
	free(h);

	/* 44 bytes and a two-byte character: the word ends before it */
	memset(a44, 'a', 44);
	strlcpy_chk(a44 + 44, "\xc3\xa9", sizeof(a44) - 44);
	h = header(a44);
	snprintf(want, sizeof(want), "=?UTF-8?B?%s?=\r\n =?UTF-8?B?w6k=?=",
	    "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE=");
	assert_string_equal(h, want);
	free(h);
}

static void
test_header_long_utf8(void **state)
{
	/* two-, three- and four-byte characters at every offset */
	static const char *const ch[] = { "\xc3\xa9", "\xe2\x82\xac",
	    "\xf0\x9f\x93\xa8", "x" };
	struct strbuf *in;
	size_t i, k, nwords;
	char *h, *dec;

	(void)state;
	for (k = 0; k < 4; k++) {
		in = strbuf_new(1024);
		strbuf_puts(in, "Gr\xc3\xbc\xc3\x9f" "e ");
		for (i = 0; i < 100; i++)
			strbuf_puts(in, ch[(i + k) % 4]);
		h = header(in->buf);
		dec = decode_words(h, 1, &nwords);
		assert_string_equal(dec, in->buf);
		/* 45 bytes a word at most, so at least len/45 words */
		assert_true(nwords >= (in->len + 44) / 45);
		assert_true(nwords <= in->len / 40 + 1);
		free(dec);
		free(h);
		strbuf_free(in);
	}
}

static void
test_header_encoded_controls(void **state)
{
	size_t nwords;
	char *h, *dec;

	(void)state;
	/* inside an encoded word controls become spaces too */
	h = header("\xc3\xa9t\xc3\xa9\r\nBcc: x@example.net");
	dec = decode_words(h, 1, &nwords);
	assert_int_equal(nwords, 1);
	assert_string_equal(dec, "\xc3\xa9t\xc3\xa9  Bcc: x@example.net");
	free(dec);
	free(h);
	/* continuation bytes only (not UTF-8): cut anyway, and it ends */
	h = header("\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9"
	    "\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9"
	    "\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9\xa9"
	    "\xa9\xa9\xa9\xa9");
	dec = decode_words(h, 0, &nwords);
	assert_int_equal(nwords, 2);
	assert_int_equal(strlen(dec), 50);
	free(dec);
	free(h);
}

static void
test_qp_known(void **state)
{
	char *q;

	(void)state;
	/* Python: quopri.encodestring("Grüße = 100%\t \n".encode()) */
	q = qp("Gr\xc3\xbc\xc3\x9f" "e = 100%\t \n");
	assert_string_equal(q, "Gr=C3=BC=C3=9Fe =3D 100%\t=20\r\n");
	free(q);
	/* every line end becomes CRLF; a lone CR inside a line is encoded */
	q = qp("one\ntwo\r\nthree");
	assert_string_equal(q, "one\r\ntwo\r\nthree\r\n");
	free(q);
	q = qp("a\rb\n");
	assert_string_equal(q, "a=0Db\r\n");
	free(q);
	/* blank lines are kept; trailing blanks are encoded */
	q = qp("\n\nx \n\t\n");
	assert_string_equal(q, "\r\n\r\nx=20\r\n=09\r\n");
	free(q);
	/* lines starting with a dot or "From " need nothing from QP */
	q = qp(".\nFrom me\n");
	assert_string_equal(q, ".\r\nFrom me\r\n");
	free(q);
	q = qp("");
	assert_string_equal(q, "");
	free(q);
}

static void
test_qp_long_lines(void **state)
{
	char in[128], want[256], *q;

	(void)state;
	/* 75 characters fit a line; the 76th needs a soft break */
	memset(in, 'a', 75);
	in[75] = '\0';
	q = qp(in);
	snprintf(want, sizeof(want), "%s\r\n", in);
	assert_string_equal(q, want);
	free(q);
	in[75] = 'b';
	in[76] = '\0';
	q = qp(in);
	memset(want, 'a', 75);
	strlcpy_chk(want + 75, "=\r\nb\r\n", sizeof(want) - 75);
	assert_string_equal(q, want);
	free(q);
	/* an escape is never split by a soft break */
	memset(in, 'a', 74);
	strlcpy_chk(in + 74, "\xc3\xa9", sizeof(in) - 74);
	q = qp(in);
	memset(want, 'a', 74);
	strlcpy_chk(want + 74, "=\r\n=C3=A9\r\n", sizeof(want) - 74);
	assert_string_equal(q, want);
	free(q);
	/* a blank before a soft break stays literal: "=" follows it */
	memset(in, 'a', 74);
	strlcpy_chk(in + 74, " b", sizeof(in) - 74);
	q = qp(in);
	memset(want, 'a', 74);
	strlcpy_chk(want + 74, " =\r\nb\r\n", sizeof(want) - 74);
	assert_string_equal(q, want);
	free(q);
}

static void
test_qp_round_trip(void **state)
{
	struct strbuf *in = strbuf_new(8192);
	char *q, *dec;
	size_t i;

	(void)state;
	/* long lines of every byte but NUL, blanks at line ends, = signs */
	for (i = 0; i < 3000; i++) {
		unsigned char c = (unsigned char)(1 + (i * 7) % 255);

		if (c == '\n' || c == '\r')
			c = ' ';
		strbuf_putc(in, (char)c);
		if (i % 700 == 699)
			strbuf_puts(in, " \n\t\n\n");
	}
	strbuf_putc(in, '\n');
	q = qp(in->buf);
	dec = qp_decode(q);
	assert_string_equal(dec, in->buf);
	free(dec);
	free(q);
	strbuf_free(in);
}

/* field - the value of header name in msg (up to its CRLF; allocated),
 * or NULL. */
static char *
field(const char *msg, const char *name)
{
	size_t n = strlen(name);
	const char *p = msg, *eol;

	while (*p != '\0' && strncmp(p, "\r\n", 2) != 0) {
		eol = strstr(p, "\r\n");
		assert_non_null(eol);
		if (strncmp(p, name, n) == 0 && p[n] == ':' && p[n + 1] == ' ')
			return xstrndup(p + n + 2, (size_t)(eol - p - n - 2));
		p = eol + 2;
	}
	return NULL;
}

/* check_lines - every line of msg ends in CRLF, no bare CR or LF, at most
 * 998 octets, and only 7-bit bytes. */
static void
check_lines(const char *msg)
{
	const char *p = msg, *eol;

	assert_true(strlen(msg) >= 2);
	assert_string_equal(msg + strlen(msg) - 2, "\r\n");
	while (*p != '\0') {
		eol = strstr(p, "\r\n");
		assert_non_null(eol);
		assert_null(memchr(p, '\n', (size_t)(eol - p)));
		assert_null(memchr(p, '\r', (size_t)(eol - p)));
		assert_true(eol - p <= 998);
		for (; p < eol; p++)
			assert_true((unsigned char)*p < 128);
		p = eol + 2;
	}
}

static void
test_message_known(void **state)
{
	struct compose_min c = {
		.from_addr = "demo+owner@example.org",
		.from_name = "Demo \"list\" \\ owners",
		.to = "ann@example.net",
		.subject = "Mail to ann@example.net bounced",
		.msgid_domain = "example.org",
		.auto_submitted = "auto-generated",
		.text = "Hello,\n\nmail bounced.\n",
		.date = 1700000000,
	};
	struct strbuf *m = compose_min_message(&c);
	const char *body;
	char *v;

	(void)state;
	check_lines(m->buf);
	v = field(m->buf, "From");
	assert_string_equal(v, "\"Demo \\\"list\\\" \\\\ owners\" "
	    "<demo+owner@example.org>");
	free(v);
	v = field(m->buf, "To");
	assert_string_equal(v, "ann@example.net");
	free(v);
	v = field(m->buf, "Subject");
	assert_string_equal(v, "Mail to ann@example.net bounced");
	free(v);
	/* Python: email.utils.formatdate(1700000000) */
	v = field(m->buf, "Date");
	assert_string_equal(v, "Tue, 14 Nov 2023 22:13:20 +0000");
	free(v);
	v = field(m->buf, "Message-ID");
	assert_int_equal(strlen(v), 1 + 32 + 1 + strlen("example.org") + 1);
	assert_int_equal(v[0], '<');
	assert_int_equal(strspn(v + 1, "0123456789abcdef"), 32);
	assert_string_equal(v + 33, "@example.org>");
	free(v);
	v = field(m->buf, "Auto-Submitted");
	assert_string_equal(v, "auto-generated");
	free(v);
	v = field(m->buf, "MIME-Version");
	assert_string_equal(v, "1.0");
	free(v);
	v = field(m->buf, "Content-Type");
	assert_string_equal(v, "text/plain; charset=UTF-8");
	free(v);
	v = field(m->buf, "Content-Transfer-Encoding");
	assert_string_equal(v, "quoted-printable");
	free(v);
	body = strstr(m->buf, "\r\n\r\n");
	assert_non_null(body);
	assert_string_equal(body + 4, "Hello,\r\n\r\nmail bounced.\r\n");
	strbuf_free(m);
}

static void
test_message_utf8_and_injection(void **state)
{
	struct compose_min c = {
		.from_addr = "demo+owner@example.org\r\nBcc: <x@example.net>",
		.from_name = "Gr\xc3\xbcppe \xe2\x82\xac",
		.to = "<ann@example.net>\r\nBcc: y@example.net",
		.subject = "\xc3\x9c" "ber \xe2\x82\xac\nBcc: z@example.net",
		.msgid_domain = "example.org>\r\nX: y",
		.auto_submitted = NULL,
		.text = "Gr\xc3\xbc\xc3\x9f" "e\n",
		.date = 0,
	};
	struct strbuf *m;
	time_t before = time(NULL), after, t;
	struct tm tm;
	size_t nwords;
	char *v, *dec, *lt, want[64];

	(void)state;
	m = compose_min_message(&c);
	check_lines(m->buf);
	/* nothing injected: no Bcc or X field, no Auto-Submitted */
	assert_null(field(m->buf, "Bcc"));
	assert_null(field(m->buf, "X"));
	assert_null(field(m->buf, "Auto-Submitted"));
	v = field(m->buf, "To");
	assert_string_equal(v, "ann@example.netBcc: y@example.net");
	free(v);
	/* a non-ASCII display name is encoded words, then the address */
	v = field(m->buf, "From");
	lt = strstr(v, " <");
	assert_non_null(lt);
	assert_string_equal(lt, " <demo+owner@example.orgBcc: "
	    "x@example.net>");
	*lt = '\0';
	dec = decode_words(v, 1, &nwords);
	assert_string_equal(dec, "Gr\xc3\xbcppe \xe2\x82\xac");
	free(dec);
	free(v);
	v = field(m->buf, "Subject");
	dec = decode_words(v, 1, &nwords);
	assert_string_equal(dec, "\xc3\x9c" "ber \xe2\x82\xac Bcc: "
	    "z@example.net");
	free(dec);
	free(v);
	v = field(m->buf, "Message-ID");
	assert_string_equal(v + 33, "@example.orgX: y>");
	free(v);
	/* date 0 is now */
	v = field(m->buf, "Date");
	assert_non_null(v);
	after = time(NULL);
	for (t = before; t <= after; t++) {
		gmtime_r(&t, &tm);
		strftime(want, sizeof(want), "%a, %d %b %Y %H:%M:%S +0000",
		    &tm);
		if (strcmp(v, want) == 0)
			break;
	}
	assert_true(t <= after);
	free(v);
	dec = qp_decode(strstr(m->buf, "\r\n\r\n") + 4);
	assert_string_equal(dec, "Gr\xc3\xbc\xc3\x9f" "e\n");
	free(dec);
	strbuf_free(m);
}

static void
test_message_empty(void **state)
{
	struct compose_min c = {
		.from_addr = "demo+owner@example.org",
		.from_name = "",
		.to = "ann@example.net",
		.subject = "",
		.msgid_domain = "example.org",
		.text = "",
		.date = 86400,
	};
	struct strbuf *m, *m2;
	char *v, *v2;

	(void)state;
	m = compose_min_message(&c);
	check_lines(m->buf);
	/* an empty name is no name; an empty subject an empty field */
	v = field(m->buf, "From");
	assert_string_equal(v, "demo+owner@example.org");
	free(v);
	c.from_name = NULL;
	m2 = compose_min_message(&c);
	v = field(m2->buf, "From");
	assert_string_equal(v, "demo+owner@example.org");
	free(v);
	assert_non_null(strstr(m->buf, "\r\nSubject: \r\n"));
	v = field(m->buf, "Date");
	assert_string_equal(v, "Fri, 02 Jan 1970 00:00:00 +0000");
	free(v);
	/* the body is empty: the message ends with the blank line */
	assert_string_equal(m->buf + m->len - 4, "\r\n\r\n");
	assert_ptr_equal(strstr(m->buf, "\r\n\r\n"), m->buf + m->len - 4);
	/* each message its own Message-ID */
	v = field(m->buf, "Message-ID");
	v2 = field(m2->buf, "Message-ID");
	assert_string_not_equal(v, v2);
	free(v);
	free(v2);
	strbuf_free(m);
	strbuf_free(m2);
}

static void
test_message_long_text(void **state)
{
	struct strbuf *text = strbuf_new(16384);
	struct compose_min c = {
		.from_addr = "demo+owner@example.org",
		.to = "ann@example.net",
		.subject = "x",
		.msgid_domain = "example.org",
	};
	struct strbuf *m;
	char *dec;
	size_t i;

	(void)state;
	for (i = 0; i < 40; i++)
		strbuf_puts(text, "https://groups.example.org/bounce?t=p1234."
		    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ \xc3\xa9\xe2\x82\xac"
		    " 0123456789 = end\r\n");
	c.text = text->buf;
	m = compose_min_message(&c);
	check_lines(m->buf);
	dec = qp_decode(strstr(m->buf, "\r\n\r\n") + 4);
	/* CRLF in the text came back as "\n" */
	for (i = 0; i < text->len; i++)
		if (text->buf[i] == '\r')
			memmove(text->buf + i, text->buf + i + 1,
			    text->len-- - i);
	assert_string_equal(dec, text->buf);
	free(dec);
	strbuf_free(m);
	strbuf_free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_ascii),
		cmocka_unit_test(test_header_encoded_known),
		cmocka_unit_test(test_header_long_utf8),
		cmocka_unit_test(test_header_encoded_controls),
		cmocka_unit_test(test_qp_known),
		cmocka_unit_test(test_qp_long_lines),
		cmocka_unit_test(test_qp_round_trip),
		cmocka_unit_test(test_message_known),
		cmocka_unit_test(test_message_utf8_and_injection),
		cmocka_unit_test(test_message_empty),
		cmocka_unit_test(test_message_long_text),
	};

	/* GROUPS_TEST_FILTER=pattern runs only the matching tests */
	if (getenv("GROUPS_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("GROUPS_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
