/*
 * test_grey_whitelist - postgrey-compatible whitelists (grey/whitelist).
 *
 * Uses tests/fixtures/whitelist_{clients,recipients}.sample (ours) and,
 * when present on the machine, Debian's postgrey lists, which must load
 * unchanged (the test is skipped where postgrey is not installed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "grey/whitelist.h"

static char *fixture(const char *name)
{
	const char *dir = getenv("GREYSPF_SOURCE_DIR");
	char *p = NULL;
	assert_true(asprintf(&p, "%s/tests/fixtures/%s",
			     dir != NULL ? dir : ".", name) > 0);
	return p;
}

static struct wl *load_samples(unsigned flags)
{
	char *c = fixture("whitelist_clients.sample");
	char *r = fixture("whitelist_recipients.sample");
	const char *cl[] = {c, NULL}, *rl[] = {r, NULL};
	char err[256] = "";
	struct wl *wl = wl_load(cl, rl, flags, err, sizeof(err));
	if (wl == NULL)
		fail_msg("load: %s", err);
	free(c);
	free(r);
	return wl;
}

struct client_case {
	const char *ip; /* NULL: no address */
	const char *name;
	const char *rev;
	const char *entry; /* NULL: no match */
	unsigned line;
	enum wl_kind kind;
};

static const struct client_case client_cases[] = {
    /* addresses and networks */
    {"192.0.2.10", "unknown", NULL, "192.0.2.10", 5, WL_CLIENT_NET},
    {"192.0.2.11", "unknown", NULL, NULL, 0, 0},
    {"198.51.100.254", NULL, NULL, "198.51.100.0/24", 7, WL_CLIENT_NET},
    {"198.51.101.1", NULL, NULL, NULL, 0, 0},
    {"203.0.113.99", NULL, NULL, "203.0.113", 9, WL_CLIENT_NET},
    {"203.0.114.1", NULL, NULL, NULL, 0, 0},
    {"10.20.255.1", NULL, NULL, "10.20", 10, WL_CLIENT_NET},
    {"10.21.0.1", NULL, NULL, NULL, 0, 0},
    {"::ffff:10.20.1.1", NULL, NULL, "10.20", 10, WL_CLIENT_NET},
    {"2001:db8::25", NULL, NULL, "2001:db8::25", 14, WL_CLIENT_NET},
    {"2001:db8::26", NULL, NULL, NULL, 0, 0},
    {"2001:db8:aaaa:1::1", NULL, NULL, "2001:db8:aaaa::/48", 15, WL_CLIENT_NET},
    /* names: the name itself and names below it, not look-alikes */
    {"192.0.2.99", "mail.example.com", NULL, "mail.example.com", 17,
     WL_CLIENT_NAME},
    {"192.0.2.99", "MAIL.Example.Com", NULL, "mail.example.com", 17,
     WL_CLIENT_NAME},
    {"192.0.2.99", "out1.mail.example.com", NULL, "mail.example.com", 17,
     WL_CLIENT_NAME},
    {"192.0.2.99", "badmail.example.com", NULL, NULL, 0, 0},
    {"192.0.2.99", "example.com", NULL, NULL, 0, 0},
    {"192.0.2.99", "mail.example.com.evil.test", NULL, NULL, 0, 0},
    {"192.0.2.99", "example.net", NULL, ".example.net", 19, WL_CLIENT_NAME},
    {"192.0.2.99", "a.b.example.net", NULL, ".example.net", 19, WL_CLIENT_NAME},
    {"192.0.2.99", "notexample.net", NULL, NULL, 0, 0},
    {"192.0.2.99", "relay.example.org", NULL, "Relay.Example.ORG", 21,
     WL_CLIENT_NAME},
    /* regexes, searched in client_name, case-insensitively */
    {"192.0.2.99", "mx12.example.info", NULL, "/^mx\\d+\\.example\\.info$/", 23,
     WL_CLIENT_REGEX},
    {"192.0.2.99", "MX7.EXAMPLE.INFO", NULL, "/^mx\\d+\\.example\\.info$/", 23,
     WL_CLIENT_REGEX},
    {"192.0.2.99", "mxa.example.info", NULL, NULL, 0, 0},
    {"192.0.2.99", "mx1.example.info.evil", NULL, NULL, 0, 0},
    {"192.0.2.99", "smtp-out12-g3.free.example", NULL, NULL, 0, 0},
    {"192.0.2.99", "smtpout12-g3.free.example", NULL,
     "/^(?:smtp\\w*|postfix)[0-9]+-g[0-9]+\\.free\\.example$/", 24,
     WL_CLIENT_REGEX},
    {"192.0.2.99", "postfix3-g12.free.example", NULL,
     "/^(?:smtp\\w*|postfix)[0-9]+-g[0-9]+\\.free\\.example$/", 24,
     WL_CLIENT_REGEX},
    {"192.0.2.99", "out.x.mailer.example", NULL,
     "/^out.*?\\.mailer\\.example$/", 25, WL_CLIENT_REGEX},
    /* the unverified reverse name is not used by default */
    {"192.0.2.99", "unknown", "mail.example.com", NULL, 0, 0},
    /* no address, no name */
    {NULL, NULL, NULL, NULL, 0, 0},
    {NULL, "", "", NULL, 0, 0},
};

static void test_clients(void **state)
{
	(void)state;
	struct wl *wl = load_samples(0);
	assert_int_equal(wl_count_clients(wl), 12);
	for (size_t i = 0; i < sizeof(client_cases) / sizeof(*client_cases);
	     i++) {
		const struct client_case *c = &client_cases[i];
		struct addr a;
		if (c->ip != NULL)
			assert_int_equal(addr_parse(c->ip, &a), 0);
		const struct wl_entry *e = wl_match_client(
		    wl, c->ip != NULL ? &a : NULL, c->name, c->rev);
		if (c->entry == NULL) {
			if (e != NULL)
				fail_msg("case %zu: unexpected match %s", i,
					 e->text);
			continue;
		}
		if (e == NULL || strcmp(e->text, c->entry) != 0 ||
		    e->line != c->line || e->kind != c->kind)
			fail_msg("case %zu: got %s line %u, want %s line %u", i,
				 e != NULL ? e->text : "(none)",
				 e != NULL ? e->line : 0, c->entry, c->line);
		assert_non_null(strstr(e->file, "whitelist_clients.sample"));
	}
	wl_free(wl);
}

static void test_reverse_name_opt_in(void **state)
{
	(void)state;
	struct wl *wl = load_samples(WL_MATCH_REVERSE_NAME);
	struct addr a;
	assert_int_equal(addr_parse("192.0.2.99", &a), 0);
	const struct wl_entry *e =
	    wl_match_client(wl, &a, "unknown", "x.mail.example.com");
	assert_non_null(e);
	assert_string_equal(e->text, "mail.example.com");
	assert_null(wl_match_client(wl, &a, "unknown", "evil.test"));
	wl_free(wl);
}

struct rcpt_case {
	const char *rcpt;
	const char *entry;
	enum wl_kind kind;
};

static const struct rcpt_case rcpt_cases[] = {
    {"postmaster@anything.test", "postmaster@", WL_RCPT_LOCAL},
    {"Postmaster@Anything.test", "postmaster@", WL_RCPT_LOCAL},
    {"postmaster+tag@anything.test", "postmaster@", WL_RCPT_LOCAL},
    {"postmaster+@anything.test", NULL, 0},
    {"postmasterx@anything.test", NULL, 0},
    {"xpostmaster@anything.test", NULL, 0},
    {"postmaster", NULL, 0},
    {"abuse@example.com", "abuse@example.com", WL_RCPT_ADDRESS},
    {"ABUSE+x@EXAMPLE.com", "abuse@example.com", WL_RCPT_ADDRESS},
    {"abuse@sub.example.com", NULL, 0},
    {"abuse@example.com.evil", NULL, 0},
    {"anyone@exact.example.org", "@exact.example.org", WL_RCPT_DOMAIN_EXACT},
    {"anyone@sub.exact.example.org", NULL, 0},
    {"bob@example.net", "example.net", WL_RCPT_DOMAIN},
    {"bob@deep.sub.example.net", "example.net", WL_RCPT_DOMAIN},
    {"bob@notexample.net", NULL, 0},
    {"list-dev@lists.example.com", "/^list-[a-z]+@lists\\.example\\.com$/",
     WL_RCPT_REGEX},
    {"LIST-Dev@Lists.Example.com", "/^list-[a-z]+@lists\\.example\\.com$/",
     WL_RCPT_REGEX},
    {"list-dev2@lists.example.com", NULL, 0},
    {"", NULL, 0},
    {"bob@example.com", NULL, 0},
};

static void test_recipients(void **state)
{
	(void)state;
	struct wl *wl = load_samples(0);
	assert_int_equal(wl_count_recipients(wl), 5);
	for (size_t i = 0; i < sizeof(rcpt_cases) / sizeof(*rcpt_cases); i++) {
		const struct rcpt_case *c = &rcpt_cases[i];
		const struct wl_entry *e = wl_match_recipient(wl, c->rcpt);
		if (c->entry == NULL) {
			if (e != NULL)
				fail_msg("case %zu (%s): unexpected match %s",
					 i, c->rcpt, e->text);
			continue;
		}
		if (e == NULL || strcmp(e->text, c->entry) != 0 ||
		    e->kind != c->kind)
			fail_msg("case %zu (%s): got %s want %s", i, c->rcpt,
				 e != NULL ? e->text : "(none)", c->entry);
	}
	assert_null(wl_match_recipient(wl, NULL));
	wl_free(wl);
}

struct bad_case {
	bool client;
	const char *line;
	const char *err;
};

static const struct bad_case bad_cases[] = {
    {true, "mail example.com",
     "f:7: white space or control character in entry"},
    {true, "192.0.2.300", "f:7: bad address or network 192.0.2.300"},
    {true, "192.0.2.0/33", "f:7: bad address or network 192.0.2.0/33"},
    {true, "2001:db8::/129", "f:7: bad address or network 2001:db8::/129"},
    {true, "2001:zz8::1", "f:7: bad address or network 2001:zz8::1"},
    {true, "1.2.3.4.5", "f:7: bad address or network 1.2.3.4.5"},
    {true, "/(unclosed/", NULL},
    {true, "/a\\bb/", "f:7: bad regex /a\\bb/: unsupported backslash escape"},
    {true, "/(?i)x/", "f:7: bad regex /(?i)x/: unsupported (?...) group"},
    {true, "/[ab/", "f:7: bad regex /[ab/: unterminated [...]"},
    {true, "/ab\\/", "f:7: bad regex /ab\\/: trailing backslash"},
    {true, "a/b", "f:7: not a host name, address or /regex/: a/b"},
    {true, ".", "f:7: bad address or network ."},
    {true, "..x", "f:7: not a host name, address or /regex/: ..x"},
    {true, "ab\x01", "f:7: white space or control character in entry"},
    {false, "a@b@c", "f:7: more than one @ in a@b@c"},
    {false, "@", "f:7: empty domain in @"},
    {false, "user @x", "f:7: white space or control character in entry"},
    {false, "/x{2/", NULL},
};

static void test_bad_lines(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(*bad_cases); i++) {
		const struct bad_case *c = &bad_cases[i];
		struct wl *wl = wl_new(0);
		char err[256] = "";
		int rc = c->client ? wl_add_client(wl, c->line, "f", 7, err,
						   sizeof(err))
				   : wl_add_recipient(wl, c->line, "f", 7, err,
						      sizeof(err));
		if (rc != -1)
			fail_msg("case %zu accepted: %s", i, c->line);
		if (c->err != NULL && strcmp(err, c->err) != 0)
			fail_msg("case %zu: err [%s] want [%s]", i, err,
				 c->err);
		/* regcomp's wording varies; the prefix does not */
		if (c->err == NULL && strncmp(err, "f:7: bad regex ", 15) != 0)
			fail_msg("case %zu: err [%s]", i, err);
		assert_int_equal(wl_count_clients(wl) + wl_count_recipients(wl),
				 0);
		wl_free(wl);
	}
}

static void test_good_lines(void **state)
{
	(void)state;
	struct wl *wl = wl_new(0);
	char err[256];
	const char *ok[] = {"",
			    "   ",
			    "# comment",
			    "\t# c",
			    "\n",
			    "\r\n",
			    "x.org\r\n",
			    "x.org # c",
			    "10.1.",
			    "/[[:digit:]]+\\.x/",
			    "abs.example.",
			    "/a[\\d.]b/",
			    "/\\-\\@/"};
	for (size_t i = 0; i < sizeof(ok) / sizeof(*ok); i++)
		if (wl_add_client(wl, ok[i], NULL, 1, err, sizeof(err)) != 0)
			fail_msg("case %zu refused: %s", i, err);
	assert_int_equal(wl_count_clients(wl), 7);
	const struct wl_entry *e;
	e = wl_match_client(wl, NULL, "mx.abs.example", NULL);
	assert_non_null(e);
	assert_string_equal(e->text, "abs.example.");
	e = wl_match_client(wl, NULL, "x.org", NULL);
	assert_non_null(e);
	assert_string_equal(e->file, "-");
	assert_string_equal(e->text, "x.org");
	assert_int_equal(e->kind, WL_CLIENT_NAME);
	e = wl_match_client(wl, NULL, "mx42.x", NULL);
	assert_non_null(e);
	assert_string_equal(e->text, "/[[:digit:]]+\\.x/");
	e = wl_match_client(wl, NULL, "a7b", NULL);
	assert_non_null(e);
	assert_string_equal(e->text, "/a[\\d.]b/");
	assert_non_null(wl_match_client(wl, NULL, "a.b", NULL));
	assert_null(wl_match_client(wl, NULL, "axb", NULL));
	e = wl_match_client(wl, NULL, "q-@", NULL);
	assert_non_null(e);
	assert_string_equal(e->text, "/\\-\\@/");
	struct addr a;
	assert_int_equal(addr_parse("10.1.200.3", &a), 0);
	e = wl_match_client(wl, &a, NULL, NULL);
	assert_non_null(e);
	assert_string_equal(e->text, "10.1.");

	char longl[WL_LINE_MAX + 10];
	memset(longl, 'a', sizeof(longl) - 1);
	longl[sizeof(longl) - 1] = '\0';
	assert_int_equal(wl_add_client(wl, longl, "g", 3, err, sizeof(err)),
			 -1);
	assert_string_equal(err, "g:3: line longer than 1024");
	wl_free(wl);

	assert_string_equal(wl_kind_name(WL_CLIENT_NET), "net");
	assert_string_equal(wl_kind_name(WL_RCPT_DOMAIN_EXACT), "@domain");
}

static char *write_tmp(const char *text)
{
	char *path = strdup("/tmp/greyspf-wl-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	size_t n = strlen(text);
	assert_int_equal(write(fd, text, n), (ssize_t)n);
	close(fd);
	return path;
}

static void test_files(void **state)
{
	(void)state;
	char err[512];
	char *good = write_tmp("# x\nexample.com\n\n192.0.2.0/24\n");
	char *bad = write_tmp("example.com\n\n# c\n300.1.1.1\n");

	/* the error names the file and line */
	const char *l1[] = {good, bad, NULL};
	assert_null(wl_load(l1, NULL, 0, err, sizeof(err)));
	char want[512];
	snprintf(want, sizeof(want), "%s:4: bad address or network 300.1.1.1",
		 bad);
	assert_string_equal(err, want);

	/* a missing file is an error ... */
	const char *l2[] = {good, "/nonexistent/greyspf/wl", NULL};
	assert_null(wl_load(l2, NULL, 0, err, sizeof(err)));
	assert_string_equal(err, "/nonexistent/greyspf/wl:0: cannot open: "
				 "No such file or directory");
	/* ... except a missing .local file (postgrey) */
	const char *l3[] = {good, "/nonexistent/greyspf/wl.local", NULL};
	const char *r3[] = {"/nonexistent/greyspf/wlr.local", NULL};
	struct wl *wl = wl_load(l3, r3, 0, err, sizeof(err));
	assert_non_null(wl);
	assert_int_equal(wl_count_clients(wl), 2);
	const struct wl_entry *e =
	    wl_match_client(wl, NULL, "example.com", NULL);
	assert_non_null(e);
	assert_string_equal(e->file, good);
	assert_int_equal(e->line, 2);

	/* a reload is a new, independent handle */
	struct wl *wl2 = wl_load(NULL, NULL, 0, err, sizeof(err));
	assert_non_null(wl2);
	assert_int_equal(wl_count_clients(wl2), 0);
	assert_null(wl_match_client(wl2, NULL, "example.com", NULL));
	wl_free(wl);
	assert_null(wl_match_client(wl2, NULL, "example.com", NULL));
	wl_free(wl2);

	unlink(good);
	unlink(bad);
	free(good);
	free(bad);
}

/* Non-empty, non-comment lines, as postgrey counts entries. */
static size_t count_entries(const char *path)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char line[2048];
	size_t n = 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "#\n")] = '\0';
		if (strspn(line, " \t\r") != strlen(line))
			n++;
	}
	fclose(f);
	return n;
}

/* The postgrey list `name`: in $GREYSPF_POSTGREY_DIR if set, else where
 * Debian's package puts it (/etc/postgrey, copied from /usr/share). */
static const char *postgrey_list(const char *name, char *buf, size_t size)
{
	const char *dirs[] = {getenv("GREYSPF_POSTGREY_DIR"), "/etc/postgrey",
			      "/usr/share/postgrey"};
	for (size_t i = 0; i < sizeof(dirs) / sizeof(*dirs); i++) {
		if (dirs[i] == NULL)
			continue;
		snprintf(buf, size, "%s/%s", dirs[i], name);
		if (access(buf, R_OK) == 0)
			return buf;
	}
	return NULL;
}

static void test_debian_postgrey_lists(void **state)
{
	(void)state;
	char cb[512], rb[512];
	const char *c = postgrey_list("whitelist_clients", cb, sizeof(cb));
	const char *r = postgrey_list("whitelist_recipients", rb, sizeof(rb));
	if (c == NULL || r == NULL) {
		skip();
		return;
	}
	const char *cl[] = {c, NULL}, *rl[] = {r, NULL};
	char err[512] = "";
	struct wl *wl = wl_load(cl, rl, 0, err, sizeof(err));
	if (wl == NULL)
		fail_msg("postgrey list does not load: %s", err);
	assert_int_equal(wl_count_clients(wl), count_entries(c));
	assert_int_equal(wl_count_recipients(wl), count_entries(r));
	/* the shipped recipient list whitelists postmaster@ and abuse@ */
	assert_non_null(wl_match_recipient(wl, "postmaster@example.org"));
	assert_non_null(wl_match_recipient(wl, "abuse@example.org"));
	assert_null(wl_match_recipient(wl, "bob@example.org"));
	wl_free(wl);
}

static uint32_t rng_state = 4242;
static uint32_t rng(void)
{
	rng_state = rng_state * 1103515245u + 12345u;
	return rng_state >> 8;
}

/* Random lines of whitelist-ish bytes: each is accepted or refused with
 * a FILE:LINE message, never anything worse (run under ASan). */
static void test_random_lines(void **state)
{
	(void)state;
	static const char alpha[] = "/\\()[]{}^$.*+?|:#@ 0123456789abdwsDWS-";
	struct wl *wl = wl_new(0);
	for (int iter = 0; iter < 5000; iter++) {
		char line[64], err[256];
		size_t len = rng() % (sizeof(line) - 1);
		for (size_t i = 0; i < len; i++)
			line[i] = alpha[rng() % (sizeof(alpha) - 1)];
		line[len] = '\0';
		int rc =
		    (iter & 1)
			? wl_add_client(wl, line, "r", 1, err, sizeof(err))
			: wl_add_recipient(wl, line, "r", 1, err, sizeof(err));
		if (rc != 0)
			assert_memory_equal(err, "r:1: ", 5);
		struct addr a;
		assert_int_equal(addr_parse("192.0.2.1", &a), 0);
		wl_match_client(wl, &a, line, line);
		wl_match_recipient(wl, line);
	}
	wl_free(wl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_clients),
	    cmocka_unit_test(test_reverse_name_opt_in),
	    cmocka_unit_test(test_recipients),
	    cmocka_unit_test(test_bad_lines),
	    cmocka_unit_test(test_good_lines),
	    cmocka_unit_test(test_files),
	    cmocka_unit_test(test_debian_postgrey_lists),
	    cmocka_unit_test(test_random_lines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
