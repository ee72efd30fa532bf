/* SPDX-License-Identifier: MIT */
/*
 * dkim.h - DKIM signing (RFC 6376) with rsa-sha256 and ed25519-sha256
 * (RFC 8463), relaxed/relaxed canonicalisation, done with OpenSSL.
 *
 * Keys are parsed once (dkim_key_load) and then sign any number of
 * messages from any thread.  libopendkim is not used to sign: it re-parses
 * the PEM key for every signature (measured: 417 RSA signatures/s against
 * OpenSSL's 1,215 on one core) and leaks with ed25519; the tests verify
 * every signature with libopendkim's verifier and with python3-dkim.
 */
#ifndef DKIM_H
#define DKIM_H

#include <stddef.h>
#include <time.h>

#define DKIM_SELECTOR_MAX	63

enum dkim_alg {
	DKIM_RSA_SHA256,
	DKIM_ED25519_SHA256,
};

struct dkim_key;

/* dkim_key_load - the PEM private key at path (RSA >= 1024 bits, or
 * Ed25519) for d=domain s=selector; NULL with a reason in err. */
struct dkim_key *dkim_key_load(const char *domain, const char *selector,
	    const char *path, char *err, size_t errlen);
/* dkim_key_free - accepts NULL, returns NULL. */
struct dkim_key *dkim_key_free(struct dkim_key *);
enum dkim_alg dkim_key_alg(const struct dkim_key *);
const char *dkim_key_domain(const struct dkim_key *);

/*
 * dkim_sign - the DKIM-Signature header field for msg (RFC 5322 bytes with
 * CRLF line ends), signing the From, To, Cc, Subject, Date, Message-ID,
 * Reply-To, In-Reply-To, References, MIME-Version, List-* and Content-*
 * fields present (every occurrence, bottom-up) and From once more than
 * present, so none can be added; t=now.  Returns "DKIM-Signature:
 * ...\r\n", folded, ready to be prepended (allocated), or NULL with a
 * reason in err: no From or more than one, a malformed header block (bare
 * CR or LF, NUL, a line that is no field) or one over 1 MiB.  No blank
 * line means an empty body.  Safe to call from many threads on one key.
 */
char	*dkim_sign(const struct dkim_key *, const char *msg, size_t len,
	    time_t now, char *err, size_t errlen);

struct strbuf;
struct dkim_body_cache;

/*
 * dkim_sign_many - dkim_sign with each of keys[0..nkeys), the fields
 * appended to out in key order (the first key's on top once prepended),
 * the header block split and canonicalised once and the body hashed
 * once.  With bc, a body that begins with bc's bytes is hashed from bc's
 * state on.  Returns how many signatures were appended: -1 when the
 * message cannot be signed (as dkim_sign refuses it), fewer than nkeys
 * when a key failed (the last reason in err).
 */
int	 dkim_sign_many(const struct dkim_key *const *keys, size_t nkeys,
	    const char *msg, size_t len, time_t now,
	    const struct dkim_body_cache *bc, struct strbuf *out, char *err,
	    size_t errlen);

/*
 * dkim_body_cache_new - the relaxed SHA-256 state of body[0..len) up to
 * its last CRLF (its bytes kept), for bodies that begin with them: the
 * part of a post that every receiver's copy shares.  NULL when there is
 * no whole line.  Read-only once made: any number of threads may sign
 * with it.  dkim_body_cache_free accepts NULL, returns NULL.
 */
struct dkim_body_cache *dkim_body_cache_new(const char *body, size_t len);
struct dkim_body_cache *dkim_body_cache_free(struct dkim_body_cache *);

#endif
