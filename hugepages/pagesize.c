/* Page-size policy (see hugepages/pagesize.h). */
#include "hugepages/pagesize.h"

#include "os/os.h"
#include "umalloc.h"

#define UM_THP_MIN ((size_t)2 << 20) /* one transparent huge page: below it advice buys nothing */

unsigned umi_pages_for_huge_block(void *p, size_t size) {
    if (size < UM_THP_MIN) return UM_PAGES_4K;
    return umi_os_advise_huge(p, size) ? UM_PAGES_THP : UM_PAGES_4K;
}
