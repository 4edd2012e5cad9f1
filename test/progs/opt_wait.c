/* opt_wait: a program that lives until its stdin is closed, for the UMALLOC_STATS_SIGNAL tests
 * in test/sys_options.c. Prints "ready" once it runs, allocates a little, reads stdin to
 * end-of-file (a signal interrupting the read is fine), prints "bye" and exits 0.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    void *volatile keep = malloc(1000);
    memset(keep, 1, 1000);
    printf("ready\n");
    fflush(stdout);
    char buf[256];
    for (;;) {
        ssize_t r = read(0, buf, sizeof buf);
        if (r == 0) break;
        if (r < 0 && errno != EINTR) break;
    }
    free(keep);
    printf("bye\n");
    return 0;
}
