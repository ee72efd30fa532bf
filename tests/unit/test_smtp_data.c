/* SPDX-License-Identifier: MIT */
/*
 * test_smtp_data.c - unit tests of the DATA body state machine
 * (smtp_data.c): the end marker, dot-unstuffing, the size bound, and the
 * SMTP smuggling defence (bare LF / bare CR, "\n.\n" and "\n.\r\n"),
 * the line length bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "bounds.h"
#include "smtp_data.h"

/* feed - split text after each LF as smtpd does; returns bytes consumed
 * up to and including the final dot, or 0 if the data did not end. */
static size_t
feed(struct smtp_data *d, const char *text)
{
	size_t n = strlen(text), off = 0;

	while (off < n) {
		const char *lf = memchr(text + off, '\n', n - off);
		size_t len = lf ? (size_t)(lf - (text + off)) + 1 : n - off;

		if (smtp_data_feed(d, text + off, len, lf != NULL))
			return off + len;
		off += len;
	}
	return 0;
}

static void
test_plain(void **state)
{
	struct smtp_data d;
	const char *m = "Subject: x\r\n\r\nhello\r\n..dot\r\n.\r\nQUIT\r\n";

	(void)state;
	smtp_data_begin(&d, 1000);
	assert_int_equal(feed(&d, m), strlen(m) - strlen("QUIT\r\n"));
	assert_string_equal(strbuf_str(d.msg),
	    "Subject: x\r\n\r\nhello\r\n.dot\r\n");
	assert_false(d.bad_eol);
	assert_false(d.too_big);
	smtp_data_end(&d);
}

static void
test_empty(void **state)
{
	struct smtp_data d;

	(void)state;
	smtp_data_begin(&d, 1000);
	assert_int_equal(feed(&d, ".\r\n"), 3);
	assert_int_equal(strbuf_len(d.msg), 0);
	smtp_data_end(&d);
}

static void
test_smuggling(void **state)
{
	static const char *const bad[] = {
		"a\n.\nMAIL FROM:<x@y>\r\n",	/* bare-LF end */
		"a\r\n.\nMAIL FROM:<x@y>\r\n",
		"a\n.\r\nMAIL FROM:<x@y>\r\n",
		"a\r.\r\nMAIL FROM:<x@y>\r\n",	/* bare CR */
		"a\r\n.\r\r\n",
	};
	struct smtp_data d;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		smtp_data_begin(&d, 1000);
		assert_int_equal(feed(&d, bad[i]), 0);	/* not ended */
		assert_true(d.bad_eol);
		assert_int_not_equal(feed(&d, ".\r\n"), 0);
		assert_true(d.bad_eol);
		smtp_data_end(&d);
	}
}

static void
test_too_big(void **state)
{
	struct smtp_data d;

	(void)state;
	smtp_data_begin(&d, 10);
	assert_int_equal(feed(&d, "0123456789\r\n"), 0);
	assert_true(d.too_big);
	assert_int_equal(strbuf_len(d.msg), 0);
	assert_int_not_equal(feed(&d, "more\r\n.\r\n"), 0);
	assert_int_equal(d.size, 18);
	smtp_data_end(&d);
}

static void
test_pieces(void **state)
{
	struct smtp_data d;

	(void)state;
	smtp_data_begin(&d, 1000);
	assert_int_equal(smtp_data_feed(&d, ".abc", 4, 0), 0);
	assert_int_equal(smtp_data_feed(&d, ".def\r\n", 6, 1), 0);
	assert_int_equal(smtp_data_feed(&d, ".\r\n", 3, 1), 1);
	assert_string_equal(strbuf_str(d.msg), "abc.def\r\n");
	assert_false(d.bad_eol);
	smtp_data_end(&d);
}

/* feed_line - a line of n bytes of 'x' (in 8 KiB pieces without LF, as
 * smtpd takes a long line), then CRLF. */
static void
feed_line(struct smtp_data *d, size_t n)
{
	static char x[8192];
	size_t k;

	memset(x, 'x', sizeof(x));
	for (; n > 0; n -= k) {
		k = n < sizeof(x) ? n : sizeof(x);
		assert_int_equal(smtp_data_feed(d, x, k, 0), 0);
	}
	assert_int_equal(smtp_data_feed(d, "\r\n", 2, 1), 0);
}

static void
test_long_line(void **state)
{
	struct smtp_data d;

	(void)state;
	/* SMTP_MAX_DATA_LINE bytes is the longest line taken; many lines
	 * just under it do not add up. */
	smtp_data_begin(&d, 10 * SMTP_MAX_DATA_LINE);
	feed_line(&d, SMTP_MAX_DATA_LINE);
	feed_line(&d, SMTP_MAX_DATA_LINE);
	assert_int_equal(feed(&d, ".\r\n"), 3);
	assert_false(d.long_line);
	assert_false(d.bad_eol);
	assert_int_equal(strbuf_len(d.msg), 2 * (SMTP_MAX_DATA_LINE + 2));
	smtp_data_end(&d);
	/* one byte more, in pieces or in one line with its LF */
	smtp_data_begin(&d, 10 * SMTP_MAX_DATA_LINE);
	feed_line(&d, SMTP_MAX_DATA_LINE + 1);
	assert_true(d.long_line);
	assert_int_equal(feed(&d, "short\r\n.\r\n"), 10);	/* still ends */
	assert_true(d.long_line);
	smtp_data_end(&d);
	{
		static char line[SMTP_MAX_DATA_LINE + 3];

		memset(line, 'y', sizeof(line));
		line[SMTP_MAX_DATA_LINE + 1] = '\r';
		line[SMTP_MAX_DATA_LINE + 2] = '\n';
		smtp_data_begin(&d, 10 * SMTP_MAX_DATA_LINE);
		assert_int_equal(smtp_data_feed(&d, line, sizeof(line), 1), 0);
		assert_true(d.long_line);
		smtp_data_end(&d);
		smtp_data_begin(&d, 10 * SMTP_MAX_DATA_LINE);
		assert_int_equal(smtp_data_feed(&d, line + 1, sizeof(line) - 1,
		    1), 0);
		assert_false(d.long_line);
		smtp_data_end(&d);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_smuggling),
		cmocka_unit_test(test_too_big),
		cmocka_unit_test(test_pieces),
		cmocka_unit_test(test_long_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
