/* SPDX-License-Identifier: MIT */
/*
 * bounds.h - every size and count limit in the system, in one place.
 *
 * Protocol limits (SMTP line length, JSON body size, events per batch...)
 * are named here so that parsers, tests and fuzzers agree on them.  Values
 * that operators may tune are config keys whose bounds come from here.
 */
#ifndef BOUNDS_H
#define BOUNDS_H

/* HTTP between daemons and from nginx. */
#define HTTP_MAX_BODY_DEFAULT	(1024 * 1024)	/* per-route default */
#define HTTP_MAX_BODY_LIMIT	(64 * 1024 * 1024)	/* config upper bound */
#define HTTP_MAX_HEADER_VALUE	8192
#define HTTP_MAX_QUERY_VALUE	1024

/* Logging and errord. */
#define LOG_MAX_MESSAGE		8192	/* bytes of one formatted message */
#define LOG_MAX_BACKTRACE	(64 * 1024)
#define LOG_BATCH_MAX		500	/* events per POST by the shipper */
#define LOG_QUEUE_DEFAULT	20000	/* events held before dropping */
#define ERRORD_MAX_BATCH	2000	/* events accepted in one POST */
#define ERRORD_MAX_EVENT	(128 * 1024)	/* bytes of one stored event */
#define ERRORD_MAX_BODY		(8 * 1024 * 1024)
#define ERRORD_MAX_FIELDS	64	/* structured fields per event */
#define ERRORD_NAME_MAX		64	/* daemon name, level name */
#define ERRORD_TAIL_MAX		10000	/* events returned by one tail */

/* Crash reports. */
#define CRASH_MAX_FRAMES	64
#define CRASH_MAX_FILE		(256 * 1024)

/* Configuration. */
#define CONFIG_MAX_LINE		4096
#define CONFIG_MAX_FILE		(1024 * 1024)
#define CONFIG_MAX_SECRET	4096

/* Tokens. */
#define TOKEN_MAX_PAYLOAD	1024
#define TOKEN_KEY_LEN		32

/* SMTP (RFC 5321 4.5.3.1) and messages. */
#define SMTP_MAX_CMD_LINE	512
#define SMTP_MAX_TEXT_LINE	1000
#define SMTP_MAX_RCPTS		1000
#define SMTP_LOCAL_MAX		64	/* RFC 5321 4.5.3.1.1 */
#define SMTP_DOMAIN_MAX		255	/* RFC 5321 4.5.3.1.2 */
#define SMTP_ADDR_MAX		(SMTP_LOCAL_MAX + 1 + SMTP_DOMAIN_MAX)
#define MSG_MAX_SIZE_DEFAULT	(25 * 1024 * 1024)
#define MSG_MAX_SIZE_LIMIT	(100 * 1024 * 1024)

/* Database. */
#define DB_POOL_MAX		64
#define DB_MAX_PARAMS		64

/* SMTP DATA: a line of the message, without its CRLF.  RFC 5321 says
 * 998; real senders exceed it, so the bound only keeps the message
 * parseable downstream (smtpd refuses longer lines with 550 5.6.0). */
#define SMTP_MAX_DATA_LINE	(64 * 1024)

#endif
