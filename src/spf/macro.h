/*
 * macro - SPF macro-string checking and expansion (RFC 7208 section 7).
 *
 * Pure functions: no DNS, no clock, no allocation. The caller supplies the
 * values of the macro letters (struct spf_macro_ctx) and an output buffer.
 * %{p} needs the validated domain name of the client, which takes DNS
 * lookups: the evaluator resolves it first (see spf_macro_uses_p()) and
 * passes the result in ctx->ptr_name.
 *
 * Two grammars: a domain-spec (mechanism and modifier targets) may use the
 * letters s l o d i p v h; explanation text (the TXT record named by exp=)
 * may also use c r t and literal spaces.
 */
#ifndef GREYSPF_SPF_MACRO_H
#define GREYSPF_SPF_MACRO_H

#include <stdbool.h>
#include <stddef.h>

#include "util/addr.h"

/* RFC 7208 section 7.3: an expanded domain name longer than 253 octets is
 * shortened from the left. */
#define SPF_DOMAIN_MAX 253
/* Longest expansion we produce before truncation; our choice: far beyond
 * any legitimate name or explanation, and a bound on the work an attacker's
 * record can cause. Longer expansions fail (treated as a syntax problem). */
#define SPF_MACRO_MAX 4096
/* Largest right-hand part count honoured in a transformer; larger numbers
 * mean "all parts" anyway (a domain has at most 127 labels). */
#define SPF_MACRO_DIGITS_MAX 128

enum spf_macro_mode {
	SPF_MACRO_DOMAIN,  /* domain-spec: letters slodipvh */
	SPF_MACRO_EXPLAIN, /* explain-string: also c r t, and spaces */
};

/* Values of the macro letters. Every string must be non-NULL. */
struct spf_macro_ctx {
	const char *sender;	   /* s: <sender> (local@domain) */
	const char *local;	   /* l: local part of <sender> */
	const char *sender_domain; /* o: domain of <sender> */
	const char *domain;	   /* d: current <domain> */
	const struct addr *ip;	   /* i, c, v */
	const char *helo;	   /* h: HELO/EHLO domain */
	const char *ptr_name;	   /* p: validated name, or "unknown" */
	const char *receiver;	   /* r: receiving host, or "unknown" */
	long long now;		   /* t: seconds since the epoch */
};

/*
 * Checks that s (len bytes) is a valid macro-string for mode. Returns 0, or
 * -1 and sets *errpos to the offset of the offending byte and *why to a
 * static description.
 */
int spf_macro_check(const char *s, size_t len, enum spf_macro_mode mode,
		    size_t *errpos, const char **why);

/* True if the (checked) macro-string uses the p letter. */
bool spf_macro_uses_p(const char *s, size_t len);

/*
 * Expands s (len bytes) into out (outsize bytes, NUL-terminated) and sets
 * *outlen. Upper-case letters are URL-escaped (section 7.3). IPv6 %{i} is
 * dot-separated nibbles (upper-case hex, as the reference implementation
 * and the RFC 7208 test suite print them; DNS does not care). Returns 0, or
 * -1 if s is not a valid macro-string for mode or the result does not fit
 * (out is then "" and *outlen 0).
 */
int spf_macro_expand(const char *s, size_t len, enum spf_macro_mode mode,
		     const struct spf_macro_ctx *ctx, char *out, size_t outsize,
		     size_t *outlen);

/*
 * Prepares an expanded domain for a query (section 7.3): removes one
 * trailing dot, then drops labels from the left until at most
 * SPF_DOMAIN_MAX octets remain. Returns the start of the result inside s
 * (s is modified in place) and updates *len.
 */
char *spf_macro_domain_finish(char *s, size_t *len);

#endif
