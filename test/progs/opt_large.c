/* opt_large: shows which blocks umalloc maps on their own, for the UMALLOC_LARGE_THRESHOLD
 * tests in test/sys_options.c. Run under LD_PRELOAD=libumalloc.so.
 *
 *   opt_large SIZE...
 *
 * For each SIZE: malloc it, and print "SIZE usable=U large_delta=D" where U is its usable size
 * and D how much um_get_totals().large_bytes grew while it was live; then free it.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "umalloc.h"

int main(int argc, char **argv) {
    void (*totals)(um_totals_t *) = (void (*)(um_totals_t *))dlsym(RTLD_DEFAULT, "um_get_totals");
    size_t (*usable)(const void *) = (size_t(*)(const void *))dlsym(RTLD_DEFAULT, "um_malloc_usable_size");
    if (!totals || !usable) {
        printf("no-umalloc\n");
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        size_t size = strtoull(argv[i], NULL, 0);
        um_totals_t before, after;
        totals(&before);
        char *p = malloc(size);
        if (!p) {
            printf("%zu failed\n", size);
            return 1;
        }
        memset(p, 1, size);
        totals(&after);
        printf("%zu usable=%zu large_delta=%lld\n", size, usable(p),
               (long long)after.large_bytes - (long long)before.large_bytes);
        free(p);
    }
    return 0;
}
