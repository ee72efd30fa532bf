/* SPDX-License-Identifier: MIT */
/*
 * strbuf.c - growable, always NUL-terminated byte strings.
 *
 * Capacity doubles, so n appends cost O(n) amortised.  Growth goes through
 * xrealloc and cannot fail; bounds on untrusted input are the caller's.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "strbuf.h"

/* strbuf_reserve - make room for n more bytes plus the NUL. */
static void
strbuf_reserve(struct strbuf *sb, size_t n)
{
	size_t need, cap;

	if (n > SIZE_MAX / 2 - sb->len)
		panic("strbuf: %zu + %zu bytes is too large", sb->len, n);
	need = sb->len + n + 1;
	if (need <= sb->cap)
		return;
	cap = sb->cap ? sb->cap : 64;
	while (cap < need)
		cap *= 2;
	sb->buf = xrealloc(sb->buf, cap);
	sb->cap = cap;
}

struct strbuf *
strbuf_new(size_t hint)
{
	struct strbuf *sb = xcalloc(1, sizeof(*sb));

	strbuf_reserve(sb, hint);
	sb->buf[0] = '\0';
	return sb;
}

struct strbuf *
strbuf_free(struct strbuf *sb)
{
	if (sb != NULL) {
		free(sb->buf);
		free(sb);
	}
	return NULL;
}

void
strbuf_append(struct strbuf *sb, const void *p, size_t n)
{
	strbuf_reserve(sb, n);
	if (n > 0)
		memcpy(sb->buf + sb->len, p, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
}

void
strbuf_puts(struct strbuf *sb, const char *s)
{
	strbuf_append(sb, s, strlen(s));
}

void
strbuf_putc(struct strbuf *sb, char c)
{
	strbuf_append(sb, &c, 1);
}

void
strbuf_vappendf(struct strbuf *sb, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	strbuf_reserve(sb, 0);
	n = vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		panic("strbuf: bad format \"%s\"", fmt);
	if ((size_t)n >= sb->cap - sb->len) {
		strbuf_reserve(sb, (size_t)n);
		n = vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, ap);
		if (n < 0)
			panic("strbuf: bad format \"%s\"", fmt);
	}
	sb->len += (size_t)n;
}

void
strbuf_appendf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	strbuf_vappendf(sb, fmt, ap);
	va_end(ap);
}

void
strbuf_json_escape(struct strbuf *sb, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		switch (c) {
		case '"':  strbuf_append(sb, "\\\"", 2); break;
		case '\\': strbuf_append(sb, "\\\\", 2); break;
		case '\n': strbuf_append(sb, "\\n", 2); break;
		case '\r': strbuf_append(sb, "\\r", 2); break;
		case '\t': strbuf_append(sb, "\\t", 2); break;
		default:
			if (c < 0x20) {
				char u[6] = { '\\', 'u', '0', '0',
				    hex[c >> 4], hex[c & 15] };
				strbuf_append(sb, u, sizeof(u));
			} else
				strbuf_putc(sb, (char)c);
		}
	}
}

void
strbuf_reset(struct strbuf *sb)
{
	strbuf_truncate(sb, 0);
}

void
strbuf_truncate(struct strbuf *sb, size_t len)
{
	if (len < sb->len) {
		sb->len = len;
		sb->buf[len] = '\0';
	}
}

char *
strbuf_detach(struct strbuf *sb, size_t *lenp)
{
	char *p = sb->buf;

	if (lenp != NULL)
		*lenp = sb->len;
	free(sb);
	return p;
}
