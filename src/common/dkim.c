/* SPDX-License-Identifier: MIT */
/*
 * dkim.c - DKIM signatures (RFC 6376) with rsa-sha256 and ed25519-sha256
 * (RFC 8463), relaxed/relaxed, on OpenSSL 3.
 *
 * A key is read and parsed once, and keeps a small pool of signing
 * contexts made for it (OpenSSL 3 spends about a tenth of an RSA-2048
 * signature setting one up), each used by one thread at a time, so one
 * key serves every thread.  dkim_sign_many signs one message with several
 * keys: the header block is split and canonicalised once and the body
 * hashed once, and a dkim_body_cache holds the hash state of a body
 * prefix many messages share (karl's copies of one post differ only in
 * their footer), checked byte for byte before it is used.  The message
 * is trusted to be ours (karl signs what messageserver built) but is
 * still parsed defensively: the header block is bounded, malformed
 * fields are refused, and only a small set of field names with plain
 * spelling reach h=.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "bounds.h"
#include "dkim.h"
#include "strbuf.h"
#include "xalloc.h"

#define DKIM_MAX_HEADER	(1024 * 1024)	/* bytes of the header block */
#define DKIM_MAX_SIGNED	256		/* fields named in h= */
#define DKIM_FOLD	76		/* column we fold the signature at */
#define DKIM_BUF	4096		/* body bytes hashed per update */
#define DKIM_NAME_MAX	64		/* longer "list-*" names are not signed */
#define DKIM_POOL	16		/* idle signing contexts kept per key */

/* Signing contexts ready for the key: RSA an EVP_PKEY_CTX set up for
 * PKCS#1 v1.5 over a SHA-256 digest, Ed25519 an EVP_MD_CTX after
 * EVP_DigestSignInit.  Apart from the key, since a key is const to its
 * users. */
struct dkim_pool {
	pthread_mutex_t	 lock;
	void		*ctx[DKIM_POOL];
	size_t		 n;
};

struct dkim_key {
	EVP_PKEY	*pkey;
	EVP_MD		*sha256;	/* fetched once: implicit fetches cost */
	enum dkim_alg	 alg;
	char		 domain[SMTP_DOMAIN_MAX + 1];
	char		 selector[DKIM_SELECTOR_MAX + 1];
	struct dkim_pool *pool;
};

struct dkim_body_cache {
	EVP_MD		*sha256;
	EVP_MD_CTX	*ctx;		/* after the canonical prefix */
	size_t		 blank;		/* its trailing empty lines, held back */
	char		*bytes;		/* the prefix, compared before use */
	size_t		 len;
};

/* One header field: name, colon and value through its last line, no CRLF. */
struct dkim_field {
	const char	*p;
	size_t		 len;
	size_t		 namelen;	/* less any WSP before the colon */
	size_t		 valoff;	/* first byte after the colon */
};

struct dkim_body {
	EVP_MD_CTX	*ctx;
	size_t		 blank;		/* empty lines held back */
	size_t		 n;
	unsigned char	 buf[DKIM_BUF];
};

/* Signed when present; "list-" and "content-" prefixes are signed too. */
static const char *const dkim_hdrs[] = {
	"from", "to", "cc", "subject", "date", "message-id", "reply-to",
	"in-reply-to", "references", "mime-version",
};
static const char *const dkim_prefixes[] = { "list-", "content-" };

#define DKIM_WSP(c)	((c) == ' ' || (c) == '\t')

/* dkim_ossl_err - what, with OpenSSL's reason, into err; empties the
 * (per-thread) OpenSSL error queue. */
static void
dkim_ossl_err(char *err, size_t errlen, const char *what)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	snprintf(err, errlen, "%s%s%s", what, r ? ": " : "", r ? r : "");
	ERR_clear_error();
}

/* dkim_nopass - refuse encrypted keys instead of prompting on a tty. */
static int
dkim_nopass(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* dkim_name_ok - a domain or selector: dot-separated labels of letters,
 * digits, '-' and (selectors often use it) '_'; nothing that could end a
 * tag. */
static int
dkim_name_ok(const char *s, size_t max)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > max || s[0] == '.' || s[n - 1] == '.')
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.' && s[i + 1] == '.')
			return 0;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		    c == '.'))
			return 0;
	}
	return 1;
}

struct dkim_key *
dkim_key_load(const char *domain, const char *selector, const char *path,
    char *err, size_t errlen)
{
	struct dkim_key *k;
	FILE *fp;
	int id;

	if (!dkim_name_ok(domain, SMTP_DOMAIN_MAX)) {
		snprintf(err, errlen, "bad DKIM domain \"%.64s\"", domain);
		return NULL;
	}
	if (!dkim_name_ok(selector, DKIM_SELECTOR_MAX)) {
		snprintf(err, errlen, "bad DKIM selector \"%.64s\"", selector);
		return NULL;
	}
	if ((fp = fopen(path, "re")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	k = xcalloc(1, sizeof(*k));
	k->pool = xcalloc(1, sizeof(*k->pool));
	pthread_mutex_init(&k->pool->lock, NULL);
	k->pkey = PEM_read_PrivateKey(fp, NULL, dkim_nopass, NULL);
	fclose(fp);
	if (k->pkey == NULL) {
		char what[256];

		snprintf(what, sizeof(what), "%s: no usable PEM private key "
		    "(encrypted keys are refused)", path);
		dkim_ossl_err(err, errlen, what);
		return dkim_key_free(k);
	}
	id = EVP_PKEY_get_base_id(k->pkey);
	if (id == EVP_PKEY_RSA) {
		/* RFC 8301 3.2: signers MUST use at least 1024 bits */
		if (EVP_PKEY_get_bits(k->pkey) < 1024) {
			snprintf(err, errlen, "%s: RSA key of %d bits, "
			    "1024 at least", path, EVP_PKEY_get_bits(k->pkey));
			return dkim_key_free(k);
		}
		k->alg = DKIM_RSA_SHA256;
	} else if (id == EVP_PKEY_ED25519) {
		k->alg = DKIM_ED25519_SHA256;
	} else {
		snprintf(err, errlen, "%s: key type %s: RSA or Ed25519 only",
		    path, OBJ_nid2sn(id));
		return dkim_key_free(k);
	}
	if ((k->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL) {
		dkim_ossl_err(err, errlen, "SHA256 unavailable");
		return dkim_key_free(k);
	}
	/* checked above: both fit */
	strlcpy_chk(k->domain, domain, sizeof(k->domain));
	strlcpy_chk(k->selector, selector, sizeof(k->selector));
	return k;
}

struct dkim_key *
dkim_key_free(struct dkim_key *k)
{
	size_t i;

	if (k == NULL)
		return NULL;
	for (i = 0; i < k->pool->n; i++)
		if (k->alg == DKIM_RSA_SHA256)
			EVP_PKEY_CTX_free(k->pool->ctx[i]);
		else
			EVP_MD_CTX_free(k->pool->ctx[i]);
	pthread_mutex_destroy(&k->pool->lock);
	free(k->pool);
	EVP_PKEY_free(k->pkey);
	EVP_MD_free(k->sha256);
	free(k);
	return NULL;
}

enum dkim_alg
dkim_key_alg(const struct dkim_key *k)
{
	return k->alg;
}

const char *
dkim_key_domain(const struct dkim_key *k)
{
	return k->domain;
}

/*
 * dkim_split - the header fields of msg into *fieldsp (allocated, caller
 * frees) and the offset of the body.  Lines end in CRLF; a bare CR or LF
 * or a NUL in the header block, a line with no colon, or a block over
 * DKIM_MAX_HEADER is refused.  No blank line means no body.
 */
static int
dkim_split(const char *msg, size_t len, struct dkim_field **fieldsp,
    size_t *nfieldsp, size_t *bodyp, char *err, size_t errlen)
{
	struct dkim_field *f = NULL, *cur = NULL;
	size_t nf = 0, cap = 0, pos = 0;

	*bodyp = len;
	while (pos < len) {
		const char *line = msg + pos, *nl, *colon;
		size_t end, n;

		if (pos > DKIM_MAX_HEADER) {
			snprintf(err, errlen, "header block over %d bytes",
			    DKIM_MAX_HEADER);
			goto bad;
		}
		if (len - pos >= 2 && line[0] == '\r' && line[1] == '\n') {
			*bodyp = pos + 2;
			break;
		}
		nl = memchr(line, '\n', len - pos);
		if (nl != NULL && (nl == line || nl[-1] != '\r')) {
			snprintf(err, errlen, "bare LF in the header block");
			goto bad;
		}
		/* n: the line's length without its CRLF */
		n = nl != NULL ? (size_t)(nl - line) - 1 : len - pos;
		end = nl != NULL ? pos + n + 2 : len;
		if (memchr(line, '\r', n) != NULL ||
		    memchr(line, '\0', n) != NULL) {
			snprintf(err, errlen, "bare CR or NUL in the header "
			    "block");
			goto bad;
		}
		if (DKIM_WSP(line[0])) {
			if (cur == NULL) {
				snprintf(err, errlen, "header block starts "
				    "with a continuation line");
				goto bad;
			}
			cur->len = (size_t)(line + n - cur->p);
			pos = end;
			continue;
		}
		if ((colon = memchr(line, ':', n)) == NULL ||
		    colon == line) {
			snprintf(err, errlen, "header line without a name "
			    "and colon");
			goto bad;
		}
		if (nf == cap) {
			cap = cap ? cap * 2 : 32;
			f = xreallocarray(f, cap, sizeof(*f));
		}
		cur = &f[nf++];
		cur->p = line;
		cur->len = n;
		cur->valoff = (size_t)(colon - line) + 1;
		cur->namelen = (size_t)(colon - line);
		/* obsolete syntax (RFC 5322 4.5): WSP before the colon */
		while (cur->namelen > 0 && DKIM_WSP(line[cur->namelen - 1]))
			cur->namelen--;
		if (cur->namelen == 0) {
			snprintf(err, errlen, "header field with an empty "
			    "name");
			goto bad;
		}
		pos = end;
	}
	if (pos > DKIM_MAX_HEADER) {
		snprintf(err, errlen, "header block over %d bytes",
		    DKIM_MAX_HEADER);
		goto bad;
	}
	*fieldsp = f;
	*nfieldsp = nf;
	return 0;
bad:
	free(f);
	return -1;
}

static int
dkim_is(const struct dkim_field *f, const char *name)
{
	return strlen(name) == f->namelen &&
	    strncasecmp(f->p, name, f->namelen) == 0;
}

/* dkim_signed - whether field f goes into h=: a listed name, or a listed
 * prefix followed by letters, digits and '-' only (h= cannot carry more)
 * up to DKIM_NAME_MAX in all, so that h= folds into short lines. */
static int
dkim_signed(const struct dkim_field *f)
{
	size_t i, j, n;

	for (i = 0; i < NELEM(dkim_hdrs); i++)
		if (dkim_is(f, dkim_hdrs[i]))
			return 1;
	for (i = 0; i < NELEM(dkim_prefixes); i++) {
		n = strlen(dkim_prefixes[i]);
		if (f->namelen <= n || f->namelen > DKIM_NAME_MAX ||
		    strncasecmp(f->p, dkim_prefixes[i], n) != 0)
			continue;
		for (j = n; j < f->namelen; j++) {
			unsigned char c = (unsigned char)f->p[j];

			if (!((c >= 'a' && c <= 'z') || (c >= 'A' &&
			    c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
				return 0;
		}
		return 1;
	}
	return 0;
}

static int
dkim_same_name(const struct dkim_field *a, const struct dkim_field *b)
{
	return a->namelen == b->namelen &&
	    strncasecmp(a->p, b->p, a->namelen) == 0;
}

/* dkim_lower - p[0..n) lowercased into sb. */
static void
dkim_lower(struct strbuf *sb, const char *p, size_t n)
{
	char tmp[DKIM_NAME_MAX];
	size_t i, k;

	while (n > 0) {
		k = n < sizeof(tmp) ? n : sizeof(tmp);
		for (i = 0; i < k; i++)
			tmp[i] = p[i] >= 'A' && p[i] <= 'Z' ? p[i] - 'A' + 'a' :
			    p[i];
		strbuf_append(sb, tmp, k);
		p += k;
		n -= k;
	}
}

/* dkim_canon_header - field f, relaxed (RFC 6376 3.4.2): lowercase name,
 * ':', the value unfolded with WSP runs as one SP and no WSP at either
 * end; crlf says whether a CRLF follows (not for the signature itself).
 * Runs of other bytes are copied whole. */
static void
dkim_canon_header(struct strbuf *sb, const struct dkim_field *f, int crlf)
{
	const char *v = f->p + f->valoff, *e = f->p + f->len, *run;
	int sp = 0, any = 0;

	dkim_lower(sb, f->p, f->namelen);
	strbuf_putc(sb, ':');
	while (v < e) {
		if (v[0] == '\r' && v + 1 < e && v[1] == '\n') {
			v += 2;
			continue;
		}
		if (DKIM_WSP(*v)) {
			sp = any;
			v++;
			continue;
		}
		if (sp)
			strbuf_putc(sb, ' ');
		for (run = v; v < e && !DKIM_WSP(*v) && !(v[0] == '\r' &&
		    v + 1 < e && v[1] == '\n'); v++)
			;
		strbuf_append(sb, run, (size_t)(v - run));
		sp = 0;
		any = 1;
	}
	if (crlf)
		strbuf_append(sb, "\r\n", 2);
}

static int
dkim_body_put(struct dkim_body *b, const void *p, size_t n)
{
	if (b->n + n > sizeof(b->buf)) {
		if (EVP_DigestUpdate(b->ctx, b->buf, b->n) != 1)
			return -1;
		b->n = 0;
	}
	if (n > sizeof(b->buf))
		return EVP_DigestUpdate(b->ctx, p, n) == 1 ? 0 : -1;
	memcpy(b->buf + b->n, p, n);
	b->n += n;
	return 0;
}

/* dkim_body_line - one body line without its CRLF, relaxed (RFC 6376
 * 3.4.4): WSP runs as one SP, none at the end; empty lines are held back
 * and only hashed when a non-empty line follows them. */
static int
dkim_body_line(struct dkim_body *b, const char *p, size_t n)
{
	const char *e = p + n, *s;
	int sp = 0, any = 0;

	while (p < e) {
		if (DKIM_WSP(*p)) {
			sp = 1;
			p++;
			continue;
		}
		if (!any) {
			for (; b->blank > 0; b->blank--)
				if (dkim_body_put(b, "\r\n", 2) == -1)
					return -1;
			any = 1;
		}
		if (sp && dkim_body_put(b, " ", 1) == -1)
			return -1;
		sp = 0;
		for (s = p; p < e && !DKIM_WSP(*p); p++)
			;
		if (dkim_body_put(b, s, (size_t)(p - s)) == -1)
			return -1;
	}
	if (!any)
		b->blank++;
	else if (dkim_body_put(b, "\r\n", 2) == -1)
		return -1;
	return 0;
}

/* dkim_body_lines - the lines of p[0..n) into b; a last line with no
 * CRLF counts as one (SMTP will end it with one). */
static int
dkim_body_lines(struct dkim_body *b, const char *p, size_t n)
{
	const char *e = p + n, *crlf;

	while (p < e) {
		crlf = memmem(p, (size_t)(e - p), "\r\n", 2);
		if (dkim_body_line(b, p, crlf ? (size_t)(crlf - p) :
		    (size_t)(e - p)) == -1)
			return -1;
		p = crlf ? crlf + 2 : e;
	}
	if (b->n > 0 && EVP_DigestUpdate(b->ctx, b->buf, b->n) != 1)
		return -1;
	b->n = 0;
	return 0;
}

/* dkim_body_hash - SHA-256 of the relaxed body into md (32 bytes),
 * starting from bc's state when the body begins with bc's bytes.  An
 * empty canonical body hashes as the empty string, as RFC 6376 erratum
 * 3192 reads 3.4.4 and as libopendkim and python3-dkim verify. */
static int
dkim_body_hash(const EVP_MD *sha256, const struct dkim_body_cache *bc,
    const char *p, size_t n, unsigned char *md)
{
	struct dkim_body body, *b = &body;	/* no need to zero its buf */
	int rc = -1;

	b->blank = b->n = 0;
	if ((b->ctx = EVP_MD_CTX_new()) == NULL)
		goto out;
	if (bc != NULL && n >= bc->len && memcmp(p, bc->bytes, bc->len) == 0) {
		if (EVP_MD_CTX_copy_ex(b->ctx, bc->ctx) != 1)
			goto out;
		b->blank = bc->blank;
		p += bc->len;
		n -= bc->len;
	} else if (EVP_DigestInit_ex(b->ctx, sha256, NULL) != 1)
		goto out;
	if (dkim_body_lines(b, p, n) == -1 ||
	    EVP_DigestFinal_ex(b->ctx, md, NULL) != 1)
		goto out;
	rc = 0;
out:
	EVP_MD_CTX_free(b->ctx);
	return rc;
}

struct dkim_body_cache *
dkim_body_cache_new(const char *body, size_t len)
{
	struct dkim_body_cache *bc;
	struct dkim_body *b;
	size_t cut = 0, i;

	/* whole lines only: a line's canonical form depends on its end */
	for (i = len; i >= 2; i--)
		if (body[i - 2] == '\r' && body[i - 1] == '\n') {
			cut = i;
			break;
		}
	if (cut == 0)
		return NULL;
	bc = xcalloc(1, sizeof(*bc));
	b = xcalloc(1, sizeof(*b));
	if ((bc->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL ||
	    (b->ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(b->ctx, bc->sha256, NULL) != 1 ||
	    dkim_body_lines(b, body, cut) == -1) {
		ERR_clear_error();
		EVP_MD_CTX_free(b->ctx);
		free(b);
		return dkim_body_cache_free(bc);
	}
	bc->ctx = b->ctx;
	bc->blank = b->blank;
	free(b);
	bc->bytes = xmalloc(cut);
	memcpy(bc->bytes, body, cut);
	bc->len = cut;
	return bc;
}

struct dkim_body_cache *
dkim_body_cache_free(struct dkim_body_cache *bc)
{
	if (bc == NULL)
		return NULL;
	EVP_MD_CTX_free(bc->ctx);
	EVP_MD_free(bc->sha256);
	free(bc->bytes);
	free(bc);
	return NULL;
}

static char *
dkim_b64(const unsigned char *p, size_t n)
{
	char *s = xmalloc(4 * ((n + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)s, p, (int)n);
	return s;
}

/* dkim_word - append the word a, b[0..bn), c, after a space or, past
 * DKIM_FOLD, after a fold ("\r\n\t"); sep says whether a space separates
 * it from the last one (not inside h=, where the colons do). */
static void
dkim_word(struct strbuf *sb, size_t *col, const char *a, const char *b,
    size_t bn, const char *c, int sep)
{
	size_t an = strlen(a), cn = strlen(c), n = an + bn + cn;

	if (*col + (sep ? 1 : 0) + n > DKIM_FOLD) {
		strbuf_append(sb, "\r\n\t", 3);
		*col = 8;
	} else if (sep) {
		strbuf_putc(sb, ' ');
		(*col)++;
	}
	strbuf_append(sb, a, an);
	strbuf_append(sb, b, bn);
	strbuf_append(sb, c, cn);
	*col += n;
}

/* dkim_tag - dkim_word of a whole tag: name=value; */
static void
dkim_tag(struct strbuf *sb, size_t *col, const char *name, const char *v)
{
	dkim_word(sb, col, name, v, strlen(v), ";", 1);
}

/* dkim_ctx_take - an idle signing context of k, or NULL (make one). */
static void *
dkim_ctx_take(const struct dkim_key *k)
{
	void *c = NULL;

	pthread_mutex_lock(&k->pool->lock);
	if (k->pool->n > 0)
		c = k->pool->ctx[--k->pool->n];
	pthread_mutex_unlock(&k->pool->lock);
	return c;
}

/* dkim_ctx_give - c back into k's pool, or freed when the pool is full. */
static void
dkim_ctx_give(const struct dkim_key *k, void *c)
{
	pthread_mutex_lock(&k->pool->lock);
	if (k->pool->n < DKIM_POOL) {
		k->pool->ctx[k->pool->n++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&k->pool->lock);
	if (c != NULL && k->alg == DKIM_RSA_SHA256)
		EVP_PKEY_CTX_free(c);
	else if (c != NULL)
		EVP_MD_CTX_free(c);
}

/* dkim_rsa_ctx - a new context for PKCS#1 v1.5 signatures of SHA-256
 * digests with k, or NULL. */
static EVP_PKEY_CTX *
dkim_rsa_ctx(const struct dkim_key *k)
{
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);

	if (pc == NULL || EVP_PKEY_sign_init(pc) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_signature_md(pc, k->sha256) != 1) {
		EVP_PKEY_CTX_free(pc);
		return NULL;
	}
	return pc;
}

/* dkim_ed_ctx - a new context for Ed25519 signatures with k, or NULL. */
static EVP_MD_CTX *
dkim_ed_ctx(const struct dkim_key *k)
{
	EVP_MD_CTX *mc = EVP_MD_CTX_new();

	if (mc == NULL || EVP_DigestSignInit(mc, NULL, NULL, NULL,
	    k->pkey) != 1) {
		EVP_MD_CTX_free(mc);
		return NULL;
	}
	return mc;
}

/* dkim_sig - raw signature over data (the header hash input) into
 * *sigp (allocated): RSA signs its SHA-256 with PKCS#1 v1.5 (what
 * EVP_DigestSign with SHA-256 makes), Ed25519 the SHA-256 of data too
 * (RFC 8463 3).  Both are deterministic. */
static int
dkim_sig(const struct dkim_key *k, const char *data, size_t n,
    unsigned char **sigp, size_t *siglenp, char *err, size_t errlen)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen;
	void *c = dkim_ctx_take(k);
	int ok, fresh = c == NULL;

	*siglenp = (size_t)EVP_PKEY_get_size(k->pkey);
	*sigp = xmalloc(*siglenp);
	if (EVP_Digest(data, n, md, &mdlen, k->sha256, NULL) != 1)
		goto bad;
	for (;;) {
		if (c == NULL && (c = k->alg == DKIM_RSA_SHA256 ?
		    (void *)dkim_rsa_ctx(k) : (void *)dkim_ed_ctx(k)) == NULL)
			goto bad;
		ok = k->alg == DKIM_RSA_SHA256 ?
		    EVP_PKEY_sign(c, *sigp, siglenp, md, mdlen) == 1 :
		    EVP_DigestSign(c, *sigp, siglenp, md, mdlen) == 1;
		if (ok) {
			dkim_ctx_give(k, c);
			return 0;
		}
		if (k->alg == DKIM_RSA_SHA256)
			EVP_PKEY_CTX_free(c);
		else
			EVP_MD_CTX_free(c);
		c = NULL;
		if (fresh)
			goto bad;
		/* a reused context refused (an OpenSSL that allows one
		 * EVP_DigestSign per init): once more on a new one */
		ERR_clear_error();
		fresh = 1;
		*siglenp = (size_t)EVP_PKEY_get_size(k->pkey);
	}
bad:
	dkim_ossl_err(err, errlen, "signing failed");
	free(*sigp);
	*sigp = NULL;
	return -1;
}

/*
 * dkim_hsign - the h= names (into words, each ending ':') and the
 * canonical fields (into data) of the fields to sign: each name present in
 * order of first appearance, all its occurrences bottom-up as a verifier
 * will pick them (RFC 6376 5.4.2), and "from" once more so that no From
 * can be added (over-signing, 8.15).  Exactly one From is required, and
 * no WSP between a signed field's name and its colon.
 */
static int
dkim_hsign(const struct dkim_field *f, size_t nf, struct strbuf *words,
    struct strbuf *data, char *err, size_t errlen)
{
	size_t sig[DKIM_MAX_SIGNED], ns = 0, nfrom = 0, i, j;
	unsigned char done[DKIM_MAX_SIGNED];

	for (i = 0; i < nf; i++) {
		if (!dkim_signed(&f[i]))
			continue;
		/* RFC 5322 4.5's obsolete "Name :": libopendkim does not
		 * match such a name, so a verifier could see other fields */
		if (f[i].namelen + 1 != f[i].valoff) {
			snprintf(err, errlen, "WSP before the colon of a "
			    "field to sign (%.*s)", (int)f[i].namelen, f[i].p);
			return -1;
		}
		if (ns == DKIM_MAX_SIGNED) {
			snprintf(err, errlen, "over %d header fields to sign",
			    DKIM_MAX_SIGNED);
			return -1;
		}
		nfrom += dkim_is(&f[i], "from");
		sig[ns++] = i;
	}
	/* RFC 5322 3.6: exactly one; two are the display-spoofing trick */
	if (nfrom != 1) {
		snprintf(err, errlen, nfrom ? "more than one From header "
		    "field" : "no From header field");
		return -1;
	}
	memset(done, 0, sizeof(done));
	for (i = 0; i < ns; i++) {
		if (done[i])
			continue;
		for (j = ns; j-- > i;) {
			if (done[j] || !dkim_same_name(&f[sig[i]], &f[sig[j]]))
				continue;
			done[j] = 1;
			dkim_lower(words, f[sig[j]].p, f[sig[j]].namelen);
			strbuf_putc(words, ':');
			dkim_canon_header(data, &f[sig[j]], 1);
		}
	}
	strbuf_puts(words, "from");
	return 0;
}

/* dkim_field_sign - k's DKIM-Signature field into out: the tags, bh=
 * (base64, given), then b= over data (the canonical signed fields)
 * followed by this field with b= empty.  data is left as it came. */
static int
dkim_field_sign(const struct dkim_key *k, const char *words,
    const char *bh64, struct strbuf *data, time_t now, struct strbuf *out,
    char *err, size_t errlen)
{
	struct strbuf *sb = strbuf_new(1024);
	struct dkim_field self;
	unsigned char *sig = NULL;
	size_t siglen, col, i, n, dlen = data->len;
	char *b64 = NULL, *w, t[24];
	int rc = -1;

	strbuf_puts(sb, "DKIM-Signature:");
	col = 15;
	dkim_tag(sb, &col, "v=", "1");
	dkim_tag(sb, &col, "a=", k->alg == DKIM_RSA_SHA256 ? "rsa-sha256" :
	    "ed25519-sha256");
	dkim_tag(sb, &col, "c=", "relaxed/relaxed");
	dkim_tag(sb, &col, "d=", k->domain);
	dkim_tag(sb, &col, "s=", k->selector);
	(void)snprintf(t, sizeof(t), "%lld", (long long)now);
	dkim_tag(sb, &col, "t=", t);
	/* h=: one name per word, folded only after a colon */
	for (i = 0; *words != '\0'; i++, words += n) {
		const char *c = strchr(words, ':');

		n = c ? (size_t)(c - words) + 1 : strlen(words);
		dkim_word(sb, &col, i == 0 ? "h=" : "", words, n, c ? "" : ";",
		    i == 0);
	}
	dkim_tag(sb, &col, "bh=", bh64);
	strbuf_append(sb, "\r\n\tb=", 5);
	col = 10;

	/* the signature's own field, b= empty, ends the hash input */
	self.p = sb->buf;
	self.len = sb->len;
	self.namelen = 14;
	self.valoff = 15;
	dkim_canon_header(data, &self, 0);
	if (dkim_sig(k, data->buf, data->len, &sig, &siglen, err,
	    errlen) == -1)
		goto out;
	b64 = dkim_b64(sig, siglen);
	/* FWS may go anywhere in b=; verifiers remove it */
	for (w = b64; *w != '\0'; w += n) {
		if (col >= DKIM_FOLD) {
			strbuf_append(sb, "\r\n\t", 3);
			col = 8;
		}
		n = strlen(w);
		if (n > DKIM_FOLD - col)
			n = DKIM_FOLD - col;
		strbuf_append(sb, w, n);
		col += n;
	}
	strbuf_append(sb, "\r\n", 2);
	strbuf_append(out, sb->buf, sb->len);
	rc = 0;
out:
	strbuf_truncate(data, dlen);
	free(sig);
	free(b64);
	strbuf_free(sb);
	return rc;
}

int
dkim_sign_many(const struct dkim_key *const *keys, size_t nkeys,
    const char *msg, size_t len, time_t now,
    const struct dkim_body_cache *bc, struct strbuf *out, char *err,
    size_t errlen)
{
	struct strbuf *words = NULL, *data = NULL;
	struct dkim_field *f = NULL;
	unsigned char bh[EVP_MAX_MD_SIZE];
	size_t nf = 0, body, i;
	char *bh64 = NULL;
	int n = -1;

	if (nkeys == 0)
		return 0;
	if (len > MSG_MAX_SIZE_LIMIT) {
		snprintf(err, errlen, "message over %d bytes",
		    MSG_MAX_SIZE_LIMIT);
		return -1;
	}
	if (dkim_split(msg, len, &f, &nf, &body, err, errlen) == -1)
		return -1;
	words = strbuf_new(256);
	data = strbuf_new(2048);
	if (dkim_hsign(f, nf, words, data, err, errlen) == -1)
		goto out;
	/* every key hashes the body with SHA-256, relaxed: once for all */
	if (dkim_body_hash(keys[0]->sha256, bc, msg + body, len - body,
	    bh) == -1) {
		dkim_ossl_err(err, errlen, "body hash failed");
		goto out;
	}
	bh64 = dkim_b64(bh, 32);
	for (i = 0, n = 0; i < nkeys; i++)
		if (dkim_field_sign(keys[i], words->buf, bh64, data, now, out,
		    err, errlen) == 0)
			n++;
out:
	free(f);
	free(bh64);
	strbuf_free(words);
	strbuf_free(data);
	return n;
}

char *
dkim_sign(const struct dkim_key *k, const char *msg, size_t len, time_t now,
    char *err, size_t errlen)
{
	struct strbuf *sb = strbuf_new(1024);

	if (dkim_sign_many(&k, 1, msg, len, now, NULL, sb, err,
	    errlen) != 1) {
		strbuf_free(sb);
		return NULL;
	}
	return strbuf_detach(sb, NULL);
}
