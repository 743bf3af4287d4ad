/*
 * test_spf_robust - untrusted input never breaks the SPF engine: records,
 * macro-strings and DNS answers built by a seeded random generator from
 * fragments of real policies (and random bytes) are parsed, expanded and
 * evaluated; run under ASan/UBSan this checks there is no overflow, leak or
 * undefined behaviour, and every evaluation ends with valid, printable
 * outcome texts within the RFC 7208 limits. Bounded and deterministic.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "spf/header.h"
#include "spf/macro.h"
#include "spf/record.h"
#include "spf/spf.h"

/* Iterations; our choice: a second or two under the sanitizers. */
#define ROBUST_RECORDS 100000
#define ROBUST_EVALS 20000

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(void)
{
	/* xorshift64*: deterministic, good enough to pick fragments. */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (uint32_t)((rng * 0x2545f4914f6cdd1dULL) >> 32);
}

static const char *const frags[] = {
    "v=spf1",
    " ",
    "  ",
    "a",
    "mx",
    "ptr",
    "all",
    "-all",
    "~all",
    "?all",
    "+",
    "-",
    "include:",
    "exists:",
    "ip4:",
    "ip6:",
    "redirect=",
    "exp=",
    "a:",
    "mx:",
    "/24",
    "//64",
    "/0",
    "/33",
    "//129",
    "192.0.2.1",
    "2001:db8::1",
    "::ffff:1.2.3.4",
    "example.com",
    "x.example.org.",
    "%{d}",
    "%{i}",
    "%{ir}",
    "%{l1r-}",
    "%{p}",
    "%{s}",
    "%{H}",
    "%{d2}",
    "%{c}",
    "%{t}",
    "%%",
    "%_",
    "%-",
    "%{",
    "}",
    "%",
    ".",
    "..",
    ":",
    "=",
    "foo=bar",
    "%{o}.",
    "_spf.",
    "r.",
    "t.example",
    "\x01",
    "\xff",
    "moo",
    "1.2.3",
    "v=spf1 ",
    "a.b.c.d.e.f.g.h.i.j.k",
};

static size_t build(char *buf, size_t size)
{
	size_t n = 0, parts = 1 + rnd() % 14;
	for (size_t i = 0; i < parts; i++) {
		const char *f;
		char one[2];
		if (rnd() % 10 == 0) {
			one[0] = (char)(rnd() % 256);
			one[1] = '\0';
			f = one;
		} else {
			f = frags[rnd() % (sizeof(frags) / sizeof(frags[0]))];
		}
		size_t fl = f == one ? 1 : strlen(f);
		if (n + fl >= size)
			break;
		memcpy(buf + n, f, fl);
		n += fl;
	}
	buf[n] = '\0';
	return n;
}

static const char *const terms[] = {
    "a",
    "mx",
    "ptr",
    "-all",
    "~all",
    "?all",
    "ip4:192.0.2.0/24",
    "-ip4:198.51.100.0/24",
    "ip6:2001:db8::/32",
    "include:h1.example",
    "include:h%{l1}.example",
    "exists:%{ir}.e.example",
    "redirect=h2.example",
    "exp=h3.example",
    "a:%{d}",
    "mx/24",
    "?a:h0.example//64",
    "ptr:example",
    "-exists:%{p}.x.example",
    "a:h3.example/0",
    "x-unknown=%{s}",
};

/* A mostly valid record, to reach deep evaluations. */
static size_t build_record(char *buf, size_t size)
{
	size_t n = (size_t)snprintf(buf, size, "v=spf1");
	size_t parts = rnd() % 8;
	for (size_t i = 0; i < parts; i++) {
		const char *t =
		    rnd() % 25
			? terms[rnd() % (sizeof(terms) / sizeof(terms[0]))]
			: frags[rnd() % (sizeof(frags) / sizeof(frags[0]))];
		int w = snprintf(buf + n, size - n, " %s", t);
		if (w < 0 || (size_t)w >= size - n)
			break;
		n += (size_t)w;
	}
	return n;
}

static void printable(const char *s)
{
	if (s == NULL)
		return;
	for (const char *p = s; *p; p++)
		assert_true(*p >= 0x20 && *p <= 0x7e);
}

static void random_records_and_macros(void **state)
{
	(void)state;
	char buf[512], err[200], out[SPF_MACRO_MAX + 1];
	struct addr ip;
	addr_parse("2001:db8::1", &ip);
	struct spf_macro_ctx ctx = {"l@o.example", "l",		"o.example",
				    "d.example",   &ip,		"h.example",
				    "p.example",   "r.example", 1};
	for (int i = 0; i < ROBUST_RECORDS; i++) {
		size_t n = build(buf, sizeof(buf));
		struct spf_arena a;
		struct spf_record r;
		spf_arena_init(&a, NULL, 0);
		if (spf_record_parse(buf, n, &a, &r, err, sizeof(err)) < 0)
			printable(err);
		spf_arena_free(&a);
		size_t ol;
		for (int mode = 0; mode < 2; mode++)
			if (spf_macro_expand(buf, n, (enum spf_macro_mode)mode,
					     &ctx, out, sizeof(out), &ol) == 0)
				assert_int_equal(strlen(out), ol);
	}
}

static char txt_pool[8][512];

static void fill_answer(const struct spf_lookup *lk, struct dns_answer *ans,
			struct dns_rr *rr, char names[][64])
{
	memset(ans, 0, sizeof(*ans));
	ans->type = lk->type;
	ans->qname = lk->name;
	ans->rr = rr;
	uint32_t k = rnd() % 10;
	if (k == 0) {
		ans->status = DNS_NXDOMAIN;
		return;
	}
	if (k == 1) {
		ans->status = DNS_NODATA;
		return;
	}
	if (k == 2) {
		ans->status = rnd() % 2 ? DNS_TIMEOUT : DNS_SERVFAIL;
		return;
	}
	ans->status = DNS_OK;
	/* TXT: mostly one record, sometimes several. */
	ans->count = lk->type == DNS_T_TXT && rnd() % 4 ? 1 : 1 + rnd() % 12;
	for (size_t i = 0; i < ans->count; i++) {
		memset(&rr[i], 0, sizeof(rr[i]));
		switch (lk->type) {
		case DNS_T_A:
			addr_parse(rnd() % 2 ? "192.0.2.1" : "198.51.100.1",
				   &rr[i].addr);
			break;
		case DNS_T_AAAA:
			addr_parse(rnd() % 2 ? "2001:db8::1" : "2001:db8::2",
				   &rr[i].addr);
			break;
		case DNS_T_MX:
		case DNS_T_PTR:
			snprintf(names[i], 64, "h%u.example%s", rnd() % 4,
				 rnd() % 4 ? "" : ".");
			rr[i].name = names[i];
			break;
		case DNS_T_TXT: {
			size_t slot = rnd() % 8;
			size_t len =
			    rnd() % 4
				? build_record(txt_pool[slot],
					       sizeof(txt_pool[0]))
				: build(txt_pool[slot], sizeof(txt_pool[0]));
			rr[i].text = txt_pool[slot];
			rr[i].text_len = len;
			break;
		}
		}
	}
}

static void random_evaluations(void **state)
{
	(void)state;
	struct spf_lookup lk[SPF_MAX_STEP];
	struct dns_rr rr[16];
	char names[16][64];
	struct dns_answer ans;
	static const char *const ips[] = {"192.0.2.1", "2001:db8::1",
					  "::ffff:198.51.100.1"};
	unsigned results[SPF_PERMERROR + 1] = {0}, max_lookups = 0;
	for (int i = 0; i < ROBUST_EVALS; i++) {
		struct addr ip;
		struct spf_request rq;
		addr_parse(ips[rnd() % 3], &ip);
		spf_request_init(&rq, rnd() % 4 ? SPF_ID_MAILFROM : SPF_ID_HELO,
				 &ip, rnd() % 5 ? "u\x01@s.example" : "",
				 "h.example", "r.example");
		struct spf_eval *ev = spf_eval_new(&rq);
		size_t n, steps = 0;
		while ((n = spf_eval_next(ev, lk, 1 + rnd() % SPF_MAX_STEP)) >
		       0) {
			assert_true(++steps < 1000);
			for (size_t k = 0; k < n; k++) {
				assert_true(strlen(lk[k].name) <= 253);
				fill_answer(&lk[k], &ans, rr, names);
				spf_eval_answer(ev, lk[k].id, &ans);
			}
			if (rnd() % 500 == 0)
				spf_eval_timeout(ev);
		}
		const struct spf_outcome *o = spf_eval_outcome(ev);
		results[o->result]++;
		if (o->lookups > max_lookups)
			max_lookups = o->lookups;
		assert_true(o->lookups <= SPF_MAX_DNS_TERMS + 1);
		assert_true(o->void_lookups <= SPF_MAX_VOID_LOOKUPS + 1);
		printable(o->explanation);
		printable(o->mechanism);
		printable(o->problem);
		if (o->explanation != NULL)
			assert_true(strlen(o->explanation) <=
				    SPF_EXPLANATION_MAX);
		char hdr[SPF_HEADER_MAX];
		struct spf_header_info h = {
		    o->result, rq.identity, &ip,	  rq.sender,
		    rq.helo,   "r.example", o->mechanism, o->problem};
		assert_true(spf_header_received(&h, hdr, sizeof(hdr)) > 0);
		printable(hdr);
		spf_eval_free(ev);
	}
	/* The generator must reach real evaluations, not only errors. */
	for (int r = SPF_NONE; r <= SPF_PERMERROR; r++) {
		if (getenv("SPF_ROBUST_VERBOSE") != NULL)
			printf("%s %u\n", spf_result_name(r), results[r]);
	}
	assert_true(results[SPF_PASS] > 0 && results[SPF_FAIL] > 0);
	assert_true(max_lookups >= 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(random_records_and_macros),
	    cmocka_unit_test(random_evaluations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
