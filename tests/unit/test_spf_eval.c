/*
 * test_spf_eval - the sans-I/O SPF evaluator (spf/spf): the step API
 * (independent lookups returned together, chunking, stale ids), every
 * RFC 7208 limit at and over its bound, initial domain checks, identities,
 * explanation handling, timeout, trace output and the outcome fields.
 *
 * Answers come from a small table; a name absent from it is NXDOMAIN, a
 * name present with other types is NODATA.
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

#include "spf/spf.h"

struct zrr {
	const char *name;
	enum dns_type type;
	const char *value;	/* text, address, or target name */
	enum dns_status status; /* DNS_OK unless an error is wanted */
};

static const struct zrr *zone;
static size_t zone_n;
static unsigned lookups_seen;

static void answer_from_zone(const char *name, enum dns_type type,
			     struct dns_answer *ans, struct dns_rr *rr,
			     size_t max)
{
	bool exists = false;
	memset(ans, 0, sizeof(*ans));
	ans->type = type;
	ans->qname = name;
	ans->rr = rr;
	for (size_t i = 0; i < zone_n; i++) {
		if (strcasecmp(zone[i].name, name) != 0)
			continue;
		exists = true;
		if (zone[i].type != type)
			continue;
		if (zone[i].status != DNS_OK) {
			ans->status = zone[i].status;
			return;
		}
		if (ans->count == max)
			continue;
		struct dns_rr *r = &rr[ans->count++];
		memset(r, 0, sizeof(*r));
		if (type == DNS_T_A || type == DNS_T_AAAA) {
			assert_int_equal(addr_parse(zone[i].value, &r->addr),
					 0);
		} else if (type == DNS_T_TXT) {
			r->text = zone[i].value;
			r->text_len = strlen(zone[i].value);
		} else {
			r->name = zone[i].value;
		}
	}
	ans->status =
	    ans->count > 0 ? DNS_OK : (exists ? DNS_NODATA : DNS_NXDOMAIN);
}

#define SET_ZONE(z) (zone = (z), zone_n = sizeof(z) / sizeof((z)[0]))

static struct spf_eval *run(const char *ip, const char *sender,
			    const char *helo, int max_void)
{
	struct addr a;
	struct spf_request rq;
	struct spf_lookup lk[SPF_MAX_STEP];
	struct dns_rr rr[64];
	struct dns_answer ans;
	size_t n;

	assert_int_equal(addr_parse(ip, &a), 0);
	spf_request_init(&rq, SPF_ID_MAILFROM, &a, sender, helo,
			 "mx.receiver.example");
	rq.now = 1000;
	if (max_void > 0)
		rq.max_void = max_void;
	struct spf_eval *ev = spf_eval_new(&rq);
	lookups_seen = 0;
	while ((n = spf_eval_next(ev, lk, SPF_MAX_STEP)) > 0) {
		for (size_t i = 0; i < n; i++) {
			lookups_seen++;
			answer_from_zone(lk[i].name, lk[i].type, &ans, rr, 64);
			assert_int_equal(spf_eval_answer(ev, lk[i].id, &ans),
					 0);
		}
	}
	assert_true(spf_eval_done(ev));
	return ev;
}

static enum spf_result result_of(const char *ip, const char *sender)
{
	struct spf_eval *ev = run(ip, sender, "helo.example.org", 0);
	enum spf_result r = spf_eval_outcome(ev)->result;
	spf_eval_free(ev);
	return r;
}

static void names_and_init(void **state)
{
	(void)state;
	assert_string_equal(spf_result_name(SPF_PASS), "pass");
	assert_string_equal(spf_result_name(SPF_SOFTFAIL), "softfail");
	assert_string_equal(spf_result_name(SPF_PERMERROR), "permerror");
	enum spf_result r;
	assert_int_equal(spf_result_parse("TempError", &r), 0);
	assert_int_equal(r, SPF_TEMPERROR);
	assert_int_equal(spf_result_parse("bogus", &r), -1);
	assert_string_equal(spf_identity_name(SPF_ID_HELO), "helo");

	struct addr a;
	struct spf_request rq;
	addr_parse("192.0.2.1", &a);
	spf_request_init(&rq, SPF_ID_MAILFROM, &a, "u@Example.COM", "h.example",
			 NULL);
	assert_string_equal(rq.domain, "Example.COM");
	spf_request_init(&rq, SPF_ID_MAILFROM, &a, "", "h.example", NULL);
	assert_string_equal(rq.domain, "h.example");
	spf_request_init(&rq, SPF_ID_HELO, &a, "u@example.com", "h.example",
			 NULL);
	assert_string_equal(rq.domain, "h.example");
	assert_int_equal(rq.max_void, SPF_MAX_VOID_LOOKUPS);
}

static const struct zrr mx_zone[] = {
    {"mx.example", DNS_T_TXT, "v=spf1 mx -all", DNS_OK},
    {"mx.example", DNS_T_MX, "a.mx.example", DNS_OK},
    {"mx.example", DNS_T_MX, "b.mx.example", DNS_OK},
    {"mx.example", DNS_T_MX, "c.mx.example", DNS_OK},
    {"a.mx.example", DNS_T_A, "192.0.2.1", DNS_OK},
    {"b.mx.example", DNS_T_A, "192.0.2.2", DNS_OK},
    {"c.mx.example", DNS_T_A, "192.0.2.3", DNS_OK},
};

static void mx_hosts_in_one_step(void **state)
{
	(void)state;
	SET_ZONE(mx_zone);
	struct addr a;
	struct spf_request rq;
	struct spf_lookup lk[SPF_MAX_STEP];
	struct dns_rr rr[16];
	struct dns_answer ans;

	addr_parse("192.0.2.3", &a);
	spf_request_init(&rq, SPF_ID_MAILFROM, &a, "x@mx.example", "h.example",
			 NULL);
	struct spf_eval *ev = spf_eval_new(&rq);
	assert_int_equal(spf_eval_next(ev, lk, SPF_MAX_STEP), 1);
	assert_int_equal(lk[0].type, DNS_T_TXT);
	assert_string_equal(lk[0].name, "mx.example");
	/* Unanswered lookups are returned again. */
	assert_int_equal(spf_eval_next(ev, lk, SPF_MAX_STEP), 1);
	answer_from_zone(lk[0].name, lk[0].type, &ans, rr, 16);
	assert_int_equal(spf_eval_answer(ev, lk[0].id, &ans), 0);
	/* A second answer to the same id is refused. */
	assert_int_equal(spf_eval_answer(ev, lk[0].id, &ans), -1);
	assert_int_equal(spf_eval_answer(ev, 999, &ans), -1);
	assert_int_equal(spf_eval_next(ev, lk, SPF_MAX_STEP), 1);
	assert_int_equal(lk[0].type, DNS_T_MX);
	answer_from_zone(lk[0].name, lk[0].type, &ans, rr, 16);
	spf_eval_answer(ev, lk[0].id, &ans);
	/* All three MX hosts at once. */
	assert_int_equal(spf_eval_next(ev, lk, SPF_MAX_STEP), 3);
	assert_string_equal(lk[0].name, "a.mx.example");
	assert_string_equal(lk[1].name, "b.mx.example");
	assert_string_equal(lk[2].name, "c.mx.example");
	for (int i = 0; i < 3; i++)
		assert_int_equal(lk[i].type, DNS_T_A);
	/* Answers may come in any order. */
	for (int i = 2; i >= 0; i--) {
		answer_from_zone(lk[i].name, lk[i].type, &ans, rr, 16);
		spf_eval_answer(ev, lk[i].id, &ans);
	}
	assert_int_equal(spf_eval_next(ev, lk, SPF_MAX_STEP), 0);
	const struct spf_outcome *o = spf_eval_outcome(ev);
	assert_int_equal(o->result, SPF_PASS);
	assert_string_equal(o->mechanism, "mx");
	assert_int_equal(o->lookups, 1);
	assert_int_equal(o->queries, 5);
	assert_string_equal(o->domain, "mx.example");
	assert_null(o->explanation);
	assert_null(o->problem);
	spf_eval_free(ev);
}

static void small_caller_array(void **state)
{
	(void)state;
	SET_ZONE(mx_zone);
	struct addr a;
	struct spf_request rq;
	struct spf_lookup lk[1];
	struct dns_rr rr[16];
	struct dns_answer ans;
	size_t n, calls = 0;

	addr_parse("192.0.2.9", &a);
	spf_request_init(&rq, SPF_ID_MAILFROM, &a, "x@mx.example", "h.example",
			 NULL);
	struct spf_eval *ev = spf_eval_new(&rq);
	while ((n = spf_eval_next(ev, lk, 1)) > 0) {
		assert_int_equal(n, 1);
		calls++;
		answer_from_zone(lk[0].name, lk[0].type, &ans, rr, 16);
		spf_eval_answer(ev, lk[0].id, &ans);
	}
	assert_int_equal(calls, 5);
	assert_int_equal(spf_eval_outcome(ev)->result, SPF_FAIL);
	assert_string_equal(spf_eval_outcome(ev)->mechanism, "-all");
	spf_eval_free(ev);
}

/* 10 DNS terms are allowed, the 11th is a permerror (section 4.6.4). */
static const struct zrr limit_zone[] = {
    {"at.example", DNS_T_TXT,
     "v=spf1 a a a a a include:inc.example ip4:192.0.2.1 -all", DNS_OK},
    {"over.example", DNS_T_TXT,
     "v=spf1 a a a a a a include:inc.example ip4:192.0.2.1 -all", DNS_OK},
    {"inc.example", DNS_T_TXT, "v=spf1 a a a a", DNS_OK},
    {"at.example", DNS_T_A, "198.51.100.1", DNS_OK},
    {"over.example", DNS_T_A, "198.51.100.1", DNS_OK},
    {"inc.example", DNS_T_A, "198.51.100.1", DNS_OK},
    {"loop.example", DNS_T_TXT, "v=spf1 redirect=loop.example", DNS_OK},
};

static void dns_term_limit(void **state)
{
	(void)state;
	SET_ZONE(limit_zone);
	struct spf_eval *ev = run("192.0.2.1", "x@at.example", "h.example", 0);
	assert_int_equal(spf_eval_outcome(ev)->result, SPF_PASS);
	assert_int_equal(spf_eval_outcome(ev)->lookups, 10);
	spf_eval_free(ev);
	ev = run("192.0.2.1", "x@over.example", "h.example", 0);
	const struct spf_outcome *o = spf_eval_outcome(ev);
	assert_int_equal(o->result, SPF_PERMERROR);
	assert_int_equal(o->lookups, 11);
	assert_non_null(strstr(o->problem, "more than 10 DNS-querying terms"));
	assert_null(o->mechanism);
	spf_eval_free(ev);
	ev = run("192.0.2.1", "x@loop.example", "h.example", 0);
	assert_int_equal(spf_eval_outcome(ev)->result, SPF_PERMERROR);
	spf_eval_free(ev);
}

static const struct zrr void_zone[] = {
    {"v.example", DNS_T_TXT,
     "v=spf1 a:n1.example mx:n2.example exists:n3.example ?all", DNS_OK},
    {"w.example", DNS_T_TXT, "v=spf1 a:n1.example a:n2.example ?all", DNS_OK},
    {"n2.example", DNS_T_TXT, "not spf", DNS_OK}, /* exists: NODATA */
};

static void void_lookup_limit(void **state)
{
	(void)state;
	SET_ZONE(void_zone);
	struct spf_eval *ev = run("192.0.2.1", "x@w.example", "h.example", 0);
	assert_int_equal(spf_eval_outcome(ev)->result, SPF_NEUTRAL);
	assert_int_equal(spf_eval_outcome(ev)->void_lookups, 2);
	spf_eval_free(ev);
	ev = run("192.0.2.1", "x@v.example", "h.example", 0);
	assert_int_equal(spf_eval_outcome(ev)->result, SPF_PERMERROR);
	assert_int_equal(spf_eval_outcome(ev)->void_lookups, 3);
	assert_non_null(strstr(spf_eval_outcome(ev)->problem, "void"));
	spf_eval_free(ev);
	/* Configurable: a limit of 1 stops at the second void lookup. */
	ev = run("192.0.2.1", "x@w.example", "h.example", 1);
	assert_int_equal(spf_eval_outcome(ev)->result, SPF_PERMERROR);
	spf_eval_free(ev);
	/* A larger limit lets all three pass. */
	ev = run("192.0.2.1", "x@v.example", "h.example", 3);
	assert_int_equal(spf_eval_outcome(ev)->result, SPF_NEUTRAL);
	spf_eval_free(ev);
}

static const struct zrr mxmax_zone[] = {
    {"ten.example", DNS_T_TXT, "v=spf1 mx:m.example -all", DNS_OK},
    {"eleven.example", DNS_T_TXT, "v=spf1 mx:m11.example -all", DNS_OK},
    {"m.example", DNS_T_MX, "h1.example", DNS_OK},
    {"m.example", DNS_T_MX, "h2.example", DNS_OK},
    {"m.example", DNS_T_MX, "h3.example", DNS_OK},
    {"m.example", DNS_T_MX, "h4.example", DNS_OK},
    {"m.example", DNS_T_MX, "h5.example", DNS_OK},
    {"m.example", DNS_T_MX, "h6.example", DNS_OK},
    {"m.example", DNS_T_MX, "h7.example", DNS_OK},
    {"m.example", DNS_T_MX, "h8.example", DNS_OK},
    {"m.example", DNS_T_MX, "h9.example", DNS_OK},
    {"m.example", DNS_T_MX, "h10.example", DNS_OK},
    {"m11.example", DNS_T_MX, "h1.example", DNS_OK},
    {"m11.example", DNS_T_MX, "h2.example", DNS_OK},
    {"m11.example", DNS_T_MX, "h3.example", DNS_OK},
    {"m11.example", DNS_T_MX, "h4.example", DNS_OK},
    {"m11.example", DNS_T_MX, "h5.example", DNS_OK},
    {"m11.example", DNS_T_MX, "h6.example", DNS_OK},
    {"m11.example", DNS_T_MX, "h7.example", DNS_OK},
    {"m11.example", DNS_T_MX, "h8.example", DNS_OK},
    {"m11.example", DNS_T_MX, "h9.example", DNS_OK},
    {"m11.example", DNS_T_MX, "h10.example", DNS_OK},
    {"m11.example", DNS_T_MX, "h11.example", DNS_OK},
    {"h10.example", DNS_T_A, "192.0.2.10", DNS_OK},
    {"h11.example", DNS_T_A, "192.0.2.11", DNS_OK},
};

static void mx_name_limit(void **state)
{
	(void)state;
	SET_ZONE(mxmax_zone);
	struct spf_eval *ev =
	    run("192.0.2.10", "x@ten.example", "h.example", 0);
	assert_int_equal(spf_eval_outcome(ev)->result, SPF_PASS);
	/* TXT + MX + ten address lookups in one step. */
	assert_int_equal(lookups_seen, 12);
	spf_eval_free(ev);
	ev = run("192.0.2.10", "x@eleven.example", "h.example", 0);
	assert_int_equal(spf_eval_outcome(ev)->result, SPF_PERMERROR);
	assert_int_equal(lookups_seen, 2);
	spf_eval_free(ev);
}

static const struct zrr ptr_zone[] = {
    {"p.example", DNS_T_TXT, "v=spf1 ptr:good.example -all", DNS_OK},
    {"1.2.0.192.in-addr.arpa", DNS_T_PTR, "n1.other.example", DNS_OK},
    {"1.2.0.192.in-addr.arpa", DNS_T_PTR, "n2.other.example", DNS_OK},
    {"1.2.0.192.in-addr.arpa", DNS_T_PTR, "n3.other.example", DNS_OK},
    {"1.2.0.192.in-addr.arpa", DNS_T_PTR, "n4.other.example", DNS_OK},
    {"1.2.0.192.in-addr.arpa", DNS_T_PTR, "n5.other.example", DNS_OK},
    {"1.2.0.192.in-addr.arpa", DNS_T_PTR, "n6.other.example", DNS_OK},
    {"1.2.0.192.in-addr.arpa", DNS_T_PTR, "n7.other.example", DNS_OK},
    {"1.2.0.192.in-addr.arpa", DNS_T_PTR, "n8.other.example", DNS_OK},
    {"1.2.0.192.in-addr.arpa", DNS_T_PTR, "n9.other.example", DNS_OK},
    {"1.2.0.192.in-addr.arpa", DNS_T_PTR, "bad.good.example", DNS_OK},
    {"1.2.0.192.in-addr.arpa", DNS_T_PTR, "mail.good.example", DNS_OK},
    {"bad.good.example", DNS_T_A, "198.51.100.7", DNS_OK},
    {"mail.good.example", DNS_T_A, "192.0.2.1", DNS_OK},
    {"2.2.0.192.in-addr.arpa", DNS_T_PTR, "mail.Good.Example.", DNS_OK},
    {"mail.good.example", DNS_T_A, "192.0.2.2", DNS_OK},
};

static void ptr_names_beyond_ten_ignored(void **state)
{
	(void)state;
	SET_ZONE(ptr_zone);
	/* mail.good.example is the 11th PTR name: ignored, so no match. */
	struct spf_eval *ev = run("192.0.2.1", "x@p.example", "h.example", 0);
	assert_int_equal(spf_eval_outcome(ev)->result, SPF_FAIL);
	/* TXT, PTR and one A lookup (only bad.good.example can match). */
	assert_int_equal(lookups_seen, 3);
	spf_eval_free(ev);
	/* Case and trailing dot of the PTR name do not matter. */
	assert_int_equal(result_of("192.0.2.2", "x@p.example"), SPF_PASS);
}

static const struct zrr misc_zone[] = {
    {"two.example", DNS_T_TXT, "v=spf1 -all", DNS_OK},
    {"two.example", DNS_T_TXT, "V=SPF1 +all", DNS_OK},
    {"other.example", DNS_T_TXT, "some text", DNS_OK},
    {"sf.example", DNS_T_TXT, "", DNS_SERVFAIL},
    {"to.example", DNS_T_TXT, "v=spf1 a:slow.example -all", DNS_OK},
    {"slow.example", DNS_T_A, "", DNS_TIMEOUT},
    {"inc.example", DNS_T_TXT, "v=spf1 include:other.example -all", DNS_OK},
    {"red.example", DNS_T_TXT, "v=spf1 redirect=nowhere.example", DNS_OK},
    {"v4.example", DNS_T_TXT, "v=spf1 ip4:192.0.2.0/24 ip6:::/0 -all", DNS_OK},
    {"h.example", DNS_T_TXT, "v=spf1 a -all", DNS_OK},
    {"h.example", DNS_T_A, "192.0.2.5", DNS_OK},
    {"ptrerr.example", DNS_T_TXT, "v=spf1 ptr ?all", DNS_OK},
    {"9.2.0.192.in-addr.arpa", DNS_T_PTR, "", DNS_SERVFAIL},
};

static void results_and_errors(void **state)
{
	(void)state;
	SET_ZONE(misc_zone);
	assert_int_equal(result_of("192.0.2.1", "x@two.example"),
			 SPF_PERMERROR);
	assert_int_equal(result_of("192.0.2.1", "x@other.example"), SPF_NONE);
	assert_int_equal(result_of("192.0.2.1", "x@absent.example"), SPF_NONE);
	assert_int_equal(result_of("192.0.2.1", "x@sf.example"), SPF_TEMPERROR);
	assert_int_equal(result_of("192.0.2.1", "x@to.example"), SPF_TEMPERROR);
	assert_int_equal(result_of("192.0.2.1", "x@inc.example"),
			 SPF_PERMERROR);
	assert_int_equal(result_of("192.0.2.1", "x@red.example"),
			 SPF_PERMERROR);
	/* IPv4-mapped IPv6 is IPv4: matches ip4, not ip6:::/0. */
	assert_int_equal(result_of("::ffff:192.0.2.7", "x@v4.example"),
			 SPF_PASS);
	assert_int_equal(result_of("::ffff:198.51.100.7", "x@v4.example"),
			 SPF_FAIL);
	assert_int_equal(result_of("2001:db8::1", "x@v4.example"), SPF_PASS);
	/* A PTR lookup error makes ptr not match (section 5.5). */
	assert_int_equal(result_of("192.0.2.9", "x@ptrerr.example"),
			 SPF_NEUTRAL);

	struct spf_eval *ev = run("192.0.2.1", "x@to.example", "h.example", 0);
	assert_string_equal(spf_eval_outcome(ev)->problem,
			    "DNS timeout looking up A slow.example");
	spf_eval_free(ev);
}

static void initial_domain_checks(void **state)
{
	(void)state;
	SET_ZONE(misc_zone);
	static const char *const bad[] = {
	    "x@[192.0.2.1]",
	    "x@localhost",
	    "x@a..example",
	    "x@a123456789012345678901234567890123456789012345678901234567890"
	    "1234.example",
	    "x@192.0.2.1",
	    "x@",
	    "x@.example",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct spf_eval *ev = run("192.0.2.1", bad[i], "h.example", 0);
		assert_int_equal(spf_eval_outcome(ev)->result, SPF_NONE);
		assert_int_equal(lookups_seen, 0);
		spf_eval_free(ev);
	}
}

static void helo_identity_and_null_sender(void **state)
{
	(void)state;
	SET_ZONE(misc_zone);
	/* Null sender: checks postmaster@helo. */
	struct spf_eval *ev = run("192.0.2.5", "", "h.example", 0);
	assert_int_equal(spf_eval_outcome(ev)->result, SPF_PASS);
	assert_string_equal(spf_eval_outcome(ev)->domain, "h.example");
	spf_eval_free(ev);

	struct addr a;
	struct spf_request rq;
	addr_parse("192.0.2.6", &a);
	spf_request_init(&rq, SPF_ID_HELO, &a, "u@v4.example", "h.example.",
			 NULL);
	rq.default_explanation = "%{s} from %{i} via %{d}";
	ev = spf_eval_new(&rq);
	struct spf_lookup lk[SPF_MAX_STEP];
	struct dns_rr rr[8];
	struct dns_answer ans;
	size_t n;
	while ((n = spf_eval_next(ev, lk, SPF_MAX_STEP)) > 0)
		for (size_t i = 0; i < n; i++) {
			answer_from_zone(lk[i].name, lk[i].type, &ans, rr, 8);
			spf_eval_answer(ev, lk[i].id, &ans);
		}
	const struct spf_outcome *o = spf_eval_outcome(ev);
	assert_int_equal(o->result, SPF_FAIL);
	assert_string_equal(o->domain, "h.example");
	assert_string_equal(
	    o->explanation,
	    "postmaster@h.example. from 192.0.2.6 via h.example");
	assert_false(o->explanation_from_domain);
	spf_eval_free(ev);
}

static const struct zrr exp_zone[] = {
    {"e.example", DNS_T_TXT, "v=spf1 -all exp=why.%{d}", DNS_OK},
    {"why.e.example", DNS_T_TXT,
     "%{l} at %{c} is not welcome\x01 (%{p}) t=%{t} r=%{r}", DNS_OK},
    {"d.example", DNS_T_TXT, "v=spf1 -all", DNS_OK},
    {"u.example", DNS_T_TXT, "v=spf1 -all exp=nothing.example", DNS_OK},
    {"9.2.0.192.in-addr.arpa", DNS_T_PTR, "host.e.example", DNS_OK},
    {"host.e.example", DNS_T_A, "192.0.2.9", DNS_OK},
    {"g.example", DNS_T_TXT, "v=spf1 -all exp=gx.example", DNS_OK},
    {"gx.example", DNS_T_TXT, "Go away, %{l}: %{p}", DNS_OK},
};

static void explanations(void **state)
{
	(void)state;
	SET_ZONE(exp_zone);
	/* A control byte in the TXT makes exp= unusable: the default. */
	struct spf_eval *ev = run("192.0.2.9", "bob@e.example", "h.example", 0);
	const struct spf_outcome *o = spf_eval_outcome(ev);
	assert_int_equal(o->result, SPF_FAIL);
	assert_string_equal(o->explanation,
			    "SPF fail: 192.0.2.9 is not allowed "
			    "to send mail from e.example");
	spf_eval_free(ev);
	/* %{p} in the explanation resolves the validated name. */
	ev = run("192.0.2.9", "bob@g.example", "h.example", 0);
	o = spf_eval_outcome(ev);
	assert_string_equal(o->explanation, "Go away, bob: host.e.example");
	assert_true(o->explanation_from_domain);
	spf_eval_free(ev);
	ev = run("192.0.2.8", "bob@g.example", "h.example", 0);
	assert_string_equal(spf_eval_outcome(ev)->explanation,
			    "Go away, bob: unknown");
	spf_eval_free(ev);
	ev = run("192.0.2.9", "bob@u.example", "h.example", 0);
	assert_false(spf_eval_outcome(ev)->explanation_from_domain);
	spf_eval_free(ev);
	/* The default explanation shows an IPv6 client readably. */
	ev = run("2001:db8::9", "bob@d.example", "h.example", 0);
	assert_string_equal(spf_eval_outcome(ev)->explanation,
			    "SPF fail: 2001:db8::9 is not allowed to send mail "
			    "from d.example");
	spf_eval_free(ev);
}

static void timeout_ends_with_temperror(void **state)
{
	(void)state;
	SET_ZONE(mx_zone);
	struct addr a;
	struct spf_request rq;
	struct spf_lookup lk[SPF_MAX_STEP];
	struct dns_answer ans;
	struct dns_rr rr[4];

	addr_parse("192.0.2.3", &a);
	spf_request_init(&rq, SPF_ID_MAILFROM, &a, "x@mx.example", "h.example",
			 NULL);
	struct spf_eval *ev = spf_eval_new(&rq);
	assert_int_equal(spf_eval_next(ev, lk, SPF_MAX_STEP), 1);
	unsigned id = lk[0].id;
	spf_eval_timeout(ev);
	assert_true(spf_eval_done(ev));
	answer_from_zone("mx.example", DNS_T_TXT, &ans, rr, 4);
	assert_int_equal(spf_eval_answer(ev, id, &ans), -1);
	assert_int_equal(spf_eval_next(ev, lk, SPF_MAX_STEP), 0);
	const struct spf_outcome *o = spf_eval_outcome(ev);
	assert_int_equal(o->result, SPF_TEMPERROR);
	assert_string_equal(o->problem, "time limit exceeded");
	spf_eval_free(ev);
	assert_true(SPF_TIME_LIMIT >= 20);
}

struct trace_log {
	int lines, max_depth;
	bool saw_result, saw_include, bad_byte;
};

static void trace_cb(void *arg, int depth, const char *line)
{
	struct trace_log *t = arg;
	t->lines++;
	if (depth > t->max_depth)
		t->max_depth = depth;
	if (strncmp(line, "result: pass", 12) == 0)
		t->saw_result = true;
	if (strstr(line, "include inc.example") != NULL)
		t->saw_include = true;
	for (const char *p = line; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			t->bad_byte = true;
}

static void trace_hook(void **state)
{
	(void)state;
	SET_ZONE(limit_zone);
	struct addr a;
	struct spf_request rq;
	struct spf_lookup lk[SPF_MAX_STEP];
	struct dns_rr rr[8];
	struct dns_answer ans;
	struct trace_log log = {0};
	size_t n;

	addr_parse("192.0.2.1", &a);
	spf_request_init(&rq, SPF_ID_MAILFROM, &a, "x@at.example", "h.example",
			 NULL);
	rq.trace = trace_cb;
	rq.trace_arg = &log;
	struct spf_eval *ev = spf_eval_new(&rq);
	while ((n = spf_eval_next(ev, lk, SPF_MAX_STEP)) > 0)
		for (size_t i = 0; i < n; i++) {
			answer_from_zone(lk[i].name, lk[i].type, &ans, rr, 8);
			spf_eval_answer(ev, lk[i].id, &ans);
		}
	assert_true(log.lines > 20);
	assert_int_equal(log.max_depth, 1);
	assert_true(log.saw_result);
	assert_true(log.saw_include);
	assert_false(log.bad_byte);
	spf_eval_free(ev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(names_and_init),
	    cmocka_unit_test(mx_hosts_in_one_step),
	    cmocka_unit_test(small_caller_array),
	    cmocka_unit_test(dns_term_limit),
	    cmocka_unit_test(void_lookup_limit),
	    cmocka_unit_test(mx_name_limit),
	    cmocka_unit_test(ptr_names_beyond_ten_ignored),
	    cmocka_unit_test(results_and_errors),
	    cmocka_unit_test(initial_domain_checks),
	    cmocka_unit_test(helo_identity_and_null_sender),
	    cmocka_unit_test(explanations),
	    cmocka_unit_test(timeout_ends_with_temperror),
	    cmocka_unit_test(trace_hook),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
