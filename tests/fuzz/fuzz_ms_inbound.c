/* SPDX-License-Identifier: MIT */
/*
 * fuzz_ms_inbound.c - libFuzzer target for messageserver's inbound body.
 *
 * The input is a POST /v1/inbound body, decoded as httpd decodes an
 * HTTPD_JSON body and then by ms_inbound_decode.  What it accepts must
 * re-encode to a body that decodes to the same envelope and bytes.
 * Seeds: tests/fuzz/ms_inbound/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "messageserver_clnt.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ms_inbound in, again;
	struct ms_envelope env;
	json_t *body, *re;
	char err[256];

	body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES,
	    NULL);
	if (body == NULL)
		return 0;
	if (ms_inbound_decode(body, &in, err, sizeof(err)) == 0) {
		env.mail_from = in.mail_from;
		env.rcpts = (const char *const *)in.rcpts;
		env.nrcpts = in.nrcpts;
		env.client_addr = in.client_addr;
		env.client_helo = in.client_helo;
		env.cid = in.cid;
		re = ms_inbound_encode(&env, in.raw, in.rawlen);
		if (ms_inbound_decode(re, &again, err, sizeof(err)) != 0 ||
		    again.rawlen != in.rawlen ||
		    memcmp(again.raw, in.raw, in.rawlen) != 0 ||
		    again.nrcpts != in.nrcpts ||
		    strcmp(again.mail_from, in.mail_from) != 0)
			abort();
		ms_inbound_free(&again);
		json_decref(re);
		ms_inbound_free(&in);
	}
	json_decref(body);
	return 0;
}
