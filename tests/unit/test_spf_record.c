/*
 * test_spf_record - SPF record selection and parsing (spf/record): every
 * mechanism, qualifiers, dual-cidr-length, modifiers, unknown modifiers,
 * duplicate redirect/exp, domain-spec rules and error positions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "spf/record.h"

struct fixture {
	struct spf_arena a;
	struct spf_record r;
	char err[200];
};

static int parse(struct fixture *f, const char *text)
{
	return spf_record_parse(text, strlen(text), &f->a, &f->r, f->err,
				sizeof(f->err));
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	spf_arena_init(&f->a, NULL, 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	spf_arena_free(&f->a);
	free(f);
	return 0;
}

static void selection(void **state)
{
	(void)state;
	assert_true(spf_record_is_spf("v=spf1", 6));
	assert_true(spf_record_is_spf("v=spf1 -all", 11));
	assert_true(spf_record_is_spf("V=SpF1 ~all", 11));
	assert_false(spf_record_is_spf("v=spf10", 7));
	assert_false(spf_record_is_spf("v=spf1mx", 8));
	assert_false(spf_record_is_spf("v=spf", 5));
	assert_false(spf_record_is_spf("spf2.0/pra", 10));
	assert_false(spf_record_is_spf(" v=spf1", 7));
}

static void all_mechanisms(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(parse(f,
			       "v=spf1 +all -include:_spf.example.com "
			       "~a ?mx ptr ip4:192.0.2.0/24 "
			       "ip6:2001:db8::/32 exists:%{i}.x.example.com"),
			 0);
	assert_int_equal(f->r.nterms, 8);
	const struct spf_term *t = f->r.terms;
	assert_int_equal(t[0].type, SPF_MECH_ALL);
	assert_int_equal(t[0].qualifier, SPF_PASS);
	assert_string_equal(t[0].text, "+all");
	assert_int_equal(t[1].type, SPF_MECH_INCLUDE);
	assert_int_equal(t[1].qualifier, SPF_FAIL);
	assert_int_equal(t[1].domain_spec_len, 16);
	assert_memory_equal(t[1].domain_spec, "_spf.example.com", 16);
	assert_int_equal(t[2].type, SPF_MECH_A);
	assert_int_equal(t[2].qualifier, SPF_SOFTFAIL);
	assert_null(t[2].domain_spec);
	assert_int_equal(t[2].cidr4, 32);
	assert_int_equal(t[2].cidr6, 128);
	assert_int_equal(t[3].type, SPF_MECH_MX);
	assert_int_equal(t[3].qualifier, SPF_NEUTRAL);
	assert_int_equal(t[4].type, SPF_MECH_PTR);
	assert_int_equal(t[5].type, SPF_MECH_IP4);
	assert_int_equal(t[5].net.prefix, 24);
	assert_int_equal(t[6].type, SPF_MECH_IP6);
	assert_int_equal(t[6].net.prefix, 32);
	assert_int_equal(t[7].type, SPF_MECH_EXISTS);
	assert_true(spf_mech_counts(SPF_MECH_INCLUDE));
	assert_true(spf_mech_counts(SPF_MECH_EXISTS));
	assert_false(spf_mech_counts(SPF_MECH_IP4));
	assert_false(spf_mech_counts(SPF_MECH_ALL));
}

static void case_insensitive_names(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(parse(f, "v=spf1 A:example.com MX IP4:192.0.2.1 "
				  "Redirect=example.org -ALL"),
			 0);
	assert_int_equal(f->r.nterms, 4);
	assert_non_null(f->r.redirect);
}

static void dual_cidr(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(parse(f, "v=spf1 a/24//64 mx:example.com//48 "
				  "a:foo.example.com/16 mx/0 a//0"),
			 0);
	const struct spf_term *t = f->r.terms;
	assert_int_equal(t[0].cidr4, 24);
	assert_int_equal(t[0].cidr6, 64);
	assert_int_equal(t[1].cidr4, 32);
	assert_int_equal(t[1].cidr6, 48);
	assert_int_equal(t[1].domain_spec_len, 11);
	assert_int_equal(t[2].cidr4, 16);
	assert_int_equal(t[2].domain_spec_len, 15);
	assert_int_equal(t[3].cidr4, 0);
	assert_int_equal(t[4].cidr6, 0);
	/* A '/' inside the domain-spec is not a cidr length. */
	assert_int_equal(parse(f, "v=spf1 a:foo:bar/baz.example.com"), 0);
	assert_int_equal(f->r.terms[0].domain_spec_len, 23);
	assert_int_equal(f->r.terms[0].cidr4, 32);
}

static void ip_networks(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(parse(f, "v=spf1 ip4:192.0.2.129/25 ip6:::1.1.1.1/0 "
				  "ip6:::ffff:1.2.3.4"),
			 0);
	char buf[CIDR_STRLEN];
	cidr_format(&f->r.terms[0].net, buf, sizeof(buf));
	assert_string_equal(buf, "192.0.2.128/25");
	/* An IPv4-mapped ip6 network stays IPv6 (only ip4 matches IPv4). */
	assert_int_equal(f->r.terms[2].net.net.family, AF_INET6);
}

static void modifiers(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(parse(f, "v=spf1 exp=explain.%{d} -all "
				  "redirect=_spf.example.com "
				  "moo.cow-far_out=man:dog/cat default=+"),
			 0);
	assert_int_equal(f->r.nterms, 1);
	assert_int_equal(f->r.redirect_len, 16);
	assert_string_equal(f->r.redirect, "_spf.example.com");
	assert_string_equal(f->r.exp, "explain.%{d}");
	assert_int_equal(parse(f, "v=spf1"), 0);
	assert_int_equal(f->r.nterms, 0);
	assert_null(f->r.redirect);
	/* Several spaces and trailing spaces separate terms fine. */
	assert_int_equal(parse(f, "v=spf1  a   -all  "), 0);
	assert_int_equal(f->r.nterms, 2);
}

static void syntax_errors(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[] = {
	    "v=spf1 ip4:1.2.3.4 -all moo",	  /* unknown mechanism */
	    "v=spf1 moo.cow/far_out=man:dog/cat", /* not a modifier */
	    "v=spf1 1up=foo",			  /* name must start ALPHA */
	    "v=spf1 =all",			  /* empty name */
	    "v=spf1 redirect:t2.example.com",	  /* modifier as mechanism */
	    "v=spf1 -all.",
	    "v=spf1 -all:foobar",
	    "v=spf1 -all/8",
	    "v=spf1 ptr/0",
	    "v=spf1 ptr:",
	    "v=spf1 a:",
	    "v=spf1 mx:",
	    "v=spf1 include",
	    "v=spf1 include:",
	    "v=spf1 include:ip5.example.com/24",
	    "v=spf1 exists",
	    "v=spf1 exists:",
	    "v=spf1 exists:mail.example.com/24",
	    "v=spf1 a/33",
	    "v=spf1 a//129",
	    "v=spf1 a/24/64",
	    "v=spf1 a/032",
	    "v=spf1 ip4:1.2.3.4/33",
	    "v=spf1 ip4:1.2.3.4/032",
	    "v=spf1 ip4",
	    "v=spf1 ip4:1.2.3",
	    "v=spf1 ip4:1.2.3.4:8080",
	    "v=spf1 ip4:1.2.3.4//32",
	    "v=spf1 ip4:::ffff:1.2.3.4",
	    "v=spf1 ip6",
	    "v=spf1 -all ip6",
	    "v=spf1 ip6:::1.1.1.1/129",
	    "v=spf1 ip6:::1.1.1.1//33",
	    "v=spf1 ip6::CAFE::BABE",
	    "v=spf1 ip6:1.2.3.4",
	    "v=spf1 a:foo-bar",	      /* no top label */
	    "v=spf1 a:111.222.33.44", /* numeric top label */
	    "v=spf1 a:abc.123",
	    "v=spf1 a:museum",
	    "v=spf1 a:museum.",
	    "v=spf1 a:example.-com",
	    "v=spf1 a:example.com:8080",
	    "v=spf1 a:foo.example.com\x01",
	    "v=spf1 a:\xc3\xafx.example.net",
	    "v=spf1 a:ctrl.example.com\rptr -all",
	    "v=spf1 exp= -all",
	    "v=spf1 exp=-all",
	    "v=spf1 redirect=-all",
	    "v=spf1 ?all redirect=",
	    "v=spf1 -all foo=%abc",
	    "v=spf1 -all exp=%{r}.example.com", /* exp-only letter */
	    "v=spf1 a:%{a}.example.com",
	    "v=spf1 -exists:%(ir).example.com",
	    "v=spf1 exp=a.example.com exp=b.example.com",
	    "v=spf1 redirect=a.example.com redirect=a.example.com",
	    "v=spf10",
	    "x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse(f, bad[i]) != -1)
			fail_msg("accepted '%s'", bad[i]);
		assert_true(strncmp(f->err, "column ", 7) == 0);
		for (const char *p = f->err; *p; p++)
			assert_true(*p >= 0x20 && *p <= 0x7e);
	}
	/* Embedded NUL is an error, not the end of the record. */
	assert_int_equal(spf_record_parse("v=spf1 a:foo.example.com\0", 25,
					  &f->a, &f->r, f->err, sizeof(f->err)),
			 -1);
}

static void error_names_column(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(parse(f, "v=spf1 ip4:1.2.3.4 -all moo"), -1);
	assert_string_equal(f->err, "column 25: unknown mechanism in 'moo'");
	assert_int_equal(parse(f, "v=spf1 exp=a.example.com exp=b.example.com"),
			 -1);
	assert_string_equal(f->err, "column 26: duplicate exp modifier in "
				    "'exp=b.example.com'");
	assert_int_equal(parse(f, "v=spf1 ip4:1.2.3.4/33"), -1);
	assert_string_equal(f->err, "column 19: invalid prefix length in "
				    "'ip4:1.2.3.4/33'");
}

static void domain_specs(void **state)
{
	(void)state;
	static const char *const good[] = {
	    "example.com",
	    "example.com.",
	    "%{d}",
	    "%{ir}.%{v}._spf.%{d2}",
	    "foo.example.xn--zckzah",
	    "foo:bar/baz.example.com",
	    "mail.example...com",
	    "a.123-456",
	    "x.%{d}",
	    "%{d}.com",
	    "macro%%percent%_%_space%-url-space.example.com",
	};
	static const char *const bad[] = {
	    "",
	    "foo-bar",
	    "example.-com",
	    "example.com-",
	    "a.123",
	    "museum.",
	    "%{d}com",
	    "%{c}.example.com",
	    "a b.example.com",
	    "example.com/24",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (spf_domain_spec_check(good[i], strlen(good[i]), NULL,
					  NULL) != 0)
			fail_msg("rejected '%s'", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (spf_domain_spec_check(bad[i], strlen(bad[i]), NULL, NULL) !=
		    -1)
			fail_msg("accepted '%s'", bad[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(selection),
	    cmocka_unit_test_setup_teardown(all_mechanisms, setup, teardown),
	    cmocka_unit_test_setup_teardown(case_insensitive_names, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(dual_cidr, setup, teardown),
	    cmocka_unit_test_setup_teardown(ip_networks, setup, teardown),
	    cmocka_unit_test_setup_teardown(modifiers, setup, teardown),
	    cmocka_unit_test_setup_teardown(syntax_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(error_names_column, setup,
					    teardown),
	    cmocka_unit_test(domain_specs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
