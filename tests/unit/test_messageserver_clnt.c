/* SPDX-License-Identifier: MIT */
/*
 * test_messageserver_clnt.c - the encode/decode pair of messageserver's
 * inbound body (messageserver_clnt.c): what smtpd encodes, messageserver
 * decodes to the same envelope and bytes (8-bit and NUL included), and
 * every malformed body is refused with a reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api_proto.h"
#include "messageserver_clnt.h"

static const char raw[] = "Subject: caf\xe9\r\n\r\nbody \x00 8-bit \xff\r\n";

static json_t *
good_body(void)
{
	static const char *const rcpts[] = { "demo@lists.example",
	    "demo+owner@lists.example" };
	struct ms_envelope env = { "alice@example.org", rcpts, 2, "192.0.2.7",
	    "mx.example.org", "c1d2" };

	return ms_inbound_encode(&env, raw, sizeof(raw) - 1);
}

static void
test_roundtrip(void **state)
{
	struct ms_inbound in;
	char err[128];
	json_t *j = good_body();

	(void)state;
	assert_int_equal(ms_inbound_decode(j, &in, err, sizeof(err)), 0);
	assert_string_equal(in.mail_from, "alice@example.org");
	assert_int_equal(in.nrcpts, 2);
	assert_string_equal(in.rcpts[1], "demo+owner@lists.example");
	assert_string_equal(in.client_addr, "192.0.2.7");
	assert_string_equal(in.client_helo, "mx.example.org");
	assert_string_equal(in.cid, "c1d2");
	assert_int_equal(in.rawlen, sizeof(raw) - 1);
	assert_memory_equal(in.raw, raw, sizeof(raw) - 1);
	ms_inbound_free(&in);
	json_decref(j);
}

static void
test_null_sender_and_no_cid(void **state)
{
	static const char *const rcpts[] = { "demo@x" };
	struct ms_envelope env = { "", rcpts, 1, NULL, NULL, NULL };
	struct ms_inbound in;
	char err[128];
	json_t *j = ms_inbound_encode(&env, "x", 1);

	(void)state;
	assert_int_equal(ms_inbound_decode(j, &in, err, sizeof(err)), 0);
	assert_string_equal(in.mail_from, "");
	assert_null(in.cid);
	ms_inbound_free(&in);
	json_decref(j);
}

/* bad - decode of good_body() with one change must fail. */
static void
bad(const char *key, json_t *value)
{
	struct ms_inbound in;
	char err[128] = "";
	json_t *j = good_body();

	if (value == NULL)
		json_object_del(j, key);
	else
		json_object_set_new(j, key, value);
	assert_int_equal(ms_inbound_decode(j, &in, err, sizeof(err)), -1);
	assert_true(err[0] != '\0');
	json_decref(j);
}

static void
test_malformed(void **state)
{
	json_t *many = json_array();
	char big[MS_ADDR_MAX + 2];
	int i;

	(void)state;
	bad(F_MS_MAIL_FROM, NULL);
	bad(F_MS_RAW, NULL);
	bad(F_MS_RCPTS, NULL);
	bad(F_MS_RCPTS, json_array());
	bad(F_MS_RCPTS, json_string("demo@x"));
	bad(F_MS_RCPTS, json_pack("[i]", 5));
	bad(F_MS_RCPTS, json_pack("[s]", ""));
	bad(F_MS_RAW, json_string("not base64!"));
	bad(F_MS_RAW, json_integer(3));
	bad("unknown", json_string("x"));
	for (i = 0; i <= SMTP_MAX_RCPTS; i++)
		json_array_append_new(many, json_string("a@b"));
	bad(F_MS_RCPTS, many);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	bad(F_MS_MAIL_FROM, json_string(big));
	bad(F_MS_RCPTS, json_pack("[s]", big));
}

static void
test_route_names(void **state)
{
	int k;

	(void)state;
	for (k = MS_ROUTE_POST; k <= MS_ROUTE_FORWARD; k++)
		assert_int_equal(ms_route_parse(ms_route_name(
		    (enum ms_route_kind)k)), k);
	assert_int_equal(ms_route_parse("relay"), -1);
	assert_int_equal(ms_route_parse(""), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_null_sender_and_no_cid),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_route_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
