/*
 * record - SPF record selection and parsing (RFC 7208 sections 4.5, 4.6,
 * 5, 6 and 7.1).
 *
 * Pure: the parser checks the whole record before anything is evaluated
 * (section 4.6: a syntax error anywhere is a permerror), so the evaluator
 * only sees valid terms. Domain-specs are kept unexpanded; their macro
 * syntax and domain-end are already checked. Unknown modifiers are checked
 * (name and macro syntax) and dropped. Parsed data lives in the caller's
 * arena.
 */
#ifndef GREYSPF_SPF_RECORD_H
#define GREYSPF_SPF_RECORD_H

#include <stdbool.h>
#include <stddef.h>

#include "spf/arena.h"
#include "spf/spf.h"
#include "util/addr.h"

/* The version tag (section 4.5), compared case-insensitively. */
#define SPF_VERSION_TAG "v=spf1"

enum spf_mech_type {
	SPF_MECH_ALL,
	SPF_MECH_INCLUDE,
	SPF_MECH_A,
	SPF_MECH_MX,
	SPF_MECH_PTR,
	SPF_MECH_IP4,
	SPF_MECH_IP6,
	SPF_MECH_EXISTS,
};

struct spf_term {
	enum spf_mech_type type;
	enum spf_result qualifier; /* result when the mechanism matches */
	const char *text;	   /* the term as written (printable ASCII) */
	/* include/exists: always set; a/mx/ptr: NULL means the current
	 * <domain>. Unexpanded macro-string. */
	const char *domain_spec;
	size_t domain_spec_len;
	int cidr4, cidr6; /* a/mx: prefix lengths (default 32 and 128) */
	struct cidr net;  /* ip4/ip6: the network */
};

struct spf_record {
	struct spf_term *terms;
	size_t nterms;
	const char *redirect; /* unexpanded domain-spec or NULL */
	size_t redirect_len;
	const char *exp; /* unexpanded domain-spec or NULL */
	size_t exp_len;
};

/* True if text (len bytes) is an SPF record: the version tag followed by a
 * space or the end (section 4.5). */
bool spf_record_is_spf(const char *text, size_t len);

/*
 * Parses a record (which starts with the version tag). Returns 0 and fills
 * *out (pointers into arena a), or -1 and writes a printable description
 * naming the 1-based column of the problem into err (errsize bytes).
 */
int spf_record_parse(const char *text, size_t len, struct spf_arena *a,
		     struct spf_record *out, char *err, size_t errsize);

/*
 * Checks a domain-spec (section 7.1): a valid macro-string (domain letters
 * only) ending in a macro-expand or in "." toplabel ["."]. Returns 0, or -1
 * with *errpos (offset) and *why.
 */
int spf_domain_spec_check(const char *s, size_t len, size_t *errpos,
			  const char **why);

/* True if a term of this type causes DNS queries (section 4.6.4). */
bool spf_mech_counts(enum spf_mech_type t);

#endif
