/* SPDX-License-Identifier: MIT */
/*
 * test_dsn.c - unit tests of the bounce parser (dsn.c).
 *
 * RFC 3464 reports (several recipients, delayed against failed, the
 * status taken from Diagnostic-Code, folded fields, only an
 * Original-Recipient, missing fields, the report labelled text/plain),
 * each non-standard MTA format the parser knows, dsn_counts, garbage and
 * oversize input.  Messages are written here, small and by hand.
 *
 * A test-only mode runs instead of the tests: DSN_CLASSIFY=1 with file
 * arguments prints one JSON line per file, {"file":..., "rcpts":[{"addr":
 * ..., "kind":"hard|soft", "status":...}], "msgid":...}; the corpus test
 * (tests/e2e/test_bounce_corpus.py) drives it.  DSN_BENCH=n with file
 * arguments parses each file n times and prints messages per second.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "dsn.h"
#include "strbuf.h"
#include "xalloc.h"

static struct dsn_result res;

/* parse - dsn_parse on a C string. */
static size_t
parse(const char *msg)
{
	return dsn_parse(msg, strlen(msg), &res);
}

/* find - the entry for addr, or fail the test. */
static const struct dsn_rcpt *
find(const char *addr)
{
	size_t i;

	for (i = 0; i < res.nrcpt; i++)
		if (strcmp(res.rcpt[i].addr, addr) == 0)
			return &res.rcpt[i];
	fail_msg("%s not found among %zu", addr, res.nrcpt);
	return NULL;
}

/* ---- RFC 3464 ---- */

#define REPORT_HEAD \
	"From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\n" \
	"To: list-bounces@example.org\n" \
	"Subject: Undelivered Mail Returned to Sender\n" \
	"MIME-Version: 1.0\n" \
	"Content-Type: multipart/report; report-type=delivery-status;\n" \
	"\tboundary=\"BB\"\n" \
	"\n" \
	"--BB\n" \
	"Content-Type: text/plain\n" \
	"\n" \
	"I'm sorry to have to inform you that your message could not\n" \
	"be delivered to one or more recipients.\n" \
	"\n" \
	"--BB\n"

#define RETURNED \
	"--BB\n" \
	"Content-Type: message/rfc822\n" \
	"\n" \
	"From: ann@example.org\n" \
	"To: list@example.org\n" \
	"Message-ID: <post.1234@example.org>\n" \
	"Subject: hello\n" \
	"\n" \
	"Hi, write to bob@elsewhere.example.com.\n" \
	"--BB--\n"

static void
test_rfc3464_several(void **state)
{
	(void)state;
	assert_int_equal(parse(REPORT_HEAD
	    "Content-Type: message/delivery-status\n"
	    "\n"
	    "Reporting-MTA: dns; mx.example.net\n"
	    "Original-Envelope-Id: ENV1\n"
	    "\n"
	    "Final-Recipient: rfc822; Ann@Example.NET\n"
	    "Action: failed\n"
	    "Status: 5.1.1\n"
	    "Remote-MTA: dns; mail.example.net\n"
	    "Diagnostic-Code: smtp; 550 5.1.1 <ann@example.net>: user unknown\n"
	    "\n"
	    "Final-Recipient: rfc822; bob@example.com\n"
	    "Action: delayed\n"
	    "Status: 4.4.1\n"
	    "\n"
	    "Final-Recipient: rfc822; carl@example.com\n"
	    "Action: delivered\n"
	    "Status: 2.0.0\n"
	    "\n"
	    "Final-Recipient: rfc822; dora@example.com\n"
	    "Action: failed\n"
	    "Status: 4.2.2\n"
	    "\n"
	    RETURNED), 3);
	assert_true(res.is_dsn);
	assert_string_equal(res.reporting_mta, "mx.example.net");
	assert_string_equal(res.envelope_id, "ENV1");
	assert_string_equal(res.original_message_id, "post.1234@example.org");
	assert_int_equal(find("Ann@example.net")->kind, DSN_HARD);
	assert_string_equal(find("Ann@example.net")->status, "5.1.1");
	assert_string_equal(find("Ann@example.net")->action, "failed");
	assert_string_equal(find("Ann@example.net")->remote_mta,
	    "mail.example.net");
	assert_string_equal(find("Ann@example.net")->diagnostic,
	    "550 5.1.1 <ann@example.net>: user unknown");
	assert_int_equal(find("bob@example.com")->kind, DSN_SOFT);
	assert_string_equal(find("bob@example.com")->action, "delayed");
	/* failed, but for a temporary reason */
	assert_int_equal(find("dora@example.com")->kind, DSN_SOFT);
}

static void
test_rfc3464_status_from_diag(void **state)
{
	(void)state;
	assert_int_equal(parse(REPORT_HEAD
	    "Content-Type: message/delivery-status\n"
	    "\n"
	    "Reporting-MTA: dns; mx.example.net\n"
	    "\n"
	    "Final-Recipient: rfc822; ann@example.net\n"
	    "Action: failed\n"
	    "Diagnostic-Code: smtp; 552 5.2.2 mailbox full\n"
	    "\n"
	    "Final-Recipient: rfc822; bob@example.net\n"
	    "Action: failed\n"
	    "Diagnostic-Code: smtp; 450 try later\n"
	    "\n"
	    "Final-Recipient: rfc822; carl@example.net\n"
	    "Action: failed\n"
	    "Diagnostic-Code: smtp; 554 rejected\n"
	    "\n"
	    "Final-Recipient: rfc822; dora@example.net\n"
	    "Action: failed\n"
	    "Diagnostic-Code: smtp; 550-5.7.1 [192.0.2.1] Our system has\n"
	    "    550-5.7.1 detected that this message is likely spam.\n"
	    RETURNED), 4);
	assert_string_equal(find("dora@example.net")->status, "5.7.1");
	assert_int_equal(dsn_counts(find("dora@example.net")->status), 0);
	assert_string_equal(find("ann@example.net")->status, "5.2.2");
	assert_int_equal(find("ann@example.net")->kind, DSN_HARD);
	assert_string_equal(find("bob@example.net")->status, "4.0.0");
	assert_int_equal(find("bob@example.net")->kind, DSN_SOFT);
	assert_string_equal(find("carl@example.net")->status, "5.0.0");
	assert_int_equal(find("carl@example.net")->kind, DSN_HARD);
}

static void
test_rfc3464_folded(void **state)
{
	(void)state;
	assert_int_equal(parse(REPORT_HEAD
	    "Content-Type: message/delivery-status\n"
	    "\n"
	    "Reporting-MTA: dns;\n"
	    "   mx.example.net\n"
	    "\n"
	    "Final-Recipient:\n"
	    "\trfc822;\n"
	    "\tann@example.net\n"
	    "Action: failed\n"
	    "Status: 5.1.1\n"
	    "Diagnostic-Code: smtp; 550 5.1.1 this mailbox\n"
	    "    does not exist\n"
	    RETURNED), 1);
	assert_string_equal(res.reporting_mta, "mx.example.net");
	assert_string_equal(find("ann@example.net")->diagnostic,
	    "550 5.1.1 this mailbox does not exist");
}

static void
test_rfc3464_original_only(void **state)
{
	(void)state;
	/* an X.400 final recipient: the original one is the address */
	assert_int_equal(parse(REPORT_HEAD
	    "Content-Type: message/delivery-status\n"
	    "\n"
	    "Reporting-MTA: dns; mx.example.net\n"
	    "\n"
	    "Original-Recipient: rfc822; ann@example.net\n"
	    "Final-Recipient: x400; /S=ann/O=example/C=GB/\n"
	    "Action: failed\n"
	    "Status: 5.0.0\n"
	    RETURNED), 1);
	find("ann@example.net");
	/* both given: the original is the one the list sent to */
	assert_int_equal(parse(REPORT_HEAD
	    "Content-Type: message/delivery-status\n"
	    "\n"
	    "Original-Recipient: rfc822;ann@example.net\n"
	    "Final-Recipient: rfc822;ann@mailstore.example.net\n"
	    "Action: failed\n"
	    "Status: 5.2.2\n"
	    RETURNED), 1);
	find("ann@example.net");
	/* comments and display names around the address */
	assert_int_equal(parse(REPORT_HEAD
	    "Content-Type: message/delivery-status\n"
	    "\n"
	    "Final-Recipient: rfc822; ann@example.net (Ann Example)\n"
	    "Action: failed\n"
	    "\n"
	    "Final-Recipient: rfc822; Bob Example <bob@example.net>\n"
	    "Action: failed\n"
	    "\n"
	    "Final-Recipient: rfc822; carl@example.net\n"
	    "Action: delayed\n"
	    "\n"
	    "Final-Recipient: rfc822; carl@example.net\n"
	    "Action: failed\n"
	    "Status: 5.2.1\n"
	    RETURNED), 3);
	find("ann@example.net");
	find("bob@example.net");
	/* a later hard failure of the same address wins */
	assert_int_equal(find("carl@example.net")->kind, DSN_HARD);
	assert_string_equal(find("carl@example.net")->status, "5.2.1");
	assert_string_equal(find("carl@example.net")->action, "failed");
	/* a line of blanks separates groups too */
	assert_int_equal(parse(REPORT_HEAD
	    "Content-Type: message/delivery-status\n"
	    "\n"
	    "Final-Recipient: rfc822; ann@example.net\n"
	    "Action: failed\n"
	    " \t \n"
	    "Original-Recipient: rfc822; bob@example.net\n"
	    "Action: delayed\n"
	    RETURNED), 2);
	assert_int_equal(find("ann@example.net")->kind, DSN_HARD);
	assert_int_equal(find("bob@example.net")->kind, DSN_SOFT);
	/* only an Original-Recipient */
	assert_int_equal(parse(REPORT_HEAD
	    "Content-Type: message/delivery-status\n"
	    "\n"
	    "Original-Recipient: rfc822;ann@example.net\n"
	    "Action: failed\n"
	    "Status: 5.2.2\n"
	    RETURNED), 1);
	find("ann@example.net");
}

static void
test_rfc3464_missing_fields(void **state)
{
	(void)state;
	/* no Action, no Status: a failure report about the address */
	assert_int_equal(parse(REPORT_HEAD
	    "Content-Type: message/delivery-status\n"
	    "\n"
	    "Final-Recipient: <ann@example.net>\n"
	    RETURNED), 1);
	assert_int_equal(find("ann@example.net")->kind, DSN_HARD);
	assert_string_equal(find("ann@example.net")->status, "");
	/* no per-message fields, no blank lines between groups, odd
	 * Action words, a bare reply code as Status */
	assert_int_equal(parse(REPORT_HEAD
	    "Content-Type: message/delivery-status\n"
	    "\n"
	    "Final-Recipient: RFC822; <ann@example.net>\n"
	    "Action: failure\n"
	    "Status: 553 too big\n"
	    "Final-Recipient: rfc822; bob@example.net\n"
	    "Action: Error (bad mailbox)\n"
	    RETURNED), 2);
	assert_string_equal(find("ann@example.net")->status, "5.0.0");
	assert_string_equal(find("ann@example.net")->action, "failed");
	assert_int_equal(find("bob@example.net")->kind, DSN_HARD);
	/* a report naming nobody usable is not used: not a "report of
	 * successes" either */
	assert_int_equal(parse(REPORT_HEAD
	    "Content-Type: message/delivery-status\n"
	    "\n"
	    "Reporting-MTA: dns; mx.example.net\n"
	    "\n"
	    "Final-Recipient: rfc822; not an address\n"
	    "Action: failed\n"
	    "--BB--\n"), 0);
	assert_false(res.is_dsn);
	/* ... and the text is read instead */
	assert_int_equal(parse("From: MAILER-DAEMON@mx.example.net\n"
	    "Subject: Undelivered Mail Returned to Sender\n"
	    "Content-Type: multipart/report; report-type=delivery-status;\n"
	    "\tboundary=\"BB\"\n"
	    "\n"
	    "--BB\n"
	    "Content-Type: text/plain\n"
	    "\n"
	    "<ann@example.net>: 550 5.1.1 user unknown\n"
	    "--BB\n"
	    "Content-Type: message/delivery-status\n"
	    "\n"
	    "Final-Recipient: x400; /S=ann/O=example/\n"
	    "Action: failed\n"
	    "--BB--\n"), 1);
	assert_string_equal(find("ann@example.net")->status, "5.1.1");
	assert_false(res.is_dsn);
	/* only successes: a report, but not a bounce */
	assert_int_equal(parse(REPORT_HEAD
	    "Content-Type: message/delivery-status\n"
	    "\n"
	    "Final-Recipient: rfc822; ann@example.net\n"
	    "Action: relayed\n"
	    "Status: 2.0.0\n"
	    RETURNED), 0);
	assert_true(res.is_dsn);
}

static void
test_rfc3464_text_plain(void **state)
{
	(void)state;
	assert_int_equal(parse(REPORT_HEAD
	    "Content-Type: text/plain\n"
	    "\n"
	    "Reporting-MTA: dns; mx.example.net\n"
	    "\n"
	    "Final-Recipient: rfc822; ann@example.net\n"
	    "Action: delayed\n"
	    "Status: 4.4.7\n"
	    "\n"
	    "--BB\n"
	    "Content-Type: text/rfc822-headers\n"
	    "\n"
	    "From: ann@example.org\n"
	    "Message-ID:\n"
	    " <folded.id@example.org>\n"
	    "\n"
	    "--BB--\n"), 1);
	assert_true(res.is_dsn);
	assert_int_equal(find("ann@example.net")->kind, DSN_SOFT);
	assert_string_equal(res.original_message_id,
	    "folded.id@example.org");
}

static void
test_rfc3464_crlf_and_cr(void **state)
{
	struct strbuf *sb = strbuf_new(1024);
	const char *src = REPORT_HEAD
	    "Content-Type: message/delivery-status\n"
	    "\n"
	    "Final-Recipient: rfc822; ann@example.net\n"
	    "Action: failed\n"
	    "Status: 5.1.1\n"
	    RETURNED;
	const char *p;

	(void)state;
	for (p = src; *p != '\0'; p++)
		if (*p == '\n')
			strbuf_puts(sb, "\r\n");
		else
			strbuf_putc(sb, *p);
	assert_int_equal(dsn_parse(sb->buf, sb->len, &res), 1);
	assert_string_equal(res.original_message_id, "post.1234@example.org");
	for (size_t i = 0; i < sb->len; i++)
		if (sb->buf[i] == '\n')
			sb->buf[i] = '\r';
	assert_int_equal(dsn_parse(sb->buf, sb->len, &res), 1);
	find("ann@example.net");
	strbuf_free(sb);
}

/* ---- non-standard formats ---- */

static void
test_qmail(void **state)
{
	(void)state;
	assert_int_equal(parse("From: MAILER-DAEMON@mx.example.net\n"
	    "To: list-bounces@example.org\n"
	    "Subject: failure notice\n"
	    "\n"
	    "Hi. This is the qmail-send program at mx.example.net.\n"
	    "I'm afraid I wasn't able to deliver your message to the "
	    "following addresses.\n"
	    "This is a permanent error; I've given up. Sorry it didn't work "
	    "out.\n"
	    "\n"
	    "<ann@Example.NET>:\n"
	    "Sorry, no mailbox here by that name. (#5.1.1)\n"
	    "\n"
	    "<bob@example.net>:\n"
	    "192.0.2.7 does not like recipient.\n"
	    "Remote host said: 452 mailbox full\n"
	    "\n"
	    "--- Below this line is a copy of the message.\n"
	    "\n"
	    "Return-Path: <list-bounces@example.org>\n"
	    "Message-ID: <copy.1@example.org>\n"
	    "From: carl@example.org\n"
	    "To: list@example.org\n"
	    "\n"
	    "Write to dora@example.com or <eve@example.com>:\n"), 2);
	assert_false(res.is_dsn);
	assert_int_equal(find("ann@example.net")->kind, DSN_HARD);
	assert_string_equal(find("ann@example.net")->status, "5.1.1");
	assert_string_equal(find("ann@example.net")->diagnostic,
	    "Sorry, no mailbox here by that name. (#5.1.1)");
	assert_int_equal(find("bob@example.net")->kind, DSN_SOFT);
	assert_string_equal(find("bob@example.net")->status, "4.0.0");
	assert_string_equal(res.original_message_id, "copy.1@example.org");
}

static void
test_exim(void **state)
{
	(void)state;
	assert_int_equal(parse("From: Mail Delivery System "
	    "<Mailer-Daemon@mx.example.net>\n"
	    "To: list-bounces@example.org\n"
	    "Subject: Mail delivery failed: returning message to sender\n"
	    "\n"
	    "This message was created automatically by mail delivery "
	    "software.\n"
	    "\n"
	    "A message that you sent could not be delivered to one or more "
	    "of its\n"
	    "recipients. This is a permanent error. The following address(es)"
	    " failed:\n"
	    "\n"
	    "  ann@example.net\n"
	    "    host mx.example.net [192.0.2.1]\n"
	    "    SMTP error from remote mail server after RCPT TO:"
	    "<ann@example.net>:\n"
	    "    550 5.1.1 unknown user\n"
	    "  bob@example.net\n"
	    "    (generated from robert@example.net)\n"
	    "  dora@example.net\n"
	    "  eve@example.net\n"
	    "    452 4.2.2 over quota\n"
	    "\n"
	    "------ This is a copy of the message, including all the headers."
	    " ------\n"
	    "Return-path: <list-bounces@example.org>\n"
	    "From: carl@example.org\n"), 5);
	assert_string_equal(find("ann@example.net")->status, "5.1.1");
	find("bob@example.net");
	find("robert@example.net");
	/* the next recipient's code is not dora's */
	assert_string_equal(find("dora@example.net")->status, "");
	assert_int_equal(find("dora@example.net")->kind, DSN_HARD);
	assert_int_equal(find("eve@example.net")->kind, DSN_SOFT);
}

static void
test_failed_header(void **state)
{
	(void)state;
	/* the header decides; the text gives the status where it names
	 * the address */
	assert_int_equal(parse("From: Mail Delivery System "
	    "<Mailer-Daemon@mx.example.net>\n"
	    "Subject: Mail delivery failed: returning message to sender\n"
	    "X-Failed-Recipients: ann@example.net,\n"
	    "  Bob@Example.NET\n"
	    "\n"
	    "A message that you sent could not be delivered to one or more "
	    "of its\nrecipients. The following address(es) failed:\n"
	    "\n"
	    "  ann@example.net\n"
	    "    550 5.2.2 mailbox full\n"
	    "  carl@example.net\n"
	    "    (alias of a list member; mentioned, not failed)\n"), 2);
	assert_string_equal(find("ann@example.net")->status, "5.2.2");
	assert_int_equal(find("Bob@example.net")->kind, DSN_HARD);
	assert_string_equal(find("Bob@example.net")->status, "");
}

static void
test_exim_warning(void **state)
{
	(void)state;
	assert_int_equal(parse("From: Mail Delivery System "
	    "<Mailer-Daemon@mx.example.net>\n"
	    "Subject: Warning: message 1abc-0002 delayed 24 hours\n"
	    "\n"
	    "This message was created automatically by mail delivery "
	    "software.\n"
	    "A message that you sent has not yet been delivered to one or "
	    "more of\nits recipients after more than 24 hours on the queue.\n"
	    "\n"
	    "  ann@example.net\n"
	    "\n"
	    "No action is required on your part. Delivery attempts will "
	    "continue for\nsome time.\n"), 1);
	assert_int_equal(find("ann@example.net")->kind, DSN_SOFT);
	assert_string_equal(find("ann@example.net")->action, "delayed");
}

static void
test_sendmail_warning(void **state)
{
	(void)state;
	assert_int_equal(parse("From: Mail Delivery Subsystem "
	    "<MAILER-DAEMON@mx.example.net>\n"
	    "Subject: Warning: could not send message for past 4 hours\n"
	    "\n"
	    "    **********************************************\n"
	    "    **      THIS IS A WARNING MESSAGE ONLY      **\n"
	    "    **  YOU DO NOT NEED TO RESEND YOUR MESSAGE  **\n"
	    "    **********************************************\n"
	    "\n"
	    "The original message was received at Mon, 1 Jan 2024\n"
	    "\n"
	    "   ----- Transcript of session follows -----\n"
	    "<ann@example.net>... Deferred: Connection timed out\n"), 0);
	/* the address is in the transcript only: nothing before it names
	 * anyone, so nothing is reported; with the address named: soft */
	assert_int_equal(parse("From: Mail Delivery Subsystem "
	    "<MAILER-DAEMON@mx.example.net>\n"
	    "Subject: Warning: could not send message for past 4 hours\n"
	    "\n"
	    "    **      THIS IS A WARNING MESSAGE ONLY      **\n"
	    "\n"
	    "   ----- The following addresses had transient non-fatal "
	    "errors -----\n"
	    "<ann@example.net>\n"
	    "\n"
	    "   ----- Transcript of session follows -----\n"), 1);
	assert_int_equal(find("ann@example.net")->kind, DSN_SOFT);
}

static void
test_exchange_text(void **state)
{
	(void)state;
	/* Exchange 2007 and later, when the report part is lost */
	assert_int_equal(parse("From: postmaster@example.net\n"
	    "Subject: Undeliverable: hello\n"
	    "\n"
	    "Delivery has failed to these recipients or groups:\n"
	    "\n"
	    "Ann Example (ann@example.net)\n"
	    "The e-mail address you entered couldn't be found.\n"
	    "\n"
	    "Diagnostic information for administrators:\n"
	    "Generating server: mx.example.net\n"
	    "ann@example.net\n"
	    "#550 5.1.10 RESOLVER.ADR.RecipientNotFound; not found ##\n"
	    "\n"
	    "Original message headers:\n"
	    "Received: from relay.example.org\n"), 1);
	/* the second mention gives the status */
	assert_int_equal(find("ann@example.net")->kind, DSN_HARD);
	assert_string_equal(find("ann@example.net")->status, "5.1.10");
	assert_string_equal(find("ann@example.net")->diagnostic,
	    "#550 5.1.10 RESOLVER.ADR.RecipientNotFound; not found ##");
	assert_int_equal(parse("From: postmaster@example.net\n"
	    "Subject: Delivery delayed: hello\n"
	    "\n"
	    "Delivery is delayed to these recipients or groups:\n"
	    "\n"
	    "bob@example.net\n"
	    "\n"
	    "This message hasn't been delivered yet. Delivery will continue "
	    "to be attempted.\n"), 1);
	assert_int_equal(find("bob@example.net")->kind, DSN_SOFT);
}

static void
test_postfix_text(void **state)
{
	(void)state;
	/* an old Postfix: the notification only, no report part */
	assert_int_equal(parse("From: MAILER-DAEMON@mx.example.net (Mail "
	    "Delivery System)\n"
	    "To: list-bounces@example.org\n"
	    "Subject: Undelivered Mail Returned to Sender\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: multipart/mixed; boundary=\"PP\"\n"
	    "\n"
	    "--PP\n"
	    "Content-Description: Notification\n"
	    "Content-Type: text/plain\n"
	    "\n"
	    "This is the Postfix program at host mx.example.net.\n"
	    "\n"
	    "I'm sorry to have to inform you that the message returned\n"
	    "below could not be delivered to one or more destinations.\n"
	    "\n"
	    "For further assistance, please contact <help@example.net>\n"
	    "\n"
	    "<ann@example.net>: host mail.example.net[192.0.2.5] said: 550 "
	    "5.1.1\n"
	    "    <ann@example.net>... User unknown\n"
	    "\n"
	    "--PP\n"
	    "Content-Description: Undelivered Message\n"
	    "Content-Type: message/rfc822\n"
	    "\n"
	    "From: carl@example.org\n"
	    "To: list@example.org\n"
	    "Message-ID: <returned.7@example.org>\n"
	    "\n"
	    "Ask frank@example.com.\n"
	    "--PP--\n"), 1);
	assert_string_equal(find("ann@example.net")->status, "5.1.1");
	assert_string_equal(res.original_message_id, "returned.7@example.org");
}

static void
test_report_in_returned(void **state)
{
	(void)state;
	/* the returned post carries a report of its own: not ours */
	assert_int_equal(parse("From: MAILER-DAEMON@mx.example.net\n"
	    "Subject: Undelivered Mail Returned to Sender\n"
	    "Content-Type: multipart/mixed; boundary=\"PP\"\n"
	    "\n"
	    "--PP\n"
	    "Content-Type: text/plain\n"
	    "\n"
	    "<ann@example.net>: host mx said: 550 5.1.1 unknown\n"
	    "--PP\n"
	    "Content-Type: message/rfc822\n"
	    "\n"
	    "From: carl@example.org\n"
	    "Subject: look at this bounce\n"
	    "Content-Type: multipart/mixed; boundary=\"QQ\"\n"
	    "\n"
	    "--QQ\n"
	    "Content-Type: text/plain\n"
	    "\n"
	    "Final-Recipient: rfc822; zed@example.com\n"
	    "Action: failed\n"
	    "--QQ\n"
	    "Content-Type: message/delivery-status\n"
	    "\n"
	    "Final-Recipient: rfc822; zoe@example.com\n"
	    "Action: failed\n"
	    "--QQ--\n"
	    "--PP--\n"), 1);
	find("ann@example.net");
	assert_false(res.is_dsn);
	/* a report forwarded as an attachment, nothing else: read */
	assert_int_equal(parse("From: postmaster@example.net\n"
	    "Subject: Delivery Status Notification (Failure)\n"
	    "Content-Type: multipart/mixed; boundary=\"PP\"\n"
	    "\n"
	    "--PP\n"
	    "Content-Type: message/rfc822\n"
	    "\n"
	    "From: postmaster@example.net\n"
	    "Message-ID: <the.bounce@example.net>\n"
	    "Content-Type: multipart/report; boundary=\"QQ\"\n"
	    "\n"
	    "--QQ\n"
	    "Content-Type: text/plain\n"
	    "\n"
	    "Delivery to the following recipients failed.\n"
	    "--QQ\n"
	    "Content-Type: message/delivery-status\n"
	    "\n"
	    "Final-Recipient: rfc822; ann@example.net\n"
	    "Action: failed\n"
	    "Status: 5.1.1\n"
	    "--QQ\n"
	    "Content-Type: message/rfc822\n"
	    "\n"
	    "From: carl@example.org\n"
	    "Message-ID: <the.post@example.org>\n"
	    "\n"
	    "hi\n"
	    "--QQ--\n"
	    "--PP--\n"), 1);
	find("ann@example.net");
	assert_true(res.is_dsn);
	assert_string_equal(res.original_message_id, "the.post@example.org");
}

static void
test_sendmail(void **state)
{
	(void)state;
	assert_int_equal(parse("From: Mail Delivery Subsystem "
	    "<MAILER-DAEMON@mx.example.net>\n"
	    "To: <list-bounces@example.org>\n"
	    "Subject: Returned mail: see transcript for details\n"
	    "\n"
	    "The original message was received at Mon, 1 Jan 2024 from "
	    "relay.example.net\n"
	    "\n"
	    "   ----- The following addresses had permanent fatal errors "
	    "-----\n"
	    "<ann@example.net>\n"
	    "    (reason: 550 5.2.1 Mailbox disabled)\n"
	    "\n"
	    "   ----- Transcript of session follows -----\n"
	    "... while talking to mx.example.net.:\n"
	    ">>> MAIL From:<list-bounces@example.org>\n"
	    "<<< 550 5.2.1 <ann@example.net>... Mailbox disabled\n"), 1);
	assert_string_equal(find("ann@example.net")->status, "5.2.1");
}

static void
test_exchange(void **state)
{
	(void)state;
	/* the original headers are quoted: their To is not the failure */
	assert_int_equal(parse("From: System Administrator "
	    "<postmaster@example.net>\n"
	    "To: list-bounces@example.org\n"
	    "Subject: Undeliverable: hello\n"
	    "\n"
	    "Your message\n"
	    "\n"
	    "  To:      list@example.org\n"
	    "  Subject: hello\n"
	    "  Sent:    Mon, 1 Jan 2024 10:00:00 +0100\n"
	    "\n"
	    "did not reach the following recipient(s):\n"
	    "\n"
	    "c=US;a= ;p=Example;o=HQ;dda:SMTP=Ann@example.NET; on Mon, 1 Jan "
	    "2024\n"
	    "    The recipient name is not recognized\n"), 1);
	find("Ann@example.net");
	/* the same as html */
	assert_int_equal(parse("From: System Administrator "
	    "<postmaster@example.net>\n"
	    "Subject: Undeliverable: hello\n"
	    "Content-Type: text/html\n"
	    "\n"
	    "<HTML><BODY><P>Your message<BR>\n"
	    "&nbsp; To:&nbsp;&nbsp; list@example.org<BR>\n"
	    "did not reach the following recipient(s):<BR>\n"
	    "<BR>bob@example.net on Mon, 1 Jan 2024<BR>\n"
	    "</BODY></HTML>\n"), 1);
	find("bob@example.net");
}

static void
test_yahoo(void **state)
{
	(void)state;
	assert_int_equal(parse("From: MAILER-DAEMON@mail.example.net\n"
	    "To: list-bounces@example.org\n"
	    "Subject: Delivery failure\n"
	    "\n"
	    "Message from example.net.\n"
	    "Unable to deliver message to the following address(es).\n"
	    "\n"
	    "<ann@example.net>:\n"
	    "Sorry your message to ann@example.net cannot be delivered. "
	    "This account has been disabled or discontinued [#102].\n"
	    "\n"
	    "<bob@example.net>:\n"
	    "This user doesn't have a example.net account (bob@example.net)"
	    " [0]\n"
	    "\n"
	    "--- Original message follows.\n"
	    "\n"
	    "From: carl@example.org\n"), 2);
	find("ann@example.net");
	find("bob@example.net");
}

static void
test_charsets(void **state)
{
	(void)state;
	/* UTF-16 text (with a BOM) is converted before it is read */
	assert_int_equal(parse("From: postmaster@example.net\n"
	    "Subject: Undeliverable: hello\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: text/plain; charset=utf-16\n"
	    "Content-Transfer-Encoding: base64\n"
	    "\n"
	    "//5EAGUAbABpAHYAZQByAHkAIABoAGEAcwAgAGYAYQBpAGwAZQBkACAAdABvACAA"
	    "dABoAGUAcwBlACAAcgBlAGMAaQBwAGkAZQBuAHQAcwA6AA0ACgANAAoAYQBuAG4A"
	    "QABlAHgAYQBtAHAAbABlAC4AbgBlAHQADQAKADUANQAwACAANQAuADEALgAxACAA"
	    "QgBvAO4AdABlACAAcABsAGUAaQBuAGUADQAKAA==\n"), 1);
	assert_string_equal(find("ann@example.net")->status, "5.1.1");
	assert_string_equal(find("ann@example.net")->diagnostic,
	    "550 5.1.1 Bo\xc3\xaete pleine");
	/* Latin-1 becomes UTF-8; undeclared 8-bit bytes become '?' */
	assert_int_equal(parse("From: postmaster@example.net\n"
	    "Subject: Undeliverable: hello\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: text/plain; charset=iso-8859-1\n"
	    "\n"
	    "<ann@example.net>: 552 Bo\xeete pleine\n"), 1);
	assert_string_equal(find("ann@example.net")->diagnostic,
	    "552 Bo\xc3\xaete pleine");
	assert_int_equal(parse("From: postmaster@example.net\n"
	    "Subject: Undeliverable: hello\n"
	    "\n"
	    "<ann@example.net>: 552 Bo\xeete pleine\n"), 1);
	assert_string_equal(find("ann@example.net")->diagnostic,
	    "552 Bo?te pleine");
}

static void
test_aol(void **state)
{
	(void)state;
	assert_int_equal(parse("From: \"Mail Delivery Subsystem\" "
	    "<MAILER-DAEMON@aol.com>\n"
	    "To: <list-bounces@example.org>\n"
	    "Subject: Mail Delivery Problem\n"
	    "\n"
	    "Your mail to the following recipients could not be delivered "
	    "because they are not accepting mail from list@example.org:\n"
	    "\tScreenName\n"
	    "\tother.name\n"
	    "\n"
	    "Thanks\n"), 2);
	find("ScreenName@aol.com");
	find("other.name@aol.com");
	/* not from AOL: a bare name is no address */
	assert_int_equal(parse("From: \"Mail Delivery Subsystem\" "
	    "<MAILER-DAEMON@example.net>\n"
	    "Subject: Mail Delivery Problem\n"
	    "\n"
	    "Your mail to the following recipients could not be delivered:\n"
	    "\tScreenName\n"), 0);
}

static void
test_simple_lines(void **state)
{
	(void)state;
	/* "addr: reason" lines, labels, a session transcript */
	assert_int_equal(parse("From: E500_SMTP_Mail_Service@example.net\n"
	    "Subject: Returned Mail - Error During Delivery\n"
	    "\n"
	    "<ann@example.net>: Requested action not taken: mailbox "
	    "unavailable. [SMTP Error Code 550]\n"
	    "Received: from relay.example.net by mx.example.net\n"
	    "\tfor <zed@example.net>; Mon, 1 Jan 2024\n"), 1);
	assert_string_equal(find("ann@example.net")->status, "5.0.0");
	assert_int_equal(parse("From: \"Postmaster\" <postmaster@example.net>\n"
	    "Subject: Undeliverable Mail\n"
	    "\n"
	    "Unknown user: ann@example.net\n"
	    "RCPT TO generated following response:\n"
	    "553 5.3.0 <ann@example.net>... Addressee unknown\n"
	    "\n"
	    "Unknown user: bob@example.net\n"
	    "\n"
	    "Mail server admin is root@example.net, please write.\n"
	    "Original message follows.\n"), 2);
	assert_string_equal(find("ann@example.net")->status, "5.3.0");
	find("bob@example.net");
	/* several in one sentence, a quota code on the next line */
	assert_int_equal(parse("From: MAILER-DAEMON@example.net\n"
	    "Subject: failure notice\n"
	    "\n"
	    "Sorry, unable to deliver your message to ann@example.net for\n"
	    "the following reason:\n"
	    " 552 Quota violation for bob@example.net\n"
	    "A copy of the original message below this line:\n"), 2);
	assert_int_equal(find("bob@example.net")->kind, DSN_HARD);
	assert_string_equal(find("bob@example.net")->status, "5.0.0");
}

static void
test_text_exclusions(void **state)
{
	(void)state;
	/* postmasters, the bounce's own addresses, contact lines */
	assert_int_equal(parse("From: Mail Delivery System "
	    "<mailer-daemon@example.net>\n"
	    "To: list-bounces+ann=example.net@example.org\n"
	    "Subject: Undelivered Mail Returned to Sender\n"
	    "\n"
	    "Your message to list-bounces+ann=example.net@example.org\n"
	    "could not be delivered to the following recipient:\n"
	    "   ann@example.net\n"
	    "   contact@example.net\n"
	    "Please contact helpdesk@example.net for help, or\n"
	    "Postmaster@example.net.\n"), 2);
	find("ann@example.net");
	/* an address with the word in it is no contact line */
	find("contact@example.net");
	/* the author of the returned message counts only when alone */
	assert_int_equal(parse("From: MAILER-DAEMON@example.net\n"
	    "Subject: failure notice\n"
	    "Content-Type: multipart/mixed; boundary=XX\n"
	    "\n"
	    "--XX\n"
	    "Content-Type: text/plain\n"
	    "\n"
	    "Your message from carl@example.org could not be delivered to\n"
	    "ann@example.net: 550 no such user\n"
	    "--XX\n"
	    "Content-Type: message/rfc822\n"
	    "\n"
	    "From: Carl <carl@example.org>\n"
	    "Message-ID: <c.1@example.org>\n"
	    "\n"
	    "hi\n"
	    "--XX--\n"), 1);
	find("ann@example.net");
	/* a bounce that quotes only the original headers: their To */
	assert_int_equal(parse("From: MAILER-DAEMON@example.net\n"
	    "Subject: failure notice\n"
	    "\n"
	    "I'm afraid I wasn't able to deliver the following message.\n"
	    "This is a permanent error; I've given up.\n"
	    "\n"
	    "Subject: hello\n"
	    "To: ann@example.net\n"
	    "\n"
	    "--- Below this line is a copy of the message.\n"), 1);
	find("ann@example.net");
}

static void
test_text_not_bounce(void **state)
{
	(void)state;
	/* an auto-reply and a member's post that name addresses */
	assert_int_equal(parse("From: ann@example.net\n"
	    "Subject: Auto reply\n"
	    "\n"
	    "I am away; write to bob@example.net: 550 of you did.\n"), 0);
	/* auto-replies that use bounce wording */
	assert_int_equal(parse("From: ann@example.net\n"
	    "Subject: Out of Office: hello\n"
	    "\n"
	    "Your message could not be delivered to me until Monday; write "
	    "to bob@example.net.\n"), 0);
	assert_int_equal(parse("From: MAILER-DAEMON@example.net\n"
	    "Subject: Re: hello\n"
	    "X-Autorespond: challenge\n"
	    "\n"
	    "Your message to ann@example.net will not be delivered until "
	    "you confirm it.\n"), 0);
	/* an auto-reply's subject starts so; a bounce's may quote one */
	assert_int_equal(parse("From: MAILER-DAEMON@example.net\n"
	    "Subject: Undeliverable: Vacation plans\n"
	    "\n"
	    "<ann@example.net>: 550 5.1.1 unknown\n"), 1);
	/* but Auto-Submitted: auto-replied is on real bounces too */
	assert_int_equal(parse("From: Mail Delivery Subsystem "
	    "<MAILER-DAEMON@example.net>\n"
	    "Subject: Automatically rejected mail\n"
	    "Auto-Submitted: auto-replied (rejected)\n"
	    "\n"
	    "Your message to <ann@example.net> was automatically rejected:\n"
	    "Quota exceeded\n"), 1);
	assert_int_equal(parse("From: MAILER-DAEMON@example.net\n"
	    "Subject: Re: hello\n"
	    "X-Autoreply: yes\n"
	    "\n"
	    "<ann@example.net>: 550 not delivered\n"), 0);
	assert_int_equal(parse("From: ann@example.net\n"
	    "Subject: Re: meeting\n"
	    "Content-Type: multipart/mixed; boundary=XX\n"
	    "\n"
	    "--XX\n"
	    "Content-Type: text/plain\n"
	    "\n"
	    "See the attached mail.\n"
	    "--XX\n"
	    "Content-Type: message/rfc822\n"
	    "\n"
	    "From: MAILER-DAEMON@example.net\n"
	    "Subject: failure notice\n"
	    "\n"
	    "<bob@example.net>:\n"
	    "Sorry, no mailbox here by that name.\n"
	    "--XX--\n"), 0);
}

/* ---- dsn_counts ---- */

static void
test_counts(void **state)
{
	(void)state;
	assert_int_equal(dsn_counts("5.7.1"), 0);
	assert_int_equal(dsn_counts("5.7.26"), 0);
	assert_int_equal(dsn_counts("5.3.4"), 0);
	assert_int_equal(dsn_counts("5.2.3"), 0);
	assert_int_equal(dsn_counts("5.1.1"), 1);
	assert_int_equal(dsn_counts("5.2.2"), 1);
	assert_int_equal(dsn_counts("5.0.0"), 1);
	assert_int_equal(dsn_counts("4.7.1"), 1);
	assert_int_equal(dsn_counts("4.2.2"), 1);
	assert_int_equal(dsn_counts(""), 1);
	assert_int_equal(dsn_counts(NULL), 1);
}

/* ---- garbage ---- */

static void
test_not_a_bounce(void **state)
{
	(void)state;
	assert_int_equal(parse("From: ann@example.org\n"
	    "To: list@example.org\n"
	    "Subject: lunch\n"
	    "\n"
	    "Are we meeting at noon?  Write to bob@example.com: 550 of\n"
	    "them said yes.\n"), 0);
	assert_false(res.is_dsn);
	assert_int_equal(dsn_parse("", 0, &res), 0);
	assert_int_equal(dsn_parse(NULL, 0, &res), 0);
	assert_int_equal(parse("\n\n\n"), 0);
	assert_int_equal(parse("garbage without headers"), 0);
}

static void
test_garbage(void **state)
{
	unsigned char buf[4096];
	uint32_t x = 12345;
	size_t i, j, k;

	(void)state;
	for (i = 0; i < 200; i++) {
		for (j = 0; j < sizeof(buf); j++) {
			x = x * 1103515245 + 12345;
			buf[j] = (unsigned char)(x >> 16);
		}
		dsn_parse((const char *)buf, sizeof(buf), &res);
		assert_true(res.nrcpt <= DSN_RCPT_MAX);
		for (k = 0; k < res.nrcpt; k++)
			assert_true(res.rcpt[k].kind != DSN_NONE);
	}
}

static void
test_oversize(void **state)
{
	struct strbuf *sb = strbuf_new(1 << 20);
	size_t i;

	(void)state;
	/* more recipients than DSN_RCPT_MAX, overlong fields */
	strbuf_puts(sb, REPORT_HEAD "Content-Type: message/delivery-status\n"
	    "\nReporting-MTA: dns; ");
	for (i = 0; i < 5000; i++)
		strbuf_putc(sb, 'm');
	strbuf_puts(sb, "\n\n");
	for (i = 0; i < 100; i++)
		strbuf_appendf(sb, "Final-Recipient: rfc822; u%zu@example.net\n"
		    "Action: failed\nStatus: 5.1.1\n"
		    "Diagnostic-Code: smtp; 550 %s"
		    "\n\n", i, "long long long long long long long long long "
		    "long long long long long long long long long long long "
		    "long long long long long long long long long long long "
		    "long long long long long long long long long long long "
		    "long long long long long long long long long long long "
		    "long long long long long long long long long long long "
		    "long long long long long long long long long long long "
		    "long long long long long long long long long long long "
		    "long long long long long long long long long long long "
		    "long long long long long long long long long long end");
	strbuf_puts(sb, "Final-Recipient: rfc822; ");
	for (i = 0; i < 2000; i++)
		strbuf_putc(sb, 'a');
	strbuf_puts(sb, "@example.net\nAction: failed\n\n--BB--\n");
	assert_int_equal(dsn_parse(sb->buf, sb->len, &res), DSN_RCPT_MAX);
	assert_true(strlen(res.reporting_mta) < sizeof(res.reporting_mta));
	for (i = 0; i < res.nrcpt; i++)
		assert_true(strlen(res.rcpt[i].diagnostic) <= DSN_TEXT_MAX);
	/* a huge message: only DSN_INPUT_MAX bytes are read */
	strbuf_reset(sb);
	strbuf_puts(sb, "Subject: x\n\n");
	while (sb->len < DSN_INPUT_MAX + 1000)
		strbuf_puts(sb, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n");
	assert_int_equal(dsn_parse(sb->buf, sb->len, &res), 0);
	strbuf_free(sb);
}

static void
test_deep_nesting(void **state)
{
	struct strbuf *sb = strbuf_new(1 << 16);
	int i;

	(void)state;
	/* an answer below DSN's depth limit is not looked for; nothing
	 * crashes however deep GMime goes */
	strbuf_puts(sb, "From: MAILER-DAEMON@example.net\n"
	    "Subject: failure notice\n");
	for (i = 0; i < 3000; i++)
		strbuf_appendf(sb, "Content-Type: multipart/mixed; "
		    "boundary=b%d\n\n--b%d\n", i, i);
	strbuf_puts(sb, "Content-Type: text/plain\n\n"
	    "<ann@example.net>: 550 no such user\n");
	for (i = 2999; i >= 0; i--)
		strbuf_appendf(sb, "--b%d--\n", i);
	assert_int_equal(dsn_parse(sb->buf, sb->len, &res), 0);
	strbuf_reset(sb);
	strbuf_puts(sb, "From: MAILER-DAEMON@example.net\n"
	    "Subject: failure notice\n");
	for (i = 0; i < 3000; i++)
		strbuf_puts(sb, "Content-Type: message/rfc822\n\n"
		    "Subject: x\n");
	strbuf_puts(sb, "\nhi\n");
	assert_int_equal(dsn_parse(sb->buf, sb->len, &res), 0);
	/* a few levels are followed */
	strbuf_reset(sb);
	strbuf_puts(sb, "From: MAILER-DAEMON@example.net\n"
	    "Subject: failure notice\n");
	for (i = 0; i < 5; i++)
		strbuf_appendf(sb, "Content-Type: multipart/mixed; "
		    "boundary=b%d\n\n--b%d\n", i, i);
	strbuf_puts(sb, "Content-Type: text/plain\n\n"
	    "<ann@example.net>: 550 no such user\n");
	for (i = 4; i >= 0; i--)
		strbuf_appendf(sb, "--b%d--\n", i);
	assert_int_equal(dsn_parse(sb->buf, sb->len, &res), 1);
	strbuf_free(sb);
}

/* ---- threads ---- */

static const char thread_msg[] = REPORT_HEAD
    "Content-Type: message/delivery-status\n"
    "\n"
    "Final-Recipient: rfc822; ann@example.net\n"
    "Action: failed\n"
    "Status: 5.1.1\n"
    "\n"
    "Final-Recipient: rfc822; bob@example.net\n"
    "Action: delayed\n"
    "Status: 4.4.1\n"
    RETURNED;

static const char thread_text[] = "From: MAILER-DAEMON@mx.example.net\n"
    "Subject: failure notice\n"
    "Content-Type: text/plain; charset=iso-8859-1\n"
    "\n"
    "Bo\xeete pleine.\n"
    "<carl@example.net>:\n"
    "550 5.1.1 no such user\n";

/* parse_loop - parse both messages many times; count wrong results. */
static void *
parse_loop(void *arg)
{
	struct dsn_result *r = xmalloc(sizeof(*r));
	long *bad = arg;
	int i;

	for (i = 0; i < 300; i++) {
		if (dsn_parse(thread_msg, sizeof(thread_msg) - 1, r) != 2 ||
		    strcmp(r->rcpt[1].addr, "bob@example.net") != 0 ||
		    strcmp(r->original_message_id,
		    "post.1234@example.org") != 0)
			(*bad)++;
		if (dsn_parse(thread_text, sizeof(thread_text) - 1, r) != 1 ||
		    strcmp(r->rcpt[0].status, "5.1.1") != 0)
			(*bad)++;
	}
	free(r);
	return NULL;
}

static void
test_threads(void **state)
{
	pthread_t t[4];
	long bad[4] = { 0 };
	int i;

	(void)state;
	for (i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, parse_loop,
		    &bad[i]), 0);
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(bad[i], 0);
	}
}

/* ---- the DSN_CLASSIFY driver ---- */

/* classify - print one JSON line per file; returns the exit status. */
static int
classify(int argc, char **argv)
{
	struct strbuf *sb = strbuf_new(4096), *in = strbuf_new(65536);
	char chunk[65536];
	int i, rc = 0;
	size_t n, k;
	FILE *fp;

	for (i = 1; i < argc; i++) {
		strbuf_reset(in);
		strbuf_reset(sb);
		if ((fp = fopen(argv[i], "rb")) == NULL) {
			fprintf(stderr, "%s: cannot open\n", argv[i]);
			rc = 1;
			continue;
		}
		while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
			strbuf_append(in, chunk, n);
		fclose(fp);
		dsn_parse(in->buf, in->len, &res);
		strbuf_puts(sb, "{\"file\":\"");
		strbuf_json_escape(sb, argv[i], strlen(argv[i]));
		strbuf_appendf(sb, "\",\"is_dsn\":%d,\"msgid\":\"", res.is_dsn);
		strbuf_json_escape(sb, res.original_message_id,
		    strlen(res.original_message_id));
		strbuf_puts(sb, "\",\"rcpts\":[");
		for (k = 0; k < res.nrcpt; k++) {
			const struct dsn_rcpt *r = &res.rcpt[k];

			strbuf_puts(sb, k ? ",{\"addr\":\"" : "{\"addr\":\"");
			strbuf_json_escape(sb, r->addr, strlen(r->addr));
			strbuf_appendf(sb, "\",\"kind\":\"%s\",\"status\":\"",
			    r->kind == DSN_HARD ? "hard" : r->kind ==
			    DSN_SOFT ? "soft" : "none");
			strbuf_json_escape(sb, r->status, strlen(r->status));
			strbuf_puts(sb, "\",\"diagnostic\":\"");
			strbuf_json_escape(sb, r->diagnostic,
			    strlen(r->diagnostic));
			strbuf_puts(sb, "\"}");
		}
		strbuf_puts(sb, "]}\n");
		fputs(sb->buf, stdout);
	}
	strbuf_free(sb);
	strbuf_free(in);
	return rc;
}

/* bench - parse every file DSN_BENCH times; print messages per second. */
static int
bench(int argc, char **argv, long rounds)
{
	struct strbuf **in = xcalloc((size_t)argc, sizeof(*in));
	struct timespec t0, t1;
	char chunk[65536];
	long r, count = 0;
	double secs;
	size_t n;
	FILE *fp;
	int i;

	for (i = 1; i < argc; i++) {
		in[i] = strbuf_new(65536);
		if ((fp = fopen(argv[i], "rb")) == NULL)
			return 1;
		while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
			strbuf_append(in[i], chunk, n);
		fclose(fp);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (r = 0; r < rounds; r++)
		for (i = 1; i < argc; i++, count++)
			dsn_parse(in[i]->buf, in[i]->len, &res);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("%ld messages in %.3f s: %.0f messages/s\n", count, secs,
	    secs > 0 ? (double)count / secs : 0.0);
	for (i = 1; i < argc; i++)
		strbuf_free(in[i]);
	free(in);
	return 0;
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc3464_several),
		cmocka_unit_test(test_rfc3464_status_from_diag),
		cmocka_unit_test(test_rfc3464_folded),
		cmocka_unit_test(test_rfc3464_original_only),
		cmocka_unit_test(test_rfc3464_missing_fields),
		cmocka_unit_test(test_rfc3464_text_plain),
		cmocka_unit_test(test_rfc3464_crlf_and_cr),
		cmocka_unit_test(test_qmail),
		cmocka_unit_test(test_exim),
		cmocka_unit_test(test_failed_header),
		cmocka_unit_test(test_exim_warning),
		cmocka_unit_test(test_sendmail_warning),
		cmocka_unit_test(test_exchange_text),
		cmocka_unit_test(test_postfix_text),
		cmocka_unit_test(test_report_in_returned),
		cmocka_unit_test(test_sendmail),
		cmocka_unit_test(test_exchange),
		cmocka_unit_test(test_yahoo),
		cmocka_unit_test(test_charsets),
		cmocka_unit_test(test_aol),
		cmocka_unit_test(test_simple_lines),
		cmocka_unit_test(test_text_exclusions),
		cmocka_unit_test(test_text_not_bounce),
		cmocka_unit_test(test_counts),
		cmocka_unit_test(test_not_a_bounce),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_oversize),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_threads),
	};
	const char *mode = getenv("DSN_CLASSIFY");

	if (mode != NULL && strcmp(mode, "1") == 0)
		return classify(argc, argv);
	if ((mode = getenv("DSN_BENCH")) != NULL && atol(mode) > 0)
		return bench(argc, argv, atol(mode));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
