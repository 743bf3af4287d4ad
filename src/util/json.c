/*
 * json - minimal JSON writing and flat-object reading; see json.h.
 */
#include "util/json.h"
#include "util/str.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

void json_write_string(FILE *out, const void *s, size_t len)
{
	const unsigned char *p = s;
	fputc('"', out);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];
		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	return p;
}


/* Reads a string at *pp (on the quote); bytes only: \uXXXX above 0xff is
 * refused, since we only ever write bytes. */
static int read_string(const char **pp, char *out, size_t outsize,
		       size_t *outlen)
{
	const char *p = *pp + 1;
	size_t n = 0;
	while (*p && *p != '"') {
		int c;
		if (*p == '\\') {
			p++;
			switch (*p) {
			case '"':
			case '\\':
			case '/':
				c = *p;
				break;
			case 'n':
				c = '\n';
				break;
			case 't':
				c = '\t';
				break;
			case 'r':
				c = '\r';
				break;
			case 'u': {
				int v = 0;
				for (int i = 1; i <= 4; i++) {
					int h = str_hexval(p[i]);
					if (h < 0)
						return -1;
					v = v * 16 + h;
				}
				if (v > 0xff)
					return -1;
				c = v;
				p += 4;
				break;
			}
			default:
				return -1;
			}
		} else {
			c = (unsigned char)*p;
		}
		if (n + 1 >= outsize)
			return -1;
		out[n++] = (char)c;
		p++;
	}
	if (*p != '"')
		return -1;
	out[n] = '\0';
	*outlen = n;
	*pp = p + 1;
	return 0;
}

int json_parse_object(const char *line, struct json_object *o, char *err,
		      size_t errsize)
{
	const char *p = skip_ws(line);
	o->n = 0;
	if (*p != '{') {
		snprintf(err, errsize, "expected '{'");
		return -1;
	}
	p = skip_ws(p + 1);
	if (*p == '}')
		goto end;
	for (;;) {
		if (o->n >= JSON_MEMBERS_MAX) {
			snprintf(err, errsize, "too many members");
			return -1;
		}
		struct json_member *m = &o->m[o->n];
		size_t nl;
		if (*p != '"' ||
		    read_string(&p, m->name, sizeof(m->name), &nl) != 0) {
			snprintf(err, errsize, "bad member name");
			return -1;
		}
		p = skip_ws(p);
		if (*p != ':') {
			snprintf(err, errsize, "expected ':'");
			return -1;
		}
		p = skip_ws(p + 1);
		if (*p == '"') {
			m->is_string = 1;
			if (read_string(&p, m->str, sizeof(m->str), &m->len) !=
			    0) {
				snprintf(err, errsize, "bad string for \"%s\"",
					 m->name);
				return -1;
			}
		} else if (*p == '-' || isdigit((unsigned char)*p)) {
			char *end;
			errno = 0;
			m->is_string = 0;
			m->num = strtoll(p, &end, 10);
			if (errno != 0 || end == p) {
				snprintf(err, errsize, "bad number for \"%s\"",
					 m->name);
				return -1;
			}
			p = end;
		} else {
			snprintf(err, errsize, "unsupported value for \"%s\"",
				 m->name);
			return -1;
		}
		o->n++;
		p = skip_ws(p);
		if (*p == ',') {
			p = skip_ws(p + 1);
			continue;
		}
		if (*p == '}')
			break;
		snprintf(err, errsize, "expected ',' or '}'");
		return -1;
	}
end:
	p = skip_ws(p + 1);
	if (*p != '\0') {
		snprintf(err, errsize, "trailing bytes after the object");
		return -1;
	}
	return 0;
}

const struct json_member *json_get(const struct json_object *o,
				   const char *name)
{
	for (size_t i = 0; i < o->n; i++)
		if (strcmp(o->m[i].name, name) == 0)
			return &o->m[i];
	return NULL;
}
