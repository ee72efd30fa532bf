/* SPDX-License-Identifier: MIT */
/*
 * test_dmarc.c - unit tests of the DMARC record parser and the
 * organizational-domain rule (dmarc.c); discovery over DNS is in
 * test_dns.c.
 *
 * Covered: good records, whitespace and case, sp= and pct=, the RFC 7489
 * 6.6.3 step 6 rule (bad p= or sp= with and without rua=), unknown tags,
 * duplicate tags, tags without '=', bad tag names, garbage, overlong
 * records, and organizational domains with and without a common second
 * level.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dmarc.h"
#include "xalloc.h"

static void
test_good(void **state)
{
	struct dmarc_record r;

	(void)state;
	assert_int_equal(dmarc_parse("v=DMARC1; p=reject", &r), 0);
	assert_int_equal(r.p, DMARC_REJECT);
	assert_int_equal(r.sp, DMARC_REJECT);
	assert_int_equal(r.pct, 100);
	assert_false(r.adkim_strict);
	assert_false(r.aspf_strict);
	assert_false(r.has_rua);

	assert_int_equal(dmarc_parse("v=DMARC1;p=quarantine", &r), 0);
	assert_int_equal(r.p, DMARC_QUARANTINE);
	assert_int_equal(dmarc_parse("v=DMARC1; p=none;", &r), 0);
	assert_int_equal(r.p, DMARC_NONE);

	assert_int_equal(dmarc_parse("v=DMARC1; p=reject; sp=none; pct=25; "
	    "adkim=s; aspf=s; rua=mailto:dmarc@example.org; "
	    "ruf=mailto:f@example.org; fo=1; rf=afrf; ri=86400", &r), 0);
	assert_int_equal(r.p, DMARC_REJECT);
	assert_int_equal(r.sp, DMARC_NONE);
	assert_int_equal(r.pct, 25);
	assert_true(r.adkim_strict);
	assert_true(r.aspf_strict);
	assert_true(r.has_rua);

	/* order of the tags after v= does not matter */
	assert_int_equal(dmarc_parse("v=DMARC1; sp=reject; pct=0; "
	    "p=quarantine", &r), 0);
	assert_int_equal(r.p, DMARC_QUARANTINE);
	assert_int_equal(r.sp, DMARC_REJECT);
	assert_int_equal(r.pct, 0);
}

static void
test_whitespace_and_case(void **state)
{
	struct dmarc_record r;

	(void)state;
	assert_int_equal(dmarc_parse("  v = DMARC1 ;\tp =  reject\t; ", &r),
	    0);
	assert_int_equal(r.p, DMARC_REJECT);
	assert_int_equal(dmarc_parse("V=dmarc1; P=Reject; SP=QUARANTINE", &r),
	    0);
	assert_int_equal(r.p, DMARC_REJECT);
	assert_int_equal(r.sp, DMARC_QUARANTINE);
	/* empty tags are tolerated */
	assert_int_equal(dmarc_parse("v=DMARC1;; p=reject;;;", &r), 0);
	assert_int_equal(r.p, DMARC_REJECT);
	/* line breaks, as some zone files leave them */
	assert_int_equal(dmarc_parse("v=DMARC1;\r\n p=quarantine", &r), 0);
	assert_int_equal(r.p, DMARC_QUARANTINE);
	assert_int_equal(dmarc_parse("v=DMARC1; p=none ; pct = 7 ", &r), 0);
	assert_int_equal(r.pct, 7);
}

static void
test_sp_pct(void **state)
{
	struct dmarc_record r;

	(void)state;
	/* pct: 1..3 digits, 0..100; otherwise the default */
	assert_int_equal(dmarc_parse("v=DMARC1; p=reject; pct=100", &r), 0);
	assert_int_equal(r.pct, 100);
	assert_int_equal(dmarc_parse("v=DMARC1; p=reject; pct=007", &r), 0);
	assert_int_equal(r.pct, 7);
	assert_int_equal(dmarc_parse("v=DMARC1; p=reject; pct=101", &r), 0);
	assert_int_equal(r.pct, 100);
	assert_int_equal(dmarc_parse("v=DMARC1; p=reject; pct=-1", &r), 0);
	assert_int_equal(r.pct, 100);
	assert_int_equal(dmarc_parse("v=DMARC1; p=reject; pct=+5", &r), 0);
	assert_int_equal(r.pct, 100);
	assert_int_equal(dmarc_parse("v=DMARC1; p=reject; pct=1000", &r), 0);
	assert_int_equal(r.pct, 100);
	assert_int_equal(dmarc_parse("v=DMARC1; p=reject; pct=5 0", &r), 0);
	assert_int_equal(r.pct, 100);
	assert_int_equal(dmarc_parse("v=DMARC1; p=reject; pct=", &r), 0);
	assert_int_equal(r.pct, 100);
	/* no sp=: p= */
	assert_int_equal(dmarc_parse("v=DMARC1; p=quarantine", &r), 0);
	assert_int_equal(r.sp, DMARC_QUARANTINE);
	/* a bad sp= spoils the record unless rua= is there (6.6.3 step 6) */
	assert_int_equal(dmarc_parse("v=DMARC1; p=reject; sp=maybe", &r), -1);
	assert_int_equal(dmarc_parse("v=DMARC1; p=reject; sp=maybe; "
	    "rua=mailto:x@example.org", &r), 0);
	assert_int_equal(r.p, DMARC_NONE);
	assert_int_equal(r.sp, DMARC_NONE);
	/* the same for a missing or bad p= */
	assert_int_equal(dmarc_parse("v=DMARC1", &r), -1);
	assert_int_equal(dmarc_parse("v=DMARC1; sp=reject", &r), -1);
	assert_int_equal(dmarc_parse("v=DMARC1; p=rejected", &r), -1);
	assert_int_equal(dmarc_parse("v=DMARC1; p=", &r), -1);
	assert_int_equal(dmarc_parse("v=DMARC1; p=re ject", &r), -1);
	assert_int_equal(dmarc_parse("v=DMARC1; rua=mailto:x@example.org",
	    &r), 0);
	assert_int_equal(r.p, DMARC_NONE);
	/* rua= without a URI does not count */
	assert_int_equal(dmarc_parse("v=DMARC1; p=bad; rua=nobody", &r), -1);
	/* adkim/aspf: anything but s is relaxed */
	assert_int_equal(dmarc_parse("v=DMARC1; p=none; adkim=r; aspf=x", &r),
	    0);
	assert_false(r.adkim_strict);
	assert_false(r.aspf_strict);
}

static void
test_not_dmarc(void **state)
{
	static const char *const bad[] = {
		"",
		" ",
		";",
		"v=spf1 -all",
		"p=reject; v=DMARC1",		/* v= must come first */
		"; v=DMARC1; p=reject",
		"v=DMARC2; p=reject",
		"v=DMARC; p=reject",
		"v=DMARC1 p=reject",		/* a missing ';' */
		"v=DMARC1p=reject",
		"v DMARC1; p=reject",
		"vv=DMARC1; p=reject",
		"v=DMARC1; p=reject; v=DMARC1",	/* v= twice */
		"v=DMARC1; p=reject; p=none",	/* p= twice */
		"v=DMARC1; p=reject; pct=5; pct=6",
		"v=DMARC1; p=reject; junk",	/* a tag without '=' */
		"v=DMARC1; p=reject; =x",	/* no name */
		"v=DMARC1; p=reject; 9x=1",	/* name starts with a digit */
		"v=DMARC1; p=reject; a-b=1",	/* '-' not in a name */
		"v=DMARC1; p=reject; a b=1",
		"v=DMARC1; p=reject; \xc3\xa9=1",
		"\x01\x02\x03",
		"DMARC1",
	};
	struct dmarc_record r;
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(bad); i++) {
		if (dmarc_parse(bad[i], &r) != -1)
			fail_msg("accepted: \"%s\"", bad[i]);
	}
	assert_false(dmarc_is_dmarc("v=spf1"));
	assert_false(dmarc_is_dmarc("; v=DMARC1"));
	assert_false(dmarc_is_dmarc(NULL));
	/* it is a DMARC record, just a broken one: counts in discovery */
	assert_true(dmarc_is_dmarc("v=DMARC1; p=bogus"));
	assert_true(dmarc_is_dmarc(" v = DMARC1 "));
}

static void
test_unknown_tags(void **state)
{
	struct dmarc_record r;

	(void)state;
	assert_int_equal(dmarc_parse("v=DMARC1; p=reject; np=none; "
	    "future_tag=anything goes here = even this; x1=", &r), 0);
	assert_int_equal(r.p, DMARC_REJECT);
	/* unknown tags may repeat: only known ones are counted */
	assert_int_equal(dmarc_parse("v=DMARC1; x=1; x=2; p=none", &r), 0);
	/* values may hold bytes outside ASCII */
	assert_int_equal(dmarc_parse("v=DMARC1; p=quarantine; "
	    "note=\xc3\xa9t\xc3\xa9", &r), 0);
	assert_int_equal(r.p, DMARC_QUARANTINE);
}

static void
test_overlong(void **state)
{
	struct dmarc_record r;
	char *s;
	size_t prefix = strlen("v=DMARC1; p=reject; x=");

	(void)state;
	s = xmalloc(DMARC_RECORD_MAX + 2);
	/* exactly DMARC_RECORD_MAX: fine */
	memcpy(s, "v=DMARC1; p=reject; x=", prefix);
	memset(s + prefix, 'a', DMARC_RECORD_MAX - prefix);
	s[DMARC_RECORD_MAX] = '\0';
	assert_int_equal(dmarc_parse(s, &r), 0);
	assert_int_equal(r.p, DMARC_REJECT);
	/* one more: refused */
	s[DMARC_RECORD_MAX] = 'a';
	s[DMARC_RECORD_MAX + 1] = '\0';
	assert_int_equal(dmarc_parse(s, &r), -1);
	assert_false(dmarc_is_dmarc(s));
	free(s);
	/* a tag name over 32 characters */
	assert_int_equal(dmarc_parse("v=DMARC1; p=reject; "
	    "abcdefghijabcdefghijabcdefghijabc=1", &r), -1);
	assert_int_equal(dmarc_parse("v=DMARC1; p=reject; "
	    "abcdefghijabcdefghijabcdefghijab=1", &r), 0);
}

static void
test_org_domain(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "example.org", "example.org" },
		{ "mail.example.org", "example.org" },
		{ "a.b.c.example.org", "example.org" },
		{ "org", "org" },
		{ "localhost", "localhost" },
		{ "example.co.uk", "example.co.uk" },
		{ "mail.example.co.uk", "example.co.uk" },
		{ "co.uk", "co.uk" },
		{ "x.example.com.au", "example.com.au" },
		{ "a.example.ac.jp", "example.ac.jp" },
		{ "a.example.or.jp", "example.or.jp" },
		{ "a.b.example.gov.br", "example.gov.br" },
		{ "A.Example.CO.UK", "Example.CO.UK" },
		/* the common second levels only count under a 2-letter TLD */
		{ "a.example.co.test", "co.test" },
		{ "mail.example.com", "example.com" },
		/* a simplification: wrong for other public suffixes */
		{ "a.city.kawasaki.jp", "kawasaki.jp" },
		{ "x.example.it", "example.it" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(cases); i++) {
		const char *o = dmarc_org_domain(cases[i].in);

		if (strcmp(o, cases[i].out) != 0)
			fail_msg("%s: %s, not %s", cases[i].in, o,
			    cases[i].out);
		/* always a suffix of the input, never a copy */
		assert_ptr_equal(o, cases[i].in + strlen(cases[i].in) -
		    strlen(o));
	}
}

static void
test_names(void **state)
{
	(void)state;
	assert_string_equal(dmarc_name(DMARC_NONE), "none");
	assert_string_equal(dmarc_name(DMARC_QUARANTINE), "quarantine");
	assert_string_equal(dmarc_name(DMARC_REJECT), "reject");
	assert_string_equal(dmarc_name(DMARC_TEMPFAIL), "tempfail");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_whitespace_and_case),
		cmocka_unit_test(test_sp_pct),
		cmocka_unit_test(test_not_dmarc),
		cmocka_unit_test(test_unknown_tags),
		cmocka_unit_test(test_overlong),
		cmocka_unit_test(test_org_domain),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
