/* SPDX-License-Identifier: MIT */
/*
 * karl_maildir.c - the maildir transport (karl_transport = maildir): each
 * delivered message becomes karl_maildir/<recipient>/new/<unique>, written
 * under tmp/, fsynced, then renamed, so a reader never sees half a
 * message and a message reported sent survives a crash.  Like a delivery
 * agent, it puts Return-Path (the VERP envelope sender) and Delivered-To
 * before the message; neither is signed, so the DKIM signatures still
 * verify.  For local runs (`make run`), so a newcomer can read what karl
 * sent.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "karl.h"
#include "log.h"
#include "token.h"

#define PATH_LEN	4096

/* write_all - write len bytes of buf to fd; 0 or -1. */
static int
write_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, buf, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int
karl_maildir_deliver(const char *dir, const char *to, const char *from,
    const char *msg, size_t len, char *err, size_t errlen)
{
	char box[PATH_LEN], tmp[PATH_LEN], dst[PATH_LEN], sub[PATH_LEN + 8];
	char trace[2 * PATH_LEN], uniq[33];
	struct timespec ts;
	static const char *const subdirs[] = { "cur", "tmp", "new" };
	const char *p;
	size_t i;
	int fd, tn;

	/* the address is the directory name: no '/' and no dot files */
	if (to[0] == '.' || strchr(to, '/') != NULL) {
		snprintf(err, errlen, "address unfit for a maildir name");
		return -1;
	}
	for (p = to; *p != '\0'; p++)
		if ((unsigned char)*p < ' ') {
			snprintf(err, errlen, "address unfit for a maildir "
			    "name");
			return -1;
		}
	for (p = from; *p != '\0'; p++)
		if ((unsigned char)*p < ' ' || *p == '>') {
			snprintf(err, errlen, "envelope sender unfit for "
			    "Return-Path");
			return -1;
		}
	tn = snprintf(trace, sizeof(trace), "Return-Path: <%s>\r\n"
	    "Delivered-To: %s\r\n", from, to);
	if (tn < 0 || (size_t)tn >= sizeof(trace)) {
		snprintf(err, errlen, "addresses too long");
		return -1;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	token_random_id(uniq, 16);
	if (snprintf(box, sizeof(box), "%s/%s", dir, to) >= (int)sizeof(box) ||
	    snprintf(tmp, sizeof(tmp), "%s/tmp/%lld.%s.karl", box,
	    (long long)ts.tv_sec, uniq) >= (int)sizeof(tmp) ||
	    snprintf(dst, sizeof(dst), "%s/new/%lld.%s.karl", box,
	    (long long)ts.tv_sec, uniq) >= (int)sizeof(dst)) {
		snprintf(err, errlen, "maildir path too long");
		return -1;
	}
	for (i = 0; i < NELEM(subdirs); i++) {
		if (snprintf(sub, sizeof(sub), "%s/%s", box, subdirs[i]) >=
		    (int)sizeof(sub) || fsutil_mkdirs(sub, 0750) == -1) {
			snprintf(err, errlen, "mkdir %s: %s", sub,
			    strerror(errno));
			return -1;
		}
	}
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0640)) == -1) {
		snprintf(err, errlen, "open %s: %s", tmp, strerror(errno));
		return -1;
	}
	if (write_all(fd, trace, (size_t)tn) == -1 ||
	    write_all(fd, msg, len) == -1 || fsync(fd) == -1) {
		snprintf(err, errlen, "write %s: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		return -1;
	}
	close(fd);
	if (rename(tmp, dst) == -1) {
		snprintf(err, errlen, "rename %s: %s", tmp, strerror(errno));
		unlink(tmp);
		return -1;
	}
	if (fsutil_fsync_dir(sub) == -1) {
		snprintf(err, errlen, "fsync %s: %s", sub, strerror(errno));
		return -1;
	}
	return 0;
}
