/* What every layer of umalloc shares: branch hints, attributes, and the invariant check that
 * stays on in release builds. Nothing here depends on anything else of umalloc. */
#ifndef UM_BASE_H
#define UM_BASE_H

#include <stdatomic.h>

#define UM_LIKELY(x) __builtin_expect(!!(x), 1)
#define UM_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define UM_HIDDEN __attribute__((visibility("hidden")))
#define UM_NOINLINE __attribute__((noinline))
#define UM_COLD __attribute__((cold, noinline))
/* Big zeroed buffers that a process touches rarely or in part (dump buffers, bitmaps, the
 * segment map): in .lbss, after .bss. Among the small variables every process writes at
 * start-up they would spread those over many OS pages, each a page fault in every process. */
#if defined(__x86_64__) /* where the compiler knows .lbss as zero-initialised (NOBITS) */
#define UM_BIG_BSS __attribute__((section(".lbss.umalloc")))
#else
#define UM_BIG_BSS
#endif
#define UM_RELAXED memory_order_relaxed

/* The hardened build (make SECURE=1: build/libumalloc-secure.so) compiles with -DUM_SECURE=1:
 * encoded and checked free lists, guard pages, fresh blocks in random order
 * (docs/security.md). Everything it adds is under #if UM_SECURE. */
#ifndef UM_SECURE
#define UM_SECURE 0
#endif

/* An invariant that must hold; checked in release builds too (it costs a compare on slow paths
 * only). A broken one means heap corruption: say where and stop before it spreads. */
#define UM_CHECK(cond) \
    do { if (UM_UNLIKELY(!(cond))) umi_fatal(__FILE__, __LINE__, #cond); } while (0)
/* "umalloc: heap corruption detected (<what>) at <file>:<line>" on stderr, then abort(). */
__attribute__((cold, noinline, noreturn)) void umi_fatal(const char *file, int line, const char *what);
/* The same for a broken rule of umalloc's own (lock order, ...): "umalloc: <what>", abort(). */
__attribute__((cold, noinline, noreturn)) void umi_fatal_msg(const char *what);

#endif
