/* SPDX-License-Identifier: MIT */
/*
 * test_token.c - unit tests of the HMAC tokens and key derivation (token.c).
 *
 * Known answers were computed independently with Python's hmac/hashlib and
 * base64 modules, so a change of format or MAC input shows up here.  Also
 * covered: expiry boundaries, purpose binding, every single-character
 * tampering, malformed tokens, payload limits and base64url edge cases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "token.h"
#include "xalloc.h"

static const char test_secret[] = "0123456789abcdef-secret";

static void
test_key(unsigned char key[TOKEN_KEY_LEN])
{
	int i;

	for (i = 0; i < TOKEN_KEY_LEN; i++)
		key[i] = (unsigned char)i;
}

static void
test_derive_known_answer(void **state)
{
	char hex[2 * TOKEN_KEY_LEN + 1], hex2[2 * TOKEN_KEY_LEN + 1];
	unsigned char key[TOKEN_KEY_LEN];

	(void)state;
	/* HMAC-SHA256("0123456789abcdef-secret", "api") */
	token_derive_hex(test_secret, strlen(test_secret), "api", hex);
	assert_string_equal(hex, "e5d2e32971c0d798844a0d1ab53225871d7bdf5d"
	    "55094b0ddca01f534cb18576");
	token_derive(test_secret, strlen(test_secret), "unsubscribe", key);
	assert_int_equal(key[0], 0x0c);
	assert_int_equal(key[1], 0x62);
	assert_int_equal(key[31], 0x56);
	/* one label, one key */
	token_derive_hex(test_secret, strlen(test_secret), "unsubscribe", hex2);
	assert_string_equal(hex2, "0c621ff700055c8669dabe946495285837a0056e"
	    "31ce8aa1a9e182b69207f156");
	assert_string_not_equal(hex, hex2);
}

static void
test_sign_known_answer(void **state)
{
	unsigned char key[TOKEN_KEY_LEN];
	char *tok;

	(void)state;
	test_key(key);
	tok = token_sign(key, "unsub", "alice@example.org", 17, 1700000000);
	assert_non_null(tok);
	assert_string_equal(tok, "YWxpY2VAZXhhbXBsZS5vcmc.1700000000."
	    "guMzmZ_o19H5jhbpyh9AEe-bqTW5FEeiRnhfSr1Yn4A");
	free(tok);
}

static void
test_roundtrip_and_expiry(void **state)
{
	unsigned char key[TOKEN_KEY_LEN];
	char *tok, *payload = NULL;
	size_t len = 0;

	(void)state;
	test_key(key);
	tok = token_sign(key, "confirm", "group=7;user=9", 14, 1000);
	assert_non_null(tok);
	assert_int_equal(token_verify(key, "confirm", tok, 999, &payload,
	    &len), TOKEN_OK);
	assert_non_null(payload);
	assert_int_equal(len, 14);
	assert_string_equal(payload, "group=7;user=9");
	free(payload);
	/* at and after the expiry second: genuine but expired, no payload */
	payload = NULL;
	assert_int_equal(token_verify(key, "confirm", tok, 1000, &payload,
	    &len), TOKEN_EXPIRED);
	assert_null(payload);
	assert_int_equal(token_verify(key, "confirm", tok, 5000, NULL, NULL),
	    TOKEN_EXPIRED);
	free(tok);

	/* expires 0: never */
	tok = token_sign(key, "confirm", "x", 1, 0);
	assert_int_equal(token_verify(key, "confirm", tok, (time_t)1 << 40,
	    NULL, NULL), TOKEN_OK);
	free(tok);
}

static void
test_purpose_and_key_binding(void **state)
{
	unsigned char key[TOKEN_KEY_LEN], other[TOKEN_KEY_LEN];
	char *tok;

	(void)state;
	test_key(key);
	memcpy(other, key, sizeof(other));
	other[31] ^= 1;
	tok = token_sign(key, "unsubscribe", "bob", 3, 0);
	assert_int_equal(token_verify(key, "unsubscribe", tok, 0, NULL, NULL),
	    TOKEN_OK);
	assert_int_equal(token_verify(key, "csrf", tok, 0, NULL, NULL),
	    TOKEN_BAD);
	assert_int_equal(token_verify(key, "unsubscribe\n", tok, 0, NULL,
	    NULL), TOKEN_BAD);
	assert_int_equal(token_verify(other, "unsubscribe", tok, 0, NULL,
	    NULL), TOKEN_BAD);
	free(tok);
}

static void
test_every_tampering_rejected(void **state)
{
	static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn"
	    "opqrstuvwxyz0123456789-_.";
	unsigned char key[TOKEN_KEY_LEN];
	char *tok, *bad;
	size_t i, j, n;
	int rc;

	(void)state;
	test_key(key);
	tok = token_sign(key, "p", "payload-data", 12, 2000000000);
	n = strlen(tok);
	bad = strdup(tok);
	assert_non_null(bad);
	for (i = 0; i < n; i++) {
		for (j = 0; alpha[j] != '\0'; j++) {
			if (alpha[j] == tok[i])
				continue;
			bad[i] = alpha[j];
			rc = token_verify(key, "p", bad, 1, NULL, NULL);
			if (rc != TOKEN_BAD)
				fail_msg("token with [%zu]='%c' gave %d", i,
				    alpha[j], rc);
		}
		bad[i] = tok[i];
	}
	/* and the original still verifies */
	assert_int_equal(token_verify(key, "p", bad, 1, NULL, NULL), TOKEN_OK);
	/* truncations */
	for (i = 0; i < n; i++) {
		bad[i] = '\0';
		assert_int_equal(token_verify(key, "p", bad, 1, NULL, NULL),
		    TOKEN_BAD);
		bad[i] = tok[i];
	}
	free(bad);
	free(tok);
}

static void
test_malformed(void **state)
{
	static const char *const bad[] = {
		"", ".", "..", "...", "a", "a.1", "a.1.", ".1.", "a..b",
		"YQ.1.b.c", "YQ.01.AAAA", "YQ.-1.AAAA", "YQ.+1.AAAA",
		"YQ. 1.AAAA", "YQ.1x.AAAA",
		"YQ.99999999999999999999999.AAAA",
		"Y!.1.AAAA", "YQ==.1.AAAA",
		/* a 31-byte MAC */
		"YQ.1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	};
	unsigned char key[TOKEN_KEY_LEN];
	char *huge, *payload = NULL;
	size_t i;

	(void)state;
	test_key(key);
	for (i = 0; i < NELEM(bad); i++)
		if (token_verify(key, "p", bad[i], 0, &payload, NULL) !=
		    TOKEN_BAD)
			fail_msg("\"%s\" was not rejected", bad[i]);
	assert_null(payload);
	huge = malloc(4 * TOKEN_MAX_PAYLOAD + 100);
	memset(huge, 'A', 4 * TOKEN_MAX_PAYLOAD + 99);
	huge[4 * TOKEN_MAX_PAYLOAD + 99] = '\0';
	huge[10] = '.';
	huge[12] = '.';
	huge[11] = '1';
	assert_int_equal(token_verify(key, "p", huge, 0, NULL, NULL),
	    TOKEN_BAD);
	free(huge);
}

static void
test_payload_limits_and_binary(void **state)
{
	unsigned char key[TOKEN_KEY_LEN];
	char big[TOKEN_MAX_PAYLOAD + 1], *tok, *payload;
	static const char bin[] = { 'a', '\0', '\xff', '.', '\n' };
	size_t len;

	(void)state;
	test_key(key);
	memset(big, 'x', sizeof(big));
	assert_null(token_sign(key, "p", big, TOKEN_MAX_PAYLOAD + 1, 0));
	tok = token_sign(key, "p", big, TOKEN_MAX_PAYLOAD, 0);
	assert_non_null(tok);
	payload = NULL;
	assert_int_equal(token_verify(key, "p", tok, 0, &payload, &len),
	    TOKEN_OK);
	assert_int_equal(len, TOKEN_MAX_PAYLOAD);
	assert_memory_equal(payload, big, TOKEN_MAX_PAYLOAD);
	assert_int_equal(payload[TOKEN_MAX_PAYLOAD], '\0');
	free(payload);
	free(tok);

	tok = token_sign(key, "p", bin, sizeof(bin), 0);
	assert_int_equal(token_verify(key, "p", tok, 0, &payload, &len),
	    TOKEN_OK);
	assert_int_equal(len, sizeof(bin));
	assert_memory_equal(payload, bin, sizeof(bin));
	free(payload);
	free(tok);

	/* empty payload */
	tok = token_sign(key, "p", "", 0, 0);
	assert_int_equal(tok[0], '.');
	assert_int_equal(token_verify(key, "p", tok, 0, &payload, &len),
	    TOKEN_OK);
	assert_int_equal(len, 0);
	assert_string_equal(payload, "");
	free(payload);
	free(tok);
}

static void
test_b64url(void **state)
{
	static const struct { const char *in; size_t n; const char *out; } v[] = {
		{ "", 0, "" },
		{ "f", 1, "Zg" },
		{ "fo", 2, "Zm8" },
		{ "foo", 3, "Zm9v" },
		{ "foob", 4, "Zm9vYg" },
		{ "\xfb\xff", 2, "-_8" },
	};
	unsigned char *d;
	char *e;
	size_t i, len;

	(void)state;
	for (i = 0; i < NELEM(v); i++) {
		e = token_b64url_encode((const unsigned char *)v[i].in,
		    v[i].n);
		assert_string_equal(e, v[i].out);
		free(e);
		d = token_b64url_decode(v[i].out, strlen(v[i].out), &len);
		assert_non_null(d);
		assert_int_equal(len, v[i].n);
		assert_memory_equal(d, v[i].in, v[i].n);
		assert_int_equal(d[len], '\0');
		free(d);
	}
	/* padding, standard alphabet, bad length, stray bits */
	assert_null(token_b64url_decode("Zg==", 4, NULL));
	assert_null(token_b64url_decode("+/8", 3, NULL));
	assert_null(token_b64url_decode("Z", 1, NULL));
	assert_null(token_b64url_decode("Zh", 2, NULL));
	/* only slen bytes are looked at */
	d = token_b64url_decode("Zm9v!!!", 4, &len);
	assert_non_null(d);
	assert_int_equal(len, 3);
	assert_string_equal((char *)d, "foo");
	free(d);
}

/* Short (VERP) tokens: a known answer computed with Python's hmac and
 * base64.b32encode, case-insensitive verification, every one-character
 * change refused, payloads outside the alphabet refused. */
static void
test_short_tokens(void **state)
{
	unsigned char key[TOKEN_KEY_LEN];
	char *tok, payload[TOKEN_SHORT_PAYLOAD_MAX + 1], bad[64];
	const char *const refused[] = { "", "UPPER", "a b", "a+b", "a@b",
	    "a_b", "0123456789012345678901234567890123" };
	size_t i, j;

	(void)state;
	test_key(key);
	tok = token_short_sign(key, "verp", "12.345");
	assert_non_null(tok);
	assert_string_equal(tok, "12.345.3vw5v7s3hswu7w6q");
	assert_int_equal(token_short_verify(key, "verp", tok, payload,
	    sizeof(payload)), TOKEN_OK);
	assert_string_equal(payload, "12.345");
	/* an MTA that upper-cases the local part */
	assert_int_equal(token_short_verify(key, "verp",
	    "12.345.3VW5V7S3HSWU7W6Q", payload, sizeof(payload)), TOKEN_OK);
	/* other purpose, other key */
	assert_int_equal(token_short_verify(key, "other", tok, NULL, 0),
	    TOKEN_BAD);
	for (i = 0; i < strlen(tok); i++) {
		snprintf(bad, sizeof(bad), "%s", tok);
		for (j = 0; j < 2; j++) {
			bad[i] = j ? '9' : 'x';
			if (bad[i] == tok[i])
				continue;
			assert_int_equal(token_short_verify(key, "verp", bad,
			    NULL, 0), TOKEN_BAD);
		}
	}
	assert_int_equal(token_short_verify(key, "verp", "12.345", NULL, 0),
	    TOKEN_BAD);
	assert_int_equal(token_short_verify(key, "verp", "", NULL, 0),
	    TOKEN_BAD);
	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		assert_null(token_short_sign(key, "verp", refused[i]));
	free(tok);
}

static void
test_random_id(void **state)
{
	char a[17], b[17];

	(void)state;
	memset(a, 'X', sizeof(a));
	token_random_id(a, 8);
	token_random_id(b, 8);
	assert_int_equal(strlen(a), 16);
	assert_int_equal(strspn(a, "0123456789abcdef"), 16);
	assert_string_not_equal(a, b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_derive_known_answer),
		cmocka_unit_test(test_sign_known_answer),
		cmocka_unit_test(test_roundtrip_and_expiry),
		cmocka_unit_test(test_purpose_and_key_binding),
		cmocka_unit_test(test_every_tampering_rejected),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_payload_limits_and_binary),
		cmocka_unit_test(test_b64url),
		cmocka_unit_test(test_short_tokens),
		cmocka_unit_test(test_random_id),
	};

	/* GROUPS_TEST_FILTER=pattern runs only the matching tests */
	if (getenv("GROUPS_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("GROUPS_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
