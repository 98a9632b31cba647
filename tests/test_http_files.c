/*
 * The parsers behind rill http serve's ranges and validators
 * (cli/http_files.c), against the rules of RFC 9110 sections 5.6.7, 8.8.3
 * and 14.1, edge cases included: saturating numbers, list syntax, the
 * three date formats. And http_path_walk, the openat2(RESOLVE_BENEATH)
 * policy walked by hand for kernels without openat2.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "http_files.h"

static void range(const char *v, uint64_t size, int want, uint64_t off,
                  uint64_t len)
{
	uint64_t o = 99, l = 99;
	int got = http_range_parse(v, size, &o, &l);
	if (got != want)
		TH_FAIL("Range \"%s\" of %llu: %d, expected %d", v,
		        (unsigned long long)size, got, want);
	if (want == 1 && (o != off || l != len))
		TH_FAIL("Range \"%s\" of %llu: [%llu, +%llu), expected "
		        "[%llu, +%llu)",
		        v, (unsigned long long)size, (unsigned long long)o,
		        (unsigned long long)l, (unsigned long long)off,
		        (unsigned long long)len);
	th_pass_one();
}

TEST(range_values)
{
	range("bytes=0-9", 100, 1, 0, 10);
	range("bytes=0-0", 1, 1, 0, 1);
	range("bytes=90-", 100, 1, 90, 10);
	range("bytes=99-", 100, 1, 99, 1);
	range("bytes=100-", 100, -1, 0, 0);
	range("bytes=-10", 100, 1, 90, 10);
	range("bytes=-1000", 100, 1, 0, 100);
	range("bytes=-0", 100, -1, 0, 0);
	range("bytes=0-", 0, -1, 0, 0);
	range("bytes=-5", 0, -1, 0, 0);
	range("bytes=50-18446744073709551615", 100, 1, 50, 50);
	range("bytes=99999999999999999999999-", 100, -1, 0, 0);
	range("bytes=0-99999999999999999999999", 100, 1, 0, 100);
	range("Bytes=1-2", 100, 1, 1, 2);
	range(" bytes=1-2 ", 100, 1, 1, 2);
	range("bytes= 1-2", 100, 1, 1, 2);
	range("bytes=1-2,", 100, 1, 1, 2);
	range("bytes=,1-2", 100, 1, 1, 2);
	range("bytes=, ,1-2 , ", 100, 1, 1, 2);
	/* ignored: several ranges, invalid, other units, garbage */
	range("bytes=0-1,3-4", 100, 0, 0, 0);
	range("bytes=5-1", 100, 0, 0, 0);
	range("bytes=1 -2", 100, 0, 0, 0);
	range("bytes=1-2x", 100, 0, 0, 0);
	range("bytes=-", 100, 0, 0, 0);
	range("bytes=", 100, 0, 0, 0);
	range("bytes", 100, 0, 0, 0);
	range("bytes=a-b", 100, 0, 0, 0);
	range("bytes=--1", 100, 0, 0, 0);
	range("items=0-1", 100, 0, 0, 0);
	range("bytesx=0-1", 100, 0, 0, 0);
	range("", 100, 0, 0, 0);
}

TEST(etag_lists)
{
	const char *e = "\"abc\"";
	TH_TRUE(http_etag_list_match("\"abc\"", e, false));
	TH_TRUE(http_etag_list_match(" \"x\" , \"abc\" ", e, false));
	TH_TRUE(http_etag_list_match("*", e, false));
	TH_TRUE(http_etag_list_match(" * ", e, true));
	TH_TRUE(http_etag_list_match("W/\"abc\"", e, true));
	TH_TRUE(!http_etag_list_match("W/\"abc\"", e, false));
	TH_TRUE(!http_etag_list_match("\"abcd\"", e, true));
	TH_TRUE(!http_etag_list_match("\"ab\"", e, true));
	TH_TRUE(!http_etag_list_match("abc", e, true));
	TH_TRUE(!http_etag_list_match("\"abc", e, true));
	TH_TRUE(!http_etag_list_match("\"abc\"x", e, true));
	TH_TRUE(!http_etag_list_match("", e, true));
	TH_TRUE(!http_etag_list_match("*, \"x\"", e, true));
	TH_TRUE(http_etag_list_match(",,\"abc\",", e, true));
}

TEST(http_dates)
{
	/* RFC 9110 5.6.7's three spellings of one instant. */
	time_t t = 0;
	TH_TRUE(http_date_parse("Sun, 06 Nov 1994 08:49:37 GMT", &t));
	TH_EQ_INT(t, 784111777);
	t = 0;
	TH_TRUE(http_date_parse("Sunday, 06-Nov-94 08:49:37 GMT", &t));
	TH_EQ_INT(t, 784111777);
	t = 0;
	TH_TRUE(http_date_parse("Sun Nov  6 08:49:37 1994", &t));
	TH_EQ_INT(t, 784111777);
	TH_TRUE(!http_date_parse("yesterday", &t));
	TH_TRUE(!http_date_parse("Sun, 06 Nov 1994 08:49:37 GMT junk", &t));
	TH_TRUE(!http_date_parse("", &t));
}

TEST(content_types)
{
	TH_EQ_STR(http_file_type("a/b/index.html"), "text/html; charset=utf-8");
	TH_EQ_STR(http_file_type("x.PNG"), "image/png");
	TH_EQ_STR(http_file_type("x.tar.gz"), "application/gzip");
	TH_EQ_STR(http_file_type("dir.d/README"), "application/octet-stream");
	TH_EQ_STR(http_file_type("noext"), "application/octet-stream");
	TH_EQ_STR(http_file_type(".hidden"), "application/octet-stream");
}

/* ---- http_path_walk: openat2(RESOLVE_BENEATH) by hand ------------------ */

/* A tree under a fresh directory: root/ is served, outside.txt is not. */
static int walk_tree(char *dir, size_t len)
{
	snprintf(dir, len, "%s/walk-XXXXXX",
	         getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	TH_TRUE(mkdtemp(dir) != NULL);
	char p[600];
#define AT(rel) (snprintf(p, sizeof p, "%s/%s", dir, rel), p)
	TH_OK(mkdir(AT("root"), 0755));
	TH_OK(mkdir(AT("root/a"), 0755));
	TH_OK(mkdir(AT("root/a/b"), 0755));
	FILE *f = fopen(AT("root/a/b/file.txt"), "w");
	fputs("inside", f);
	fclose(f);
	f = fopen(AT("outside.txt"), "w");
	fputs("outside", f);
	fclose(f);
	TH_OK(symlink("a/b/file.txt", AT("root/rel_link")));
	TH_OK(symlink("../b/file.txt", AT("root/a/b/up_link")));
	TH_OK(symlink("../outside.txt", AT("root/escape")));
	TH_OK(symlink(AT("outside.txt"), AT("root/absolute")));
	TH_OK(symlink("loop2", AT("root/loop1")));
	TH_OK(symlink("loop1", AT("root/loop2")));
	TH_OK(symlink("a", AT("root/dir_link")));
	TH_OK(mkfifo(AT("root/fifo"), 0644));
	int fd = open(AT("root"), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
#undef AT
	TH_TRUE(fd >= 0);
	return fd;
}

static void walk_expect(int root, const char *rel, const char *content, int err)
{
	int fd = http_path_walk(root, rel, O_RDONLY | O_NONBLOCK);
	if (content == NULL) {
		if (fd >= 0)
			TH_FAIL("%s: opened, expected errno %d", rel, err);
		else if (err != 0 && errno != err)
			TH_FAIL("%s: errno %d, expected %d", rel, errno, err);
		if (fd >= 0)
			close(fd);
		return;
	}
	if (fd < 0)
		TH_FAIL("%s: errno %d, expected \"%s\"", rel, errno, content);
	char buf[64] = {0};
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	TH_TRUE(n >= 0);
	TH_EQ_STR(buf, content);
}

TEST(path_walk_stays_beneath)
{
	char dir[512];
	int root = walk_tree(dir, sizeof dir);
	walk_expect(root, "a/b/file.txt", "inside", 0);
	walk_expect(root, "a//b/./file.txt", "inside", 0);
	walk_expect(root, "rel_link", "inside", 0);
	walk_expect(root, "a/b/up_link", "inside", 0);
	walk_expect(root, "dir_link/b/file.txt", "inside", 0);
	walk_expect(root, "a/../a/b/file.txt", "inside", 0);
	/* What openat2(RESOLVE_BENEATH) refuses, refused the same way. */
	walk_expect(root, "escape", NULL, EXDEV);
	walk_expect(root, "absolute", NULL, EXDEV);
	walk_expect(root, "../outside.txt", NULL, EXDEV);
	walk_expect(root, "a/../../outside.txt", NULL, EXDEV);
	walk_expect(root, "loop1", NULL, ELOOP);
	walk_expect(root, "a/b/file.txt/x", NULL, ENOTDIR);
	walk_expect(root, "missing", NULL, ENOENT);
	/* A FIFO opens at once (O_NONBLOCK): the caller sees its type. */
	int fd = http_path_walk(root, "fifo", O_RDONLY | O_NONBLOCK);
	TH_TRUE(fd >= 0);
	struct stat st;
	TH_OK(fstat(fd, &st));
	TH_TRUE(S_ISFIFO(st.st_mode));
	close(fd);
	/* The directory itself, and a directory inside. */
	fd = http_path_walk(root, "", O_RDONLY);
	TH_TRUE(fd >= 0);
	TH_OK(fstat(fd, &st));
	TH_TRUE(S_ISDIR(st.st_mode));
	close(fd);
	fd = http_path_walk(root, "dir_link/", O_RDONLY);
	TH_TRUE(fd >= 0);
	close(fd);
	close(root);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	TH_OK(system(cmd));
}
