/*
 * spf_suite_runner - runs the openspf RFC 7208 test suite against the SPF
 * engine in-process, answering its DNS lookups from each scenario's
 * zonedata (no network).
 *
 * Input is the line format written by yaml2suite.py (see there). Usage:
 *
 *	spf_suite_runner [-v] [-i] [-t TEST] FILE.suite
 *
 * -v prints the trace of failing tests, -t runs only the named test (with
 * its trace), -i makes failures informational (exit 0; for the looser
 * RFC 4408 suite). Prints "N passed, N failed" and exits 1 on any failure.
 *
 * DNS semantics follow pyspf's driver (the suite README): an owner absent
 * from zonedata is NXDOMAIN; present without the queried type is NODATA; a
 * TIMEOUT item times out unless records of the type come before it; CNAMEs
 * are followed (a chain longer than RUNNER_MAX_CNAME, i.e. a loop, is a
 * server failure, as a real resolver reports it).
 */
#include "spf/spf.h"
#include "util/addr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* CNAME chain length after which a lookup fails; as resolvers do. */
#define RUNNER_MAX_CNAME 8
/* Most records one canned answer holds; the suite has at most a dozen. */
#define RUNNER_MAX_RR 64
/* Longest input line. */
#define RUNNER_LINE_MAX 4096
#define RUNNER_MAX_FIELDS 8

enum ztype { Z_A, Z_AAAA, Z_MX, Z_PTR, Z_CNAME, Z_TXT, Z_TIMEOUT };

struct zrec {
	char *owner;
	enum ztype type;
	char *value; /* text, address, target name */
	size_t value_len;
	int pref;
};

struct test {
	char *name, *host, *helo, *mailfrom, *results, *explanation;
};

struct scenario {
	char *description;
	char **owners;
	size_t nowners;
	struct zrec *recs;
	size_t nrecs;
	struct test *tests;
	size_t ntests;
};

static struct scenario *scen;
static size_t nscen;

static void *xrealloc_or_die(void *p, size_t n)
{
	void *r = realloc(p, n);
	if (r == NULL) {
		fprintf(stderr, "out of memory\n");
		exit(2);
	}
	return r;
}

/* Unescapes \xNN in place; returns the length. */
static size_t unescape(char *s)
{
	size_t j = 0;
	for (size_t i = 0; s[i] != '\0'; i++) {
		if (s[i] == '\\' && s[i + 1] == 'x' && s[i + 2] && s[i + 3]) {
			char hex[3] = {s[i + 2], s[i + 3], 0};
			s[j++] = (char)strtoul(hex, NULL, 16);
			i += 3;
		} else {
			s[j++] = s[i];
		}
	}
	s[j] = '\0';
	return j;
}

static char *dup_field(const char *s, size_t *len)
{
	char *d = strdup(s);
	if (d == NULL)
		exit(2);
	size_t n = unescape(d);
	if (len != NULL)
		*len = n;
	return d;
}

static void load(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[RUNNER_LINE_MAX];
	if (f == NULL) {
		perror(path);
		exit(2);
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *fld[RUNNER_MAX_FIELDS];
		size_t nf = 0;
		line[strcspn(line, "\n")] = '\0';
		char *p = line;
		while (nf < RUNNER_MAX_FIELDS) {
			fld[nf++] = p;
			char *tab = strchr(p, '\t');
			if (tab == NULL)
				break;
			*tab = '\0';
			p = tab + 1;
		}
		struct scenario *s = nscen ? &scen[nscen - 1] : NULL;
		if (strcmp(fld[0], "S") == 0) {
			scen =
			    xrealloc_or_die(scen, (nscen + 1) * sizeof(*scen));
			memset(&scen[nscen], 0, sizeof(*scen));
			scen[nscen++].description = dup_field(fld[1], NULL);
		} else if (strcmp(fld[0], "O") == 0 && s != NULL) {
			s->owners = xrealloc_or_die(
			    s->owners, (s->nowners + 1) * sizeof(char *));
			s->owners[s->nowners++] = dup_field(fld[1], NULL);
		} else if (strcmp(fld[0], "Z") == 0 && s != NULL && nf >= 3) {
			s->recs = xrealloc_or_die(
			    s->recs, (s->nrecs + 1) * sizeof(*s->recs));
			struct zrec *z = &s->recs[s->nrecs++];
			memset(z, 0, sizeof(*z));
			z->owner = dup_field(fld[1], NULL);
			static const char *const tn[] = {
			    "A",     "AAAA", "MX",     "PTR",
			    "CNAME", "TXT",  "TIMEOUT"};
			for (int k = 0; k < 7; k++)
				if (strcmp(fld[2], tn[k]) == 0)
					z->type = (enum ztype)k;
			if (z->type == Z_MX && nf >= 5) {
				z->pref = atoi(fld[3]);
				z->value = dup_field(fld[4], &z->value_len);
			} else if (nf >= 4) {
				z->value = dup_field(fld[3], &z->value_len);
			}
		} else if (strcmp(fld[0], "T") == 0 && s != NULL && nf >= 7) {
			s->tests = xrealloc_or_die(
			    s->tests, (s->ntests + 1) * sizeof(*s->tests));
			struct test *t = &s->tests[s->ntests++];
			t->name = dup_field(fld[1], NULL);
			t->host = dup_field(fld[2], NULL);
			t->helo = dup_field(fld[3], NULL);
			t->mailfrom = dup_field(fld[4], NULL);
			t->results = dup_field(fld[5], NULL);
			t->explanation = fld[6][0] == '='
					     ? dup_field(fld[6] + 1, NULL)
					     : NULL;
		}
	}
	fclose(f);
}

/* ---- canned DNS ---------------------------------------------------------- */

static char names[RUNNER_MAX_RR][300];
static struct dns_rr rrs[RUNNER_MAX_RR];

static void lower_nodot(const char *in, char *out, size_t size)
{
	size_t n = strlen(in);
	if (n > 0 && in[n - 1] == '.')
		n--;
	if (n >= size)
		n = size - 1;
	for (size_t i = 0; i < n; i++) {
		char c = in[i];
		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
	}
	out[n] = '\0';
}

static bool owner_exists(const struct scenario *s, const char *name)
{
	for (size_t i = 0; i < s->nowners; i++)
		if (strcmp(s->owners[i], name) == 0)
			return true;
	return false;
}

static void lookup(const struct scenario *s, const char *qname,
		   enum dns_type type, struct dns_answer *ans)
{
	char name[300];
	size_t n = 0;

	lower_nodot(qname, name, sizeof(name));
	memset(ans, 0, sizeof(*ans));
	ans->type = type;
	ans->qname = qname;
	ans->rr = rrs;
	for (int hop = 0; hop <= RUNNER_MAX_CNAME; hop++) {
		if (!owner_exists(s, name)) {
			ans->status = DNS_NXDOMAIN;
			return;
		}
		const char *cname = NULL;
		for (size_t i = 0; i < s->nrecs; i++) {
			const struct zrec *z = &s->recs[i];
			if (strcmp(z->owner, name) != 0)
				continue;
			if (z->type == Z_TIMEOUT) {
				if (n > 0)
					break;
				ans->status = DNS_TIMEOUT;
				return;
			}
			if (z->type == Z_CNAME) {
				cname = z->value;
				continue;
			}
			bool want = (z->type == Z_A && type == DNS_T_A) ||
				    (z->type == Z_AAAA && type == DNS_T_AAAA) ||
				    (z->type == Z_MX && type == DNS_T_MX) ||
				    (z->type == Z_PTR && type == DNS_T_PTR) ||
				    (z->type == Z_TXT && type == DNS_T_TXT);
			if (!want || n >= RUNNER_MAX_RR)
				continue;
			struct dns_rr *r = &rrs[n];
			memset(r, 0, sizeof(*r));
			switch (z->type) {
			case Z_A:
			case Z_AAAA:
				if (addr_parse(z->value, &r->addr) < 0)
					continue;
				break;
			case Z_MX:
			case Z_PTR:
				lower_nodot(z->value, names[n],
					    sizeof(names[n]));
				r->name = names[n];
				r->pref = (uint16_t)z->pref;
				break;
			case Z_TXT:
				r->text = z->value;
				r->text_len = z->value_len;
				break;
			default:
				continue;
			}
			n++;
		}
		if (n == 0 && cname != NULL) {
			lower_nodot(cname, name, sizeof(name));
			continue;
		}
		ans->status = n > 0 ? DNS_OK : DNS_NODATA;
		ans->count = n;
		return;
	}
	ans->status = DNS_SERVFAIL;
	ans->why = "CNAME chain too long";
}

/* ---- running ------------------------------------------------------------- */

static void print_trace(void *arg, int depth, const char *line)
{
	(void)arg;
	printf("    %*s%s\n", depth * 2, "", line);
}

static bool result_accepted(const char *results, enum spf_result r)
{
	char buf[200];
	snprintf(buf, sizeof(buf), "%s", results);
	for (char *tok = strtok(buf, ","); tok != NULL;
	     tok = strtok(NULL, ",")) {
		if (strcmp(tok, spf_result_name(r)) == 0)
			return true;
	}
	return false;
}

/* Runs one test; returns true if it passed. */
static bool run_test(const struct scenario *s, const struct test *t, bool trace)
{
	struct addr ip;
	struct spf_request rq;
	struct spf_lookup lk[SPF_MAX_STEP];
	struct dns_answer ans;
	size_t n;

	if (addr_parse(t->host, &ip) < 0) {
		printf("FAIL %s: bad host %s\n", t->name, t->host);
		return false;
	}
	spf_request_init(&rq, SPF_ID_MAILFROM, &ip, t->mailfrom, t->helo,
			 "receiver.example.org");
	/* The suite's driver sets the default explanation to "DEFAULT". */
	rq.default_explanation = "DEFAULT";
	rq.now = 1700000000;
	if (trace) {
		rq.trace = print_trace;
		rq.trace_arg = NULL;
	}
	struct spf_eval *ev = spf_eval_new(&rq);
	while ((n = spf_eval_next(ev, lk, SPF_MAX_STEP)) > 0) {
		for (size_t i = 0; i < n; i++) {
			lookup(s, lk[i].name, lk[i].type, &ans);
			spf_eval_answer(ev, lk[i].id, &ans);
		}
	}
	const struct spf_outcome *o = spf_eval_outcome(ev);
	bool ok = result_accepted(t->results, o->result);
	if (ok && t->explanation != NULL && o->result == SPF_FAIL)
		ok = o->explanation != NULL &&
		     strcmp(o->explanation, t->explanation) == 0;
	if (!ok || trace) {
		printf("%s %s [%s]: expected %s%s%s, got %s",
		       ok ? "ok" : "FAIL", t->name, s->description, t->results,
		       t->explanation ? " / " : "",
		       t->explanation ? t->explanation : "",
		       spf_result_name(o->result));
		if (o->explanation != NULL)
			printf(" / %s", o->explanation);
		if (o->problem != NULL)
			printf(" (%s)", o->problem);
		printf("\n");
	}
	spf_eval_free(ev);
	return ok;
}

int main(int argc, char **argv)
{
	bool verbose = false, informational = false;
	const char *only = NULL, *file = NULL;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-v") == 0)
			verbose = true;
		else if (strcmp(argv[i], "-i") == 0)
			informational = true;
		else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc)
			only = argv[++i];
		else
			file = argv[i];
	}
	if (file == NULL) {
		fprintf(stderr, "usage: %s [-v] [-i] [-t TEST] FILE.suite\n",
			argv[0]);
		return 2;
	}
	load(file);
	unsigned passed = 0, failed = 0;
	for (size_t i = 0; i < nscen; i++) {
		for (size_t j = 0; j < scen[i].ntests; j++) {
			const struct test *t = &scen[i].tests[j];
			if (only != NULL && strcmp(only, t->name) != 0)
				continue;
			bool ok = run_test(&scen[i], t, only != NULL);
			if (!ok && verbose && only == NULL)
				run_test(&scen[i], t, true);
			if (ok)
				passed++;
			else
				failed++;
		}
	}
	printf("%u passed, %u failed\n", passed, failed);
	/* The data lives until exit; the OS frees it. */
	return failed > 0 && !informational ? 1 : 0;
}
