/*
 * json - the little JSON greyspf needs: escaping strings for output, and
 * reading one flat object per line (string and integer members only), as
 * used by `greyspf db dump/load` and `greyspf check --json`.
 *
 * Reading is bounded and never trusts its input: any syntax it does not
 * know is an error, returned, not logged.
 */
#ifndef GREYSPF_UTIL_JSON_H
#define GREYSPF_UTIL_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Most members of one flat object we read. */
#define JSON_MEMBERS_MAX 16
/* Longest member name or string value we read. */
#define JSON_STRING_MAX 1024

/* Writes s[0..len) as a JSON string with quotes; bytes >= 0x80 and
 * controls as \u00XX so the output is ASCII whatever the input. */
void json_write_string(FILE *out, const void *s, size_t len);

struct json_member {
	char name[64];
	int is_string;
	char str[JSON_STRING_MAX];
	size_t len; /* of str; strings may hold NUL via \u0000 */
	long long num;
};

struct json_object {
	struct json_member m[JSON_MEMBERS_MAX];
	size_t n;
};

/* Parses one object from line. 0, or -1 with a reason in err. */
int json_parse_object(const char *line, struct json_object *out, char *err,
		      size_t errsize);

/* The member called name, or NULL. */
const struct json_member *json_get(const struct json_object *o,
				   const char *name);

#endif
