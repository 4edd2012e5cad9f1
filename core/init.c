/* Process start-up, fork handling, and the locks.
 *
 * malloc may be called before any constructor of ours has run (ld.so and libc allocate first,
 * and so do other libraries' constructors), so nothing here relies on being called from a
 * constructor: the first allocation's slow path calls umi_process_init(). It allocates nothing
 * itself and calls nothing that could (no dlsym, no stdio). */
#include <pthread.h>
#include <sched.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "core/internal.h"
#include "base/options.h"
#include "os/os.h"
#include "hugepages/pagesize.h"
#include "core/check.h"
#include "core/counters.h"

uintptr_t umi_cookie = 0x9e3779b97f4a7c15u;
size_t umi_large_threshold = UM_LARGE_MAX;
_Atomic int umi_initialized;
#if defined(UM_DEBUG) && UM_DEBUG
void (*volatile umi_test_hook)(int point, void *arg);
#endif

um_lock_t umi_init_lock = UM_LOCK_INIT(UM_RANK_INIT, "init");
um_lock_t umi_registry_lock = UM_LOCK_INIT(UM_RANK_REGISTRY, "heap registry");
um_lock_t umi_backup_lock = UM_LOCK_INIT(UM_RANK_BACKUP, "backup heap");
um_lock_t umi_abandoned_lock = UM_LOCK_INIT(UM_RANK_ABANDONED, "abandoned segments");
um_lock_t umi_cache_lock = UM_LOCK_INIT(UM_RANK_CACHE, "segment cache");
um_lock_t umi_segments_lock = UM_LOCK_INIT(UM_RANK_SEGMENTS, "segment registry");

/* The locks, in the documented order (the extent arenas' between abandoned and cache); fork
 * takes them all so the child sees consistent lists. */
static um_lock_t *const locks_before_extents[] = {&umi_init_lock, &umi_registry_lock, &umi_backup_lock, &umi_abandoned_lock};
static um_lock_t *const locks_after_extents[] = {&umi_cache_lock, &umi_segments_lock};
#define COUNT(a) (sizeof(a) / sizeof(a[0]))

/* A fork from a signal handler that interrupted one of this thread's slow paths (a program
 * whose SIGCHLD or timer handler forks; glibc's tst-mallocfork2) finds the thread holding one
 * of the locks: taking them all would wait for itself forever. Then none is taken. In a
 * single-threaded process every lock held is the interrupted frame's, which goes on in both
 * processes when the handler returns and lets go of them. With other threads, the child may
 * inherit a lock one of them held, and their heaps as they were: there, as in glibc, a fork
 * from a signal handler is not safe with respect to malloc. */
static __thread bool tl_fork_without_locks;

/* glibc's stdio allocates while it holds a stream's lock (getline, fopen, a buffer's first
 * fill), and fflush(NULL) holds the list of all streams while it takes each stream's lock.
 * glibc's fork takes that list lock after the prepare handlers and, for its own malloc, before
 * malloc's locks (its bug 19431). Were ours taken first, a fork would wait for the list held
 * by fflush(NULL), which waits for a stream held by a getline, which waits in malloc for a
 * lock the fork holds. So the prepare handler takes the list lock itself, before ours: the
 * order is stdio's list, then a stream, then umalloc's locks. The lock is recursive (fork
 * takes it again) and glibc exports it; weak, so that another libc without it links. In the
 * child it is reset, as glibc's fork does with more than one thread (with one, glibc leaves
 * it alone and the reset releases ours). */
extern void _IO_list_lock(void) __attribute__((weak));
extern void _IO_list_unlock(void) __attribute__((weak));
extern void _IO_list_resetlock(void) __attribute__((weak));

static void fork_prepare(void) {
    if (umi_locks_held_by_me()) { tl_fork_without_locks = true; return; }
    if (_IO_list_lock) _IO_list_lock();
    for (size_t i = 0; i < COUNT(locks_before_extents); i++) umi_lock(locks_before_extents[i]);
    umi_extent_lock_all();
    for (size_t i = 0; i < COUNT(locks_after_extents); i++) umi_lock(locks_after_extents[i]);
}
static void unlock_all(void) {
    for (size_t i = COUNT(locks_after_extents); i-- > 0;) umi_unlock(locks_after_extents[i]);
    umi_extent_unlock_all();
    for (size_t i = COUNT(locks_before_extents); i-- > 0;) umi_unlock(locks_before_extents[i]);
}
static void fork_parent(void) {
    if (tl_fork_without_locks) { tl_fork_without_locks = false; return; }
    unlock_all();
    if (_IO_list_unlock) _IO_list_unlock();
}
static void fork_child(void) {
    if (tl_fork_without_locks) { tl_fork_without_locks = false; return; }
    /* Only this thread exists in the child, and it holds every lock. */
    unlock_all();
    umi_heap_orphan_others();
    if (_IO_list_resetlock) _IO_list_resetlock();
}

static uintptr_t random_cookie(void) {
    uintptr_t r = 0;
    const uint8_t *rnd = (const uint8_t *)getauxval(AT_RANDOM); /* 16 bytes the kernel gave us */
    if (rnd) for (int i = 0; i < 8; i++) r = (r << 8) | rnd[i + 8]; /* glibc uses the first 8 for its stack guard */
    r ^= (uintptr_t)&r ^ ((uintptr_t)umi_os_now_ms() << 32);
    return r | 1;
}

void umi_heap_init_process(void);

void umi_process_init(void) {
    if (atomic_load_explicit(&umi_initialized, memory_order_acquire)) return;
    umi_lock(&umi_init_lock);
    if (!atomic_load_explicit(&umi_initialized, UM_RELAXED)) {
        umi_cookie = random_cookie();
        umi_options_init();
        umi_large_threshold = (size_t)umi_option(UM_OPT_LARGE_THRESHOLD);
        if (umi_large_threshold > UM_LARGE_MAX) umi_large_threshold = UM_LARGE_MAX;
        umi_purge_delay_init();
        umi_check_enabled = umi_option(UM_OPT_CHECK) != 0;
        umi_numa_init(); /* before the first segment is placed */
        umi_extent_init_process(); /* after the threshold and NUMA: whether big blocks use extents */
        umi_pages_init(); /* before the first segment: the region's reservation is backed as it says */
        umi_segment_init_process();
        umi_heap_init_process();
#if UM_SECURE
        umi_page_init_process(); /* after the cookie: the random orders of fresh blocks */
#endif
        pthread_atfork(fork_prepare, fork_parent, fork_child);
        atomic_store_explicit(&umi_initialized, 1, memory_order_release);
        umi_stats_init();
    }
    umi_unlock(&umi_init_lock);
}
