/* SPDX-License-Identifier: MIT */
/*
 * crash.c - write a backtrace when the process dies on a fatal signal, and
 * turn such reports into errord events.
 *
 * The handler runs on an alternate stack (so a stack overflow is reported
 * too) and uses only async-signal-safe calls: open, write, fsync, rename,
 * backtrace_symbols_fd.  Everything it needs (paths, names) is formatted at
 * start-up; backtrace() is called once then so that libgcc is already
 * loaded, since loading it inside the handler would allocate.
 */
#include <dirent.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api_proto.h"
#include "bounds.h"
#include "crash.h"
#include "fsutil.h"
#include "log.h"
#include "strbuf.h"

static char crash_daemon[64];
static char crash_version[64];
static char crash_path[PATH_MAX];	/* dir/daemon. */
static char crash_reason[512];
static volatile sig_atomic_t crash_busy;

static const int crash_signals[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL,
    SIGABRT };

static const char *
crash_signame(int sig)
{
	switch (sig) {
	case SIGSEGV: return "SIGSEGV";
	case SIGBUS: return "SIGBUS";
	case SIGFPE: return "SIGFPE";
	case SIGILL: return "SIGILL";
	case SIGABRT: return "SIGABRT";
	}
	return "signal";
}

/* Async-signal-safe formatting helpers. */

static size_t
safe_cat(char *dst, size_t off, size_t cap, const char *s)
{
	while (*s != '\0' && off + 1 < cap)
		dst[off++] = *s++;
	dst[off] = '\0';
	return off;
}

static size_t
safe_num(char *dst, size_t off, size_t cap, unsigned long long v, int base)
{
	char tmp[32];
	int i = 0;

	do {
		tmp[i++] = "0123456789abcdef"[v % (unsigned)base];
		v /= (unsigned)base;
	} while (v != 0 && i < (int)sizeof(tmp));
	while (i > 0 && off + 1 < cap)
		dst[off++] = tmp[--i];
	dst[off] = '\0';
	return off;
}

static void
safe_write(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, s, n);

		if (w <= 0) {
			if (w == -1 && errno == EINTR)
				continue;
			return;
		}
		s += w;
		n -= (size_t)w;
	}
}

static void
crash_handler(int sig, siginfo_t *si, void *uc)
{
	void *frames[CRASH_MAX_FRAMES];
	char tmp[PATH_MAX + 32], fin[PATH_MAX + 32], hdr[1024];
	size_t o;
	int fd, n;

	(void)uc;
	if (crash_busy) {		/* crashed while reporting */
		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
	crash_busy = 1;
	o = safe_cat(fin, 0, sizeof(fin), crash_path);
	o = safe_num(fin, o, sizeof(fin), (unsigned long long)getpid(), 10);
	safe_cat(fin, o, sizeof(fin), ".crash");
	o = safe_cat(tmp, 0, sizeof(tmp), fin);
	safe_cat(tmp, o, sizeof(tmp), ".tmp");

	o = safe_cat(hdr, 0, sizeof(hdr), "daemon: ");
	o = safe_cat(hdr, o, sizeof(hdr), crash_daemon);
	o = safe_cat(hdr, o, sizeof(hdr), "\npid: ");
	o = safe_num(hdr, o, sizeof(hdr), (unsigned long long)getpid(), 10);
	o = safe_cat(hdr, o, sizeof(hdr), "\nversion: ");
	o = safe_cat(hdr, o, sizeof(hdr), crash_version);
	o = safe_cat(hdr, o, sizeof(hdr), "\nsignal: ");
	o = safe_num(hdr, o, sizeof(hdr), (unsigned long long)sig, 10);
	o = safe_cat(hdr, o, sizeof(hdr), " ");
	o = safe_cat(hdr, o, sizeof(hdr), crash_signame(sig));
	/* si_addr means something only for faults the kernel raised */
	if (si != NULL && si->si_code > 0 && sig != SIGABRT) {
		o = safe_cat(hdr, o, sizeof(hdr), "\naddress: 0x");
		o = safe_num(hdr, o, sizeof(hdr),
		    (unsigned long long)(uintptr_t)si->si_addr, 16);
	}
	o = safe_cat(hdr, o, sizeof(hdr), "\ntime: ");
	o = safe_num(hdr, o, sizeof(hdr), (unsigned long long)time(NULL), 10);
	if (crash_reason[0] != '\0') {
		o = safe_cat(hdr, o, sizeof(hdr), "\nreason: ");
		o = safe_cat(hdr, o, sizeof(hdr), crash_reason);
	}
	o = safe_cat(hdr, o, sizeof(hdr), "\n\n");

	n = backtrace(frames, CRASH_MAX_FRAMES);
	safe_write(STDERR_FILENO, hdr, o);
	backtrace_symbols_fd(frames, n, STDERR_FILENO);
	if (crash_path[0] != '\0' &&
	    (fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640)) !=
	    -1) {
		safe_write(fd, hdr, o);
		backtrace_symbols_fd(frames, n, fd);
		fsync(fd);
		close(fd);
		rename(tmp, fin);
	}
	/* SA_RESETHAND restored the default action: die with the signal. */
	raise(sig);
}

void
crash_note(const char *msg)
{
	strlcpy_chk(crash_reason, msg, sizeof(crash_reason));
	/* one line in the report header */
	crash_reason[strcspn(crash_reason, "\r\n")] = '\0';
}

int
crash_init(const char *daemon, const char *version, const char *dir)
{
	static char altstack[64 * 1024];
	struct sigaction sa;
	stack_t ss;
	void *warm[2];
	size_t i;

	strlcpy_chk(crash_daemon, daemon, sizeof(crash_daemon));
	strlcpy_chk(crash_version, version, sizeof(crash_version));
	crash_path[0] = '\0';
	if (dir != NULL && *dir != '\0') {
		if (fsutil_mkdirs(dir, 0750) == -1)
			log_warn("crash: cannot create %s", dir);
		if (snprintf(crash_path, sizeof(crash_path), "%s/%s.", dir,
		    daemon) >= (int)sizeof(crash_path)) {
			log_err("crash: path %s too long", dir);
			crash_path[0] = '\0';
		}
	}
	backtrace(warm, 2);	/* load libgcc now, not in the handler */

	ss.ss_sp = altstack;
	ss.ss_size = sizeof(altstack);
	ss.ss_flags = 0;
	if (sigaltstack(&ss, NULL) == -1)
		log_warn("crash: sigaltstack");
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = crash_handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < NELEM(crash_signals); i++)
		if (sigaction(crash_signals[i], &sa, NULL) == -1) {
			log_warn("crash: sigaction %d", crash_signals[i]);
			return -1;
		}
	return 0;
}

/* Not instrumented: UBSan would stop at the null store before the fault
 * that the test wants to see. */
__attribute__((no_sanitize("undefined"))) void
crash_trigger(void)
{
	volatile int *volatile p = NULL;

	log_err("crash: crashing on purpose (debug endpoint)");
	*p = 1;
	abort();
}

json_t *
crash_parse(const char *text, size_t len)
{
	const char *p = text, *end = text + len, *nl;
	char daemon[ERRORD_NAME_MAX + 1] = "", version[64] = "", sig[64] = "";
	char addr[40] = "", reason[512] = "", now[40];
	long long pid = -1, when = 0;
	struct strbuf *msg;
	json_t *ev;
	struct tm tm;
	time_t t;

	/* Header: "key: value" lines up to an empty line. */
	while (p < end && *p != '\n') {
		const char *colon;
		size_t klen, vlen;
		char val[512];

		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			return NULL;
		colon = memchr(p, ':', (size_t)(nl - p));
		if (colon == NULL || colon + 1 >= nl || colon[1] != ' ')
			return NULL;
		klen = (size_t)(colon - p);
		vlen = (size_t)(nl - colon - 2);
		if (vlen >= sizeof(val))
			vlen = sizeof(val) - 1;
		memcpy(val, colon + 2, vlen);
		val[vlen] = '\0';
		if (klen == 6 && !memcmp(p, "daemon", 6))
			strlcpy_chk(daemon, val, sizeof(daemon));
		else if (klen == 3 && !memcmp(p, "pid", 3))
			pid = strtoll(val, NULL, 10);
		else if (klen == 7 && !memcmp(p, "version", 7))
			strlcpy_chk(version, val, sizeof(version));
		else if (klen == 6 && !memcmp(p, "signal", 6))
			strlcpy_chk(sig, val, sizeof(sig));
		else if (klen == 7 && !memcmp(p, "address", 7))
			strlcpy_chk(addr, val, sizeof(addr));
		else if (klen == 4 && !memcmp(p, "time", 4))
			when = strtoll(val, NULL, 10);
		else if (klen == 6 && !memcmp(p, "reason", 6))
			strlcpy_chk(reason, val, sizeof(reason));
		p = nl + 1;
	}
	if (p >= end || daemon[0] == '\0' || pid <= 0 || sig[0] == '\0' ||
	    strspn(daemon, "abcdefghijklmnopqrstuvwxyz0123456789_-") !=
	    strlen(daemon))
		return NULL;
	p++;	/* the empty line */
	/* Only years 1970..9999 are valid RFC 3339 here; else "now". */
	t = (when > 0 && when <= 253402300799LL) ? (time_t)when : time(NULL);
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%S.000000Z", &tm) == 0)
		return NULL;
	msg = strbuf_new(128);
	strbuf_appendf(msg, "crashed: signal %s", sig);
	if (addr[0] != '\0')
		strbuf_appendf(msg, " at address %s", addr);
	if (reason[0] != '\0')
		strbuf_appendf(msg, ": %s", reason);
	ev = json_object();
	json_object_set_new(ev, F_EV_TIME, json_string(now));
	json_object_set_new(ev, F_EV_DAEMON, json_string(daemon));
	json_object_set_new(ev, F_EV_PID, json_integer(pid));
	json_object_set_new(ev, F_EV_LEVEL, json_string("crit"));
	json_object_set_new(ev, F_EV_MESSAGE,
	    json_stringn_nocheck(msg->buf, msg->len));
	json_object_set_new(ev, F_EV_BACKTRACE,
	    json_stringn_nocheck(p, (size_t)(end - p)));
	if (version[0] != '\0')
		json_object_set_new(ev, F_EV_VERSION, json_string(version));
	strbuf_free(msg);
	/* Reject what jansson would not encode (invalid UTF-8). */
	{
		char *chk = json_dumps(ev, JSON_COMPACT);

		if (chk == NULL) {
			json_decref(ev);
			return NULL;
		}
		free(chk);
	}
	return ev;
}

/* crash_read - whole report (allocated) or NULL. */
static char *
crash_read(int dfd, const char *name, size_t *lenp)
{
	struct strbuf *sb;
	char buf[8192];
	ssize_t n;
	int fd;

	if ((fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1)
		return NULL;
	sb = strbuf_new(4096);
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		if (sb->len + (size_t)n > CRASH_MAX_FILE)
			break;	/* keep the head: it has the frames */
		strbuf_append(sb, buf, (size_t)n);
	}
	close(fd);
	return strbuf_detach(sb, lenp);
}

static int
has_suffix(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);

	return n > m && strcmp(s + n - m, suf) == 0;
}

/* claimed_by_dead - "x.crash.claimed.<pid>" whose claimer is gone. */
static int
claimed_by_dead(const char *name, size_t *baselen)
{
	const char *c = strstr(name, ".crash.claimed.");
	long pid;

	if (c == NULL)
		return 0;
	pid = strtol(c + 15, NULL, 10);
	*baselen = (size_t)(c - name) + 6;
	return pid > 0 && kill((pid_t)pid, 0) == -1 && errno == ESRCH;
}

int
crash_collect(const char *dir, const char *daemon, crash_store_fn store,
    void *ctx)
{
	char claimed[NAME_MAX + 64], orig[NAME_MAX + 1];
	struct dirent *de;
	DIR *d;
	size_t dl = daemon ? strlen(daemon) : 0, bl;
	int dfd, stored = 0;

	if ((d = opendir(dir)) == NULL)
		return errno == ENOENT ? 0 : -1;
	dfd = dirfd(d);
	while ((de = readdir(d)) != NULL) {
		char *text;
		size_t len;
		json_t *ev;

		if (daemon != NULL && (strncmp(de->d_name, daemon, dl) != 0 ||
		    de->d_name[dl] != '.'))
			continue;
		if (has_suffix(de->d_name, ".crash")) {
			strlcpy_chk(orig, de->d_name, sizeof(orig));
		} else if (claimed_by_dead(de->d_name, &bl) &&
		    bl < sizeof(orig)) {
			memcpy(orig, de->d_name, bl);
			orig[bl] = '\0';
			/* put it back, then claim it as usual */
			if (renameat(dfd, de->d_name, dfd, orig) == -1)
				continue;
		} else
			continue;
		snprintf(claimed, sizeof(claimed), "%s.claimed.%ld", orig,
		    (long)getpid());
		if (renameat(dfd, orig, dfd, claimed) == -1)
			continue;	/* someone else took it */
		text = crash_read(dfd, claimed, &len);
		ev = text ? crash_parse(text, len) : NULL;
		free(text);
		if (ev == NULL) {
			log_warnx("crash: %s/%s is not a crash report; "
			    "removed", dir, orig);
			unlinkat(dfd, claimed, 0);
			continue;
		}
		if (store(ev, ctx) == 0) {
			unlinkat(dfd, claimed, 0);
			stored++;
		} else
			renameat(dfd, claimed, dfd, orig);
		json_decref(ev);
	}
	closedir(d);
	return stored;
}
