/* SPDX-License-Identifier: MIT */
/*
 * fuzz_karl_send.c - libFuzzer target for karl's POST /v1/send body.
 *
 * The input is a body, decoded as httpd decodes an HTTPD_JSON body and
 * then by karl_send_decode.  What it accepts must be within the bounds of
 * karl_clnt.h and re-encode to a body that decodes to the same job,
 * message bytes and receivers.  Seeds: tests/fuzz/karl_send/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "karl_clnt.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* same_str - both NULL or equal. */
static int
same_str(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* check_again - re-encode s and decode it again; abort on a difference. */
static void
check_again(const struct karl_send *s)
{
	struct karl_job job = {
		.job = s->job,
		.kind = s->kind,
		.message = s->message,
		.message_len = s->message_len,
		.footer_text = s->footer_text,
		.footer_html = s->footer_html,
		.sender_local = s->sender_local,
		.sender_domain = s->sender_domain,
		.sign_domain = s->sign_domain,
	};
	size_t i, nr = json_array_size(s->receivers);
	struct karl_receiver *r;
	struct karl_send again;
	json_t *re, *v;
	char err[256];

	if (!karl_job_id_valid(s->job) || s->batch < 0 ||
	    s->batch > KARL_BATCH_NO_MAX || nr == 0 || nr > KARL_BATCH_MAX ||
	    (s->kind != NULL && !karl_kind_valid(s->kind)) ||
	    (s->batch == 0) != (s->message != NULL))
		abort();
	r = calloc(nr, sizeof(*r));
	if (r == NULL)
		abort();
	json_array_foreach(s->receivers, i, v) {
		r[i].to = json_string_value(json_object_get(v, F_KARL_TO));
		r[i].verp = json_string_value(json_object_get(v, F_KARL_VERP));
		r[i].data = json_object_get(v, F_KARL_DATA);
		if (r[i].to == NULL || strchr(r[i].to, '@') == NULL)
			abort();
	}
	re = karl_send_encode(&job, s->batch, s->last, r, nr);
	if (karl_send_decode(re, &again, err, sizeof(err)) != 0 ||
	    strcmp(again.job, s->job) != 0 || again.batch != s->batch ||
	    again.last != s->last || !same_str(again.kind, s->kind) ||
	    again.message_len != s->message_len ||
	    (s->message != NULL &&
	    memcmp(again.message, s->message, s->message_len) != 0) ||
	    !same_str(again.footer_text, s->footer_text) ||
	    !same_str(again.footer_html, s->footer_html) ||
	    !same_str(again.sender_local, s->sender_local) ||
	    !same_str(again.sender_domain, s->sender_domain) ||
	    !same_str(again.sign_domain, s->sign_domain) ||
	    json_array_size(again.receivers) != nr)
		abort();
	/* an empty data object is left out when encoding */
	json_array_foreach(again.receivers, i, v) {
		json_t *d = json_object_get(v, F_KARL_DATA);

		if (!same_str(json_string_value(json_object_get(v, F_KARL_TO)),
		    r[i].to) || !same_str(json_string_value(json_object_get(v,
		    F_KARL_VERP)), r[i].verp))
			abort();
		if (d != NULL ? !json_equal(d, r[i].data) :
		    json_object_size(r[i].data) != 0)
			abort();
	}
	karl_send_free(&again);
	json_decref(re);
	free(r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct karl_send s;
	json_t *body;
	char err[256];

	body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES,
	    NULL);
	if (body == NULL)
		return 0;
	if (karl_send_decode(body, &s, err, sizeof(err)) == 0) {
		check_again(&s);
		karl_send_free(&s);
	} else if (err[0] == '\0')
		abort();
	json_decref(body);
	return 0;
}
