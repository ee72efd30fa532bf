/* SPDX-License-Identifier: MIT */
/*
 * messageserver_clnt.c - the client of messageserver's API and the
 * encode/decode pair of its bodies (see messageserver_clnt.h).
 *
 * The raw message travels base64url-encoded: JSON strings must be UTF-8,
 * and mail may be 8-bit in any charset.  Nothing is retried here: a
 * message whose hand-over failed gets a 451 from smtpd and the sending MTA
 * retries; messageserver de-duplicates by Message-ID.
 */
#include <stdlib.h>
#include <string.h>

#include "api_proto.h"
#include "httpc.h"
#include "log.h"
#include "messageserver_clnt.h"
#include "xalloc.h"

struct messageserver_clnt {
	struct httpc	*http;
};

/*
 * base64url without padding for the message bytes, a plain codec.  These
 * are not secrets, so the constant-time codec of token.c (libsodium) is
 * not needed, and it was the largest user-space function of messageserver
 * under ingest.  Decoding is as strict as libsodium's: only the URL-safe
 * alphabet, no padding, no length of 4n+1, and the unused low bits of
 * the last character zero, so every message has one encoding.
 */
static const char b64_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* raw_encode - returns allocated, NUL-terminated. */
static char *
raw_encode(const unsigned char *in, size_t len)
{
	char *out = xmalloc(len / 3 * 4 + 4), *o = out;
	size_t i;

	for (i = 0; i + 3 <= len; i += 3) {
		*o++ = b64_chars[in[i] >> 2];
		*o++ = b64_chars[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
		*o++ = b64_chars[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
		*o++ = b64_chars[in[i + 2] & 63];
	}
	if (len - i == 1) {
		*o++ = b64_chars[in[i] >> 2];
		*o++ = b64_chars[(in[i] & 3) << 4];
	} else if (len - i == 2) {
		*o++ = b64_chars[in[i] >> 2];
		*o++ = b64_chars[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
		*o++ = b64_chars[(in[i + 1] & 15) << 2];
	}
	*o = '\0';
	return out;
}

/* b64_val - the value of a base64url character, or -1. */
static int
b64_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* raw_decode - allocated with a NUL appended, or NULL when s is not
 * canonical base64url without padding. */
static unsigned char *
raw_decode(const char *s, size_t slen, size_t *lenp)
{
	const unsigned char *in = (const unsigned char *)s;
	unsigned char *out, *o;
	int v[4];
	size_t i, k, n;

	if (slen % 4 == 1)
		return NULL;
	out = o = xmalloc(slen / 4 * 3 + 3);
	for (i = 0; i < slen; i += 4) {
		n = slen - i < 4 ? slen - i : 4;
		for (k = 0; k < n; k++)
			if ((v[k] = b64_val(in[i + k])) < 0)
				goto bad;
		*o++ = (unsigned char)(v[0] << 2 | v[1] >> 4);
		if (n == 2) {
			if (v[1] & 15)
				goto bad;	/* bits past the last byte */
			break;
		}
		*o++ = (unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
		if (n == 3) {
			if (v[2] & 3)
				goto bad;
			break;
		}
		*o++ = (unsigned char)((v[2] & 3) << 6 | v[3]);
	}
	*o = '\0';
	*lenp = (size_t)(o - out);
	return out;
bad:
	free(out);
	return NULL;
}

static const char *const route_names[] = {
	[MS_ROUTE_POST] = "post",
	[MS_ROUTE_BOUNCE] = "bounce",
	[MS_ROUTE_COMMAND] = "command",
	[MS_ROUTE_OWNER] = "owner",
	[MS_ROUTE_FORWARD] = "forward",
};

const char *
ms_route_name(enum ms_route_kind k)
{
	if ((size_t)k >= NELEM(route_names))
		return "?";
	return route_names[k];
}

int
ms_route_parse(const char *s)
{
	size_t i;

	for (i = 0; i < NELEM(route_names); i++)
		if (strcmp(s, route_names[i]) == 0)
			return (int)i;
	return -1;
}

json_t *
ms_inbound_encode(const struct ms_envelope *env, const void *raw, size_t len)
{
	json_t *j = json_object(), *rc = json_array();
	char *b64;
	size_t i;

	for (i = 0; i < env->nrcpts; i++)
		json_array_append_new(rc, json_string(env->rcpts[i]));
	json_object_set_new(j, F_MS_MAIL_FROM, json_string(env->mail_from));
	json_object_set_new(j, F_MS_RCPTS, rc);
	json_object_set_new(j, F_MS_CLIENT_ADDR,
	    json_string(env->client_addr ? env->client_addr : ""));
	json_object_set_new(j, F_MS_CLIENT_HELO,
	    json_string(env->client_helo ? env->client_helo : ""));
	if (env->cid != NULL)
		json_object_set_new(j, F_MS_CID, json_string(env->cid));
	b64 = raw_encode(raw, len);
	json_object_set_new(j, F_MS_RAW, json_string(b64));
	free(b64);
	return j;
}

void
ms_inbound_free(struct ms_inbound *in)
{
	size_t i;

	if (in == NULL)
		return;
	free(in->mail_from);
	for (i = 0; i < in->nrcpts; i++)
		free(in->rcpts[i]);
	free(in->rcpts);
	free(in->client_addr);
	free(in->client_helo);
	free(in->cid);
	free(in->raw);
	memset(in, 0, sizeof(*in));
}

int
ms_inbound_decode(json_t *body, struct ms_inbound *out, char *err,
    size_t errlen)
{
	const char *from, *addr, *helo, *cid = NULL, *raw;
	json_t *rcpts, *v;
	json_error_t je;
	size_t i, rawlen;

	memset(out, 0, sizeof(*out));
	if (json_unpack_ex(body, &je, JSON_STRICT,
	    "{s:s, s:o, s:s, s:s, s?:s, s:s}", F_MS_MAIL_FROM, &from,
	    F_MS_RCPTS, &rcpts, F_MS_CLIENT_ADDR, &addr, F_MS_CLIENT_HELO,
	    &helo, F_MS_CID, &cid, F_MS_RAW, &raw) == -1) {
		snprintf(err, errlen, "%s", je.text);
		return -1;
	}
	if (!json_is_array(rcpts) || json_array_size(rcpts) == 0 ||
	    json_array_size(rcpts) > SMTP_MAX_RCPTS) {
		snprintf(err, errlen, "%s: 1..%d addresses", F_MS_RCPTS,
		    SMTP_MAX_RCPTS);
		return -1;
	}
	if (strlen(from) > MS_ADDR_MAX) {
		snprintf(err, errlen, "%s too long", F_MS_MAIL_FROM);
		return -1;
	}
	json_array_foreach(rcpts, i, v) {
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    json_string_length(v) > MS_ADDR_MAX) {
			snprintf(err, errlen, "%s[%zu]: not an address",
			    F_MS_RCPTS, i);
			return -1;
		}
	}
	rawlen = json_string_length(json_object_get(body, F_MS_RAW));
	if (strlen(raw) != rawlen) {
		snprintf(err, errlen, "%s: not base64url", F_MS_RAW);
		return -1;
	}
	out->raw = raw_decode(raw, rawlen, &out->rawlen);
	if (out->raw == NULL) {
		snprintf(err, errlen, "%s: not base64url", F_MS_RAW);
		return -1;
	}
	out->mail_from = xstrdup(from);
	out->client_addr = xstrdup(addr);
	out->client_helo = xstrdup(helo);
	out->cid = cid ? xstrdup(cid) : NULL;
	out->nrcpts = json_array_size(rcpts);
	out->rcpts = xcalloc(out->nrcpts, sizeof(*out->rcpts));
	json_array_foreach(rcpts, i, v)
		out->rcpts[i] = xstrdup(json_string_value(v));
	return 0;
}

struct messageserver_clnt *
messageserver_clnt_new(const char *url, const char *secret, long timeout_ms)
{
	struct messageserver_clnt *c = xcalloc(1, sizeof(*c));

	c->http = httpc_new(url, secret, timeout_ms);
	return c;
}

struct messageserver_clnt *
messageserver_clnt_free(struct messageserver_clnt *c)
{
	if (c != NULL) {
		httpc_free(c->http);
		free(c);
	}
	return NULL;
}

/* copy_field - a string field of j into dst (truncated to fit). */
static void
copy_field(json_t *j, const char *key, char *dst, size_t len)
{
	const char *s = json_string_value(json_object_get(j, key));

	strlcpy_chk(dst, s ? s : "", len);
}

int
messageserver_clnt_rcpt(struct messageserver_clnt *c, const char *addr,
    struct ms_route *r)
{
	json_t *req, *resp = NULL;
	long status = 0;
	int rc, kind;

	req = json_pack("{s:s}", F_MS_RCPT, addr);
	rc = httpc_call(c->http, "POST", API_MS_RCPT, req, HTTPC_IDEMPOTENT,
	    &status, &resp);
	json_decref(req);
	if (rc == -1) {
		json_decref(resp);
		return MS_TEMPFAIL;
	}
	switch (status) {
	case 200:
		kind = ms_route_parse(json_string_value(json_object_get(resp,
		    F_MS_ROUTE)) ?: "");
		if (kind == -1) {
			log_err("messageserver: bad route for %s", addr);
			rc = MS_TEMPFAIL;
			break;
		}
		memset(r, 0, sizeof(*r));
		r->kind = (enum ms_route_kind)kind;
		copy_field(resp, F_MS_GROUP, r->group, sizeof(r->group));
		copy_field(resp, F_MS_DOMAIN, r->domain, sizeof(r->domain));
		copy_field(resp, F_MS_COMMAND, r->command, sizeof(r->command));
		copy_field(resp, F_MS_DETAIL, r->detail, sizeof(r->detail));
		rc = MS_OK;
		break;
	case 404:
		rc = MS_UNKNOWN;
		break;
	case 403:
		rc = MS_FOREIGN;
		break;
	default:
		rc = MS_TEMPFAIL;
	}
	json_decref(resp);
	return rc;
}

int
messageserver_clnt_inbound(struct messageserver_clnt *c,
    const struct ms_envelope *env, const void *raw, size_t len, char *why,
    size_t whylen)
{
	json_t *req, *resp = NULL;
	long status = 0;
	int rc;

	req = ms_inbound_encode(env, raw, len);
	rc = httpc_call(c->http, "POST", API_MS_INBOUND, req, 0, &status,
	    &resp);
	json_decref(req);
	if (why != NULL && whylen > 0)
		why[0] = '\0';
	if (rc == -1)
		rc = MS_TEMPFAIL;
	else if (status == 200)
		rc = MS_OK;
	else if (status == 422) {
		if (why != NULL)
			copy_field(resp, F_ERROR, why, whylen);
		rc = MS_REFUSED;
	} else
		rc = MS_TEMPFAIL;
	json_decref(resp);
	return rc;
}

int
messageserver_clnt_bounce(struct messageserver_clnt *c,
    const struct ms_bounce *b)
{
	json_t *req, *resp = NULL;
	long status = 0;
	int rc;

	req = json_pack("{s:s, s:s, s:s, s:i, s:s, s:s}", F_MS_JOB, b->job,
	    F_MS_RCPT, b->rcpt, F_MS_VERP, b->verp ? b->verp : "",
	    F_MS_CODE, b->code, F_MS_DSN_STATUS, b->status ? b->status : "",
	    F_MS_DIAGNOSTIC, b->diagnostic ? b->diagnostic : "");
	if (req == NULL)
		return MS_REFUSED;	/* not UTF-8: cannot be sent */
	/* idempotent: messageserver keeps one event per (job, rcpt) */
	rc = httpc_call(c->http, "POST", API_MS_BOUNCES, req,
	    HTTPC_IDEMPOTENT, &status, &resp);
	json_decref(req);
	json_decref(resp);
	if (rc == -1 || status >= 500)
		return MS_TEMPFAIL;
	return status == 200 ? MS_OK : MS_REFUSED;
}
