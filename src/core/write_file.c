/*
 * rill_write_file's steps (see core.h): a file range goes to the flow's
 * own ops->write_file when it has one (socket flows: sendfile(2)), else
 * the core reads it with pread(2) into one buffer at a time and hands
 * that to ops->write, so every flow and layer takes files with no code of
 * its own. The buffer is reused from step to step while nobody else holds
 * it, so a long range costs one allocation, not one per step, and at most
 * FILE_STEP bytes of memory.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"

#define FILE_STEP (256u * 1024u)

struct rill__file_range {
	int fd;
	uint64_t off, left;
	bool asked_impl; /* ops->write_file was offered the range */
	bool by_impl;    /* ... and took it: one step for everything */
	size_t step;     /* bytes of the step in flight */
	size_t cap;      /* bytes allocated behind buf */
	struct rill_buf *buf;
};

int rill__file_check(int fd, uint64_t offset, uint64_t length)
{
	if (fd < 0 || offset > INT64_MAX || length > INT64_MAX - offset)
		return RILL_EINVAL;
	struct stat st;
	if (fstat(fd, &st) != 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return RILL_EINVAL;
	if (length > 0 && (uint64_t)st.st_size < offset + length)
		return -ENODATA;
	return 0;
}

struct rill__file_range *rill__file_range_new(int fd, uint64_t offset,
                                              uint64_t length)
{
	struct rill__file_range *fr = rill_calloc(1, sizeof *fr);
	if (fr == NULL)
		return NULL;
	fr->fd = fd;
	fr->off = offset;
	fr->left = length;
	return fr;
}

void rill__file_range_free(struct rill__file_range *fr)
{
	if (fr == NULL)
		return;
	rill_buf_release(fr->buf);
	rill_free(fr);
}

/* A buffer for n bytes that nobody else holds: the last one when the
 * flow below let go of it, else a new one. */
static struct rill_buf *file_buffer(struct rill__file_range *fr, size_t n)
{
	if (fr->buf != NULL && (fr->buf->refs_ != 1 || fr->cap < n)) {
		rill_buf_release(fr->buf);
		fr->buf = NULL;
	}
	if (fr->buf == NULL) {
		size_t cap =
		    fr->left < FILE_STEP ? (size_t)fr->left : FILE_STEP;
		fr->buf = rill_buf_new(cap);
		if (fr->buf == NULL)
			return NULL;
		fr->cap = cap;
	}
	fr->buf->len = n;
	return fr->buf;
}

int rill__file_step(struct rill_flow *f, struct rill__file_range *fr, char *why,
                    size_t whylen)
{
	why[0] = '\0';
	if (!fr->asked_impl && f->ops->write_file != NULL) {
		fr->asked_impl = true;
		/* Set first: the flow may complete inside the call. */
		fr->by_impl = true;
		if (f->ops->write_file(f, fr->fd, fr->off, fr->left) == 0)
			return 0;
		fr->by_impl = false;
	}
	fr->asked_impl = true;
	size_t n = fr->left < FILE_STEP ? (size_t)fr->left : FILE_STEP;
	struct rill_buf *b = file_buffer(fr, n);
	if (b == NULL)
		return RILL_ENOMEM;
	ssize_t got;
	do {
		got = pread(fr->fd, b->data, n, (off_t)fr->off);
	} while (got < 0 && errno == EINTR);
	if (got < 0) {
		int err = -errno;
		snprintf(why, whylen, "reading the file at %" PRIu64 ": %s",
		         fr->off, strerror(-err));
		return err;
	}
	if (got == 0) {
		snprintf(why, whylen,
		         "the file ended at byte %" PRIu64 ", %" PRIu64
		         " bytes before the end of the range",
		         fr->off, fr->left);
		return -ENODATA;
	}
	b->len = (size_t)got;
	fr->step = (size_t)got;
	f->ops->write(f, &fr->buf, 1);
	return 0;
}

bool rill__file_advance(struct rill__file_range *fr)
{
	if (fr->by_impl) {
		fr->left = 0;
		return false;
	}
	fr->off += fr->step;
	fr->left -= fr->step;
	fr->step = 0;
	return fr->left > 0;
}
