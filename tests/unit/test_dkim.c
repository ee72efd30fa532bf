/* SPDX-License-Identifier: MIT */
/*
 * test_dkim.c - unit tests of the DKIM signer (dkim.c).
 *
 * Keys (RSA-2048, RSA-512, Ed25519, P-256, an encrypted one) are made at
 * start-up with OpenSSL in a temp dir.  Every signature is verified by
 * libopendkim's verifier, reading the published keys from a file
 * (DKIM_QUERY_FILE) instead of DNS, for both algorithms; tampering with
 * the body, a signed field or adding a From must make it fail.  The body
 * hash is checked against RFC 8463's example and canonical equivalences.
 *
 * Two test-only modes run instead of the tests (see the end of the file):
 * DKIM_VERIFY_KEYS=keys.txt verifies stdin with libopendkim (verify_mode).
 * DKIM_SIGN_KEY=pem DKIM_SIGN_DOMAIN=d DKIM_SIGN_SELECTOR=s signs stdin and
 * prints the signed message (tests/e2e/test_dkim_verify.py verifies that
 * with python3-dkim), and DKIM_BENCH=pem prints signatures/s.
 */
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

/* libopendkim's header declares its own dkim_sign; we only verify */
#define dkim_sign	opendkim_sign_unused
#include <opendkim/dkim.h>
#undef dkim_sign

#include "dkim.h"
#include "strbuf.h"
#include "xalloc.h"

#define DOMAIN	"example.org"

static char tmpdir[] = "/tmp/test_dkim.XXXXXX";
static char rsa_pem[256], ed_pem[256], keys_txt[256];
static DKIM_LIB *vlib;

/* ---- fixtures ---- */

static void
write_key(EVP_PKEY *pk, const char *path, const EVP_CIPHER *enc)
{
	FILE *fp = fopen(path, "w");

	if (fp == NULL || PEM_write_PrivateKey(fp, pk, enc,
	    enc ? (unsigned char *)"secret" : NULL, enc ? 6 : 0, NULL,
	    NULL) != 1)
		abort();
	fclose(fp);
}

static char *
b64(const unsigned char *p, size_t n)
{
	char *s = xmalloc(4 * ((n + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)s, p, (int)n);
	return s;
}

/* publish - the TXT record of pk as libopendkim's key file line: SPKI DER
 * for RSA, the raw 32 bytes for Ed25519 (RFC 8463 4). */
static void
publish(FILE *fp, EVP_PKEY *pk, const char *sel)
{
	unsigned char raw[32], *der = NULL;
	size_t rawlen = sizeof(raw);
	char *p;
	int n;

	if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_ED25519) {
		if (EVP_PKEY_get_raw_public_key(pk, raw, &rawlen) != 1)
			abort();
		p = b64(raw, rawlen);
		fprintf(fp, "%s._domainkey.%s v=DKIM1; k=ed25519; p=%s\n",
		    sel, DOMAIN, p);
	} else {
		if ((n = i2d_PUBKEY(pk, &der)) <= 0)
			abort();
		p = b64(der, (size_t)n);
		OPENSSL_free(der);
		fprintf(fp, "%s._domainkey.%s v=DKIM1; k=rsa; p=%s\n",
		    sel, DOMAIN, p);
	}
	free(p);
}

static int
setup(void **state)
{
	EVP_PKEY *rsa, *ed, *small, *ec;
	char path[256];
	FILE *fp;
	int qm = DKIM_QUERY_FILE;

	(void)state;
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)512);
	ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (rsa == NULL || ed == NULL || small == NULL || ec == NULL)
		return -1;
	snprintf(rsa_pem, sizeof(rsa_pem), "%s/rsa.pem", tmpdir);
	snprintf(ed_pem, sizeof(ed_pem), "%s/ed.pem", tmpdir);
	snprintf(keys_txt, sizeof(keys_txt), "%s/keys.txt", tmpdir);
	write_key(rsa, rsa_pem, NULL);
	write_key(ed, ed_pem, NULL);
	snprintf(path, sizeof(path), "%s/small.pem", tmpdir);
	write_key(small, path, NULL);
	snprintf(path, sizeof(path), "%s/ec.pem", tmpdir);
	write_key(ec, path, NULL);
	snprintf(path, sizeof(path), "%s/enc.pem", tmpdir);
	write_key(rsa, path, EVP_aes_128_cbc());
	snprintf(path, sizeof(path), "%s/junk.pem", tmpdir);
	if ((fp = fopen(path, "w")) == NULL)
		return -1;
	fputs("not a key\n", fp);
	fclose(fp);

	if ((fp = fopen(keys_txt, "w")) == NULL)
		return -1;
	publish(fp, rsa, "rsa");
	publish(fp, ed, "ed");
	fclose(fp);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ed);
	EVP_PKEY_free(small);
	EVP_PKEY_free(ec);

	if ((vlib = dkim_init(NULL, NULL)) == NULL ||
	    !dkim_libfeature(vlib, DKIM_FEATURE_ED25519))
		return -1;
	if (dkim_options(vlib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYMETHOD, &qm,
	    sizeof(qm)) != DKIM_STAT_OK ||
	    dkim_options(vlib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYINFO, keys_txt,
	    strlen(keys_txt)) != DKIM_STAT_OK)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	const char *names[] = { "rsa.pem", "ed.pem", "small.pem", "ec.pem",
	    "enc.pem", "junk.pem", "keys.txt" };
	char path[256];
	size_t i;

	(void)state;
	dkim_close(vlib);
	for (i = 0; i < NELEM(names); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
		unlink(path);
	}
	rmdir(tmpdir);
	return 0;
}

static struct dkim_key *
load(const char *pem, const char *sel)
{
	char err[256] = "";
	struct dkim_key *k = dkim_key_load(DOMAIN, sel, pem, err,
	    sizeof(err));

	if (k == NULL)
		fail_msg("dkim_key_load %s: %s", pem, err);
	return k;
}

/* sign - sig + msg (allocated), or fail. */
static char *
sign(const struct dkim_key *k, const char *msg, char **sigp)
{
	char err[256] = "", *sig, *out;

	sig = dkim_sign(k, msg, strlen(msg), time(NULL), err, sizeof(err));
	if (sig == NULL)
		fail_msg("dkim_sign: %s", err);
	out = xasprintf("%s%s", sig, msg);
	if (sigp != NULL)
		*sigp = sig;
	else
		free(sig);
	return out;
}

/* verify - 1 if libopendkim finds one good signature on m. */
static int
verify(const char *m)
{
	DKIM_STAT st;
	DKIM_SIGINFO *si;
	DKIM *d;
	char *buf;
	int ok;

	d = dkim_verify(vlib, (const unsigned char *)"test", NULL, &st);
	assert_non_null(d);
	/* dkim_chunk takes a non-const buffer */
	buf = xstrdup(m);
	st = dkim_chunk(d, (u_char *)buf, strlen(buf));
	if (st == DKIM_STAT_OK)
		st = dkim_chunk(d, NULL, 0);
	if (st == DKIM_STAT_OK)
		st = dkim_eom(d, NULL);
	si = dkim_getsignature(d);
	ok = st == DKIM_STAT_OK && si != NULL && DKIM_SIG_CHECK(si);
	if (!ok && getenv("TEST_DKIM_VERBOSE") != NULL)
		fprintf(stderr, "opendkim: stat %d: %s (%s)\n", st,
		    dkim_geterror(d) ? dkim_geterror(d) : "",
		    si ? dkim_sig_geterrorstr(dkim_sig_geterror(si)) : "-");
	dkim_free(d);
	free(buf);
	return ok;
}

/* tag - the value of tag t in signature sig with FWS removed
 * (allocated). */
static char *
tag(const char *sig, const char *t)
{
	struct strbuf *sb = strbuf_new(64);
	char pat[16];
	const char *p;

	snprintf(pat, sizeof(pat), " %s=", t);
	/* FWS before a tag: a space, or a fold's tab */
	if ((p = strstr(sig, pat)) == NULL) {
		pat[0] = '\t';
		p = strstr(sig, pat);
	}
	assert_non_null(p);
	for (p += strlen(pat); *p != ';' && *p != '\0'; p++)
		if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
			strbuf_putc(sb, *p);
	return strbuf_detach(sb, NULL);
}

/* ---- messages ---- */

#define HDRS \
	"From: Alice <alice@example.org>\r\n" \
	"To: group@example.org\r\n" \
	"Subject: hello\r\n" \
	"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\n" \
	"Message-ID: <1@example.org>\r\n"

static const char *const msgs[] = {
	/* simple */
	HDRS "\r\nHello, world.\r\n",
	/* folded headers, WSP runs and trailing WSP in headers */
	"From:   Alice\r\n\t<alice@example.org>  \r\n"
	"To: a@example.org,\r\n   b@example.org,\r\n\tc@example.org\r\n"
	"Subject:  a  long\t\tsubject  \r\n   folded twice\r\n"
	"Received: from x by y; Thu, 03 Dec 2026 10:00:00 +0000\r\n"
	"X-Unsigned: yes\r\n"
	"\r\nbody\r\n",
	/* trailing WSP, WSP runs and trailing empty lines in the body */
	HDRS "\r\nline  with   runs \t \r\n\t\tindented\r\n \r\n\r\n\r\n",
	/* empty body */
	HDRS "\r\n",
	/* no blank line at all: no body */
	HDRS,
	/* repeated fields: signed bottom-up; List-* and MIME fields */
	"Received: one\r\n"
	"From: alice@example.org\r\n"
	"To: first@example.org\r\n"
	"Subject: s\r\n"
	"To: second@example.org\r\n"
	"List-Id: <g.example.org>\r\n"
	"List-Unsubscribe: <mailto:u@example.org>\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: text/plain; charset=utf-8\r\n"
	"Content-Transfer-Encoding: 8bit\r\n"
	"Comments: one\r\n"
	"Comments: two\r\n"
	"\r\nbody\r\n",
	/* 8-bit UTF-8 body and header */
	"From: =?utf-8?q?Zo=C3=AB?= <zoe@example.org>\r\n"
	"To: group@example.org\r\n"
	"Subject: caf\xc3\xa9 \xe2\x98\x95\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: text/plain; charset=utf-8\r\n"
	"Content-Transfer-Encoding: 8bit\r\n"
	"\r\nH\xc3\xa9llo \xe2\x80\x94 \xf0\x9f\x98\x80  na\xc3\xafve\r\n"
	"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\r\n",
	/* lowercase names, WSP before the colon of an unsigned field */
	"from: alice@example.org\r\nsubject:x\r\nX-Obs : y\r\n\r\nbody\r\n",
	/* a last body line without CRLF */
	HDRS "\r\nno newline at the end",
};

/* ---- tests ---- */

static void
check_structure(const char *sig, const char *alg)
{
	const char *p = sig, *nl;
	char *v, want[64];

	assert_true(strncmp(sig, "DKIM-Signature: v=1; a=", 23) == 0);
	snprintf(want, sizeof(want), "a=%s;", alg);
	assert_non_null(strstr(sig, want));
	assert_non_null(strstr(sig, " c=relaxed/relaxed;"));
	assert_non_null(strstr(sig, " d=" DOMAIN ";"));
	assert_true(strlen(sig) > 2 &&
	    strcmp(sig + strlen(sig) - 2, "\r\n") == 0);
	/* folded: short lines, each continuation starting with a tab */
	for (; *p != '\0'; p = nl + 2) {
		nl = strstr(p, "\r\n");
		assert_non_null(nl);
		assert_true(nl - p <= 78);
		assert_true(p == sig || *p == '\t');
		assert_null(memchr(p, '\n', (size_t)(nl - p)));
	}
	v = tag(sig, "h");
	assert_true(strncmp(v, "from:", 5) == 0);
	/* over-signed: one more from than the message has */
	assert_true(strlen(v) > 5 && strcmp(v + strlen(v) - 5, ":from") == 0);
	free(v);
	v = tag(sig, "bh");
	assert_int_equal(strlen(v), 44);
	free(v);
	v = tag(sig, "b");
	assert_true(strlen(v) == (strcmp(alg, "rsa-sha256") == 0 ? 344 :
	    88));
	free(v);
}

static void
sign_and_verify(const char *pem, const char *sel, const char *alg)
{
	struct dkim_key *k = load(pem, sel);
	char *m, *sig;
	size_t i;

	assert_string_equal(dkim_key_domain(k), DOMAIN);
	for (i = 0; i < NELEM(msgs); i++) {
		m = sign(k, msgs[i], &sig);
		check_structure(sig, alg);
		/* libopendkim refuses a body with no final CRLF; SMTP's
		 * DATA adds one, and the signature covers that */
		if (strlen(m) < 2 || strcmp(m + strlen(m) - 2, "\r\n") != 0) {
			char *t = xasprintf("%s\r\n", m);

			free(m);
			m = t;
		}
		if (!verify(m))
			fail_msg("%s: message %zu does not verify:\n%s", alg,
			    i, m);
		free(sig);
		free(m);
	}
	dkim_key_free(k);
}

static void
test_rsa_verifies(void **state)
{
	(void)state;
	sign_and_verify(rsa_pem, "rsa", "rsa-sha256");
}

static void
test_ed25519_verifies(void **state)
{
	(void)state;
	sign_and_verify(ed_pem, "ed", "ed25519-sha256");
}

static void
test_key_alg(void **state)
{
	struct dkim_key *k;

	(void)state;
	k = load(rsa_pem, "rsa");
	assert_int_equal(dkim_key_alg(k), DKIM_RSA_SHA256);
	k = dkim_key_free(k);
	assert_null(k);
	k = load(ed_pem, "ed");
	assert_int_equal(dkim_key_alg(k), DKIM_ED25519_SHA256);
	dkim_key_free(k);
	assert_null(dkim_key_free(NULL));
}

/* replace - m with the first occurrence of from replaced (allocated). */
static char *
replace(const char *m, const char *from, const char *to)
{
	const char *p = strstr(m, from);

	assert_non_null(p);
	return xasprintf("%.*s%s%s", (int)(p - m), m, to, p + strlen(from));
}

static void
tamper(const char *pem, const char *sel)
{
	struct dkim_key *k = load(pem, sel);
	char *m = sign(k, msgs[5], NULL), *t;

	assert_true(verify(m));
	/* one body byte */
	t = replace(m, "\r\n\r\nbody", "\r\n\r\nBody");
	assert_false(verify(t));
	free(t);
	/* one signed field, and each of the repeated ones */
	t = replace(m, "Subject: s", "Subject: t");
	assert_false(verify(t));
	free(t);
	t = replace(m, "first@", "First@");
	assert_false(verify(t));
	free(t);
	t = replace(m, "second@", "Second@");
	assert_false(verify(t));
	free(t);
	/* a From added above or below: over-signing catches it */
	t = replace(m, "Received: one", "From: mallory@example.org\r\n"
	    "Received: one");
	assert_false(verify(t));
	free(t);
	t = replace(m, "\r\n\r\nbody", "\r\nFrom: mallory@example.org"
	    "\r\n\r\nbody");
	assert_false(verify(t));
	free(t);
	/* changes a verifier must ignore: unsigned fields, relaxed WSP */
	t = replace(m, "Comments: two", "Comments: 2");
	assert_true(verify(t));
	free(t);
	t = replace(m, "Received: one", "Received: two\r\nX-Added: 1");
	assert_true(verify(t));
	free(t);
	t = replace(m, "Subject: s", "Subject:   s   ");
	assert_true(verify(t));
	free(t);
	t = replace(m, "\r\n\r\nbody\r\n", "\r\n\r\nbody  \r\n\r\n");
	assert_true(verify(t));
	free(t);
	free(m);
	dkim_key_free(k);
}

static void
test_tampering_fails(void **state)
{
	(void)state;
	tamper(rsa_pem, "rsa");
	tamper(ed_pem, "ed");
}

static char *
bh_of(const struct dkim_key *k, const char *msg)
{
	char err[256], *sig, *v;

	sig = dkim_sign(k, msg, strlen(msg), 0, err, sizeof(err));
	if (sig == NULL)
		fail_msg("dkim_sign: %s", err);
	v = tag(sig, "bh");
	free(sig);
	return v;
}

/* test_body_hash - known answers: RFC 8463 appendix A's body, and the
 * empty body, which relaxed hashes as "" (not CRLF as simple does). */
static void
test_body_hash(void **state)
{
	struct dkim_key *k = load(ed_pem, "ed");
	char *a, *b;

	(void)state;
	a = bh_of(k, "From: joe@football.example.com\r\n\r\nHi.\r\n\r\n"
	    "We lost the game.  Are you hungry yet?\r\n\r\nJoe.\r\n");
	assert_string_equal(a, "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=");
	free(a);
	a = bh_of(k, "From: a@example.org\r\n\r\n");
	assert_string_equal(a, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
	free(a);
	a = bh_of(k, "From: a@example.org\r\n");
	assert_string_equal(a, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
	free(a);
	a = bh_of(k, "From: a@example.org\r\n\r\n \t\r\n\r\n  ");
	assert_string_equal(a, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
	free(a);
	/* relaxed equivalences */
	a = bh_of(k, "From: a@example.org\r\n\r\n a  b\t\tc \r\n\r\nd\r\n");
	b = bh_of(k, "From: a@example.org\r\n\r\n\ta b c\r\n\r\nd\r\n\r\n");
	assert_string_equal(a, b);
	free(b);
	b = bh_of(k, "From: a@example.org\r\n\r\n a b c\r\n\r\nd");
	assert_string_equal(a, b);
	free(b);
	b = bh_of(k, "From: a@example.org\r\n\r\nab c\r\n\r\nd\r\n");
	assert_string_not_equal(a, b);
	free(b);
	free(a);
	dkim_key_free(k);
}

static void
test_headers_listed(void **state)
{
	struct dkim_key *k = load(rsa_pem, "rsa");
	char err[256], *sig, *h;

	(void)state;
	sig = dkim_sign(k, msgs[5], strlen(msgs[5]), 1700000000, err,
	    sizeof(err));
	assert_non_null(sig);
	h = tag(sig, "t");
	assert_string_equal(h, "1700000000");
	free(h);
	h = tag(sig, "s");
	assert_string_equal(h, "rsa");
	free(h);
	h = tag(sig, "h");
	/* first appearance order, every occurrence, unsigned ones left out,
	 * From once more */
	assert_string_equal(h, "from:to:to:subject:list-id:list-unsubscribe:"
	    "mime-version:content-type:content-transfer-encoding:from");
	free(h);
	free(sig);
	dkim_key_free(k);
}

static void
expect_sign_error(const struct dkim_key *k, const char *msg, size_t len,
    const char *want)
{
	char err[256] = "";
	char *sig = dkim_sign(k, msg, len, 0, err, sizeof(err));

	if (sig != NULL)
		fail_msg("signed, expected \"%s\"", want);
	if (strstr(err, want) == NULL)
		fail_msg("error \"%s\", expected \"%s\"", err, want);
}

static void
test_sign_errors(void **state)
{
	struct dkim_key *k = load(rsa_pem, "rsa");
	struct strbuf *sb;
	const char *m;
	int i;

	(void)state;
	m = "To: a@example.org\r\n\r\nbody\r\n";
	expect_sign_error(k, m, strlen(m), "no From");
	expect_sign_error(k, "", 0, "no From");
	m = "\r\nFrom: a@example.org\r\n";
	expect_sign_error(k, m, strlen(m), "no From");
	m = "From: a@example.org\r\nFrom: b@example.org\r\n\r\nx\r\n";
	expect_sign_error(k, m, strlen(m), "more than one From");
	m = "From: a@example.org\nTo: b\r\n\r\n";
	expect_sign_error(k, m, strlen(m), "bare LF");
	m = "From: a@exa\rmple.org\r\n\r\n";
	expect_sign_error(k, m, strlen(m), "bare CR");
	expect_sign_error(k, "From: a\0b\r\n\r\n", 13, "NUL");
	m = " From: a@example.org\r\n\r\n";
	expect_sign_error(k, m, strlen(m), "continuation");
	/* libopendkim does not see "From :" as a From */
	m = "From : a@example.org\r\n\r\nx\r\n";
	expect_sign_error(k, m, strlen(m), "WSP before the colon");
	m = "From: a@example.org\r\nSubject\t: x\r\n\r\nx\r\n";
	expect_sign_error(k, m, strlen(m), "WSP before the colon");
	m = "From: a@example.org\r\nnot a header\r\n\r\n";
	expect_sign_error(k, m, strlen(m), "colon");
	m = "From: a@example.org\r\n: empty name\r\n\r\n";
	expect_sign_error(k, m, strlen(m), "colon");
	m = "From: a@example.org\r\n\t: x\r\n\r\nbody\r\n";
	/* a continuation whose text has a colon is still a continuation */
	free(sign(k, m, NULL));

	/* header block over 1 MiB, and a huge number of signed fields */
	sb = strbuf_new(2 * 1024 * 1024);
	strbuf_puts(sb, "From: a@example.org\r\n");
	for (i = 0; i < 20000; i++)
		strbuf_puts(sb, "X-Pad: 0123456789012345678901234567890123456"
		    "789012345678901234567890123456789\r\n");
	strbuf_puts(sb, "\r\nbody\r\n");
	expect_sign_error(k, sb->buf, sb->len, "header block over");
	strbuf_reset(sb);
	strbuf_puts(sb, "From: a@example.org\r\n");
	for (i = 0; i < 300; i++)
		strbuf_puts(sb, "To: a@example.org\r\n");
	strbuf_puts(sb, "\r\nbody\r\n");
	expect_sign_error(k, sb->buf, sb->len, "header fields to sign");
	strbuf_free(sb);
	dkim_key_free(k);
}

static void
expect_load_error(const char *domain, const char *sel, const char *file,
    const char *want)
{
	char path[256], err[256] = "";

	snprintf(path, sizeof(path), "%s/%s", tmpdir, file);
	if (dkim_key_load(domain, sel, path, err, sizeof(err)) != NULL)
		fail_msg("loaded %s, expected \"%s\"", file, want);
	if (strstr(err, want) == NULL)
		fail_msg("error \"%s\", expected \"%s\"", err, want);
}

static void
test_load_errors(void **state)
{
	(void)state;
	expect_load_error(DOMAIN, "s", "missing.pem", "No such file");
	expect_load_error(DOMAIN, "s", "junk.pem", "no usable PEM");
	expect_load_error(DOMAIN, "s", "enc.pem", "encrypted");
	expect_load_error(DOMAIN, "s", "small.pem", "512 bits");
	expect_load_error(DOMAIN, "s", "ec.pem", "RSA or Ed25519 only");
	expect_load_error("", "s", "rsa.pem", "bad DKIM domain");
	expect_load_error("a;b.org", "s", "rsa.pem", "bad DKIM domain");
	expect_load_error("a..org", "s", "rsa.pem", "bad DKIM domain");
	expect_load_error(DOMAIN, "", "rsa.pem", "bad DKIM selector");
	expect_load_error(DOMAIN, "s; x=1", "rsa.pem", "bad DKIM selector");
	expect_load_error(DOMAIN, "0123456789012345678901234567890123456789"
	    "012345678901234567890123", "rsa.pem", "bad DKIM selector");
}

/* One key, many threads at once: both schemes are deterministic
 * (Ed25519, RSA PKCS#1 v1.5), so every signature made in a thread must
 * equal the one made alone, which libopendkim verifies. */
#define THREADS	4
#define ROUNDS	40

struct job {
	const struct dkim_key	*k;
	const char		*want;
	int			 bad;
};

static void *
sign_many(void *arg)
{
	struct job *j = arg;
	char err[256], *sig;
	int i;

	for (i = 0; i < ROUNDS; i++) {
		sig = dkim_sign(j->k, msgs[5], strlen(msgs[5]), 1700000000,
		    err, sizeof(err));
		j->bad += sig == NULL || strcmp(sig, j->want) != 0;
		free(sig);
	}
	return NULL;
}

static void
test_threads_share_a_key(void **state)
{
	struct dkim_key *k[2] = { load(ed_pem, "ed"), load(rsa_pem, "rsa") };
	struct job jobs[2 * THREADS];
	pthread_t t[2 * THREADS];
	char err[256], *want[2], *m;
	int i;

	(void)state;
	for (i = 0; i < 2; i++) {
		want[i] = dkim_sign(k[i], msgs[5], strlen(msgs[5]), 1700000000,
		    err, sizeof(err));
		assert_non_null(want[i]);
		m = xasprintf("%s%s", want[i], msgs[5]);
		assert_true(verify(m));
		free(m);
	}
	for (i = 0; i < 2 * THREADS; i++) {
		jobs[i].k = k[i % 2];
		jobs[i].want = want[i % 2];
		jobs[i].bad = 0;
		assert_int_equal(pthread_create(&t[i], NULL, sign_many,
		    &jobs[i]), 0);
	}
	for (i = 0; i < 2 * THREADS; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(jobs[i].bad, 0);
	}
	for (i = 0; i < 2; i++) {
		free(want[i]);
		dkim_key_free(k[i]);
	}
}

/* test_sign_many - both keys at once: the same fields, in key order, as
 * dkim_sign makes them one by one (both schemes are deterministic), and
 * libopendkim verifies both; a message dkim_sign refuses gets none. */
static void
test_sign_many(void **state)
{
	const struct dkim_key *k[2] = { load(rsa_pem, "rsa"), load(ed_pem,
	    "ed") };
	struct strbuf *sb = strbuf_new(2048);
	char err[256], *a, *b, *m;
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(msgs); i++) {
		strbuf_reset(sb);
		assert_int_equal(dkim_sign_many(k, 2, msgs[i], strlen(msgs[i]),
		    1700000000, NULL, sb, err, sizeof(err)), 2);
		a = dkim_sign(k[0], msgs[i], strlen(msgs[i]), 1700000000, err,
		    sizeof(err));
		b = dkim_sign(k[1], msgs[i], strlen(msgs[i]), 1700000000, err,
		    sizeof(err));
		m = xasprintf("%s%s", a, b);
		assert_string_equal(sb->buf, m);
		free(m);
		free(a);
		free(b);
	}
	/* libopendkim reports the first signature: each on top once */
	strbuf_reset(sb);
	assert_int_equal(dkim_sign_many(&k[1], 1, msgs[5], strlen(msgs[5]),
	    time(NULL), NULL, sb, err, sizeof(err)), 1);
	assert_int_equal(dkim_sign_many(k, 1, msgs[5], strlen(msgs[5]),
	    time(NULL), NULL, sb, err, sizeof(err)), 1);
	m = xasprintf("%s%s", sb->buf, msgs[5]);
	assert_true(verify(m));
	free(m);
	strbuf_reset(sb);
	assert_int_equal(dkim_sign_many(k, 2, "To: a@example.org\r\n\r\nx",
	    26, 0, NULL, sb, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no From"));
	assert_int_equal(sb->len, 0);
	assert_int_equal(dkim_sign_many(k, 0, msgs[0], strlen(msgs[0]), 0,
	    NULL, sb, err, sizeof(err)), 0);
	strbuf_free(sb);
	dkim_key_free((struct dkim_key *)(uintptr_t)k[0]);
	dkim_key_free((struct dkim_key *)(uintptr_t)k[1]);
}

#define T0	1700000000	/* t= (libopendkim takes t=0 for the future) */

/* Bodies whose relaxed form carries state across lines: WSP runs, empty
 * lines held back (and dropped at the end), a last line without CRLF. */
static const char *const bodies[] = {
	"Hello, world.\r\n",
	"a  b\t\tc \r\n\r\n\r\nd\r\n \t\r\n\r\n",
	"\r\n\r\nx\r\n\r\n",
	"one\r\n\r\n \r\ntwo  \r\nthree",
	"\t lead\r\ntrail \t\r\n\r\n\r\n",
	"",
};

/* test_body_cache - signing with a cache made from any prefix of the
 * body gives the very signature made without one; a body that does not
 * begin with the cache's bytes is hashed in full. */
static void
test_body_cache(void **state)
{
	const struct dkim_key *k = load(ed_pem, "ed");
	struct strbuf *a = strbuf_new(1024), *b = strbuf_new(1024);
	struct dkim_body_cache *bc;
	char err[256], *m, *other;
	size_t i, cut, blen;

	(void)state;
	for (i = 0; i < NELEM(bodies); i++) {
		m = xasprintf(HDRS "\r\n%s", bodies[i]);
		blen = strlen(bodies[i]);
		strbuf_reset(a);
		assert_int_equal(dkim_sign_many(&k, 1, m, strlen(m), T0, NULL,
		    a, err, sizeof(err)), 1);
		for (cut = 0; cut <= blen; cut++) {
			bc = dkim_body_cache_new(bodies[i], cut);
			/* NULL only without a whole line */
			assert_true(bc != NULL || memmem(bodies[i], cut,
			    "\r\n", 2) == NULL);
			strbuf_reset(b);
			assert_int_equal(dkim_sign_many(&k, 1, m, strlen(m), T0,
			    bc, b, err, sizeof(err)), 1);
			assert_string_equal(a->buf, b->buf);
			if (bc != NULL && blen > 0) {
				/* same length, first byte changed */
				other = xasprintf(HDRS "\r\n#%s",
				    bodies[i] + 1);
				strbuf_reset(b);
				assert_int_equal(dkim_sign_many(&k, 1, other,
				    strlen(other), T0, bc, b, err, sizeof(err)),
				    1);
				free(other);
				/* libopendkim wants the CRLF SMTP adds */
				other = xasprintf("%s" HDRS "\r\n#%s%s", b->buf,
				    bodies[i] + 1, blen < 2 || strcmp(bodies[i] +
				    blen - 2, "\r\n") != 0 ? "\r\n" : "");
				assert_true(verify(other));
				free(other);
			}
			dkim_body_cache_free(bc);
		}
		free(m);
	}
	assert_null(dkim_body_cache_free(NULL));
	strbuf_free(a);
	strbuf_free(b);
	dkim_key_free((struct dkim_key *)(uintptr_t)k);
}

static double
cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* test_body_cache_is_used - a 4 MiB body: hashing it costs far more than
 * an Ed25519 signature, so signing from a cache of all but its last line
 * takes a fraction of the CPU time (by a wide margin: 4x is asserted, 50x
 * is usual), and still verifies. */
static void
test_body_cache_is_used(void **state)
{
	const struct dkim_key *k = load(ed_pem, "ed");
	struct strbuf *msg = strbuf_new(5 * 1024 * 1024), *sb = strbuf_new(1024);
	struct dkim_body_cache *bc;
	double t0, full, cached;
	char err[256], *m;
	size_t body;
	int i;

	(void)state;
	strbuf_puts(msg, HDRS "\r\n");
	body = msg->len;
	while (msg->len < 4 * 1024 * 1024)
		strbuf_puts(msg, "The  quick brown fox\tjumps over the lazy "
		    "dog, again and again. \r\n");
	bc = dkim_body_cache_new(msg->buf + body, msg->len - body);
	assert_non_null(bc);
	strbuf_puts(msg, "the footer of one receiver\r\n");
	t0 = cpu_now();
	for (i = 0; i < 5; i++) {
		strbuf_reset(sb);
		assert_int_equal(dkim_sign_many(&k, 1, msg->buf, msg->len, T0,
		    NULL, sb, err, sizeof(err)), 1);
	}
	full = cpu_now() - t0;
	m = xstrdup(sb->buf);
	t0 = cpu_now();
	for (i = 0; i < 5; i++) {
		strbuf_reset(sb);
		assert_int_equal(dkim_sign_many(&k, 1, msg->buf, msg->len, T0,
		    bc, sb, err, sizeof(err)), 1);
	}
	cached = cpu_now() - t0;
	assert_string_equal(sb->buf, m);
	free(m);
	m = xasprintf("%s%s", sb->buf, msg->buf);
	assert_true(verify(m));
	free(m);
	if (cached * 4 > full)
		fail_msg("cached %.4f s, full %.4f s", cached, full);
	dkim_body_cache_free(bc);
	strbuf_free(msg);
	strbuf_free(sb);
	dkim_key_free((struct dkim_key *)(uintptr_t)k);
}

/* ---- test-only modes ---- */

static char *
read_all(FILE *fp, size_t *lenp)
{
	struct strbuf *sb = strbuf_new(8192);
	char buf[8192];
	size_t n;

	while ((n = fread(buf, 1, sizeof(buf), fp)) > 0)
		strbuf_append(sb, buf, n);
	return strbuf_detach(sb, lenp);
}

/* sign_mode - DKIM_SIGN_KEY: stdin, signed, to stdout. */
static int
sign_mode(const char *pem)
{
	const char *d = getenv("DKIM_SIGN_DOMAIN");
	const char *s = getenv("DKIM_SIGN_SELECTOR");
	struct dkim_key *k;
	char err[256], *msg, *sig;
	size_t len;

	if (d == NULL || s == NULL) {
		fprintf(stderr, "DKIM_SIGN_DOMAIN and DKIM_SIGN_SELECTOR\n");
		return 2;
	}
	if ((k = dkim_key_load(d, s, pem, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	msg = read_all(stdin, &len);
	sig = dkim_sign(k, msg, len, time(NULL), err, sizeof(err));
	if (sig == NULL) {
		fprintf(stderr, "%s\n", err);
		free(msg);
		dkim_key_free(k);
		return 1;
	}
	fputs(sig, stdout);
	fwrite(msg, 1, len, stdout);
	free(sig);
	free(msg);
	dkim_key_free(k);
	return 0;
}

/* verify_mode - DKIM_VERIFY_KEYS: libopendkim checks every signature of
 * the message on stdin against the keys file ("name record" lines, its
 * DKIM_QUERY_FILE format) and prints "<algorithm> <d> <s> pass|fail" for
 * each; 0 when there is at least one and all pass.  The end-to-end tests
 * feed it mail karl delivered. */
static int
verify_mode(const char *keys)
{
	DKIM_SIGINFO **sigs;
	DKIM_STAT st;
	DKIM_LIB *lib;
	char qi[PATH_MAX];
	dkim_alg_t alg;
	DKIM *d;
	char *msg;
	size_t len;
	int i, n = 0, qm = DKIM_QUERY_FILE, bad = 0;

	snprintf(qi, sizeof(qi), "%s", keys);
	if ((lib = dkim_init(NULL, NULL)) == NULL ||
	    dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYMETHOD, &qm,
	    sizeof(qm)) != DKIM_STAT_OK ||
	    dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYINFO, qi,
	    strlen(qi)) != DKIM_STAT_OK) {
		fprintf(stderr, "libopendkim setup failed\n");
		return 2;
	}
	msg = read_all(stdin, &len);
	d = dkim_verify(lib, (const unsigned char *)"stdin", NULL, &st);
	if (d == NULL) {
		fprintf(stderr, "dkim_verify: %d\n", st);
		return 2;
	}
	st = dkim_chunk(d, (u_char *)msg, len);
	if (st == DKIM_STAT_OK)
		st = dkim_chunk(d, NULL, 0);
	if (st == DKIM_STAT_OK || st == DKIM_STAT_NOSIG)
		(void)dkim_eom(d, NULL);
	if (dkim_getsiglist(d, &sigs, &n) != DKIM_STAT_OK)
		n = 0;
	for (i = 0; i < n; i++) {
		if (dkim_sig_getsignalg(sigs[i], &alg) != DKIM_STAT_OK)
			alg = -1;
		printf("%s %s %s %s\n", alg == DKIM_SIGN_ED25519SHA256 ?
		    "ed25519-sha256" : alg == DKIM_SIGN_RSASHA256 ?
		    "rsa-sha256" : "other", dkim_sig_getdomain(sigs[i]),
		    dkim_sig_getselector(sigs[i]),
		    DKIM_SIG_CHECK(sigs[i]) ? "pass" : "fail");
		if (!DKIM_SIG_CHECK(sigs[i]))
			bad++;
	}
	dkim_free(d);
	dkim_close(lib);
	free(msg);
	return n > 0 && bad == 0 ? 0 : 1;
}

static double
now_s(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* bench_mode - DKIM_BENCH: signatures/s of a 4 KiB message, one thread,
 * for DKIM_BENCH_SECONDS (3), by wall clock and by CPU time (what
 * `openssl speed` divides by unless given -elapsed). */
static int
bench_mode(const char *pem)
{
	struct strbuf *sb = strbuf_new(4096);
	const char *e = getenv("DKIM_BENCH_SECONDS");
	double secs = e ? atof(e) : 3, t0, c0, t, c;
	struct dkim_key *k;
	char err[256], *sig;
	long n = 0;

	if ((k = dkim_key_load(DOMAIN, "bench", pem, err, sizeof(err))) ==
	    NULL) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	strbuf_puts(sb, HDRS "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "List-Id: <group.example.org>\r\n\r\n");
	while (sb->len < 4096 - 2)
		strbuf_puts(sb, "The quick brown fox jumps over the lazy "
		    "dog, again and again.\r\n");
	strbuf_truncate(sb, 4096 - 2);
	strbuf_puts(sb, "\r\n");
	t0 = now_s(CLOCK_MONOTONIC);
	c0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
	do {
		sig = dkim_sign(k, sb->buf, sb->len, 0, err, sizeof(err));
		if (sig == NULL) {
			fprintf(stderr, "%s\n", err);
			return 1;
		}
		free(sig);
		n++;
		t = now_s(CLOCK_MONOTONIC) - t0;
	} while (t < secs);
	c = now_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
	printf("alg=%s msg_bytes=%zu signatures=%ld seconds=%.2f "
	    "cpu_seconds=%.2f sig_per_s=%.0f sig_per_cpu_s=%.0f\n",
	    dkim_key_alg(k) == DKIM_RSA_SHA256 ? "rsa-sha256" :
	    "ed25519-sha256", sb->len, n, t, c, n / t, n / c);
	strbuf_free(sb);
	dkim_key_free(k);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rsa_verifies),
		cmocka_unit_test(test_ed25519_verifies),
		cmocka_unit_test(test_key_alg),
		cmocka_unit_test(test_tampering_fails),
		cmocka_unit_test(test_body_hash),
		cmocka_unit_test(test_headers_listed),
		cmocka_unit_test(test_sign_errors),
		cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_threads_share_a_key),
		cmocka_unit_test(test_sign_many),
		cmocka_unit_test(test_body_cache),
		cmocka_unit_test(test_body_cache_is_used),
	};

	if (getenv("DKIM_SIGN_KEY") != NULL)
		return sign_mode(getenv("DKIM_SIGN_KEY"));
	if (getenv("DKIM_VERIFY_KEYS") != NULL)
		return verify_mode(getenv("DKIM_VERIFY_KEYS"));
	if (getenv("DKIM_BENCH") != NULL)
		return bench_mode(getenv("DKIM_BENCH"));
	/* GROUPS_TEST_FILTER=pattern runs only the matching tests */
	if (getenv("GROUPS_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("GROUPS_TEST_FILTER"));
	return cmocka_run_group_tests(tests, setup, teardown);
}
