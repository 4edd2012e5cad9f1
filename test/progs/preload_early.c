/* preload_early: run under LD_PRELOAD=libumalloc.so. malloc must work before main (in an early
 * constructor, priority 101, and a default-priority one) and after it (in atexit handlers and
 * destructors, which free blocks allocated earlier and allocate new ones), and the blocks must be
 * umalloc's. Output is written with write(2) so it survives stdio teardown; each stage prints
 * "<stage> ok". A failure prints "FAIL" and exits with status 1 at once (_exit). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int (*owns)(const void *);
static char *from_ctor101, *from_ctor, *from_main;
static void *ctor_many[100];

static void say(const char *s) {
    ssize_t r = write(1, s, strlen(s));
    (void)r;
}
static void die(const char *stage, const char *what) {
    char buf[512];
    snprintf(buf, sizeof buf, "FAIL in %s: %s\n", stage, what);
    ssize_t r = write(2, buf, strlen(buf));
    (void)r;
    _exit(1);
}

static void check_block(const char *stage, void *p, size_t n) {
    if (!p) die(stage, "malloc returned NULL");
    if (!owns) owns = (int (*)(const void *))dlsym(RTLD_DEFAULT, "um_owns");
    if (!owns) die(stage, "um_owns not found: not running under libumalloc.so");
    if (!owns(p)) die(stage, "block not owned by umalloc");
    memset(p, 0x6B, n);
}

__attribute__((constructor(101))) static void ctor101(void) {
    from_ctor101 = malloc(100);
    check_block("constructor(101)", from_ctor101, 100);
    strcpy(from_ctor101, "made in constructor 101");
    for (int i = 0; i < 100; i++) {
        ctor_many[i] = malloc((size_t)i * 97 + 1);
        check_block("constructor(101)", ctor_many[i], (size_t)i * 97 + 1);
    }
    char *big = calloc(1, 3 << 20);
    check_block("constructor(101)", big, 3 << 20);
    free(big);
    char *d = strdup("strdup in constructor");
    check_block("constructor(101)", d, strlen(d) + 1);
    free(d);
    say("constructor(101) ok\n");
}

__attribute__((constructor)) static void ctor_default(void) {
    from_ctor = realloc(NULL, 50);
    check_block("constructor", from_ctor, 50);
    strcpy(from_ctor, "made in constructor");
    for (int i = 0; i < 100; i += 2) { /* free half of the early blocks here */
        free(ctor_many[i]);
        ctor_many[i] = NULL;
    }
    say("constructor ok\n");
}

static void atexit_first(void) { /* registered first: runs last of the atexit handlers */
    if (strcmp(from_main, "made in main") != 0) die("atexit", "main's block corrupted");
    free(from_main);
    from_main = NULL;
    char *p = malloc(5000);
    check_block("atexit", p, 5000);
    free(p);
    say("atexit ok\n");
}
static void atexit_second(void) {
    for (int i = 1; i < 100; i += 2) {
        free(ctor_many[i]);
        ctor_many[i] = NULL;
    }
    void *p = malloc(1 << 20);
    check_block("atexit", p, 1 << 20);
    free(p);
}

__attribute__((destructor)) static void dtor_default(void) {
    if (strcmp(from_ctor, "made in constructor") != 0) die("destructor", "constructor's block corrupted");
    from_ctor = realloc(from_ctor, 100000);
    check_block("destructor", from_ctor, 100000);
    free(from_ctor);
    say("destructor ok\n");
}

__attribute__((destructor(101))) static void dtor101(void) { /* runs after the default one */
    if (strcmp(from_ctor101, "made in constructor 101") != 0)
        die("destructor(101)", "constructor 101's block corrupted");
    free(from_ctor101);
    void *p = malloc(64);
    check_block("destructor(101)", p, 64);
    free(p);
    say("destructor(101) ok\n");
}

int main(void) {
    if (!from_ctor101 || !from_ctor) die("main", "constructors did not run");
    if (strcmp(from_ctor101, "made in constructor 101") != 0 ||
        strcmp(from_ctor, "made in constructor") != 0)
        die("main", "constructors' blocks corrupted");
    from_main = malloc(64);
    check_block("main", from_main, 64);
    strcpy(from_main, "made in main");
    atexit(atexit_first);
    atexit(atexit_second);
    printf("main ok\n"); /* stdio: flushed by exit() */
    fflush(stdout);
    return 0;
}
