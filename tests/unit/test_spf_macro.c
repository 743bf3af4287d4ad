/*
 * test_spf_macro - SPF macro-string checking and expansion (spf/macro):
 * every example of RFC 7208 section 7.4, transformers, delimiters, URL
 * escaping, exp-only letters, syntax errors and section 7.3 truncation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "spf/macro.h"

static struct addr ip4, ip6;

/* The context of RFC 7208 section 7.4: sender strong-bad@email.example.com,
 * IPv4 client 192.0.2.3, IPv6 client 2001:db8::cb01, PTR name
 * mx.example.org. */
static struct spf_macro_ctx ctx(const struct addr *ip)
{
	struct spf_macro_ctx c = {
	    .sender = "strong-bad@email.example.com",
	    .local = "strong-bad",
	    .sender_domain = "email.example.com",
	    .domain = "email.example.com",
	    .ip = ip,
	    .helo = "mx.example.org",
	    .ptr_name = "mx.example.org",
	    .receiver = "receiver.example.net",
	    .now = 1234567890,
	};
	return c;
}

static void expect(const char *in, enum spf_macro_mode mode,
		   const struct addr *ip, const char *want)
{
	char out[SPF_MACRO_MAX + 1];
	size_t n;
	struct spf_macro_ctx c = ctx(ip);
	int r =
	    spf_macro_expand(in, strlen(in), mode, &c, out, sizeof(out), &n);
	if (r != 0 || strcmp(out, want) != 0)
		fail_msg("%s: got %d '%s', want '%s'", in, r, out, want);
	assert_int_equal(n, strlen(want));
}

static void rfc7208_7_4_single_macros(void **state)
{
	(void)state;
	static const char *const t[][2] = {
	    {"%{s}", "strong-bad@email.example.com"},
	    {"%{o}", "email.example.com"},
	    {"%{d}", "email.example.com"},
	    {"%{d4}", "email.example.com"},
	    {"%{d3}", "email.example.com"},
	    {"%{d2}", "example.com"},
	    {"%{d1}", "com"},
	    {"%{dr}", "com.example.email"},
	    {"%{d2r}", "example.email"},
	    {"%{l}", "strong-bad"},
	    {"%{l-}", "strong.bad"},
	    {"%{lr}", "strong-bad"},
	    {"%{lr-}", "bad.strong"},
	    {"%{l1r-}", "strong"},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		expect(t[i][0], SPF_MACRO_DOMAIN, &ip4, t[i][1]);
}

static void rfc7208_7_4_macro_strings(void **state)
{
	(void)state;
	expect("%{ir}.%{v}._spf.%{d2}", SPF_MACRO_DOMAIN, &ip4,
	       "3.2.0.192.in-addr._spf.example.com");
	expect("%{lr-}.lp._spf.%{d2}", SPF_MACRO_DOMAIN, &ip4,
	       "bad.strong.lp._spf.example.com");
	expect("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", SPF_MACRO_DOMAIN, &ip4,
	       "bad.strong.lp.3.2.0.192.in-addr._spf.example.com");
	expect("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", SPF_MACRO_DOMAIN, &ip4,
	       "3.2.0.192.in-addr.strong.lp._spf.example.com");
	expect("%{d2}.trusted-domains.example.net", SPF_MACRO_DOMAIN, &ip4,
	       "example.com.trusted-domains.example.net");
}

static void rfc7208_7_4_ipv6(void **state)
{
	(void)state;
	/* The RFC prints the nibbles in lower case, the test suite (and
	 * pyspf) in upper case; DNS names are case-insensitive and we print
	 * upper case, so this compares without case. */
	const char *in = "%{ir}.%{v}._spf.%{d2}";
	const char *want = "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
			   "8.b.d.0.1.0.0.2.ip6._spf.example.com";
	char out[SPF_MACRO_MAX + 1];
	size_t n;
	struct spf_macro_ctx c = ctx(&ip6);
	assert_int_equal(spf_macro_expand(in, strlen(in), SPF_MACRO_DOMAIN, &c,
					  out, sizeof(out), &n),
			 0);
	assert_int_equal(strcasecmp(out, want), 0);
	expect("%{c}", SPF_MACRO_EXPLAIN, &ip6, "2001:db8::cb01");
	expect(
	    "%{i}", SPF_MACRO_DOMAIN, &ip6,
	    "2.0.0.1.0.D.B.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.C.B.0.1");
	expect("%{v}", SPF_MACRO_DOMAIN, &ip6, "ip6");
}

static void escapes_and_literals(void **state)
{
	(void)state;
	expect("%%", SPF_MACRO_DOMAIN, &ip4, "%");
	expect("%_", SPF_MACRO_DOMAIN, &ip4, " ");
	expect("%-", SPF_MACRO_DOMAIN, &ip4, "%20");
	expect("a%%b%_c%-d", SPF_MACRO_DOMAIN, &ip4, "a%b c%20d");
	expect("", SPF_MACRO_DOMAIN, &ip4, "");
}

static void exp_only_letters(void **state)
{
	(void)state;
	expect("%{c} %{r} %{t}", SPF_MACRO_EXPLAIN, &ip4,
	       "192.0.2.3 receiver.example.net 1234567890");
	expect("%{p}", SPF_MACRO_DOMAIN, &ip4, "mx.example.org");
	expect("%{h}", SPF_MACRO_DOMAIN, &ip4, "mx.example.org");
	size_t pos;
	const char *why;
	assert_int_equal(
	    spf_macro_check("%{c}", 4, SPF_MACRO_DOMAIN, &pos, &why), -1);
	assert_int_equal(pos, 2);
	assert_int_equal(
	    spf_macro_check("%{r}", 4, SPF_MACRO_DOMAIN, NULL, NULL), -1);
	assert_int_equal(
	    spf_macro_check("%{t}", 4, SPF_MACRO_DOMAIN, NULL, NULL), -1);
	/* A space is a literal only in explanation text. */
	assert_int_equal(
	    spf_macro_check("a b", 3, SPF_MACRO_DOMAIN, NULL, NULL), -1);
	assert_int_equal(
	    spf_macro_check("a b", 3, SPF_MACRO_EXPLAIN, NULL, NULL), 0);
}

static void url_escaping_upper_case(void **state)
{
	(void)state;
	struct spf_macro_ctx c = ctx(&ip4);
	c.local = "~jack&jill=up-a_b3.c";
	char out[200];
	size_t n;
	assert_int_equal(spf_macro_expand("%{L}", 4, SPF_MACRO_DOMAIN, &c, out,
					  sizeof(out), &n),
			 0);
	assert_string_equal(out, "~jack%26jill%3Dup-a_b3.c");
	c.helo = "JUMPIN' JUPITER";
	assert_int_equal(spf_macro_expand("%{H}", 4, SPF_MACRO_DOMAIN, &c, out,
					  sizeof(out), &n),
			 0);
	assert_string_equal(out, "JUMPIN%27%20JUPITER");
	/* Upper case letters expand exactly like lower case, then escape. */
	expect("%{D2}", SPF_MACRO_DOMAIN, &ip4, "example.com");
	expect("%{S}", SPF_MACRO_DOMAIN, &ip4,
	       "strong-bad%40email.example.com");
}

static void transformers_and_delimiters(void **state)
{
	(void)state;
	struct spf_macro_ctx c = ctx(&ip4);
	char out[200];
	size_t n;
	c.local = "foo-bar+zip+quux";
	assert_int_equal(spf_macro_expand("%{l2r+-}", 8, SPF_MACRO_DOMAIN, &c,
					  out, sizeof(out), &n),
			 0);
	assert_string_equal(out, "bar.foo");
	c.local = "philip-gladstone-test";
	assert_int_equal(spf_macro_expand("%{l2r-}", 7, SPF_MACRO_DOMAIN, &c,
					  out, sizeof(out), &n),
			 0);
	assert_string_equal(out, "gladstone.philip");
	c.local = "a,b/c_d=e";
	assert_int_equal(spf_macro_expand("%{l,/_=}", 8, SPF_MACRO_DOMAIN, &c,
					  out, sizeof(out), &n),
			 0);
	assert_string_equal(out, "a.b.c.d.e");
	/* Large digit counts keep every part; 'R' reverses too. */
	expect("%{d99}", SPF_MACRO_DOMAIN, &ip4, "email.example.com");
	expect("%{dR}", SPF_MACRO_DOMAIN, &ip4, "com.example.email");
	/* Empty parts survive splitting. */
	c.local = "a..b";
	assert_int_equal(spf_macro_expand("%{lr}", 5, SPF_MACRO_DOMAIN, &c, out,
					  sizeof(out), &n),
			 0);
	assert_string_equal(out, "b..a");
}

static void syntax_errors(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "%(ir).sbl.example.com", /* not '{' */
	    "foo%.sbl.example.com",  /* '%' then '.' */
	    "foo%",		     /* trailing '%' */
	    "%{a}.example.com",	     /* unknown letter */
	    "%{d0}",		     /* zero digit (section 7.3) */
	    "%{d",		     /* unterminated */
	    "%{d2x}",		     /* junk transformer */
	    "%{}",		     /* no letter */
	    "a\x80",		     /* non-ASCII literal */
	    "a\tb",		     /* control literal */
	};
	char out[64];
	size_t n;
	struct spf_macro_ctx c = ctx(&ip4);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (spf_macro_check(bad[i], strlen(bad[i]), SPF_MACRO_EXPLAIN,
				    NULL, NULL) != -1)
			fail_msg("accepted '%s'", bad[i]);
		assert_int_equal(spf_macro_expand(bad[i], strlen(bad[i]),
						  SPF_MACRO_EXPLAIN, &c, out,
						  sizeof(out), &n),
				 -1);
	}
	size_t pos;
	const char *why;
	assert_int_equal(
	    spf_macro_check("ab%xy", 5, SPF_MACRO_DOMAIN, &pos, &why), -1);
	assert_int_equal(pos, 2);
	assert_non_null(why);
}

static void uses_p(void **state)
{
	(void)state;
	assert_true(spf_macro_uses_p("%{p}.x", 6));
	assert_true(spf_macro_uses_p("a.%{P2r}", 8));
	assert_false(spf_macro_uses_p("%%{p}", 5));
	assert_false(spf_macro_uses_p("%{d}.p", 6));
}

static void output_bound(void **state)
{
	(void)state;
	char out[8];
	size_t n;
	struct spf_macro_ctx c = ctx(&ip4);
	assert_int_equal(spf_macro_expand("%{s}", 4, SPF_MACRO_DOMAIN, &c, out,
					  sizeof(out), &n),
			 -1);
	assert_string_equal(out, "");
	assert_int_equal(n, 0);
	assert_int_equal(spf_macro_expand("1234567", 7, SPF_MACRO_DOMAIN, &c,
					  out, sizeof(out), &n),
			 0);
	assert_string_equal(out, "1234567");
}

static void domain_truncation(void **state)
{
	(void)state;
	/* Section 7.3: drop labels from the left until <= 253 octets. */
	char buf[600];
	size_t n = 0;
	const char *label = "somewhat.long.exp.example.com.";
	memcpy(buf, "foobar.", 7);
	n = 7;
	for (int i = 0; i < 8; i++) {
		memcpy(buf + n, label, strlen(label));
		n += strlen(label);
	}
	memcpy(buf + n, "example.com.", 12);
	n += 12;
	buf[n] = '\0';
	char *r = spf_macro_domain_finish(buf, &n);
	assert_true(n <= SPF_DOMAIN_MAX);
	assert_int_equal(n, strlen(r));
	assert_int_equal(strncmp(r, "somewhat.long", 13), 0);
	assert_int_equal(r[n - 1], 'm'); /* trailing dot removed */

	char s2[] = "example.com.";
	n = strlen(s2);
	r = spf_macro_domain_finish(s2, &n);
	assert_string_equal(r, "example.com");

	char s3[300];
	memset(s3, 'a', 260);
	s3[260] = '\0';
	n = 260;
	r = spf_macro_domain_finish(s3, &n);
	assert_int_equal(n, 260); /* one huge label: left for the name check */
}

int main(void)
{
	addr_parse("192.0.2.3", &ip4);
	addr_parse("2001:db8::cb01", &ip6);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(rfc7208_7_4_single_macros),
	    cmocka_unit_test(rfc7208_7_4_macro_strings),
	    cmocka_unit_test(rfc7208_7_4_ipv6),
	    cmocka_unit_test(escapes_and_literals),
	    cmocka_unit_test(exp_only_letters),
	    cmocka_unit_test(url_escaping_upper_case),
	    cmocka_unit_test(transformers_and_delimiters),
	    cmocka_unit_test(syntax_errors),
	    cmocka_unit_test(uses_p),
	    cmocka_unit_test(output_bound),
	    cmocka_unit_test(domain_truncation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
