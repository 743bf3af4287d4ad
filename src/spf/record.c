/*
 * record - SPF record selection and parsing; see record.h.
 *
 * The grammar is RFC 7208 section 12 (ABNF, case-insensitive literals).
 * A term is a modifier when it starts with a name followed by '='
 * (section 4.6.1); anything else is a mechanism, whose name must be one of
 * the eight known ones. Errors name the 1-based column within the record.
 */
#include "spf/record.h"
#include "spf/macro.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* Longest piece of a bad term quoted in an error message; our choice. */
#define RECORD_ERR_QUOTE 40

static bool is_alpha(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alnum(unsigned char c)
{
	return is_alpha(c) || is_digit(c);
}

bool spf_record_is_spf(const char *text, size_t len)
{
	size_t tl = sizeof(SPF_VERSION_TAG) - 1;
	if (len < tl || strncasecmp(text, SPF_VERSION_TAG, tl) != 0)
		return false;
	return len == tl || text[tl] == ' ';
}

bool spf_mech_counts(enum spf_mech_type t)
{
	switch (t) {
	case SPF_MECH_INCLUDE:
	case SPF_MECH_A:
	case SPF_MECH_MX:
	case SPF_MECH_PTR:
	case SPF_MECH_EXISTS:
		return true;
	default:
		return false;
	}
}

/* toplabel = ( *alphanum ALPHA *alphanum ) /
 *            ( 1*alphanum "-" *( alphanum / "-" ) alphanum ) */
static bool toplabel_ok(const unsigned char *s, size_t n)
{
	bool alpha = false, dash = false;
	if (n == 0 || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (is_alpha(s[i]))
			alpha = true;
		else if (s[i] == '-')
			dash = true;
		else if (!is_digit(s[i]))
			return false;
	}
	return alpha || dash;
}

int spf_domain_spec_check(const char *s, size_t len, size_t *errpos,
			  const char **why)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t ep;
	const char *w;

	if (errpos == NULL)
		errpos = &ep;
	if (why == NULL)
		why = &w;
	if (len == 0) {
		*errpos = 0;
		*why = "empty domain-spec";
		return -1;
	}
	if (spf_macro_check(s, len, SPF_MACRO_DOMAIN, errpos, why) < 0)
		return -1;
	/* Find the trailing run of literal bytes (after the last '%' token). */
	size_t lit = 0;
	for (size_t i = 0; i < len;) {
		if (u[i] == '%') {
			if (u[i + 1] == '{') {
				const unsigned char *close =
				    memchr(u + i, '}', len - i);
				i = (size_t)(close - u) + 1;
			} else {
				i += 2;
			}
			lit = i;
		} else {
			i++;
		}
	}
	if (lit == len)
		return 0; /* domain-end = macro-expand */
	size_t end = len;
	if (u[end - 1] == '.')
		end--;
	size_t dot = end;
	while (dot > lit && u[dot - 1] != '.')
		dot--;
	if (dot == lit || !toplabel_ok(u + dot, end - dot)) {
		*errpos = dot == lit ? lit : dot;
		*why = "domain-spec must end in a macro or a valid top label";
		return -1;
	}
	return 0;
}

static void quote_term(const char *t, size_t n, char *buf, size_t size)
{
	size_t j = 0;
	for (size_t i = 0; i < n && i < RECORD_ERR_QUOTE && j + 1 < size; i++) {
		unsigned char c = (unsigned char)t[i];
		buf[j++] = (c >= 0x20 && c <= 0x7e) ? (char)c : '?';
	}
	if (n > RECORD_ERR_QUOTE && j + 4 < size) {
		memcpy(buf + j, "...", 3);
		j += 3;
	}
	buf[j] = '\0';
}

/* Parses a cidr length: "0" or a number without leading zero, <= max. */
static int parse_prefix(const unsigned char *s, size_t n, int max, int *out)
{
	if (n == 0 || n > 3 || (n > 1 && s[0] == '0'))
		return -1;
	int v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

/*
 * Splits a trailing dual-cidr-length off s (n bytes): sets *dom_end to the
 * length before it and the prefixes. Returns -1 on a malformed length.
 */
static int split_dual_cidr(const unsigned char *s, size_t n, size_t *dom_end,
			   int *c4, int *c6)
{
	size_t e = n, k = n;
	while (k > 0 && is_digit(s[k - 1]))
		k--;
	if (k < e && k >= 2 && s[k - 1] == '/' && s[k - 2] == '/') {
		if (parse_prefix(s + k, e - k, 128, c6) < 0)
			return -1;
		e = k - 2;
		k = e;
		while (k > 0 && is_digit(s[k - 1]))
			k--;
	}
	if (k < e && k >= 1 && s[k - 1] == '/') {
		if (parse_prefix(s + k, e - k, 32, c4) < 0)
			return -1;
		e = k - 1;
	}
	*dom_end = e;
	return 0;
}

struct mech_name {
	const char *name;
	enum spf_mech_type type;
};

static const struct mech_name mech_names[] = {
    {"all", SPF_MECH_ALL}, {"include", SPF_MECH_INCLUDE}, {"a", SPF_MECH_A},
    {"mx", SPF_MECH_MX},   {"ptr", SPF_MECH_PTR},	  {"ip4", SPF_MECH_IP4},
    {"ip6", SPF_MECH_IP6}, {"exists", SPF_MECH_EXISTS},
};

struct parse {
	const char *rec;
	struct spf_arena *a;
	char *err;
	size_t errsize;
	struct spf_term *terms;
	size_t nterms, cap;
	struct spf_record *out;
};

static int perr(struct parse *p, size_t col, const char *why, const char *t,
		size_t tn)
{
	char q[RECORD_ERR_QUOTE + 8];
	quote_term(t, tn, q, sizeof(q));
	snprintf(p->err, p->errsize, "column %zu: %s in '%s'", col + 1, why, q);
	return -1;
}

static int parse_modifier(struct parse *p, const char *t, size_t n,
			  size_t namelen, size_t col)
{
	const char *val = t + namelen + 1;
	size_t vlen = n - namelen - 1;
	size_t ep;
	const char *why;

	bool redirect = namelen == 8 && strncasecmp(t, "redirect", 8) == 0;
	bool exp = namelen == 3 && strncasecmp(t, "exp", 3) == 0;
	if (!redirect && !exp) {
		/* unknown-modifier = name "=" macro-string: checked, ignored
		 * (section 6). */
		if (spf_macro_check(val, vlen, SPF_MACRO_EXPLAIN, &ep, &why) <
		    0)
			return perr(p, col + namelen + 1 + ep, why, t, n);
		return 0;
	}
	if ((redirect && p->out->redirect != NULL) ||
	    (exp && p->out->exp != NULL))
		return perr(p, col,
			    redirect ? "duplicate redirect modifier"
				     : "duplicate exp modifier",
			    t, n);
	if (spf_domain_spec_check(val, vlen, &ep, &why) < 0)
		return perr(p, col + namelen + 1 + ep, why, t, n);
	const char *copy = spf_arena_strndup(p->a, val, vlen);
	if (redirect) {
		p->out->redirect = copy;
		p->out->redirect_len = vlen;
	} else {
		p->out->exp = copy;
		p->out->exp_len = vlen;
	}
	return 0;
}

static int parse_ipnet(struct parse *p, struct spf_term *tm, const char *t,
		       size_t n, size_t rest, size_t col)
{
	const unsigned char *u = (const unsigned char *)t;
	bool v4 = tm->type == SPF_MECH_IP4;
	if (rest >= n || u[rest] != ':')
		return perr(p, col + rest, "missing network", t, n);
	size_t a0 = rest + 1, a1 = a0;
	while (a1 < n && u[a1] != '/')
		a1++;
	char buf[ADDR_STRLEN + 1];
	size_t alen = a1 - a0;
	struct addr ad;
	memset(&ad, 0, sizeof(ad));
	bool ok = alen > 0 && alen <= ADDR_STRLEN;
	if (ok) {
		memcpy(buf, t + a0, alen);
		buf[alen] = '\0';
		ok = memchr(buf, '\0', alen) == NULL;
	}
	if (ok && v4) {
		ok = inet_pton(AF_INET, buf, ad.b) == 1;
		ad.family = AF_INET;
	} else if (ok) {
		/* Not addr_parse(): an IPv4-mapped ip6 network must stay IPv6
		 * (only ip4 matches IPv4 clients, section 5). */
		ok = inet_pton(AF_INET6, buf, ad.b) == 1;
		ad.family = AF_INET6;
	}
	if (!ok)
		return perr(
		    p, col + a0,
		    v4 ? "invalid IPv4 network" : "invalid IPv6 network", t, n);
	int prefix = v4 ? 32 : 128;
	if (a1 < n &&
	    parse_prefix(u + a1 + 1, n - a1 - 1, v4 ? 32 : 128, &prefix) < 0)
		return perr(p, col + a1, "invalid prefix length", t, n);
	tm->net.net = ad;
	tm->net.prefix = prefix;
	addr_mask(&tm->net.net, prefix);
	return 0;
}

static int parse_mechanism(struct parse *p, struct spf_term *tm, const char *t,
			   size_t n, size_t col)
{
	const unsigned char *u = (const unsigned char *)t;
	size_t i = 0;
	size_t ep;
	const char *why;

	tm->qualifier = SPF_PASS;
	switch (u[0]) {
	case '+':
		i = 1;
		break;
	case '-':
		tm->qualifier = SPF_FAIL;
		i = 1;
		break;
	case '~':
		tm->qualifier = SPF_SOFTFAIL;
		i = 1;
		break;
	case '?':
		tm->qualifier = SPF_NEUTRAL;
		i = 1;
		break;
	}
	size_t name0 = i;
	while (i < n && is_alnum(u[i]))
		i++;
	size_t nl = i - name0;
	const struct mech_name *m = NULL;
	for (size_t k = 0; k < sizeof(mech_names) / sizeof(mech_names[0]); k++)
		if (strlen(mech_names[k].name) == nl &&
		    strncasecmp(mech_names[k].name, t + name0, nl) == 0)
			m = &mech_names[k];
	if (m == NULL)
		return perr(p, col + name0, "unknown mechanism", t, n);
	tm->type = m->type;
	tm->cidr4 = 32;
	tm->cidr6 = 128;
	size_t rest = i;
	switch (m->type) {
	case SPF_MECH_ALL:
		if (rest != n)
			return perr(p, col + rest, "unexpected text after all",
				    t, n);
		return 0;
	case SPF_MECH_IP4:
	case SPF_MECH_IP6:
		return parse_ipnet(p, tm, t, n, rest, col);
	case SPF_MECH_INCLUDE:
	case SPF_MECH_EXISTS:
	case SPF_MECH_PTR:
		if (rest == n && m->type == SPF_MECH_PTR)
			return 0;
		if (rest == n || u[rest] != ':')
			return perr(p, col + rest, "expected ':' domain-spec",
				    t, n);
		if (spf_domain_spec_check(t + rest + 1, n - rest - 1, &ep,
					  &why) < 0)
			return perr(p, col + rest + 1 + ep, why, t, n);
		tm->domain_spec = t + rest + 1;
		tm->domain_spec_len = n - rest - 1;
		return 0;
	case SPF_MECH_A:
	case SPF_MECH_MX:
		break;
	}
	if (rest == n)
		return 0;
	size_t dom_end;
	if (u[rest] == '/') {
		if (split_dual_cidr(u + rest, n - rest, &dom_end, &tm->cidr4,
				    &tm->cidr6) < 0 ||
		    dom_end != 0)
			return perr(p, col + rest, "invalid cidr length", t, n);
		return 0;
	}
	if (u[rest] != ':')
		return perr(p, col + rest, "unexpected character", t, n);
	const unsigned char *d = u + rest + 1;
	size_t dn = n - rest - 1;
	if (split_dual_cidr(d, dn, &dom_end, &tm->cidr4, &tm->cidr6) < 0)
		return perr(p, col + rest, "invalid cidr length", t, n);
	if (spf_domain_spec_check((const char *)d, dom_end, &ep, &why) < 0)
		return perr(p, col + rest + 1 + ep, why, t, n);
	tm->domain_spec = (const char *)d;
	tm->domain_spec_len = dom_end;
	return 0;
}

static int parse_term(struct parse *p, const char *t, size_t n, size_t col)
{
	const unsigned char *u = (const unsigned char *)t;

	if (is_alpha(u[0])) {
		size_t j = 1;
		while (j < n && (is_alnum(u[j]) || u[j] == '-' || u[j] == '_' ||
				 u[j] == '.'))
			j++;
		if (j < n && u[j] == '=')
			return parse_modifier(p, t, n, j, col);
	}
	if (p->nterms == p->cap) {
		size_t ncap = p->cap ? p->cap * 2 : 16;
		struct spf_term *nt = spf_arena_calloc(p->a, ncap, sizeof(*nt));
		if (p->nterms > 0)
			memcpy(nt, p->terms, p->nterms * sizeof(*nt));
		p->terms = nt;
		p->cap = ncap;
	}
	struct spf_term *tm = &p->terms[p->nterms];
	memset(tm, 0, sizeof(*tm));
	if (parse_mechanism(p, tm, t, n, col) < 0)
		return -1;
	/* Point into an arena copy of the term so the caller's text may go. */
	char *copy = spf_arena_strndup(p->a, t, n);
	if (tm->domain_spec != NULL)
		tm->domain_spec = copy + (tm->domain_spec - t);
	tm->text = copy;
	p->nterms++;
	return 0;
}

int spf_record_parse(const char *text, size_t len, struct spf_arena *a,
		     struct spf_record *out, char *err, size_t errsize)
{
	struct parse p = {text, a, err, errsize, NULL, 0, 0, out};
	size_t tl = sizeof(SPF_VERSION_TAG) - 1;

	memset(out, 0, sizeof(*out));
	if (!spf_record_is_spf(text, len)) {
		snprintf(err, errsize, "column 1: not an SPF record");
		return -1;
	}
	for (size_t i = tl; i < len;) {
		if (text[i] == ' ') {
			i++;
			continue;
		}
		size_t start = i;
		while (i < len && text[i] != ' ')
			i++;
		if (parse_term(&p, text + start, i - start, start) < 0)
			return -1;
	}
	out->terms = p.terms;
	out->nterms = p.nterms;
	return 0;
}
