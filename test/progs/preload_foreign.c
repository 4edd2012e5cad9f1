/* preload_foreign: run under LD_PRELOAD=libumalloc.so. Frees pointers umalloc never handed out
 * (a stack buffer, a static array, a pointer into the middle of a live block) and frees a block
 * twice. umalloc must not crash, must say so on stderr with a line mentioning "umalloc", and
 * must keep working: 100k blocks are allocated, checked and freed afterwards, and the block that
 * got the interior free must be intact and never handed out again while live.
 * Each bad free runs with fd 2 redirected to a temp file so the message can be checked; the
 * captured text is echoed to the real stderr afterwards. Exit 0 on success. */
/* The odd calls below are deliberate (failed realloc keeps the block, double free). */
#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Wuse-after-free"

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;
#define CHECK(cond, ...)                                                                          \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                  \
            fprintf(stderr, __VA_ARGS__);                                                         \
            fputc('\n', stderr);                                                                  \
            failures++;                                                                           \
        }                                                                                         \
    } while (0)

/* Hides the pointer's origin from the compiler (no -Wfree-nonheap-object, no folding). */
static void *launder(void *p) {
    void *volatile v = p;
    return v;
}

/* Runs free(p) with stderr captured; returns 1 if the captured text mentions "umalloc". */
static int free_captured(const char *what, void *p) {
    fflush(stderr);
    FILE *tf = tmpfile();
    if (!tf) {
        perror("tmpfile");
        exit(3);
    }
    int saved = dup(2);
    dup2(fileno(tf), 2);
    free(launder(p));
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char buf[2048] = {0};
    ssize_t n = pread(fileno(tf), buf, sizeof buf - 1, 0);
    fclose(tf);
    if (n < 0) n = 0;
    buf[n] = 0;
    fprintf(stderr, "[%s] umalloc said: %s%s", what, n ? buf : "(nothing)\n",
            n && buf[n - 1] != '\n' ? "\n" : "");
    int ok = strstr(buf, "umalloc") != NULL;
    CHECK(ok, "free(%s): no message mentioning \"umalloc\" on stderr", what);
    printf("%s: survived free(%s), message %s\n", ok ? "ok" : "bad", what,
           ok ? "printed" : "MISSING");
    fflush(stdout);
    return ok;
}

static unsigned char static_array[256];

int main(void) {
    int (*owns)(const void *) = (int (*)(const void *))dlsym(RTLD_DEFAULT, "um_owns");
    if (!owns) {
        fprintf(stderr, "FAIL: dlsym(um_owns) = NULL: not running under libumalloc.so\n");
        return 2;
    }
    /* Warm up so the heap has state that a bad free could corrupt. */
    void *warm[64];
    for (int i = 0; i < 64; i++) warm[i] = malloc(16 + i * 24);

    unsigned char stack_buf[128];
    memset(stack_buf, 0x11, sizeof stack_buf);
    free_captured("stack buffer", stack_buf);
    for (size_t i = 0; i < sizeof stack_buf; i++)
        if (stack_buf[i] != 0x11) {
            CHECK(0, "stack buffer written by free()");
            break;
        }

    memset(static_array, 0x22, sizeof static_array);
    free_captured("static array", static_array);
    for (size_t i = 0; i < sizeof static_array; i++)
        if (static_array[i] != 0x22) {
            CHECK(0, "static array written by free()");
            break;
        }

    unsigned char *blk = malloc(200);
    memset(blk, 0x33, 200);
    free_captured("pointer into the middle of a 200-byte block (+100)", blk + 100);
    for (int i = 0; i < 200; i++)
        if (blk[i] != 0x33) {
            CHECK(0, "block content changed by interior free at byte %d", i);
            break;
        }
    CHECK(owns(blk), "block no longer owned after interior free");

    /* The same in a huge block, two pages in (page-aligned: it could look like a block start
     * to a lookup that trusted the page before it). */
    unsigned char *huge = malloc(3 << 20);
    memset(huge, 0x66, 3 << 20);
    free_captured("pointer two pages into a 3 MiB block (+8192)", huge + 8192);
    CHECK(huge[0] == 0x66 && huge[8192] == 0x66 && huge[(3 << 20) - 1] == 0x66, "3 MiB block changed by the interior free");
    CHECK(owns(huge), "3 MiB block no longer owned after interior free");
    free(huge);

    unsigned char *twice = malloc(64);
    memset(twice, 0x44, 64);
    free(twice);
    free_captured("the same 64-byte block a second time (double free)", twice);

    /* A larger block, double-freed too: different size class / path. */
    unsigned char *big = malloc(300000);
    memset(big, 0x55, 300000);
    free(big);
    free_captured("a 300000-byte block a second time (double free)", big);

    for (int i = 0; i < 64; i++) free(warm[i]);

    /* The allocator must keep working: 100k blocks, content-checked, none overlapping blk. */
    enum { N = 100000 };
    unsigned char **v = malloc(N * sizeof *v);
    size_t *sz = malloc(N * sizeof *sz);
    CHECK(v && sz, "malloc of the pointer arrays failed");
    if (!v || !sz) return 1;
    uint64_t x = 88172645463325252ull;
    int dup_twice = 0, overlap = 0;
    for (int i = 0; i < N; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        sz[i] = 1 + (x % 997) * ((x >> 20) % 8 == 0 ? 37 : 1);
        v[i] = malloc(sz[i]);
        if (!v[i]) {
            CHECK(0, "malloc(%zu) = NULL after the bad frees (i = %d)", sz[i], i);
            return 1;
        }
        if (v[i] == twice) dup_twice++;
        if (v[i] < blk + 200 && v[i] + sz[i] > blk) overlap++;
        memset(v[i], (int)(i * 7 + 1), sz[i]);
    }
    CHECK(dup_twice <= 1, "the double-freed block was handed out %d times at once", dup_twice);
    CHECK(overlap == 0, "%d new blocks overlap the live block that got an interior free", overlap);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        for (size_t k = 0; k < sz[i]; k++)
            if (v[i][k] != (unsigned char)(i * 7 + 1)) {
                bad++;
                break;
            }
    }
    CHECK(bad == 0, "%d of %d blocks had corrupted content", bad, N);
    for (int i = 0; i < 200; i++)
        if (blk[i] != 0x33) {
            CHECK(0, "the live block was overwritten at byte %d by later allocations", i);
            break;
        }
    for (int i = 0; i < N; i++) free(v[i]);
    free(v);
    free(sz);
    free(blk);
    printf("ok: 100000 blocks allocated, verified and freed after the bad frees\n");
    if (failures) {
        fprintf(stderr, "preload_foreign: %d check(s) failed\n", failures);
        return 1;
    }
    printf("preload_foreign: all checks passed\n");
    return 0;
}
