/*
 * str - small string helpers for configuration and protocol values.
 *
 * All functions are pure and bounded; none allocates unless it says so.
 */
#ifndef GREYSPF_UTIL_STR_H
#define GREYSPF_UTIL_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest duration accepted: 10 years, far beyond any sane greylist timer. */
#define STR_DURATION_MAX (10LL * 365 * 86400)

/*
 * Parses a duration: a non-negative integer optionally followed by one unit
 * s, m, h, d or w ("300", "5m", "2h", "2d"). Returns 0 and sets *secs, or -1.
 */
int str_parse_duration(const char *s, int64_t *secs);

/* Parses yes/no, true/false, on/off, 1/0 (case-insensitive). 0 or -1. */
int str_parse_bool(const char *s, bool *out);

/* Parses a decimal integer in [min, max]. 0 or -1. */
int str_parse_int(const char *s, long long min, long long max, long long *out);

/* ASCII lower-casing in place; returns s. */
char *str_lower(char *s);
/* ASCII case-insensitive comparison of a (length alen) with NUL-terminated b. */
bool str_ieq_n(const char *a, size_t alen, const char *b);
/* True if s ends with suffix, compared case-insensitively. */
bool str_iends_with(const char *s, const char *suffix);

/* Removes leading and trailing ASCII white space in place; returns the
 * trimmed start (inside s). */
char *str_trim(char *s);

/*
 * Iterates over a comma-separated list: copies the next trimmed, non-empty
 * item at *cursor into item (size itemsize) and advances *cursor. Returns 1
 * for an item, 0 at the end, -1 if an item does not fit.
 */
int str_list_next(const char **cursor, char *item, size_t itemsize);

/* Value of a hexadecimal digit, or -1. */
int str_hexval(int c);

/* Formats secs as the shortest exact form: "300" -> "5m", "90" -> "90s". */
char *str_format_duration(int64_t secs, char *buf, size_t bufsize);

#endif
