/* SPDX-License-Identifier: MIT */
/*
 * test_mime_footer_mend.c - the last guard of mime_footer_apply: a copy
 * whose pieces part a CR from its LF leaves with its line ends mended.
 *
 * No input is known to reach that guard (plan_sound rejects such plans),
 * so this test compiles mime_footer.c into itself, builds a real plan and
 * then damages it the way a misplaced part boundary would: a literal
 * piece with a lone LF and a lone CR.  It also pins crlf_only, the check
 * both guards share.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../src/common/mime_footer.c"

#define MSG	"From: a@example.org\r\nSubject: s\r\n" \
		"Content-Type: text/plain; charset=us-ascii\r\n\r\nhello\r\n"

static void
test_crlf_only(void **state)
{
	(void)state;
	assert_true(crlf_only("a\r\nb\r\n", 6));
	assert_true(crlf_only("\r\n", 2));
	assert_false(crlf_only("", 0));
	assert_false(crlf_only("a\nb\r\n", 5));		/* lone LF */
	assert_false(crlf_only("a\rb\r\n", 5));		/* lone CR */
	assert_false(crlf_only("\r\r\n", 3));		/* CR before CRLF */
	assert_false(crlf_only("a\r\n\r", 4));		/* no CRLF at the end */
	assert_false(crlf_only("\na\r\n", 4));		/* LF first */
}

static void
test_damaged_plan_is_mended(void **state)
{
	struct mime_footer_plan *pl;
	char err[128], *out;
	size_t n;

	(void)state;
	pl = mime_footer_plan(MSG, strlen(MSG), err, sizeof(err));
	assert_non_null(pl);
	/* as if a part boundary had been placed between a CR and its LF */
	lit_add(pl, "one\ntwo\rthree\r\n", 15);
	out = mime_footer_apply(pl, "-- \nfooter line", NULL, &n);
	assert_non_null(out);
	assert_true(crlf_only(out, n));
	assert_non_null(memmem(out, n, "one\r\ntwo\r\nthree\r\n", 17));
	assert_non_null(memmem(out, n, "footer line", 11));
	assert_non_null(memmem(out, n, "hello\r\n", 7));
	free(out);
	/* an undamaged plan's copy is left as it was built */
	mime_footer_plan_free(pl);
	pl = mime_footer_plan(MSG, strlen(MSG), err, sizeof(err));
	assert_non_null(pl);
	out = mime_footer_apply(pl, "-- \nfooter line", NULL, &n);
	assert_true(crlf_only(out, n));
	assert_null(memmem(out, n, "three", 5));
	free(out);
	mime_footer_plan_free(pl);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crlf_only),
		cmocka_unit_test(test_damaged_plan_is_mended),
	};

	g_mime_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
