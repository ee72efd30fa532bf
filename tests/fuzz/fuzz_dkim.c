/* SPDX-License-Identifier: MIT */
/*
 * fuzz_dkim.c - libFuzzer target for the DKIM signer (dkim_sign).
 *
 * Keys are made once in LLVMFuzzerInitialize: an Ed25519 key and, to keep
 * iterations fast, an RSA-1024 key; the first input byte picks one, the
 * rest is the message.  Properties: no crash or overread (the message is
 * copied to a buffer of its exact size); NULL comes with a reason; a
 * signature starts "DKIM-Signature: ", ends in CRLF, is folded into lines
 * of at most 78 bytes that continue with a tab and hold no NUL, CR or LF
 * of their own; Ed25519 signing is deterministic, so signing again gives
 * the same bytes.  Seeds: tests/fuzz/dkim/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "dkim.h"

int	LLVMFuzzerInitialize(int *argc, char ***argv);
int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct dkim_key *keys[2];

static struct dkim_key *
make_key(EVP_PKEY *pk)
{
	char path[] = "/tmp/fuzz_dkim.XXXXXX", err[256];
	struct dkim_key *k;
	FILE *fp;
	int fd;

	if (pk == NULL || (fd = mkstemp(path)) == -1 ||
	    (fp = fdopen(fd, "w")) == NULL)
		abort();
	if (PEM_write_PrivateKey(fp, pk, NULL, NULL, 0, NULL, NULL) != 1)
		abort();
	fclose(fp);
	k = dkim_key_load("example.org", "fuzz", path, err, sizeof(err));
	unlink(path);
	EVP_PKEY_free(pk);
	if (k == NULL) {
		fprintf(stderr, "fuzz_dkim: %s\n", err);
		abort();
	}
	return k;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	keys[0] = make_key(EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"));
	keys[1] = make_key(EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024));
	return 0;
}

static void
check_sig(const char *sig)
{
	const char *p = sig, *nl;
	size_t n = strlen(sig);

	if (strncmp(sig, "DKIM-Signature: ", 16) != 0 || n < 18 ||
	    strcmp(sig + n - 2, "\r\n") != 0)
		abort();
	for (; *p != '\0'; p = nl + 2) {
		if ((nl = strstr(p, "\r\n")) == NULL || nl - p > 78 ||
		    (p != sig && *p != '\t') ||
		    memchr(p, '\r', (size_t)(nl - p)) != NULL ||
		    memchr(p, '\n', (size_t)(nl - p)) != NULL)
			abort();
	}
	if (strstr(sig, " bh=") == NULL && strstr(sig, "\tbh=") == NULL)
		abort();
	if (strstr(sig, "\tb=") == NULL)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dkim_key *k;
	char err[256], *msg, *sig, *again;

	if (size < 1)
		return 0;
	k = keys[data[0] & 1];
	size--;
	msg = malloc(size ? size : 1);
	memcpy(msg, data + 1, size);
	err[0] = '\0';
	sig = dkim_sign(k, msg, size, 1700000000, err, sizeof(err));
	if (sig == NULL) {
		if (err[0] == '\0')
			abort();
	} else {
		check_sig(sig);
		if (k == keys[0]) {
			again = dkim_sign(k, msg, size, 1700000000, err,
			    sizeof(err));
			if (again == NULL || strcmp(again, sig) != 0)
				abort();
			free(again);
		}
	}
	free(sig);
	free(msg);
	return 0;
}
