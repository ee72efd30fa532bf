/* SPDX-License-Identifier: MIT */
/*
 * web.h - private interface of the web daemon's modules.
 */
#ifndef WEB_H
#define WEB_H

#include "httpd.h"

/* web_pages.c */
int	 web_page_home(struct httpd_req *);

#endif
