/* SPDX-License-Identifier: MIT */
/*
 * mustache.h - Mustache templates (https://mustache.github.io/), for the
 * footers karl renders per receiver and other mail and page templates.
 *
 * A template is compiled once and rendered many times.  Data is a jansson
 * value; {{name}} is HTML-escaped unless the template was compiled with
 * MUSTACHE_NOESCAPE (plain-text mail), {{{name}}} and {{& name}} never
 * are.  Implements the spec's core (interpolation, sections, inverted
 * sections, comments, partials, set delimiters) and dynamic partial names
 * ({{>*name}}); lambdas (data is JSON) and inheritance are not supported.
 * Bounded: template size, nesting depth, output size and render work are
 * limited, and exceeding them is an error, never a crash.  See
 * docs/mustache.md.
 */
#ifndef MUSTACHE_H
#define MUSTACHE_H

#include <stddef.h>

#include <jansson.h>

#include "strbuf.h"

#define MUSTACHE_TEMPLATE_MAX	(256 * 1024)	/* bytes of a template */
#define MUSTACHE_DEPTH_MAX	32		/* nested sections/partials */
#define MUSTACHE_OUTPUT_MAX	(4 * 1024 * 1024) /* bytes rendered */

#define MUSTACHE_NOESCAPE	0x01	/* {{x}} not HTML-escaped */

struct mustache;

/* mustache_compile - parse tmpl (len bytes); partials is an object of
 * name -> template text (borrowed during the call; may be NULL).  NULL
 * with a reason (and line) in err on a syntax error. */
struct mustache *mustache_compile(const char *tmpl, size_t len,
	    const json_t *partials, int flags, char *err, size_t errlen);
/* mustache_render - append the rendering with data to out; 0, or -1 with
 * a reason in err (output bound, depth, work) and out as it was.
 * Thread-safe for one compiled template shared by many threads. */
int	 mustache_render(const struct mustache *, const json_t *data,
	    struct strbuf *out, char *err, size_t errlen);
/* mustache_free - accepts NULL, returns NULL. */
struct mustache *mustache_free(struct mustache *);

#endif
