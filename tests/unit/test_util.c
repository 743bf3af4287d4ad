/* Unit tests of the util layer: addresses and CIDR (addr.c), strings and
 * durations (str.c), log escaping (log.c), JSON (json.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "util/addr.h"
#include "util/json.h"
#include "util/log.h"
#include "util/str.h"

static void test_addr_parse_format(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		int family;
		const char *out;
	} ok[] = {
		{"192.0.2.1", AF_INET, "192.0.2.1"},
		{"2001:db8::1", AF_INET6, "2001:db8::1"},
		{"2001:DB8:0:0:0:0:0:1", AF_INET6, "2001:db8::1"},
		{"::ffff:192.0.2.7", AF_INET, "192.0.2.7"}, /* mapped is v4 */
		{"::1", AF_INET6, "::1"},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct addr a;
		char buf[ADDR_STRLEN];
		assert_int_equal(addr_parse(ok[i].in, &a), 0);
		assert_int_equal(a.family, ok[i].family);
		assert_string_equal(addr_format(&a, buf, sizeof(buf)),
				    ok[i].out);
	}
	static const char *const bad[] = {
		"", "192.0.2", "192.0.2.256", "1.2.3.4.5", "2001:db8::1::2",
		"[2001:db8::1]", "192.0.2.1/24", "fe80::1%eth0", "example.com",
		"192.0.2.1 ", "0x7f.1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct addr a;
		if (addr_parse(bad[i], &a) == 0)
			fail_msg("\"%s\" parsed as an address", bad[i]);
	}
	/* addr_parsen never reads past len */
	struct addr a;
	assert_int_equal(addr_parsen("192.0.2.1XYZ", 9, &a), 0);
}

static void test_cidr(void **state)
{
	(void)state;
	struct cidr c;
	struct addr a;
	char buf[CIDR_STRLEN];

	assert_int_equal(cidr_parse("192.0.2.77/24", &c, false), 0);
	assert_string_equal(cidr_format(&c, buf, sizeof(buf)), "192.0.2.0/24");
	addr_parse("192.0.2.255", &a);
	assert_true(cidr_match(&c, &a));
	addr_parse("192.0.3.0", &a);
	assert_false(cidr_match(&c, &a));
	addr_parse("2001:db8::1", &a);
	assert_false(cidr_match(&c, &a)); /* other family */

	assert_int_equal(cidr_parse("2001:db8:1:2::/63", &c, false), 0);
	addr_parse("2001:db8:1:3:ffff::1", &a);
	assert_true(cidr_match(&c, &a));
	addr_parse("2001:db8:1:4::1", &a);
	assert_false(cidr_match(&c, &a));

	assert_int_equal(cidr_parse("0.0.0.0/0", &c, false), 0);
	addr_parse("203.0.113.9", &a);
	assert_true(cidr_match(&c, &a));
	assert_int_equal(cidr_parse("192.0.2.1", &c, false), 0);
	assert_int_equal(c.prefix, 32);

	/* postgrey-style partial IPv4 only where allowed */
	assert_int_equal(cidr_parse("10.1", &c, true), 0);
	assert_string_equal(cidr_format(&c, buf, sizeof(buf)), "10.1.0.0/16");
	assert_int_equal(cidr_parse("10.1", &c, false), -1);

	static const char *const bad[] = {"192.0.2.0/33", "192.0.2.0/",
					  "192.0.2.0/-1", "2001:db8::/129",
					  "192.0.2.0/2x", "/24"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (cidr_parse(bad[i], &c, true) == 0)
			fail_msg("\"%s\" parsed as a network", bad[i]);

	/* mask edge cases */
	addr_parse("255.255.255.255", &a);
	addr_mask(&a, 0);
	assert_string_equal(addr_format(&a, buf, sizeof(buf)), "0.0.0.0");
	addr_parse("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", &a);
	addr_mask(&a, 65);
	assert_string_equal(addr_format(&a, buf, sizeof(buf)),
			    "ffff:ffff:ffff:ffff:8000::");
}

static void test_durations(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		int64_t secs;
	} ok[] = {{"300", 300}, {"5m", 300}, {"2h", 7200}, {"2d", 172800},
		  {"1w", 604800}, {"0", 0}, {" 7s ", 7}, {"3D", 259200}};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int64_t v;
		assert_int_equal(str_parse_duration(ok[i].in, &v), 0);
		assert_int_equal(v, ok[i].secs);
	}
	static const char *const bad[] = {"", "m", "-5", "5x", "5mm", "1.5h",
					  "99999999999w"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t v;
		if (str_parse_duration(bad[i], &v) == 0)
			fail_msg("\"%s\" parsed as a duration", bad[i]);
	}
	char buf[32];
	assert_string_equal(str_format_duration(300, buf, sizeof(buf)), "5m");
	assert_string_equal(str_format_duration(90, buf, sizeof(buf)), "90s");
	assert_string_equal(str_format_duration(172800, buf, sizeof(buf)),
			    "2d");
	assert_string_equal(str_format_duration(0, buf, sizeof(buf)), "0s");
}

static void test_lists_and_bools(void **state)
{
	(void)state;
	const char *cur = " a, ,b ,  c,";
	char item[8];
	assert_int_equal(str_list_next(&cur, item, sizeof(item)), 1);
	assert_string_equal(item, "a");
	assert_int_equal(str_list_next(&cur, item, sizeof(item)), 1);
	assert_string_equal(item, "b");
	assert_int_equal(str_list_next(&cur, item, sizeof(item)), 1);
	assert_string_equal(item, "c");
	assert_int_equal(str_list_next(&cur, item, sizeof(item)), 0);
	cur = "toolongitem";
	assert_int_equal(str_list_next(&cur, item, sizeof(item)), -1);

	bool b;
	assert_int_equal(str_parse_bool("YES", &b), 0);
	assert_true(b);
	assert_int_equal(str_parse_bool("off", &b), 0);
	assert_false(b);
	assert_int_equal(str_parse_bool("maybe", &b), -1);
}

static void test_log_escape(void **state)
{
	(void)state;
	char buf[32];
	assert_string_equal(log_escape(buf, sizeof(buf), "a\"b\\c\n\x01\xff", 8),
			    "a\\\"b\\\\c\\x0a\\x01\\xff");
	/* bounded, marked as cut, always terminated */
	char small[10];
	log_escape(small, sizeof(small), "0123456789abcdef", 16);
	assert_string_equal(small, "012345...");
	assert_int_equal(strlen(small), sizeof(small) - 1);
	/* a cut never splits an escape: "ab\x01" does not fit before the
	 * "...", so it is dropped whole */
	char mid[11];
	log_escape(mid, sizeof(mid), "abcd\x01\x02\x03", 7);
	assert_string_equal(mid, "abcd...");
}

static void test_json(void **state)
{
	(void)state;
	struct json_object o;
	char err[128];
	assert_int_equal(json_parse_object("{\"a\":\"x\\\"y\\u0000z\",\"n\":-42,"
					   " \"e\" : \"\"}",
					   &o, err, sizeof(err)),
			 0);
	const struct json_member *m = json_get(&o, "a");
	assert_non_null(m);
	assert_int_equal(m->len, 5);
	assert_memory_equal(m->str, "x\"y\0z", 5);
	assert_int_equal(json_get(&o, "n")->num, -42);
	assert_int_equal(json_get(&o, "e")->len, 0);
	assert_null(json_get(&o, "missing"));

	static const char *const bad[] = {
		"", "[]", "{", "{\"a\"}", "{\"a\":}", "{\"a\":1,}",
		"{\"a\":true}", "{\"a\":\"\\u0100\"}", "{\"a\":1} x",
		"{\"a\":\"unterminated}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (json_parse_object(bad[i], &o, err, sizeof(err)) == 0)
			fail_msg("\"%s\" parsed", bad[i]);

	/* Writing then reading gives the same bytes back. */
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	fputs("{\"k\":", f);
	json_write_string(f, "\x01\"\\\xe9\n", 5);
	fputs("}", f);
	fclose(f);
	assert_int_equal(json_parse_object(buf, &o, err, sizeof(err)), 0);
	assert_int_equal(o.m[0].len, 5);
	assert_memory_equal(o.m[0].str, "\x01\"\\\xe9\n", 5);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_parse_format),
		cmocka_unit_test(test_cidr),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_lists_and_bools),
		cmocka_unit_test(test_log_escape),
		cmocka_unit_test(test_json),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
