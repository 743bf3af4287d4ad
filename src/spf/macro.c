/*
 * macro - SPF macro-string checking and expansion; see macro.h.
 *
 * One tokenizer serves checking, the %{p} scan and expansion, so the three
 * can never disagree about what a macro-string means.
 */
#include "spf/macro.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

enum tok_kind {
	TOK_LITERAL,  /* one literal byte */
	TOK_PERCENT,  /* %% */
	TOK_SPACE,    /* %_ */
	TOK_URLSPACE, /* %- */
	TOK_MACRO,    /* %{...} */
};

struct tok {
	enum tok_kind kind;
	unsigned char c; /* TOK_LITERAL: the byte; TOK_MACRO: the letter */
	unsigned digits; /* 0: all parts */
	bool reverse;
	const char *delims; /* inside s */
	size_t ndelims;
};

static bool is_delim(unsigned char c)
{
	return c != '\0' && strchr(".-+,/_=", c) != NULL;
}

static bool letter_ok(unsigned char c, enum spf_macro_mode mode)
{
	unsigned char l = (unsigned char)(c | 0x20);
	if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) {
		if (strchr("slodipvh", l) != NULL)
			return true;
		if (mode == SPF_MACRO_EXPLAIN && strchr("crt", l) != NULL)
			return true;
	}
	return false;
}

/* Reads the token at *i. Returns 0 (advancing *i) or -1 with *errpos and *why
 * set. */
static int next_tok(const char *s, size_t len, size_t *i,
		    enum spf_macro_mode mode, struct tok *t, size_t *errpos,
		    const char **why)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t p = *i;
	unsigned char c = u[p];

	memset(t, 0, sizeof(*t));
	if (c != '%') {
		bool ok = (c >= 0x21 && c <= 0x7e) ||
			  (c == ' ' && mode == SPF_MACRO_EXPLAIN);
		if (!ok) {
			*errpos = p;
			*why = "invalid character";
			return -1;
		}
		t->kind = TOK_LITERAL;
		t->c = c;
		*i = p + 1;
		return 0;
	}
	if (p + 1 >= len) {
		*errpos = p;
		*why = "'%' at end of macro-string";
		return -1;
	}
	switch (u[p + 1]) {
	case '%':
		t->kind = TOK_PERCENT;
		*i = p + 2;
		return 0;
	case '_':
		t->kind = TOK_SPACE;
		*i = p + 2;
		return 0;
	case '-':
		t->kind = TOK_URLSPACE;
		*i = p + 2;
		return 0;
	case '{':
		break;
	default:
		*errpos = p;
		*why = "'%' not followed by '{', '%', '_' or '-'";
		return -1;
	}
	p += 2;
	if (p >= len || !letter_ok(u[p], mode)) {
		*errpos = p;
		*why = "invalid macro letter";
		return -1;
	}
	t->kind = TOK_MACRO;
	t->c = u[p++];
	if (p < len && u[p] >= '0' && u[p] <= '9') {
		unsigned long n = 0;
		size_t start = p;
		while (p < len && u[p] >= '0' && u[p] <= '9') {
			if (n < 100000)
				n = n * 10 + (unsigned long)(u[p] - '0');
			p++;
		}
		if (n == 0) {
			/* RFC 7208 section 7.3: the digit "MUST be nonzero". */
			*errpos = start;
			*why = "macro transformer digit is zero";
			return -1;
		}
		t->digits = n > SPF_MACRO_DIGITS_MAX ? SPF_MACRO_DIGITS_MAX
						     : (unsigned)n;
	}
	if (p < len && (u[p] == 'r' || u[p] == 'R')) {
		t->reverse = true;
		p++;
	}
	t->delims = s + p;
	while (p < len && is_delim(u[p]))
		p++;
	t->ndelims = (size_t)(s + p - t->delims);
	if (p >= len || u[p] != '}') {
		*errpos = p;
		*why = "unterminated or malformed macro";
		return -1;
	}
	*i = p + 1;
	return 0;
}

int spf_macro_check(const char *s, size_t len, enum spf_macro_mode mode,
		    size_t *errpos, const char **why)
{
	size_t i = 0;
	struct tok t;
	size_t ep;
	const char *w;

	if (errpos == NULL)
		errpos = &ep;
	if (why == NULL)
		why = &w;
	while (i < len) {
		if (next_tok(s, len, &i, mode, &t, errpos, why) < 0)
			return -1;
	}
	return 0;
}

bool spf_macro_uses_p(const char *s, size_t len)
{
	size_t i = 0, ep;
	const char *why;
	struct tok t;

	while (i < len) {
		if (next_tok(s, len, &i, SPF_MACRO_EXPLAIN, &t, &ep, &why) < 0)
			return false;
		if (t.kind == TOK_MACRO && (t.c | 0x20) == 'p')
			return true;
	}
	return false;
}

/* Bounded output buffer; overflow is sticky. */
struct out {
	char *buf;
	size_t size; /* usable bytes, excluding the NUL */
	size_t len;
	bool overflow;
};

static void put(struct out *o, unsigned char c)
{
	if (o->len >= o->size) {
		o->overflow = true;
		return;
	}
	o->buf[o->len++] = (char)c;
}

static void put_str(struct out *o, const char *s)
{
	while (*s != '\0')
		put(o, (unsigned char)*s++);
}

/* RFC 3986 unreserved characters, which URL escaping leaves alone. */
static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	       c == '~';
}

static void put_part_byte(struct out *o, unsigned char c, bool url)
{
	static const char hex[] = "0123456789ABCDEF";
	if (url && !unreserved(c)) {
		put(o, '%');
		put(o, (unsigned char)hex[c >> 4]);
		put(o, (unsigned char)hex[c & 15]);
	} else {
		put(o, c);
	}
}

static bool in_delims(unsigned char c, const struct tok *t)
{
	if (t->ndelims == 0)
		return c == '.';
	return memchr(t->delims, c, t->ndelims) != NULL;
}

/* Splits value on the token's delimiters, optionally reverses, keeps the
 * right-most digits parts and joins them with '.' (section 7.3). */
static void put_transformed(struct out *o, const char *value,
			    const struct tok *t, bool url)
{
	const unsigned char *v = (const unsigned char *)value;
	size_t vlen = strlen(value);
	size_t k = 1;
	for (size_t i = 0; i < vlen; i++)
		if (in_delims(v[i], t))
			k++;
	size_t n = (t->digits == 0 || t->digits > k) ? k : t->digits;

	if (!t->reverse) {
		/* Keep parts k-n .. k-1 in order. */
		size_t skip = k - n, i = 0;
		while (skip > 0 && i < vlen) {
			if (in_delims(v[i], t))
				skip--;
			i++;
		}
		for (; i < vlen && !o->overflow; i++)
			put_part_byte(o, in_delims(v[i], t) ? '.' : v[i], url);
		return;
	}
	/* Reversed list p(k-1)..p0; its right-most n parts are p(n-1)..p0. */
	size_t end = 0, seen = 0;
	while (end < vlen) {
		if (in_delims(v[end], t) && ++seen == n)
			break;
		end++;
	}
	for (;;) {
		size_t start = end;
		while (start > 0 && !in_delims(v[start - 1], t))
			start--;
		for (size_t i = start; i < end && !o->overflow; i++)
			put_part_byte(o, v[i], url);
		if (start == 0 || o->overflow)
			break;
		put(o, '.');
		end = start - 1;
	}
}

static void format_ip_dotted(const struct addr *ip, char *buf, size_t size)
{
	if (ip->family == AF_INET) {
		snprintf(buf, size, "%u.%u.%u.%u", ip->b[0], ip->b[1], ip->b[2],
			 ip->b[3]);
		return;
	}
	static const char hex[] = "0123456789ABCDEF";
	size_t j = 0;
	for (int i = 0; i < 16 && j + 4 <= size; i++) {
		buf[j++] = hex[ip->b[i] >> 4];
		buf[j++] = '.';
		buf[j++] = hex[ip->b[i] & 15];
		buf[j++] = '.';
	}
	buf[j > 0 ? j - 1 : 0] = '\0';
}

int spf_macro_expand(const char *s, size_t len, enum spf_macro_mode mode,
		     const struct spf_macro_ctx *ctx, char *out, size_t outsize,
		     size_t *outlen)
{
	struct out o = {out, outsize > 0 ? outsize - 1 : 0, 0, false};
	size_t i = 0, ep;
	const char *why;
	struct tok t;
	char tmp[80];

	if (outlen != NULL)
		*outlen = 0;
	if (outsize == 0)
		return -1;
	out[0] = '\0';
	while (i < len && !o.overflow) {
		if (next_tok(s, len, &i, mode, &t, &ep, &why) < 0) {
			out[0] = '\0';
			return -1;
		}
		switch (t.kind) {
		case TOK_LITERAL:
			put(&o, t.c);
			continue;
		case TOK_PERCENT:
			put(&o, '%');
			continue;
		case TOK_SPACE:
			put(&o, ' ');
			continue;
		case TOK_URLSPACE:
			put_str(&o, "%20");
			continue;
		case TOK_MACRO:
			break;
		}
		const char *value = "";
		switch (t.c | 0x20) {
		case 's':
			value = ctx->sender;
			break;
		case 'l':
			value = ctx->local;
			break;
		case 'o':
			value = ctx->sender_domain;
			break;
		case 'd':
			value = ctx->domain;
			break;
		case 'i':
			format_ip_dotted(ctx->ip, tmp, sizeof(tmp));
			value = tmp;
			break;
		case 'c':
			if (ctx->ip->family == AF_INET)
				format_ip_dotted(ctx->ip, tmp, sizeof(tmp));
			else if (inet_ntop(AF_INET6, ctx->ip->b, tmp,
					   sizeof(tmp)) == NULL)
				tmp[0] = '\0';
			value = tmp;
			break;
		case 'p':
			value = ctx->ptr_name;
			break;
		case 'v':
			value = ctx->ip->family == AF_INET ? "in-addr" : "ip6";
			break;
		case 'h':
			value = ctx->helo;
			break;
		case 'r':
			value = ctx->receiver;
			break;
		case 't':
			snprintf(tmp, sizeof(tmp), "%lld", ctx->now);
			value = tmp;
			break;
		}
		bool url = t.c >= 'A' && t.c <= 'Z';
		put_transformed(&o, value, &t, url);
	}
	if (o.overflow) {
		out[0] = '\0';
		return -1;
	}
	out[o.len] = '\0';
	if (outlen != NULL)
		*outlen = o.len;
	return 0;
}

char *spf_macro_domain_finish(char *s, size_t *len)
{
	size_t n = *len;
	if (n > 0 && s[n - 1] == '.')
		s[--n] = '\0';
	while (n > SPF_DOMAIN_MAX) {
		char *dot = memchr(s, '.', n);
		if (dot == NULL)
			break; /* one over-long label: the name check rejects it
				*/
		n -= (size_t)(dot + 1 - s);
		s = dot + 1;
	}
	*len = n;
	return s;
}
