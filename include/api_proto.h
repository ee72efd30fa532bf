/* SPDX-License-Identifier: MIT */
/*
 * api_proto.h - endpoint paths, header names and JSON field names of the
 * daemons' HTTP APIs, defined once (the role Postfix's mail_proto.h plays).
 *
 * Every daemon API lives under /v1/ and is authenticated with the shared
 * secret in "Authorization: Bearer <secret>"; /healthz and /metrics are open
 * (daemons listen on loopback only).
 */
#ifndef API_PROTO_H
#define API_PROTO_H

#define API_AUTH_HEADER		"Authorization"
#define API_AUTH_SCHEME		"Bearer "
#define API_CID_HEADER		"X-Correlation-Id"
#define API_JSON_TYPE		"application/json"
#define API_NDJSON_TYPE		"application/x-ndjson"

/* Served by every daemon. */
#define API_HEALTHZ		"/healthz"
#define API_METRICS		"/metrics"
#define API_DEBUG_CRASH		"/v1/debug/crash"	/* only with debug_endpoints */

/* errord. */
#define API_ERRORD_LOG		"/v1/log"
#define API_ERRORD_TAIL		"/v1/tail"

/* smtpd: nginx mail proxy auth_http (GET; Auth-* request headers). */
#define API_SMTPD_AUTH		"/v1/auth"

/* messageserver (see messageserver_clnt.h for the bodies). */
#define API_MS_RCPT		"/v1/rcpt"	/* route one recipient */
#define API_MS_INBOUND		"/v1/inbound"	/* a message from smtpd */
#define API_MS_POSTS		"/v1/posts"	/* a post from web/crawlers */
#define API_MS_BOUNCES		"/v1/bounces"	/* karl: a permanent failure */
/* GET, prefix routes: the handlers parse the rest of the path */
#define MS_API_ACCOUNTS		"/v1/accounts/"	/* {id}/bounces */
#define MS_API_GROUPS		"/v1/groups/"	/* {domain}/{name}/bouncing */

#define F_MS_RCPT		"rcpt"
#define F_MS_RCPTS		"rcpts"
#define F_MS_ROUTE		"route"		/* post|bounce|command|owner|forward */
#define F_MS_GROUP		"group"
#define F_MS_DOMAIN		"domain"
#define F_MS_COMMAND		"command"	/* for route command */
#define F_MS_DETAIL		"detail"	/* VERP token, forward target */
#define F_MS_MAIL_FROM		"mail_from"
#define F_MS_CLIENT_ADDR	"client_addr"
#define F_MS_CLIENT_HELO	"client_helo"
#define F_MS_CID		"cid"
#define F_MS_RAW		"raw"		/* base64url of the bytes */
#define F_MS_STATUS		"status"	/* archived|held|duplicate|... */
#define F_MS_MESSAGES		"messages"	/* per-recipient results */
#define F_MS_NUMBER		"number"	/* per-group message number */
#define F_MS_TOPIC_ID		"topic_id"
#define F_MS_REASON		"reason"	/* why held/rejected/dropped */
#define F_MS_PENDING_ID		"pending_id"	/* a held message */
/* POST /v1/posts (a message built from fields) */
#define F_MS_FROM		"from"
#define F_MS_FROM_NAME		"from_name"
#define F_MS_SUBJECT		"subject"
#define F_MS_TEXT		"text"
#define F_MS_HTML		"html"
#define F_MS_IN_REPLY_TO	"in_reply_to"
#define F_MS_MESSAGE_ID		"message_id"
#define F_MS_SOURCE		"source"	/* web|feed|system */
#define F_MS_SPECIAL		"special"
/* POST /v1/bounces (from karl) */
#define F_MS_JOB		"job"
#define F_MS_VERP		"verp"
#define F_MS_CODE		"code"
#define F_MS_DSN_STATUS		"status"
#define F_MS_DIAGNOSTIC		"diagnostic"

/* Error bodies: {"error": "<reason>"} with a 4xx/5xx status. */
#define F_ERROR			"error"

/* One log event (errord's unit of storage). */
#define F_EV_EVENTS		"events"	/* batch: {"events": [ev, ...]} */
#define F_EV_TIME		"time"		/* RFC 3339 UTC, microseconds */
#define F_EV_DAEMON		"daemon"
#define F_EV_PID		"pid"
#define F_EV_LEVEL		"level"		/* debug|info|warn|error|crit */
#define F_EV_MESSAGE		"message"
#define F_EV_CID		"cid"		/* optional correlation id */
#define F_EV_FIELDS		"fields"	/* optional object */
#define F_EV_BACKTRACE		"backtrace"	/* optional string */
#define F_EV_VERSION		"version"	/* optional */
#define F_EV_HOST		"host"		/* optional */
#define F_EV_SEQ		"seq"		/* added by errord */
#define F_EV_ACCEPTED		"accepted"	/* reply: events stored */

/* errord tail query parameters. */
#define Q_TAIL_DAEMON		"daemon"
#define Q_TAIL_LEVEL		"level"
#define Q_TAIL_SINCE		"since"		/* RFC 3339 or unix seconds */
#define Q_TAIL_TEXT		"text"
#define Q_TAIL_LIMIT		"limit"
#define Q_TAIL_FOLLOW		"follow"	/* 1: stream new events */

#endif
