/* SPDX-License-Identifier: MIT */
/*
 * web_confirm.c - not implemented yet: 404.
 */
#include "web.h"

int
web_confirm_page(struct httpd_req *req)
{
	return httpd_reply_error(req, 404, "not implemented yet");
}

int
web_confirm_post(struct httpd_req *req)
{
	return httpd_reply_error(req, 404, "not implemented yet");
}
