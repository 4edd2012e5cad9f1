/* opt_probe: prints what umalloc's options are, for test/sys_options.c.
 *
 *   opt_probe [--null-environ] [--exit N] NAME...
 *
 * stdout: "secure=S" (getauxval(AT_SECURE)), then for each NAME "NAME=TEXT (NUMBER)" from
 * um_option_get_string / um_option_get, or "NAME unknown"; then "done". Exits with N (0).
 * stderr is left to umalloc.
 *
 * Built two ways:
 *  - plainly (the Makefile: build/test/progs/opt_probe), run under LD_PRELOAD=libumalloc.so:
 *    the um_option_* functions are found with dlsym, since the program is not linked with
 *    umalloc ("no-umalloc" if they are missing);
 *  - with -DOPT_PROBE_LINKED, linked with build/libumalloc.a by test/sys_options.c itself, for
 *    the setuid test (ld.so ignores LD_PRELOAD paths in setuid programs) and the /proc test.
 * --null-environ sets environ to NULL before the first call into umalloc, so that umalloc must
 * read /proc/self/environ (only meaningful in the linked build, where options are read on the
 * first um_option_get; under LD_PRELOAD they were read before main).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

extern char **environ;

#ifdef OPT_PROBE_LINKED
int um_option_get(const char *name, long long *value);
int um_option_get_string(const char *name, char *buf, size_t len);
#endif

typedef int (*get_fn)(const char *, long long *);
typedef int (*get_str_fn)(const char *, char *, size_t);

int main(int argc, char **argv) {
    int code = 0, i = 1;
    char **saved_env = environ;
    int null_env = 0;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--exit") == 0 && i + 1 < argc) code = atoi(argv[++i]);
        else if (strcmp(argv[i], "--null-environ") == 0) null_env = 1;
        else break;
    }
    /* Something for the allocator to do, so that it is initialised and used. */
    void *volatile p = malloc(100);
    free(p);
    printf("secure=%lu\n", getauxval(AT_SECURE));
#ifdef OPT_PROBE_LINKED
    get_fn get = um_option_get;
    get_str_fn get_str = um_option_get_string;
#else
    get_fn get = (get_fn)dlsym(RTLD_DEFAULT, "um_option_get");
    get_str_fn get_str = (get_str_fn)dlsym(RTLD_DEFAULT, "um_option_get_string");
    if (!get || !get_str) {
        printf("no-umalloc\n");
        return code;
    }
#endif
    if (null_env) environ = NULL;
    for (; i < argc; i++) {
        long long v = 0;
        char text[4096];
        if (get(argv[i], &v) != 0 || get_str(argv[i], text, sizeof text) != 0) {
            printf("%s unknown\n", argv[i]);
            continue;
        }
        printf("%s=%s (%lld)\n", argv[i], text, v);
    }
    environ = saved_env;
    printf("done\n");
    fflush(stdout);
    return code;
}
