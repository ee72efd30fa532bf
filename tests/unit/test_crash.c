/* SPDX-License-Identifier: MIT */
/*
 * test_crash.c - unit tests of the crash handler and crash reports
 * (crash.c).
 *
 * crash_parse is checked on well-formed and malformed reports; crash_collect
 * on a private temp dir (stored -> deleted, store fails -> kept, other
 * daemons' files untouched, garbage removed, claims of dead collectors
 * taken over).  Real crashes happen in forked children that call
 * crash_init and then crash_trigger() or panic(); the parent checks the
 * signal the child died of and the report it left.
 *
 * Sanitizer builds: ASan installs its own SEGV handler at start-up (a
 * later sigaction replaces it, as crash_init does), and UBSan's
 * -fsanitize=null reports crash_trigger's NULL store before any SIGSEGV
 * happens, ending the process with status 1.  Sanitizer options are read
 * only when a process starts, so the child re-executes this binary
 * (/proc/self/exe) with ASAN_OPTIONS that leave SIGSEGV alone, and this
 * file interposes UBSan's handler for that one report (see
 * __ubsan_handle_type_mismatch_v1_abort below).
 *
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "api_proto.h"
#include "crash.h"
#include "log.h"
#include "../testutil.h"

extern char **environ;

#define CHILD_ARG	"--crash-child"

static void
put_file(const char *dir, const char *name, const char *text)
{
	char path[PATH_MAX + NAME_MAX + 2];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
}

static int
file_exists(const char *dir, const char *name)
{
	char path[PATH_MAX + NAME_MAX + 2];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return stat(path, &st) == 0;
}

/* read_file - whole file (allocated) or NULL. */
static char *
read_file(const char *path)
{
	char *buf;
	FILE *fp;
	long n;

	if ((fp = fopen(path, "r")) == NULL)
		return NULL;
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	buf = calloc(1, (size_t)n + 1);
	if (buf != NULL && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(fp);
	return buf;
}

/* count_entries - directory entries other than . and .. */
static int
count_entries(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static const char good_report[] =
    "daemon: karl\n"
    "pid: 4242\n"
    "version: 1.2.3\n"
    "signal: 11 SIGSEGV\n"
    "address: 0x10\n"
    "time: 1700000000\n"
    "reason: out of luck\n"
    "future: ignored\n"
    "\n"
    "./karl(karl_send+0x1c)[0x55d0c0ffee00]\n"
    "/lib/libc.so.6(+0x3c050)[0x7f0000000000]\n";

static const char *
jstr(const json_t *ev, const char *key)
{
	return json_string_value(json_object_get(ev, key));
}

static void
test_parse_good(void **state)
{
	json_t *ev;

	(void)state;
	ev = crash_parse(good_report, strlen(good_report));
	assert_non_null(ev);
	assert_string_equal(jstr(ev, F_EV_DAEMON), "karl");
	assert_int_equal(json_integer_value(json_object_get(ev, F_EV_PID)),
	    4242);
	assert_string_equal(jstr(ev, F_EV_LEVEL), "crit");
	assert_string_equal(jstr(ev, F_EV_TIME),
	    "2023-11-14T22:13:20.000000Z");
	assert_string_equal(jstr(ev, F_EV_VERSION), "1.2.3");
	assert_string_equal(jstr(ev, F_EV_MESSAGE), "crashed: signal 11 "
	    "SIGSEGV at address 0x10: out of luck");
	assert_string_equal(jstr(ev, F_EV_BACKTRACE),
	    "./karl(karl_send+0x1c)[0x55d0c0ffee00]\n"
	    "/lib/libc.so.6(+0x3c050)[0x7f0000000000]\n");
	/* exactly these fields: no cid, host, fields */
	assert_int_equal(json_object_size(ev), 7);
	json_decref(ev);
}

static void
test_parse_minimal(void **state)
{
	static const char minimal[] =
	    "daemon: web-2_x\npid: 7\nsignal: 6 SIGABRT\n\n";
	char now[40];
	json_t *ev;
	time_t t0 = time(NULL);

	(void)state;
	ev = crash_parse(minimal, strlen(minimal));
	assert_non_null(ev);
	assert_string_equal(jstr(ev, F_EV_MESSAGE),
	    "crashed: signal 6 SIGABRT");
	assert_string_equal(jstr(ev, F_EV_BACKTRACE), "");
	assert_null(json_object_get(ev, F_EV_VERSION));
	/* no time: the time of parsing */
	assert_int_equal(strlen(jstr(ev, F_EV_TIME)), 27);
	{
		struct tm tm;

		gmtime_r(&t0, &tm);
		strftime(now, sizeof(now), "%Y-%m-%dT%H:", &tm);
		assert_true(strncmp(jstr(ev, F_EV_TIME), now, 14) == 0);
	}
	json_decref(ev);
}

static void
test_parse_bad(void **state)
{
	static const char *const bad[] = {
		"",
		"\n",
		"\nbacktrace\n",
		/* no empty line after the header */
		"daemon: a\npid: 1\nsignal: 11 SIGSEGV\n",
		"daemon: a\npid: 1\nsignal: 11 SIGSEGV",
		/* required fields */
		"pid: 1\nsignal: 11 SIGSEGV\n\nbt\n",
		"daemon: a\nsignal: 11 SIGSEGV\n\nbt\n",
		"daemon: a\npid: 1\n\nbt\n",
		"daemon: a\npid: 0\nsignal: 11 SIGSEGV\n\nbt\n",
		"daemon: a\npid: -5\nsignal: 11 SIGSEGV\n\nbt\n",
		"daemon: \npid: 1\nsignal: 11 SIGSEGV\n\nbt\n",
		"daemon: a\npid: 1\nsignal: \n\nbt\n",
		/* malformed header lines */
		"daemon: a\npid: 1\nsignal: 11 SIGSEGV\nno colon here\n\nbt\n",
		"daemon:a\npid: 1\nsignal: 11 SIGSEGV\n\nbt\n",
		"daemon: a\npid: 1\nsignal: 11 SIGSEGV\nkey:\n\nbt\n",
		/* daemon name alphabet */
		"daemon: Karl\npid: 1\nsignal: 11 SIGSEGV\n\nbt\n",
		"daemon: ../x\npid: 1\nsignal: 11 SIGSEGV\n\nbt\n",
		"daemon: a b\npid: 1\nsignal: 11 SIGSEGV\n\nbt\n",
		/* invalid UTF-8 cannot become an event */
		"daemon: a\npid: 1\nsignal: 11 SIGSEGV\n\nbt \xff\xfe\n",
		"daemon: a\npid: 1\nsignal: 11 \xc3\n\nbt\n",
	};
	size_t i;
	json_t *ev;

	(void)state;
	for (i = 0; i < NELEM(bad); i++) {
		ev = crash_parse(bad[i], strlen(bad[i]));
		if (ev != NULL) {
			json_decref(ev);
			fail_msg("accepted bad report %zu: %s", i, bad[i]);
		}
	}
	/* len is honoured: the good report cut before its empty line */
	assert_null(crash_parse(good_report, 60));
}

static void
test_parse_time_range(void **state)
{
	static const char last[] = "daemon: a\npid: 1\nsignal: 11 SIGSEGV\n"
	    "time: 253402300799\n\nbt\n";
	json_t *ev;

	(void)state;
	/* the last second RFC 3339 can write */
	ev = crash_parse(last, strlen(last));
	assert_non_null(ev);
	assert_string_equal(jstr(ev, F_EV_TIME), "9999-12-31T23:59:59.000000Z");
	json_decref(ev);
}

static void
test_parse_time_out_of_range(void **state)
{
	static const char *const reports[] = {
		/* year 10000: five digits */
		"daemon: a\npid: 1\nsignal: 11 SIGSEGV\ntime: "
		    "253402300800\n\nbt\n",
		/* beyond what gmtime_r can represent */
		"daemon: a\npid: 1\nsignal: 11 SIGSEGV\ntime: "
		    "99999999999999999\n\nbt\n",
		"daemon: a\npid: 1\nsignal: 11 SIGSEGV\ntime: "
		    "9223372036854775807\n\nbt\n",
	};
	char t[64];
	size_t i;
	json_t *ev;
	int ok;

	(void)state;
	/* either refuse the report or give it a well-formed time */
	for (i = 0; i < NELEM(reports); i++) {
		if ((ev = crash_parse(reports[i], strlen(reports[i]))) == NULL)
			continue;
		ok = is_rfc3339_us(jstr(ev, F_EV_TIME));
		snprintf(t, sizeof(t), "%.40s", jstr(ev, F_EV_TIME) ?
		    jstr(ev, F_EV_TIME) : "(null)");
		json_decref(ev);
		if (!ok)
			fail_msg("report %zu: time \"%s\"", i, t);
	}
}

/* Collection. */

struct store_ctx {
	int	 calls;
	int	 result;
	char	 daemons[8][64];
	char	 messages[8][256];
};

static int
store_cb(json_t *ev, void *arg)
{
	struct store_ctx *c = arg;

	if (c->calls < 8) {
		snprintf(c->daemons[c->calls], sizeof(c->daemons[0]), "%s",
		    jstr(ev, F_EV_DAEMON));
		snprintf(c->messages[c->calls], sizeof(c->messages[0]), "%s",
		    jstr(ev, F_EV_MESSAGE));
	}
	c->calls++;
	return c->result;
}

static void
test_collect_stored_deleted(void **state)
{
	struct fixture *f = *state;
	struct store_ctx c = { .result = 0 };

	put_file(f->dir, "karl.4242.crash", good_report);
	put_file(f->dir, "karl.4243.crash.tmp", good_report);
	assert_int_equal(crash_collect(f->dir, "karl", store_cb, &c), 1);
	assert_int_equal(c.calls, 1);
	assert_string_equal(c.daemons[0], "karl");
	assert_string_equal(c.messages[0], "crashed: signal 11 SIGSEGV at "
	    "address 0x10: out of luck");
	assert_false(file_exists(f->dir, "karl.4242.crash"));
	/* an unfinished report is left alone */
	assert_true(file_exists(f->dir, "karl.4243.crash.tmp"));
	assert_int_equal(count_entries(f->dir), 1);
	/* nothing left to do */
	assert_int_equal(crash_collect(f->dir, "karl", store_cb, &c), 0);
	assert_int_equal(c.calls, 1);
}

static void
test_collect_store_fails_kept(void **state)
{
	struct fixture *f = *state;
	struct store_ctx c = { .result = -1 };

	put_file(f->dir, "karl.4242.crash", good_report);
	assert_int_equal(crash_collect(f->dir, "karl", store_cb, &c), 0);
	assert_int_equal(c.calls, 1);
	/* kept under its own name (no claimed leftovers) for the next try */
	assert_true(file_exists(f->dir, "karl.4242.crash"));
	assert_int_equal(count_entries(f->dir), 1);
	c.result = 0;
	assert_int_equal(crash_collect(f->dir, NULL, store_cb, &c), 1);
	assert_int_equal(c.calls, 2);
	assert_int_equal(count_entries(f->dir), 0);
}

static void
test_collect_filters_and_garbage(void **state)
{
	struct fixture *f = *state;
	struct store_ctx c = { .result = 0 };
	char other[sizeof(good_report) + 16];

	snprintf(other, sizeof(other), "%s", good_report);
	memcpy(other, "daemon: web \n", 13);	/* "web " is not a name */
	put_file(f->dir, "web.1.crash", "daemon: web\npid: 1\nsignal: 8 "
	    "SIGFPE\n\nbt\n");
	put_file(f->dir, "karlx.2.crash", good_report);
	put_file(f->dir, "karl.3.crash", "this is not a crash report\n");
	put_file(f->dir, "karl.notes", "unrelated\n");
	/* only karl's: the garbage one is removed, nothing stored */
	assert_int_equal(crash_collect(f->dir, "karl", store_cb, &c), 0);
	assert_int_equal(c.calls, 0);
	assert_false(file_exists(f->dir, "karl.3.crash"));
	assert_true(file_exists(f->dir, "web.1.crash"));
	assert_true(file_exists(f->dir, "karlx.2.crash"));
	assert_true(file_exists(f->dir, "karl.notes"));
	/* every daemon's */
	assert_int_equal(crash_collect(f->dir, NULL, store_cb, &c), 2);
	assert_int_equal(c.calls, 2);
	assert_false(file_exists(f->dir, "web.1.crash"));
	assert_false(file_exists(f->dir, "karlx.2.crash"));
	assert_true(file_exists(f->dir, "karl.notes"));
}

static void
test_collect_claims(void **state)
{
	struct fixture *f = *state;
	struct store_ctx c = { .result = 0 };
	char name[128];
	pid_t dead;
	int st;

	/* a pid that is certainly gone: a reaped child */
	dead = fork();
	assert_true(dead != -1);
	if (dead == 0)
		_exit(0);
	assert_int_equal(waitpid(dead, &st, 0), dead);
	snprintf(name, sizeof(name), "karl.10.crash.claimed.%ld", (long)dead);
	put_file(f->dir, name, good_report);
	/* claimed by a live process (this one): not ours to take */
	snprintf(name, sizeof(name), "karl.11.crash.claimed.%ld",
	    (long)getpid());
	put_file(f->dir, name, good_report);
	assert_int_equal(crash_collect(f->dir, "karl", store_cb, &c), 1);
	assert_int_equal(c.calls, 1);
	assert_true(file_exists(f->dir, name));
	assert_int_equal(count_entries(f->dir), 1);
}

static void
test_collect_bad_dir(void **state)
{
	struct fixture *f = *state;
	struct store_ctx c = { .result = 0 };
	char path[PATH_MAX + 16];

	snprintf(path, sizeof(path), "%s/none", f->dir);
	assert_int_equal(crash_collect(path, NULL, store_cb, &c), 0);
	put_file(f->dir, "plain", "x");
	snprintf(path, sizeof(path), "%s/plain", f->dir);
	assert_int_equal(crash_collect(path, NULL, store_cb, &c), -1);
	assert_int_equal(c.calls, 0);
}

/* Real crashes. */

/*
 * __ubsan_handle_type_mismatch_v1_abort - interposed for sanitizer builds.
 *
 * crash_trigger crashes by storing through a NULL pointer.  Built with
 * -fsanitize=null and -fno-sanitize-recover, UBSan calls this handler
 * before the store, and its report ends the process with exit status 1:
 * no SIGSEGV, no crash report.  Unrecoverable checks cannot be suppressed
 * at run time, so this test binary defines the handler itself (the
 * instrumented code linked into it binds to this definition): a NULL
 * pointer is turned back into the real fault UBSan stood in front of, a
 * store to address 0 from a frame called by crash_trigger; any other
 * report goes to the runtime's own handler.  In an uninstrumented build
 * nothing calls this.
 */
void	__ubsan_handle_type_mismatch_v1_abort(void *, void *);

__attribute__((no_sanitize_undefined, no_sanitize_address, noinline))
void
__ubsan_handle_type_mismatch_v1_abort(void *data, void *ptr)
{
	void (*real)(void *, void *);

	if (ptr == NULL) {
		volatile int *volatile zero = NULL;

		*zero = 1;
	}
	*(void **)&real = dlsym(RTLD_NEXT,
	    "__ubsan_handle_type_mismatch_v1_abort");
	if (real != NULL)
		real(data, ptr);
	abort();
}

/*
 * crash_child_main - runs in the re-executed child: argv[2] is the crash
 * dir, argv[3] "segv" (crash_trigger) or "panic".
 */
static int
crash_child_main(int argc, char **argv)
{
	if (argc != 4)
		return 3;
	log_init("crashtest", 1);
	if (crash_init("crashtest", "9.9.9", argv[2]) == -1)
		return 4;
	if (strcmp(argv[3], "panic") == 0)
		panic("panicked on purpose %d", 42);
	crash_note("noted reason\nsecond line is dropped");
	crash_trigger();
}

/*
 * run_crash_child - fork, exec this binary as a crash child with
 * sanitizer options that leave SIGSEGV to our handler; returns the pid and
 * the wait status.
 */
static pid_t
run_crash_child(const char *dir, const char *how, int *status)
{
	/*
	 * Sanitizer options are read when a process starts, hence the exec.
	 * ASan lets a later sigaction replace its SEGV handler
	 * (allow_user_segv_handler, the default); handle_segv=0 makes sure
	 * it never reports the fault itself.  The child dies by a signal, so
	 * there is no leak check to run.  Everything is prepared before
	 * fork(): the child only redirects stderr and executes.
	 */
	static char asan[] = "ASAN_OPTIONS=handle_segv=0:handle_abort=0:"
	    "allow_user_segv_handler=1:detect_leaks=0";
	char self[PATH_MAX], a1[] = CHILD_ARG, a2[PATH_MAX], a3[16];
	char *const args[] = { self, a1, a2, a3, NULL };
	char **envp;
	size_t i, n;
	ssize_t len;
	pid_t pid;
	int fd;

	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	assert_true(len > 0);
	self[len] = '\0';
	snprintf(a2, sizeof(a2), "%s", dir);
	snprintf(a3, sizeof(a3), "%s", how);
	for (n = 0; environ[n] != NULL; n++)
		;
	envp = calloc(n + 2, sizeof(*envp));
	assert_non_null(envp);
	for (i = n = 0; environ[i] != NULL; i++)
		if (strncmp(environ[i], "ASAN_OPTIONS=", 13) != 0)
			envp[n++] = environ[i];
	envp[n] = asan;
	fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	assert_true(fd != -1);
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		dup2(fd, STDERR_FILENO);
		execve(self, args, envp);
		_exit(127);
	}
	close(fd);
	free(envp);
	assert_int_equal(waitpid(pid, status, 0), pid);
	return pid;
}

static void
test_real_segv(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX + 64], want[64], *text;
	json_t *ev;
	pid_t pid;
	int st = 0;

	pid = run_crash_child(f->dir, "segv", &st);
	if (!WIFSIGNALED(st))
		fail_msg("child exited with %d instead of dying of a signal",
		    WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	assert_int_equal(WTERMSIG(st), SIGSEGV);
	snprintf(path, sizeof(path), "%s/crashtest.%ld.crash", f->dir,
	    (long)pid);
	text = read_file(path);
	assert_non_null(text);
	assert_non_null(strstr(text, "daemon: crashtest\n"));
	snprintf(want, sizeof(want), "\npid: %ld\n", (long)pid);
	assert_non_null(strstr(text, want));
	assert_non_null(strstr(text, "\nversion: 9.9.9\n"));
	assert_non_null(strstr(text, "\nsignal: 11 SIGSEGV\n"));
	/* the faulting address (0 today; crash_trigger may fault elsewhere) */
	assert_non_null(strstr(text, "\naddress: 0x"));
	assert_non_null(strstr(text, "\nreason: noted reason\n"));
	assert_null(strstr(text, "second line"));
	/* the backtrace names the function that crashed */
	assert_non_null(strstr(text, "(crash_trigger+"));
	/* complete: only the final name, no .tmp */
	assert_int_equal(count_entries(f->dir), 1);

	ev = crash_parse(text, strlen(text));
	assert_non_null(ev);
	assert_string_equal(jstr(ev, F_EV_DAEMON), "crashtest");
	assert_int_equal(json_integer_value(json_object_get(ev, F_EV_PID)),
	    pid);
	assert_non_null(strstr(jstr(ev, F_EV_BACKTRACE), "crash_trigger"));
	assert_true(strncmp(jstr(ev, F_EV_MESSAGE), "crashed: signal 11 "
	    "SIGSEGV at address 0x", 35) == 0);
	assert_non_null(strstr(jstr(ev, F_EV_MESSAGE), ": noted reason"));
	json_decref(ev);
	free(text);
}

static void
test_real_panic(void **state)
{
	struct fixture *f = *state;
	struct store_ctx c = { .result = 0 };
	char path[PATH_MAX + 64], *text;
	pid_t pid;
	int st = 0;

	pid = run_crash_child(f->dir, "panic", &st);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGABRT);
	snprintf(path, sizeof(path), "%s/crashtest.%ld.crash", f->dir,
	    (long)pid);
	text = read_file(path);
	assert_non_null(text);
	assert_non_null(strstr(text, "\nsignal: 6 SIGABRT\n"));
	assert_non_null(strstr(text, "\nreason: panicked on purpose 42\n"));
	/* panic's own frame may be its unnamed .cold part: ask only for
	 * abort and a few frames */
	assert_non_null(strstr(text, "(abort+"));
	assert_true(strstr(text, "\n\n") != NULL &&
	    strchr(strchr(strstr(text, "\n\n") + 2, '\n') + 1, '\n') != NULL);
	free(text);
	/* and errord's path: collected, stored, deleted */
	assert_int_equal(crash_collect(f->dir, "crashtest", store_cb, &c), 1);
	assert_true(strncmp(c.messages[0], "crashed: signal 6 SIGABRT", 25)
	    == 0);
	assert_non_null(strstr(c.messages[0], ": panicked on purpose 42"));
	assert_int_equal(count_entries(f->dir), 0);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_minimal),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_parse_time_range),
		cmocka_unit_test(test_parse_time_out_of_range),
		cmocka_unit_test_setup_teardown(test_collect_stored_deleted,
		    setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_collect_store_fails_kept,
		    setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(
		    test_collect_filters_and_garbage, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_collect_claims,
		    setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_collect_bad_dir,
		    setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_real_segv, setup_dir,
		    teardown_dir),
		cmocka_unit_test_setup_teardown(test_real_panic, setup_dir,
		    teardown_dir),
	};

	if (argc > 1 && strcmp(argv[1], CHILD_ARG) == 0)
		return crash_child_main(argc, argv);
	/* crash_collect logs what it removes: keep the output readable */
	log_init("test_crash", 1);
	log_set_level(LOG_LVL_ERROR);
	/* GROUPS_TEST_FILTER=pattern runs only the matching tests */
	if (getenv("GROUPS_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("GROUPS_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
