/*
 * xalloc - allocation wrappers that never return NULL.
 *
 * Out of memory is an environment failure, not an input error: the wrappers
 * log one line and abort, so callers need error paths only for input and I/O
 * (the OpenBSD xmalloc convention). Every returned pointer is owned by the
 * caller and released with free().
 */
#ifndef GREYSPF_UTIL_XALLOC_H
#define GREYSPF_UTIL_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
/* Like reallocarray(3): fails (aborts) on nmemb * size overflow. */
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
char *xstrdup(const char *s);
/* Copies at most n bytes of s and always NUL-terminates. */
char *xstrndup(const char *s, size_t n);
/* Like asprintf(3); aborts on failure. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
