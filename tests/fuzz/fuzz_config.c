/* SPDX-License-Identifier: MIT */
/*
 * fuzz_config.c - libFuzzer target for the configuration parser.
 *
 * Arbitrary bytes go to config_parse, which must never crash, must always
 * leave a NUL-terminated reason on failure, and must leave a struct that
 * config_free releases completely (LeakSanitizer checks).  An accepted
 * configuration is printed (what -n shows) and parsed again: that must
 * succeed and give the same numbers, booleans and choices.  (Unless a
 * printed line is longer than CONFIG_MAX_LINE: ${var_dir} expansion can
 * make one, and the parser rightly refuses it.)  Seeds:
 * tests/fuzz/config/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bounds.h"
#include "config.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* longest_line - length of the longest line of s. */
static size_t
longest_line(const char *s, size_t len)
{
	size_t max = 0, cur = 0, i;

	for (i = 0; i < len; i++) {
		if (s[i] == '\n') {
			cur = 0;
			continue;
		}
		if (++cur > max)
			max = cur;
	}
	return max;
}

/* same_scalars - every key that is not a string has the same value. */
static int
same_scalars(const struct config *a, const struct config *b)
{
	return a->log_queue == b->log_queue &&
	    a->http_max_body == b->http_max_body &&
	    a->http_threads == b->http_threads &&
	    a->http_timeout_ms == b->http_timeout_ms &&
	    a->debug_endpoints == b->debug_endpoints &&
	    a->db_pool == b->db_pool &&
	    a->errord_port == b->errord_port &&
	    a->errord_rotate_size == b->errord_rotate_size &&
	    a->errord_keep_files == b->errord_keep_files &&
	    a->errord_keep_days == b->errord_keep_days &&
	    a->errord_ring == b->errord_ring &&
	    a->errord_sync == b->errord_sync &&
	    a->web_port == b->web_port &&
	    a->web_public_port == b->web_public_port &&
	    a->smtpd_port == b->smtpd_port &&
	    a->smtpd_smtp_port == b->smtpd_smtp_port &&
	    a->smtp_public_port == b->smtp_public_port &&
	    a->smtpd_max_message == b->smtpd_max_message &&
	    a->messageserver_port == b->messageserver_port &&
	    a->karl_port == b->karl_port &&
	    a->karl_relay_port == b->karl_relay_port &&
	    strcmp(a->log_level, b->log_level) == 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config c, again;
	char err[256], *printed = NULL;
	size_t plen = 0;
	FILE *fp;

	memset(err, 'X', sizeof(err));
	if (config_parse(&c, (const char *)data, size, "fuzz.conf", err,
	    sizeof(err)) == -1) {
		/* a reason, terminated inside the buffer, naming the file */
		if (memchr(err, '\0', sizeof(err)) == NULL ||
		    strncmp(err, "fuzz.conf", 9) != 0)
			abort();
		config_free(&c);
		return 0;
	}
	if ((fp = open_memstream(&printed, &plen)) == NULL)
		abort();
	config_print(&c, fp);
	fclose(fp);
	if (longest_line(printed, plen) > CONFIG_MAX_LINE) {
		free(printed);
		config_free(&c);
		return 0;
	}
	if (config_parse(&again, printed, plen, "printed", err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "printed config does not load: %s\n", err);
		abort();
	}
	if (!same_scalars(&c, &again))
		abort();
	free(printed);
	config_free(&again);
	config_free(&c);
	return 0;
}
