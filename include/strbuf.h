/* SPDX-License-Identifier: MIT */
/*
 * strbuf.h - the one growable string type (Postfix's VSTRING, Redis's sds).
 *
 * The buffer is always NUL-terminated and may hold binary data; len excludes
 * the terminator.  Growth never fails (xalloc).  Callers that read from the
 * network check their own bounds before appending.
 */
#ifndef STRBUF_H
#define STRBUF_H

#include <stdarg.h>
#include <stddef.h>

#include "xalloc.h"

struct strbuf {
	char	*buf;	/* owned, NUL-terminated */
	size_t	 len;
	size_t	 cap;	/* bytes allocated, including the NUL */
};

/* strbuf_new - returns allocated; free with strbuf_free. */
struct strbuf *strbuf_new(size_t hint);
/* strbuf_free - accepts NULL, returns NULL: sb = strbuf_free(sb). */
struct strbuf *strbuf_free(struct strbuf *);
void	 strbuf_append(struct strbuf *, const void *, size_t);
void	 strbuf_puts(struct strbuf *, const char *);
void	 strbuf_putc(struct strbuf *, char);
void	 strbuf_appendf(struct strbuf *, const char *, ...) ATTR_PRINTF(2, 3);
void	 strbuf_vappendf(struct strbuf *, const char *, va_list)
	    ATTR_PRINTF(2, 0);
/* strbuf_json_escape - append s as the inside of a JSON string. */
void	 strbuf_json_escape(struct strbuf *, const char *s, size_t n);
void	 strbuf_reset(struct strbuf *);
void	 strbuf_truncate(struct strbuf *, size_t);
/* strbuf_detach - returns the buffer (caller frees) and frees sb. */
char	*strbuf_detach(struct strbuf *, size_t *lenp);

#define strbuf_str(sb)	((const char *)(sb)->buf)
#define strbuf_len(sb)	((sb)->len)

#endif
