/*
 * arena - per-evaluation bump allocator for the SPF engine.
 *
 * An SPF evaluation makes many small allocations (copied answers, parsed
 * records, expanded names) that all die together when the evaluation ends.
 * The arena hands them out from large blocks and frees everything at once in
 * spf_arena_free(), so a warm-cache evaluation costs a handful of mallocs.
 * The first block can be caller-provided storage (embedded in the owning
 * struct), so small evaluations need no extra malloc at all.
 *
 * Allocation never fails (xalloc aborts on out-of-memory). Memory returned is
 * aligned for any object and owned by the arena.
 */
#ifndef GREYSPF_SPF_ARENA_H
#define GREYSPF_SPF_ARENA_H

#include <stddef.h>

/* Size of each heap block after the first; our choice: large enough for a
 * typical evaluation's answers, small enough not to matter per request. */
#define SPF_ARENA_BLOCK 8192

struct spf_arena_block;

struct spf_arena {
	unsigned char *cur; /* next free byte of the current block */
	unsigned char *end; /* end of the current block */
	struct spf_arena_block *blocks; /* heap blocks, newest first */
};

/* Starts an arena whose first block is buf (size bytes, may be NULL/0). buf
 * stays owned by the caller and must outlive the arena. */
void spf_arena_init(struct spf_arena *a, void *buf, size_t size);

/* Returns size bytes (size 0 gives a valid unique pointer). */
void *spf_arena_alloc(struct spf_arena *a, size_t size);
/* Zeroed nmemb * size bytes; aborts on overflow. */
void *spf_arena_calloc(struct spf_arena *a, size_t nmemb, size_t size);
/* Copies len bytes of s and appends a NUL. */
char *spf_arena_strndup(struct spf_arena *a, const char *s, size_t len);
char *spf_arena_strdup(struct spf_arena *a, const char *s);

/* Frees every heap block; the arena is then empty and reusable. */
void spf_arena_free(struct spf_arena *a);

#endif
