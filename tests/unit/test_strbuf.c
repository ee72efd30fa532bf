/* SPDX-License-Identifier: MIT */
/*
 * test_strbuf.c - unit tests of the growable string (strbuf.c).
 *
 * Covers appends of text and binary data, formatted appends that fit and
 * that force growth, JSON escaping of every control character, truncation,
 * reset, detach, and the panic on an impossible size (in a child process).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "strbuf.h"

/* check_invariants - NUL at len, len < cap. */
static void
check_invariants(const struct strbuf *sb)
{
	assert_non_null(sb->buf);
	assert_true(sb->len < sb->cap);
	assert_int_equal(sb->buf[sb->len], '\0');
}

static void
test_new_empty(void **state)
{
	struct strbuf *sb = strbuf_new(0);

	(void)state;
	assert_int_equal(strbuf_len(sb), 0);
	assert_string_equal(strbuf_str(sb), "");
	check_invariants(sb);
	assert_null(strbuf_free(sb));
	assert_null(strbuf_free(NULL));
}

static void
test_new_hint_reserves(void **state)
{
	struct strbuf *sb = strbuf_new(1000);

	(void)state;
	assert_true(sb->cap >= 1001);
	assert_int_equal(sb->len, 0);
	check_invariants(sb);
	strbuf_free(sb);
}

static void
test_append_grows(void **state)
{
	struct strbuf *sb = strbuf_new(0);
	char expect[5001];
	int i;

	(void)state;
	for (i = 0; i < 5000; i++) {
		char c = (char)('a' + i % 26);

		strbuf_putc(sb, c);
		expect[i] = c;
		check_invariants(sb);
	}
	expect[5000] = '\0';
	assert_int_equal(strbuf_len(sb), 5000);
	assert_string_equal(strbuf_str(sb), expect);
	strbuf_free(sb);
}

static void
test_append_binary(void **state)
{
	static const char bin[] = { 'a', '\0', 'b', '\0', '\xff' };
	struct strbuf *sb = strbuf_new(2);

	(void)state;
	strbuf_append(sb, bin, sizeof(bin));
	strbuf_append(sb, NULL, 0);
	assert_int_equal(strbuf_len(sb), sizeof(bin));
	assert_memory_equal(sb->buf, bin, sizeof(bin));
	check_invariants(sb);
	strbuf_puts(sb, "xyz");
	assert_int_equal(strbuf_len(sb), sizeof(bin) + 3);
	assert_memory_equal(sb->buf + sizeof(bin), "xyz", 4);
	strbuf_free(sb);
}

static void
test_appendf_small_and_large(void **state)
{
	struct strbuf *sb = strbuf_new(0);
	char big[3000];

	(void)state;
	strbuf_appendf(sb, "%d-%s-%c", 42, "x", 'y');
	assert_string_equal(strbuf_str(sb), "42-x-y");
	assert_int_equal(strbuf_len(sb), 6);
	/* larger than the remaining capacity: the second vsnprintf path */
	memset(big, 'q', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	strbuf_appendf(sb, "[%s]", big);
	assert_int_equal(strbuf_len(sb), 6 + 2 + sizeof(big) - 1);
	assert_int_equal(sb->buf[6], '[');
	assert_int_equal(sb->buf[7], 'q');
	assert_int_equal(sb->buf[strbuf_len(sb) - 2], 'q');
	assert_int_equal(sb->buf[strbuf_len(sb) - 1], ']');
	check_invariants(sb);
	/* an empty format appends nothing */
	strbuf_appendf(sb, "%s", "");
	assert_int_equal(strbuf_len(sb), 6 + 2 + sizeof(big) - 1);
	strbuf_free(sb);
}

/* vformat - exercises strbuf_vappendf with a caller's va_list. */
static void vformat(struct strbuf *, const char *, ...) ATTR_PRINTF(2, 3);
static void
vformat(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	strbuf_vappendf(sb, fmt, ap);
	va_end(ap);
}

static void
test_vappendf_exact_boundary(void **state)
{
	struct strbuf *sb = strbuf_new(0);
	size_t room;
	char *fill;

	(void)state;
	/* Fill the buffer so that the formatted text needs exactly the
	 * remaining room, then one byte more. */
	room = sb->cap - sb->len - 1;
	fill = malloc(room + 2);
	assert_non_null(fill);
	memset(fill, 'z', room + 1);
	fill[room] = '\0';
	vformat(sb, "%s", fill);
	assert_int_equal(strbuf_len(sb), room);
	check_invariants(sb);
	fill[room] = 'z';
	fill[room + 1] = '\0';
	vformat(sb, "%s", fill);
	assert_int_equal(strbuf_len(sb), 2 * room + 1);
	check_invariants(sb);
	assert_int_equal(strspn(strbuf_str(sb), "z"), 2 * room + 1);
	free(fill);
	strbuf_free(sb);
}

static void
test_json_escape(void **state)
{
	struct strbuf *sb = strbuf_new(0);
	const char in[] = "a\"b\\c\nd\re\tf\x01g\x1fh\x7f\xc3\xa9";

	(void)state;
	strbuf_json_escape(sb, in, sizeof(in) - 1);
	assert_string_equal(strbuf_str(sb),
	    "a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u001fh\x7f\xc3\xa9");
	strbuf_reset(sb);
	/* an embedded NUL is escaped, not a terminator */
	strbuf_json_escape(sb, "x\0y", 3);
	assert_string_equal(strbuf_str(sb), "x\\u0000y");
	assert_int_equal(strbuf_len(sb), 8);
	strbuf_free(sb);
}

static void
test_json_escape_all_controls(void **state)
{
	struct strbuf *sb = strbuf_new(0);
	char c, want[8];
	int i;

	(void)state;
	for (i = 0; i < 0x20; i++) {
		strbuf_reset(sb);
		c = (char)i;
		strbuf_json_escape(sb, &c, 1);
		switch (i) {
		case '\n': assert_string_equal(strbuf_str(sb), "\\n"); break;
		case '\r': assert_string_equal(strbuf_str(sb), "\\r"); break;
		case '\t': assert_string_equal(strbuf_str(sb), "\\t"); break;
		default:
			snprintf(want, sizeof(want), "\\u%04x", i);
			assert_string_equal(strbuf_str(sb), want);
		}
	}
	strbuf_free(sb);
}

static void
test_truncate_reset(void **state)
{
	struct strbuf *sb = strbuf_new(0);

	(void)state;
	strbuf_puts(sb, "hello world");
	strbuf_truncate(sb, 5);
	assert_string_equal(strbuf_str(sb), "hello");
	assert_int_equal(strbuf_len(sb), 5);
	/* truncate never grows */
	strbuf_truncate(sb, 100);
	assert_string_equal(strbuf_str(sb), "hello");
	assert_int_equal(strbuf_len(sb), 5);
	strbuf_reset(sb);
	assert_int_equal(strbuf_len(sb), 0);
	assert_string_equal(strbuf_str(sb), "");
	strbuf_puts(sb, "again");
	assert_string_equal(strbuf_str(sb), "again");
	check_invariants(sb);
	strbuf_free(sb);
}

static void
test_detach(void **state)
{
	struct strbuf *sb = strbuf_new(0);
	size_t len = 0;
	char *s;

	(void)state;
	strbuf_append(sb, "ab\0c", 4);
	s = strbuf_detach(sb, &len);
	assert_int_equal(len, 4);
	assert_memory_equal(s, "ab\0c", 5);
	free(s);

	sb = strbuf_new(0);
	s = strbuf_detach(sb, NULL);
	assert_string_equal(s, "");
	free(s);
}

/* run_child_stderr_null - fork, run fn with stderr to /dev/null, return
 * the wait status. */
static int
run_child_stderr_null(void (*fn)(void))
{
	pid_t pid;
	int st = 0, fd;

	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		if ((fd = open("/dev/null", O_WRONLY)) != -1)
			dup2(fd, STDERR_FILENO);
		fn();
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

static void
append_impossible(void)
{
	struct strbuf *sb = strbuf_new(0);

	strbuf_puts(sb, "x");
	/* would overflow size_t arithmetic: must panic, not wrap */
	strbuf_append(sb, "y", SIZE_MAX - 1);
}

static void
test_append_overflow_panics(void **state)
{
	int st;

	(void)state;
	st = run_child_stderr_null(append_impossible);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGABRT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_empty),
		cmocka_unit_test(test_new_hint_reserves),
		cmocka_unit_test(test_append_grows),
		cmocka_unit_test(test_append_binary),
		cmocka_unit_test(test_appendf_small_and_large),
		cmocka_unit_test(test_vappendf_exact_boundary),
		cmocka_unit_test(test_json_escape),
		cmocka_unit_test(test_json_escape_all_controls),
		cmocka_unit_test(test_truncate_reset),
		cmocka_unit_test(test_detach),
		cmocka_unit_test(test_append_overflow_panics),
	};

	/* GROUPS_TEST_FILTER=pattern runs only the matching tests */
	if (getenv("GROUPS_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("GROUPS_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
