/* SPDX-License-Identifier: MIT */
/*
 * smtp_parse.c - MAIL FROM and RCPT TO arguments (RFC 5321 4.1.2, 6531
 * SMTPUTF8, 1870 SIZE, 6152 8BITMIME).
 *
 * Pure functions over a NUL-terminated line that smtpd has already bounded
 * (SMTP_MAX_CMD_LINE) and checked for NUL bytes.  The grammar is taken
 * strictly where sloppiness could matter (address syntax, lengths, unknown
 * parameters) and leniently where common clients deviate harmlessly (spaces
 * after the colon, source routes, which are accepted and dropped).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "smtp_parse.h"

#define SETERR(...)	((void)snprintf(err, errlen, __VA_ARGS__))

static int
is_atext(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static int
is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

/* utf8_valid - 1 if s[0..n) is well-formed UTF-8 (no overlongs, no
 * surrogates, nothing above U+10FFFF). */
static int
utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		size_t len, k;
		unsigned long cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			cp = c & 0x07;
		} else
			return 0;
		if (n - i < len)
			return 0;
		for (k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}

/* local_len - length of a valid local part at the start of s (up to '@'),
 * 0 if invalid. */
static size_t
local_len(const unsigned char *s, int utf8)
{
	size_t i = 0;

	if (s[0] == '"') {
		for (i = 1; s[i] != '"'; i++) {
			if (s[i] == '\0')
				return 0;
			if (s[i] == '\\') {
				i++;
				if (s[i] < 32 || s[i] > 126)
					return 0;
			} else if (s[i] >= 0x80) {
				if (!utf8)
					return 0;
			} else if (s[i] < 32 || s[i] == 127)
				return 0;
		}
		return i + 1;
	}
	for (;;) {
		size_t start = i;

		while (is_atext(s[i]) || (utf8 && s[i] >= 0x80))
			i++;
		if (i == start)
			return 0;	/* empty atom: leading or double dot */
		if (s[i] != '.')
			return i;
		i++;
	}
}

/* domain_valid - hostname (LDH labels) or an address literal. */
static int
domain_valid(const unsigned char *d, int utf8)
{
	size_t n = strlen((const char *)d), i, label = 0;

	if (n == 0 || n > SMTP_DOMAIN_MAX)
		return 0;
	if (d[0] == '[') {
		if (n < 3 || d[n - 1] != ']')
			return 0;
		for (i = 1; i < n - 1; i++)
			if (d[i] < 33 || d[i] > 126 || d[i] == '[' ||
			    d[i] == ']' || d[i] == '\\')
				return 0;
		return 1;
	}
	for (i = 0; i <= n; i++) {
		unsigned char c = d[i];

		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63 || d[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (c == '-') {
			if (label == 0)
				return 0;
		} else if (!is_alnum(c) && !(utf8 && c >= 0x80))
			return 0;
		label++;
	}
	return 1;
}

int
smtp_addr_valid(const char *addr, int utf8)
{
	const unsigned char *a = (const unsigned char *)addr;
	size_t n = strlen(addr), l;

	if (n == 0 || n > SMTP_ADDR_MAX)
		return 0;
	if (!utf8) {
		size_t i;

		for (i = 0; i < n; i++)
			if (a[i] >= 0x80)
				return 0;
	} else if (!utf8_valid(a, n))
		return 0;
	if ((l = local_len(a, utf8)) == 0 || l > SMTP_LOCAL_MAX ||
	    a[l] != '@')
		return 0;
	return domain_valid(a + l + 1, utf8);
}

/* has_8bit - any byte above 127? */
static int
has_8bit(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

/*
 * parse_path - "<addr>" at *pp into addr (bounded); *pp moves past '>'.
 * what: "sender" or "recipient" for the reply text.  Returns 0 or a code.
 */
static int
parse_path(const char **pp, char *addr, const char *what, const char *esc,
    char *err, size_t errlen)
{
	const char *p = *pp, *start, *end;
	int quoted = 0;
	size_t n;

	while (*p == ' ')
		p++;
	if (*p != '<') {
		SETERR("%s Syntax error in %s address: missing <>", esc, what);
		return 501;
	}
	start = ++p;
	for (; *p != '\0'; p++) {
		if (quoted && *p == '\\' && p[1] != '\0')
			p++;
		else if (*p == '"')
			quoted = !quoted;
		else if (!quoted && *p == '>')
			break;
	}
	if (*p != '>') {
		SETERR("%s Syntax error in %s address: missing >", esc, what);
		return 501;
	}
	end = p;
	*pp = p + 1;
	/* A source route "@a,@b:" is obsolete: accept it and drop it. */
	if (start < end && *start == '@') {
		const char *colon = memchr(start, ':', (size_t)(end - start));

		if (colon == NULL) {
			SETERR("%s Syntax error in %s address", esc, what);
			return 501;
		}
		start = colon + 1;
	}
	n = (size_t)(end - start);
	if (n > SMTP_ADDR_MAX) {
		SETERR("%s The %s address is too long", esc, what);
		return 501;
	}
	memcpy(addr, start, n);
	addr[n] = '\0';
	return 0;
}

/* param_next - split the next "KEY[=VALUE]" at *pp; 0, 1 at the end, or
 * a code. */
static int
param_next(const char **pp, char *key, size_t keylen, char *val,
    size_t vallen, int *hasval, char *err, size_t errlen)
{
	const char *p = *pp;
	size_t k = 0, v = 0;

	while (*p == ' ')
		p++;
	if (*p == '\0')
		return 1;
	if (!is_alnum((unsigned char)*p)) {
		SETERR("5.5.4 Syntax error in parameters");
		return 501;
	}
	while (is_alnum((unsigned char)*p) || *p == '-') {
		if (k + 1 >= keylen) {
			SETERR("5.5.4 Parameter keyword too long");
			return 501;
		}
		key[k++] = *p++;
	}
	key[k] = '\0';
	*hasval = 0;
	if (*p == '=') {
		p++;
		*hasval = 1;
		while (*p > 32 && *p < 127 && *p != '=') {
			if (v + 1 >= vallen) {
				SETERR("5.5.4 Parameter value too long");
				return 501;
			}
			val[v++] = *p++;
		}
		if (v == 0) {
			SETERR("5.5.4 Empty value for %s", key);
			return 501;
		}
	}
	val[v] = '\0';
	if (*p != ' ' && *p != '\0') {
		SETERR("5.5.4 Syntax error in parameters");
		return 501;
	}
	*pp = p;
	return 0;
}

/* parse_size - decimal digits only; saturates at LONG_MAX-ish. */
static int
parse_size(const char *v, long *out)
{
	long n = 0;

	if (*v == '\0')
		return -1;
	for (; *v != '\0'; v++) {
		if (*v < '0' || *v > '9')
			return -1;
		if (n > (0x7fffffffL * 4L))
			continue;	/* absurd: keep it absurd */
		n = n * 10 + (*v - '0');
	}
	*out = n;
	return 0;
}

int
smtp_parse_mail(const char *args, struct smtp_mail *out, char *err,
    size_t errlen)
{
	const char *p = args;
	char key[32], val[64];
	int rc, hasval;

	memset(out, 0, sizeof(*out));
	out->size = -1;
	if (strncasecmp(p, "FROM:", 5) != 0) {
		SETERR("5.5.2 Syntax: MAIL FROM:<address>");
		return 501;
	}
	p += 5;
	if ((rc = parse_path(&p, out->addr, "sender", "5.1.7", err,
	    errlen)) != 0)
		return rc;
	if (*p != '\0' && *p != ' ') {
		SETERR("5.1.7 Syntax error after the sender address");
		return 501;
	}
	while ((rc = param_next(&p, key, sizeof(key), val, sizeof(val),
	    &hasval, err, errlen)) == 0) {
		if (!strcasecmp(key, "SIZE") && hasval) {
			if (out->size != -1) {
				SETERR("5.5.4 Duplicate SIZE");
				return 501;
			}
			if (parse_size(val, &out->size) == -1) {
				SETERR("5.5.4 Bad SIZE value");
				return 501;
			}
		} else if (!strcasecmp(key, "BODY") && hasval) {
			if (out->body != SMTP_BODY_NONE) {
				SETERR("5.5.4 Duplicate BODY");
				return 501;
			}
			if (!strcasecmp(val, "7BIT"))
				out->body = SMTP_BODY_7BIT;
			else if (!strcasecmp(val, "8BITMIME"))
				out->body = SMTP_BODY_8BITMIME;
			else {
				SETERR("5.5.4 Unsupported BODY type");
				return 501;
			}
		} else if (!strcasecmp(key, "SMTPUTF8") && !hasval) {
			if (out->smtputf8) {
				SETERR("5.5.4 Duplicate SMTPUTF8");
				return 501;
			}
			out->smtputf8 = 1;
		} else {
			SETERR("5.5.4 Unsupported parameter %s", key);
			return 555;
		}
	}
	if (rc != 1)
		return rc;
	if (out->addr[0] == '\0')
		return 0;		/* the null sender */
	if (!out->smtputf8 && has_8bit(out->addr)) {
		SETERR("5.6.7 Non-ASCII sender address needs SMTPUTF8");
		return 553;
	}
	if (!smtp_addr_valid(out->addr, out->smtputf8)) {
		SETERR("5.1.7 Bad sender address syntax");
		return 501;
	}
	return 0;
}

int
smtp_parse_rcpt(const char *args, int utf8, struct smtp_rcpt *out,
    char *err, size_t errlen)
{
	const char *p = args;
	char key[32], val[64];
	int rc, hasval;

	memset(out, 0, sizeof(*out));
	if (strncasecmp(p, "TO:", 3) != 0) {
		SETERR("5.5.2 Syntax: RCPT TO:<address>");
		return 501;
	}
	p += 3;
	if ((rc = parse_path(&p, out->addr, "recipient", "5.1.3", err,
	    errlen)) != 0)
		return rc;
	if (*p != '\0' && *p != ' ') {
		SETERR("5.1.3 Syntax error after the recipient address");
		return 501;
	}
	rc = param_next(&p, key, sizeof(key), val, sizeof(val), &hasval, err,
	    errlen);
	if (rc == 0) {
		SETERR("5.5.4 Unsupported parameter %s", key);
		return 555;
	}
	if (rc != 1)
		return rc;
	if (!strcasecmp(out->addr, "postmaster"))
		return 0;	/* RFC 5321 4.5.1: always accepted */
	if (out->addr[0] == '\0') {
		SETERR("5.1.3 Empty recipient address");
		return 501;
	}
	if (!utf8 && has_8bit(out->addr)) {
		SETERR("5.6.7 Non-ASCII recipient address needs SMTPUTF8");
		return 553;
	}
	if (!smtp_addr_valid(out->addr, utf8)) {
		SETERR("5.1.3 Bad recipient address syntax");
		return 501;
	}
	return 0;
}
