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
 * (tests/e2e/test_bounce_corpus.py) drives it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	    RETURNED), 3);
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
	/* a report naming nobody usable: nothing */
	assert_int_equal(parse(REPORT_HEAD
	    "Content-Type: message/delivery-status\n"
	    "\n"
	    "Reporting-MTA: dns; mx.example.net\n"
	    "\n"
	    "Final-Recipient: rfc822; not an address\n"
	    "Action: failed\n"
	    "--BB--\n"), 0);
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
		    "Action: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 %s"
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
		cmocka_unit_test(test_counts),
		cmocka_unit_test(test_not_a_bounce),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_oversize),
	};
	const char *mode = getenv("DSN_CLASSIFY");

	if (mode != NULL && strcmp(mode, "1") == 0)
		return classify(argc, argv);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
