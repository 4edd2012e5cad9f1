/* A free block's two words (um_block_t: the link and the free mark), and every access the core
 * makes to them: through these functions only, so that two builds can change what they are.
 *
 *  - ASan builds poison a free block whole (base/sanitize.h). The accessors are not
 *    instrumented, so the core alone may touch a free block, and there is no moment at which a
 *    free block is open: unpoisoning around each access instead would race with a thread that
 *    takes the block meanwhile (the owner collecting a remote free, a heap check) and
 *    could leave a block in use poisoned, or a free one open.
 *  - The secure build (UM_SECURE) stores each link encoded, XORed with the secret of its page
 *    (um_page_hot_t.secret) and with the link's own address: a use-after-free write over a
 *    free block's link, of garbage or of a pointer to a live block, decodes to garbage, and so
 *    does a link copied from another block. Every link is checked as it is decoded
 *    (umi_link_next): it must be NULL or a block start of its page, else umalloc says so in one
 *    line and aborts, before any block could be handed out twice (see docs/security.md).
 * In the normal build they are the plain loads and stores they replace: the fast paths compile
 * to the same instructions. */
#ifndef UM_BLOCK_H
#define UM_BLOCK_H

#include "base/base.h"
#include "base/sanitize.h"
#include "core/types.h"

#if UM_ASAN
/* not inlined into instrumented code (GCC would refuse anyway): they run unchecked */
#define UM_BLOCK_FN static __attribute__((noinline, no_sanitize_address, unused))
#else
#define UM_BLOCK_FN static inline __attribute__((always_inline))
#endif

UM_BLOCK_FN uintptr_t umi_key_get(const um_block_t *b) { return b->key; }
UM_BLOCK_FN void umi_key_set(um_block_t *b, uintptr_t key) { b->key = key; }
UM_BLOCK_FN uintptr_t umi_link_load(const um_block_t *b) { return (uintptr_t)b->next; }
UM_BLOCK_FN void umi_link_store(um_block_t *b, uintptr_t v) { b->next = (um_block_t *)v; }

/* The secret of the lists of the page whose hot words are `hot`. */
#if UM_SECURE
#define UM_HOT_SECRET(hot) ((hot)->secret)
#define UM_PAGE_SECRET(page) ((page)->secret) /* the same, from the page descriptor */
#else
#define UM_HOT_SECRET(hot) ((uintptr_t)0)
#define UM_PAGE_SECRET(page) ((uintptr_t)0)
#endif

/* What a link of b is XORed with on a list whose secret is `secret`. */
static inline __attribute__((always_inline)) uintptr_t umi_link_code(const um_block_t *b, uintptr_t secret) {
#if UM_SECURE
    return (uintptr_t)b ^ secret;
#else
    (void)b;
    (void)secret;
    return 0;
#endif
}
static inline __attribute__((always_inline)) void umi_link_set(um_block_t *b, um_block_t *next, uintptr_t secret) {
    umi_link_store(b, (uintptr_t)next ^ umi_link_code(b, secret));
}
/* Decoded, not checked: for a caller that checks every pointer itself (core/check.c). */
static inline __attribute__((always_inline)) um_block_t *umi_link_get(const um_block_t *b, uintptr_t secret) {
    return (um_block_t *)(umi_link_load(b) ^ umi_link_code(b, secret));
}

#if UM_SECURE
/* One line on stderr and abort(): b's link decodes to no block of its page. */
__attribute__((cold, noinline, noreturn)) void umi_link_corrupt(const void *b, const void *next);
/* next is NULL or a block start of the page whose hot words are hot: inside its block area and
 * a multiple of the block size from its start (Lemire's test, no division; see
 * um_page_t.block_div). */
static inline bool umi_link_ok(const um_page_hot_t *hot, const um_block_t *next) {
    uint64_t off = (uintptr_t)next - hot->start;
    return next == NULL || (off < hot->span && (uint64_t)(uint32_t)off * hot->block_div <= hot->block_div - 1);
}
#endif

/* The block after b on a list of hot's page: decoded and, in the secure build, checked. */
static inline __attribute__((always_inline)) um_block_t *umi_link_next(const um_block_t *b, const um_page_hot_t *hot) {
    um_block_t *next = umi_link_get(b, UM_HOT_SECRET(hot));
#if UM_SECURE
    if (UM_UNLIKELY(!umi_link_ok(hot, next))) umi_link_corrupt(b, next);
#endif
    return next;
}

/* A second free of p (its free mark is set): one line, and in ASan builds ASan's report too. */
UM_COLD void umi_double_free(const void *p);

/* ASan builds: the block holding p is poisoned but for [p, p + n) (a block handed out, an
 * aligned block at its offset, a block realloc resized in place). */
#if UM_ASAN
void umi_san_expose(const void *p, size_t n);
void umi_san_open_usable(const void *p, size_t n); /* malloc_usable_size told the program n */
size_t umi_san_live_size(const void *p, size_t n); /* bytes of [p, p + n) the program may read */
#define UM_SAN_EXPOSE(p, n) umi_san_expose((p), (n))
#define UM_SAN_OPEN_USABLE(p, n) umi_san_open_usable((p), (n))
#define UM_SAN_LIVE_SIZE(p, n) umi_san_live_size((p), (n))
#else
#define UM_SAN_EXPOSE(p, n) ((void)0)
#define UM_SAN_OPEN_USABLE(p, n) ((void)0)
#define UM_SAN_LIVE_SIZE(p, n) (n)
#endif

#endif
