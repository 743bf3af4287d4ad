/*
 * spf_bench - evaluations per second of the SPF engine alone, with answers
 * served instantly from memory (the "warm cache" case: resolver cost
 * excluded). Not a CTest; run by hand:
 *
 *	spf_bench [COUNT]
 *
 * The policy resembles a large provider's: an include chain of three
 * records with 30 ip4 networks, then an mx with two hosts, which is where
 * the client matches (7 lookups, 5 DNS terms per evaluation).
 */
#include "spf/spf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct zrr {
	const char *name;
	enum dns_type type;
	const char *value;
};

static const struct zrr zone[] = {
    {"example.com", DNS_T_TXT,
     "v=spf1 include:_spf.example.net ip4:203.0.113.0/24 mx -all"},
    {"_spf.example.net", DNS_T_TXT,
     "v=spf1 include:_nb1.example.net include:_nb2.example.net ~all"},
    {"_nb1.example.net", DNS_T_TXT,
     "v=spf1 ip4:10.1.0.0/16 ip4:10.2.0.0/16 ip4:10.3.0.0/16 "
     "ip4:10.4.0.0/16 ip4:10.5.0.0/16 ip4:10.6.0.0/16 ip4:10.7.0.0/16 "
     "ip4:10.8.0.0/16 ip4:10.9.0.0/16 ip4:10.10.0.0/16 ip4:10.11.0.0/16 "
     "ip4:10.12.0.0/16 ip4:10.13.0.0/16 ip4:10.14.0.0/16 "
     "ip4:10.15.0.0/16 ip6:2001:db8:1::/48 ip6:2001:db8:2::/48 ~all"},
    {"_nb2.example.net", DNS_T_TXT,
     "v=spf1 ip4:172.16.0.0/16 ip4:172.17.0.0/16 ip4:172.18.0.0/16 "
     "ip4:172.19.0.0/16 ip4:172.20.0.0/16 ip4:172.21.0.0/16 "
     "ip4:172.22.0.0/16 ip4:172.23.0.0/16 ip4:172.24.0.0/16 "
     "ip4:172.25.0.0/16 ip4:172.26.0.0/16 ip4:172.27.0.0/16 "
     "ip4:172.28.0.0/16 ip4:172.29.0.0/16 ip4:172.30.0.0/16 ~all"},
    {"example.com", DNS_T_MX, "mx1.example.com"},
    {"example.com", DNS_T_MX, "mx2.example.com"},
    {"mx1.example.com", DNS_T_A, "192.0.2.10"},
    {"mx2.example.com", DNS_T_A, "192.0.2.20"},
};

static void answer(const char *name, enum dns_type type, struct dns_answer *ans,
		   struct dns_rr *rr)
{
	memset(ans, 0, sizeof(*ans));
	ans->type = type;
	ans->qname = name;
	ans->rr = rr;
	for (size_t i = 0; i < sizeof(zone) / sizeof(zone[0]); i++) {
		if (zone[i].type != type || strcasecmp(zone[i].name, name))
			continue;
		struct dns_rr *r = &rr[ans->count++];
		memset(r, 0, sizeof(*r));
		if (type == DNS_T_TXT) {
			r->text = zone[i].value;
			r->text_len = strlen(zone[i].value);
		} else if (type == DNS_T_A) {
			addr_parse(zone[i].value, &r->addr);
		} else {
			r->name = zone[i].value;
		}
	}
	ans->status = ans->count ? DNS_OK : DNS_NXDOMAIN;
}

int main(int argc, char **argv)
{
	long count = argc > 1 ? atol(argv[1]) : 100000;
	struct addr ip;
	struct spf_request rq;
	struct spf_lookup lk[SPF_MAX_STEP];
	struct dns_rr rr[8];
	struct dns_answer ans;
	struct timespec t0, t1;
	long pass = 0;
	size_t n;

	addr_parse("192.0.2.20", &ip);
	spf_request_init(&rq, SPF_ID_MAILFROM, &ip, "user@example.com",
			 "mx.example.org", "mx.receiver.example");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 0; i < count; i++) {
		struct spf_eval *ev = spf_eval_new(&rq);
		while ((n = spf_eval_next(ev, lk, SPF_MAX_STEP)) > 0)
			for (size_t k = 0; k < n; k++) {
				answer(lk[k].name, lk[k].type, &ans, rr);
				spf_eval_answer(ev, lk[k].id, &ans);
			}
		pass += spf_eval_outcome(ev)->result == SPF_PASS;
		spf_eval_free(ev);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (double)(t1.tv_sec - t0.tv_sec) +
		   (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("%ld evaluations (%ld pass) in %.3f s: %.0f evaluations/s\n",
	       count, pass, s, (double)count / s);
	return pass == count ? 0 : 1;
}
