/* The threads of test/fuzz/fuzz_api.c: the helper that frees blocks the main thread hands it
 * (remote frees), and a thread that exits with blocks live. Included once, by fuzz_api.c. */
#ifndef FUZZ_THREADS_H
#define FUZZ_THREADS_H

#include <pthread.h>

#include "shadow.h"

/* ---- the helper thread: remote frees ----------------------------------------------------------- */
typedef struct {
    fz_block_t b;
    unsigned mode, v;
} fz_job_t;
#define FZ_QUEUE 32
static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake, idle;
    fz_job_t q[FZ_QUEUE];
    unsigned head, count, busy;
} helper = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER, .idle = PTHREAD_COND_INITIALIZER};

static void *helper_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&helper.lock);
    for (;;) {
        while (helper.count == 0)
            pthread_cond_wait(&helper.wake, &helper.lock);
        fz_job_t j = helper.q[helper.head];
        helper.head = (helper.head + 1) % FZ_QUEUE;
        helper.count--;
        helper.busy = 1;
        pthread_mutex_unlock(&helper.lock);
        fz_note(FZ_OP_REMOTE_FREE, 0, 1, j.b.req, j.mode, j.b.p);
        free_block(&j.b, j.mode, j.v, "remote free");
        pthread_mutex_lock(&helper.lock);
        helper.busy = 0;
        pthread_cond_broadcast(&helper.idle);
    }
    return NULL;
}

static void helper_push(const fz_block_t *b, unsigned mode, unsigned v)
{
    pthread_mutex_lock(&helper.lock);
    while (helper.count == FZ_QUEUE)
        pthread_cond_wait(&helper.idle, &helper.lock);
    helper.q[(helper.head + helper.count) % FZ_QUEUE] = (fz_job_t){*b, mode, v};
    helper.count++;
    pthread_cond_signal(&helper.wake);
    pthread_mutex_unlock(&helper.lock);
}

/* Until the helper has freed everything it was given. */
static void helper_flush(void)
{
    pthread_mutex_lock(&helper.lock);
    while (helper.count != 0 || helper.busy)
        pthread_cond_wait(&helper.idle, &helper.lock);
    pthread_mutex_unlock(&helper.lock);
}

/* ---- the exiting thread ------------------------------------------------------------------------ */
#define FZ_EXIT_BLOCKS 8
typedef struct {
    size_t size[FZ_EXIT_BLOCKS];
    uint8_t kind[FZ_EXIT_BLOCKS], target[FZ_EXIT_BLOCKS];
    unsigned n;
    fz_block_t to_free[4];     /* main's blocks that this thread frees (remotely) */
    unsigned n_free;
    fz_block_t to_grow;        /* and one it reallocates: the old block is freed remotely */
    size_t grow_to;
    unsigned done_first;       /* um_thread_done before exiting, then one more block */
    unsigned late;             /* a block allocated by a TLS destructor, after umalloc's own */
    fz_block_t out[FZ_EXIT_BLOCKS + 3];
    unsigned n_out;
} fz_exit_plan_t;

/* Created after umalloc's exit key, so it runs after umalloc has let the thread's heap go: a
 * thread_local destructor of C++ that allocates then (umalloc's backup heap serves it). */
static pthread_key_t fz_late_key;

static void late_alloc(void *arg)
{
    fz_exit_plan_t *pl = arg;
    void *p = um_malloc(pl->size[0]);
    fz_note(FZ_OP_THREAD_EXIT, 0, 2, pl->size[0], 1, p);
    fz_adopt(&pl->out[pl->n_out++], p, pl->size[0], 0, 1, 0, (uint32_t)fz_mix((uintptr_t)p + 1), FZ_OP_THREAD_EXIT);
}

static void fz_threads_init(void)
{
    um_free(um_malloc(1)); /* umalloc's process start: its exit key first */
    if (pthread_key_create(&fz_late_key, late_alloc) != 0)
        fz_fail("pthread_key_create failed");
}

static void *exiting_main(void *arg)
{
    fz_exit_plan_t *pl = arg;
    if (pl->late)
        pthread_setspecific(fz_late_key, pl);
    for (unsigned i = 0; i < pl->n_free; i++) {
        fz_note(FZ_OP_THREAD_EXIT, 0, 2, pl->to_free[i].req, 0, pl->to_free[i].p);
        free_block(&pl->to_free[i], i, i, "free in an exiting thread");
    }
    if (pl->to_grow.p != NULL) { /* a realloc by a thread that does not own the block */
        fz_block_t *g = &pl->to_grow;
        fz_verify(g, g->usable, "realloc in an exiting thread");
        void *q = um_realloc(g->p, pl->grow_to);
        fz_note(FZ_OP_THREAD_EXIT, 0, 2, pl->grow_to, g->req, q);
        if (q == NULL)
            fz_fail("realloc in an exiting thread: um_realloc(%p, %zu) returned NULL", (void *)g->p, pl->grow_to);
        check_kept(g, q, pl->grow_to, "realloc in an exiting thread");
        fz_adopt(&pl->out[pl->n_out++], q, pl->grow_to, 0, 0, 0, g->seed, FZ_OP_REALLOC);
    }
    for (unsigned i = 0; i < pl->n; i++) {
        size_t s = pl->size[i];
        void *p;
        size_t align = 0;
        switch (pl->kind[i] % 3) {
        case 0: p = um_malloc(s); break;
        case 1: p = um_calloc(1, s); break;
        default: align = (size_t)64 << (pl->kind[i] % 7); p = um_aligned_alloc(align, s); break;
        }
        fz_note(FZ_OP_THREAD_EXIT, pl->target[i], 2, s, align, p);
        fz_adopt(&pl->out[pl->n_out++], p, s, align, align == 0, pl->kind[i] % 3 == 1,
                 (uint32_t)fz_mix(s ^ (uintptr_t)p), FZ_OP_THREAD_EXIT);
    }
    if (pl->done_first) { /* give the heap away early, then get a fresh one */
        um_thread_done();
        void *p = um_malloc(100);
        fz_adopt(&pl->out[pl->n_out++], p, 100, 0, 1, 0, (uint32_t)fz_mix((uintptr_t)p), FZ_OP_THREAD_EXIT);
    }
    return NULL;
}

#endif /* FUZZ_THREADS_H */
