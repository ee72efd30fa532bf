/* SPDX-License-Identifier: MIT */
/*
 * test_cmdaddr.c - unit tests of the local-part parser (cmdaddr.c): every
 * command and alias, the argument rules (tokens, dates, topics, hashtags),
 * case handling, what is refused, the canonical form, and the forward
 * rules of the configuration.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cmdaddr.h"

/* cmd - parse local as a command: its main word and argument. */
static enum cmdaddr_cmd
cmd(const char *local, const char **arg)
{
	static struct cmdaddr a;

	if (cmdaddr_parse(local, &a) != 0 || a.kind != CMDADDR_KIND_COMMAND)
		return CMDADDR_NONE;
	assert_string_equal(a.group, "demo");
	*arg = a.arg;
	return a.cmd;
}

static void
test_plain_commands(void **state)
{
	static const struct {
		const char *local;
		enum cmdaddr_cmd c;
	} t[] = {
		{ "demo+subscribe", CMDADDR_SUBSCRIBE },
		{ "demo+join", CMDADDR_SUBSCRIBE },
		{ "demo+unsubscribe", CMDADDR_UNSUBSCRIBE },
		{ "demo+leave", CMDADDR_UNSUBSCRIBE },
		{ "demo+signoff", CMDADDR_UNSUBSCRIBE },
		{ "demo+help", CMDADDR_HELP },
		{ "demo+digest", CMDADDR_DIGEST },
		{ "demo+plaindigest", CMDADDR_PLAINDIGEST },
		{ "demo+summary", CMDADDR_SUMMARY },
		{ "demo+special", CMDADDR_SPECIAL },
		{ "demo+nomail", CMDADDR_NOMAIL },
		{ "demo+single", CMDADDR_SINGLE },
		{ "demo+individual", CMDADDR_SINGLE },
		{ "demo+mail", CMDADDR_SINGLE },
		{ "DEMO+SubScribe", CMDADDR_SUBSCRIBE },
	};
	const char *arg;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		assert_int_equal(cmd(t[i].local, &arg), t[i].c);
		assert_string_equal(arg, "");
	}
}

static void
test_arg_commands(void **state)
{
	const char *arg;

	(void)state;
	assert_int_equal(cmd("demo+confirm-AbC.123_x-Y", &arg),
	    CMDADDR_CONFIRM);
	assert_string_equal(arg, "AbC.123_x-Y");
	assert_int_equal(cmd("demo+Unsubscribe-MTIz.0.xYz", &arg),
	    CMDADDR_UNSUBSCRIBE_TOKEN);
	assert_string_equal(arg, "MTIz.0.xYz");
	assert_int_equal(cmd("demo+approve-Tok.1797_xY", &arg),
	    CMDADDR_APPROVE);
	assert_int_equal(cmd("demo+REJECT-AbC", &arg), CMDADDR_REJECT);
	assert_string_equal(arg, "AbC");
	assert_int_equal(cmd("demo+nomail-until-2028-02-29", &arg),
	    CMDADDR_NOMAIL_UNTIL);
	assert_string_equal(arg, "2028-02-29");
	assert_int_equal(cmd("demo+mute-1234", &arg), CMDADDR_MUTE);
	assert_string_equal(arg, "1234");
	assert_int_equal(cmd("demo+follow-9", &arg), CMDADDR_FOLLOW);
	assert_int_equal(cmd("demo+mute-tag-Picnic", &arg), CMDADDR_MUTE_TAG);
	assert_string_equal(arg, "Picnic");
	assert_int_equal(cmd("demo+FOLLOW-TAG-caf\xc3\xa9", &arg),
	    CMDADDR_FOLLOW_TAG);
	assert_string_equal(arg, "caf\xc3\xa9");
	/* a hashtag that looks like a number is still a hashtag */
	assert_int_equal(cmd("demo+mute-tag-2027", &arg), CMDADDR_MUTE_TAG);
}

static void
test_refused(void **state)
{
	static const char *const bad[] = {
		"", "+subscribe", "demo+", "demo+nosuchcommand",
		"demo+approve", "demo+approve-", "demo+confirm",
		"demo+confirm-a b", "demo+confirm-a+b", "demo+confirm-a=",
		"demo+subscribe-x", "demo+help-me", "demo+nomail-until",
		"demo+nomail-until-2027-02-29", "demo+nomail-until-2027-13-01",
		"demo+nomail-until-2027-1-01", "demo+nomail-until-1969-12-31",
		"demo+nomail-until-2027-04-31", "demo+nomail-until-2027-04-3x",
		"demo+mute-", "demo+mute-0", "demo+mute-012", "demo+mute-12a",
		"demo+mute-1234567890123456789", "demo+mute-tag-",
		"demo+mute-tag-a#b", "demo+mute-tag-a b", "demo+mute-tag-\x01",
		"demo+mute-tag-\xc3", "demo+mute-tag-\xc0\xaf",
		"demo+mute-tag-\xed\xa0\x80", "demo+bounces-", "demo+bounces-a b",
		"demo+bounces-\xc3\xa9", "-demo", "demo-", "de mo", "dem@o",
		"demo+owners", "demo+ownerx", "bounces+", "bounces+a b",
		"bounces+\xc3\xa9", "BOUNCES+",
	};
	struct cmdaddr a;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (cmdaddr_parse(bad[i], &a) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_string_equal(a.group, "");
		assert_string_equal(a.arg, "");
	}
}

static void
test_kinds(void **state)
{
	struct cmdaddr a;
	char big[400];

	(void)state;
	assert_int_equal(cmdaddr_parse("Demo.List_2", &a), 0);
	assert_int_equal(a.kind, CMDADDR_KIND_POST);
	assert_string_equal(a.group, "demo.list_2");
	assert_int_equal(cmdaddr_parse("demo+OWNER", &a), 0);
	assert_int_equal(a.kind, CMDADDR_KIND_OWNER);
	assert_int_equal(cmdaddr_parse("demo+bounces", &a), 0);
	assert_int_equal(a.kind, CMDADDR_KIND_BOUNCE);
	assert_string_equal(a.arg, "");
	assert_int_equal(cmdaddr_parse("Demo+Bounces-AbC.12_3", &a), 0);
	assert_int_equal(a.kind, CMDADDR_KIND_BOUNCE);
	assert_string_equal(a.arg, "AbC.12_3");
	/* the domain's bounce address: no group, the token after the plus
	 * (a '-' in it is the token's own) */
	assert_int_equal(cmdaddr_parse("bounces", &a), 0);
	assert_int_equal(a.kind, CMDADDR_KIND_BOUNCE);
	assert_string_equal(a.group, "");
	assert_string_equal(a.arg, "");
	assert_int_equal(cmdaddr_parse("Bounces+12.345.K3v6-x", &a), 0);
	assert_int_equal(a.kind, CMDADDR_KIND_BOUNCE);
	assert_string_equal(a.group, "");
	assert_string_equal(a.arg, "12.345.K3v6-x");
	assert_int_equal(cmdaddr_parse("bounces+owner", &a), 0);
	assert_int_equal(a.kind, CMDADDR_KIND_BOUNCE);
	assert_string_equal(a.arg, "owner");
	assert_int_equal(cmdaddr_parse("bouncesx", &a), 0);
	assert_int_equal(a.kind, CMDADDR_KIND_POST);
	assert_string_equal(a.group, "bouncesx");
	/* group names: at most 64 */
	memset(big, 'g', 64);
	big[64] = '\0';
	assert_int_equal(cmdaddr_parse(big, &a), 0);
	big[64] = 'g';
	big[65] = '\0';
	assert_int_equal(cmdaddr_parse(big, &a), -1);
	/* arguments: at most CMDADDR_ARG_MAX */
	snprintf(big, sizeof(big), "d+bounces-%0*d", CMDADDR_ARG_MAX, 0);
	assert_int_equal(cmdaddr_parse(big, &a), 0);
	assert_int_equal(strlen(a.arg), CMDADDR_ARG_MAX);
	snprintf(big, sizeof(big), "d+bounces-%0*d", CMDADDR_ARG_MAX + 1, 0);
	assert_int_equal(cmdaddr_parse(big, &a), -1);
}

static void
test_format_canonical(void **state)
{
	static const struct {
		const char *in, *out;
	} t[] = {
		{ "DEMO", "demo" },
		{ "demo+Owner", "demo+owner" },
		{ "demo+BOUNCES", "demo+bounces" },
		{ "demo+bounces-XyZ", "demo+bounces-XyZ" },
		{ "BOUNCES", "bounces" },
		{ "Bounces+XyZ.1", "bounces+XyZ.1" },
		{ "demo+JOIN", "demo+subscribe" },
		{ "demo+signoff", "demo+unsubscribe" },
		{ "demo+individual", "demo+single" },
		{ "demo+Confirm-AbC", "demo+confirm-AbC" },
		{ "demo+unsubscribe-AbC", "demo+unsubscribe-AbC" },
		{ "demo+Mute-Tag-News", "demo+mute-tag-News" },
		{ "demo+nomail-until-2030-01-31",
		    "demo+nomail-until-2030-01-31" },
	};
	struct cmdaddr a, b;
	char buf[CMDADDR_LOCAL_MAX + 1], small[8];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		assert_int_equal(cmdaddr_parse(t[i].in, &a), 0);
		assert_int_equal(cmdaddr_format(&a, buf, sizeof(buf)), 0);
		assert_string_equal(buf, t[i].out);
		assert_int_equal(cmdaddr_parse(buf, &b), 0);
		assert_memory_equal(&a, &b, sizeof(a));
	}
	assert_int_equal(cmdaddr_parse("demo+subscribe", &a), 0);
	assert_int_equal(cmdaddr_format(&a, small, sizeof(small)), -1);
	assert_string_equal(small, "");
}

static void
test_names(void **state)
{
	(void)state;
	assert_string_equal(cmdaddr_name(CMDADDR_SINGLE), "single");
	assert_string_equal(cmdaddr_name(CMDADDR_UNSUBSCRIBE_TOKEN),
	    "unsubscribe");
	assert_string_equal(cmdaddr_name(CMDADDR_MUTE_TAG), "mute-tag");
	assert_string_equal(cmdaddr_name(CMDADDR_NONE), "");
	assert_int_equal(cmdaddr_command("unsubscribe", ""),
	    CMDADDR_UNSUBSCRIBE);
	assert_int_equal(cmdaddr_command("unsubscribe", "tok"),
	    CMDADDR_UNSUBSCRIBE_TOKEN);
	assert_int_equal(cmdaddr_command("confirm", NULL), CMDADDR_NONE);
	assert_int_equal(cmdaddr_command("mute", "12"), CMDADDR_MUTE);
	assert_int_equal(cmdaddr_command("nosuch", ""), CMDADDR_NONE);
}

static void
test_date(void **state)
{
	int y, m, d;

	(void)state;
	assert_int_equal(cmdaddr_date("2028-02-29", &y, &m, &d), 0);
	assert_int_equal(y, 2028);
	assert_int_equal(m, 2);
	assert_int_equal(d, 29);
	assert_int_equal(cmdaddr_date("2000-02-29", &y, &m, &d), 0);
	assert_int_equal(cmdaddr_date("2100-02-29", &y, &m, &d), -1);
	assert_int_equal(cmdaddr_date("2027-12-31", &y, &m, &d), 0);
	assert_int_equal(cmdaddr_date("2027-12-32", &y, &m, &d), -1);
	assert_int_equal(cmdaddr_date("2027-00-10", &y, &m, &d), -1);
	assert_int_equal(cmdaddr_date("2027-12-31x", &y, &m, &d), -1);
	assert_int_equal(cmdaddr_date("27-12-31", &y, &m, &d), -1);
}

static void
test_forward_rules(void **state)
{
	const char *rules = " postmaster  admin@example.org,abuse "
	    "abuse@example.net , , Sales sales@example.com";
	char t[64], err[200];

	(void)state;
	assert_int_equal(cmdaddr_forward(rules, "postmaster", t, sizeof(t)),
	    1);
	assert_string_equal(t, "admin@example.org");
	assert_int_equal(cmdaddr_forward(rules, "ABUSE", t, sizeof(t)), 1);
	assert_string_equal(t, "abuse@example.net");
	assert_int_equal(cmdaddr_forward(rules, "sales", t, sizeof(t)), 1);
	assert_string_equal(t, "sales@example.com");
	assert_int_equal(cmdaddr_forward(rules, "post", t, sizeof(t)), 0);
	assert_int_equal(cmdaddr_forward(rules, "postmasterx", t, sizeof(t)),
	    0);
	assert_int_equal(cmdaddr_forward(rules, "postmaster", t, 5), 0);
	assert_int_equal(cmdaddr_forward("", "postmaster", t, sizeof(t)), 0);
	assert_int_equal(cmdaddr_forward(NULL, "postmaster", t, sizeof(t)),
	    0);
	assert_int_equal(cmdaddr_forward_check(rules, err, sizeof(err)), 0);
	assert_int_equal(cmdaddr_forward_check("", err, sizeof(err)), 0);
	/* a malformed entry is skipped, the others still route */
	assert_int_equal(cmdaddr_forward_check("a b@c, lonely, d e@f", err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "\"lonely\""));
	assert_int_equal(cmdaddr_forward("a b@c, lonely, d e@f", "d", t,
	    sizeof(t)), 1);
	assert_string_equal(t, "e@f");
	assert_int_equal(cmdaddr_forward("x noat", "x", t, sizeof(t)), 0);
	assert_int_equal(cmdaddr_forward("x a@b c@d", "x", t, sizeof(t)), 0);
	assert_int_equal(cmdaddr_forward("x@y a@b", "x@y", t, sizeof(t)), 0);
	assert_int_equal(cmdaddr_forward_check("x a@b c@d", err, sizeof(err)),
	    -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_commands),
		cmocka_unit_test(test_arg_commands),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_kinds),
		cmocka_unit_test(test_format_canonical),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_date),
		cmocka_unit_test(test_forward_rules),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
