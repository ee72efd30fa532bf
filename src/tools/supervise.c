/* SPDX-License-Identifier: MIT */
/*
 * supervise.c - groups-supervise [-b] -c services -p pidfile -r rundir
 * -l logdir: the local stack's process supervisor (production: systemd).
 * Services file lines: "name[@ipv4:port] command arg..." ('...'/"..."
 * quote blanks; '#' comments).  Children start in file order, with stdin
 * /dev/null, output appended to logdir/name.log, their own process group
 * and rundir/name.pid; a ready address holds the next start until it
 * accepts connections (10 s at most).  A child that exits is restarted
 * after 200 ms doubling to 10 s (reset after 30 s up).  SIGTERM, SIGINT or
 * SIGHUP: TERM all but the first (the log sink), then the first, KILL
 * after 10 s each, remove pid files, exit 0.  Signals are taken with
 * sigtimedwait: no handler races, no busy loop.  -b detaches (stdio to
 * logdir/supervise.log).  The pidfile is flock()ed: one supervisor per file.
 * SECURITY: keeps the privileges it was started with; runs only the
 * commands of the services file.
 */
#include <sys/types.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SV_MAX_SERVICES 64
#define SV_MAX_ARGS 64
#define SV_MAX_LINE 4096
#define SV_MAX_FILE (256 * 1024)
#define SV_MAX_NAME 64
#define SV_BACKOFF_MIN 200   /* ms */
#define SV_BACKOFF_MAX 10000 /* ms */
#define SV_STABLE_MS 30000   /* uptime that resets the backoff */
#define SV_STOP_MS 10000     /* SIGTERM to SIGKILL */
#define SV_MAX_FD 65536	     /* closed in the child before exec */
#define SV_READY_MS 10000    /* wait for a ready address */
#define SV_READY_POLL 50     /* ms between connection attempts */

struct service {
	char name[SV_MAX_NAME + 1];
	char *argv[SV_MAX_ARGS + 1];
	struct sockaddr_in ready; /* name@addr:port; port 0: none */
	pid_t pid;		  /* 0: not running */
	long long started;	  /* monotonic ms */
	long long restart_at;	  /* monotonic ms; 0: none pending */
	long backoff;		  /* ms before the next restart */
	unsigned starts;
};

static struct service services[SV_MAX_SERVICES];
static int nservices;
static const char *progname = "groups-supervise";
static const char *rundir;
static const char *logdir;

static void sv_log(const char *, ...) __attribute__((format(printf, 1, 2)));
static void sv_die(const char *, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/* sv_log - one timestamped line on stderr. */
static void
sv_log(const char *fmt, ...)
{
	char ts[64], msg[1024];
	struct timespec now;
	struct tm tm;
	va_list ap;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	if (strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		ts[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap); /* truncation is fine */
	va_end(ap);
	fprintf(stderr, "%s.%03ldZ %s[%ld]: %s\n", ts,
	    (long)(now.tv_nsec / 1000000), progname, (long)getpid(), msg);
}

/* sv_die - log and exit 1 (start-up errors only). */
static void
sv_die(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s\n", progname, msg);
	exit(1);
}

/* now_ms - monotonic milliseconds. */
static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* path_join - dir "/" name suffix into buf; -1 if it does not fit. */
static int
path_join(char *buf, size_t size, const char *dir, const char *name,
    const char *suffix)
{
	int n;

	n = snprintf(buf, size, "%s/%s%s", dir, name, suffix);
	return (n < 0 || (size_t)n >= size) ? -1 : 0;
}

/* valid_name - service names become file names: [A-Za-z0-9_.-], no
 * leading dot. */
static int
valid_name(const char *s)
{
	size_t i;

	if (s[0] == '\0' || s[0] == '.' || strlen(s) > SV_MAX_NAME)
		return 0;
	for (i = 0; s[i] != '\0'; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' &&
		    s[i] != '-' && s[i] != '.')
			return 0;
	return 1;
}

/* parse_name - "name" or "name@ipv4:port" (the ready address) into sv. */
static int
parse_name(struct service *sv, char *word, const char **why)
{
	char *at, *colon, *end;
	long port;

	if ((at = strchr(word, '@')) != NULL) {
		*at++ = '\0';
		if ((colon = strrchr(at, ':')) == NULL) {
			*why = "ready address must be ipv4:port";
			return -1;
		}
		*colon++ = '\0';
		errno = 0;
		port = strtol(colon, &end, 10);
		if (errno != 0 || *end != '\0' || port < 1 || port > 65535 ||
		    inet_pton(AF_INET, at, &sv->ready.sin_addr) != 1) {
			*why = "ready address must be ipv4:port";
			return -1;
		}
		sv->ready.sin_family = AF_INET;
		sv->ready.sin_port = htons((unsigned short)port);
	}
	if (!valid_name(word)) {
		*why = "bad service name";
		return -1;
	}
	memcpy(sv->name, word, strlen(word) + 1);
	return 0;
}

/* next_word - split the next word off *pp in place: runs of blanks end a
 * word; '...' and "..." quote blanks and '#' (no escapes).  -1 on an
 * unterminated quote. */
static int
next_word(char **pp, char **wordp)
{
	char *r = *pp, *w = *pp, q;

	*wordp = w;
	while (*r != '\0' && *r != ' ' && *r != '\t') {
		if (*r == '\'' || *r == '"') {
			q = *r++;
			while (*r != '\0' && *r != q)
				*w++ = *r++;
			if (*r++ != q)
				return -1;
			continue;
		}
		*w++ = *r++;
	}
	if (*r != '\0')
		r++;
	*w = '\0';
	*pp = r;
	return 0;
}

/* parse_line - one services-file line into a new service; modifies line.
 * Returns 0 (also for blank and comment lines) or -1 with a reason. */
static int
parse_line(char *line, const char **why)
{
	struct service *sv;
	char *p, *word;
	int argc = 0;

	p = line;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0' || *p == '#')
		return 0;
	if (nservices == SV_MAX_SERVICES) {
		*why = "too many services";
		return -1;
	}
	sv = &services[nservices];
	memset(sv, 0, sizeof(*sv));
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0' || *p == '#')
			break; /* a comment starts a word */
		if (next_word(&p, &word) == -1) {
			*why = "unterminated quote";
			return -1;
		}
		if (sv->name[0] == '\0') {
			if (parse_name(sv, word, why) == -1)
				return -1;
			continue;
		}
		if (argc == SV_MAX_ARGS) {
			*why = "too many arguments";
			return -1;
		}
		if ((sv->argv[argc++] = strdup(word)) == NULL) {
			*why = "out of memory";
			return -1;
		}
	}
	if (argc == 0) {
		*why = "service has no command";
		return -1;
	}
	sv->argv[argc] = NULL;
	for (argc = 0; argc < nservices; argc++)
		if (strcmp(services[argc].name, sv->name) == 0) {
			*why = "duplicate service name";
			return -1;
		}
	sv->backoff = SV_BACKOFF_MIN;
	nservices++;
	return 0;
}

/* load_services - read and parse the services file; exits on error. */
static void
load_services(const char *path)
{
	char line[SV_MAX_LINE + 2];
	const char *why = NULL;
	size_t total = 0, len;
	int lineno = 0;
	FILE *fp;

	if ((fp = fopen(path, "re")) == NULL)
		sv_die("%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), fp) != NULL) {
		lineno++;
		len = strlen(line);
		total += len;
		if (total > SV_MAX_FILE)
			sv_die("%s: file too large", path);
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		else if (!feof(fp))
			sv_die("%s:%d: line too long", path, lineno);
		if (parse_line(line, &why) == -1)
			sv_die("%s:%d: %s", path, lineno, why);
	}
	if (ferror(fp))
		sv_die("%s: read error", path);
	fclose(fp);
	if (nservices == 0)
		sv_die("%s: no services", path);
}

/* write_pidfile - write pid to path atomically (tmp + rename). */
static int
write_pidfile(const char *path, pid_t pid)
{
	char tmp[PATH_MAX], buf[32];
	int fd, n;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -1;
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)pid);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) ==
	    -1)
		return -1;
	if (write(fd, buf, (size_t)n) != n) {
		close(fd);
		unlink(tmp);
		return -1;
	}
	close(fd);
	if (rename(tmp, path) == -1) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* service_pidfile - rundir/name.pid into buf. */
static int
service_pidfile(const struct service *sv, char *buf, size_t size)
{
	return path_join(buf, size, rundir, sv->name, ".pid");
}

/* child_exec - in the forked child: stdio, signals, fds, then exec.
 * Never returns. */
static void
child_exec(struct service *sv)
{
	char logpath[PATH_MAX];
	sigset_t none;
	int fd, i;

	setpgid(0, 0);
	sigemptyset(&none);
	for (i = 1; i < NSIG; i++)
		signal(i, SIG_DFL); /* EINVAL for some: harmless */
	sigprocmask(SIG_SETMASK, &none, NULL);

	if ((fd = open("/dev/null", O_RDONLY)) == -1 || dup2(fd, 0) == -1)
		_exit(126);
	if (fd > 2)
		close(fd);
	if (path_join(logpath, sizeof(logpath), logdir, sv->name, ".log") == -1)
		_exit(126);
	fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0640);
	if (fd == -1 || dup2(fd, 1) == -1 || dup2(fd, 2) == -1)
		_exit(126);
	if (fd > 2)
		close(fd);
	/* Our own fds are close-on-exec; these are inherited ones. */
	if (close_range(3, ~0U, 0) == -1) {
		long max = sysconf(_SC_OPEN_MAX);

		if (max < 0 || max > SV_MAX_FD)
			max = SV_MAX_FD;
		for (fd = 3; fd < max; fd++)
			close(fd);
	}
	if (strchr(sv->argv[0], '/') != NULL)
		execv(sv->argv[0], sv->argv);
	else
		execvp(sv->argv[0], sv->argv);
	fprintf(stderr, "%s: exec %s: %s\n", progname, sv->argv[0],
	    strerror(errno));
	_exit(127);
}

/* service_start - fork and exec sv, write its pid file. */
static void
service_start(struct service *sv)
{
	char pidpath[PATH_MAX];
	pid_t pid;

	sv->restart_at = 0;
	if ((pid = fork()) == -1) {
		sv_log("fork %s: %s; retry in %ld ms", sv->name,
		    strerror(errno), sv->backoff);
		sv->restart_at = now_ms() + sv->backoff;
		return;
	}
	if (pid == 0)
		child_exec(sv);
	/* Both sides call setpgid so a kill(-pid) right away finds it. */
	setpgid(pid, pid);
	sv->pid = pid;
	sv->started = now_ms();
	sv->starts++;
	if (service_pidfile(sv, pidpath, sizeof(pidpath)) == -1 ||
	    write_pidfile(pidpath, pid) == -1)
		sv_log("%s: cannot write pid file in %s: %s", sv->name, rundir,
		    strerror(errno));
	sv_log("%s %s pid %ld", sv->starts == 1 ? "start" : "restart", sv->name,
	    (long)pid);
}

/* describe_status - "exit N" or "signal N (name)" into buf. */
static void
describe_status(int status, char *buf, size_t size)
{
	if (WIFEXITED(status))
		snprintf(buf, size, "exit %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, size, "signal %d (%s)%s", WTERMSIG(status),
		    strsignal(WTERMSIG(status)),
		    WCOREDUMP(status) ? ", core dumped" : "");
	else
		snprintf(buf, size, "status 0x%x", (unsigned)status);
}

/* reap - collect every exited child; schedule restarts unless stopping. */
static void
reap(int stopping)
{
	struct service *sv;
	char st[128], pidpath[PATH_MAX];
	long long up;
	pid_t pid;
	int status, i;

	for (;;) {
		pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
			return; /* 0: none left; -1: ECHILD */
		sv = NULL;
		for (i = 0; i < nservices; i++)
			if (services[i].pid == pid)
				sv = &services[i];
		if (sv == NULL)
			continue; /* not ours (cannot happen) */
		describe_status(status, st, sizeof(st));
		up = now_ms() - sv->started;
		sv->pid = 0;
		if (service_pidfile(sv, pidpath, sizeof(pidpath)) == 0)
			unlink(pidpath);
		if (stopping) {
			sv_log("exit %s pid %ld: %s", sv->name, (long)pid, st);
			continue;
		}
		if (up >= SV_STABLE_MS)
			sv->backoff = SV_BACKOFF_MIN;
		sv->restart_at = now_ms() + sv->backoff;
		sv_log("exit %s pid %ld: %s after %lld.%03lld s; restart in "
		       "%ld ms",
		    sv->name, (long)pid, st, up / 1000, up % 1000, sv->backoff);
		sv->backoff *= 2;
		if (sv->backoff > SV_BACKOFF_MAX)
			sv->backoff = SV_BACKOFF_MAX;
	}
}

/* running - the number of children in services[lo, hi) still alive. */
static int
running(int lo, int hi)
{
	int i, n = 0;

	for (i = lo; i < hi; i++)
		if (services[i].pid > 0)
			n++;
	return n;
}

/* signal_range - sig to the process group of every running child in
 * services[lo, hi) (or to the child alone if it left its group). */
static void
signal_range(int lo, int hi, int sig)
{
	int i;

	for (i = lo; i < hi; i++) {
		if (services[i].pid <= 0)
			continue;
		if (kill(-services[i].pid, sig) == -1)
			kill(services[i].pid, sig);
	}
}

/* stop_range - TERM services[lo, hi), wait up to SV_STOP_MS, KILL the
 * rest and reap them. */
static void
stop_range(const sigset_t *set, int lo, int hi)
{
	char pidpath[PATH_MAX];
	struct timespec ts;
	long long deadline, left;
	siginfo_t si;
	int i;

	if (running(lo, hi) == 0)
		return;
	signal_range(lo, hi, SIGTERM);
	deadline = now_ms() + SV_STOP_MS;
	reap(1);
	while (running(lo, hi) > 0 && (left = deadline - now_ms()) > 0) {
		ts.tv_sec = left / 1000;
		ts.tv_nsec = (left % 1000) * 1000000;
		(void)sigtimedwait(set, &si, &ts); /* any outcome */
		reap(1);
	}
	if (running(lo, hi) == 0)
		return;
	for (i = lo; i < hi; i++)
		if (services[i].pid > 0)
			sv_log("%s pid %ld did not stop in %d s: SIGKILL",
			    services[i].name, (long)services[i].pid,
			    SV_STOP_MS / 1000);
	signal_range(lo, hi, SIGKILL);
	/* SIGKILL cannot be caught: each wait ends promptly. */
	for (i = lo; i < hi; i++) {
		if (services[i].pid <= 0 ||
		    waitpid(services[i].pid, NULL, 0) <= 0)
			continue;
		if (service_pidfile(&services[i], pidpath, sizeof(pidpath)) ==
		    0)
			unlink(pidpath);
		services[i].pid = 0;
	}
}

/* shutdown_all - stop every service; the first one (the log sink, errord)
 * last, so it still takes what the others log while they stop. */
static void
shutdown_all(const sigset_t *set)
{
	sv_log("stopping %d service(s)", running(0, nservices));
	stop_range(set, 1, nservices);
	stop_range(set, 0, 1);
}

/* start_due - start every service whose restart time has come. */
static void
start_due(void)
{
	long long t = now_ms();
	int i;

	for (i = 0; i < nservices; i++)
		if (services[i].pid == 0 && services[i].restart_at &&
		    services[i].restart_at <= t)
			service_start(&services[i]);
}

/* try_connect - 0 if something accepts TCP connections at sv's ready
 * address. */
static int
try_connect(const struct service *sv)
{
	int fd, rc;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	rc =
	    connect(fd, (const struct sockaddr *)&sv->ready, sizeof(sv->ready));
	close(fd);
	return rc;
}

/* wait_ready - after the first start of a service with a ready address,
 * wait up to SV_READY_MS for it to accept connections, so the services
 * after it find it up.  Returns 1 if a stop signal came meanwhile. */
static int
wait_ready(struct service *sv, const sigset_t *set)
{
	struct timespec ts = {0, SV_READY_POLL * 1000000L};
	long long deadline = now_ms() + SV_READY_MS;
	siginfo_t si;
	int sig;

	while (now_ms() < deadline) {
		/* One that exits meanwhile is restarted: keep waiting. */
		if (sv->pid > 0 && try_connect(sv) == 0) {
			sv_log("%s ready", sv->name);
			return 0;
		}
		sig = sigtimedwait(set, &si, &ts);
		if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
			sv_log("%s received", strsignal(sig));
			return 1;
		}
		if (sig == SIGCHLD)
			reap(0);
		start_due(); /* services before this one keep restarting */
	}
	sv_log("%s not ready after %d s; starting the others", sv->name,
	    SV_READY_MS / 1000);
	return 0;
}

/* lock_pidfile - open and flock path; exits if another supervisor holds
 * it.  Returns the fd (kept open for life). */
static int
lock_pidfile(const char *path)
{
	int fd;

	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) == -1)
		sv_die("%s: %s", path, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EWOULDBLOCK)
			sv_die("%s: another supervisor is running", path);
		sv_die("%s: flock: %s", path, strerror(errno));
	}
	return fd;
}

/* store_pid - write pid into the locked pidfile fd. */
static void
store_pid(int fd, const char *path, pid_t pid)
{
	char buf[32];
	int n;

	n = snprintf(buf, sizeof(buf), "%ld\n", (long)pid);
	if (ftruncate(fd, 0) == -1 || pwrite(fd, buf, (size_t)n, 0) != n)
		sv_die("%s: %s", path, strerror(errno));
}

/* detach - fork; the parent records the child's pid and exits 0; the child
 * starts a new session with stdio on logdir/supervise.log, so it holds no
 * pipe of whoever started it. */
static void
detach(int pidfd, const char *pidfile)
{
	char logpath[PATH_MAX];
	pid_t pid;
	int fd;

	if (path_join(logpath, sizeof(logpath), logdir, "supervise", ".log") ==
	    -1)
		sv_die("%s: path too long", logdir);
	if ((fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
		 0640)) == -1)
		sv_die("%s: %s", logpath, strerror(errno));
	fflush(NULL);
	if ((pid = fork()) == -1)
		sv_die("fork: %s", strerror(errno));
	if (pid > 0) {
		store_pid(pidfd, pidfile, pid);
		_exit(0);
	}
	if (setsid() == -1)
		sv_die("setsid: %s", strerror(errno));
	if (dup2(fd, 1) == -1 || dup2(fd, 2) == -1)
		sv_die("dup2: %s", strerror(errno));
	close(fd);
	if ((fd = open("/dev/null", O_RDONLY)) != -1) {
		dup2(fd, 0);
		if (fd > 2)
			close(fd);
	}
	/* Hold no inherited fd (a caller's lock file, say) but the pidfile. */
	if (pidfd > 3)
		close_range(3, (unsigned)pidfd - 1, 0);
	close_range((unsigned)pidfd + 1, ~0U, 0);
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: %s [-b] -c services -p pidfile -r rundir "
	    "-l logdir\n",
	    progname);
	exit(2);
}

/* on_signal - never runs (the signals stay blocked); a handler instead
 * of SIG_DFL so that SIGCHLD is queued on every system. */
static void
on_signal(int sig)
{
	(void)sig;
}

int
main(int argc, char **argv)
{
	const char *conf = NULL, *pidfile = NULL;
	struct sigaction sa;
	struct timespec ts;
	sigset_t set;
	siginfo_t si;
	long long next, t;
	int ch, background = 0, pidfd, i, sig, stop = 0;

	while ((ch = getopt(argc, argv, "bc:p:r:l:h")) != -1) {
		switch (ch) {
		case 'b':
			background = 1;
			break;
		case 'c':
			conf = optarg;
			break;
		case 'p':
			pidfile = optarg;
			break;
		case 'r':
			rundir = optarg;
			break;
		case 'l':
			logdir = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc || conf == NULL || pidfile == NULL ||
	    rundir == NULL || logdir == NULL)
		usage();
	load_services(conf);
	if (access(rundir, W_OK | X_OK) == -1)
		sv_die("%s: %s", rundir, strerror(errno));
	if (access(logdir, W_OK | X_OK) == -1)
		sv_die("%s: %s", logdir, strerror(errno));

	/* Block the signals we wait for before any child exists. */
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGCHLD, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (sigprocmask(SIG_BLOCK, &set, NULL) == -1)
		sv_die("sigprocmask: %s", strerror(errno));

	pidfd = lock_pidfile(pidfile);
	if (background)
		detach(pidfd, pidfile);
	else
		store_pid(pidfd, pidfile, getpid());

	sv_log("supervising %d service(s) from %s", nservices, conf);
	for (i = 0; i < nservices && !stop; i++) {
		service_start(&services[i]);
		if (services[i].ready.sin_port != 0 && services[i].pid > 0)
			stop = wait_ready(&services[i], &set);
	}

	while (!stop) {
		/* Sleep until a signal or the earliest pending restart. */
		next = -1;
		for (i = 0; i < nservices; i++)
			if (services[i].pid == 0 && services[i].restart_at &&
			    (next == -1 || services[i].restart_at < next))
				next = services[i].restart_at;
		if (next == -1) {
			sig = sigwaitinfo(&set, &si);
		} else {
			t = next - now_ms();
			if (t < 0)
				t = 0;
			ts.tv_sec = t / 1000;
			ts.tv_nsec = (t % 1000) * 1000000;
			sig = sigtimedwait(&set, &si, &ts);
		}
		if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
			sv_log("%s received", strsignal(sig));
			stop = 1;
			break;
		}
		if (sig == SIGCHLD)
			reap(0);
		start_due();
	}

	shutdown_all(&set);
	sv_log("stopped");
	unlink(pidfile);
	close(pidfd);
	for (i = 0; i < nservices; i++)
		for (ch = 0; services[i].argv[ch] != NULL; ch++)
			free(services[i].argv[ch]);
	return 0;
}
