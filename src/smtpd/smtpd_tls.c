/* SPDX-License-Identifier: MIT */
/*
 * smtpd_tls.c - the OpenSSL context for STARTTLS (RFC 3207).
 *
 * Loaded once at start-up from smtpd_tls_cert and smtpd_tls_key (read
 * before privileges are dropped would be nicer; today the files must be
 * readable by cfg.user).  TLS 1.2 is the minimum.  Without both keys set
 * there is no context and STARTTLS is not offered.
 */
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "config.h"
#include "log.h"
#include "smtpd.h"

struct ssl_ctx_st *smtpd_tls_ctx;

int
smtpd_tls_init(void)
{
	SSL_CTX *ctx;

	if (cfg.smtpd_tls_cert[0] == '\0' || cfg.smtpd_tls_key[0] == '\0')
		return 0;
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		log_err("smtpd: SSL_CTX_new failed");
		return -1;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg.smtpd_tls_cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, cfg.smtpd_tls_key,
	    SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		log_err("smtpd: cannot load TLS certificate %s / key %s: %s",
		    cfg.smtpd_tls_cert, cfg.smtpd_tls_key,
		    ERR_error_string(ERR_get_error(), NULL));
		SSL_CTX_free(ctx);
		return -1;
	}
	smtpd_tls_ctx = ctx;
	return 0;
}

void
smtpd_tls_fini(void)
{
	SSL_CTX_free(smtpd_tls_ctx);
	smtpd_tls_ctx = NULL;
}
