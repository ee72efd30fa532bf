/* SPDX-License-Identifier: MIT */
/*
 * test_mime_footer.c - unit tests of per-receiver footers (mime_footer.c).
 *
 * Each output is parsed again with GMime: the footer must be in the decoded
 * text of the right parts and nowhere else, the structure as expected, every
 * line CRLF-terminated and at most 998 octets.  Covers 7bit, QP, base64 and
 * latin-1 text, html with and without </body>, alternative, mixed with an
 * attachment (bytes unchanged), signed (signed part byte-identical), a
 * single image, LF-only input, empty footers, nesting, a nameless field,
 * a message GMime cannot parse, four threads on one plan, and the apply
 * rate (printed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>

#include <cmocka.h>
#include <gmime/gmime.h>

#include "mime_footer.h"
#include "strbuf.h"

#define FOOT	"-- \nUnsubscribe: https://lists.example.org/u/abc123 (café)"
#define FOOT_H	"<p><a href=\"https://lists.example.org/u/abc123\">Unsub</a></p>"
#define HDRS	"From: Ann <ann@example.org>\r\nTo: g@example.org\r\n" \
		"Subject: hello\r\nMessage-ID: <1@example.org>\r\n"

/* check_lines - CRLF after every line, none longer than 998 octets. */
static void
check_lines(const char *s, size_t n)
{
	size_t i, start = 0;

	assert_true(n >= 2);
	assert_memory_equal(s + n - 2, "\r\n", 2);
	for (i = 0; i < n; i++) {
		if (s[i] == '\r') {
			assert_true(i + 1 < n && s[i + 1] == '\n');
			assert_true(i - start <= 998);
			i++;
			start = i + 1;
		} else
			assert_true(s[i] != '\n');
	}
}

/* reparse - GMime's view of out (caller unrefs). */
static GMimeMessage *
reparse(const char *out, size_t n)
{
	GMimeStream *st = g_mime_stream_mem_new_with_buffer(out, n);
	GMimeParser *p = g_mime_parser_new_with_stream(st);
	GMimeMessage *m = g_mime_parser_construct_message(p, NULL);

	g_object_unref(p);
	g_object_unref(st);
	assert_non_null(m);
	return m;
}

/* check_plan - what every plan promises about out (pl's output for text
 * and some html footer): with a text, out begins with mime_footer_prefix, which holds
 * at least the header block; the html footer matters exactly when
 * mime_footer_wants_html says so. */
static void
check_plan(const struct mime_footer_plan *pl, const char *out, size_t n,
    const char *text)
{
	const char *pre;
	size_t plen, n2;
	char *other;

	pre = mime_footer_prefix(pl, &plen);
	if (text != NULL && *text != '\0') {
		assert_true(plen <= n);
		assert_memory_equal(out, pre, plen);
		assert_non_null(memmem(pre, plen, "\r\n\r\n", 4));
	}
	other = mime_footer_apply(pl, text, "<p>another html footer</p>", &n2);
	if (mime_footer_wants_html(pl))
		assert_true(n2 != n || memcmp(other, out, n) != 0);
	else
		assert_true(n2 == n && memcmp(other, out, n) == 0);
	free(other);
}

/* run - plan and apply msg with text/html footers; checks lines and the
 * plan's promises; returns allocated output. */
static char *
run(const char *msg, const char *text, const char *html, size_t *n)
{
	struct mime_footer_plan *pl;
	char err[128], *out;

	pl = mime_footer_plan(msg, strlen(msg), err, sizeof(err));
	assert_non_null(pl);
	out = mime_footer_apply(pl, text, html, n);
	assert_non_null(out);
	check_lines(out, *n);
	check_plan(pl, out, *n, text);
	mime_footer_plan_free(pl);
	return out;
}

/* sub - child i of multipart o. */
static GMimeObject *
sub(GMimeObject *o, int i)
{
	assert_true(GMIME_IS_MULTIPART(o));
	assert_true(i < g_mime_multipart_get_count(GMIME_MULTIPART(o)));
	return g_mime_multipart_get_part(GMIME_MULTIPART(o), i);
}

/* text_of - decoded UTF-8 text of a text part (caller frees). */
static char *
text_of(GMimeObject *o)
{
	assert_true(GMIME_IS_TEXT_PART(o));
	return g_mime_text_part_get_text(GMIME_TEXT_PART(o));
}

/* has - whether part o's decoded text contains needle. */
static int
has(GMimeObject *o, const char *needle)
{
	char *t = text_of(o);
	int r = strstr(t, needle) != NULL;

	g_free(t);
	return r;
}

/* is_type - o's content type is type/subtype. */
static int
is_type(GMimeObject *o, const char *type, const char *subtype)
{
	return g_mime_content_type_is_type(g_mime_object_get_content_type(o),
	    type, subtype);
}

static void
test_plain_7bit(void **state)
{
	const char *msg = HDRS "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
	    "Hello all,\r\nsee you = soon.\r\n";
	GMimeMessage *m;
	GMimeObject *b;
	size_t n;
	char *out, *t;

	(void)state;
	out = run(msg, FOOT, NULL, &n);
	assert_memory_equal(out, HDRS "MIME-Version: 1.0\r\n",
	    strlen(HDRS) + 19);
	m = reparse(out, n);
	b = g_mime_message_get_mime_part(m);
	assert_true(is_type(b, "text", "plain"));
	t = text_of(b);
	assert_non_null(strstr(t, "Hello all,\r\nsee you = soon.\r\n-- \r\n"
	    "Unsubscribe: https://lists.example.org/u/abc123 (café)"));
	g_free(t);
	g_object_unref(m);
	free(out);
}

/* test_prefix_is_all_but_the_footer - in a text/plain post the prefix
 * runs to the footer: what follows it is the footer alone (with the line
 * break before it), and there is no place for an HTML footer. */
static void
test_prefix_is_all_but_the_footer(void **state)
{
	const char *msg = HDRS "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n\r\n"
	    "Hello all,\r\nsee you soon.\r\n";
	struct mime_footer_plan *pl;
	char err[128], *out;
	size_t n, plen;

	(void)state;
	pl = mime_footer_plan(msg, strlen(msg), err, sizeof(err));
	assert_non_null(pl);
	assert_false(mime_footer_wants_html(pl));
	out = mime_footer_apply(pl, FOOT, FOOT_H, &n);
	(void)mime_footer_prefix(pl, &plen);
	assert_true(plen < n);
	/* FOOT as quoted-printable: "-- " ends a line (=20), é is =C3=A9 */
	assert_true(n - plen <= strlen(FOOT) + 16);
	assert_non_null(memmem(out + plen, n - plen, "abc123", 6));
	free(out);
	mime_footer_plan_free(pl);
}

static void
test_plain_qp(void **state)
{
	const char *msg = HDRS "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	    "Gr=C3=BC=C3=9Fe, a soft =\r\nbreak";
	GMimeMessage *m;
	size_t n;
	char *out, *t;

	(void)state;
	out = run(msg, FOOT, NULL, &n);
	m = reparse(out, n);
	t = text_of(g_mime_message_get_mime_part(m));
	/* no line break at the end of the content: one is added */
	assert_non_null(strstr(t, "Grüße, a soft break\r\n-- \r\nUnsub"));
	g_free(t);
	g_object_unref(m);
	free(out);
}

static void
test_plain_base64(void **state)
{
	/* "Base64 body\r\nline two\r\n" */
	const char *msg = HDRS "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n"
	    "QmFzZTY0IGJvZHkNCmxpbmUgdHdvDQo=\r\n";
	GMimeMessage *m;
	size_t n;
	char *out, *t;

	(void)state;
	out = run(msg, FOOT, NULL, &n);
	assert_null(strstr(out, "base64"));
	m = reparse(out, n);
	t = text_of(g_mime_message_get_mime_part(m));
	assert_non_null(strstr(t, "Base64 body\r\nline two\r\n-- \r\n"));
	assert_non_null(strstr(t, "(café)"));
	g_free(t);
	g_object_unref(m);
	free(out);
}

static void
test_latin1(void **state)
{
	const char *msg = HDRS "Content-Type: text/plain; charset=iso-8859-1\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n\r\n"
	    "Caf\xe9 cr\xe8me\r\n";
	GMimeMessage *m;
	GMimeObject *b;
	size_t n;
	char *out;

	(void)state;
	out = run(msg, FOOT, NULL, &n);
	/* no MIME-Version came in; the rewritten part needs one */
	assert_non_null(strstr(out, "MIME-Version: 1.0\r\n"));
	m = reparse(out, n);
	b = g_mime_message_get_mime_part(m);
	assert_string_equal(g_mime_object_get_content_type_parameter(b,
	    "charset"), "utf-8");
	assert_true(has(b, "Café crème\r\n-- \r\n"));
	assert_true(has(b, "(café)"));
	g_object_unref(m);
	free(out);
}

/* html_case - html body msg gets the footer right before want_after. */
static void
html_case(const char *body, const char *want)
{
	struct strbuf *msg = strbuf_new(256);
	GMimeMessage *m;
	size_t n;
	char *out, *t;

	strbuf_appendf(msg, HDRS "MIME-Version: 1.0\r\n"
	    "Content-Type: text/html; charset=utf-8\r\n\r\n%s", body);
	out = run(strbuf_str(msg), FOOT, FOOT_H, &n);
	m = reparse(out, n);
	t = text_of(g_mime_message_get_mime_part(m));
	assert_non_null(strstr(t, want));
	g_free(t);
	g_object_unref(m);
	free(out);
	strbuf_free(msg);
}

static void
test_html(void **state)
{
	(void)state;
	html_case("<html><body><p>Hi</p></body></html>\r\n",
	    "<p>Hi</p>" FOOT_H "</body></html>");
	html_case("<HTML><BODY><p>Hi</p></BODY>\r\n</HTML>\r\n",
	    "<p>Hi</p>" FOOT_H "</BODY>\r\n</HTML>");
	/* the last </body> counts */
	html_case("<body>x</body> <body>y</body>", "y" FOOT_H "</body>");
	html_case("<p>no body tag</p>\r\n", "<p>no body tag</p>\r\n" FOOT_H);
}

static void
test_html_from_text(void **state)
{
	const char *msg = HDRS "MIME-Version: 1.0\r\n"
	    "Content-Type: text/html\r\n\r\n<body>x</body>";
	GMimeMessage *m;
	size_t n;
	char *out;

	(void)state;
	out = run(msg, "<leave> & \"go\"", NULL, &n);
	m = reparse(out, n);
	assert_true(has(g_mime_message_get_mime_part(m),
	    "x<pre>&lt;leave&gt; &amp; &quot;go&quot;</pre></body>"));
	g_object_unref(m);
	free(out);
}

#define ALT	HDRS "MIME-Version: 1.0\r\n" \
	"Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n" \
	"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" \
	"Plain body\r\n" \
	"--b1\r\nContent-Type: text/html; charset=utf-8\r\n" \
	"Content-Transfer-Encoding: quoted-printable\r\n\r\n" \
	"<html><body><p>Html body</p></body></html>\r\n" \
	"--b1--\r\n"

static void
test_alternative(void **state)
{
	GMimeMessage *m;
	GMimeObject *b;
	size_t n;
	char *out;

	(void)state;
	out = run(ALT, FOOT, FOOT_H, &n);
	m = reparse(out, n);
	b = g_mime_message_get_mime_part(m);
	assert_true(is_type(b, "multipart", "alternative"));
	assert_int_equal(g_mime_multipart_get_count(GMIME_MULTIPART(b)), 2);
	assert_true(has(sub(b, 0), "Plain body\r\n-- \r\nUnsubscribe"));
	assert_false(has(sub(b, 0), "<a href"));
	assert_true(has(sub(b, 1), "Html body</p>" FOOT_H "</body>"));
	g_object_unref(m);
	free(out);
}

#define ATT_B64	"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk" \
	"YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==\r\n"

static void
test_mixed_attachment(void **state)
{
	const char *att = "--m1\r\nContent-Type: text/plain; name=\"a.txt\"\r\n"
	    "Content-Disposition: inline; filename=\"a.txt\"\r\n\r\n"
	    "attached text\r\n"
	    "--m1\r\nContent-Type: image/png\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "Content-Disposition: attachment; filename=\"p.png\"\r\n\r\n"
	    ATT_B64;
	struct strbuf *msg = strbuf_new(1024);
	GMimeMessage *m;
	GMimeObject *b;
	size_t n;
	char *out;

	(void)state;
	strbuf_appendf(msg, HDRS "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=\"m1\"\r\n\r\n"
	    "%s--m1\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
	    "--m1--\r\n", att);
	out = run(strbuf_str(msg), FOOT, NULL, &n);
	/* the attachments, headers and all, byte for byte */
	assert_non_null(memmem(out, n, att, strlen(att)));
	m = reparse(out, n);
	b = g_mime_message_get_mime_part(m);
	assert_true(is_type(b, "multipart", "mixed"));
	assert_int_equal(g_mime_multipart_get_count(GMIME_MULTIPART(b)), 3);
	/* a text file (inline, but named) and an image come first */
	assert_false(has(sub(b, 0), "Unsub"));
	assert_true(is_type(sub(b, 1), "image", "png"));
	assert_true(has(sub(b, 2), "See attached.\r\n-- \r\nUnsub"));
	g_object_unref(m);
	free(out);
	strbuf_free(msg);
}

/* first_part_raw - the raw bytes of the first part of out's top multipart
 * (between "--B\r\n" and "\r\n--B"; caller frees). */
static char *
first_part_raw(GMimeMessage *m, const char *out, size_t n, size_t *len)
{
	const char *bnd, *p, *e;
	char delim[128];

	bnd = g_mime_object_get_content_type_parameter(
	    g_mime_message_get_mime_part(m), "boundary");
	assert_non_null(bnd);
	(void)snprintf(delim, sizeof(delim), "\r\n--%s", bnd);
	p = memmem(out, n, delim, strlen(delim));
	assert_non_null(p);
	p += strlen(delim) + 2;
	e = memmem(p, n - (size_t)(p - out), delim, strlen(delim));
	assert_non_null(e);
	*len = (size_t)(e - p);
	return strndup(p, *len);
}

#define SIGNED_CT "Content-Type: multipart/signed; boundary=\"s1\";\r\n" \
	"\tprotocol=\"application/pgp-signature\"; micalg=pgp-sha256\r\n"
#define SIGNED_BODY "This is an OpenPGP/MIME signed message.\r\n" \
	"--s1\r\nContent-Type: text/plain; charset=utf-8\r\n" \
	"Content-Transfer-Encoding: quoted-printable\r\n\r\n" \
	"Signed text, trailing space =20\r\n" \
	"--s1\r\nContent-Type: application/pgp-signature\r\n\r\n" \
	"-----BEGIN PGP SIGNATURE-----\r\nabc\r\n" \
	"-----END PGP SIGNATURE-----\r\n--s1--\r\n"

static void
test_signed(void **state)
{
	GMimeMessage *m;
	GMimeObject *b;
	size_t n, rn;
	char *out, *raw;

	(void)state;
	out = run(HDRS "MIME-Version: 1.0\r\n" SIGNED_CT "\r\n" SIGNED_BODY,
	    FOOT, NULL, &n);
	assert_memory_equal(out, HDRS "MIME-Version: 1.0\r\n",
	    strlen(HDRS) + 19);
	m = reparse(out, n);
	b = g_mime_message_get_mime_part(m);
	assert_true(is_type(b, "multipart", "mixed"));
	assert_int_equal(g_mime_multipart_get_count(GMIME_MULTIPART(b)), 2);
	assert_true(GMIME_IS_MULTIPART_SIGNED(sub(b, 0)));
	assert_true(is_type(sub(b, 1), "text", "plain"));
	assert_true(has(sub(b, 1), "Unsubscribe: https://lists.example.org"));
	raw = first_part_raw(m, out, n, &rn);
	assert_int_equal(rn, strlen(SIGNED_CT "\r\n" SIGNED_BODY));
	assert_memory_equal(raw, SIGNED_CT "\r\n" SIGNED_BODY, rn);
	free(raw);
	g_object_unref(m);
	free(out);
}

static void
test_image(void **state)
{
	const char *ct = "Content-Type: image/png\r\n"
	    "Content-Transfer-Encoding: base64\r\n";
	struct strbuf *want = strbuf_new(256);
	GMimeMessage *m;
	GMimeObject *b;
	size_t n, rn;
	char *out, *raw;

	(void)state;
	out = run(HDRS "MIME-Version: 1.0\r\nContent-Type: image/png\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n" ATT_B64, FOOT, NULL, &n);
	m = reparse(out, n);
	b = g_mime_message_get_mime_part(m);
	assert_true(is_type(b, "multipart", "mixed"));
	assert_true(is_type(sub(b, 0), "image", "png"));
	assert_true(has(sub(b, 1), "(café)"));
	strbuf_appendf(want, "%s\r\n%s", ct, ATT_B64);
	raw = first_part_raw(m, out, n, &rn);
	assert_int_equal(rn, strbuf_len(want));
	assert_memory_equal(raw, strbuf_str(want), rn);
	free(raw);
	strbuf_free(want);
	g_object_unref(m);
	free(out);
}

static void
test_lf_only(void **state)
{
	GMimeMessage *m;
	GMimeObject *b;
	size_t n;
	char *out;

	(void)state;
	out = run("From: a@example.org\nSubject: lf\nMIME-Version: 1.0\n"
	    "Content-Type: multipart/alternative; boundary=\"b\"\n\n"
	    "--b\nContent-Type: text/plain\n\none\ntwo\n"
	    "--b\nContent-Type: text/html\n\n<body>one</body>\n--b--\n",
	    "line\nnext", "<i>x</i>", &n);
	assert_memory_equal(out, "From: a@example.org\r\nSubject: lf\r\n", 34);
	m = reparse(out, n);
	b = g_mime_message_get_mime_part(m);
	assert_true(has(sub(b, 0), "one\r\ntwo\r\nline\r\nnext"));
	assert_true(has(sub(b, 1), "one<i>x</i></body>"));
	g_object_unref(m);
	free(out);
}

/* the last boundary line unterminated: GMime ends the html content
 * between the CR and LF of the boundary's CRLF (found by fuzz_footer) */
static void
test_unterminated_close(void **state)
{
	GMimeMessage *m;
	GMimeObject *b;
	size_t n;
	char *out;

	(void)state;
	out = run("From: a@example.org\nSubject: lf\nMIME-Version: 1.0\n"
	    "Content-Type: multipart/alternative; boundary=\"b\"\n\n"
	    "--b\nContent-Type: text/plain\n\none\ntwo\n"
	    "--b\nContent-Type: text/html\n\n<body>one</body>\n--b--\t",
	    "line", "<i>x</i>", &n);
	m = reparse(out, n);
	b = g_mime_message_get_mime_part(m);
	assert_true(has(sub(b, 0), "one\r\ntwo\r\nline"));
	assert_true(has(sub(b, 1), "one<i>x</i></body>"));
	g_object_unref(m);
	free(out);
}

static void
test_empty_footer(void **state)
{
	const char *img = HDRS "Content-Type: image/png\r\n\r\n" ATT_B64;
	GMimeMessage *m;
	GMimeObject *b;
	size_t n;
	char *out, *t;

	(void)state;
	out = run(ALT, "", "", &n);
	m = reparse(out, n);
	b = g_mime_message_get_mime_part(m);
	t = text_of(sub(b, 0));
	assert_string_equal(t, "Plain body");
	g_free(t);
	t = text_of(sub(b, 1));
	assert_string_equal(t, "<html><body><p>Html body</p></body></html>");
	g_free(t);
	g_object_unref(m);
	free(out);
	/* nothing to wrap: the message as it came */
	out = run(img, "", NULL, &n);
	assert_int_equal(n, strlen(img));
	assert_memory_equal(out, img, n);
	free(out);
}

static void
test_nested(void **state)
{
	const char *msg = HDRS "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/mixed; boundary=\"o\"\r\n\r\n"
	    "--o\r\nContent-Type: multipart/alternative; boundary=\"a\"\r\n\r\n"
	    "--a\r\nContent-Type: text/plain\r\n\r\nnested plain\r\n"
	    "--a\r\nContent-Type: multipart/related; boundary=\"r\"\r\n\r\n"
	    "--r\r\nContent-Type: text/html\r\n\r\n<body>nested html</body>\r\n"
	    "--r\r\nContent-Type: image/png\r\nContent-ID: <i@x>\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n" ATT_B64
	    "--r--\r\n--a--\r\n"
	    "--o\r\nContent-Type: text/plain\r\n\r\nsecond text\r\n--o--\r\n";
	GMimeMessage *m;
	GMimeObject *b, *alt;
	size_t n;
	char *out;

	(void)state;
	out = run(msg, FOOT, FOOT_H, &n);
	m = reparse(out, n);
	b = g_mime_message_get_mime_part(m);
	alt = sub(b, 0);
	assert_true(is_type(alt, "multipart", "alternative"));
	assert_true(has(sub(alt, 0), "nested plain\r\n-- \r\nUnsub"));
	assert_true(has(sub(sub(alt, 1), 0), "nested html" FOOT_H "</body>"));
	assert_true(is_type(sub(sub(alt, 1), 1), "image", "png"));
	assert_false(has(sub(b, 1), "Unsub"));
	g_object_unref(m);
	free(out);
}

static void
test_long_footer_line(void **state)
{
	struct strbuf *foot = strbuf_new(3000);
	GMimeMessage *m;
	size_t n, i;
	char *out;

	(void)state;
	for (i = 0; i < 2500; i++)
		strbuf_putc(foot, (char)('a' + i % 26));
	out = run(HDRS "\r\nshort 7bit body\r\n", strbuf_str(foot), NULL, &n);
	m = reparse(out, n);
	assert_true(has(g_mime_message_get_mime_part(m), strbuf_str(foot)));
	g_object_unref(m);
	free(out);
	strbuf_free(foot);
}

/* test_bad_field - a line GMime keeps as a field without a name must not
 * start the new top-level header (found by fuzz_footer). */
static void
test_bad_field(void **state)
{
	GMimeMessage *m;
	size_t n;
	char *out;

	(void)state;
	out = run("Content-Type: image/png\r\n:bad: 1\r\nSubject: s\r\n\r\n"
	    ATT_B64, FOOT, NULL, &n);
	m = reparse(out, n);
	assert_string_equal(g_mime_message_get_subject(m), "s");
	assert_true(has(sub(g_mime_message_get_mime_part(m), 1), "(café)"));
	g_object_unref(m);
	free(out);
}

static void
test_unparseable(void **state)
{
	char err[128] = "";

	(void)state;
	assert_null(mime_footer_plan("", 0, err, sizeof(err)));
	assert_true(err[0] != '\0');
	err[0] = '\0';
	assert_null(mime_footer_plan("no header here\r\n\r\nbody", 22, err,
	    sizeof(err)));
	assert_true(err[0] != '\0');
	assert_null(mime_footer_plan_free(NULL));
}

struct thr {
	const struct mime_footer_plan *pl;
	const char *want;
	size_t wantlen;
	int bad;
};

/* thr_main - apply many times, compare each with the reference. */
static void *
thr_main(void *arg)
{
	struct thr *t = arg;
	size_t n;
	char *out;
	int i;

	for (i = 0; i < 2000; i++) {
		out = mime_footer_apply(t->pl, FOOT, FOOT_H, &n);
		if (n != t->wantlen || memcmp(out, t->want, n) != 0)
			t->bad++;
		free(out);
	}
	return NULL;
}

static void
test_threads(void **state)
{
	struct mime_footer_plan *pl;
	struct thr t[4];
	pthread_t tid[4];
	char err[128], *want;
	size_t n;
	int i;

	(void)state;
	pl = mime_footer_plan(ALT, strlen(ALT), err, sizeof(err));
	assert_non_null(pl);
	want = mime_footer_apply(pl, FOOT, FOOT_H, &n);
	for (i = 0; i < 4; i++) {
		t[i].pl = pl;
		t[i].want = want;
		t[i].wantlen = n;
		t[i].bad = 0;
		assert_int_equal(pthread_create(&tid[i], NULL, thr_main, &t[i]),
		    0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(tid[i], NULL);
		assert_int_equal(t[i].bad, 0);
	}
	free(want);
	mime_footer_plan_free(pl);
}

/* test_speed - applies per second on a 4 KiB alternative post (printed,
 * not asserted: the machine may be busy). */
static void
test_speed(void **state)
{
	struct strbuf *msg = strbuf_new(5000), *txt = strbuf_new(2000);
	struct mime_footer_plan *pl;
	struct timespec a, b;
	char err[128], *out;
	double secs;
	size_t n;
	int i, iters = 0;

	(void)state;
	for (i = 0; i < 34; i++)
		strbuf_appendf(txt, "Line %02d of the weekly news, "
		    "with a little more text.\r\n", i);
	strbuf_appendf(msg, HDRS "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n"
	    "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s"
	    "--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
	    "<html><body><p>%s</p></body></html>\r\n--b1--\r\n",
	    strbuf_str(txt), strbuf_str(txt));
	pl = mime_footer_plan(strbuf_str(msg), strbuf_len(msg), err,
	    sizeof(err));
	assert_non_null(pl);
	clock_gettime(CLOCK_MONOTONIC, &a);
	do {
		for (i = 0; i < 1000; i++, iters++) {
			out = mime_footer_apply(pl, FOOT, FOOT_H, &n);
			free(out);
		}
		clock_gettime(CLOCK_MONOTONIC, &b);
		secs = (double)(b.tv_sec - a.tv_sec) +
		    (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	} while (secs < 0.5);
	printf("mime_footer: %zu byte post, %d applies in %.2f s: "
	    "%.0f applies/s\n", strbuf_len(msg), iters, secs, iters / secs);
	mime_footer_plan_free(pl);
	strbuf_free(msg);
	strbuf_free(txt);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_7bit),
		cmocka_unit_test(test_prefix_is_all_but_the_footer),
		cmocka_unit_test(test_plain_qp),
		cmocka_unit_test(test_plain_base64),
		cmocka_unit_test(test_latin1),
		cmocka_unit_test(test_html),
		cmocka_unit_test(test_html_from_text),
		cmocka_unit_test(test_alternative),
		cmocka_unit_test(test_mixed_attachment),
		cmocka_unit_test(test_signed),
		cmocka_unit_test(test_image),
		cmocka_unit_test(test_lf_only),
		cmocka_unit_test(test_unterminated_close),
		cmocka_unit_test(test_empty_footer),
		cmocka_unit_test(test_nested),
		cmocka_unit_test(test_long_footer_line),
		cmocka_unit_test(test_bad_field),
		cmocka_unit_test(test_unparseable),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_speed),
	};
	int rc;

	g_mime_init();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	g_mime_shutdown();
	return rc;
}
