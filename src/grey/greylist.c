/*
 * greylist - greylisting timing rules, auto-whitelist counting and the
 * texts of a deferral, all pure functions of their arguments.
 *
 * The rules and their boundaries are stated in greylist.h. The store
 * applies the rmw functions atomically and may run them more than once
 * (Redis compare-and-set), so each run starts by writing every output.
 */
#include "grey/greylist.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

void grey_params_init(struct grey_params *p)
{
	p->delay = GREY_DELAY_DEFAULT;
	p->retry_window = GREY_RETRY_WINDOW_DEFAULT;
	p->max_age = GREY_MAX_AGE_DEFAULT;
	p->auto_whitelist = GREY_AUTO_WHITELIST_DEFAULT;
	p->awl_interval = GREY_AWL_INTERVAL_DEFAULT;
	p->learning = false;
}

int grey_params_check(const struct grey_params *p, const char **why)
{
	if (p->delay < 0 || p->retry_window < 0 || p->max_age < 0 ||
	    p->awl_interval < 0)
		*why = "times must not be negative";
	else if (p->retry_window < p->delay)
		*why = "retry_window is shorter than delay: nothing would pass";
	else if (p->max_age < p->retry_window)
		*why = "max_age is shorter than retry_window";
	else
		return 0;
	return -1;
}

const char *grey_verdict_name(enum grey_verdict v)
{
	switch (v) {
	case GREY_INITIAL:
		return "initial";
	case GREY_PENDING:
		return "pending";
	case GREY_ALLOWED:
		return "allowed";
	case GREY_TRAINING:
		return "training";
	}
	return "unknown";
}

/* Counters saturate rather than wrap: a wrapped pass count would drop a
 * whitelisted client back to zero. */
static uint32_t inc(uint32_t v)
{
	return v == UINT32_MAX ? v : v + 1;
}

/* A record is alive up to and including its expiry second (store.h: "may
 * be deleted after this time"). */
static bool expired(const struct store_rec *r, int64_t now)
{
	return r->expires < now;
}

enum store_verdict grey_triplet_rmw(void *arg, const struct store_rec *old,
				    struct store_rec *new)
{
	struct grey_triplet_op *op = arg;
	const struct grey_params *p = op->params;
	int64_t now = op->now;
	enum grey_verdict v;

	op->first_pass = false;
	op->wait_left = 0;
	op->delayed = 0;
	memset(new, 0, sizeof(*new));

	if (old != NULL && !expired(old, now) && old->passed > 0) {
		/* Passed before: allowed until unseen for max_age. */
		*new = *old;
		new->last_seen = now;
		new->count = inc(old->count);
		new->passed = inc(old->passed);
		new->expires = now + p->max_age;
		v = GREY_ALLOWED;
	} else {
		/* Start over when absent, expired, first seen "in the future"
		 * (a clock step back; postgrey corrects it the same way) or
		 * first retried after the retry window. */
		bool fresh = old == NULL || expired(old, now) ||
			     old->first_seen > now ||
			     now - old->first_seen > p->retry_window;
		int64_t first = fresh ? now : old->first_seen;
		int64_t elapsed = now - first;

		new->first_seen = first;
		new->last_seen = now;
		new->count = fresh ? 1 : inc(old->count);
		if (elapsed < p->delay) {
			v = fresh ? GREY_INITIAL : GREY_PENDING;
			new->passed = 0;
			/* The retry window runs from first_seen. */
			new->expires = first + p->retry_window;
			op->wait_left = p->delay - elapsed;
		} else {
			v = GREY_ALLOWED;
			new->passed = 1;
			new->expires = now + p->max_age;
			op->first_pass = true;
			op->delayed = elapsed;
		}
	}
	op->would_defer = grey_verdict_defers(v);
	op->verdict = p->learning ? GREY_TRAINING : v;
	op->count = new->count;
	return STORE_WRITE;
}

static void client_op_reset(struct grey_client_op *op,
			    const struct store_rec *old, struct store_rec *new)
{
	op->whitelisted = false;
	op->counted = false;
	op->passes = old != NULL && !expired(old, op->now) ? old->passed : 0;
	if (old != NULL)
		*new = *old;
	else
		memset(new, 0, sizeof(*new));
}

enum store_verdict grey_client_check_rmw(void *arg, const struct store_rec *old,
					 struct store_rec *new)
{
	struct grey_client_op *op = arg;
	const struct grey_params *p = op->params;
	int64_t now = op->now;

	client_op_reset(op, old, new);
	if (p->auto_whitelist == 0 || old == NULL || expired(old, now) ||
	    old->passed < p->auto_whitelist)
		return STORE_KEEP;
	op->whitelisted = true;
	if (old->last_seen <= now && now - old->last_seen < GREY_AWL_REFRESH)
		return STORE_KEEP;
	new->last_seen = now;
	new->expires = now + p->max_age;
	return STORE_WRITE;
}

enum store_verdict grey_client_pass_rmw(void *arg, const struct store_rec *old,
					struct store_rec *new)
{
	struct grey_client_op *op = arg;
	const struct grey_params *p = op->params;
	int64_t now = op->now;

	client_op_reset(op, old, new);
	if (p->auto_whitelist == 0)
		return STORE_KEEP;
	if (old == NULL || expired(old, now)) {
		new->first_seen = now;
		new->last_seen = now;
		new->count = 1;
		new->passed = 1;
		op->counted = true;
	} else {
		/* count = passes reported, passed = passes counted; last_seen
		 * is the time of the last counted pass. */
		new->count = inc(old->count);
		if (old->last_seen > now ||
		    now - old->last_seen >= p->awl_interval) {
			new->passed = inc(old->passed);
			new->last_seen = now;
			op->counted = true;
		}
	}
	new->expires = now + p->max_age;
	op->passes = new->passed;
	op->whitelisted = op->counted && new->passed == p->auto_whitelist;
	return STORE_WRITE;
}

/* A bounded writer that makes every byte printable ASCII. */
struct tbuf {
	char *p;
	size_t limit, n; /* limit: most bytes to write, NUL excluded */
};

static void tput(struct tbuf *t, unsigned char c)
{
	if (t->n >= t->limit)
		return;
	t->p[t->n++] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
}

static void tputs(struct tbuf *t, const char *s)
{
	for (; *s != '\0'; s++)
		tput(t, (unsigned char)*s);
}

int grey_defer_template_check(const char *tmpl)
{
	for (const unsigned char *s = (const unsigned char *)tmpl; *s; s++)
		if (*s < 0x20 || *s >= 0x7f)
			return -1;
	return 0;
}

ssize_t grey_defer_reply(const char *tmpl, int64_t wait_left,
			 const char *recipient, char *out, size_t outsize)
{
	static const char prefix[] = GREY_DEFER_ACTION " " GREY_DEFER_CODE " ";
	size_t plen = sizeof(prefix) - 1;
	struct tbuf t = {out, outsize > 0 ? outsize - 1 : 0, 0};

	/* Room for the prefix, one byte of text and the NUL. */
	if (outsize < plen + 2)
		return -1;
	if (t.limit > GREY_REPLY_MAX)
		t.limit = GREY_REPLY_MAX;
	if (tmpl == NULL)
		tmpl = GREY_DEFER_TEXT_DEFAULT;
	if (wait_left < 0)
		wait_left = 0;
	const char *domain = "";
	if (recipient != NULL) {
		const char *at = strrchr(recipient, '@');
		domain = at != NULL ? at + 1 : recipient;
	}

	tputs(&t, prefix);
	for (const char *s = tmpl; *s != '\0'; s++) {
		if (s[0] != '%' || s[1] == '\0') {
			tput(&t, (unsigned char)*s);
			continue;
		}
		char num[24];
		switch (s[1]) {
		case 's':
			snprintf(num, sizeof(num), "%" PRId64, wait_left);
			tputs(&t, num);
			s++;
			break;
		case 'r':
			tputs(&t, domain);
			s++;
			break;
		case '%':
			tput(&t, '%');
			s++;
			break;
		default:
			tput(&t, '%');
			break;
		}
	}
	/* Trailing blanks would be lost in transit anyway; a code is always
	 * followed by text. */
	while (t.n > plen && out[t.n - 1] == ' ')
		t.n--;
	if (t.n == plen)
		tputs(&t, "Greylisted");
	out[t.n] = '\0';
	return (ssize_t)t.n;
}

/* Copies s as printable ASCII without spaces or ";" (which would break
 * the header's structure), bounded by size. */
static void clean_word(const char *s, char *out, size_t size)
{
	size_t n = 0;
	for (; *s != '\0' && n + 1 < size; s++) {
		unsigned char c = (unsigned char)*s;
		out[n++] = (c <= 0x20 || c >= 0x7f || c == ';') ? '?' : (char)c;
	}
	out[n] = '\0';
}

/* Longest host name (RFC 1035 section 2.3.4, 253 in text) and version
 * (ours are like "0.1.0") put into the header; longer ones are cut, so the
 * header always fits GREY_HEADER_MAX. */
#define GREY_HEADER_HOST_MAX 254
#define GREY_HEADER_VERSION_MAX 33

ssize_t grey_header(int64_t delayed, const char *version, const char *host,
		    int64_t now, char *out, size_t outsize)
{
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed",
					   "Thu", "Fri", "Sat"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr",
					     "May", "Jun", "Jul", "Aug",
					     "Sep", "Oct", "Nov", "Dec"};
	char v[GREY_HEADER_VERSION_MAX], h[GREY_HEADER_HOST_MAX];
	struct tm tm;
	time_t tt = (time_t)now;

	if (gmtime_r(&tt, &tm) == NULL || tm.tm_wday < 0 || tm.tm_wday > 6 ||
	    tm.tm_mon < 0 || tm.tm_mon > 11)
		return -1;
	clean_word(version != NULL ? version : GREYSPF_VERSION, v, sizeof(v));
	clean_word(host != NULL && *host != '\0' ? host : "localhost", h,
		   sizeof(h));
	if (delayed < 0)
		delayed = 0;
	int n = snprintf(out, outsize,
			 GREY_HEADER_NAME ": delayed %" PRId64
					  " seconds by greyspf-%s at %s; "
					  "%s, %02d %s %04d %02d:%02d:%02d "
					  "+0000",
			 delayed, v, h, days[tm.tm_wday], tm.tm_mday,
			 months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
			 tm.tm_min, tm.tm_sec);
	if (n < 0 || (size_t)n >= outsize || n > GREY_HEADER_MAX)
		return -1;
	return n;
}
