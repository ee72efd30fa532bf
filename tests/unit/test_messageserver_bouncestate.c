/* SPDX-License-Identifier: MIT */
/*
 * test_messageserver_bouncestate.c - the pure parts of messageserver's
 * bounce state module: VERP strings (what karl signs into
 * group+bounces-TOKEN), the auto-responder check that keeps an "out of
 * office" answer from counting as a bounce, and how an absent enhanced
 * status reaches dsn_counts.  The database half is covered end to end by
 * tests/e2e/test_bounces.py; dsn_counts itself by test_dsn.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* the module under test, with its static helpers */
#include "../../src/messageserver/messageserver_bouncestate.c"

/* dsn_counts stand-in: records what it was asked (dsn.c needs GMime,
 * which this test does not link). */
static const char *counts_arg;
static int counts_calls;

int
dsn_counts(const char *status)
{
	counts_arg = status;
	counts_calls++;
	return status == NULL || strcmp(status, "5.7.1") != 0;
}

static void
test_verp_forms(void **state)
{
	struct ms_verp v;

	(void)state;
	assert_int_equal(messageserver_verp_parse("12.345", &v), 0);
	assert_int_equal(v.kind, MS_VERP_POST);
	assert_string_equal(v.id, "12");
	assert_string_equal(v.message, "345");
	assert_int_equal(messageserver_verp_parse("n7", &v), 0);
	assert_int_equal(v.kind, MS_VERP_NOTICE);
	assert_string_equal(v.id, "7");
	assert_string_equal(v.message, "");
	assert_int_equal(messageserver_verp_parse("p900", &v), 0);
	assert_int_equal(v.kind, MS_VERP_PROBE);
	assert_string_equal(v.id, "900");
	/* 18 digits fit a bigint */
	assert_int_equal(messageserver_verp_parse(
	    "123456789012345678.1", &v), 0);
	assert_string_equal(v.id, "123456789012345678");
}

static void
test_verp_refused(void **state)
{
	static const char *const bad[] = {
		"", "12", ".5", "5.", "12.3.4", "n", "p", "nx", "n-1", "p+1",
		"+1.2", "-1.2", "1.-2", "1 .2", "12.34a", "a12.34", "n7 ",
		"n07x", "1234567890123456789.1", "1.1234567890123456789",
		"N7", "x7", "12..3", NULL
	};
	struct ms_verp v;
	size_t i;

	(void)state;
	for (i = 0; bad[i] != NULL; i++) {
		memset(&v, 'x', sizeof(v));
		if (messageserver_verp_parse(bad[i], &v) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
		/* nothing half-filled is left behind */
		assert_string_equal(v.id, "");
	}
	assert_int_equal(messageserver_verp_parse(NULL, &v), -1);
}

/* parsed - an ms_parsed with these fields (borrowed strings). */
static struct ms_parsed
parsed(const char *subject, const char *precedence, int autoreply)
{
	struct ms_parsed p;

	memset(&p, 0, sizeof(p));
	p.subject = (char *)(uintptr_t)subject;
	p.precedence = (char *)(uintptr_t)precedence;
	p.autoreply = autoreply;
	return p;
}

static void
test_autoreply(void **state)
{
	static const char *const replies[] = {
		"Out of Office: back on Monday", "out of office",
		"Automatic reply: news", "AUTO: away", "Autoreply: hi",
		"Auto-Reply: x", "  Vacation", "Abwesend bis 12.", NULL
	};
	static const char *const bounces[] = {
		"Undelivered Mail Returned to Sender", "Mail delivery failed",
		"Delivery Status Notification (Failure)", "failure notice",
		"Returned mail: see transcript for details",
		"Undeliverable: news", "", "Automobile news", NULL
	};
	struct ms_parsed p;
	size_t i;

	(void)state;
	for (i = 0; replies[i] != NULL; i++) {
		p = parsed(replies[i], NULL, 0);
		if (!messageserver_bounce_autoreply(&p))
			fail_msg("not an auto-reply: \"%s\"", replies[i]);
	}
	for (i = 0; bounces[i] != NULL; i++) {
		p = parsed(bounces[i], NULL, 0);
		if (messageserver_bounce_autoreply(&p))
			fail_msg("taken for an auto-reply: \"%s\"", bounces[i]);
	}
	p = parsed(NULL, NULL, 0);
	assert_int_equal(messageserver_bounce_autoreply(&p), 0);
	p = parsed("Mail delivery failed", NULL, 1);	/* X-Autoreply */
	assert_int_equal(messageserver_bounce_autoreply(&p), 1);
	p = parsed("Mail delivery failed", "Auto_Reply", 0);
	assert_int_equal(messageserver_bounce_autoreply(&p), 1);
	p = parsed("Mail delivery failed", "junk", 0);
	assert_int_equal(messageserver_bounce_autoreply(&p), 1);
	p = parsed("Mail delivery failed", "first-class", 0);
	assert_int_equal(messageserver_bounce_autoreply(&p), 0);
}

static void
test_counts_status(void **state)
{
	(void)state;
	counts_calls = 0;
	/* no status given reaches dsn_counts as NULL, not "" */
	counts_arg = "unset";
	assert_int_equal(messageserver_bounce_counts(""), 1);
	assert_null(counts_arg);
	counts_arg = "unset";
	assert_int_equal(messageserver_bounce_counts(NULL), 1);
	assert_null(counts_arg);
	assert_int_equal(messageserver_bounce_counts("5.7.1"), 0);
	assert_string_equal(counts_arg, "5.7.1");
	assert_int_equal(messageserver_bounce_counts("5.1.1"), 1);
	assert_int_equal(counts_calls, 4);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verp_forms),
		cmocka_unit_test(test_verp_refused),
		cmocka_unit_test(test_autoreply),
		cmocka_unit_test(test_counts_status),
	};

	cmocka_set_test_filter(getenv("GROUPS_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
