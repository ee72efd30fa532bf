/* SPDX-License-Identifier: MIT */
/*
 * test_config.c - unit tests of the configuration table and parser
 * (config.c).
 *
 * Checks the documented defaults, the accepted syntax (comments, blank
 * lines, CRLF, quotes, K/M/G suffixes, booleans, choices), ${var_dir}
 * expansion, every kind of error with the file and line it names,
 * config_get/config_print round trips, loading from a file and the secret.
 *
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <unistd.h>

#include <cmocka.h>

#include "bounds.h"
#include "config.h"
#include "../testutil.h"

/* write_file - dir/name with content; returns the path (static). */
static const char *
write_file(const struct fixture *f, const char *name, const char *text,
    size_t len)
{
	static char path[PATH_MAX + 64];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", f->dir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fwrite(text, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
	return path;
}

/* parse - config_parse of a C string named "t.conf". */
static int
parse(struct config *c, const char *text, char *err, size_t errlen)
{
	err[0] = '\0';
	return config_parse(c, text, strlen(text), "t.conf", err, errlen);
}

/* expect_error - text must fail with an error containing want. */
static void
expect_error(const char *text, const char *want)
{
	struct config c;
	char err[512];

	if (parse(&c, text, err, sizeof(err)) != -1)
		fail_msg("accepted: %s", text);
	if (strstr(err, want) == NULL)
		fail_msg("error \"%s\" lacks \"%s\" for: %s", err, want, text);
	config_free(&c);
}

static void
test_defaults(void **state)
{
	struct config c;
	char err[256];

	(void)state;
	assert_int_equal(config_load(&c, NULL, err, sizeof(err)), 0);
	assert_string_equal(c.var_dir, "/var/lib/groups");
	assert_string_equal(c.crash_dir, "/var/lib/groups/crash");
	assert_string_equal(c.errord_dir, "/var/lib/groups/errord");
	assert_string_equal(c.karl_spool_dir, "/var/lib/groups/karl");
	assert_string_equal(c.log_level, "info");
	assert_string_equal(c.listen_host, "127.0.0.1");
	assert_string_equal(c.user, "");
	assert_int_equal(c.log_queue, LOG_QUEUE_DEFAULT);
	assert_int_equal(c.http_max_body, HTTP_MAX_BODY_DEFAULT);
	assert_int_equal(c.http_threads, 2);
	assert_int_equal(c.debug_endpoints, 0);
	assert_int_equal(c.errord_sync, 1);
	assert_int_equal(c.errord_port, 17100);
	assert_int_equal(c.karl_relay_port, 25);
	assert_int_equal(c.errord_rotate_size, 67108864L);
	assert_int_equal(c.smtpd_max_message, MSG_MAX_SIZE_DEFAULT);
	assert_null(c.path);
	assert_null(c.secret);
	config_free(&c);
	assert_null(c.var_dir);
	assert_null(c.log_level);
	/* config_free twice is harmless */
	config_free(&c);
}

static void
test_parse_syntax(void **state)
{
	static const char text[] =
	    "# a comment\n"
	    "\n"
	    "   \t\n"
	    "   # indented comment\n"
	    "var_dir = /srv/groups\r\n"
	    "domain=example.org\n"
	    "  public_url   =   \"https://lists.example.org\"   \n"
	    "user = \"\"\n"
	    "templates_dir = \"with space\"\n"
	    "log_level = \"debug\"\n"
	    "http_max_body = 2M\n"
	    "errord_rotate_size = 1g\n"
	    "smtpd_max_message = 512k\n"
	    "http_threads = 8\n"
	    "debug_endpoints = yes\n"
	    "errord_sync = off\n"
	    "db_conninfo = host=/run/pg dbname=g\n"
	    "karl_relay_host = 10.0.0.1";	/* no final newline */
	struct config c;
	char err[256];

	(void)state;
	assert_int_equal(parse(&c, text, err, sizeof(err)), 0);
	assert_string_equal(c.var_dir, "/srv/groups");
	assert_string_equal(c.crash_dir, "/srv/groups/crash");
	assert_string_equal(c.domain, "example.org");
	assert_string_equal(c.public_url, "https://lists.example.org");
	assert_string_equal(c.user, "");
	assert_string_equal(c.templates_dir, "with space");
	assert_string_equal(c.log_level, "debug");
	assert_int_equal(c.http_max_body, 2L * 1024 * 1024);
	assert_int_equal(c.errord_rotate_size, 1024L * 1024 * 1024);
	assert_int_equal(c.smtpd_max_message, 512L * 1024);
	assert_int_equal(c.http_threads, 8);
	assert_int_equal(c.debug_endpoints, 1);
	assert_int_equal(c.errord_sync, 0);
	/* '=' inside the value is kept */
	assert_string_equal(c.db_conninfo, "host=/run/pg dbname=g");
	assert_string_equal(c.karl_relay_host, "10.0.0.1");
	config_free(&c);
}

static void
test_booleans(void **state)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	char text[64], err[256];
	struct config c;
	size_t i;

	(void)state;
	for (i = 0; i < 4; i++) {
		snprintf(text, sizeof(text), "debug_endpoints = %s\n", yes[i]);
		assert_int_equal(parse(&c, text, err, sizeof(err)), 0);
		assert_int_equal(c.debug_endpoints, 1);
		config_free(&c);
		snprintf(text, sizeof(text), "errord_sync = %s\n", no[i]);
		assert_int_equal(parse(&c, text, err, sizeof(err)), 0);
		assert_int_equal(c.errord_sync, 0);
		config_free(&c);
	}
	expect_error("debug_endpoints = YES\n", "t.conf:1: debug_endpoints: "
	    "\"YES\" is not yes or no");
	expect_error("debug_endpoints = 2\n", "is not yes or no");
	expect_error("debug_endpoints =\n", "is not yes or no");
}

static void
test_expansion(void **state)
{
	struct config c;
	char err[256];

	(void)state;
	assert_int_equal(parse(&c, "var_dir = /v\n"
	    "crash_dir = ${var_dir}/a/${var_dir}/b\n"
	    "errord_dir = /abs\n"
	    "domain = ${var_dir\n", err, sizeof(err)), 0);
	assert_string_equal(c.crash_dir, "/v/a//v/b");
	assert_string_equal(c.errord_dir, "/abs");
	assert_string_equal(c.karl_spool_dir, "/v/karl");
	assert_string_equal(c.domain, "${var_dir");
	config_free(&c);
	/* var_dir itself is not expanded (and must be absolute) */
	expect_error("var_dir = ${var_dir}/x\n",
	    "t.conf: var_dir must be an absolute path");
	expect_error("var_dir = relative\n", "var_dir must be an absolute");
	expect_error("var_dir =\n", "var_dir must be an absolute");
}

static void
test_errors_name_line(void **state)
{
	(void)state;
	expect_error("\n# c\nnosuch = 1\n", "t.conf:3: unknown key \"nosuch\"");
	expect_error("domain = a\ndomain = b\n", "t.conf:2: domain is set "
	    "twice");
	expect_error("domain = a\nlog_level = info\n\ndomain = a\n",
	    "t.conf:4: domain is set twice");
	expect_error("just words\n", "t.conf:1: expected \"key = value\"");
	expect_error("= value\n", "t.conf:1: bad key \"\"");
	expect_error("Domain = x\n", "t.conf:1: bad key \"Domain\"");
	expect_error("dom ain = x\n", "t.conf:1: bad key \"dom ain\"");
	expect_error("dom-ain = x\n", "bad key");
	expect_error("log_level = verbose\n", "t.conf:1: log_level: "
	    "\"verbose\" is not one of debug|info|warn|error|crit");
	expect_error("log_level = inf\n", "is not one of");
	expect_error("log_level = info|warn\n", "is not one of");
	expect_error("log_level =\n", "is not one of");
}

static void
test_number_errors(void **state)
{
	(void)state;
	expect_error("http_threads = 0\n", "t.conf:1: http_threads: 0 is out "
	    "of range 1..64");
	expect_error("http_threads = 65\n", "65 is out of range 1..64");
	expect_error("http_threads = 4294967297\n", "is out of range");
	expect_error("errord_keep_days = -1\n", "is out of range 0..3650");
	expect_error("errord_port = 70000\n", "is out of range 1..65535");
	expect_error("http_threads = 4x\n", "\"4x\" is not a number");
	expect_error("http_threads = 0x10\n", "is not a number");
	expect_error("http_threads = 4kk\n", "is not a number");
	expect_error("http_threads = k\n", "is not a number");
	expect_error("http_threads =\n", "is not a number");
	expect_error("http_threads = 1.5\n", "is not a number");
	expect_error("http_max_body = 99999999999999999999\n",
	    "is not a number");
	expect_error("http_max_body = 9223372036854775807G\n",
	    "is not a number");
	expect_error("http_max_body = -9223372036854775807G\n",
	    "is not a number");
	expect_error("http_max_body = 1023\n", "is out of range");
	expect_error("http_max_body = 65M\n", "is out of range");
}

static void
test_limits(void **state)
{
	struct config c;
	char *text, err[256];
	size_t n;

	(void)state;
	/* a line of exactly CONFIG_MAX_LINE bytes is fine, one more is not */
	text = malloc(CONFIG_MAX_LINE + 16);
	assert_non_null(text);
	memcpy(text, "domain = ", 9);
	memset(text + 9, 'd', CONFIG_MAX_LINE - 9);
	text[CONFIG_MAX_LINE] = '\n';
	text[CONFIG_MAX_LINE + 1] = '\0';
	assert_int_equal(parse(&c, text, err, sizeof(err)), 0);
	assert_int_equal(strlen(c.domain), CONFIG_MAX_LINE - 9);
	config_free(&c);
	text[CONFIG_MAX_LINE] = 'd';
	text[CONFIG_MAX_LINE + 1] = '\n';
	text[CONFIG_MAX_LINE + 2] = '\0';
	assert_int_equal(parse(&c, text, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "t.conf:1: line longer than 4096 bytes"));
	config_free(&c);
	free(text);

	/* NUL byte */
	assert_int_equal(config_parse(&c, "domain = a\nuser = b\0c\n", 22,
	    "t.conf", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "t.conf:2: NUL byte"));
	config_free(&c);

	/* whole file size */
	n = CONFIG_MAX_FILE + 1;
	text = malloc(n);
	assert_non_null(text);
	memset(text, '\n', n);
	assert_int_equal(config_parse(&c, text, n, "big.conf", err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "big.conf: larger than"));
	config_free(&c);
	assert_int_equal(config_parse(&c, text, n - 1, "big.conf", err,
	    sizeof(err)), 0);
	config_free(&c);
	free(text);

	/* a tiny error buffer is still terminated */
	assert_int_equal(parse(&c, "nosuch = 1\n", err, 8), -1);
	assert_int_equal(strlen(err), 7);
	config_free(&c);
}

static void
test_port_clash(void **state)
{
	(void)state;
	expect_error("web_port = 17100\n", "t.conf: errord_port and web_port "
	    "are both 17100");
	expect_error("karl_port = 17103\n", "messageserver_port and karl_port "
	    "are both 17103");
}

static void
test_get(void **state)
{
	struct config c;
	char err[256], *v;

	(void)state;
	assert_int_equal(parse(&c, "http_max_body = 4k\n"
	    "debug_endpoints = on\nlog_level = warn\n", err, sizeof(err)), 0);
	v = config_get(&c, "http_max_body");
	assert_string_equal(v, "4096");
	free(v);
	v = config_get(&c, "debug_endpoints");
	assert_string_equal(v, "yes");
	free(v);
	v = config_get(&c, "errord_sync");
	assert_string_equal(v, "yes");
	free(v);
	v = config_get(&c, "log_level");
	assert_string_equal(v, "warn");
	free(v);
	v = config_get(&c, "web_port");
	assert_string_equal(v, "17101");
	free(v);
	v = config_get(&c, "crash_dir");
	assert_string_equal(v, "/var/lib/groups/crash");
	free(v);
	assert_null(config_get(&c, "nosuch"));
	assert_null(config_get(&c, "secret"));
	assert_null(config_get(&c, "path"));
	v = config_url(&c, 1234);
	assert_string_equal(v, "http://127.0.0.1:1234");
	free(v);
	config_free(&c);
}

/* print_to_string - config_print into an allocated string. */
static char *
print_to_string(const struct config *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	assert_non_null(fp);
	config_print(c, fp);
	assert_int_equal(fclose(fp), 0);
	return buf;
}

static void
test_print_roundtrip(void **state)
{
	struct config a, b;
	char err[256], *pa, *pb;

	(void)state;
	assert_int_equal(parse(&a, "var_dir = /x\nhttp_threads = 3\n"
	    "errord_sync = no\nlog_level = crit\ndomain = d.example\n", err,
	    sizeof(err)), 0);
	pa = print_to_string(&a);
	assert_non_null(strstr(pa, "var_dir = /x\n"));
	assert_non_null(strstr(pa, "crash_dir = /x/crash\n"));
	assert_non_null(strstr(pa, "http_threads = 3\n"));
	assert_non_null(strstr(pa, "errord_sync = no\n"));
	assert_null(strstr(pa, "secret ="));
	/* what -n prints loads back to the same configuration */
	assert_int_equal(config_parse(&b, pa, strlen(pa), "printed", err,
	    sizeof(err)), 0);
	pb = print_to_string(&b);
	assert_string_equal(pa, pb);
	free(pa);
	free(pb);
	config_free(&a);
	config_free(&b);
}

static void
test_print_roundtrip_quoting(void **state)
{
	struct config a, b;
	char err[256], *pa;

	(void)state;
	assert_int_equal(parse(&a, "domain = \"  padded  \"\n"
	    "templates_dir = \"\"quoted\"\"\n", err, sizeof(err)), 0);
	assert_string_equal(a.domain, "  padded  ");
	assert_string_equal(a.templates_dir, "\"quoted\"");
	pa = print_to_string(&a);
	assert_int_equal(config_parse(&b, pa, strlen(pa), "printed", err,
	    sizeof(err)), 0);
	free(pa);
	assert_string_equal(b.domain, a.domain);
	assert_string_equal(b.templates_dir, a.templates_dir);
	config_free(&a);
	config_free(&b);
}

static void
test_print_doc(void **state)
{
	char *buf = NULL, *line, *nl, *p;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);
	int rows = 0;

	(void)state;
	config_print_doc(fp);
	fclose(fp);
	assert_true(strncmp(buf, "| key | type | default | meaning |\n"
	    "|---|---|---|---|\n", 35) == 0);
	assert_non_null(strstr(buf, "| `http_threads` | integer 1..64 | `2` |"));
	assert_non_null(strstr(buf, "| `log_level` | choice "));
	/* four columns on every row: a '|' inside a cell breaks the table */
	for (line = buf; line != NULL && *line != '\0'; line = nl + 1) {
		int pipes = 0;

		nl = strchr(line, '\n');
		assert_non_null(nl);
		for (p = line; p < nl; p++)
			pipes += *p == '|';
		if (pipes != 5)
			fail_msg("row with %d '|': %.*s", pipes,
			    (int)(nl - line), line);
		rows++;
	}
	/* the header, the rule and one row per key of struct config */
	assert_true(rows > 30);
	assert_non_null(strstr(buf, "| `errord_sync` | yes/no | `yes` |"));
	assert_non_null(strstr(buf, "| `crash_dir` | string | "
	    "`${var_dir}/crash` |"));
	free(buf);
}

static void
test_load_file(void **state)
{
	struct fixture *f = *state;
	struct config c;
	char err[512], missing[PATH_MAX + 32];
	const char *path;

	path = write_file(f, "g.conf", "domain = file.example\n", 22);
	assert_int_equal(config_load(&c, path, err, sizeof(err)), 0);
	assert_string_equal(c.domain, "file.example");
	assert_string_equal(c.path, path);
	config_free(&c);

	path = write_file(f, "bad.conf", "domain = a\nbogus = 1\n", 21);
	assert_int_equal(config_load(&c, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "bad.conf:2: unknown key \"bogus\""));
	config_free(&c);

	snprintf(missing, sizeof(missing), "%s/none.conf", f->dir);
	assert_int_equal(config_load(&c, missing, err, sizeof(err)), -1);
	assert_non_null(strstr(err, missing));
	assert_non_null(strstr(err, "No such file"));
	/* the defaults are there after a failed load */
	assert_string_equal(c.log_level, "info");
	config_free(&c);
}

static void
test_secret(void **state)
{
	struct fixture *f = *state;
	struct config c;
	char err[512], line[PATH_MAX + 64];
	const char *path;

	path = write_file(f, "secret", "0123456789abcdefXYZ \n\n", 22);
	snprintf(line, sizeof(line), "secret_file = %s\n", path);
	assert_int_equal(parse(&c, line, err, sizeof(err)), 0);
	assert_null(c.secret);
	assert_int_equal(config_load_secret(&c, err, sizeof(err)), 0);
	assert_string_equal(c.secret, "0123456789abcdefXYZ");
	/* loading again replaces it */
	write_file(f, "secret", "fedcba9876543210", 16);
	assert_int_equal(config_load_secret(&c, err, sizeof(err)), 0);
	assert_string_equal(c.secret, "fedcba9876543210");

	write_file(f, "secret", "short\n", 6);
	assert_int_equal(config_load_secret(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "at least 16 bytes"));
	/* a failed load keeps the previous secret */
	assert_string_equal(c.secret, "fedcba9876543210");

	write_file(f, "secret", "0123456789\0abcdefgh", 19);
	assert_int_equal(config_load_secret(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "at least 16 bytes of text"));
	config_free(&c);

	snprintf(line, sizeof(line), "secret_file = %s/nope\n", f->dir);
	assert_int_equal(parse(&c, line, err, sizeof(err)), 0);
	assert_int_equal(config_load_secret(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/nope: No such file"));
	assert_null(c.secret);
	config_free(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_parse_syntax),
		cmocka_unit_test(test_booleans),
		cmocka_unit_test(test_expansion),
		cmocka_unit_test(test_errors_name_line),
		cmocka_unit_test(test_number_errors),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_port_clash),
		cmocka_unit_test(test_get),
		cmocka_unit_test(test_print_roundtrip),
		cmocka_unit_test(test_print_roundtrip_quoting),
		cmocka_unit_test(test_print_doc),
		cmocka_unit_test_setup_teardown(test_load_file, setup_dir,
		    teardown_dir),
		cmocka_unit_test_setup_teardown(test_secret, setup_dir,
		    teardown_dir),
	};

	/* GROUPS_TEST_FILTER=pattern runs only the matching tests */
	if (getenv("GROUPS_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("GROUPS_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
