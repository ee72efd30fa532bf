/* SPDX-License-Identifier: MIT */
/*
 * cmdaddr.h - what the local part of one of our addresses asks for,
 * without the database: the group name and whether it is a post, the
 * owners, a bounce (VERP) or an email command with its argument.
 *
 *	group			post
 *	group+owner		the owners
 *	group+bounces[-TOKEN]	a bounce; TOKEN is opaque here
 *	bounces[+TOKEN]		a bounce to the domain's own address (the
 *				envelope sender of every copy karl sends):
 *				kind BOUNCE with an empty group
 *	group+COMMAND		subscribe (join), unsubscribe (leave,
 *				signoff), help, digest, plaindigest, summary,
 *				special, nomail, single (individual, mail)
 *	group+COMMAND-ARG	confirm-TOKEN, unsubscribe-TOKEN,
 *				approve-TOKEN, reject-TOKEN,
 *				nomail-until-YYYY-MM-DD, mute-TOPIC,
 *				follow-TOPIC, mute-tag-HASHTAG,
 *				follow-tag-HASHTAG
 *
 * The group and command words are compared in ASCII lower case;
 * arguments keep their case (long tokens are case-sensitive).  A TOKEN is
 * base64url characters and '.'; a TOPIC a topic id (decimal, no leading
 * zero); a HASHTAG well-formed UTF-8 without space, control characters or
 * '#'; a date a real calendar date (whether it is in the future is the
 * command's business).  docs/commands.md is the user's view.
 */
#ifndef CMDADDR_H
#define CMDADDR_H

#include <stddef.h>

#include "bounds.h"

#define CMDADDR_LOCAL_MAX	SMTP_ADDR_MAX	/* bytes of a local part */
#define CMDADDR_GROUP_MAX	64	/* groups.name */
#define CMDADDR_ARG_MAX		255	/* bytes of an argument */
#define CMDADDR_TAG_MAX		64	/* hashtags.name */
#define CMDADDR_TOPIC_DIGITS	18	/* fits a bigint */

enum cmdaddr_kind {
	CMDADDR_KIND_POST,
	CMDADDR_KIND_OWNER,
	CMDADDR_KIND_BOUNCE,
	CMDADDR_KIND_COMMAND,
};

enum cmdaddr_cmd {
	CMDADDR_NONE = 0,
	CMDADDR_SUBSCRIBE,
	CMDADDR_UNSUBSCRIBE,
	CMDADDR_HELP,
	CMDADDR_DIGEST,
	CMDADDR_PLAINDIGEST,
	CMDADDR_SUMMARY,
	CMDADDR_SPECIAL,
	CMDADDR_NOMAIL,
	CMDADDR_SINGLE,
	CMDADDR_CONFIRM,		/* -TOKEN */
	CMDADDR_UNSUBSCRIBE_TOKEN,	/* -TOKEN (a member's footer) */
	CMDADDR_NOMAIL_UNTIL,		/* -YYYY-MM-DD */
	CMDADDR_MUTE,			/* -TOPIC */
	CMDADDR_FOLLOW,			/* -TOPIC */
	CMDADDR_MUTE_TAG,		/* -HASHTAG */
	CMDADDR_FOLLOW_TAG,		/* -HASHTAG */
	CMDADDR_APPROVE,		/* -TOKEN */
	CMDADDR_REJECT,			/* -TOKEN */
};

/* One parsed local part. */
struct cmdaddr {
	enum cmdaddr_kind kind;
	enum cmdaddr_cmd cmd;			/* KIND_COMMAND only */
	char	group[CMDADDR_GROUP_MAX + 1];	/* lower case */
	char	arg[CMDADDR_ARG_MAX + 1];	/* "" when none */
};

/* cmdaddr_parse - parse local (NUL-terminated, original case) into *out;
 * 0, or -1 when it is not one of the forms above (an unknown extension,
 * a bad argument, a group name groups.name would refuse, too long). */
int	 cmdaddr_parse(const char *local, struct cmdaddr *out);
/* cmdaddr_format - the canonical local part of a (aliases by their main
 * word) into buf; 0, or -1 when it does not fit (buf stays terminated). */
int	 cmdaddr_format(const struct cmdaddr *a, char *buf, size_t len);
/* cmdaddr_name - the command's main word as routes report it
 * ("subscribe", "nomail-until", "mute-tag"; unsubscribe-TOKEN is
 * "unsubscribe"), or "" for CMDADDR_NONE.  Static. */
const char *cmdaddr_name(enum cmdaddr_cmd);
/* cmdaddr_command - the command a route's name and argument stand for
 * (the inverse of cmdaddr_name; arg "" or NULL: none), or CMDADDR_NONE. */
enum cmdaddr_cmd cmdaddr_command(const char *name, const char *arg);
/* cmdaddr_date - 0 with *y, *m, *d if s is a real date YYYY-MM-DD
 * (years 1970-9999), else -1. */
int	 cmdaddr_date(const char *s, int *y, int *m, int *d);

/* Forward rules from the configuration (key forward_rules): a
 * comma-separated list of "local-part target-address" pairs. */
/* cmdaddr_forward - 1 with the target of the rule for local (compared in
 * ASCII lower case) copied to target, 0 when no well-formed rule names
 * it (or the target does not fit). */
int	 cmdaddr_forward(const char *rules, const char *local, char *target,
	    size_t len);
/* cmdaddr_forward_check - 0 if every entry of rules is well-formed, else
 * -1 with the first bad entry named in err. */
int	 cmdaddr_forward_check(const char *rules, char *err, size_t errlen);

#endif
