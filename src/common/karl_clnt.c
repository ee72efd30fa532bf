/* SPDX-License-Identifier: MIT */
/*
 * karl_clnt.c - the client of karl's API and the encode/decode pair of
 * its /v1/send body (see karl_clnt.h).
 *
 * The message travels base64url-encoded, once per job (batch 0): JSON
 * strings must be UTF-8 and mail may be 8-bit in any charset.  A send is
 * idempotent by (job, batch), so unlike messageserver's inbound call it is
 * retried by httpc on a transport error or a 502/503/504.  Decoding is
 * strict because karl writes what it decodes into its spool and later
 * into SMTP commands: every field is type-checked and bounded, and
 * addresses may not carry spaces or control characters.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_proto.h"
#include "httpc.h"
#include "karl_clnt.h"
#include "token.h"
#include "xalloc.h"

/* base64url of the largest message karl takes (unpadded, rounded up) */
#define KARL_MESSAGE_B64_MAX	((size_t)MSG_MAX_SIZE_LIMIT / 3 * 4 + 4)

struct karl_clnt {
	struct httpc	*http;
};

static const char *const kind_names[] = {
	"post", "notice", "digest", "probe", "forward", "reply",
};

int
karl_kind_valid(const char *kind)
{
	size_t i;

	if (kind == NULL)
		return 0;
	for (i = 0; i < NELEM(kind_names); i++)
		if (strcmp(kind, kind_names[i]) == 0)
			return 1;
	return 0;
}

int
karl_job_id_valid(const char *id)
{
	size_t n;

	if (id == NULL)
		return 0;
	for (n = 0; id[n] != '\0'; n++) {
		if (n >= KARL_JOB_MAX)
			return 0;
		if (!((id[n] >= 'a' && id[n] <= 'z') ||
		    (id[n] >= 'A' && id[n] <= 'Z') ||
		    (id[n] >= '0' && id[n] <= '9') ||
		    strchr("._:-", id[n]) != NULL))
			return 0;
	}
	return n > 0;
}

/* encode_receiver - one receiver object (returns a new reference). */
static json_t *
encode_receiver(const struct karl_receiver *r)
{
	json_t *o = json_object();

	json_object_set_new(o, F_KARL_TO, json_string(r->to));
	if (r->verp != NULL)
		json_object_set_new(o, F_KARL_VERP, json_string(r->verp));
	if (r->data != NULL && json_object_size(r->data) > 0)
		json_object_set(o, F_KARL_DATA, r->data);
	return o;
}

json_t *
karl_send_encode(const struct karl_job *job, long long batch, int last,
    const struct karl_receiver *r, size_t nr)
{
	json_t *j = json_object(), *rc = json_array(), *footer;
	char *b64;
	size_t i;

	json_object_set_new(j, F_KARL_JOB, json_string(job->job));
	json_object_set_new(j, F_KARL_BATCH, json_integer(batch));
	json_object_set_new(j, F_KARL_LAST, json_boolean(last));
	if (job->kind != NULL)
		json_object_set_new(j, F_KARL_KIND, json_string(job->kind));
	if (batch == 0) {
		b64 = token_b64url_encode(job->message, job->message_len);
		json_object_set_new(j, F_KARL_MESSAGE, json_string(b64));
		free(b64);
		if (job->footer_text != NULL || job->footer_html != NULL) {
			footer = json_object();
			if (job->footer_text != NULL)
				json_object_set_new(footer, F_KARL_TEXT,
				    json_string(job->footer_text));
			if (job->footer_html != NULL)
				json_object_set_new(footer, F_KARL_HTML,
				    json_string(job->footer_html));
			json_object_set_new(j, F_KARL_FOOTER, footer);
		}
		json_object_set_new(j, F_KARL_SENDER, json_pack("{s:s, s:s}",
		    F_KARL_LOCAL, job->sender_local, F_KARL_DOMAIN,
		    job->sender_domain));
		json_object_set_new(j, F_KARL_SIGN_DOMAIN,
		    json_string(job->sign_domain));
	}
	for (i = 0; i < nr; i++)
		json_array_append_new(rc, encode_receiver(&r[i]));
	json_object_set_new(j, F_KARL_RECEIVERS, rc);
	return j;
}

void
karl_send_free(struct karl_send *s)
{
	if (s == NULL)
		return;
	free(s->job);
	free(s->kind);
	free(s->message);
	free(s->footer_text);
	free(s->footer_html);
	free(s->sender_local);
	free(s->sender_domain);
	free(s->sign_domain);
	json_decref(s->receivers);
	memset(s, 0, sizeof(*s));
}

/* str_ok - v is a string of min..max bytes without NUL. */
static int
str_ok(const json_t *v, size_t min, size_t max)
{
	size_t n;

	if (!json_is_string(v))
		return 0;
	n = json_string_length(v);
	return n >= min && n <= max && strlen(json_string_value(v)) == n;
}

/* name_ok - an address part: printable ASCII, no space, no '@' unless
 * ats allows that many. */
static int
name_ok(const char *s, int ats)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
			return 0;
		if (*s == '@' && --ats < 0)
			return 0;
	}
	return ats == 0;
}

/* addr_ok - v is local@domain, one '@', neither side empty. */
static int
addr_ok(const json_t *v)
{
	const char *s, *at;

	if (!str_ok(v, 3, SMTP_ADDR_MAX))
		return 0;
	s = json_string_value(v);
	at = strchr(s, '@');
	return name_ok(s, 1) && at != s && at[1] != '\0';
}

/* var_name_ok - a footer variable's name: 1..KARL_KEY_MAX of
 * [A-Za-z0-9_], as mustache tags name them. */
static int
var_name_ok(const char *k, size_t n)
{
	size_t i;

	if (n == 0 || n > KARL_KEY_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (!((k[i] >= 'a' && k[i] <= 'z') ||
		    (k[i] >= 'A' && k[i] <= 'Z') ||
		    (k[i] >= '0' && k[i] <= '9') || k[i] == '_'))
			return 0;
	return 1;
}

/* check_receiver - one element of "receivers"; 0 or -1 with err. */
static int
check_receiver(json_t *r, size_t i, char *err, size_t errlen)
{
	json_t *to = NULL, *verp = NULL, *data = NULL, *v;
	json_error_t je;
	const char *k;

	if (json_unpack_ex(r, &je, JSON_STRICT, "{s:o, s?:o, s?:o}",
	    F_KARL_TO, &to, F_KARL_VERP, &verp, F_KARL_DATA, &data) == -1) {
		snprintf(err, errlen, "%s[%zu]: %s", F_KARL_RECEIVERS, i,
		    je.text);
		return -1;
	}
	if (!addr_ok(to)) {
		snprintf(err, errlen, "%s[%zu].%s: not an address",
		    F_KARL_RECEIVERS, i, F_KARL_TO);
		return -1;
	}
	if (verp != NULL && !str_ok(verp, 0, KARL_VERP_MAX)) {
		snprintf(err, errlen, "%s[%zu].%s: a string of at most %d "
		    "bytes", F_KARL_RECEIVERS, i, F_KARL_VERP, KARL_VERP_MAX);
		return -1;
	}
	if (data == NULL)
		return 0;
	if (!json_is_object(data) || json_object_size(data) > KARL_DATA_MAX) {
		snprintf(err, errlen, "%s[%zu].%s: an object of at most %d "
		    "strings", F_KARL_RECEIVERS, i, F_KARL_DATA, KARL_DATA_MAX);
		return -1;
	}
	json_object_foreach(data, k, v) {
		if (!var_name_ok(k, json_object_iter_key_len(
		    json_object_key_to_iter(k)))) {
			snprintf(err, errlen, "%s[%zu].%s: bad name",
			    F_KARL_RECEIVERS, i, F_KARL_DATA);
			return -1;
		}
		if (!str_ok(v, 0, KARL_VALUE_MAX)) {
			snprintf(err, errlen, "%s[%zu].%s.%s: a string of at "
			    "most %d bytes", F_KARL_RECEIVERS, i, F_KARL_DATA,
			    k, KARL_VALUE_MAX);
			return -1;
		}
	}
	return 0;
}

/* decode_footer - {"text"?, "html"?} into out; 0 or -1 with err. */
static int
decode_footer(json_t *footer, struct karl_send *out, char *err,
    size_t errlen)
{
	json_t *text = NULL, *html = NULL;
	json_error_t je;

	if (json_unpack_ex(footer, &je, JSON_STRICT, "{s?:o, s?:o}",
	    F_KARL_TEXT, &text, F_KARL_HTML, &html) == -1) {
		snprintf(err, errlen, "%s: %s", F_KARL_FOOTER, je.text);
		return -1;
	}
	if ((text != NULL && !str_ok(text, 0, KARL_FOOTER_MAX)) ||
	    (html != NULL && !str_ok(html, 0, KARL_FOOTER_MAX))) {
		snprintf(err, errlen, "%s: strings of at most %d bytes",
		    F_KARL_FOOTER, KARL_FOOTER_MAX);
		return -1;
	}
	out->footer_text = text ? xstrdup(json_string_value(text)) : NULL;
	out->footer_html = html ? xstrdup(json_string_value(html)) : NULL;
	return 0;
}

/* decode_job - the batch 0 fields into out; 0 or -1 with err. */
static int
decode_job(json_t *message, json_t *footer, json_t *sender,
    json_t *sign_domain, struct karl_send *out, char *err, size_t errlen)
{
	json_t *local = NULL, *domain = NULL;
	json_error_t je;

	if (message == NULL || sender == NULL || sign_domain == NULL ||
	    out->kind == NULL) {
		snprintf(err, errlen, "batch 0 needs %s, %s, %s and %s",
		    F_KARL_MESSAGE, F_KARL_SENDER, F_KARL_SIGN_DOMAIN,
		    F_KARL_KIND);
		return -1;
	}
	if (!str_ok(message, 1, KARL_MESSAGE_B64_MAX) ||
	    (out->message = token_b64url_decode(json_string_value(message),
	    json_string_length(message), &out->message_len)) == NULL) {
		snprintf(err, errlen, "%s: not base64url", F_KARL_MESSAGE);
		return -1;
	}
	if (json_unpack_ex(sender, &je, JSON_STRICT, "{s:o, s:o}",
	    F_KARL_LOCAL, &local, F_KARL_DOMAIN, &domain) == -1) {
		snprintf(err, errlen, "%s: %s", F_KARL_SENDER, je.text);
		return -1;
	}
	if (!str_ok(local, 1, SMTP_LOCAL_MAX) ||
	    !name_ok(json_string_value(local), 0) ||
	    !str_ok(domain, 1, SMTP_DOMAIN_MAX) ||
	    !name_ok(json_string_value(domain), 0)) {
		snprintf(err, errlen, "%s: bad local part or domain",
		    F_KARL_SENDER);
		return -1;
	}
	if (!str_ok(sign_domain, 1, SMTP_DOMAIN_MAX) ||
	    !name_ok(json_string_value(sign_domain), 0)) {
		snprintf(err, errlen, "%s: not a domain", F_KARL_SIGN_DOMAIN);
		return -1;
	}
	if (footer != NULL && decode_footer(footer, out, err, errlen) == -1)
		return -1;
	out->sender_local = xstrdup(json_string_value(local));
	out->sender_domain = xstrdup(json_string_value(domain));
	out->sign_domain = xstrdup(json_string_value(sign_domain));
	return 0;
}

/* decode - karl_send_decode without the clean-up on failure. */
static int
decode(json_t *body, struct karl_send *out, char *err, size_t errlen)
{
	json_t *job, *kind = NULL, *message = NULL, *footer = NULL;
	json_t *sender = NULL, *sign_domain = NULL, *rc, *r;
	json_int_t batch;
	json_error_t je;
	int last;
	size_t i;

	if (json_unpack_ex(body, &je, JSON_STRICT,
	    "{s:o, s:I, s:b, s?:o, s?:o, s?:o, s?:o, s?:o, s:o}",
	    F_KARL_JOB, &job, F_KARL_BATCH, &batch, F_KARL_LAST, &last,
	    F_KARL_KIND, &kind, F_KARL_MESSAGE, &message, F_KARL_FOOTER,
	    &footer, F_KARL_SENDER, &sender, F_KARL_SIGN_DOMAIN,
	    &sign_domain, F_KARL_RECEIVERS, &rc) == -1) {
		snprintf(err, errlen, "%s", je.text);
		return -1;
	}
	if (!str_ok(job, 1, KARL_JOB_MAX) ||
	    !karl_job_id_valid(json_string_value(job))) {
		snprintf(err, errlen, "%s: 1-%d of [A-Za-z0-9._:-]",
		    F_KARL_JOB, KARL_JOB_MAX);
		return -1;
	}
	if (batch < 0 || batch > KARL_BATCH_NO_MAX) {
		snprintf(err, errlen, "%s: 0..%d", F_KARL_BATCH,
		    KARL_BATCH_NO_MAX);
		return -1;
	}
	/* str_ok: "post\0x" would pass the name comparison */
	if (kind != NULL && (!str_ok(kind, 1, 16) ||
	    !karl_kind_valid(json_string_value(kind)))) {
		snprintf(err, errlen, "%s: unknown", F_KARL_KIND);
		return -1;
	}
	out->job = xstrdup(json_string_value(job));
	out->batch = batch;
	out->last = last;
	out->kind = kind ? xstrdup(json_string_value(kind)) : NULL;
	if (batch == 0) {
		if (decode_job(message, footer, sender, sign_domain, out, err,
		    errlen) == -1)
			return -1;
	} else if (message != NULL || footer != NULL || sender != NULL ||
	    sign_domain != NULL) {
		snprintf(err, errlen, "%s, %s, %s and %s belong to batch 0",
		    F_KARL_MESSAGE, F_KARL_FOOTER, F_KARL_SENDER,
		    F_KARL_SIGN_DOMAIN);
		return -1;
	}
	if (!json_is_array(rc) || json_array_size(rc) == 0 ||
	    json_array_size(rc) > KARL_BATCH_MAX) {
		snprintf(err, errlen, "%s: 1..%d receivers", F_KARL_RECEIVERS,
		    KARL_BATCH_MAX);
		return -1;
	}
	json_array_foreach(rc, i, r)
		if (check_receiver(r, i, err, errlen) == -1)
			return -1;
	out->receivers = json_incref(rc);
	return 0;
}

int
karl_send_decode(json_t *body, struct karl_send *out, char *err,
    size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (decode(body, out, err, errlen) == -1) {
		karl_send_free(out);
		return -1;
	}
	return 0;
}

struct karl_clnt *
karl_clnt_new(const char *url, const char *secret, long timeout_ms)
{
	struct karl_clnt *c = xcalloc(1, sizeof(*c));

	c->http = httpc_new(url, secret, timeout_ms);
	return c;
}

struct karl_clnt *
karl_clnt_free(struct karl_clnt *c)
{
	if (c != NULL) {
		httpc_free(c->http);
		free(c);
	}
	return NULL;
}

int
karl_clnt_send(struct karl_clnt *c, const struct karl_job *job,
    long long batch, int last, const struct karl_receiver *r, size_t nr,
    char *why, size_t whylen)
{
	json_t *req, *resp = NULL;
	const char *e;
	long status = 0;
	int rc;

	req = karl_send_encode(job, batch, last, r, nr);
	rc = httpc_call(c->http, "POST", API_KARL_SEND, req,
	    HTTPC_IDEMPOTENT, &status, &resp);
	json_decref(req);
	if (why != NULL && whylen > 0)
		why[0] = '\0';
	e = json_string_value(json_object_get(resp, F_ERROR));
	if (rc == -1) {
		if (why != NULL)
			snprintf(why, whylen, "karl unreachable");
		rc = KARL_TEMPFAIL;
	} else if (status == 202)
		rc = KARL_OK;
	else if (status >= 400 && status <= 499 && status != 408 &&
	    status != 429) {
		/* 408 and 429 say "later", every other 4xx "never" */
		if (why != NULL)
			snprintf(why, whylen, "%s", e ? e : "refused");
		rc = KARL_REFUSED;
	} else {
		if (why != NULL)
			snprintf(why, whylen, "karl: HTTP %ld%s%s", status,
			    e ? ": " : "", e ? e : "");
		rc = KARL_TEMPFAIL;
	}
	json_decref(resp);
	return rc;
}
