/* fork() while other threads allocate: every child must be able to allocate and free (small,
 * medium and large blocks, blocks inherited from the parent's threads) and exit 0; no child
 * may hang on an allocator lock held by a thread that does not exist in the child.
 *
 * Under TSan, forking a multi-threaded process works but TSan may warn; if the TSan build
 * kills or hangs the children, run it with TSAN_OPTIONS=die_after_fork=0. */
#include <criterion/criterion.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "core/internal.h"
#include "test_util.h"

enum { WORKERS = 4, KEPT = 64, SLOTS = 256 };

typedef struct {
    unsigned id;
    atomic_int *stop;
    atomic_int *ready;
    tu_block_t kept[KEPT]; /* allocated at start, untouched until stop: children free them */
    size_t ops;
} churn_arg_t;

static void *churn(void *argp)
{
    churn_arg_t *a = argp;
    tu_rng_t rng = tu_rng(a->id * 1000003);
    tu_block_t slot[SLOTS];
    memset(slot, 0, sizeof slot);
    for (size_t k = 0; k < KEPT; k++) {
        size_t n = 1 + (k * 211) % 9000;
        void *p = um_malloc(n);
        if (!p)
            tu_fail("worker %u: um_malloc(%zu) failed", a->id, n);
        else
            tu_fill(p, n, tu_seed(p, n));
        a->kept[k] = (tu_block_t){p, n};
    }
    atomic_fetch_add(a->ready, 1);
    while (!atomic_load_explicit(a->stop, memory_order_relaxed)) {
        size_t i = tu_next(&rng) % SLOTS;
        if (slot[i].p) {
            long bad = tu_check(slot[i].p, slot[i].size, tu_seed(slot[i].p, slot[i].size));
            if (bad >= 0)
                tu_fail("worker %u: block corrupted at %ld", a->id, bad);
            um_free(slot[i].p);
            slot[i].p = NULL;
        } else {
            unsigned x = (unsigned)(tu_next(&rng) % 100);
            size_t n = x < 90 ? tu_range(&rng, 8, 1024) : x < 99 ? tu_range(&rng, 1025, 64 * TU_KiB)
                                                                  : tu_range(&rng, 64 * TU_KiB, 2 * TU_MiB);
            void *p = um_malloc(n);
            if (!p) {
                tu_fail("worker %u: um_malloc(%zu) failed", a->id, n);
                continue;
            }
            tu_fill(p, n, tu_seed(p, n));
            slot[i] = (tu_block_t){p, n};
        }
        a->ops++;
    }
    for (size_t i = 0; i < SLOTS; i++)
        um_free(slot[i].p);
    for (size_t k = 0; k < KEPT; k++) {
        if (a->kept[k].p && tu_check(a->kept[k].p, a->kept[k].size, tu_seed(a->kept[k].p, a->kept[k].size)) >= 0)
            tu_fail("worker %u: kept block %zu corrupted", a->id, k);
        um_free(a->kept[k].p);
    }
    return NULL;
}

/* Runs in the child; returns the exit code (0 = fine). Only um_* and async-signal-safe-ish
 * libc calls; no Criterion. */
static int child_body(tu_block_t inherited, churn_arg_t *workers, unsigned nr)
{
    if (tu_check(inherited.p, inherited.size, tu_seed(inherited.p, inherited.size)) >= 0)
        return 10;
    um_free(inherited.p);
    /* blocks that belong to a worker thread's heap; that thread does not exist here */
    churn_arg_t *w = &workers[nr % WORKERS];
    for (size_t k = 0; k < KEPT; k++) {
        tu_block_t b = w->kept[k];
        if (!b.p)
            continue;
        if (tu_check(b.p, b.size, tu_seed(b.p, b.size)) >= 0)
            return 11;
        um_free(b.p);
    }
    enum { N = 300 };
    tu_block_t blk[N];
    for (size_t i = 0; i < N; i++) {
        size_t n = i == 0 ? 8 * TU_MiB : i % 50 == 1 ? 200 * TU_KiB : i % 10 == 2 ? 20000 : 1 + (i * 37) % 1500;
        void *p = um_malloc(n);
        if (!p)
            return 12;
        if (!tu_is_aligned(p, 16))
            return 13;
        tu_fill(p, n, tu_seed(p, n));
        blk[i] = (tu_block_t){p, n};
    }
    for (size_t i = 0; i < N; i += 2) {
        if (tu_check(blk[i].p, blk[i].size, tu_seed(blk[i].p, blk[i].size)) >= 0)
            return 14;
        um_free(blk[i].p);
    }
    void *big = um_realloc(NULL, 3 * TU_MiB);
    if (!big)
        return 15;
    memset(big, 0x77, 3 * TU_MiB);
    big = um_realloc(big, 24 * TU_MiB);
    if (!big || tu_check_byte(big, 3 * TU_MiB, 0x77) >= 0)
        return 16;
    um_free(big);
    unsigned char *z = um_calloc(1000, 10);
    if (!z || tu_check_byte(z, 10000, 0) >= 0)
        return 17;
    um_free(z);
    for (size_t i = 1; i < N; i += 2) {
        if (tu_check(blk[i].p, blk[i].size, tu_seed(blk[i].p, blk[i].size)) >= 0)
            return 18;
        um_free(blk[i].p);
    }
    um_totals_t t;
    um_get_totals(&t);
    if (t.mapped_bytes < t.live_bytes)
        return 19;
    um_trim(0);
    return 0;
}

Test(fork, fork_while_threads_allocate, .timeout = 170)
{
    const size_t forks = tu_pick(50, 50, 20);
    const double deadline_s = tu_is_tsan() ? 30.0 : 10.0;
    static churn_arg_t workers[WORKERS];
    pthread_t th[WORKERS];
    atomic_int stop = 0, ready = 0;
    int statuses[64];
    int hung[64];
    cr_assert_leq(forks, sizeof statuses / sizeof statuses[0]);
    tu_fail_reset();
    for (unsigned i = 0; i < WORKERS; i++) {
        memset(&workers[i], 0, sizeof workers[i]);
        workers[i].id = i + 1;
        workers[i].stop = &stop;
        workers[i].ready = &ready;
        cr_assert_eq(pthread_create(&th[i], NULL, churn, &workers[i]), 0);
    }
    while (atomic_load(&ready) < WORKERS)
        tu_sleep_ms(1);

    double t0 = tu_now();
    size_t done = 0;
    for (size_t f = 0; f < forks; f++) {
        size_t n = 100 + f * 10;
        void *p = um_malloc(n);
        if (!p)
            break;
        tu_fill(p, n, tu_seed(p, n));
        tu_block_t inherited = {p, n};
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0)
            _exit(child_body(inherited, workers, (unsigned)f));
        um_free(p);
        statuses[f] = -1;
        hung[f] = 0;
        if (pid < 0) {
            statuses[f] = -2;
            done++;
            break;
        }
        double until = tu_now() + deadline_s;
        for (;;) {
            int st;
            pid_t r = waitpid(pid, &st, WNOHANG);
            if (r == pid) {
                statuses[f] = st;
                break;
            }
            if (r < 0 && errno != EINTR) {
                statuses[f] = -3;
                break;
            }
            if (tu_now() > until) {
                hung[f] = 1;
                kill(pid, SIGKILL);
                waitpid(pid, &st, 0);
                break;
            }
            tu_sleep_ms(1);
        }
        done++;
        if (hung[f])
            break;
        /* let the workers move on between forks */
        tu_sleep_ms(2);
    }
    atomic_store(&stop, 1);
    for (unsigned i = 0; i < WORKERS; i++)
        pthread_join(th[i], NULL);
    size_t ops = 0;
    for (unsigned i = 0; i < WORKERS; i++)
        ops += workers[i].ops;
    fprintf(stderr, "[fork/fork_while_threads_allocate] %zu forks in %.2f s, workers did %zu ops\n", done,
            tu_now() - t0, ops);

    cr_assert_eq(done, forks, "only %zu of %zu forks were made", done, forks);
    for (size_t f = 0; f < done; f++) {
        cr_assert_eq(hung[f], 0, "child %zu hung (killed after %.0f s)", f, deadline_s);
        cr_assert_geq(statuses[f], 0, "fork/waitpid failed for child %zu (%d)", f, statuses[f]);
        cr_assert(WIFEXITED(statuses[f]), "child %zu died from signal %d", f,
                  WIFSIGNALED(statuses[f]) ? WTERMSIG(statuses[f]) : -1);
        cr_assert_eq(WEXITSTATUS(statuses[f]), 0, "child %zu exited with %d (see child_body for the code)", f,
                     WEXITSTATUS(statuses[f]));
    }
    cr_assert_eq(atomic_load(&tu_fail_count), 0, "worker failure: %s", tu_fail_msg);
    cr_assert_gt(ops, 0, "the workers did not run");
}

/* Single-threaded fork: the child inherits the heap and can use and free all of it. */
Test(fork, child_uses_inherited_heap)
{
    enum { N = 2000 };
    static tu_block_t blk[N];
    for (size_t i = 0; i < N; i++) {
        size_t n = i % 100 == 0 ? 300 * TU_KiB : 1 + (i * 13) % 2000;
        blk[i] = (tu_block_t){um_malloc(n), n};
        cr_assert_not_null(blk[i].p);
        tu_fill(blk[i].p, n, tu_seed(blk[i].p, n));
    }
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork failed");
    if (pid == 0) {
        for (size_t i = 0; i < N; i++) {
            if (tu_check(blk[i].p, blk[i].size, tu_seed(blk[i].p, blk[i].size)) >= 0)
                _exit(20);
            if (i % 2)
                um_free(blk[i].p);
        }
        for (size_t i = 0; i < N; i++) {
            void *p = um_malloc(blk[i].size);
            if (!p)
                _exit(21);
            memset(p, 0xee, blk[i].size);
            for (size_t k = 0; k < N; k += 2) /* the still-live inherited blocks are intact */
                if (i % 500 == 0 && tu_check(blk[k].p, blk[k].size, tu_seed(blk[k].p, blk[k].size)) >= 0)
                    _exit(22);
            um_free(p);
        }
        _exit(0);
    }
    int st = 0;
    double until = tu_now() + (tu_is_tsan() ? 60 : 20);
    pid_t r;
    while ((r = waitpid(pid, &st, WNOHANG)) == 0 && tu_now() < until)
        tu_sleep_ms(2);
    if (r == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    cr_assert_eq(r, pid, "child hung");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed: status %#x", st);
    /* the parent's blocks are untouched by what the child did */
    for (size_t i = 0; i < N; i++) {
        cr_assert_eq(tu_check(blk[i].p, blk[i].size, tu_seed(blk[i].p, blk[i].size)), -1);
        um_free(blk[i].p);
    }
}

/* A fork child writes nothing into the memory of the parent's other threads: their heaps
 * become orphans as they are (umi_heap_orphan_others). Each write would copy a page the child
 * shares with its parent, and a child that only calls exec would pay a fault and a copy for
 * every small page those threads hold. Counted as the child's page faults up to fork's return,
 * which the kernel starts from zero. */
enum { HOLDER_BLOCKS = 32 * 1024 * 1024 / 64 }; /* 32 MiB of 64-byte blocks: 512 small pages */
static void *holder_blocks[HOLDER_BLOCKS];
static atomic_int holder_ready, holder_exit;

static void *holder(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < HOLDER_BLOCKS; i++) {
        holder_blocks[i] = um_malloc(64);
        if (!holder_blocks[i])
            tu_fail("um_malloc(64) failed");
        else
            memset(holder_blocks[i], 0x3c, 64);
    }
    atomic_store(&holder_ready, 1);
    while (!atomic_load(&holder_exit))
        tu_sleep_ms(1);
    for (size_t i = 0; i < HOLDER_BLOCKS; i++)
        um_free(holder_blocks[i]);
    return NULL;
}

Test(fork, child_copies_no_page_of_other_threads, .timeout = 120)
{
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, holder, NULL), 0);
    while (!atomic_load(&holder_ready))
        tu_sleep_ms(1);
    cr_assert_eq(atomic_load(&tu_fail_count), 0, "%s", tu_fail_msg);
    um_free(um_malloc(32)); /* the forking thread has a heap of its own, which lives on */
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork failed");
    if (pid == 0) {
        struct rusage ru;
        long faults = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_minflt + ru.ru_majflt : -1;
        /* the orphan's blocks can still be read and freed, and the child allocates as usual */
        int ok = memcmp(holder_blocks[0], holder_blocks[HOLDER_BLOCKS - 1], 64) == 0;
        for (size_t i = 0; i < HOLDER_BLOCKS; i += 4096)
            um_free(holder_blocks[i]);
        void *p = um_malloc(100);
        ok = ok && p != NULL;
        um_free(p);
        long msg[2] = {faults, ok};
        _exit(write(fds[1], msg, sizeof msg) == sizeof msg ? 0 : 1);
    }
    close(fds[1]);
    long msg[2] = {-1, 0};
    ssize_t got = read(fds[0], msg, sizeof msg);
    close(fds[0]);
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    atomic_store(&holder_exit, 1);
    pthread_join(t, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0 && got == sizeof msg, "child failed: status %#x", st);
    cr_assert_eq(msg[1], 1, "the child could not use the orphaned blocks or allocate");
    fprintf(stderr, "[fork/child_copies_no_page_of_other_threads] page faults of the child up to fork's return: %ld\n", msg[0]);
    cr_assert_geq(msg[0], 0, "getrusage failed in the child");
    /* the child's own stack, the pages fork's handlers write and, under TSan, its runtime's
     * (30-70 in all) are all it may copy; writing into the other thread's 512 pages is 512
     * faults more */
    cr_assert_lt(msg[0], 200, "the fork child took %ld page faults before fork returned: it wrote into the pages of the parent's other thread", msg[0]);
}

/* The places of threads that keep a freed huge block for their next one (core/huge.c, at most
 * 64 at a time) held by the parent's other threads are the child's again: those threads do not
 * exist there. A child of a process whose 64 threads each kept one keeps its own. */
enum { KEEPERS = 64 };
static pthread_barrier_t kept_all, kept_done;
static void *keep_one_huge_block(void *arg)
{
    (void)arg;
    void *p = um_malloc(TU_MiB);
    if (!p)
        tu_fail("um_malloc(1 MiB) failed");
    um_free(p); /* kept by this thread */
    pthread_barrier_wait(&kept_all);
    pthread_barrier_wait(&kept_done);
    return NULL;
}

Test(fork, a_child_keeps_huge_blocks_when_the_parents_threads_kept_theirs, .timeout = 120)
{
    pthread_t t[KEEPERS];
    pthread_barrier_init(&kept_all, NULL, KEEPERS + 1);
    pthread_barrier_init(&kept_done, NULL, KEEPERS + 1);
    for (int i = 0; i < KEEPERS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, keep_one_huge_block, NULL), 0);
    pthread_barrier_wait(&kept_all);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork failed");
    if (pid == 0) {
        void *p = um_malloc(TU_MiB);
        if (!p)
            _exit(2);
        size_t cached = atomic_load(&umi_huge_cached_bytes);
        um_free(p);
        _exit(atomic_load(&umi_huge_cached_bytes) == cached ? 0 : 1); /* kept, not in the shared cache */
    }
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    pthread_barrier_wait(&kept_done);
    for (int i = 0; i < KEEPERS; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(atomic_load(&tu_fail_count), 0, "%s", tu_fail_msg);
    cr_assert(WIFEXITED(st), "the child died (status %#x)", st);
    cr_assert_eq(WEXITSTATUS(st), 0, "the child's freed huge block went to the shared cache: the parent's threads still hold every place");
}
