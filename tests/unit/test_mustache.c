/* SPDX-License-Identifier: MIT */
/*
 * test_mustache.c - unit tests of the Mustache templates (mustache.c).
 *
 * Runs every case of the official spec files (comments, delimiters,
 * interpolation, inverted, partials, sections and the optional
 * ~dynamic-names) from MUSTACHE_SPEC_DIR, default
 * ../shared/conformance/mustache-spec from the repository root, and fails
 * if they are missing; ~inheritance is run for information only (not
 * implemented), ~lambdas not at all (JSON data has none).  Also: escaping
 * and MUSTACHE_NOESCAPE, number formatting, truthiness, the template,
 * depth and output bounds, syntax errors with their lines, one template
 * rendered by four threads at once, and a render speed figure (printed,
 * not asserted).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "mustache.h"
#include "strbuf.h"
#include "xalloc.h"

#define SPEC_DIR_DEFAULT	"../shared/conformance/mustache-spec"
#define SPEC_DIR_MACHINE	"/work/shared/conformance/mustache-spec"

/* run_spec_file - every case of one spec file; returns failures, counts
 * passes in *pass and cases in *total; -1 if the file cannot be read. */
static int
run_spec_file(const char *dir, const char *file, int *pass, int *total,
    int verbose)
{
	char path[1024], err[256];
	json_error_t jerr;
	json_t *root, *tests, *tc;
	struct strbuf *out;
	struct mustache *m;
	const char *tmpl, *expected, *name;
	size_t i;
	int fail = 0;

	assert_true(snprintf(path, sizeof(path), "%s/%s", dir, file) <
	    (int)sizeof(path));
	root = json_load_file(path, 0, &jerr);
	if (root == NULL) {
		fprintf(stderr, "mustache spec: cannot read %s: %s\n", path,
		    jerr.text);
		return -1;
	}
	tests = json_object_get(root, "tests");
	*pass = *total = 0;
	out = strbuf_new(256);
	json_array_foreach(tests, i, tc) {
		name = json_string_value(json_object_get(tc, "name"));
		tmpl = json_string_value(json_object_get(tc, "template"));
		expected = json_string_value(json_object_get(tc, "expected"));
		if (tmpl == NULL || expected == NULL)
			continue;
		(*total)++;
		strbuf_reset(out);
		err[0] = '\0';
		m = mustache_compile(tmpl, strlen(tmpl),
		    json_object_get(tc, "partials"), 0, err, sizeof(err));
		if (m != NULL && mustache_render(m, json_object_get(tc, "data"),
		    out, err, sizeof(err)) == 0 &&
		    strcmp(strbuf_str(out), expected) == 0) {
			(*pass)++;
		} else {
			fail++;
			if (verbose)
				fprintf(stderr, "FAIL %s: \"%s\"%s%s\n"
				    "  expected: [%s]\n  got:      [%s]\n",
				    file, name, err[0] ? ": " : "", err,
				    expected, m ? strbuf_str(out) : "");
		}
		mustache_free(m);
	}
	strbuf_free(out);
	json_decref(root);
	return fail;
}

/* spec_dir - MUSTACHE_SPEC_DIR, else the suite beside the repository,
 * else where this machine keeps it (a CI clone may live elsewhere). */
static const char *
spec_dir(void)
{
	const char *d = getenv("MUSTACHE_SPEC_DIR");
	struct stat st;

	if (d != NULL && *d != '\0')
		return d;
	if (stat(SPEC_DIR_DEFAULT, &st) == 0 && S_ISDIR(st.st_mode))
		return SPEC_DIR_DEFAULT;
	return SPEC_DIR_MACHINE;
}

static void
test_spec_core(void **state)
{
	static const char *files[] = {
		"comments.json", "delimiters.json", "interpolation.json",
		"inverted.json", "partials.json", "sections.json",
		"~dynamic-names.json",
	};
	size_t i;
	int pass, total, fail, allfail = 0;

	(void)state;
	for (i = 0; i < NELEM(files); i++) {
		fail = run_spec_file(spec_dir(), files[i], &pass, &total, 1);
		if (fail == -1)
			fail_msg("mustache spec directory %s is missing or "
			    "unreadable (set MUSTACHE_SPEC_DIR)", spec_dir());
		fprintf(stderr, "mustache spec %-20s %d/%d passed\n",
		    files[i], pass, total);
		if (total == 0)
			fail_msg("mustache spec %s has no cases", files[i]);
		allfail += fail;
	}
	assert_int_equal(allfail, 0);
}

/* template inheritance is not implemented: counted, never asserted */
static void
test_spec_optional(void **state)
{
	static const char *files[] = {
		"~inheritance.json",
	};
	size_t i;
	int pass, total;

	(void)state;
	for (i = 0; i < NELEM(files); i++)
		if (run_spec_file(spec_dir(), files[i], &pass, &total,
		    0) >= 0)
			fprintf(stderr, "mustache spec %-20s %d/%d passed "
			    "(optional, not implemented)\n", files[i], pass,
			    total);
}

/* render - compile and render; returns allocated output or NULL, err set */
static char *
render(const char *tmpl, const char *data, const json_t *partials,
    int flags, char *err, size_t errlen)
{
	struct mustache *m;
	struct strbuf *out;
	json_t *d = NULL;
	char *s;
	int rc;

	if (data != NULL) {
		d = json_loads(data, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
		assert_non_null(d);
	}
	m = mustache_compile(tmpl, strlen(tmpl), partials, flags, err,
	    errlen);
	if (m == NULL) {
		json_decref(d);
		return NULL;
	}
	out = strbuf_new(0);
	rc = mustache_render(m, d, out, err, errlen);
	mustache_free(m);
	json_decref(d);
	if (rc == -1) {
		assert_int_equal(strbuf_len(out), 0);
		strbuf_free(out);
		return NULL;
	}
	s = strbuf_detach(out, NULL);
	return s;
}

static void
expect(const char *tmpl, const char *data, int flags, const char *want)
{
	char err[256] = "", *s;

	s = render(tmpl, data, NULL, flags, err, sizeof(err));
	if (s == NULL)
		fail_msg("%s: %s", tmpl, err);
	assert_string_equal(s, want);
	free(s);
}

static void
expect_error(const char *tmpl, const char *data, const json_t *partials,
    const char *want)
{
	char err[256] = "", *s;

	s = render(tmpl, data, partials, 0, err, sizeof(err));
	assert_null(s);
	if (strstr(err, want) == NULL)
		fail_msg("%s: error \"%s\" lacks \"%s\"", tmpl, err, want);
}

static void
test_escaping(void **state)
{
	(void)state;
	expect("{{x}}", "{\"x\":\"a&b<c>d\\\"e'f\"}", 0,
	    "a&amp;b&lt;c&gt;d&quot;e'f");
	expect("{{{x}}}|{{&x}}|{{& x }}", "{\"x\":\"<&>\"}", 0,
	    "<&>|<&>|<&>");
	expect("{{x}}", "{\"x\":\"<&>\"}", MUSTACHE_NOESCAPE, "<&>");
	expect("{{#l}}{{.}}{{/l}}", "{\"l\":[\"<\",\"&\"]}", MUSTACHE_NOESCAPE,
	    "<&");
	expect("{{x}}", "{\"x\":\"nul\\u0000in\"}", 0, "nul");
	expect("a{{! comment }}b", "{}", 0, "ab");
}

static void
test_values(void **state)
{
	(void)state;
	expect("{{a}} {{b}} {{c}} {{d}} {{e}} {{f}} {{g}} {{h}}",
	    "{\"a\":85,\"b\":1.5,\"c\":1.21,\"d\":-0.1,\"e\":2.0,"
	    "\"f\":true,\"g\":false,\"h\":null}", 0,
	    "85 1.5 1.21 -0.1 2 true false ");
	expect("{{a}}|{{b}}|{{o}}", "{\"a\":1e300,\"b\":-9007199254740993,"
	    "\"o\":{\"x\":1}}", 0, "1e+300|-9007199254740993|");
	/* 0 and "" are values, not false; [] is false */
	expect("{{#z}}z{{/z}}{{#s}}s{{/s}}{{#l}}l{{/l}}{{^l}}!l{{/l}}",
	    "{\"z\":0,\"s\":\"\",\"l\":[]}", 0, "zs!l");
	expect("{{#o}}{{x}}{{y}}{{/o}}", "{\"o\":{\"x\":1},\"y\":2}", 0,
	    "12");
	expect("{{a.b.c}}", "{\"a\":{\"b\":{\"c\":\"deep\"}}}", 0, "deep");
	expect("{{x}}", NULL, 0, "");
}

static void
test_appends(void **state)
{
	struct mustache *m;
	struct strbuf *out = strbuf_new(0);
	json_t *d = json_pack("{s:s}", "x", "y");
	char err[128];

	(void)state;
	m = mustache_compile("[{{x}}]", 7, NULL, 0, err, sizeof(err));
	assert_non_null(m);
	strbuf_puts(out, "pre");
	assert_int_equal(mustache_render(m, d, out, err, sizeof(err)), 0);
	assert_int_equal(mustache_render(m, d, out, err, sizeof(err)), 0);
	assert_string_equal(strbuf_str(out), "pre[y][y]");
	assert_null(mustache_free(m));
	assert_null(mustache_free(NULL));
	strbuf_free(out);
	json_decref(d);
}

static void
test_syntax_errors(void **state)
{
	json_t *p = json_pack("{s:s}", "bad", "ok\n{{#x}}\n");

	(void)state;
	expect_error("a\n\n{{#sec}}\nb\n", "{}", NULL,
	    "line 3: unclosed section \"sec\"");
	expect_error("{{#a}}\n{{#b}}\n{{/a}}\n", "{}", NULL,
	    "line 3: \"a\" closes section \"b\" opened on line 2");
	expect_error("x\n{{/a}}", "{}", NULL,
	    "line 2: close of unopened section \"a\"");
	expect_error("a\nb {{x", "{}", NULL, "line 2: unclosed tag");
	expect_error("{{{x}}", "{}", NULL, "line 1: unclosed tag");
	/* reasons stay on one line */
	expect_error("{{x\ny", "{}", NULL, "line 1: unclosed tag \"{{x\"");
	expect_error("\n\n{{=<%%>=}}", "{}", NULL, "line 3: bad delimiter");
	expect_error("{{= a b c =}}", "{}", NULL, "bad delimiter");
	expect_error("{{=a =}}", "{}", NULL, "bad delimiter");
	expect_error("{{}}", "{}", NULL, "line 1: empty tag name");
	expect_error("{{a..b}}", "{}", NULL, "bad dotted name");
	expect_error("{{a b}}", "{}", NULL, "space in tag name");
	expect_error("{{>bad}}", "{}", p,
	    "partial \"bad\" line 2: unclosed section \"x\"");
	json_decref(p);
}

static void
test_bounds(void **state)
{
	struct strbuf *sb = strbuf_new(0);
	json_t *p;
	char err[256], *s;
	int i;

	(void)state;
	/* template size */
	s = xmalloc(MUSTACHE_TEMPLATE_MAX + 2);
	memset(s, 'a', MUSTACHE_TEMPLATE_MAX + 1);
	s[MUSTACHE_TEMPLATE_MAX + 1] = '\0';
	assert_null(mustache_compile(s, MUSTACHE_TEMPLATE_MAX + 1, NULL, 0,
	    err, sizeof(err)));
	assert_non_null(strstr(err, "more than"));
	p = json_pack("{s:s,s:s}", "a", s + 2, "b", s + 2);
	expect_error("{{>a}}{{>b}}", "{}", p, "larger than");
	json_decref(p);
	free(s);

	/* depth: nesting at compile time, recursion at render time */
	for (i = 0; i <= MUSTACHE_DEPTH_MAX; i++)
		strbuf_appendf(sb, "{{#s%d}}", i);
	expect_error(strbuf_str(sb), "{}", NULL, "nested deeper than");
	p = json_pack("{s:s}", "loop", "x{{>loop}}");
	expect_error("{{>loop}}", "{}", p, "nesting deeper than 32");
	json_decref(p);
	p = json_pack("{s:s}", "node", "{{#n}}{{>node}}{{/n}}");
	/* the context stack finds an outer "n": only false ends this */
	s = render("{{>node}}", "{\"n\":{\"n\":{\"n\":false}}}", p, 0,
	    err, sizeof(err));
	assert_non_null(s);
	assert_string_equal(s, "");
	free(s);
	expect_error("{{>node}}", "{\"n\":{}}", p, "nesting deeper than");
	json_decref(p);

	/* time: 10^12 list items that print nothing, and a fan-out */
	strbuf_reset(sb);
	strbuf_puts(sb, "{\"l\":[0");
	for (i = 1; i < 100; i++)
		strbuf_puts(sb, ",0");
	strbuf_puts(sb, "]}");
	expect_error("{{#l}}{{#l}}{{#l}}{{#l}}{{#l}}{{#l}}{{/l}}{{/l}}{{/l}}"
	    "{{/l}}{{/l}}{{/l}}", strbuf_str(sb), NULL, "render steps");
	p = json_pack("{s:s}", "f", "{{#t}}{{>f}}{{>f}}{{/t}}");
	expect_error("{{>f}}", "{\"t\":[true]}", p, "");
	json_decref(p);

	/* output: 1 MiB, five times */
	p = json_pack("{s:s}", "x", "");
	s = xmalloc(1024 * 1024 + 1);
	memset(s, 'y', 1024 * 1024);
	s[1024 * 1024] = '\0';
	json_object_set_new(p, "x", json_string(s));
	json_object_set_new(p, "l", json_pack("[iiiii]", 1, 2, 3, 4, 5));
	{
		struct mustache *m = mustache_compile("{{#l}}{{x}}{{/l}}", 17,
		    NULL, 0, err, sizeof(err));

		strbuf_reset(sb);
		strbuf_puts(sb, "kept");
		assert_int_equal(mustache_render(m, p, sb, err, sizeof(err)),
		    -1);
		assert_non_null(strstr(err, "output larger than"));
		assert_string_equal(strbuf_str(sb), "kept");
		mustache_free(m);
	}
	json_decref(p);
	free(s);
	strbuf_free(sb);
}

static void
test_partial_indent(void **state)
{
	json_t *p = json_pack("{s:s,s:s}", "p", "a\n\nb {{x}}\n{{>q}}",
	    "q", "q1\nq2\n");
	char err[128], *s;

	(void)state;
	s = render("  {{>p}}\n", "{\"x\":\"1\\n2\"}", p, 0, err, sizeof(err));
	assert_non_null(s);
	assert_string_equal(s, "  a\n  \n  b 1\n2\n  q1\n  q2\n");
	free(s);
	json_decref(p);
}

#define FOOTER \
	"--\n" \
	"You received this message because you are subscribed to {{group}}.\n" \
	"To post, send email to {{post_address}}.\n" \
	"To unsubscribe, visit {{unsubscribe_url}}\n" \
	"{{#digest}}You get a digest: {{digest}} messages.\n{{/digest}}" \
	"Sent to {{receiver}} by {{site}} ({{message_id}})\n"

static const char footer_want[] =
	"--\n"
	"You received this message because you are subscribed to "
	"friends &amp; family.\n"
	"To post, send email to friends@groups.example.\n"
	"To unsubscribe, visit https://groups.example/u/abcdef0123456789\n"
	"You get a digest: 25 messages.\n"
	"Sent to alice@example.org by groups.example (m-42)\n";

static json_t *
footer_data(void)
{
	return json_pack("{s:s,s:s,s:s,s:i,s:s,s:s,s:s}",
	    "group", "friends & family",
	    "post_address", "friends@groups.example",
	    "unsubscribe_url", "https://groups.example/u/abcdef0123456789",
	    "digest", 25, "receiver", "alice@example.org",
	    "site", "groups.example", "message_id", "m-42");
}

struct thread_arg {
	const struct mustache *m;
	const json_t *data;
	int ok;
};

static void *
render_thread(void *arg)
{
	struct thread_arg *ta = arg;
	struct strbuf *out = strbuf_new(512);
	char err[128];
	int i;

	ta->ok = 1;
	for (i = 0; i < 20000 && ta->ok; i++) {
		strbuf_reset(out);
		if (mustache_render(ta->m, ta->data, out, err,
		    sizeof(err)) != 0 ||
		    strcmp(strbuf_str(out), footer_want) != 0)
			ta->ok = 0;
	}
	strbuf_free(out);
	return NULL;
}

static void
test_threads(void **state)
{
	struct thread_arg ta[4];
	pthread_t th[4];
	struct mustache *m;
	json_t *d = footer_data();
	char err[128];
	int i;

	(void)state;
	m = mustache_compile(FOOTER, strlen(FOOTER), NULL, 0, err,
	    sizeof(err));
	assert_non_null(m);
	for (i = 0; i < 4; i++) {
		ta[i].m = m;
		ta[i].data = d;
		assert_int_equal(pthread_create(&th[i], NULL, render_thread,
		    &ta[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_true(ta[i].ok);
	}
	mustache_free(m);
	json_decref(d);
}

/* a figure for docs/mustache.md, never a pass/fail criterion */
static void
test_speed(void **state)
{
	struct timespec a, b, ca, cb;
	struct mustache *m;
	struct strbuf *out = strbuf_new(512);
	json_t *d = footer_data();
	char err[128];
	double secs, cpu;
	int i, n = 100000;

	(void)state;
	m = mustache_compile(FOOTER, strlen(FOOTER), NULL, 0, err,
	    sizeof(err));
	assert_non_null(m);
	clock_gettime(CLOCK_MONOTONIC, &a);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ca);
	for (i = 0; i < n; i++) {
		strbuf_reset(out);
		assert_int_equal(mustache_render(m, d, out, err, sizeof(err)),
		    0);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cb);
	assert_string_equal(strbuf_str(out), footer_want);
	secs = (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
	cpu = (double)(cb.tv_sec - ca.tv_sec) + (cb.tv_nsec - ca.tv_nsec) / 1e9;
	/* CPU time too: the build machine is shared, wall time is noisy */
	fprintf(stderr, "mustache speed: %d renders of a 6-line footer in "
	    "%.3f s (%.3f s CPU), %.0f renders/s wall, %.0f per CPU second\n",
	    n, secs, cpu, n / (secs > 0 ? secs : 1e-9),
	    n / (cpu > 0 ? cpu : 1e-9));
	mustache_free(m);
	json_decref(d);
	strbuf_free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_core),
		cmocka_unit_test(test_spec_optional),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_appends),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_partial_indent),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_speed),
	};

	/* GROUPS_TEST_FILTER=pattern runs only the matching tests */
	if (getenv("GROUPS_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("GROUPS_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
