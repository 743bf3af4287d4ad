/* Robustness of the policy codec on hostile input: seeded random byte
 * streams (attribute-like lines, junk, NULs, overlong lines, missing
 * terminators), cut at random points, go through the same frame/parse loop
 * as the server. Nothing may crash (ASan/UBSan in CI), framing must never
 * claim more bytes than it was given, and every request it accepts must
 * parse back to values without NUL or LF. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy/policy.h"

/* Streams per run and their largest size: enough to cover every branch in
 * well under a second. */
#define ROBUST_STREAMS 4000
#define ROBUST_STREAM_MAX (POLICY_REQUEST_MAX + 2048)

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)rng;
}

static size_t gen(unsigned char *buf, size_t cap)
{
	static const char *const names[] = {
		"request=smtpd_access_policy", "client_address=192.0.2.1",
		"sender=a@b", "recipient=c@d", "instance=1.2.3", "x=", "=",
		"noequals", "request=other", "client_address=::ffff:1.2.3.4"};
	size_t n = 0;
	size_t target = next() % cap;
	while (n < target) {
		uint32_t kind = next() % 20;
		/* 12 in 20 lines look like attributes, 3 end a request, 3 are
		 * junk, 1 is long, 1 is a CR. */
		switch (kind < 12 ? 0 : kind < 15 ? 1 : kind < 18 ? 2 : kind - 15) {
		case 0: { /* a known-looking line */
			const char *s = names[next() % 10];
			size_t l = strlen(s);
			if (n + l + 1 > cap)
				return n;
			memcpy(buf + n, s, l);
			n += l;
			buf[n++] = '\n';
			break;
		}
		case 1: /* an empty line: a request ends */
			buf[n++] = '\n';
			break;
		case 2: { /* random bytes, NUL and 8-bit included */
			size_t l = next() % 64;
			for (size_t i = 0; i < l && n < cap; i++)
				buf[n++] = (unsigned char)next();
			break;
		}
		case 3: { /* a long line, sometimes over the limit */
			size_t l = next() % (POLICY_LINE_MAX + 200);
			if (n + l + 1 > cap)
				return n;
			memset(buf + n, 'a', l);
			n += l;
			if (next() % 2)
				buf[n++] = '\n';
			break;
		}
		default: /* a CR, as from a hand-typed test */
			buf[n++] = '\r';
			break;
		}
	}
	return n;
}

static void test_random_streams(void **state)
{
	(void)state;
	unsigned char *buf = malloc(ROBUST_STREAM_MAX);
	unsigned long complete = 0, parsed = 0, errors = 0;
	for (int s = 0; s < ROBUST_STREAMS; s++) {
		size_t len = gen(buf, ROBUST_STREAM_MAX);
		size_t off = 0, scanned = 0;
		/* Deliver in random chunks, as reads would. */
		size_t have = 0;
		while (off < len) {
			size_t chunk = 1 + next() % 700;
			have = have + chunk > len - off ? len - off : have + chunk;
			size_t reqlen = 0;
			char err[256];
			enum policy_frame_status st =
				policy_frame(buf + off, have, &scanned, &reqlen,
					     err, sizeof(err));
			if (st == POLICY_FRAME_ERROR) {
				errors++;
				break;
			}
			if (st == POLICY_FRAME_MORE) {
				if (have == len - off)
					break; /* stream ended mid-request */
				continue;
			}
			complete++;
			assert_true(reqlen >= 1 && reqlen <= have);
			assert_int_equal(buf[off + reqlen - 1], '\n');
			struct policy_request r;
			if (policy_parse(buf + off, reqlen, &r, err,
					 sizeof(err)) == 0) {
				parsed++;
				for (int a = 0; a < POLICY_NATTRS; a++) {
					assert_int_equal(strlen(r.v[a]),
							 r.len[a]);
					assert_null(memchr(r.v[a], '\n',
							   r.len[a]));
				}
				policy_request_free(&r);
			} else {
				assert_true(err[0] != '\0');
			}
			off += reqlen;
			have -= reqlen;
			assert_int_equal(scanned, 0);
		}
	}
	free(buf);
	print_message("streams %d: %lu complete, %lu parsed, %lu errors\n",
		      ROBUST_STREAMS, complete, parsed, errors);
	/* The generator must have exercised every outcome. */
	assert_true(complete > 1000);
	assert_true(parsed > 100);
	assert_true(errors > 100);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_streams),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
