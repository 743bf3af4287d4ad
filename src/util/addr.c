/*
 * addr - IPv4/IPv6 addresses and CIDR networks; see addr.h.
 */
#include "util/addr.h"
#include "util/xalloc.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int addr_parsen(const char *s, size_t len, struct addr *out)
{
	char buf[ADDR_STRLEN + 1];

	if (len == 0 || len > ADDR_STRLEN)
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (memchr(buf, '\0', len) != NULL)
		return -1;
	memset(out, 0, sizeof(*out));
	if (memchr(buf, ':', len) == NULL) {
		if (inet_pton(AF_INET, buf, out->b) != 1)
			return -1;
		out->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, buf, out->b) != 1)
		return -1;
	out->family = AF_INET6;
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	if (memcmp(out->b, mapped, sizeof(mapped)) == 0) {
		memmove(out->b, out->b + 12, 4);
		memset(out->b + 4, 0, 12);
		out->family = AF_INET;
	}
	return 0;
}

int addr_parse(const char *s, struct addr *out)
{
	return addr_parsen(s, strlen(s), out);
}

char *addr_format(const struct addr *a, char *buf, size_t bufsize)
{
	if (inet_ntop(a->family, a->b, buf, (socklen_t)bufsize) == NULL) {
		if (bufsize > 0)
			buf[0] = '\0';
	}
	return buf;
}

int addr_bits(const struct addr *a)
{
	return a->family == AF_INET ? 32 : 128;
}

void addr_mask(struct addr *a, int prefix)
{
	int bits = addr_bits(a);
	if (prefix < 0)
		prefix = 0;
	if (prefix >= bits)
		return;
	int byte = prefix / 8;
	int rem = prefix % 8;
	if (rem) {
		a->b[byte] &= (uint8_t)(0xff << (8 - rem));
		byte++;
	}
	memset(a->b + byte, 0, (size_t)(16 - byte));
}

bool addr_match_prefix(const struct addr *a, const struct addr *b, int prefix)
{
	if (a->family != b->family)
		return false;
	int bits = addr_bits(a);
	if (prefix > bits)
		prefix = bits;
	if (prefix < 0)
		prefix = 0;
	int full = prefix / 8;
	if (memcmp(a->b, b->b, (size_t)full) != 0)
		return false;
	int rem = prefix % 8;
	if (rem == 0)
		return true;
	uint8_t m = (uint8_t)(0xff << (8 - rem));
	return (a->b[full] & m) == (b->b[full] & m);
}

bool addr_equal(const struct addr *a, const struct addr *b)
{
	return a->family == b->family &&
	       memcmp(a->b, b->b, (size_t)addr_bits(a) / 8) == 0;
}

static int parse_prefix(const char *s, int max)
{
	if (*s == '\0' || strlen(s) > 3)
		return -1;
	int v = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
	}
	/* A leading zero ("/024") is accepted: it is unambiguous. */
	return v <= max ? v : -1;
}

/* "10.1" -> 10.1.0.0/16, "10.1." likewise (postgrey whitelist syntax). */
static int parse_partial_v4(const char *s, struct cidr *out)
{
	int octets = 0;
	uint8_t b[4] = {0};
	const char *p = s;

	while (*p && octets < 4) {
		int v = 0, digits = 0;
		while (*p >= '0' && *p <= '9' && digits < 4) {
			v = v * 10 + (*p - '0');
			p++;
			digits++;
		}
		if (digits == 0 || digits > 3 || v > 255)
			return -1;
		b[octets++] = (uint8_t)v;
		if (*p == '.')
			p++;
		else if (*p != '\0')
			return -1;
	}
	if (*p != '\0' || octets == 0)
		return -1;
	memset(out, 0, sizeof(*out));
	out->net.family = AF_INET;
	memcpy(out->net.b, b, 4);
	out->prefix = octets * 8;
	return 0;
}

int cidr_parse(const char *s, struct cidr *out, bool allow_partial)
{
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);

	if (addr_parsen(s, alen, &out->net) != 0) {
		if (allow_partial && slash == NULL)
			return parse_partial_v4(s, out);
		return -1;
	}
	int bits = addr_bits(&out->net);
	if (slash) {
		int p = parse_prefix(slash + 1, bits);
		/* An IPv4-mapped network: /128 style prefix on a v4 address. */
		if (p < 0 && out->net.family == AF_INET &&
		    memchr(s, ':', alen) != NULL) {
			p = parse_prefix(slash + 1, 128);
			if (p >= 96)
				p -= 96;
			else
				p = -1;
		} else if (p >= 0 && out->net.family == AF_INET &&
			   memchr(s, ':', alen) != NULL) {
			p = p >= 96 ? p - 96 : -1;
		}
		if (p < 0)
			return -1;
		out->prefix = p;
	} else {
		out->prefix = bits;
	}
	addr_mask(&out->net, out->prefix);
	return 0;
}

bool cidr_match(const struct cidr *c, const struct addr *a)
{
	return addr_match_prefix(&c->net, a, c->prefix);
}

char *cidr_format(const struct cidr *c, char *buf, size_t bufsize)
{
	char a[ADDR_STRLEN];
	addr_format(&c->net, a, sizeof(a));
	snprintf(buf, bufsize, "%s/%d", a, c->prefix);
	return buf;
}

void cidr_list_add(struct cidr_list *l, const struct cidr *c)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 8;
		l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
	}
	l->v[l->n++] = *c;
}

bool cidr_list_match(const struct cidr_list *l, const struct addr *a)
{
	for (size_t i = 0; i < l->n; i++)
		if (cidr_match(&l->v[i], a))
			return true;
	return false;
}

void cidr_list_free(struct cidr_list *l)
{
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}
