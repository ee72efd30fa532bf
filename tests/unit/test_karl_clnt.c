/* SPDX-License-Identifier: MIT */
/*
 * test_karl_clnt.c - karl's client module (karl_clnt.c): what a caller
 * encodes, karl decodes to the same job, bytes and receivers (batch 0 and
 * later batches); every strictness rule and bound of the decoder refuses
 * with a reason; and karl_clnt_send maps karl's answers (202, 400, 409,
 * 413, 5xx, no answer) to KARL_OK / KARL_REFUSED / KARL_TEMPFAIL, against
 * a small httpd standing in for karl (and against the real one when the
 * end-to-end tests say where it is).
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
#include "httpd.h"
#include "karl_clnt.h"
#include "log.h"

#define SECRET		"karl-clnt-test-secret"

static const char raw[] = "Subject: caf\xe9\r\n\r\nbody \x00 8-bit \xff\r\n";

static const struct karl_job job0 = {
	.job = "post:demo:42",
	.kind = "post",
	.message = raw,
	.message_len = sizeof(raw) - 1,
	.footer_text = "-- \nLeave: {{unsubscribe_url}}",
	.footer_html = "<p>{{group}}</p>",
	.sender_local = "demo+bounces",
	.sender_domain = "lists.example",
	.sign_domain = "lists.example",
};

/* good_body - a valid batch 0 of two receivers (caller decrefs). */
static json_t *
good_body(void)
{
	json_t *data = json_pack("{s:s, s:s}", "name", "Alice",
	    "unsubscribe_url", "https://x/u/1");
	struct karl_receiver r[2] = {
		{ "alice@example.org", "17:alice", data },
		{ "bob@example.net", "", NULL },
	};
	json_t *j = karl_send_encode(&job0, 0, 0, r, 2);

	json_decref(data);
	return j;
}

/* later_body - a valid batch 3, last (caller decrefs). */
static json_t *
later_body(void)
{
	struct karl_receiver r[1] = { { "carol@example.com", NULL, NULL } };

	return karl_send_encode(&job0, 3, 1, r, 1);
}

static void
test_ids_and_kinds(void **state)
{
	char id[KARL_JOB_MAX + 2];

	(void)state;
	assert_true(karl_kind_valid("post"));
	assert_true(karl_kind_valid("reply"));
	assert_false(karl_kind_valid("Post"));
	assert_false(karl_kind_valid(""));
	assert_false(karl_kind_valid(NULL));
	assert_true(karl_job_id_valid("a"));
	assert_true(karl_job_id_valid("post:demo-1.2_x"));
	assert_false(karl_job_id_valid(""));
	assert_false(karl_job_id_valid(NULL));
	assert_false(karl_job_id_valid("a/b"));
	assert_false(karl_job_id_valid("a b"));
	assert_false(karl_job_id_valid("caf\xc3\xa9"));
	memset(id, 'j', KARL_JOB_MAX);
	id[KARL_JOB_MAX] = '\0';
	assert_true(karl_job_id_valid(id));
	id[KARL_JOB_MAX] = 'j';
	id[KARL_JOB_MAX + 1] = '\0';
	assert_false(karl_job_id_valid(id));
}

static void
test_roundtrip_batch0(void **state)
{
	struct karl_send s;
	char err[128];
	json_t *j = good_body(), *r;

	(void)state;
	assert_int_equal(karl_send_decode(j, &s, err, sizeof(err)), 0);
	assert_string_equal(s.job, "post:demo:42");
	assert_int_equal(s.batch, 0);
	assert_false(s.last);
	assert_string_equal(s.kind, "post");
	assert_int_equal(s.message_len, sizeof(raw) - 1);
	assert_memory_equal(s.message, raw, sizeof(raw) - 1);
	assert_int_equal(s.message[s.message_len], '\0');
	assert_string_equal(s.footer_text, job0.footer_text);
	assert_string_equal(s.footer_html, job0.footer_html);
	assert_string_equal(s.sender_local, "demo+bounces");
	assert_string_equal(s.sender_domain, "lists.example");
	assert_string_equal(s.sign_domain, "lists.example");
	assert_int_equal(json_array_size(s.receivers), 2);
	r = json_array_get(s.receivers, 0);
	assert_string_equal(json_string_value(json_object_get(r, F_KARL_TO)),
	    "alice@example.org");
	assert_string_equal(json_string_value(json_object_get(r,
	    F_KARL_VERP)), "17:alice");
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    r, F_KARL_DATA), "name")), "Alice");
	r = json_array_get(s.receivers, 1);
	assert_string_equal(json_string_value(json_object_get(r,
	    F_KARL_VERP)), "");
	assert_null(json_object_get(r, F_KARL_DATA));
	karl_send_free(&s);
	karl_send_free(&s);	/* idempotent on a freed struct */
	json_decref(j);
}

static void
test_roundtrip_no_footer(void **state)
{
	struct karl_job jb = job0;
	struct karl_receiver r = { "a@b.c", NULL, NULL };
	struct karl_send s;
	char err[128];
	json_t *j;

	(void)state;
	jb.footer_text = jb.footer_html = NULL;
	jb.message = "x";
	jb.message_len = 1;
	j = karl_send_encode(&jb, 0, 1, &r, 1);
	assert_null(json_object_get(j, F_KARL_FOOTER));
	assert_int_equal(karl_send_decode(j, &s, err, sizeof(err)), 0);
	assert_true(s.last);
	assert_null(s.footer_text);
	assert_null(s.footer_html);
	karl_send_free(&s);
	json_decref(j);
}

static void
test_roundtrip_later(void **state)
{
	struct karl_send s;
	char err[128];
	json_t *j = later_body();

	(void)state;
	assert_null(json_object_get(j, F_KARL_MESSAGE));
	assert_null(json_object_get(j, F_KARL_SENDER));
	assert_int_equal(karl_send_decode(j, &s, err, sizeof(err)), 0);
	assert_int_equal(s.batch, 3);
	assert_true(s.last);
	assert_null(s.message);
	assert_null(s.sender_local);
	assert_null(s.sign_domain);
	assert_int_equal(json_array_size(s.receivers), 1);
	karl_send_free(&s);
	/* kind is optional after batch 0 */
	json_object_del(j, F_KARL_KIND);
	assert_int_equal(karl_send_decode(j, &s, err, sizeof(err)), 0);
	assert_null(s.kind);
	karl_send_free(&s);
	json_decref(j);
}

/* refuse - decode must fail with a reason and leave nothing allocated. */
static void
refuse(json_t *j)
{
	struct karl_send s;
	char err[256] = "";

	assert_int_equal(karl_send_decode(j, &s, err, sizeof(err)), -1);
	assert_true(err[0] != '\0');
	assert_null(s.job);
	assert_null(s.message);
	assert_null(s.receivers);
	json_decref(j);
}

/* bad - batch 0 with key set to value (NULL: removed) must fail. */
static void
bad(const char *key, json_t *value)
{
	json_t *j = good_body();

	if (value == NULL)
		json_object_del(j, key);
	else
		json_object_set_new(j, key, value);
	refuse(j);
}

/* bad_later - batch 3 with key set to value (NULL: removed). */
static void
bad_later(const char *key, json_t *value)
{
	json_t *j = later_body();

	if (value == NULL)
		json_object_del(j, key);
	else
		json_object_set_new(j, key, value);
	refuse(j);
}

/* bad_rcpt - batch 0 whose first receiver has key set to value. */
static void
bad_rcpt(const char *key, json_t *value)
{
	json_t *j = good_body();
	json_t *r = json_array_get(json_object_get(j, F_KARL_RECEIVERS), 0);

	if (value == NULL)
		json_object_del(r, key);
	else
		json_object_set_new(r, key, value);
	refuse(j);
}

/* long_string - n copies of c (a new reference). */
static json_t *
long_string(size_t n, char c)
{
	char *s = malloc(n + 1);
	json_t *v;

	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	v = json_string(s);
	free(s);
	return v;
}

static void
test_refuse_fields(void **state)
{
	(void)state;
	refuse(json_array());
	refuse(json_object());
	bad("unknown", json_string("x"));
	bad(F_KARL_JOB, NULL);
	bad(F_KARL_JOB, json_string(""));
	bad(F_KARL_JOB, json_string("a/b"));
	bad(F_KARL_JOB, json_integer(7));
	bad(F_KARL_JOB, json_stringn("a\0b", 3));
	bad(F_KARL_JOB, long_string(KARL_JOB_MAX + 1, 'j'));
	bad(F_KARL_BATCH, NULL);
	bad(F_KARL_BATCH, json_integer(-1));
	bad(F_KARL_BATCH, json_string("0"));
	bad(F_KARL_BATCH, json_real(0.0));
	bad(F_KARL_LAST, NULL);
	bad(F_KARL_LAST, json_integer(1));
	bad(F_KARL_KIND, NULL);
	bad(F_KARL_KIND, json_string("spam"));
	bad(F_KARL_KIND, json_integer(1));
	bad(F_KARL_MESSAGE, NULL);
	bad(F_KARL_MESSAGE, json_string(""));
	bad(F_KARL_MESSAGE, json_string("not base64!"));
	bad(F_KARL_MESSAGE, json_string("YWJj="));	/* padded */
	bad(F_KARL_MESSAGE, json_integer(1));
	bad(F_KARL_SENDER, NULL);
	bad(F_KARL_SENDER, json_string("demo@x"));
	bad(F_KARL_SENDER, json_pack("{s:s}", F_KARL_LOCAL, "demo"));
	bad(F_KARL_SENDER, json_pack("{s:s, s:s, s:s}", F_KARL_LOCAL, "d",
	    F_KARL_DOMAIN, "x", "extra", "y"));
	bad(F_KARL_SENDER, json_pack("{s:s, s:s}", F_KARL_LOCAL, "",
	    F_KARL_DOMAIN, "x"));
	bad(F_KARL_SENDER, json_pack("{s:s, s:s}", F_KARL_LOCAL, "a@b",
	    F_KARL_DOMAIN, "x"));
	bad(F_KARL_SENDER, json_pack("{s:s, s:s}", F_KARL_LOCAL, "a b",
	    F_KARL_DOMAIN, "x"));
	bad(F_KARL_SENDER, json_pack("{s:s, s:s}", F_KARL_LOCAL, "a",
	    F_KARL_DOMAIN, "x\r\nRCPT"));
	bad(F_KARL_SENDER, json_pack("{s:o, s:s}", F_KARL_LOCAL,
	    long_string(SMTP_LOCAL_MAX + 1, 'l'), F_KARL_DOMAIN, "x"));
	bad(F_KARL_SENDER, json_pack("{s:s, s:o}", F_KARL_LOCAL, "a",
	    F_KARL_DOMAIN, long_string(SMTP_DOMAIN_MAX + 1, 'd')));
	bad(F_KARL_SIGN_DOMAIN, NULL);
	bad(F_KARL_SIGN_DOMAIN, json_string(""));
	bad(F_KARL_SIGN_DOMAIN, json_string("a b"));
	bad(F_KARL_SIGN_DOMAIN, json_null());
	bad(F_KARL_FOOTER, json_string("text"));
	bad(F_KARL_FOOTER, json_pack("{s:i}", F_KARL_TEXT, 1));
	bad(F_KARL_FOOTER, json_pack("{s:s}", "css", "x"));
	bad(F_KARL_FOOTER, json_pack("{s:o}", F_KARL_HTML,
	    long_string(KARL_FOOTER_MAX + 1, 'f')));
	bad(F_KARL_RECEIVERS, NULL);
	bad(F_KARL_RECEIVERS, json_array());
	bad(F_KARL_RECEIVERS, json_object());
	bad(F_KARL_RECEIVERS, json_pack("[s]", "a@b.c"));
}

static void
test_refuse_later(void **state)
{
	(void)state;
	bad_later(F_KARL_MESSAGE, json_string("eA"));
	bad_later(F_KARL_SENDER, json_pack("{s:s, s:s}", F_KARL_LOCAL, "a",
	    F_KARL_DOMAIN, "x"));
	bad_later(F_KARL_SIGN_DOMAIN, json_string("x"));
	bad_later(F_KARL_FOOTER, json_pack("{s:s}", F_KARL_TEXT, "x"));
	bad_later(F_KARL_KIND, json_string("bulk"));
	bad_later(F_KARL_BATCH, json_integer(KARL_BATCH_NO_MAX + 1LL));
	bad_later(F_KARL_RECEIVERS, json_array());
}

static void
test_refuse_receivers(void **state)
{
	json_t *data;
	char key[KARL_KEY_MAX + 2];
	int i;

	(void)state;
	bad_rcpt(F_KARL_TO, NULL);
	bad_rcpt(F_KARL_TO, json_integer(1));
	bad_rcpt(F_KARL_TO, json_string(""));
	bad_rcpt(F_KARL_TO, json_string("alice"));
	bad_rcpt(F_KARL_TO, json_string("@example.org"));
	bad_rcpt(F_KARL_TO, json_string("alice@"));
	bad_rcpt(F_KARL_TO, json_string("a@b@c"));
	bad_rcpt(F_KARL_TO, json_string("a b@c"));
	bad_rcpt(F_KARL_TO, json_string("a@c>\r\nDATA"));
	bad_rcpt(F_KARL_TO, json_stringn("a@c\0d", 5));
	bad_rcpt(F_KARL_TO, long_string(SMTP_ADDR_MAX + 1, '@'));
	bad_rcpt("cc", json_string("a@b"));
	bad_rcpt(F_KARL_VERP, json_integer(1));
	bad_rcpt(F_KARL_VERP, long_string(KARL_VERP_MAX + 1, 'v'));
	bad_rcpt(F_KARL_DATA, json_string("x"));
	bad_rcpt(F_KARL_DATA, json_pack("{s:i}", "name", 1));
	bad_rcpt(F_KARL_DATA, json_pack("{s:n}", "name"));
	bad_rcpt(F_KARL_DATA, json_pack("{s:{}}", "name"));
	bad_rcpt(F_KARL_DATA, json_pack("{s:o}", "name",
	    long_string(KARL_VALUE_MAX + 1, 'x')));
	bad_rcpt(F_KARL_DATA, json_pack("{s:s}", "", "x"));
	bad_rcpt(F_KARL_DATA, json_pack("{s:s}", "{{x}}", "x"));
	data = json_object();
	json_object_setn_new(data, "na\0me", 5, json_string("x"));
	bad_rcpt(F_KARL_DATA, data);
	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	bad_rcpt(F_KARL_DATA, json_pack("{s:s}", key, "x"));
	data = json_object();
	for (i = 0; i <= KARL_DATA_MAX; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		json_object_set_new(data, key, json_string("v"));
	}
	bad_rcpt(F_KARL_DATA, data);
	/* an element that is not an object */
	bad(F_KARL_RECEIVERS, json_pack("[{s:s}, i]", F_KARL_TO, "a@b", 3));
}

/* test_bounds - the largest of everything is taken, one more is not. */
static void
test_bounds(void **state)
{
	struct karl_receiver *r = calloc(KARL_BATCH_MAX + 1, sizeof(*r));
	json_t *data = json_object(), *j;
	struct karl_send s;
	char err[128], key[KARL_KEY_MAX + 1], addr[SMTP_ADDR_MAX + 1];
	char verp[KARL_VERP_MAX + 1];
	char *value = malloc(KARL_VALUE_MAX + 1);
	int i;

	(void)state;
	assert_non_null(r);
	assert_non_null(value);
	memset(value, 'v', KARL_VALUE_MAX);
	value[KARL_VALUE_MAX] = '\0';
	memset(key, 'k', KARL_KEY_MAX);
	key[KARL_KEY_MAX] = '\0';
	for (i = 0; i < KARL_DATA_MAX; i++) {
		key[0] = (char)('a' + i);
		json_object_set_new(data, key, json_string(value));
	}
	memset(addr, 'a', SMTP_ADDR_MAX);
	addr[SMTP_LOCAL_MAX] = '@';
	addr[SMTP_ADDR_MAX] = '\0';
	memset(verp, 'v', KARL_VERP_MAX);
	verp[KARL_VERP_MAX] = '\0';
	for (i = 0; i <= KARL_BATCH_MAX; i++) {
		r[i].to = addr;
		r[i].verp = verp;
		r[i].data = data;
	}
	j = karl_send_encode(&job0, KARL_BATCH_NO_MAX, 1, r, KARL_BATCH_MAX);
	json_object_del(j, F_KARL_KIND);
	assert_int_equal(karl_send_decode(j, &s, err, sizeof(err)), 0);
	assert_int_equal(json_array_size(s.receivers), KARL_BATCH_MAX);
	karl_send_free(&s);
	json_decref(j);
	j = karl_send_encode(&job0, 1, 1, r, KARL_BATCH_MAX + 1);
	assert_int_equal(karl_send_decode(j, &s, err, sizeof(err)), -1);
	json_decref(j);
	json_decref(data);
	free(value);
	free(r);
}

/*
 * A stand-in for karl: the status it answers is chosen by the job id
 * ("s202", "s409", ...); "slow" never answers in time.
 */
static struct httpd *server;
static char base_url[64];

static int
fake_send(struct httpd_req *req)
{
	const char *id = json_string_value(json_object_get(httpd_req_json(req),
	    F_KARL_JOB));
	unsigned status;

	if (id == NULL || sscanf(id, "s%u", &status) != 1)
		return httpd_reply_error(req, 400, "no status in %s",
		    id ? id : "?");
	if (status == 202)
		return httpd_reply_json(req, 202, json_pack("{s:s, s:b}",
		    F_KARL_JOB, id, F_KARL_DUPLICATE, 0));
	return httpd_reply_error(req, status, "status %u as asked", status);
}

static int
group_setup(void **state)
{
	static const struct httpd_route routes[] = {
		{ "POST", API_KARL_SEND, fake_send, HTTPD_JSON, 0 },
		HTTPD_ROUTE_END
	};
	struct httpd_config hc = {
		.name = "karl",
		.host = "127.0.0.1",
		.routes = routes,
		.secret = SECRET,
		.threads = 1,
	};

	(void)state;
	log_init("test_karl_clnt", 1);
	log_set_level(LOG_LVL_CRIT);
	if ((server = httpd_start(&hc)) == NULL)
		return -1;
	snprintf(base_url, sizeof(base_url), "http://127.0.0.1:%d",
	    httpd_port(server));
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	httpd_stop(server);
	return 0;
}

/* send_as - karl_clnt_send of a one-receiver batch 0 of job id. */
static int
send_as(struct karl_clnt *c, const char *id, char *why, size_t whylen)
{
	struct karl_job jb = job0;
	struct karl_receiver r = { "a@b.c", "", NULL };

	jb.job = id;
	return karl_clnt_send(c, &jb, 0, 1, &r, 1, why, whylen);
}

static void
test_clnt_statuses(void **state)
{
	struct karl_clnt *c = karl_clnt_new(base_url, SECRET, 5000);
	char why[128];

	(void)state;
	assert_int_equal(send_as(c, "s202", why, sizeof(why)), KARL_OK);
	assert_string_equal(why, "");
	assert_int_equal(send_as(c, "s409", why, sizeof(why)), KARL_REFUSED);
	assert_string_equal(why, "status 409 as asked");
	assert_int_equal(send_as(c, "s400", why, sizeof(why)), KARL_REFUSED);
	assert_int_equal(send_as(c, "s413", why, sizeof(why)), KARL_REFUSED);
	assert_int_equal(send_as(c, "s429", why, sizeof(why)), KARL_TEMPFAIL);
	assert_int_equal(send_as(c, "s500", why, sizeof(why)), KARL_TEMPFAIL);
	assert_non_null(strstr(why, "500"));
	assert_int_equal(send_as(c, "s503", why, sizeof(why)), KARL_TEMPFAIL);
	assert_int_equal(send_as(c, "s202", NULL, 0), KARL_OK);
	c = karl_clnt_free(c);
	assert_null(c);

	/* the wrong secret is refused for good */
	c = karl_clnt_new(base_url, "wrong", 5000);
	assert_int_equal(send_as(c, "s202", why, sizeof(why)), KARL_REFUSED);
	karl_clnt_free(c);
}

static void
test_clnt_unreachable(void **state)
{
	/* port 1 on loopback: nobody listens */
	struct karl_clnt *c = karl_clnt_new("http://127.0.0.1:1", SECRET, 2000);
	char why[128];

	(void)state;
	assert_int_equal(send_as(c, "s202", why, sizeof(why)), KARL_TEMPFAIL);
	assert_true(why[0] != '\0');
	karl_clnt_free(c);
	assert_null(karl_clnt_free(NULL));
}

/*
 * test_clnt_real_karl - with KARL_TEST_URL and KARL_TEST_SECRET set (the
 * end-to-end test test_karl_intake.py does), the same calls against the
 * real karl: a job of two batches, a retry, a gap and a batch after the
 * last.  Skipped otherwise.
 */
static void
test_clnt_real_karl(void **state)
{
	const char *url = getenv("KARL_TEST_URL");
	const char *secret = getenv("KARL_TEST_SECRET");
	const char *id = getenv("KARL_TEST_JOB");
	struct karl_receiver r[2] = {
		{ "alice@example.org", "1", NULL },
		{ "bob@example.org", "2", NULL },
	};
	struct karl_job jb = job0;
	struct karl_clnt *c;
	char why[256];

	(void)state;
	if (url == NULL || secret == NULL || id == NULL)
		skip();
	jb.job = id;
	c = karl_clnt_new(url, secret, 10000);
	assert_int_equal(karl_clnt_send(c, &jb, 0, 0, r, 2, why, sizeof(why)),
	    KARL_OK);
	assert_int_equal(karl_clnt_send(c, &jb, 0, 0, r, 2, why, sizeof(why)),
	    KARL_OK);
	assert_int_equal(karl_clnt_send(c, &jb, 2, 0, r, 1, why, sizeof(why)),
	    KARL_REFUSED);
	assert_non_null(strstr(why, "before batch 1"));
	assert_int_equal(karl_clnt_send(c, &jb, 1, 1, r + 1, 1, why,
	    sizeof(why)), KARL_OK);
	assert_int_equal(karl_clnt_send(c, &jb, 2, 1, r, 1, why, sizeof(why)),
	    KARL_REFUSED);
	assert_non_null(strstr(why, "ended"));
	karl_clnt_free(c);
}

int
main(void)
{
	const struct CMUnitTest codec[] = {
		cmocka_unit_test(test_ids_and_kinds),
		cmocka_unit_test(test_roundtrip_batch0),
		cmocka_unit_test(test_roundtrip_no_footer),
		cmocka_unit_test(test_roundtrip_later),
		cmocka_unit_test(test_refuse_fields),
		cmocka_unit_test(test_refuse_later),
		cmocka_unit_test(test_refuse_receivers),
		cmocka_unit_test(test_bounds),
	};
	const struct CMUnitTest clnt[] = {
		cmocka_unit_test(test_clnt_statuses),
		cmocka_unit_test(test_clnt_unreachable),
		cmocka_unit_test(test_clnt_real_karl),
	};
	int rc;

	rc = cmocka_run_group_tests_name("codec", codec, NULL, NULL);
	rc += cmocka_run_group_tests_name("client", clnt, group_setup,
	    group_teardown);
	return rc;
}
