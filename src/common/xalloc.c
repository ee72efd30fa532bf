/* SPDX-License-Identifier: MIT */
/*
 * xalloc.c - allocation wrappers that panic instead of returning NULL.
 *
 * panic() itself formats into a fixed buffer and never allocates, so an
 * out-of-memory report cannot recurse here.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "xalloc.h"

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		panic("out of memory allocating %zu bytes", n);
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void *p;

	if (size != 0 && n > SIZE_MAX / size)
		panic("xcalloc: %zu * %zu overflows", n, size);
	p = calloc(n ? n : 1, size ? size : 1);
	if (p == NULL)
		panic("out of memory allocating %zu * %zu bytes", n, size);
	return p;
}

void *
xrealloc(void *old, size_t n)
{
	void *p = realloc(old, n ? n : 1);

	if (p == NULL)
		panic("out of memory reallocating %zu bytes", n);
	return p;
}

void *
xreallocarray(void *old, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		panic("xreallocarray: %zu * %zu overflows", n, size);
	return xrealloc(old, n * size);
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = xmalloc(len + 1);

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&p, fmt, ap);
	va_end(ap);
	if (n < 0)
		panic("out of memory in xasprintf");
	return p;
}

int
strlcpy_chk(char *dst, const char *src, size_t size)
{
	size_t len = strlen(src);

	if (size == 0)
		return -1;
	if (len >= size) {
		memcpy(dst, src, size - 1);
		dst[size - 1] = '\0';
		return -1;
	}
	memcpy(dst, src, len + 1);
	return 0;
}
