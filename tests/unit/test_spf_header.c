/*
 * test_spf_header - Received-SPF and Authentication-Results formatting
 * (spf/header): exact strings for each result, quoting of untrusted
 * values, no CR/LF/control bytes whatever the input, the 998-byte line
 * limit, and truncation detection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "spf/header.h"

static struct addr ip4, ip6;

static struct spf_header_info info(enum spf_result r)
{
	struct spf_header_info h = {
	    .result = r,
	    .identity = SPF_ID_MAILFROM,
	    .ip = &ip4,
	    .sender = "myname@example.com",
	    .helo = "foo.example.com",
	    .receiver = "mybox.example.org",
	    .mechanism = NULL,
	    .problem = NULL,
	};
	return h;
}

static void received_pass(void **state)
{
	(void)state;
	char buf[SPF_HEADER_MAX];
	struct spf_header_info h = info(SPF_PASS);
	h.mechanism = "ip4:192.0.2.0/24";
	int n = spf_header_received(&h, buf, sizeof(buf));
	assert_string_equal(
	    buf, "Received-SPF: pass (mybox.example.org: domain of "
		 "myname@example.com designates 192.0.2.1 as permitted "
		 "sender) client-ip=192.0.2.1; "
		 "envelope-from=\"myname@example.com\"; "
		 "helo=foo.example.com; receiver=mybox.example.org; "
		 "identity=mailfrom; mechanism=\"ip4:192.0.2.0/24\";");
	assert_int_equal(n, (int)strlen(buf));
}

static void received_each_result(void **state)
{
	(void)state;
	char buf[SPF_HEADER_MAX];
	struct spf_header_info h = info(SPF_FAIL);
	h.mechanism = "-all";
	spf_header_received(&h, buf, sizeof(buf));
	assert_string_equal(
	    buf, "Received-SPF: fail (mybox.example.org: domain of "
		 "myname@example.com does not designate 192.0.2.1 as "
		 "permitted sender) client-ip=192.0.2.1; "
		 "envelope-from=\"myname@example.com\"; "
		 "helo=foo.example.com; receiver=mybox.example.org; "
		 "identity=mailfrom; mechanism=\"-all\";");
	h = info(SPF_SOFTFAIL);
	h.mechanism = "~all";
	spf_header_received(&h, buf, sizeof(buf));
	assert_non_null(strstr(buf, "Received-SPF: softfail (mybox.example.org:"
				    " transitioning domain of"));
	h = info(SPF_NEUTRAL);
	h.mechanism = "default";
	spf_header_received(&h, buf, sizeof(buf));
	assert_non_null(strstr(buf, "(mybox.example.org: 192.0.2.1 is neither "
				    "permitted nor denied by domain of "
				    "myname@example.com)"));
	assert_non_null(strstr(buf, "mechanism=\"default\";"));
	h = info(SPF_NONE);
	spf_header_received(&h, buf, sizeof(buf));
	assert_string_equal(
	    buf, "Received-SPF: none (mybox.example.org: domain of "
		 "myname@example.com does not designate permitted sender "
		 "hosts) client-ip=192.0.2.1; "
		 "envelope-from=\"myname@example.com\"; "
		 "helo=foo.example.com; receiver=mybox.example.org; "
		 "identity=mailfrom;");
	h = info(SPF_PERMERROR);
	h.problem = "syntax error in record of example.com: column 25: "
		    "unknown mechanism in 'moo'";
	spf_header_received(&h, buf, sizeof(buf));
	assert_string_equal(
	    buf, "Received-SPF: permerror (mybox.example.org: permanent "
		 "error checking domain of myname@example.com) "
		 "client-ip=192.0.2.1; envelope-from=\"myname@example.com\"; "
		 "helo=foo.example.com; receiver=mybox.example.org; "
		 "identity=mailfrom; problem=\"syntax error in record of "
		 "example.com: column 25: unknown mechanism in 'moo'\";");
	h = info(SPF_TEMPERROR);
	h.problem = "DNS timeout looking up TXT example.com";
	spf_header_received(&h, buf, sizeof(buf));
	assert_non_null(strstr(buf,
			       "Received-SPF: temperror (mybox.example.org:"
			       " temporary error checking domain of "
			       "myname@example.com)"));
	assert_non_null(strstr(buf, " problem=\"DNS timeout looking up TXT "
				    "example.com\";"));
}

static void received_helo_ipv6_null_sender(void **state)
{
	(void)state;
	char buf[SPF_HEADER_MAX];
	struct spf_header_info h = info(SPF_PASS);
	h.identity = SPF_ID_HELO;
	h.ip = &ip6;
	h.sender = "";
	h.mechanism = "a";
	spf_header_received(&h, buf, sizeof(buf));
	/* An IPv6 address is not a dot-atom (':'): quoted. */
	assert_string_equal(
	    buf, "Received-SPF: pass (mybox.example.org: helo "
		 "foo.example.com designates 2001:db8::1 as permitted "
		 "sender) client-ip=\"2001:db8::1\"; envelope-from=\"\"; "
		 "helo=foo.example.com; receiver=mybox.example.org; "
		 "identity=helo; mechanism=\"a\";");
	h.identity = SPF_ID_MAILFROM;
	spf_header_received(&h, buf, sizeof(buf));
	assert_non_null(strstr(buf, "domain of postmaster@foo.example.com "
				    "designates"));
}

static void no_injection(void **state)
{
	(void)state;
	char buf[SPF_HEADER_MAX];
	struct spf_header_info h = info(SPF_FAIL);
	h.sender = "evil\"\r\nX-Injected: yes\\@example.com";
	h.helo = "bad helo\r\n(x)";
	h.mechanism = "a:%{l}\n";
	h.receiver = "me (you)";
	int n = spf_header_received(&h, buf, sizeof(buf));
	assert_true(n > 0);
	for (int i = 0; i < n; i++)
		assert_true(buf[i] >= 0x20 && buf[i] <= 0x7e);
	assert_non_null(strstr(buf, "envelope-from=\"evil\\\"??X-Injected: "
				    "yes\\\\@example.com\";"));
	assert_non_null(strstr(buf, "helo=\"bad helo?"
				    "?(x)\";"));
	assert_non_null(strstr(buf, "(me \\(you\\): domain of evil\"??"
				    "X-Injected: yes\\\\@example.com does"));
	assert_non_null(strstr(buf, "mechanism=\"a:%{l}?\";"));
}

static void line_length_and_truncation(void **state)
{
	(void)state;
	char big[2000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	char buf[SPF_HEADER_MAX];
	struct spf_header_info h = info(SPF_PERMERROR);
	h.ip = &ip6;
	h.sender = big;
	h.helo = big;
	h.receiver = big;
	h.mechanism = big;
	h.problem = big;
	int n = spf_header_received(&h, buf, sizeof(buf));
	assert_true(n > 0);
	assert_true(n <= 998); /* RFC 5322 section 2.1.1 */
	/* A cut value says so: its kept prefix ends in "..." inside the
	 * quotes, and exactly SPF_HEADER_VALUE_MAX bytes of it are there. */
	char want[SPF_HEADER_VALUE_MAX + 40];
	snprintf(want, sizeof(want), "envelope-from=\"%.*s...\";",
		 SPF_HEADER_VALUE_MAX - 3, big);
	assert_non_null(strstr(buf, want));
	/* A value exactly at the bound is kept whole, with no marker. */
	big[SPF_HEADER_VALUE_MAX] = '\0';
	h.sender = big;
	assert_true(spf_header_received(&h, buf, sizeof(buf)) > 0);
	snprintf(want, sizeof(want), "envelope-from=\"%.*s\";",
		 SPF_HEADER_VALUE_MAX, big);
	assert_non_null(strstr(buf, want));
	big[SPF_HEADER_VALUE_MAX] = 'x';
	n = spf_header_auth_results(big, &h, buf, sizeof(buf));
	assert_true(n > 0 && n <= 998);
	/* Too small a buffer: -1 and an empty string. */
	h = info(SPF_PASS);
	char small[40];
	assert_int_equal(spf_header_received(&h, small, sizeof(small)), -1);
	assert_string_equal(small, "");
	assert_int_equal(spf_header_auth_results("mx", &h, small, 10), -1);
}

static void auth_results(void **state)
{
	(void)state;
	char buf[SPF_HEADER_MAX];
	struct spf_header_info h = info(SPF_PASS);
	h.sender = "myname@example.net";
	int n =
	    spf_header_auth_results("myhost.example.org", &h, buf, sizeof(buf));
	assert_string_equal(
	    buf, "Authentication-Results: myhost.example.org; spf=pass "
		 "(mybox.example.org: domain of myname@example.net "
		 "designates 192.0.2.1 as permitted sender) "
		 "smtp.mailfrom=example.net");
	assert_int_equal(n, (int)strlen(buf));
	h = info(SPF_FAIL);
	h.identity = SPF_ID_HELO;
	spf_header_auth_results("myhost.example.org", &h, buf, sizeof(buf));
	assert_string_equal(
	    buf, "Authentication-Results: myhost.example.org; spf=fail "
		 "(mybox.example.org: helo foo.example.com does not "
		 "designate 192.0.2.1 as permitted sender) "
		 "smtp.helo=foo.example.com");
	h = info(SPF_NONE);
	h.sender = "x@we;ird.example";
	spf_header_auth_results("my host", &h, buf, sizeof(buf));
	assert_non_null(strstr(buf, "Authentication-Results: \"my host\"; "
				    "spf=none"));
	assert_non_null(strstr(buf, " smtp.mailfrom=\"we;ird.example\""));
}

int main(void)
{
	addr_parse("192.0.2.1", &ip4);
	addr_parse("2001:db8::1", &ip6);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(received_pass),
	    cmocka_unit_test(received_each_result),
	    cmocka_unit_test(received_helo_ipv6_null_sender),
	    cmocka_unit_test(no_injection),
	    cmocka_unit_test(line_length_and_truncation),
	    cmocka_unit_test(auth_results),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
