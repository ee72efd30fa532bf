/* SPDX-License-Identifier: MIT */
/*
 * xalloc.h - allocation wrappers that never return NULL.
 *
 * Out of memory is not a condition a daemon can serve through: the wrappers
 * panic (backtrace to errord, restart by the supervisor) so call sites stay
 * free of error paths that are never tested.
 */
#ifndef XALLOC_H
#define XALLOC_H

#include <stddef.h>

#define ATTR_PRINTF(f, a)	__attribute__((format(printf, f, a)))
#define ATTR_NORETURN		__attribute__((noreturn))
#define ATTR_MALLOC		__attribute__((malloc))
#define NELEM(a)		(sizeof(a) / sizeof((a)[0]))

/* xmalloc - returns allocated, caller frees. */
void *xmalloc(size_t) ATTR_MALLOC;
/* xcalloc - zeroed; overflow of n * size panics. */
void *xcalloc(size_t n, size_t size) ATTR_MALLOC;
void *xrealloc(void *, size_t);
/* xreallocarray - realloc with overflow check of n * size. */
void *xreallocarray(void *, size_t n, size_t size);
char *xstrdup(const char *) ATTR_MALLOC;
char *xstrndup(const char *, size_t) ATTR_MALLOC;
/* xasprintf - returns allocated, caller frees. */
char *xasprintf(const char *fmt, ...) ATTR_PRINTF(1, 2) ATTR_MALLOC;

/* strlcpy_chk - copy with truncation; returns -1 (dst still terminated) if
 * src did not fit. */
int strlcpy_chk(char *dst, const char *src, size_t size);

#endif
