/*
 * arena - per-evaluation bump allocator; see arena.h.
 */
#include "spf/arena.h"
#include "util/xalloc.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct spf_arena_block {
	struct spf_arena_block *next;
	alignas(max_align_t) unsigned char data[];
};

#define ARENA_ALIGN (alignof(max_align_t))

void spf_arena_init(struct spf_arena *a, void *buf, size_t size)
{
	a->blocks = NULL;
	if (buf == NULL || size == 0) {
		a->cur = a->end = NULL;
		return;
	}
	uintptr_t p = (uintptr_t)buf;
	uintptr_t aligned =
	    (p + ARENA_ALIGN - 1) & ~(uintptr_t)(ARENA_ALIGN - 1);
	if (aligned - p >= size) {
		a->cur = a->end = NULL;
		return;
	}
	a->cur = (unsigned char *)aligned;
	a->end = (unsigned char *)buf + size;
}

void *spf_arena_alloc(struct spf_arena *a, size_t size)
{
	size_t need = (size + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
	if (need < size)
		abort(); /* size_t overflow: a caller bug, not input */
	if (need == 0)
		need = ARENA_ALIGN;
	if (a->cur == NULL || (size_t)(a->end - a->cur) < need) {
		size_t bsize = need > SPF_ARENA_BLOCK ? need : SPF_ARENA_BLOCK;
		struct spf_arena_block *b =
		    xmalloc(sizeof(struct spf_arena_block) + bsize);
		b->next = a->blocks;
		a->blocks = b;
		a->cur = b->data;
		a->end = b->data + bsize;
	}
	void *r = a->cur;
	a->cur += need;
	return r;
}

void *spf_arena_calloc(struct spf_arena *a, size_t nmemb, size_t size)
{
	if (size != 0 && nmemb > SIZE_MAX / size)
		abort();
	void *p = spf_arena_alloc(a, nmemb * size);
	memset(p, 0, nmemb * size);
	return p;
}

char *spf_arena_strndup(struct spf_arena *a, const char *s, size_t len)
{
	char *p = spf_arena_alloc(a, len + 1);
	if (len > 0)
		memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *spf_arena_strdup(struct spf_arena *a, const char *s)
{
	return spf_arena_strndup(a, s, strlen(s));
}

void spf_arena_free(struct spf_arena *a)
{
	struct spf_arena_block *b = a->blocks;
	while (b != NULL) {
		struct spf_arena_block *next = b->next;
		free(b);
		b = next;
	}
	a->blocks = NULL;
	a->cur = a->end = NULL;
}
