/* SPDX-License-Identifier: MIT */
/*
 * config.c - the one typed configuration table of the system.
 *
 * Every key is declared once below with type, default, bounds and a line of
 * documentation (Postfix's parameter tables, Redis's standardConfig).  The
 * parser is strict: unknown or repeated keys, malformed lines, numbers out
 * of range and bad booleans are errors naming file and line, so a typo never
 * silently runs with a default.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bounds.h"
#include "config.h"
#include "strbuf.h"
#include "xalloc.h"

struct config cfg;

enum config_type { CT_STR, CT_INT, CT_LONG, CT_BOOL, CT_ENUM };

struct config_key {
	const char	*name;
	enum config_type type;
	size_t		 off;
	const char	*def;
	long long	 min, max;
	const char	*choices;	/* CT_ENUM: "a|b|c" */
	const char	*doc;
};

#define K_STR(n, d, doc)	{ #n, CT_STR, offsetof(struct config, n), d, \
				  0, 0, NULL, doc }
#define K_INT(n, d, lo, hi, doc) { #n, CT_INT, offsetof(struct config, n), \
				  d, lo, hi, NULL, doc }
#define K_LONG(n, d, lo, hi, doc) { #n, CT_LONG, offsetof(struct config, n),\
				  d, lo, hi, NULL, doc }
#define K_BOOL(n, d, doc)	{ #n, CT_BOOL, offsetof(struct config, n), d, \
				  0, 1, NULL, doc }
#define K_ENUM(n, d, ch, doc)	{ #n, CT_ENUM, offsetof(struct config, n), d, \
				  0, 0, ch, doc }
#define K_PORT(n, d, doc)	K_INT(n, d, 1, 65535, doc)

static const struct config_key config_keys[] = {
	K_STR(var_dir, "/var/lib/groups",
	    "state directory; ${var_dir} in other values expands to it"),
	K_STR(crash_dir, "${var_dir}/crash",
	    "where the crash handler writes reports for errord"),
	K_STR(secret_file, "/etc/groups/secret",
	    "file holding the system secret (API auth, token keys)"),
	K_STR(templates_dir, "/usr/share/groups/templates",
	    "HTML and mail templates"),
	K_STR(user, "", "drop privileges to this user when started as root"),
	K_STR(domain, "lists.localhost", "mail domain of the groups"),
	K_STR(public_url, "https://localhost:8443",
	    "URL of the web UI as users see it"),
	K_ENUM(log_level, "info", "debug|info|warn|error|crit",
	    "lowest level that is logged"),
	K_INT(log_queue, "20000", 100, 1000000,
	    "events queued for errord before new ones are dropped"),
	K_STR(listen_host, "127.0.0.1", "address the daemons listen on"),
	K_LONG(http_max_body, "1048576", 1024, HTTP_MAX_BODY_LIMIT,
	    "default bound on an HTTP request body, bytes"),
	K_INT(http_threads, "2", 1, 64, "HTTP server threads per daemon"),
	K_INT(http_timeout_ms, "10000", 100, 600000,
	    "total timeout of one call between daemons"),
	K_BOOL(debug_endpoints, "no",
	    "serve test-only endpoints such as POST /v1/debug/crash"),
	K_STR(db_conninfo, "dbname=groups", "libpq connection string"),
	K_INT(db_pool, "4", 1, DB_POOL_MAX, "connections per daemon"),
	K_PORT(errord_port, "17100", "errord HTTP port"),
	K_STR(errord_dir, "${var_dir}/errord", "errord's event store"),
	K_LONG(errord_rotate_size, "67108864", 65536, 17179869184LL,
	    "rotate the event file at this size, bytes"),
	K_INT(errord_keep_files, "20", 1, 10000,
	    "rotated event files kept"),
	K_INT(errord_keep_days, "30", 0, 3650,
	    "delete event files older than this (0: no age limit)"),
	K_INT(errord_ring, "65536", 1024, 4194304,
	    "recent events kept in memory for tail -f"),
	K_BOOL(errord_sync, "yes",
	    "fdatasync the store before acknowledging events"),
	K_INT(errord_heartbeat, "15", 1, 3600,
	    "seconds between empty lines to idle tail -f clients"),
	K_PORT(web_port, "17101", "web HTTP port (behind nginx)"),
	K_PORT(web_public_port, "8443", "HTTPS port nginx serves the web on"),
	K_PORT(smtpd_port, "17102", "smtpd HTTP port (API, nginx auth_http)"),
	K_PORT(smtpd_smtp_port, "17125", "smtpd SMTP port (behind nginx)"),
	K_PORT(smtp_public_port, "2525", "SMTP port nginx listens on"),
	K_LONG(smtpd_max_message, "26214400", 1024, MSG_MAX_SIZE_LIMIT,
	    "largest message accepted, bytes"),
	K_STR(smtpd_xclient_hosts, "127.0.0.1",
	    "comma-separated addresses allowed to send XCLIENT"),
	K_STR(smtpd_hostname, "", "name in the greeting and Received: "
	    "(empty: domain)"),
	K_STR(smtpd_tls_cert, "", "PEM certificate for STARTTLS "
	    "(empty: no STARTTLS)"),
	K_STR(smtpd_tls_key, "", "PEM private key of smtpd_tls_cert"),
	K_INT(smtpd_max_rcpts, "100", 1, SMTP_MAX_RCPTS,
	    "recipients per message"),
	K_INT(smtpd_max_conns, "500", 1, 100000, "SMTP sessions in total"),
	K_INT(smtpd_max_conns_per_ip, "20", 1, 100000,
	    "SMTP sessions per client address"),
	K_INT(smtpd_max_errors, "10", 1, 1000,
	    "bad commands before the session is closed"),
	K_INT(smtpd_cmd_timeout, "300", 1, 3600,
	    "seconds to wait for a command"),
	K_INT(smtpd_data_timeout, "600", 1, 7200,
	    "seconds to wait for the message data"),
	K_INT(smtpd_session_deadline, "1800", 1, 86400,
	    "seconds a whole SMTP session may last (421 4.4.2)"),
	K_INT(smtpd_data_deadline, "900", 1, 86400,
	    "seconds from DATA's 354 to the final dot (421 4.4.2)"),
	K_INT(smtpd_max_junk, "50", 1, 100000,
	    "commands without progress (NOOP, RSET, HELP, VRFY, EXPN, "
	    "a repeated HELO/EHLO) between accepted messages (421 4.7.0)"),
	K_STR(dns_resolver, "", "DNS server as ip or ip:port "
	    "(empty: the system resolver, /etc/resolv.conf)"),
	K_INT(dns_timeout_ms, "2000", 100, 30000,
	    "timeout of one DNS query, milliseconds"),
	K_INT(dns_cache_entries, "10000", 0, 1000000,
	    "DNS answers cached in memory per daemon (0: no cache)"),
	K_PORT(messageserver_port, "17103", "messageserver HTTP port"),
	K_INT(messageserver_fanout_threads, "2", 1, 32,
	    "threads handing posts and notices to karl"),
	K_INT(messageserver_outbox_lease, "60", 2, 3600,
	    "seconds an outbox entry stays claimed; after a crash it is "
	    "taken up again this long after its last progress"),
	K_PORT(karl_port, "17104", "karl HTTP port"),
	K_STR(karl_spool_dir, "${var_dir}/karl", "karl's leveldb spool"),
	K_ENUM(karl_transport, "smtp", "smtp|maildir",
	    "smtp: deliver over SMTP; maildir: write each message under "
	    "karl_maildir (local runs)"),
	K_STR(karl_maildir, "${var_dir}/mail",
	    "where the maildir transport writes (one maildir per recipient)"),
	K_STR(karl_relay_host, "127.0.0.1", "SMTP relay karl delivers to "
	    "(empty: straight to each domain's MX)"),
	K_PORT(karl_relay_port, "25", "port of karl_relay_host"),
	K_ENUM(karl_relay_tls, "try", "no|try|require",
	    "STARTTLS towards the relay (or MX): never, when offered, always"),
	K_STR(karl_relay_ca_file, "", "PEM file of the CA certificates that "
	    "karl_relay_tls = require trusts instead of the system's (empty: "
	    "the system's)"),
	K_STR(karl_relay_user, "", "SMTP AUTH user at the relay (empty: none)"),
	K_STR(karl_relay_password_file, "",
	    "file holding the SMTP AUTH password"),
	K_STR(karl_helo, "", "EHLO name (empty: smtpd_hostname or domain)"),
	K_INT(karl_concurrency, "20", 1, 1000,
	    "SMTP transactions in flight in total"),
	K_INT(karl_domain_concurrency, "10", 1, 1000,
	    "SMTP transactions in flight per destination domain"),
	K_INT(karl_workers, "2", 1, 64,
	    "threads rendering footers and signing (one per core)"),
	K_INT(karl_smtp_timeout, "120", 5, 3600,
	    "seconds one SMTP transaction may take"),
	K_INT(karl_retry_min, "60", 1, 86400,
	    "first retry after a temporary failure, seconds (doubles, "
	    "with jitter)"),
	K_INT(karl_retry_max, "3600", 1, 604800,
	    "longest wait between retries, seconds"),
	K_INT(karl_max_age, "432000", 10, 2592000,
	    "give up on a receiver this many seconds after its job came"),
	K_STR(dkim_keys, "", "DKIM keys: comma-separated \"domain selector "
	    "pem-file\" triples; RSA and Ed25519 keys of a domain both sign"),
	K_INT(bounce_soft_days, "7", 1, 365,
	    "soft bounces that persist this many days make an address "
	    "bouncing"),
	K_INT(bounce_probes, "3", 1, 20,
	    "unanswered bounce probes before an address is marked bounced"),
	K_INT(bounce_probe_days, "7", 1, 90,
	    "days between bounce probes to a bouncing address"),
	K_INT(bounce_event_days, "90", 7, 3650,
	    "bounce events older than this many days are removed"),
	K_STR(forward_rules, "", "forward addresses of the main domain: "
	    "comma-separated \"local-part target-address\" pairs (rules in "
	    "the forward_rules table come first)"),
	K_INT(confirm_days, "7", 1, 60,
	    "days a subscription or command confirmation stays valid"),
};

#define FIELD(c, k, t)	((t *)(void *)((char *)(c) + (k)->off))
#define CFIELD(c, k, t)	((const t *)(const void *)((const char *)(c) + (k)->off))
#define CSTR(c, k)	(*(char *const *)(const void *)((const char *)(c) + (k)->off))

static const struct config_key *
config_find(const char *name)
{
	size_t i;

	for (i = 0; i < NELEM(config_keys); i++)
		if (strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	return NULL;
}

/* config_number - strict integer with optional K/M/G (1024-based). */
static int
config_number(const char *s, long long *out)
{
	char *end;
	long long v, mul = 1;

	if (*s == '\0' || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s)
		return -1;
	switch (*end) {
	case 'k': case 'K': mul = 1024LL; end++; break;
	case 'm': case 'M': mul = 1024LL * 1024; end++; break;
	case 'g': case 'G': mul = 1024LL * 1024 * 1024; end++; break;
	}
	if (*end != '\0')
		return -1;
	if (v > LLONG_MAX / mul || v < LLONG_MIN / mul)
		return -1;
	*out = v * mul;
	return 0;
}

static int
config_bool(const char *s)
{
	if (!strcmp(s, "yes") || !strcmp(s, "true") || !strcmp(s, "on") ||
	    !strcmp(s, "1"))
		return 1;
	if (!strcmp(s, "no") || !strcmp(s, "false") || !strcmp(s, "off") ||
	    !strcmp(s, "0"))
		return 0;
	return -1;
}

static int
config_choice(const char *choices, const char *s)
{
	size_t n = strlen(s);
	const char *p = choices;

	while (*p != '\0') {
		size_t w = strcspn(p, "|");

		if (w == n && n > 0 && strncmp(p, s, n) == 0)
			return 0;
		p += w;
		if (*p == '|')
			p++;
	}
	return -1;
}

/* config_set - store value for key; on error a reason in err. */
static int
config_set(struct config *c, const struct config_key *k, const char *value,
    char *err, size_t errlen)
{
	long long v;
	int b;

	switch (k->type) {
	case CT_STR:
		free(*FIELD(c, k, char *));
		*FIELD(c, k, char *) = xstrdup(value);
		return 0;
	case CT_ENUM:
		if (config_choice(k->choices, value) == -1) {
			snprintf(err, errlen, "%s: \"%s\" is not one of %s",
			    k->name, value, k->choices);
			return -1;
		}
		free(*FIELD(c, k, char *));
		*FIELD(c, k, char *) = xstrdup(value);
		return 0;
	case CT_BOOL:
		if ((b = config_bool(value)) == -1) {
			snprintf(err, errlen, "%s: \"%s\" is not yes or no",
			    k->name, value);
			return -1;
		}
		*FIELD(c, k, int) = b;
		return 0;
	case CT_INT:
	case CT_LONG:
		if (config_number(value, &v) == -1) {
			snprintf(err, errlen, "%s: \"%s\" is not a number",
			    k->name, value);
			return -1;
		}
		if (v < k->min || v > k->max) {
			snprintf(err, errlen, "%s: %lld is out of range "
			    "%lld..%lld", k->name, v, k->min, k->max);
			return -1;
		}
		if (k->type == CT_INT)
			*FIELD(c, k, int) = (int)v;
		else
			*FIELD(c, k, long) = (long)v;
		return 0;
	}
	return -1;
}

void
config_defaults(struct config *c)
{
	char err[256];
	size_t i;

	memset(c, 0, sizeof(*c));
	for (i = 0; i < NELEM(config_keys); i++)
		if (config_set(c, &config_keys[i], config_keys[i].def, err,
		    sizeof(err)) == -1)
			abort();	/* a bad default is a build bug */
}

/* config_expand - replace ${var_dir} in every string value. */
static void
config_expand(struct config *c)
{
	static const char var[] = "${var_dir}";
	size_t i;

	for (i = 0; i < NELEM(config_keys); i++) {
		const struct config_key *k = &config_keys[i];
		char **sp, *p;
		struct strbuf *sb;

		if (k->type != CT_STR || strcmp(k->name, "var_dir") == 0)
			continue;
		sp = FIELD(c, k, char *);
		if (strstr(*sp, var) == NULL)
			continue;
		sb = strbuf_new(64);
		for (p = *sp; *p != '\0';) {
			if (strncmp(p, var, sizeof(var) - 1) == 0) {
				strbuf_puts(sb, c->var_dir);
				p += sizeof(var) - 1;
			} else
				strbuf_putc(sb, *p++);
		}
		free(*sp);
		*sp = strbuf_detach(sb, NULL);
	}
}

/* config_check - relations between keys. */
static int
config_check(const struct config *c, const char *name, char *err,
    size_t errlen)
{
	struct { const char *key; int port; } p[] = {
		{ "errord_port", c->errord_port },
		{ "web_port", c->web_port },
		{ "smtpd_port", c->smtpd_port },
		{ "smtpd_smtp_port", c->smtpd_smtp_port },
		{ "messageserver_port", c->messageserver_port },
		{ "karl_port", c->karl_port },
	};
	size_t i, j;

	for (i = 0; i < NELEM(p); i++)
		for (j = i + 1; j < NELEM(p); j++)
			if (p[i].port == p[j].port) {
				snprintf(err, errlen, "%s: %s and %s are both "
				    "%d", name, p[i].key, p[j].key, p[i].port);
				return -1;
			}
	if (c->var_dir[0] != '/') {
		snprintf(err, errlen, "%s: var_dir must be an absolute path",
		    name);
		return -1;
	}
	return 0;
}

int
config_parse(struct config *c, const char *text, size_t len,
    const char *name, char *err, size_t errlen)
{
	unsigned char seen[NELEM(config_keys)];
	char line[CONFIG_MAX_LINE + 1], reason[300];
	size_t pos = 0;
	int lineno = 0;

	memset(seen, 0, sizeof(seen));
	config_defaults(c);
	if (len > CONFIG_MAX_FILE) {
		snprintf(err, errlen, "%s: larger than %d bytes", name,
		    CONFIG_MAX_FILE);
		return -1;
	}
	while (pos < len) {
		const struct config_key *k;
		size_t n = 0, ke;
		char *p, *eq, *key, *val, *end;

		lineno++;
		while (pos < len && text[pos] != '\n') {
			if (text[pos] == '\0') {
				snprintf(err, errlen, "%s:%d: NUL byte", name,
				    lineno);
				return -1;
			}
			if (n >= CONFIG_MAX_LINE) {
				snprintf(err, errlen, "%s:%d: line longer "
				    "than %d bytes", name, lineno,
				    CONFIG_MAX_LINE);
				return -1;
			}
			line[n++] = text[pos++];
		}
		pos++;		/* the newline */
		line[n] = '\0';
		if (n > 0 && line[n - 1] == '\r')
			line[--n] = '\0';
		for (p = line; isspace((unsigned char)*p); p++)
			;
		if (*p == '\0' || *p == '#')
			continue;
		if ((eq = strchr(p, '=')) == NULL) {
			snprintf(err, errlen, "%s:%d: expected \"key = value\"",
			    name, lineno);
			return -1;
		}
		key = p;
		for (end = eq; end > key && isspace((unsigned char)end[-1]);)
			end--;
		*end = '\0';
		for (ke = 0; key[ke] != '\0'; ke++)
			if (!islower((unsigned char)key[ke]) &&
			    !isdigit((unsigned char)key[ke]) && key[ke] != '_')
				break;
		if (key[0] == '\0' || key[ke] != '\0') {
			snprintf(err, errlen, "%s:%d: bad key \"%.64s\"", name,
			    lineno, key);
			return -1;
		}
		for (val = eq + 1; isspace((unsigned char)*val); val++)
			;
		for (end = val + strlen(val);
		    end > val && isspace((unsigned char)end[-1]);)
			end--;
		*end = '\0';
		if (end - val >= 2 && val[0] == '"' && end[-1] == '"') {
			end[-1] = '\0';
			val++;
		}
		if ((k = config_find(key)) == NULL) {
			snprintf(err, errlen, "%s:%d: unknown key \"%.64s\"",
			    name, lineno, key);
			return -1;
		}
		if (seen[k - config_keys]++) {
			snprintf(err, errlen, "%s:%d: %s is set twice", name,
			    lineno, key);
			return -1;
		}
		if (config_set(c, k, val, reason, sizeof(reason)) == -1) {
			snprintf(err, errlen, "%s:%d: %s", name, lineno,
			    reason);
			return -1;
		}
	}
	config_expand(c);
	return config_check(c, name, err, errlen);
}

/* read_small_file - whole file up to max bytes (allocated) or NULL. */
static char *
read_small_file(const char *path, size_t max, size_t *lenp, char *err,
    size_t errlen)
{
	struct strbuf *sb;
	char buf[4096];
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	sb = strbuf_new(4096);
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (sb->len + (size_t)n > max) {
			snprintf(err, errlen, "%s: larger than %zu bytes", path,
			    max);
			goto fail;
		}
		strbuf_append(sb, buf, (size_t)n);
	}
	close(fd);
	return strbuf_detach(sb, lenp);
fail:
	close(fd);
	strbuf_free(sb);
	return NULL;
}

int
config_load(struct config *c, const char *path, char *err, size_t errlen)
{
	char *text;
	size_t len;
	int rc;

	if (path == NULL) {
		config_defaults(c);
		config_expand(c);
		return config_check(c, "defaults", err, errlen);
	}
	if ((text = read_small_file(path, CONFIG_MAX_FILE, &len, err,
	    errlen)) == NULL) {
		config_defaults(c);
		return -1;
	}
	rc = config_parse(c, text, len, path, err, errlen);
	free(text);
	c->path = xstrdup(path);
	return rc;
}

int
config_load_secret(struct config *c, char *err, size_t errlen)
{
	char *s;
	size_t len;

	if ((s = read_small_file(c->secret_file, CONFIG_MAX_SECRET, &len, err,
	    errlen)) == NULL)
		return -1;
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		s[--len] = '\0';
	if (len < 16 || strlen(s) != len) {
		snprintf(err, errlen, "%s: secret must be at least 16 bytes "
		    "of text", c->secret_file);
		free(s);
		return -1;
	}
	free(c->secret);
	c->secret = s;
	return 0;
}

char *
config_get(const struct config *c, const char *key)
{
	const struct config_key *k = config_find(key);

	if (k == NULL)
		return NULL;
	switch (k->type) {
	case CT_STR:
	case CT_ENUM:
		return xstrdup(CSTR(c, k));
	case CT_BOOL:
		return xstrdup(*CFIELD(c, k, int) ? "yes" : "no");
	case CT_INT:
		return xasprintf("%d", *CFIELD(c, k, int));
	case CT_LONG:
		return xasprintf("%ld", *CFIELD(c, k, long));
	}
	return NULL;
}

void
config_print(const struct config *c, FILE *fp)
{
	size_t i;

	for (i = 0; i < NELEM(config_keys); i++) {
		char *v = config_get(c, config_keys[i].name);
		size_t n = strlen(v);
		/* Quote what the parser would otherwise trim or unquote. */
		int q = n > 0 && (isspace((unsigned char)v[0]) ||
		    isspace((unsigned char)v[n - 1]) ||
		    (n >= 2 && v[0] == '"' && v[n - 1] == '"'));

		fprintf(fp, q ? "%s = \"%s\"\n" : "%s = %s\n",
		    config_keys[i].name, v);
		free(v);
	}
}

void
config_print_doc(FILE *fp)
{
	static const char *tname[] = { "string", "integer", "integer",
	    "yes/no", "choice" };
	size_t i;

	fprintf(fp, "| key | type | default | meaning |\n|---|---|---|---|\n");
	for (i = 0; i < NELEM(config_keys); i++) {
		const struct config_key *k = &config_keys[i];

		fprintf(fp, "| `%s` | %s", k->name, tname[k->type]);
		if (k->type == CT_INT || k->type == CT_LONG)
			fprintf(fp, " %lld..%lld", k->min, k->max);
		if (k->type == CT_ENUM) {
			const char *c;

			fputc(' ', fp);
			for (c = k->choices; *c != '\0'; c++)
				fputs(*c == '|' ? ", " : (char[2]){ *c, 0 }, fp);
		}
		if (k->def[0] == '\0')
			fprintf(fp, " | (empty) | %s |\n", k->doc);
		else
			fprintf(fp, " | `%s` | %s |\n", k->def, k->doc);
	}
}

void
config_free(struct config *c)
{
	size_t i;

	for (i = 0; i < NELEM(config_keys); i++)
		if (config_keys[i].type == CT_STR ||
		    config_keys[i].type == CT_ENUM) {
			char **sp = FIELD(c, &config_keys[i], char *);

			free(*sp);
			*sp = NULL;
		}
	free(c->path);
	c->path = NULL;
	free(c->secret);
	c->secret = NULL;
}

char *
config_url(const struct config *c, int port)
{
	return xasprintf("http://%s:%d", c->listen_host, port);
}
