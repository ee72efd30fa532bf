/* SPDX-License-Identifier: MIT */
/*
 * web_pages.c - the pages of the web UI.
 *
 * Until the template engine lands, pages are built here with every
 * database value HTML-escaped on output.
 */
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "db.h"
#include "log.h"
#include "strbuf.h"
#include "web.h"

void
web_html_escape(struct strbuf *sb, const char *s)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '&': strbuf_puts(sb, "&amp;"); break;
		case '<': strbuf_puts(sb, "&lt;"); break;
		case '>': strbuf_puts(sb, "&gt;"); break;
		case '"': strbuf_puts(sb, "&quot;"); break;
		case '\'': strbuf_puts(sb, "&#39;"); break;
		default: strbuf_putc(sb, *s);
		}
	}
}

void
web_page_head(struct strbuf *sb, const char *title)
{
	strbuf_puts(sb, "<!doctype html>\n<html lang=\"en\"><head>"
	    "<meta charset=\"utf-8\">"
	    "<meta name=\"viewport\" content=\"width=device-width, "
	    "initial-scale=1\">"
	    "<link rel=\"stylesheet\" "
	    "href=\"/static/bootstrap/css/bootstrap.min.css\">"
	    "<title>");
	web_html_escape(sb, title);
	strbuf_puts(sb, "</title></head><body>"
	    "<nav class=\"navbar navbar-dark bg-dark mb-4\"><div "
	    "class=\"container\"><a class=\"navbar-brand\" href=\"/\">"
	    "Groups</a></div></nav><main class=\"container\">");
}

/* web_page_home - the directory of groups. */
int
web_page_home(struct httpd_req *req)
{
	struct strbuf *sb;
	struct db *d;
	PGresult *r;
	int i, rc;

	if ((d = db_get(daemon_db)) == NULL)
		return httpd_reply_error(req, 503, "database unavailable");
	r = db_query(d, "SELECT name, title, description FROM groups "
	    "ORDER BY name LIMIT 200", DB_NOPARAMS);
	db_put(daemon_db, d);
	if (r == NULL)
		return httpd_reply_error(req, 503, "database unavailable");
	sb = strbuf_new(4096);
	web_page_head(sb, "Groups");
	strbuf_puts(sb, "<h1 class=\"h3 mb-3\">Groups</h1>"
	    "<div class=\"list-group\">");
	for (i = 0; i < PQntuples(r); i++) {
		strbuf_puts(sb, "<div class=\"list-group-item\"><h2 "
		    "class=\"h5 mb-1\">");
		web_html_escape(sb, PQgetvalue(r, i, 1)[0] ? PQgetvalue(r, i, 1) :
		    PQgetvalue(r, i, 0));
		strbuf_puts(sb, " <small class=\"text-muted\">");
		web_html_escape(sb, PQgetvalue(r, i, 0));
		strbuf_puts(sb, "</small></h2><p class=\"mb-0\">");
		web_html_escape(sb, PQgetvalue(r, i, 2));
		strbuf_puts(sb, "</p></div>");
	}
	if (PQntuples(r) == 0)
		strbuf_puts(sb, "<p class=\"list-group-item\">No groups "
		    "yet.</p>");
	strbuf_puts(sb, "</div></main></body></html>\n");
	PQclear(r);
	rc = httpd_reply(req, 200, "text/html; charset=utf-8", sb->buf,
	    sb->len);
	strbuf_free(sb);
	return rc;
}
