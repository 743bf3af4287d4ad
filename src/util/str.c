/*
 * str - small string helpers; see str.h.
 */
#include "util/str.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int str_parse_duration(const char *s, int64_t *secs)
{
	char *end;
	long long mult = 1;

	while (isspace((unsigned char)*s))
		s++;
	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno != 0)
		return -1;
	while (isspace((unsigned char)*end))
		end++;
	switch (tolower((unsigned char)*end)) {
	case '\0':
		break;
	case 's':
		end++;
		break;
	case 'm':
		mult = 60;
		end++;
		break;
	case 'h':
		mult = 3600;
		end++;
		break;
	case 'd':
		mult = 86400;
		end++;
		break;
	case 'w':
		mult = 7 * 86400;
		end++;
		break;
	default:
		return -1;
	}
	while (isspace((unsigned char)*end))
		end++;
	if (*end != '\0' || v > STR_DURATION_MAX / mult)
		return -1;
	*secs = v * mult;
	return 0;
}

int str_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

int str_parse_int(const char *s, long long min, long long max, long long *out)
{
	char *end;
	while (isspace((unsigned char)*s))
		s++;
	if (*s == '\0')
		return -1;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	while (isspace((unsigned char)*end))
		end++;
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

char *str_lower(char *s)
{
	for (char *p = s; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return s;
}

bool str_ieq_n(const char *a, size_t alen, const char *b)
{
	return strlen(b) == alen && strncasecmp(a, b, alen) == 0;
}

bool str_iends_with(const char *s, const char *suffix)
{
	size_t sl = strlen(s), xl = strlen(suffix);
	return xl <= sl && strcasecmp(s + sl - xl, suffix) == 0;
}

char *str_trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

int str_list_next(const char **cursor, char *item, size_t itemsize)
{
	const char *p = *cursor;
	for (;;) {
		while (*p == ',' || isspace((unsigned char)*p))
			p++;
		if (*p == '\0') {
			*cursor = p;
			return 0;
		}
		const char *start = p;
		while (*p && *p != ',')
			p++;
		const char *end = p;
		while (end > start && isspace((unsigned char)end[-1]))
			end--;
		*cursor = p;
		size_t n = (size_t)(end - start);
		if (n == 0)
			continue;
		if (n >= itemsize)
			return -1;
		memcpy(item, start, n);
		item[n] = '\0';
		return 1;
	}
}

char *str_format_duration(int64_t secs, char *buf, size_t bufsize)
{
	static const struct {
		int64_t mult;
		char unit;
	} units[] = {{7 * 86400, 'w'}, {86400, 'd'}, {3600, 'h'}, {60, 'm'}};
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (secs > 0 && secs % units[i].mult == 0) {
			snprintf(buf, bufsize, "%lld%c",
				 (long long)(secs / units[i].mult),
				 units[i].unit);
			return buf;
		}
	}
	snprintf(buf, bufsize, "%llds", (long long)secs);
	return buf;
}

int str_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}
