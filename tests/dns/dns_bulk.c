/*
 * dns_bulk - resolves many names at once through the resolver and prints
 * one line per answer; a helper for suite_crosscheck.py.
 *
 *	dns_bulk SERVERS TIMEOUT < lines of "NAME<TAB>TYPE"
 *
 * Output, one line per input line, in completion order:
 *	NAME<TAB>TYPE<TAB>STATUS<TAB>COUNT[<TAB>RECORD]...
 * where RECORD is an address, "PREF NAME" (MX; PTR with PREF 0), or the
 * TXT text in hex. STATUS is dns_status_name() or "invalid" when
 * dns_resolve() refused the name. All lookups are in flight together.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "dns/resolver.h"
#include "util/addr.h"
#include "util/xalloc.h"

/* Longest input line: a 253-character name escaped (\DDD) is 1012. */
#define LINE_MAX_LEN 1100

struct item {
	char *name;
	int type;
};

static size_t left;

static void on_answer(void *arg, const struct dns_answer *a)
{
	struct item *it = arg;
	char buf[ADDR_STRLEN];

	printf("%s\t%d\t%s\t%zu", it->name, it->type,
	       dns_status_name(a->status), a->count);
	for (size_t i = 0; i < a->count; i++) {
		const struct dns_rr *rr = &a->rr[i];

		if (a->type == DNS_T_TXT) {
			putchar('\t');
			for (size_t k = 0; k < rr->text_len; k++)
				printf("%02x", (unsigned char)rr->text[k]);
		} else if (rr->name) {
			printf("\t%u %s", rr->pref, rr->name);
		} else {
			printf("\t%s",
			       addr_format(&rr->addr, buf, sizeof(buf)));
		}
	}
	putchar('\n');
	left--;
}

int main(int argc, char **argv)
{
	struct event_base *base;
	struct dns_resolver *r;
	struct dns_config cfg = {0};
	char err[256], line[LINE_MAX_LEN];
	struct item *items = NULL;
	size_t n = 0, cap = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: %s SERVERS TIMEOUT\n", argv[0]);
		return 2;
	}
	cfg.servers = argv[1];
	cfg.timeout = atof(argv[2]);
	base = event_base_new();
	r = dns_resolver_new(base, &cfg, err, sizeof(err));
	if (r == NULL) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	while (fgets(line, sizeof(line), stdin)) {
		char *tab = strchr(line, '\t');

		if (tab == NULL)
			continue;
		*tab = '\0';
		if (n == cap) {
			/* Pointers into items are handed to the resolver: grow
			 * only before any lookup starts. */
			cap = cap ? cap * 2 : 1024;
			items = xreallocarray(items, cap, sizeof(*items));
		}
		items[n].name = xstrdup(line);
		items[n].type = atoi(tab + 1);
		n++;
	}
	for (size_t i = 0; i < n; i++) {
		if (dns_resolve(r, items[i].name, (enum dns_type)items[i].type,
				on_answer, &items[i]))
			left++;
		else
			printf("%s\t%d\tinvalid\t0\n", items[i].name,
			       items[i].type);
	}
	while (left > 0)
		event_base_loop(base, EVLOOP_ONCE);
	dns_resolver_free(r);
	event_base_free(base);
	for (size_t i = 0; i < n; i++)
		free(items[i].name);
	free(items);
	return 0;
}
