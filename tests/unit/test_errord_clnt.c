/* SPDX-License-Identifier: MIT */
/*
 * test_errord_clnt.c - the errord API's shared encode/decode half: event
 * validation (each kind of bad event is refused with the field named),
 * batch decoding, RFC 3339 times, and tail queries (decode, encode,
 * round trip, matching).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "api_proto.h"
#include "bounds.h"
#include "errord_clnt.h"
#include "log.h"

#define GOOD	"{\"time\":\"2026-12-03T14:00:00.123456Z\",\"daemon\":\"karl\"," \
		"\"pid\":1234,\"level\":\"error\",\"message\":\"boom\"}"

static json_t *
load(const char *text)
{
	json_error_t e;
	json_t	*j = json_loads(text, 0, &e);

	if (j == NULL)
		fail_msg("bad test JSON: %s: %s", text, e.text);
	return j;
}

/* expect_bad - ev must be refused with a reason starting with field. */
static void
expect_bad(json_t *ev, const char *field)
{
	char	 err[256] = "";

	assert_int_equal(errord_event_check(ev, err, sizeof(err)), -1);
	if (strncmp(err, field, strlen(field)) != 0)
		fail_msg("reason \"%s\" does not name \"%s\"", err, field);
	json_decref(ev);
}

/* good_with - the good event with key set to v (stolen). */
static json_t *
good_with(const char *key, json_t *v)
{
	json_t	*ev = load(GOOD);

	json_object_set_new(ev, key, v);
	return ev;
}

/* good_without - the good event without key. */
static json_t *
good_without(const char *key)
{
	json_t	*ev = load(GOOD);

	json_object_del(ev, key);
	return ev;
}

static void
test_good_events(void **state)
{
	char	 err[256];
	json_t	*ev;

	(void)state;
	ev = load(GOOD);
	assert_int_equal(errord_event_check(ev, err, sizeof(err)), 0);
	assert_int_equal(errord_event_level(ev), LOG_LVL_ERROR);
	json_decref(ev);
	ev = load("{\"time\":\"2026-12-03T14:00:00+01:00\",\"daemon\":\"web-2_x\","
	    "\"pid\":1,\"level\":\"crit\",\"message\":\"\",\"cid\":\"abc-123\","
	    "\"fields\":{\"rcpt\":\"a@b\",\"n\":3,\"ok\":true,\"x\":null},"
	    "\"backtrace\":\"#0 main\\n#1 start\\n\",\"version\":\"0.1.0\","
	    "\"host\":\"mx1.example.org\"}");
	assert_int_equal(errord_event_check(ev, err, sizeof(err)), 0);
	json_decref(ev);
	/* every level */
	ev = good_with(F_EV_LEVEL, json_string("debug"));
	assert_int_equal(errord_event_check(ev, err, sizeof(err)), 0);
	json_decref(ev);
	ev = good_with(F_EV_LEVEL, json_string("warn"));
	assert_int_equal(errord_event_check(ev, err, sizeof(err)), 0);
	assert_int_equal(errord_event_level(ev), LOG_LVL_WARN);
	json_decref(ev);
	/* what log_make_event builds must pass */
	log_init("unit", 1);
	ev = log_make_event(LOG_LVL_INFO, "cid1", json_pack("{si}", "k", 1),
	    "made by log.c");
	assert_int_equal(errord_event_check(ev, err, sizeof(err)), 0);
	json_decref(ev);
}

static void
test_missing_fields(void **state)
{
	(void)state;
	expect_bad(good_without(F_EV_TIME), "time");
	expect_bad(good_without(F_EV_DAEMON), "daemon");
	expect_bad(good_without(F_EV_PID), "pid");
	expect_bad(good_without(F_EV_LEVEL), "level");
	expect_bad(good_without(F_EV_MESSAGE), "message");
}

static void
test_wrong_types(void **state)
{
	(void)state;
	expect_bad(json_array(), "event");
	expect_bad(json_string("x"), "event");
	expect_bad(good_with(F_EV_TIME, json_integer(1)), "time");
	expect_bad(good_with(F_EV_DAEMON, json_null()), "daemon");
	expect_bad(good_with(F_EV_PID, json_string("12")), "pid");
	expect_bad(good_with(F_EV_PID, json_real(1.5)), "pid");
	expect_bad(good_with(F_EV_PID, json_integer(-1)), "pid");
	expect_bad(good_with(F_EV_PID, json_integer(1LL << 40)), "pid");
	expect_bad(good_with(F_EV_LEVEL, json_integer(3)), "level");
	expect_bad(good_with(F_EV_MESSAGE, json_object()), "message");
	expect_bad(good_with(F_EV_CID, json_integer(1)), "cid");
	expect_bad(good_with(F_EV_FIELDS, json_string("a=b")), "fields");
	expect_bad(good_with(F_EV_BACKTRACE, json_array()), "backtrace");
	expect_bad(good_with(F_EV_VERSION, json_true()), "version");
	expect_bad(good_with(F_EV_HOST, json_integer(0)), "host");
}

static void
test_bad_values(void **state)
{
	char	 big[ERRORD_NAME_MAX + 2];
	json_t	*fields;
	char	*huge;
	int	 i;

	(void)state;
	expect_bad(good_with("seq", json_integer(1)), "seq");
	expect_bad(good_with("Message", json_string("x")), "Message");
	expect_bad(good_with(F_EV_DAEMON, json_string("Karl")), "daemon");
	expect_bad(good_with(F_EV_DAEMON, json_string("")), "daemon");
	expect_bad(good_with(F_EV_DAEMON, json_string("a b")), "daemon");
	expect_bad(good_with(F_EV_DAEMON, json_string("../x")), "daemon");
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	expect_bad(good_with(F_EV_DAEMON, json_string(big)), "daemon");
	expect_bad(good_with(F_EV_LEVEL, json_string("warning")), "level");
	expect_bad(good_with(F_EV_LEVEL, json_string("ERROR")), "level");
	expect_bad(good_with(F_EV_TIME, json_string("yesterday")), "time");
	expect_bad(good_with(F_EV_TIME, json_string("2026-12-03 14:00")),
	    "time");
	expect_bad(good_with(F_EV_TIME, json_string("2026-13-03T14:00:00Z")),
	    "time");
	expect_bad(good_with(F_EV_TIME, json_string("2026-02-30T14:00:00Z")),
	    "time");
	expect_bad(good_with(F_EV_TIME, json_string("2026-12-03T24:00:00Z")),
	    "time");
	expect_bad(good_with(F_EV_TIME, json_string("2026-12-03T14:00:00")),
	    "time");
	expect_bad(good_with(F_EV_TIME, json_string("2026-12-03T14:00:00.Z")),
	    "time");
	expect_bad(good_with(F_EV_TIME,
	    json_string("2026-12-03T14:00:00+0100")), "time");
	expect_bad(good_with(F_EV_TIME, json_string("2026-12-03T14:00:00Zjunk")),
	    "time");
	expect_bad(good_with(F_EV_CID, json_string("a\nb")), "cid");
	expect_bad(good_with(F_EV_MESSAGE, json_stringn("a\0b", 3)),
	    "message");
	fields = json_object();
	for (i = 0; i <= ERRORD_MAX_FIELDS; i++) {
		char k[16];

		snprintf(k, sizeof(k), "k%d", i);
		json_object_set_new(fields, k, json_integer(i));
	}
	expect_bad(good_with(F_EV_FIELDS, fields), "fields");
	expect_bad(good_with(F_EV_FIELDS, json_pack("{si}", "", 1)),
	    "fields");
	huge = malloc(ERRORD_MAX_EVENT + 1);
	memset(huge, 'x', ERRORD_MAX_EVENT);
	huge[ERRORD_MAX_EVENT] = '\0';
	expect_bad(good_with(F_EV_BACKTRACE, json_string(huge)), "event");
	free(huge);
}

static void
test_batches(void **state)
{
	char	 err[256];
	json_t	*body, *evs, *arr;
	int	 i;

	(void)state;
	/* one event */
	body = load(GOOD);
	assert_int_equal(errord_batch_parse(body, &evs, err, sizeof(err)), 0);
	assert_int_equal(json_array_size(evs), 1);
	json_decref(evs);
	json_decref(body);
	/* a batch */
	body = load("{\"events\":[" GOOD "," GOOD "," GOOD "]}");
	assert_int_equal(errord_batch_parse(body, &evs, err, sizeof(err)), 0);
	assert_int_equal(json_array_size(evs), 3);
	json_decref(evs);
	json_decref(body);
	/* one bad event refuses the batch, naming index and field */
	body = load("{\"events\":[" GOOD "," GOOD ",{\"time\":\"x\","
	    "\"daemon\":\"karl\",\"pid\":1,\"level\":\"info\","
	    "\"message\":\"m\"}]}");
	assert_int_equal(errord_batch_parse(body, &evs, err, sizeof(err)), -1);
	assert_null(evs);
	assert_string_equal(err, "events[2].time: not an RFC 3339 time");
	json_decref(body);
	body = load("{\"events\":[]}");
	assert_int_equal(errord_batch_parse(body, &evs, err, sizeof(err)), -1);
	json_decref(body);
	body = load("{\"events\":{}}");
	assert_int_equal(errord_batch_parse(body, &evs, err, sizeof(err)), -1);
	json_decref(body);
	body = load("{\"events\":[" GOOD "],\"extra\":1}");
	assert_int_equal(errord_batch_parse(body, &evs, err, sizeof(err)), -1);
	json_decref(body);
	body = load("[" GOOD "]");
	assert_int_equal(errord_batch_parse(body, &evs, err, sizeof(err)), -1);
	json_decref(body);
	/* the size bound */
	arr = json_array();
	for (i = 0; i <= ERRORD_MAX_BATCH; i++)
		json_array_append_new(arr, load(GOOD));
	body = json_pack("{so}", "events", arr);
	assert_int_equal(errord_batch_parse(body, &evs, err, sizeof(err)), -1);
	json_array_remove(arr, 0);
	assert_int_equal(errord_batch_parse(body, &evs, err, sizeof(err)), 0);
	assert_int_equal(json_array_size(evs), ERRORD_MAX_BATCH);
	json_decref(evs);
	json_decref(body);
}

static void
test_times(void **state)
{
	int64_t	 us;
	char	 buf[64];

	(void)state;
	assert_int_equal(errord_time_parse("1970-01-01T00:00:00Z", &us), 0);
	assert_int_equal(us, 0);
	assert_int_equal(errord_time_parse("2026-12-03T14:00:00Z", &us), 0);
	assert_int_equal(us, 1796306400LL * 1000000);
	assert_int_equal(errord_time_parse("2026-12-03T15:30:00.5+01:30",
	    &us), 0);
	assert_int_equal(us, 1796306400LL * 1000000 + 500000);
	assert_int_equal(errord_time_parse("2024-02-29T00:00:00z", &us), 0);
	assert_int_equal(errord_time_parse("2023-02-29T00:00:00Z", &us), -1);
	errord_time_format(1796306400LL * 1000000 + 123456, buf, sizeof(buf));
	assert_string_equal(buf, "2026-12-03T14:00:00.123456Z");
	assert_int_equal(errord_since_parse("1796306400", &us), 0);
	assert_int_equal(us, 1796306400LL * 1000000);
	assert_int_equal(errord_since_parse("1796306400.25", &us), 0);
	assert_int_equal(us, 1796306400LL * 1000000 + 250000);
	assert_int_equal(errord_since_parse("-5", &us), -1);
	assert_int_equal(errord_since_parse("12abc", &us), -1);
	assert_int_equal(errord_since_parse("", &us), -1);
}

struct kv {
	const char	*k[8], *v[8];
};

static const char *
kv_get(void *ctx, const char *key)
{
	struct kv *p = ctx;
	int	 i;

	for (i = 0; i < 8 && p->k[i] != NULL; i++)
		if (strcmp(p->k[i], key) == 0)
			return p->v[i];
	return NULL;
}

static int
decode1(const char *k, const char *v, struct errord_tail_query *q)
{
	struct kv p = { { k }, { v } };
	char	 err[256];

	return errord_tail_query_decode(q, kv_get, &p, err, sizeof(err));
}

static void
test_tail_query(void **state)
{
	struct errord_tail_query q, r;
	struct kv p = { { "daemon", "level", "since", "text", "limit",
	    "follow" }, { "karl", "warn", "2026-12-03T14:00:00Z",
	    "a b&c=d", "7", "1" } };
	char	 err[256], *path, *qs;
	json_t	*ev;

	(void)state;
	assert_int_equal(errord_tail_query_decode(&q, kv_get, &p, err,
	    sizeof(err)), 0);
	assert_string_equal(q.daemon, "karl");
	assert_int_equal(q.level, LOG_LVL_WARN);
	assert_int_equal(q.since_us, 1796306400LL * 1000000);
	assert_string_equal(q.text, "a b&c=d");
	assert_int_equal(q.limit, 7);
	assert_int_equal(q.follow, 1);
	/* defaults, and empty values mean no filter */
	assert_int_equal(decode1("daemon", "", &q), 0);
	assert_int_equal(q.limit, ERRORD_TAIL_DEFAULT);
	assert_int_equal(q.daemon[0], '\0');
	assert_int_equal(q.follow, 0);
	/* bad parameters */
	assert_int_equal(decode1("level", "loud", &q), -1);
	assert_int_equal(decode1("daemon", "Karl", &q), -1);
	assert_int_equal(decode1("since", "soon", &q), -1);
	assert_int_equal(decode1("limit", "-1", &q), -1);
	assert_int_equal(decode1("limit", "10001", &q), -1);
	assert_int_equal(decode1("limit", "5x", &q), -1);
	assert_int_equal(decode1("limit", "99999999999999", &q), -1);
	assert_int_equal(decode1("follow", "yes please", &q), -1);
	assert_int_equal(decode1("limit", "10000", &q), 0);
	assert_int_equal(decode1("limit", "0", &q), 0);
	assert_int_equal(decode1("since", "1796306400", &q), 0);

	/* encode -> decode gives the same query */
	assert_int_equal(errord_tail_query_decode(&q, kv_get, &p, err,
	    sizeof(err)), 0);
	path = errord_tail_query_encode(&q);
	assert_true(strncmp(path, API_ERRORD_TAIL "?", 9) == 0);
	assert_non_null(strstr(path, "text=a%20b%26c%3Dd"));
	qs = path + strlen(API_ERRORD_TAIL) + 1;
	{
		/* split the query string by hand (no decoding needed but for
		 * the text, checked above) */
		struct kv d = { { NULL }, { NULL } };
		char	*tok, *eq;
		int	 n = 0;

		while ((tok = strsep(&qs, "&")) != NULL && n < 8) {
			if ((eq = strchr(tok, '=')) == NULL)
				continue;
			*eq = '\0';
			d.k[n] = tok;
			d.v[n++] = strcmp(tok, "text") == 0 ? "a b&c=d" :
			    eq + 1;
		}
		/* since is RFC 3339, URL-encoded: %3A for ':' */
		for (n = 0; n < 8 && d.k[n] != NULL; n++)
			if (strcmp(d.k[n], "since") == 0)
				d.v[n] = "2026-12-03T14:00:00.000000Z";
		assert_int_equal(errord_tail_query_decode(&r, kv_get, &d, err,
		    sizeof(err)), 0);
	}
	assert_memory_equal(&q, &r, sizeof(q));
	free(path);

	/* matching */
	ev = load(GOOD);	/* karl error "boom" 2026-12-03T14:00:00.123456Z */
	errord_tail_query_init(&q);
	assert_true(errord_tail_match(&q, ev));
	snprintf(q.daemon, sizeof(q.daemon), "web");
	assert_false(errord_tail_match(&q, ev));
	snprintf(q.daemon, sizeof(q.daemon), "karl");
	assert_true(errord_tail_match(&q, ev));
	q.level = LOG_LVL_CRIT;
	assert_false(errord_tail_match(&q, ev));
	q.level = LOG_LVL_ERROR;
	assert_true(errord_tail_match(&q, ev));
	q.since_us = 1796306400LL * 1000000 + 200000;
	assert_false(errord_tail_match(&q, ev));
	q.since_us = 1796306400LL * 1000000;
	assert_true(errord_tail_match(&q, ev));
	snprintf(q.text, sizeof(q.text), "BOO");
	assert_true(errord_tail_match(&q, ev));
	snprintf(q.text, sizeof(q.text), "main");
	assert_false(errord_tail_match(&q, ev));
	json_object_set_new(ev, F_EV_BACKTRACE, json_string("#0 Main()"));
	assert_true(errord_tail_match(&q, ev));
	json_decref(ev);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_events),
		cmocka_unit_test(test_missing_fields),
		cmocka_unit_test(test_wrong_types),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_batches),
		cmocka_unit_test(test_times),
		cmocka_unit_test(test_tail_query),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
