/* SPDX-License-Identifier: MIT */
/*
 * errtail - show and follow errord's log, the operator's view of the whole
 * system's errors and crashes.
 *
 *	errtail [-c config] [-u url] [-f] [-n N] [--level L] [--daemon D]
 *		[--since T] [--text S] [--json] [--color=auto|always|never]
 *
 * It reads the configuration (-c, $GROUPS_CONF, /etc/groups/groups.conf)
 * for errord's address and the system secret, asks GET /v1/tail through
 * errord_clnt and prints one readable line per event (time in UTC, daemon
 * and pid, level, message, fields, correlation id; backtraces indented),
 * coloured by level on a terminal; --json prints errord's lines as they
 * are.  Event text is untrusted: control characters are shown escaped, so
 * no event can send terminal escape sequences.  Exit status: 0 done, 1
 * errord unreachable or refusing, 2 usage or configuration error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api_proto.h"
#include "config.h"
#include "errord_clnt.h"
#include "log.h"
#include "strbuf.h"
#include "token.h"

#define ERRTAIL_TIMEOUT_MS	120000	/* history only; follow: none */

enum { OPT_LEVEL = 256, OPT_DAEMON, OPT_SINCE, OPT_TEXT, OPT_JSON,
    OPT_COLOR };

struct errtail {
	int		 json;
	int		 color;
	int		 follow;
	unsigned long	 shown;
	json_int_t	 last_seq;	/* highest seq printed; 0: none */
};

static const char *const level_color[] = {
	[LOG_LVL_DEBUG] = "\033[2m",
	[LOG_LVL_INFO] = "\033[32m",
	[LOG_LVL_WARN] = "\033[33m",
	[LOG_LVL_ERROR] = "\033[31m",
	[LOG_LVL_CRIT] = "\033[1;37;41m",
};
#define COLOR_OFF	"\033[0m"
#define COLOR_BOLD	"\033[1m"

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr,
	    "usage: errtail [-c config] [-u url] [-f] [-n N] [--level L] "
	    "[--daemon D]\n"
	    "               [--since T] [--text S] [--json] "
	    "[--color=auto|always|never]\n"
	    "  -c file     configuration (default $GROUPS_CONF or "
	    "/etc/groups/groups.conf)\n"
	    "  -u url      errord's URL (default from the configuration)\n"
	    "  -f          follow: keep printing new events until "
	    "interrupted\n"
	    "  -n N        the last N matching events (default %d, at most "
	    "%d)\n"
	    "  --level L   at least this level: debug info warn error crit\n"
	    "  --daemon D  only this daemon's events\n"
	    "  --since T   RFC 3339 time, unix seconds, or an age such as "
	    "90s 10m 2h 3d\n"
	    "  --text S    message or backtrace contains S (any case)\n"
	    "  --json      print errord's JSON lines unchanged\n"
	    "  --color=W   colour by level: auto (a terminal), always, "
	    "never\n", ERRORD_TAIL_DEFAULT, ERRORD_TAIL_MAX);
	exit(2);
}

/* since_arg - an age like "10m" to unix seconds (into buf); other forms
 * are passed on to errord_since_parse unchanged. */
static const char *
since_arg(const char *s, char *buf, size_t len)
{
	char	*end;
	long long n, mul;

	errno = 0;
	n = strtoll(s, &end, 10);
	if (end == s || errno != 0 || n < 0 || end[0] == '\0' ||
	    end[1] != '\0')
		return s;
	switch (end[0]) {
	case 's': mul = 1; break;
	case 'm': mul = 60; break;
	case 'h': mul = 3600; break;
	case 'd': mul = 86400; break;
	default: return s;
	}
	if (n > 100LL * 365 * 86400 / mul)
		return s;
	snprintf(buf, len, "%lld", (long long)time(NULL) - n * mul);
	return buf;
}

/* put_text - s with control characters escaped; newlines start an
 * indented continuation line. */
static void
put_text(struct strbuf *sb, const char *s, const char *indent)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '\n')
			strbuf_appendf(sb, "\n%s", indent);
		else if (c == '\t')
			strbuf_putc(sb, '\t');
		else if (c < 0x20 || c == 0x7f)
			strbuf_appendf(sb, "\\x%02x", c);
		else
			strbuf_putc(sb, (char)c);
	}
}

/* put_value - a field value: strings bare unless they need quotes. */
static void
put_value(struct strbuf *sb, json_t *v)
{
	const char *s;
	char	*j;

	if (json_is_string(v)) {
		s = json_string_value(v);
		if (*s != '\0' && strpbrk(s, " \"=\t\n") == NULL) {
			put_text(sb, s, "");
			return;
		}
	}
	if ((j = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY)) != NULL) {
		put_text(sb, j, "");
		free(j);
	}
}

/* print_event - one readable event: the line, then its backtrace. */
static void
print_event(struct errtail *et, json_t *ev)
{
	struct strbuf *sb = strbuf_new(256);
	const char *t, *key, *s;
	json_t	*v;
	int64_t	 us;
	time_t	 sec;
	struct tm tm;
	int	 lvl;

	t = json_string_value(json_object_get(ev, F_EV_TIME));
	if (t != NULL && errord_time_parse(t, &us) == 0) {
		sec = (time_t)(us / 1000000);
		gmtime_r(&sec, &tm);
		strbuf_appendf(sb, "%04d-%02d-%02d %02d:%02d:%02d.%03d ",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec, (int)(us % 1000000 / 1000));
	} else {
		put_text(sb, t != NULL ? t : "-", "");
		strbuf_putc(sb, ' ');
	}
	s = json_string_value(json_object_get(ev, F_EV_DAEMON));
	if (et->color)
		strbuf_puts(sb, COLOR_BOLD);
	put_text(sb, s != NULL ? s : "?", "");
	if (et->color)
		strbuf_puts(sb, COLOR_OFF);
	strbuf_appendf(sb, "[%lld] ",
	    (long long)json_integer_value(json_object_get(ev, F_EV_PID)));
	lvl = errord_event_level(ev);
	s = json_string_value(json_object_get(ev, F_EV_LEVEL));
	if (et->color && lvl >= 0)
		strbuf_puts(sb, level_color[lvl]);
	put_text(sb, s != NULL ? s : "?", "");
	if (et->color && lvl >= 0)
		strbuf_puts(sb, COLOR_OFF);
	strbuf_puts(sb, ": ");
	s = json_string_value(json_object_get(ev, F_EV_MESSAGE));
	put_text(sb, s != NULL ? s : "", "    ");
	json_object_foreach(json_object_get(ev, F_EV_FIELDS), key, v) {
		strbuf_putc(sb, ' ');
		put_text(sb, key, "");
		strbuf_putc(sb, '=');
		put_value(sb, v);
	}
	if ((s = json_string_value(json_object_get(ev, F_EV_CID))) != NULL) {
		strbuf_puts(sb, " cid=");
		put_text(sb, s, "");
	}
	strbuf_putc(sb, '\n');
	if ((s = json_string_value(json_object_get(ev, F_EV_BACKTRACE))) !=
	    NULL && *s != '\0') {
		strbuf_puts(sb, "    ");
		put_text(sb, s, "    ");
		if (sb->len >= 5 &&
		    memcmp(sb->buf + sb->len - 5, "\n    ", 5) == 0)
			strbuf_truncate(sb, sb->len - 4);
		else
			strbuf_putc(sb, '\n');
	}
	fwrite(sb->buf, 1, sb->len, stdout);
	strbuf_free(sb);
}

/* on_event - errord_tail_fn: print one event. */
static int
on_event(void *ctx, json_t *ev, const char *line, size_t len)
{
	struct errtail *et = ctx;
	json_int_t seq = json_integer_value(json_object_get(ev, F_EV_SEQ));

	/* After a reconnect the history overlaps what was printed. */
	if (seq > 0 && seq <= et->last_seq)
		return 0;
	if (seq > et->last_seq)
		et->last_seq = seq;
	if (et->json) {
		fwrite(line, 1, len, stdout);
		putchar('\n');
	} else
		print_event(et, ev);
	if (et->follow)
		fflush(stdout);
	et->shown++;
	return ferror(stdout) ? 1 : 0;
}

struct params {
	const char	*v[6];	/* daemon level since text limit follow */
};

/* param - errord_param_fn over the command line. */
static const char *
param(void *ctx, const char *key)
{
	static const char *const keys[] = { Q_TAIL_DAEMON, Q_TAIL_LEVEL,
	    Q_TAIL_SINCE, Q_TAIL_TEXT, Q_TAIL_LIMIT, Q_TAIL_FOLLOW };
	struct params *p = ctx;
	size_t	 i;

	for (i = 0; i < NELEM(keys); i++)
		if (strcmp(key, keys[i]) == 0)
			return p->v[i];
	return NULL;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "level", required_argument, NULL, OPT_LEVEL },
		{ "daemon", required_argument, NULL, OPT_DAEMON },
		{ "since", required_argument, NULL, OPT_SINCE },
		{ "text", required_argument, NULL, OPT_TEXT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "color", optional_argument, NULL, OPT_COLOR },
		{ "colour", optional_argument, NULL, OPT_COLOR },
		{ "follow", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct errord_tail_query q;
	struct errord_clnt *clnt;
	struct params p;
	struct errtail et;
	const char *conf = getenv("GROUPS_CONF"), *color = "auto";
	char	 err[512], since[32], api[2 * TOKEN_KEY_LEN + 1];
	char	*url = NULL;
	long	 status;
	int	 ch, rc, ever;

	memset(&p, 0, sizeof(p));
	memset(&et, 0, sizeof(et));
	if (conf == NULL || *conf == '\0')
		conf = "/etc/groups/groups.conf";
	while ((ch = getopt_long(argc, argv, "c:u:fn:h", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'c': conf = optarg; break;
		case 'u': url = optarg; break;
		case 'f': et.follow = 1; p.v[5] = "1"; break;
		case 'n': p.v[4] = optarg; break;
		case OPT_DAEMON: p.v[0] = optarg; break;
		case OPT_LEVEL: p.v[1] = optarg; break;
		case OPT_SINCE:
			p.v[2] = since_arg(optarg, since, sizeof(since));
			break;
		case OPT_TEXT: p.v[3] = optarg; break;
		case OPT_JSON: et.json = 1; break;
		case OPT_COLOR: color = optarg != NULL ? optarg : "always";
			break;
		default: usage();
		}
	}
	if (optind != argc)
		usage();
	if (strcmp(color, "always") == 0)
		et.color = 1;
	else if (strcmp(color, "auto") == 0)
		et.color = isatty(STDOUT_FILENO);
	else if (strcmp(color, "never") != 0)
		usage();
	/* The same decoder errord runs: bad values fail here, not there. */
	if (errord_tail_query_decode(&q, param, &p, err, sizeof(err)) < 0) {
		fprintf(stderr, "errtail: %s\n", err);
		return 2;
	}

	log_init("errtail", 1);
	log_set_level(LOG_LVL_CRIT);	/* our own messages say it better */
	if (config_load(&cfg, conf, err, sizeof(err)) < 0 ||
	    config_load_secret(&cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "errtail: bad configuration: %s\n", err);
		return 2;
	}
	token_derive_hex(cfg.secret, strlen(cfg.secret), "api", api);
	url = url != NULL ? xstrdup(url) : config_url(&cfg, cfg.errord_port);

	clnt = errord_clnt_new(url, api);
	rc = errord_clnt_tail(clnt, &q, et.follow ? 0 : ERRTAIL_TIMEOUT_MS,
	    on_event, &et, &status, err, sizeof(err));
	fflush(stdout);
	/*
	 * Following: errord restarted or went away after we were connected.
	 * Reconnect every second until interrupted; the new history is
	 * deduplicated by seq, which errord keeps across restarts.
	 */
	ever = rc >= 0 || status == 200;
	while (et.follow && ever && (rc >= 0 || status == 0 ||
	    status == 200)) {
		struct timespec pause = { 1, 0 };

		if (rc >= 0 || status == 200)
			fprintf(stderr, "errtail: errord ended the stream; "
			    "reconnecting\n");
		nanosleep(&pause, NULL);
		q.limit = ERRORD_TAIL_MAX;
		rc = errord_clnt_tail(clnt, &q, 0, on_event, &et, &status, err,
		    sizeof(err));
		fflush(stdout);
	}
	clnt = errord_clnt_free(clnt);
	if (rc < 0) {
		if (status == 0)
			fprintf(stderr, "errtail: cannot reach errord at %s\n",
			    url);
		else
			fprintf(stderr, "errtail: %s\n", err);
	}
	free(url);
	config_free(&cfg);
	return rc < 0 ? 1 : 0;
}
