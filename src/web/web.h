/* SPDX-License-Identifier: MIT */
/*
 * web.h - private interface of the web daemon's modules.
 */
#ifndef WEB_H
#define WEB_H

#include "httpd.h"
#include "strbuf.h"

/* web_pages.c */
int	 web_page_home(struct httpd_req *);
/* web_html_escape - append s with &, <, >, ", ' escaped. */
void	 web_html_escape(struct strbuf *, const char *s);
/* web_page_head - the page up to <main> (title escaped). */
void	 web_page_head(struct strbuf *, const char *title);

/* web_unsubscribe.c: the one-click unsubscribe link (RFC 8058). */
int	 web_unsubscribe_page(struct httpd_req *);
int	 web_unsubscribe_post(struct httpd_req *);

/* web_confirm.c: a confirmation link (subscription, unsubscription,
 * command) from an emailed request; GET shows a button, POST acts. */
int	 web_confirm_page(struct httpd_req *);
int	 web_confirm_post(struct httpd_req *);

/* web_bounce.c: a bounce probe's link; POST restores delivery. */
int	 web_bounce_page(struct httpd_req *);
int	 web_bounce_post(struct httpd_req *);

#endif
