/*
 * The parsers behind rill http serve's ranges and validators
 * (cli/http_files.c), against the rules of RFC 9110 sections 5.6.7, 8.8.3
 * and 14.1, edge cases included: saturating numbers, list syntax, the
 * three date formats.
 */
#include <stdio.h>

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
