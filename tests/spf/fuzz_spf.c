/*
 * fuzz_spf - libFuzzer target for the SPF engine's untrusted inputs.
 *
 * The first input byte picks what the rest is: a record for the parser, a
 * macro-string for both expansion modes, or the DNS data of a whole
 * evaluation (lines of TXT text; every lookup is answered from the data,
 * so include/redirect/exp/%{p} chains are reachable). Build and run with
 * tests/spf/fuzz.sh (needs clang).
 */
#include "spf/header.h"
#include "spf/macro.h"
#include "spf/record.h"
#include "spf/spf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void eval_from_data(const char *d, size_t n, uint8_t sel)
{
	/* Split into up to 16 lines used as TXT records and names. */
	const char *line[16];
	size_t len[16], nl = 0, start = 0;
	for (size_t i = 0; i <= n && nl < 16; i++) {
		if (i == n || d[i] == '\n') {
			line[nl] = d + start;
			len[nl++] = i - start;
			start = i + 1;
		}
	}
	struct addr ip;
	addr_parse(sel & 1 ? "2001:db8::1" : "192.0.2.1", &ip);
	struct spf_request rq;
	spf_request_init(&rq, sel & 2 ? SPF_ID_HELO : SPF_ID_MAILFROM, &ip,
			 "user@example.com", "helo.example.org", "rx.example");
	struct spf_eval *ev = spf_eval_new(&rq);
	struct spf_lookup lk[SPF_MAX_STEP];
	struct dns_rr rr[4];
	char names[4][80];
	unsigned k = 0;
	size_t got;
	while ((got = spf_eval_next(ev, lk, SPF_MAX_STEP)) > 0) {
		for (size_t i = 0; i < got; i++, k++) {
			struct dns_answer a;
			memset(&a, 0, sizeof(a));
			memset(rr, 0, sizeof(rr));
			a.type = lk[i].type;
			a.qname = lk[i].name;
			a.rr = rr;
			size_t li = k % nl;
			unsigned v =
			    len[li] > 0 ? (unsigned char)line[li][0] : 0;
			if (v % 11 == 0) {
				a.status = (enum dns_status)(1 + v % 4);
			} else {
				a.status = DNS_OK;
				a.count = 1 + v % 3;
				for (size_t r = 0; r < a.count; r++) {
					size_t lj = (li + r) % nl;
					snprintf(names[r], sizeof(names[r]),
						 "%.*s", (int)len[lj],
						 line[lj]);
					rr[r].text = line[lj];
					rr[r].text_len = len[lj];
					rr[r].name = names[r];
					addr_parse(r % 2 ? "192.0.2.1"
							 : "2001:db8::1",
						   &rr[r].addr);
				}
			}
			spf_eval_answer(ev, lk[i].id, &a);
		}
		if (k > 10000)
			abort(); /* an evaluation must not run forever */
	}
	const struct spf_outcome *o = spf_eval_outcome(ev);
	char hdr[SPF_HEADER_MAX];
	struct spf_header_info h = {o->result,	  rq.identity, &ip,
				    rq.sender,	  rq.helo,     "rx.example",
				    o->mechanism, o->problem};
	if (spf_header_received(&h, hdr, sizeof(hdr)) < 0)
		abort();
	spf_eval_free(ev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 4096)
		return 0;
	uint8_t sel = data[0];
	const char *d = (const char *)data + 1;
	size_t n = size - 1;
	switch (sel % 3) {
	case 0: {
		struct spf_arena a;
		struct spf_record r;
		char err[200];
		spf_arena_init(&a, NULL, 0);
		spf_record_parse(d, n, &a, &r, err, sizeof(err));
		spf_arena_free(&a);
		break;
	}
	case 1: {
		struct addr ip;
		addr_parse("2001:db8::1", &ip);
		struct spf_macro_ctx ctx = {
		    "l@o.example", "l",		"o.example",
		    "d.example",   &ip,		"h.example",
		    "p.example",   "r.example", 1};
		char out[SPF_MACRO_MAX + 1];
		size_t ol;
		spf_macro_expand(d, n, SPF_MACRO_EXPLAIN, &ctx, out,
				 sizeof(out), &ol);
		if (strlen(out) != ol)
			abort();
		spf_macro_expand(d, n, SPF_MACRO_DOMAIN, &ctx, out, sizeof(out),
				 &ol);
		char *fin = spf_macro_domain_finish(out, &ol);
		if (strlen(fin) != ol)
			abort();
		break;
	}
	default:
		eval_from_data(d, n, sel);
		break;
	}
	return 0;
}
