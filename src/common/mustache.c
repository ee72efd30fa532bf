/* SPDX-License-Identifier: MIT */
/*
 * mustache.c - Mustache templates compiled to a flat node array.
 *
 * Compiling copies the template text, splits it into nodes (text, variable,
 * section, inverted section, partial) and resolves partials by name once, so
 * rendering is a walk over an immutable array: no parsing, no allocation
 * beyond the output, and one compiled template may be rendered by many
 * threads at once.  A section node records the index just past its
 * children, so a false section is skipped in one step.
 *
 * Standalone lines (a section, inverted, close, comment, partial or
 * delimiter tag alone on its line) are removed at compile time.  A
 * standalone partial's indentation is applied at render time: every node
 * that starts a template line carries a flag, and text nodes indent after
 * their inner newlines, which indents the partial's lines but never the
 * data interpolated into them, as the spec requires.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mustache.h"
#include "strbuf.h"
#include "xalloc.h"

#define DELIM_MAX	32	/* bytes of a set delimiter */
/* Nodes visited plus list items entered per render: nested sections over
 * lists or fanned-out partials can loop for ages without output, so the
 * output bound alone does not bound the time. */
#define STEPS_MAX	(16 * 1024 * 1024)

enum mnode_type {
	MN_TEXT,
	MN_VAR,		/* {{x}}: escaped unless MUSTACHE_NOESCAPE */
	MN_RAW,		/* {{{x}}} and {{& x}} */
	MN_SECTION,
	MN_INVERTED,
	MN_PARTIAL,
};

struct mnode {
	enum mnode_type type;
	int	 bol;		/* first thing on a template line */
	const char *s;		/* text, or the name as written */
	size_t	 len;
	size_t	 seg;		/* name: first segment in mustache.segs */
	size_t	 nseg;		/* 0 is the implicit iterator "." */
	size_t	 end;		/* section: index past its children */
	int	 partial;	/* index in mustache.partials, -1 if none */
	int	 dynamic;	/* {{>*name}}: the partial's name is data */
	const char *indent;	/* standalone partial's indentation */
	size_t	 indentlen;
	int	 line;
};

struct mtpl {
	struct mnode *v;
	size_t	 n, cap;
};

struct mseg {
	const char *p;
	size_t	 len;
};

struct mpartial {
	char	*name;
	size_t	 namelen;
	struct mtpl t;
};

struct mustache {
	int	 flags;
	struct mtpl main;
	struct mpartial **partials;	/* pointers: stable while compiling */
	size_t	 npartials;
	struct mseg *segs;
	size_t	 nsegs, capsegs;
	char	**texts;		/* owned copies the nodes point into */
	size_t	 ntexts;
	size_t	 total;			/* template bytes, partials included */
	int	 allpartials;		/* every partial compiled (dynamic) */
};

struct parser {
	struct mustache *m;
	struct mtpl *t;
	const json_t *partials;
	const char *name;	/* partial being compiled, NULL for main */
	const char *src;
	size_t	 len;
	char	 otag[DELIM_MAX + 1], ctag[DELIM_MAX + 2];
	size_t	 olen, clen;
	size_t	 open[MUSTACHE_DEPTH_MAX];
	int	 nopen;
	int	 depth;		/* partial nesting while compiling */
	size_t	 linepos;	/* line counted up to here */
	int	 line;
	char	*err;
	size_t	 errlen;
};

struct rstate {
	const struct mustache *m;
	struct strbuf *out;
	size_t	 start;
	const json_t *ctx[MUSTACHE_DEPTH_MAX + 2];
	int	 nctx;
	struct mseg indent[MUSTACHE_DEPTH_MAX + 1];
	int	 nindent;
	int	 depth;
	int	 escape;
	size_t	 steps;
	char	*err;
	size_t	 errlen;
};

static int	compile_text(struct parser *);

/* seterr - format a reason into err (which may be NULL). */
static void ATTR_PRINTF(3, 4)
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* clip - how much of s to quote in a one-line reason. */
static int
clip(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len && i < 40; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			break;
	return (int)i;
}

/* line_at - line number of src[pos]; positions only grow, so count once. */
static int
line_at(struct parser *p, size_t pos)
{
	const char *nl;

	while (p->linepos < pos &&
	    (nl = memchr(p->src + p->linepos, '\n', pos - p->linepos)) !=
	    NULL) {
		p->line++;
		p->linepos = (size_t)(nl - p->src) + 1;
	}
	if (p->linepos < pos)
		p->linepos = pos;
	return p->line;
}

/* perr - syntax error with the template's name and line. */
static int ATTR_PRINTF(3, 4)
perr(struct parser *p, size_t pos, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	int line = line_at(p, pos);

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->name != NULL)
		seterr(p->err, p->errlen, "partial \"%.64s\" line %d: %s",
		    p->name, line, msg);
	else
		seterr(p->err, p->errlen, "line %d: %s", line, msg);
	return -1;
}

static struct mnode *
node_add(struct mtpl *t, enum mnode_type type)
{
	struct mnode *n;

	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->v = xreallocarray(t->v, t->cap, sizeof(*t->v));
	}
	n = &t->v[t->n++];
	memset(n, 0, sizeof(*n));
	n->type = type;
	n->partial = -1;
	return n;
}

static int
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static int
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
	    c == '\v' || c == '\f';
}

/* starts_line - src[pos] is the first byte of a template line. */
static int
starts_line(const struct parser *p, size_t pos)
{
	return pos == 0 || p->src[pos - 1] == '\n';
}

static void
add_text(struct parser *p, size_t from, size_t to)
{
	struct mnode *n;

	if (to <= from)
		return;
	n = node_add(p->t, MN_TEXT);
	n->s = p->src + from;
	n->len = to - from;
	n->bol = starts_line(p, from);
}

/* trim - strip whitespace around [*s, *s + *len). */
static void
trim(const char **s, size_t *len)
{
	while (*len > 0 && is_space(**s)) {
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && is_space((*s)[*len - 1]))
		(*len)--;
}

/* parse_name - split a dotted name into segments of the node. */
static int
parse_name(struct parser *p, size_t pos, struct mnode *n, const char *s,
    size_t len)
{
	struct mustache *m = p->m;
	size_t i, b;

	n->s = s;
	n->len = len;
	if (len == 0)
		return perr(p, pos, "empty tag name");
	n->seg = m->nsegs;
	if (len == 1 && s[0] == '.')
		return 0;
	for (i = 0; i < len; i++)
		if (is_space(s[i]))
			return perr(p, pos, "space in tag name \"%.*s\"",
			    clip(s, len), s);
	for (b = 0, i = 0; i <= len; i++) {
		if (i < len && s[i] != '.')
			continue;
		if (i == b)
			return perr(p, pos, "bad dotted name \"%.*s\"",
			    clip(s, len), s);
		if (m->nsegs == m->capsegs) {
			m->capsegs = m->capsegs ? m->capsegs * 2 : 16;
			m->segs = xreallocarray(m->segs, m->capsegs,
			    sizeof(*m->segs));
		}
		m->segs[m->nsegs].p = s + b;
		m->segs[m->nsegs].len = i - b;
		m->nsegs++;
		n->nseg++;
		b = i + 1;
	}
	return 0;
}

/* set_delims - "{{=<% %>=}}": two words without whitespace or '='. */
static int
set_delims(struct parser *p, size_t pos, const char *s, size_t len)
{
	size_t a, b;

	trim(&s, &len);
	for (a = 0; a < len && !is_space(s[a]); a++)
		;
	for (b = a; b < len && is_space(s[b]); b++)
		;
	if (a == 0 || b == len || a > DELIM_MAX || len - b > DELIM_MAX ||
	    b == a || memchr(s, '=', len) != NULL)
		return perr(p, pos, "bad delimiter \"%.*s\"",
		    clip(s, len), s);
	for (size_t i = b; i < len; i++)
		if (is_space(s[i]))
			return perr(p, pos, "bad delimiter \"%.*s\"",
			    clip(s, len), s);
	memcpy(p->otag, s, a);
	p->otag[a] = '\0';
	p->olen = a;
	memcpy(p->ctag, s + b, len - b);
	p->ctag[len - b] = '\0';
	p->clen = len - b;
	return 0;
}

/* find_partial - index of the compiled partial name, compiling it on first
 * use; -1 if the partials object has no such string. */
static int
find_partial(struct parser *p, size_t pos, const char *name, size_t len,
    int *idx)
{
	struct mustache *m = p->m;
	struct mpartial *mp;
	struct parser sub;
	const json_t *v;
	size_t i;
	char *copy;

	*idx = -1;
	for (i = 0; i < m->npartials; i++)
		if (m->partials[i]->namelen == len &&
		    memcmp(m->partials[i]->name, name, len) == 0) {
			*idx = (int)i;
			return 0;
		}
	if (p->partials == NULL || !json_is_object(p->partials))
		return 0;
	v = json_object_getn(p->partials, name, len);
	if (v == NULL || !json_is_string(v))
		return 0;
	if (p->depth >= MUSTACHE_DEPTH_MAX)
		return perr(p, pos, "partials nested deeper than %d",
		    MUSTACHE_DEPTH_MAX);
	if (json_string_length(v) > MUSTACHE_TEMPLATE_MAX - m->total)
		return perr(p, pos, "templates larger than %d bytes",
		    MUSTACHE_TEMPLATE_MAX);
	m->total += json_string_length(v);

	/* registered before compiling so a recursive partial finds itself */
	mp = xcalloc(1, sizeof(*mp));
	mp->name = xstrndup(name, len);
	mp->namelen = len;
	m->partials = xreallocarray(m->partials, m->npartials + 1,
	    sizeof(*m->partials));
	m->partials[m->npartials] = mp;
	*idx = (int)m->npartials++;

	copy = xmalloc(json_string_length(v) + 1);
	memcpy(copy, json_string_value(v), json_string_length(v) + 1);
	m->texts = xreallocarray(m->texts, m->ntexts + 1, sizeof(*m->texts));
	m->texts[m->ntexts++] = copy;

	memset(&sub, 0, sizeof(sub));
	sub.m = m;
	sub.t = &mp->t;
	sub.partials = p->partials;
	sub.name = mp->name;
	sub.src = copy;
	sub.len = json_string_length(v);
	sub.depth = p->depth + 1;
	sub.err = p->err;
	sub.errlen = p->errlen;
	return compile_text(&sub);
}

/* compile_all - every string partial, for names only the data knows. */
static int
compile_all(struct parser *p, size_t pos)
{
	const char *k;
	json_t *v;
	int idx;

	if (p->m->allpartials || !json_is_object(p->partials))
		return 0;
	p->m->allpartials = 1;
	json_object_foreach((json_t *)(uintptr_t)p->partials, k, v)
		if (find_partial(p, pos, k, strlen(k), &idx) == -1)
			return -1;
	return 0;
}

/* standalone - if the tag [tstart, tend) is alone on its line, set *ls to
 * the line's start and *next past its end of line. */
static int
standalone(const struct parser *p, size_t textstart, size_t tstart,
    size_t tend, size_t *ls, size_t *next)
{
	size_t a = tstart, b = tend;

	while (a > textstart && is_blank(p->src[a - 1]))
		a--;
	if (!starts_line(p, a))
		return 0;
	while (b < p->len && is_blank(p->src[b]))
		b++;
	if (b == p->len)
		*next = b;
	else if (p->src[b] == '\n')
		*next = b + 1;
	else if (p->src[b] == '\r' && b + 1 < p->len && p->src[b + 1] == '\n')
		*next = b + 2;
	else
		return 0;
	*ls = a;
	return 1;
}

/* compile_text - parse p->src into p->t. */
static int
compile_text(struct parser *p)
{
	const char *tag, *close, *s;
	size_t pos = 0, textstart = 0, tstart, q, tend, slen, ls, next;
	char type, cbuf[DELIM_MAX + 2];
	struct mnode *n, *o;
	int sa, bol;

	p->line = 1;
	memcpy(p->otag, "{{", 3);
	memcpy(p->ctag, "}}", 3);
	p->olen = p->clen = 2;
	for (;;) {
		tag = memmem(p->src + pos, p->len - pos, p->otag, p->olen);
		if (tag == NULL)
			break;
		tstart = (size_t)(tag - p->src);
		q = tstart + p->olen;
		while (q < p->len && is_blank(p->src[q]))
			q++;
		type = q < p->len ? p->src[q] : '\0';
		if (strchr("#^/>!=&{", type) != NULL && type != '\0')
			q++;
		else
			type = '\0';
		/* {{{x}}} and {{=a b=}} close with their sigil first */
		if (type == '{' || type == '=') {
			cbuf[0] = type == '{' ? '}' : '=';
			memcpy(cbuf + 1, p->ctag, p->clen);
			close = memmem(p->src + q, p->len - q, cbuf,
			    p->clen + 1);
			tend = close ?
			    (size_t)(close - p->src) + p->clen + 1 : 0;
		} else {
			close = memmem(p->src + q, p->len - q, p->ctag,
			    p->clen);
			tend = close ? (size_t)(close - p->src) + p->clen : 0;
		}
		if (close == NULL)
			return perr(p, tstart, "unclosed tag \"%.*s\"",
			    clip(tag, p->len - tstart), tag);
		s = p->src + q;
		slen = (size_t)(close - s);

		sa = 0;
		if (type != '\0' && type != '&' && type != '{')
			sa = standalone(p, textstart, tstart, tend, &ls, &next);
		if (sa) {
			add_text(p, textstart, ls);
			textstart = pos = next;
		} else {
			add_text(p, textstart, tstart);
			textstart = pos = tend;
		}
		bol = !sa && starts_line(p, tstart);
		if (!sa && bol && (type == '/' || type == '!' || type == '=')) {
			/* keeps a partial's indentation on this line */
			n = node_add(p->t, MN_TEXT);
			n->s = p->src + tstart;
			n->bol = 1;
		}

		switch (type) {
		case '!':
			break;
		case '=':
			if (set_delims(p, tstart, s, slen) == -1)
				return -1;
			break;
		case '#':
		case '^':
			if (p->nopen >= MUSTACHE_DEPTH_MAX)
				return perr(p, tstart,
				    "sections nested deeper than %d",
				    MUSTACHE_DEPTH_MAX);
			trim(&s, &slen);
			n = node_add(p->t, type == '#' ? MN_SECTION :
			    MN_INVERTED);
			n->bol = bol;
			n->line = line_at(p, tstart);
			if (parse_name(p, tstart, n, s, slen) == -1)
				return -1;
			p->open[p->nopen++] = p->t->n - 1;
			break;
		case '/':
			trim(&s, &slen);
			if (p->nopen == 0)
				return perr(p, tstart,
				    "close of unopened section \"%.*s\"",
				    clip(s, slen), s);
			o = &p->t->v[p->open[p->nopen - 1]];
			if (o->len != slen || memcmp(o->s, s, slen) != 0)
				return perr(p, tstart, "\"%.*s\" closes "
				    "section \"%.*s\" opened on line %d",
				    clip(s, slen), s,
				    clip(o->s, o->len), o->s,
				    o->line);
			o->end = p->t->n;
			p->nopen--;
			break;
		case '>':
			trim(&s, &slen);
			n = node_add(p->t, MN_PARTIAL);
			n->bol = bol;
			n->s = s;
			n->len = slen;
			if (sa) {
				n->indent = p->src + ls;
				n->indentlen = tstart - ls;
			}
			if (slen == 0)
				return perr(p, tstart, "empty partial name");
			if (s[0] == '*') {
				s++;
				slen--;
				trim(&s, &slen);
				n->dynamic = 1;
				if (parse_name(p, tstart, n, s, slen) == -1 ||
				    compile_all(p, tstart) == -1)
					return -1;
				break;
			}
			/* a partial compiles into its own node array */
			if (find_partial(p, tstart, s, slen, &n->partial) == -1)
				return -1;
			break;
		default:
			trim(&s, &slen);
			n = node_add(p->t, type == '\0' ? MN_VAR : MN_RAW);
			n->bol = bol;
			if (parse_name(p, tstart, n, s, slen) == -1)
				return -1;
			break;
		}
	}
	add_text(p, textstart, p->len);
	if (p->nopen > 0) {
		o = &p->t->v[p->open[p->nopen - 1]];
		p->line = 1;
		p->linepos = 0;
		return perr(p, (size_t)(o->s - p->src),
		    "unclosed section \"%.*s\"",
		    clip(o->s, o->len), o->s);
	}
	return 0;
}

struct mustache *
mustache_compile(const char *tmpl, size_t len, const json_t *partials,
    int flags, char *err, size_t errlen)
{
	struct mustache *m;
	struct parser p;
	char *copy;

	if (len > MUSTACHE_TEMPLATE_MAX) {
		seterr(err, errlen, "template of %zu bytes, more than %d", len,
		    MUSTACHE_TEMPLATE_MAX);
		return NULL;
	}
	m = xcalloc(1, sizeof(*m));
	m->flags = flags;
	m->total = len;
	copy = xmalloc(len + 1);
	if (len > 0)
		memcpy(copy, tmpl, len);
	copy[len] = '\0';
	m->texts = xmalloc(sizeof(*m->texts));
	m->texts[m->ntexts++] = copy;

	memset(&p, 0, sizeof(p));
	p.m = m;
	p.t = &m->main;
	p.partials = partials;
	p.src = copy;
	p.len = len;
	p.err = err;
	p.errlen = errlen;
	if (compile_text(&p) == -1)
		return mustache_free(m);
	return m;
}

struct mustache *
mustache_free(struct mustache *m)
{
	size_t i;

	if (m == NULL)
		return NULL;
	free(m->main.v);
	for (i = 0; i < m->npartials; i++) {
		free(m->partials[i]->name);
		free(m->partials[i]->t.v);
		free(m->partials[i]);
	}
	free(m->partials);
	for (i = 0; i < m->ntexts; i++)
		free(m->texts[i]);
	free(m->texts);
	free(m->segs);
	free(m);
	return NULL;
}

/* emit - append within the output bound. */
static int
emit(struct rstate *rs, const char *s, size_t len)
{
	if (len > MUSTACHE_OUTPUT_MAX - (rs->out->len - rs->start)) {
		seterr(rs->err, rs->errlen, "output larger than %d bytes",
		    MUSTACHE_OUTPUT_MAX);
		return -1;
	}
	strbuf_append(rs->out, s, len);
	return 0;
}

static int
emit_indent(struct rstate *rs)
{
	int i;

	for (i = 0; i < rs->nindent; i++)
		if (emit(rs, rs->indent[i].p, rs->indent[i].len) == -1)
			return -1;
	return 0;
}

/* emit_text - template text; inside an indented partial every line that
 * continues after a newline is indented. */
static int
emit_text(struct rstate *rs, const char *s, size_t len)
{
	const char *nl;
	size_t k;

	if (rs->nindent == 0)
		return emit(rs, s, len);
	while ((nl = memchr(s, '\n', len)) != NULL && (size_t)(nl - s) + 1 <
	    len) {
		k = (size_t)(nl - s) + 1;
		if (emit(rs, s, k) == -1 || emit_indent(rs) == -1)
			return -1;
		s += k;
		len -= k;
	}
	return emit(rs, s, len);
}

/* emit_escaped - HTML-escape the four characters the spec names. */
static int
emit_escaped(struct rstate *rs, const char *s, size_t len)
{
	size_t i, run = 0;
	const char *rep;

	for (i = 0; i < len; i++) {
		switch (s[i]) {
		case '&':
			rep = "&amp;";
			break;
		case '<':
			rep = "&lt;";
			break;
		case '>':
			rep = "&gt;";
			break;
		case '"':
			rep = "&quot;";
			break;
		default:
			continue;
		}
		if (emit(rs, s + run, i - run) == -1 ||
		    emit(rs, rep, strlen(rep)) == -1)
			return -1;
		run = i + 1;
	}
	return emit(rs, s + run, len - run);
}

/* format_real - shortest %g that reads back as the same double. */
static int
format_real(char *buf, size_t size, double d)
{
	int prec, n = 0;

	for (prec = 1; prec <= 17; prec++) {
		n = snprintf(buf, size, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	return n;
}

static int
emit_value(struct rstate *rs, const json_t *v, int escape)
{
	char buf[64];
	int n;

	switch (json_typeof(v)) {
	case JSON_STRING:
		if (escape)
			return emit_escaped(rs, json_string_value(v),
			    json_string_length(v));
		return emit(rs, json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
		n = snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT,
		    json_integer_value(v));
		return emit(rs, buf, (size_t)n);
	case JSON_REAL:
		n = format_real(buf, sizeof(buf), json_real_value(v));
		return emit(rs, buf, (size_t)n);
	case JSON_TRUE:
		return emit(rs, "true", 4);
	case JSON_FALSE:
		return emit(rs, "false", 5);
	default:
		/* null, objects and arrays have no text */
		return 0;
	}
}

/* lookup - the name's value: its first segment from the innermost context
 * that has it, the rest only inside that value (the spec's dotted names).
 * Borrowed from the data. */
static const json_t *
lookup(const struct rstate *rs, const struct mnode *n)
{
	const struct mseg *sg;
	const json_t *v = NULL;
	size_t i;
	int k;

	if (n->nseg == 0)
		return rs->nctx > 0 ? rs->ctx[rs->nctx - 1] : NULL;
	sg = rs->m->segs + n->seg;
	for (k = rs->nctx - 1; k >= 0 && v == NULL; k--)
		if (json_is_object(rs->ctx[k]))
			v = json_object_getn(rs->ctx[k], sg[0].p, sg[0].len);
	for (i = 1; i < n->nseg && v != NULL; i++)
		v = json_is_object(v) ?
		    json_object_getn(v, sg[i].p, sg[i].len) : NULL;
	return v;
}

/* falsey - false, null, a missing name and the empty list; numbers and
 * strings, even 0 and "", are true as in the spec's JSON data. */
static int
falsey(const json_t *v)
{
	return v == NULL || json_is_false(v) || json_is_null(v) ||
	    (json_is_array(v) && json_array_size(v) == 0);
}

static int render_range(struct rstate *, const struct mtpl *, size_t,
    size_t);

/* step - count work against STEPS_MAX. */
static int
step(struct rstate *rs)
{
	if (++rs->steps > STEPS_MAX) {
		seterr(rs->err, rs->errlen, "more than %d render steps",
		    STEPS_MAX);
		return -1;
	}
	return 0;
}

static int
deeper(struct rstate *rs)
{
	if (rs->depth >= MUSTACHE_DEPTH_MAX) {
		seterr(rs->err, rs->errlen, "nesting deeper than %d",
		    MUSTACHE_DEPTH_MAX);
		return -1;
	}
	rs->depth++;
	return 0;
}

/* render_section - the children once per list item, or once with the
 * value on top of the context stack. */
static int
render_section(struct rstate *rs, const struct mtpl *t, size_t i,
    const json_t *v)
{
	const struct mnode *n = &t->v[i];
	size_t k;
	int rc = 0;

	if (deeper(rs) == -1)
		return -1;
	if (json_is_array(v)) {
		for (k = 0; k < json_array_size(v) && rc == 0; k++) {
			if ((rc = step(rs)) == -1)
				break;
			rs->ctx[rs->nctx++] = json_array_get(v, k);
			rc = render_range(rs, t, i + 1, n->end);
			rs->nctx--;
		}
	} else {
		rs->ctx[rs->nctx++] = v;
		rc = render_range(rs, t, i + 1, n->end);
		rs->nctx--;
	}
	rs->depth--;
	return rc;
}

static int
render_partial(struct rstate *rs, const struct mnode *n)
{
	const struct mpartial *mp = NULL;
	const json_t *v;
	size_t i;
	int rc;

	if (n->dynamic) {
		v = lookup(rs, n);
		if (!json_is_string(v))
			return 0;
		for (i = 0; i < rs->m->npartials && mp == NULL; i++)
			if (rs->m->partials[i]->namelen ==
			    json_string_length(v) &&
			    memcmp(rs->m->partials[i]->name,
			    json_string_value(v), json_string_length(v)) == 0)
				mp = rs->m->partials[i];
	} else if (n->partial >= 0)
		mp = rs->m->partials[n->partial];
	if (mp == NULL)
		return 0;
	if (deeper(rs) == -1)
		return -1;
	rs->indent[rs->nindent].p = n->indent;
	rs->indent[rs->nindent].len = n->indentlen;
	rs->nindent += n->indentlen > 0;
	rc = render_range(rs, &mp->t, 0, mp->t.n);
	rs->nindent -= n->indentlen > 0;
	rs->depth--;
	return rc;
}

/* render_range - nodes [from, to) of t. */
static int
render_range(struct rstate *rs, const struct mtpl *t, size_t from, size_t to)
{
	const struct mnode *n;
	const json_t *v;
	size_t i = from;

	while (i < to) {
		n = &t->v[i];
		if (step(rs) == -1)
			return -1;
		if (n->bol && rs->nindent > 0 && emit_indent(rs) == -1)
			return -1;
		switch (n->type) {
		case MN_TEXT:
			if (emit_text(rs, n->s, n->len) == -1)
				return -1;
			break;
		case MN_VAR:
		case MN_RAW:
			v = lookup(rs, n);
			if (v != NULL && emit_value(rs, v,
			    n->type == MN_VAR && rs->escape) == -1)
				return -1;
			break;
		case MN_SECTION:
			v = lookup(rs, n);
			if (!falsey(v) && render_section(rs, t, i, v) == -1)
				return -1;
			i = n->end;
			continue;
		case MN_INVERTED:
			v = lookup(rs, n);
			if (falsey(v)) {
				if (deeper(rs) == -1 ||
				    render_range(rs, t, i + 1, n->end) == -1)
					return -1;
				rs->depth--;
			}
			i = n->end;
			continue;
		case MN_PARTIAL:
			if (render_partial(rs, n) == -1)
				return -1;
			break;
		}
		i++;
	}
	return 0;
}

int
mustache_render(const struct mustache *m, const json_t *data,
    struct strbuf *out, char *err, size_t errlen)
{
	struct rstate rs;

	memset(&rs, 0, sizeof(rs));
	rs.m = m;
	rs.out = out;
	rs.start = out->len;
	rs.escape = !(m->flags & MUSTACHE_NOESCAPE);
	rs.err = err;
	rs.errlen = errlen;
	if (data != NULL)
		rs.ctx[rs.nctx++] = data;
	if (render_range(&rs, &m->main, 0, m->main.n) == -1) {
		strbuf_truncate(out, rs.start);
		return -1;
	}
	return 0;
}
