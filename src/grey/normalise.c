/*
 * normalise - sender and recipient forms for greylisting keys.
 *
 * The rules and their reasons are in normalise.h. The implementation works
 * on slices of the caller's bytes (no copies, no allocation) and writes the
 * result once, lower-casing and folding numbers on the way out, so that an
 * input longer than the output buffer is still handled when SRS decoding
 * shortens it.
 */
#include "grey/normalise.h"

#include <stdbool.h>
#include <string.h>

/* A bounded writer: once full, further bytes are dropped and ok is false. */
struct wbuf {
	char *p;
	size_t size, n;
	bool ok;
};

static void put(struct wbuf *w, unsigned char c)
{
	/* Keep one byte for the NUL. */
	if (w->n + 1 >= w->size) {
		w->ok = false;
		return;
	}
	w->p[w->n++] = (char)c;
}

static unsigned char lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

static void put_lower(struct wbuf *w, const unsigned char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		put(w, lower(s[i]));
}

static ssize_t finish(struct wbuf *w)
{
	if (!w->ok || w->size == 0)
		return -1;
	w->p[w->n] = '\0';
	return (ssize_t)w->n;
}

/* Perl's \w in byte semantics: what makes a \b boundary. */
static bool is_word(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* A slice of the input. */
struct slice {
	const unsigned char *p;
	size_t len;
};

static bool prefix_ieq(struct slice s, const char *pfx)
{
	size_t n = strlen(pfx);
	if (s.len < n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lower(s.p[i]) != (unsigned char)pfx[i])
			return false;
	return true;
}

/* Cuts s at the next "=": *head = before it, s = after it. False if none. */
static bool cut_eq(struct slice *s, struct slice *head)
{
	const unsigned char *eq = memchr(s->p, '=', s->len);
	if (eq == NULL)
		return false;
	head->p = s->p;
	head->len = (size_t)(eq - s->p);
	s->len -= head->len + 1;
	s->p = eq + 1;
	return true;
}

/* The SRS0 body "HHH=TT=domain=local": sets local and domain. */
static bool srs0_body(struct slice body, struct slice *local,
		      struct slice *domain)
{
	struct slice hash, ts, dom;
	if (!cut_eq(&body, &hash) || !cut_eq(&body, &ts) ||
	    !cut_eq(&body, &dom))
		return false;
	if (hash.len == 0 || ts.len == 0 || dom.len == 0 || body.len == 0)
		return false;
	*local = body;
	*domain = dom;
	return true;
}

/* SRS separators after "SRS0"/"SRS1" (the SRS paper, Shevek 2004, and
 * libsrs2/postsrsd accept "=", "+" and "-"). */
static bool is_srs_sep(unsigned char c)
{
	return c == '=' || c == '+' || c == '-';
}

/*
 * SRS0=HHH=TT=domain=local@fwd  -> local@domain
 * SRS1=HHH=fwd1==HHH=TT=domain=local@fwd2 -> local@domain
 * Leaves local and domain alone unless the whole form parses.
 */
static void srs_decode(struct slice *local, struct slice *domain)
{
	if (local->len < 5 || !is_srs_sep(local->p[4]))
		return;
	struct slice body = {local->p + 5, local->len - 5};
	if (prefix_ieq(*local, "srs0")) {
		srs0_body(body, local, domain);
		return;
	}
	if (!prefix_ieq(*local, "srs1"))
		return;
	struct slice hash, fwd;
	if (!cut_eq(&body, &hash) || !cut_eq(&body, &fwd))
		return;
	if (hash.len == 0 || fwd.len == 0 || body.len < 1 ||
	    !is_srs_sep(body.p[0]))
		return;
	body.p++;
	body.len--;
	srs0_body(body, local, domain);
}

/* BATV tag-val: 1 key digit, 3 day digits, 6 hex digits (draft-levine-
 * smtp-batv-01 section 4.1); postgrey tests ^[0-9a-z]{10}. */
static bool batv_tag(struct slice s)
{
	if (s.len < 10)
		return false;
	for (size_t i = 0; i < 10; i++) {
		unsigned char c = lower(s.p[i]);
		if (!is_digit(c) && !(c >= 'a' && c <= 'z'))
			return false;
	}
	return true;
}

static bool slice_ieq(struct slice s, const char *t)
{
	return s.len == strlen(t) && prefix_ieq(s, t);
}

/*
 * prvs=TAG=local (the draft), prvs=local=TAG (seen in the wild; postgrey
 * picks the part that does not look like a tag, the draft's order if
 * both or neither do) and local=prvs=TAG -> local.
 */
static void batv_decode(struct slice *local)
{
	struct slice rest = *local, a0, a1, a2;
	if (!cut_eq(&rest, &a0) || !cut_eq(&rest, &a1))
		return;
	if (memchr(rest.p, '=', rest.len) != NULL)
		return; /* not exactly three parts */
	a2 = rest;
	struct slice pick;
	if (slice_ieq(a0, "prvs")) {
		bool t1 = batv_tag(a1), t2 = batv_tag(a2);
		pick = (!t1 && t2) ? a1 : a2;
	} else if (slice_ieq(a1, "prvs")) {
		pick = a0;
	} else {
		return;
	}
	if (pick.len > 0)
		*local = pick;
}

/* Cuts local at its first delimiter, unless that would leave it empty. */
static void strip_extension(struct slice *local, const char *delimiters)
{
	for (size_t i = 1; i < local->len; i++) {
		if (local->p[i] != '\0' &&
		    strchr(delimiters, local->p[i]) != NULL) {
			local->len = i;
			return;
		}
	}
}

/* Writes local lower-cased with every \b\d+\b replaced by "#". */
static void put_folded(struct wbuf *w, struct slice s)
{
	size_t i = 0;
	while (i < s.len) {
		unsigned char c = s.p[i];
		if (!is_digit(c) || (i > 0 && is_word(s.p[i - 1]))) {
			put(w, lower(c));
			i++;
			continue;
		}
		size_t e = i;
		while (e < s.len && is_digit(s.p[e]))
			e++;
		if (e == s.len || !is_word(s.p[e]))
			put(w, '#');
		else
			put_lower(w, s.p + i, e - i);
		i = e;
	}
}

/* Splits at the last "@" (a domain has none; a quoted local part may).
 * False for a form we do not fold: no "@", empty or quoted local part. */
static bool split_addr(const unsigned char *in, size_t len, struct slice *local,
		       struct slice *domain)
{
	size_t at = len;
	while (at > 0 && in[at - 1] != '@')
		at--;
	if (at == 0)
		return false; /* no "@" */
	at--;
	if (at == 0 || in[0] == '"')
		return false;
	local->p = in;
	local->len = at;
	domain->p = in + at + 1;
	domain->len = len - at - 1;
	return true;
}

/* Both directions: lower case, extension stripped; a sender also has
 * SRS and BATV undone and its standalone numbers folded. */
static ssize_t normalise(const char *in, size_t len, const char *delimiters,
			 bool sender, char *out, size_t outsize)
{
	const unsigned char *u = (const unsigned char *)in;
	struct wbuf w = {out, outsize, 0, true};
	struct slice local, domain;

	if (delimiters == NULL)
		delimiters = GREY_DELIMITERS_DEFAULT;
	if (len > 0 && memchr(u, '\0', len) != NULL)
		return -1;
	if (!split_addr(u, len, &local, &domain)) {
		put_lower(&w, u, len);
		return finish(&w);
	}
	if (sender) {
		srs_decode(&local, &domain);
		batv_decode(&local);
	}
	strip_extension(&local, delimiters);
	if (sender)
		put_folded(&w, local);
	else
		put_lower(&w, local.p, local.len);
	put(&w, '@');
	put_lower(&w, domain.p, domain.len);
	return finish(&w);
}

ssize_t grey_norm_sender_d(const char *in, size_t len, const char *delimiters,
			   char *out, size_t outsize)
{
	return normalise(in, len, delimiters, true, out, outsize);
}

ssize_t grey_norm_sender(const char *in, size_t len, char *out, size_t outsize)
{
	return normalise(in, len, NULL, true, out, outsize);
}

ssize_t grey_norm_recipient(const char *in, size_t len, const char *delimiters,
			    char *out, size_t outsize)
{
	return normalise(in, len, delimiters, false, out, outsize);
}
