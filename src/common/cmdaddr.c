/* SPDX-License-Identifier: MIT */
/*
 * cmdaddr.c - the local parts of our addresses: group, owners, bounces and
 * email commands (the forms are listed in cmdaddr.h), and the forward
 * rules of the configuration.
 *
 * Pure string work, no database: messageserver_rcpt.c asks the database
 * whether the group exists.  Every output is bounded and NUL-terminated;
 * anything outside the forms is -1, so an odd address is a 404 at RCPT
 * time and never reaches a command handler.
 */
#include <stdio.h>
#include <string.h>

#include "cmdaddr.h"
#include "xalloc.h"

enum arg_type { ARG_NONE, ARG_TOKEN, ARG_DATE, ARG_TOPIC, ARG_TAG };

/* The command table: the first row of a command is its main word.  Rows
 * with an argument are tried longest word first ("mute-tag" before
 * "mute"), which the order here guarantees. */
static const struct {
	const char		*word;
	enum cmdaddr_cmd	 cmd;
	enum arg_type		 arg;
} commands[] = {
	{ "subscribe",		CMDADDR_SUBSCRIBE,	ARG_NONE },
	{ "join",		CMDADDR_SUBSCRIBE,	ARG_NONE },
	{ "unsubscribe",	CMDADDR_UNSUBSCRIBE,	ARG_NONE },
	{ "leave",		CMDADDR_UNSUBSCRIBE,	ARG_NONE },
	{ "signoff",		CMDADDR_UNSUBSCRIBE,	ARG_NONE },
	{ "help",		CMDADDR_HELP,		ARG_NONE },
	{ "digest",		CMDADDR_DIGEST,		ARG_NONE },
	{ "plaindigest",	CMDADDR_PLAINDIGEST,	ARG_NONE },
	{ "summary",		CMDADDR_SUMMARY,	ARG_NONE },
	{ "special",		CMDADDR_SPECIAL,	ARG_NONE },
	{ "nomail",		CMDADDR_NOMAIL,		ARG_NONE },
	{ "single",		CMDADDR_SINGLE,		ARG_NONE },
	{ "individual",		CMDADDR_SINGLE,		ARG_NONE },
	{ "mail",		CMDADDR_SINGLE,		ARG_NONE },
	{ "confirm",		CMDADDR_CONFIRM,	ARG_TOKEN },
	{ "unsubscribe",	CMDADDR_UNSUBSCRIBE_TOKEN, ARG_TOKEN },
	{ "nomail-until",	CMDADDR_NOMAIL_UNTIL,	ARG_DATE },
	{ "mute-tag",		CMDADDR_MUTE_TAG,	ARG_TAG },
	{ "follow-tag",		CMDADDR_FOLLOW_TAG,	ARG_TAG },
	{ "mute",		CMDADDR_MUTE,		ARG_TOPIC },
	{ "follow",		CMDADDR_FOLLOW,		ARG_TOPIC },
	{ "approve",		CMDADDR_APPROVE,	ARG_TOKEN },
	{ "reject",		CMDADDR_REJECT,		ARG_TOKEN },
};
#define NCOMMANDS	(sizeof(commands) / sizeof(commands[0]))

#define OWNER_WORD	"owner"
#define BOUNCE_WORD	"bounces"

/* eq_lower - 1 if the n bytes at s equal word (lower case) ignoring ASCII
 * case, and word has exactly n bytes. */
static int
eq_lower(const char *s, size_t n, const char *word)
{
	size_t i;
	char c;

	if (strlen(word) != n)
		return 0;
	for (i = 0; i < n; i++) {
		c = s[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != word[i])
			return 0;
	}
	return 1;
}

/* group_ok - s (n bytes, lower-cased) would pass groups_name_check:
 * [a-z0-9], then [a-z0-9._-], ending in [a-z0-9], at most 64. */
static int
group_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > CMDADDR_GROUP_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		if ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9'))
			continue;
		if (i == 0 || i == n - 1 || strchr("._-", s[i]) == NULL)
			return 0;
	}
	return 1;
}

/* utf8_ok - s (n bytes) is well-formed UTF-8 (no overlongs, surrogates or
 * code points past U+10FFFF). */
static int
utf8_ok(const unsigned char *s, size_t n)
{
	size_t i = 0, k, len;
	unsigned cp, min;

	while (i < n) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((s[i] & 0xe0) == 0xc0) {
			len = 2, cp = s[i] & 0x1f, min = 0x80;
		} else if ((s[i] & 0xf0) == 0xe0) {
			len = 3, cp = s[i] & 0x0f, min = 0x800;
		} else if ((s[i] & 0xf8) == 0xf0) {
			len = 4, cp = s[i] & 0x07, min = 0x10000;
		} else
			return 0;
		if (n - i < len)
			return 0;
		for (k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}

int
cmdaddr_date(const char *s, int *y, int *m, int *d)
{
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
	    30, 31 };
	int yy, mm, dd, max;
	size_t i;

	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return -1;
	for (i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return -1;
	yy = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 +
	    (s[3] - '0');
	mm = (s[5] - '0') * 10 + (s[6] - '0');
	dd = (s[8] - '0') * 10 + (s[9] - '0');
	if (yy < 1970 || mm < 1 || mm > 12)
		return -1;
	max = mdays[mm - 1];
	if (mm == 2 && (yy % 4 == 0 && (yy % 100 != 0 || yy % 400 == 0)))
		max = 29;
	if (dd < 1 || dd > max)
		return -1;
	*y = yy;
	*m = mm;
	*d = dd;
	return 0;
}

/* arg_ok - s (n bytes) is a valid argument of type t. */
static int
arg_ok(enum arg_type t, const char *s, size_t n)
{
	char date[11];
	int y, m, d;
	size_t i;

	if (n == 0 || n > CMDADDR_ARG_MAX)
		return 0;
	switch (t) {
	case ARG_TOKEN:
		for (i = 0; i < n; i++)
			if (!((s[i] >= 'a' && s[i] <= 'z') ||
			    (s[i] >= 'A' && s[i] <= 'Z') ||
			    (s[i] >= '0' && s[i] <= '9') ||
			    s[i] == '.' || s[i] == '_' || s[i] == '-'))
				return 0;
		return 1;
	case ARG_DATE:
		if (n != 10)
			return 0;
		memcpy(date, s, n);
		date[n] = '\0';
		return cmdaddr_date(date, &y, &m, &d) == 0;
	case ARG_TOPIC:
		if (n > CMDADDR_TOPIC_DIGITS || s[0] == '0')
			return 0;
		for (i = 0; i < n; i++)
			if (s[i] < '0' || s[i] > '9')
				return 0;
		return 1;
	case ARG_TAG:
		if (n > CMDADDR_TAG_MAX)
			return 0;
		for (i = 0; i < n; i++)
			if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f ||
			    s[i] == '#')
				return 0;
		return utf8_ok((const unsigned char *)s, n);
	default:
		return 0;
	}
}

/* bounce_ok - a VERP token: printable ASCII, bounded; its signature is
 * checked by the bounce handler, so a damaged one still routes there. */
static int
bounce_ok(const char *s, size_t n)
{
	size_t i;

	if (n > CMDADDR_ARG_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f)
			return 0;
	return 1;
}

/* command - ext (n bytes, original case) as a command into out. */
static int
command(const char *ext, size_t n, struct cmdaddr *out)
{
	size_t i, w;

	for (i = 0; i < NCOMMANDS; i++) {
		w = strlen(commands[i].word);
		if (commands[i].arg == ARG_NONE) {
			if (!eq_lower(ext, n, commands[i].word))
				continue;
		} else if (n <= w + 1 || ext[w] != '-' ||
		    !eq_lower(ext, w, commands[i].word) ||
		    !arg_ok(commands[i].arg, ext + w + 1, n - w - 1))
			continue;
		out->kind = CMDADDR_KIND_COMMAND;
		out->cmd = commands[i].cmd;
		if (commands[i].arg != ARG_NONE) {
			memcpy(out->arg, ext + w + 1, n - w - 1);
			out->arg[n - w - 1] = '\0';
		}
		return 0;
	}
	return -1;
}

int
cmdaddr_parse(const char *local, struct cmdaddr *out)
{
	const char *plus, *ext;
	size_t n, g, i, b = strlen(BOUNCE_WORD);

	memset(out, 0, sizeof(*out));
	n = strlen(local);
	if (n == 0 || n > CMDADDR_LOCAL_MAX)
		return -1;
	plus = strchr(local, '+');
	g = plus ? (size_t)(plus - local) : n;
	if (g > CMDADDR_GROUP_MAX)
		return -1;
	for (i = 0; i < g; i++)
		out->group[i] = (char)(local[i] >= 'A' && local[i] <= 'Z' ?
		    local[i] - 'A' + 'a' : local[i]);
	out->group[g] = '\0';
	if (!group_ok(out->group, g))
		goto bad;
	if (strcmp(out->group, BOUNCE_WORD) == 0) {
		/* the domain's bounce address: no group (sql/009 keeps the
		 * name from groups) */
		n -= plus ? g + 1 : g;
		if (plus != NULL && (n == 0 || !bounce_ok(plus + 1, n)))
			goto bad;
		out->kind = CMDADDR_KIND_BOUNCE;
		out->group[0] = '\0';
		if (plus != NULL)
			memcpy(out->arg, plus + 1, n);
		return 0;
	}
	if (plus == NULL) {
		out->kind = CMDADDR_KIND_POST;
		return 0;
	}
	ext = plus + 1;
	n -= g + 1;
	if (eq_lower(ext, n, OWNER_WORD)) {
		out->kind = CMDADDR_KIND_OWNER;
		return 0;
	}
	if (n >= b && eq_lower(ext, b, BOUNCE_WORD) &&
	    (n == b || (ext[b] == '-' && n > b + 1))) {
		if (n > b && !bounce_ok(ext + b + 1, n - b - 1))
			goto bad;
		out->kind = CMDADDR_KIND_BOUNCE;
		if (n > b)
			memcpy(out->arg, ext + b + 1, n - b - 1);
		return 0;
	}
	if (command(ext, n, out) == 0)
		return 0;
bad:
	memset(out, 0, sizeof(*out));
	return -1;
}

const char *
cmdaddr_name(enum cmdaddr_cmd c)
{
	size_t i;

	for (i = 0; i < NCOMMANDS; i++)
		if (commands[i].cmd == c)
			return commands[i].word;
	return "";
}

enum cmdaddr_cmd
cmdaddr_command(const char *name, const char *arg)
{
	int with = arg != NULL && arg[0] != '\0';
	size_t i;

	for (i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].word, name) == 0 &&
		    (commands[i].arg != ARG_NONE) == with)
			return commands[i].cmd;
	return CMDADDR_NONE;
}

int
cmdaddr_format(const struct cmdaddr *a, char *buf, size_t len)
{
	int n;

	switch (a->kind) {
	case CMDADDR_KIND_POST:
		n = snprintf(buf, len, "%s", a->group);
		break;
	case CMDADDR_KIND_OWNER:
		n = snprintf(buf, len, "%s+" OWNER_WORD, a->group);
		break;
	case CMDADDR_KIND_BOUNCE:
		if (a->group[0] == '\0')
			n = snprintf(buf, len, BOUNCE_WORD "%s%s",
			    a->arg[0] ? "+" : "", a->arg);
		else
			n = snprintf(buf, len, "%s+" BOUNCE_WORD "%s%s",
			    a->group, a->arg[0] ? "-" : "", a->arg);
		break;
	case CMDADDR_KIND_COMMAND:
		n = snprintf(buf, len, "%s+%s%s%s", a->group,
		    cmdaddr_name(a->cmd), a->arg[0] ? "-" : "", a->arg);
		break;
	default:
		n = -1;
		break;
	}
	if (n < 0 || (size_t)n >= len) {
		if (len > 0)
			buf[0] = '\0';
		return -1;
	}
	return 0;
}

/* next_rule - the next entry of a rules list starting at *p: its local
 * part and target as (pointer, length) pairs; *p moves past the entry.
 * 1 for a well-formed entry, 0 for a malformed one, -1 at the end. */
static int
next_rule(const char **p, const char **lp, size_t *ln, const char **tp,
    size_t *tn)
{
	static const char ws[] = " \t";
	const char *s = *p, *end;

	s += strspn(s, ws);
	while (*s == ',')
		s += 1 + strspn(s + 1, ws);
	if (*s == '\0')
		return -1;
	end = strchr(s, ',');
	if (end == NULL)
		end = s + strlen(s);
	*p = end;
	*lp = s;
	*ln = strcspn(s, " \t,");
	s += *ln;
	s += strspn(s, ws);
	*tp = s;
	*tn = strcspn(s, " \t,");
	s += *tn;
	s += strspn(s, ws);
	/* exactly two words, and the target an address */
	return s == end && *ln > 0 && *tn > 2 &&
	    memchr(*lp, '@', *ln) == NULL && memchr(*tp, '@', *tn) != NULL &&
	    (*tp)[0] != '@' && (*tp)[*tn - 1] != '@';
}

int
cmdaddr_forward(const char *rules, const char *local, char *target,
    size_t len)
{
	char want[CMDADDR_LOCAL_MAX + 1];
	const char *p = rules, *lp, *tp;
	size_t ln, tn, i, n;
	int rc;

	if (rules == NULL || (n = strlen(local)) > CMDADDR_LOCAL_MAX)
		return 0;
	for (i = 0; i <= n; i++)
		want[i] = (char)(local[i] >= 'A' && local[i] <= 'Z' ?
		    local[i] - 'A' + 'a' : local[i]);
	while ((rc = next_rule(&p, &lp, &ln, &tp, &tn)) != -1) {
		if (rc == 1 && eq_lower(lp, ln, want) && tn < len) {
			memcpy(target, tp, tn);
			target[tn] = '\0';
			return 1;
		}
	}
	return 0;
}

int
cmdaddr_forward_check(const char *rules, char *err, size_t errlen)
{
	const char *p = rules, *lp, *tp, *start;
	size_t ln, tn;
	int rc;

	if (rules == NULL)
		return 0;
	for (;;) {
		start = p + strspn(p, " \t,");
		if ((rc = next_rule(&p, &lp, &ln, &tp, &tn)) == -1)
			return 0;
		if (rc == 0) {
			snprintf(err, errlen, "forward_rules: \"%.*s\" is not "
			    "\"local-part target@address\"",
			    (int)(p - start > 80 ? 80 : p - start), start);
			return -1;
		}
	}
}
