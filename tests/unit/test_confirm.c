/* SPDX-License-Identifier: MIT */
/*
 * test_confirm.c - unit tests of the confirmation tokens (confirm.c).
 *
 * Known answers were computed independently with Python's hmac, hashlib
 * and base64 modules (key = HMAC-SHA256(secret, "confirm"), MAC over
 * "confirm\n<payload>\n0", its first 10 bytes in lower-case base32), so a
 * change of format, key or MAC input shows up here.  Also covered: both
 * operations, the expiry boundary, tokens of another purpose, key or
 * secret, every one-character change, cut and lengthened tokens, a change
 * of case (accepted: a mail system may change a local part's case), and
 * genuine signatures over payloads that are not confirmations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "confirm.h"
#include "token.h"
#include "xalloc.h"

static char test_secret[] = "0123456789abcdef-secret";
static char other_secret[] = "another secret";

/* Python: "s42.1800000000" and "u7.1700000000" signed under test_secret */
#define KA_SUBSCRIBE	"s42.1800000000.7l5cqwljcnimwief"
#define KA_UNSUBSCRIBE	"u7.1700000000.awixvedpfjc44wz4"

static int
setup(void **state)
{
	(void)state;
	cfg.secret = test_secret;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	cfg.secret = NULL;
	return 0;
}

/* sign - a short token over payload with the key derived for label and
 * the given purpose (allocated). */
static char *
sign(const char *label, const char *purpose, const char *payload)
{
	unsigned char key[TOKEN_KEY_LEN];
	char *t;

	token_derive(test_secret, strlen(test_secret), label, key);
	t = token_short_sign(key, purpose, payload);
	assert_non_null(t);
	return t;
}

static void
test_known_answers(void **state)
{
	struct confirm c;
	char *t;

	(void)state;
	t = confirm_token(CONFIRM_SUBSCRIBE, 42, 1800000000);
	assert_string_equal(t, KA_SUBSCRIBE);
	free(t);
	t = confirm_token(CONFIRM_UNSUBSCRIBE, 7, 1700000000);
	assert_string_equal(t, KA_UNSUBSCRIBE);
	free(t);

	assert_int_equal(confirm_check(KA_SUBSCRIBE, 1700000000, &c),
	    CONFIRM_OK);
	assert_int_equal(c.op, CONFIRM_SUBSCRIBE);
	assert_int_equal(c.membership_id, 42);
	assert_int_equal(c.expires, 1800000000);
	assert_int_equal(confirm_check(KA_UNSUBSCRIBE, 1600000000, &c),
	    CONFIRM_OK);
	assert_int_equal(c.op, CONFIRM_UNSUBSCRIBE);
	assert_int_equal(c.membership_id, 7);
	assert_int_equal(c.expires, 1700000000);
}

static void
test_round_trip(void **state)
{
	static const long long ids[] = { 1, 9, 10, 123456789,
	    999999999999999999LL };
	struct confirm c;
	size_t i;
	char *t;

	(void)state;
	for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		t = confirm_token(i % 2 ? CONFIRM_UNSUBSCRIBE :
		    CONFIRM_SUBSCRIBE, ids[i], 2000000000);
		/* fits a local part: group+confirm-TOKEN within 64 octets */
		assert_true(strlen(t) <= 49);
		assert_true(strlen(t) <= CONFIRM_TOKEN_MAX);
		assert_int_equal(strspn(t, "abcdefghijklmnopqrstuvwxyz"
		    "234567.0123456789"), strlen(t));
		assert_int_equal(confirm_check(t, 1900000000, &c),
		    CONFIRM_OK);
		assert_int_equal(c.op, i % 2 ? CONFIRM_UNSUBSCRIBE :
		    CONFIRM_SUBSCRIBE);
		assert_int_equal(c.membership_id, ids[i]);
		assert_int_equal(c.expires, 2000000000);
		free(t);
	}
}

static void
test_expiry(void **state)
{
	struct confirm c;

	(void)state;
	/* valid through the second it names, expired after */
	assert_int_equal(confirm_check(KA_SUBSCRIBE, 1800000000, &c),
	    CONFIRM_OK);
	assert_int_equal(confirm_check(KA_SUBSCRIBE, 1800000001, &c),
	    CONFIRM_EXPIRED);
	/* an expired token still says what it was for */
	assert_int_equal(c.op, CONFIRM_SUBSCRIBE);
	assert_int_equal(c.membership_id, 42);
	assert_int_equal(c.expires, 1800000000);
	assert_int_equal(confirm_check(KA_UNSUBSCRIBE, 2000000000, &c),
	    CONFIRM_EXPIRED);
	assert_int_equal(c.membership_id, 7);
	assert_int_equal(confirm_check(KA_SUBSCRIBE, 0, &c), CONFIRM_OK);
}

static void
test_wrong_purpose_key_or_secret(void **state)
{
	struct confirm c;
	char *t;

	(void)state;
	/* the same payload under another purpose, or another label's key */
	t = sign("confirm", "moderate", "s42.1800000000");
	assert_int_equal(confirm_check(t, 0, &c), CONFIRM_BAD);
	free(t);
	t = sign("moderate", "confirm", "s42.1800000000");
	assert_int_equal(confirm_check(t, 0, &c), CONFIRM_BAD);
	free(t);
	t = sign("verp", "verp", "s42.1800000000");
	assert_int_equal(confirm_check(t, 0, &c), CONFIRM_BAD);
	free(t);
	/* the right key and purpose are what confirm_token uses */
	t = sign("confirm", "confirm", "s42.1800000000");
	assert_string_equal(t, KA_SUBSCRIBE);
	free(t);

	/* another installation's secret, or none */
	cfg.secret = other_secret;
	assert_int_equal(confirm_check(KA_SUBSCRIBE, 0, &c), CONFIRM_BAD);
	t = confirm_token(CONFIRM_SUBSCRIBE, 42, 1800000000);
	assert_string_not_equal(t, KA_SUBSCRIBE);
	assert_int_equal(confirm_check(t, 0, &c), CONFIRM_OK);
	cfg.secret = test_secret;
	assert_int_equal(confirm_check(t, 0, &c), CONFIRM_BAD);
	free(t);
	cfg.secret = NULL;
	assert_int_equal(confirm_check(KA_SUBSCRIBE, 0, &c), CONFIRM_BAD);
	cfg.secret = test_secret;
}

static void
test_damaged(void **state)
{
	static const char repl[] = "a2s.9Z-_+";
	char tok[sizeof(KA_SUBSCRIBE) + 8];
	struct confirm c;
	size_t i, k, n = strlen(KA_SUBSCRIBE);

	(void)state;
	/* every single character changed, to anything but its own case */
	for (i = 0; i < n; i++)
		for (k = 0; k < sizeof(repl) - 1; k++) {
			strlcpy_chk(tok, KA_SUBSCRIBE, sizeof(tok));
			if ((tok[i] | 0x20) == (repl[k] | 0x20))
				continue;
			tok[i] = repl[k];
			c.membership_id = -1;
			assert_int_equal(confirm_check(tok, 0, &c),
			    CONFIRM_BAD);
			/* nothing of a refused token is handed out */
			assert_int_equal(c.membership_id, 0);
		}
	/* cut, lengthened, emptied */
	for (i = 0; i < n; i++) {
		strlcpy_chk(tok, KA_SUBSCRIBE, i + 1);
		assert_int_equal(confirm_check(tok, 0, &c), CONFIRM_BAD);
	}
	snprintf(tok, sizeof(tok), "%sa", KA_SUBSCRIBE);
	assert_int_equal(confirm_check(tok, 0, &c), CONFIRM_BAD);
	snprintf(tok, sizeof(tok), "1%s", KA_SUBSCRIBE);
	assert_int_equal(confirm_check(tok, 0, &c), CONFIRM_BAD);
	snprintf(tok, sizeof(tok), "%s.", KA_SUBSCRIBE);
	assert_int_equal(confirm_check(tok, 0, &c), CONFIRM_BAD);
	assert_int_equal(confirm_check("", 0, &c), CONFIRM_BAD);
	assert_int_equal(confirm_check(NULL, 0, &c), CONFIRM_BAD);
}

static void
test_too_long(void **state)
{
	char tok[CONFIRM_TOKEN_MAX + 2];
	struct confirm c;

	(void)state;
	memset(tok, 'a', sizeof(tok) - 1);
	tok[sizeof(tok) - 1] = '\0';
	assert_int_equal(confirm_check(tok, 0, &c), CONFIRM_BAD);
	tok[CONFIRM_TOKEN_MAX] = '\0';
	assert_int_equal(confirm_check(tok, 0, &c), CONFIRM_BAD);
}

static void
test_case_changes(void **state)
{
	char tok[sizeof(KA_SUBSCRIBE)];
	struct confirm c;
	size_t i;

	(void)state;
	/* an upper-cased local part (DEMO+CONFIRM-S42...) still confirms */
	for (i = 0; KA_SUBSCRIBE[i] != '\0'; i++)
		tok[i] = (char)(KA_SUBSCRIBE[i] >= 'a' &&
		    KA_SUBSCRIBE[i] <= 'z' ? KA_SUBSCRIBE[i] - 32 :
		    KA_SUBSCRIBE[i]);
	tok[i] = '\0';
	assert_string_equal(tok, "S42.1800000000.7L5CQWLJCNIMWIEF");
	assert_int_equal(confirm_check(tok, 0, &c), CONFIRM_OK);
	assert_int_equal(c.op, CONFIRM_SUBSCRIBE);
	assert_int_equal(c.membership_id, 42);
	assert_int_equal(c.expires, 1800000000);
	/* mixed case too, and the result is the same */
	memcpy(tok, "s42.1800000000.7L5cQwLjCnImWiEf", sizeof(tok));
	assert_int_equal(confirm_check(tok, 0, &c), CONFIRM_OK);
	assert_int_equal(c.membership_id, 42);
	memcpy(tok, "U7.1700000000.AWIXVEDPFJC44WZ4", 31);
	assert_int_equal(confirm_check(tok, 0, &c), CONFIRM_OK);
	assert_int_equal(c.op, CONFIRM_UNSUBSCRIBE);
}

static void
test_payloads_that_are_no_confirmation(void **state)
{
	/* genuine signatures (right key and purpose) over bad payloads */
	static const char *const bad[] = {
		"x42.1800000000",	/* no such operation */
		"42.1800000000",	/* no operation */
		"s0.1800000000",	/* membership 0 */
		"s042.1800000000",	/* leading zero */
		"s-42.1800000000",
		"s42",			/* no expiry */
		"s42.",
		"s.1800000000",
		"s42.1800000000.1",	/* trailing field */
		"s42.-1800000000",
		"s42.01800000000",
		"s4a.1800000000",
		"s1234567890123456789.1",	/* 19 digits */
		"s42.1234567890123456789",
		"ss42.1800000000",
		"u",
	};
	struct confirm c;
	size_t i;
	char *t;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		t = sign("confirm", "confirm", bad[i]);
		c.membership_id = -1;
		if (confirm_check(t, 0, &c) != CONFIRM_BAD)
			fail_msg("payload %s accepted", bad[i]);
		assert_int_equal(c.membership_id, 0);
		free(t);
	}
	/* the edges that are allowed: 18 digits, expiry 0 */
	t = sign("confirm", "confirm", "u123456789012345678.0");
	assert_int_equal(confirm_check(t, 0, &c), CONFIRM_OK);
	assert_int_equal(c.membership_id, 123456789012345678LL);
	assert_int_equal(c.expires, 0);
	assert_int_equal(confirm_check(t, 1, &c), CONFIRM_EXPIRED);
	free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_answers),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_wrong_purpose_key_or_secret),
		cmocka_unit_test(test_damaged),
		cmocka_unit_test(test_too_long),
		cmocka_unit_test(test_case_changes),
		cmocka_unit_test(test_payloads_that_are_no_confirmation),
	};

	/* GROUPS_TEST_FILTER=pattern runs only the matching tests */
	if (getenv("GROUPS_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("GROUPS_TEST_FILTER"));
	return cmocka_run_group_tests(tests, setup, teardown);
}
