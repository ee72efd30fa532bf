/* SPDX-License-Identifier: MIT */
/*
 * test_smtp_parse.c - unit tests of the MAIL/RCPT argument parser
 * (smtp_parse.c): good and bad paths, parameters, the reply codes chosen,
 * address syntax and the length bounds of local part, domain and address.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtp_parse.h"

static char err[SMTP_PARSE_ERR_MAX];

static int
mail(const char *args, struct smtp_mail *m)
{
	return smtp_parse_mail(args, m, err, sizeof(err));
}

static int
rcpt(const char *args, int utf8, struct smtp_rcpt *r)
{
	return smtp_parse_rcpt(args, utf8, r, err, sizeof(err));
}

static void
test_mail_good(void **state)
{
	struct smtp_mail m;

	(void)state;
	assert_int_equal(mail("FROM:<alice@example.org>", &m), 0);
	assert_string_equal(m.addr, "alice@example.org");
	assert_int_equal(m.size, -1);
	assert_int_equal(m.body, SMTP_BODY_NONE);
	assert_int_equal(m.smtputf8, 0);
	assert_int_equal(mail("from: <a.b+c@sub.example.org>", &m), 0);
	assert_string_equal(m.addr, "a.b+c@sub.example.org");
	assert_int_equal(mail("FROM:<>", &m), 0);
	assert_string_equal(m.addr, "");
	assert_int_equal(mail("FROM:<a@b.example> SIZE=12345 BODY=8BITMIME "
	    "SMTPUTF8", &m), 0);
	assert_int_equal(m.size, 12345);
	assert_int_equal(m.body, SMTP_BODY_8BITMIME);
	assert_int_equal(m.smtputf8, 1);
	assert_int_equal(mail("FROM:<a@b.example> body=7bit", &m), 0);
	assert_int_equal(m.body, SMTP_BODY_7BIT);
	assert_int_equal(mail("FROM:<\"john doe\"@example.org>", &m), 0);
	assert_string_equal(m.addr, "\"john doe\"@example.org");
	assert_int_equal(mail("FROM:<@relay.example:a@b.example>", &m), 0);
	assert_string_equal(m.addr, "a@b.example");
	assert_int_equal(mail("FROM:<a@[192.0.2.1]>", &m), 0);
	assert_int_equal(mail("FROM:<j\xc3\xb6rg@example.org> SMTPUTF8",
	    &m), 0);
}

static void
test_mail_bad(void **state)
{
	struct smtp_mail m;

	(void)state;
	assert_int_equal(mail("", &m), 501);
	assert_int_equal(mail("TO:<a@b.example>", &m), 501);
	assert_int_equal(mail("FROM:a@b.example", &m), 501);
	assert_int_equal(mail("FROM:<a@b.example", &m), 501);
	assert_int_equal(mail("FROM:<a@b.example>x", &m), 501);
	assert_int_equal(mail("FROM:<a@@b.example>", &m), 501);
	assert_int_equal(mail("FROM:<a..b@b.example>", &m), 501);
	assert_int_equal(mail("FROM:<.a@b.example>", &m), 501);
	assert_int_equal(mail("FROM:<a@b..example>", &m), 501);
	assert_int_equal(mail("FROM:<a@-b.example>", &m), 501);
	assert_int_equal(mail("FROM:<a@>", &m), 501);
	assert_int_equal(mail("FROM:<@b.example>", &m), 501);
	assert_int_equal(mail("FROM:<a b@b.example>", &m), 501);
	assert_int_equal(mail("FROM:<a@b.example> FOO=1", &m), 555);
	assert_non_null(strstr(err, "5.5.4"));
	assert_int_equal(mail("FROM:<a@b.example> NOTIFY", &m), 555);
	assert_int_equal(mail("FROM:<a@b.example> SMTPUTF8=x", &m), 555);
	assert_int_equal(mail("FROM:<a@b.example> SIZE", &m), 555);
	assert_int_equal(mail("FROM:<a@b.example> SIZE=", &m), 501);
	assert_int_equal(mail("FROM:<a@b.example> SIZE=12a", &m), 501);
	assert_int_equal(mail("FROM:<a@b.example> SIZE=1 SIZE=2", &m), 501);
	assert_int_equal(mail("FROM:<a@b.example> BODY=BINARYMIME", &m), 501);
	assert_int_equal(mail("FROM:<a@b.example> =x", &m), 501);
	assert_int_equal(mail("FROM:<a@b.example> A=b=c", &m), 501);
	/* non-ASCII without SMTPUTF8, and malformed UTF-8 with it */
	assert_int_equal(mail("FROM:<j\xc3\xb6rg@example.org>", &m), 553);
	assert_non_null(strstr(err, "5.6.7"));
	assert_int_equal(mail("FROM:<j\xc3rg@example.org> SMTPUTF8", &m),
	    501);
	assert_int_equal(mail("FROM:<\xc0\xaf@example.org> SMTPUTF8", &m),
	    501);
}

static void
test_mail_huge_size(void **state)
{
	struct smtp_mail m;

	(void)state;
	assert_int_equal(mail("FROM:<a@b.example> SIZE="
	    "99999999999999999999999999999999", &m), 0);
	assert_true(m.size > 100L * 1024 * 1024);
}

static void
test_rcpt(void **state)
{
	struct smtp_rcpt r;

	(void)state;
	assert_int_equal(rcpt("TO:<demo@localhost>", 0, &r), 0);
	assert_string_equal(r.addr, "demo@localhost");
	assert_int_equal(rcpt("to:<Postmaster>", 0, &r), 0);
	assert_string_equal(r.addr, "Postmaster");
	assert_int_equal(rcpt("TO:<>", 0, &r), 501);
	assert_int_equal(rcpt("TO:<user>", 0, &r), 501);
	assert_int_equal(rcpt("FROM:<a@b.example>", 0, &r), 501);
	assert_int_equal(rcpt("TO:<a@b.example> NOTIFY=NEVER", 0, &r), 555);
	assert_int_equal(rcpt("TO:<a@b.example>   ", 0, &r), 0);
	assert_int_equal(rcpt("TO:<gr\xc3\xbcn@b.example>", 0, &r), 553);
	assert_int_equal(rcpt("TO:<gr\xc3\xbcn@b.example>", 1, &r), 0);
	assert_int_equal(rcpt("TO:<a@b.ex\xc3\xa4mple>", 1, &r), 0);
}

static void
test_lengths(void **state)
{
	char args[1024], local[70], label[70], domain[300];
	struct smtp_rcpt r;

	(void)state;
	memset(local, 'l', 64);
	local[64] = '\0';
	snprintf(args, sizeof(args), "TO:<%s@example.org>", local);
	assert_int_equal(rcpt(args, 0, &r), 0);
	memset(local, 'l', 65);
	local[65] = '\0';
	snprintf(args, sizeof(args), "TO:<%s@example.org>", local);
	assert_int_equal(rcpt(args, 0, &r), 501);

	/* labels up to 63 */
	memset(label, 'd', 63);
	label[63] = '\0';
	snprintf(args, sizeof(args), "TO:<a@%s.org>", label);
	assert_int_equal(rcpt(args, 0, &r), 0);
	memset(label, 'd', 64);
	label[64] = '\0';
	snprintf(args, sizeof(args), "TO:<a@%s.org>", label);
	assert_int_equal(rcpt(args, 0, &r), 501);

	/* a domain of exactly 255 and of 256 */
	memset(label, 'd', 63);
	label[63] = '\0';
	snprintf(domain, sizeof(domain), "%s.%s.%s.%.63s", label, label,
	    label, label);		/* 4 * 63 + 3 = 255 */
	assert_int_equal(strlen(domain), 255);
	snprintf(args, sizeof(args), "TO:<a@%s>", domain);
	assert_int_equal(rcpt(args, 0, &r), 0);
	snprintf(args, sizeof(args), "TO:<a@x%s>", domain);
	assert_int_equal(rcpt(args, 0, &r), 501);

	/* the whole address: 64 + 1 + 255 = SMTP_ADDR_MAX */
	memset(local, 'l', 64);
	local[64] = '\0';
	snprintf(args, sizeof(args), "TO:<%s@%s>", local, domain);
	assert_int_equal(rcpt(args, 0, &r), 0);
	assert_int_equal(strlen(r.addr), SMTP_ADDR_MAX);
	snprintf(args, sizeof(args), "TO:<%sx@%s>", local, domain);
	assert_int_equal(rcpt(args, 0, &r), 501);
}

static void
test_addr_valid(void **state)
{
	(void)state;
	assert_true(smtp_addr_valid("a@b", 0));
	assert_true(smtp_addr_valid("\"a\\\"b\"@b.example", 0));
	assert_false(smtp_addr_valid("", 0));
	assert_false(smtp_addr_valid("a", 0));
	assert_false(smtp_addr_valid("a@", 0));
	assert_false(smtp_addr_valid("a@b.", 0));
	assert_false(smtp_addr_valid("a@b-", 0));
	assert_false(smtp_addr_valid("a.@b", 0));
	assert_false(smtp_addr_valid("\"a@b", 0));
	assert_false(smtp_addr_valid("a@[]", 0));
	assert_false(smtp_addr_valid("a@[1.2.3.4", 0));
	assert_false(smtp_addr_valid("a\r@b", 0));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mail_good),
		cmocka_unit_test(test_mail_bad),
		cmocka_unit_test(test_mail_huge_size),
		cmocka_unit_test(test_rcpt),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_addr_valid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
