// preload_cxx: C++'s operator new and delete under LD_PRELOAD=libumalloc.so (preload/cxx.c).
//  - every form of new and delete the program calls is the library's (dladdr of its address);
//  - their blocks are umalloc's (malloc_usable_size, which is ours, knows them), aligned as
//    asked, and each form is released by its matching delete;
//  - out of memory keeps the C++ library's semantics: the new-handler is called, then
//    std::bad_alloc is thrown (through umalloc's operator, which falls back on libstdc++'s);
//    the nothrow forms return nullptr.
// Prints "ok: ..." per check and "preload_cxx: all checks passed"; exits 1 on the first failure.
#include <dlfcn.h>
#include <malloc.h>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <new>

#define CHECK(cond, ...)                                                                          \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            std::printf("FAIL: ");                                                                \
            std::printf(__VA_ARGS__);                                                             \
            std::printf("\n");                                                                    \
            std::exit(1);                                                                         \
        }                                                                                         \
    } while (0)

static const char *defined_in(void *fn) {
    Dl_info info;
    if (dladdr(fn, &info) == 0 || info.dli_fname == nullptr) return "?";
    return info.dli_fname;
}

static void check_ours(const char *what, void *fn) {
    const char *lib = defined_in(fn);
    CHECK(std::strstr(lib, "libumalloc") != nullptr, "%s is defined in %s, not in libumalloc", what, lib);
}

// one block of each form, written over, its size known to umalloc, then released
static void check_block(const char *what, void *p, std::size_t size, std::size_t align) {
    CHECK(p != nullptr, "%s returned nullptr", what);
    CHECK(reinterpret_cast<std::uintptr_t>(p) % align == 0, "%s: %p not %zu-aligned", what, p, align);
    std::memset(p, 0x5a, size);
    CHECK(malloc_usable_size(p) >= size, "%s: usable size %zu < %zu (not umalloc's block?)", what,
          malloc_usable_size(p), size);
}

static int handler_calls;
static void handler() {
    handler_calls++;
    std::set_new_handler(nullptr); // the next failure throws
}

int main() {
    check_ours("operator new", reinterpret_cast<void *>(static_cast<void *(*)(std::size_t)>(&::operator new)));
    check_ours("operator new[]", reinterpret_cast<void *>(static_cast<void *(*)(std::size_t)>(&::operator new[])));
    check_ours("operator new(nothrow)", reinterpret_cast<void *>(
        static_cast<void *(*)(std::size_t, const std::nothrow_t &) noexcept>(&::operator new)));
    check_ours("operator new(align_val_t)", reinterpret_cast<void *>(
        static_cast<void *(*)(std::size_t, std::align_val_t)>(&::operator new)));
    check_ours("operator delete", reinterpret_cast<void *>(static_cast<void (*)(void *) noexcept>(&::operator delete)));
    check_ours("operator delete(sized)", reinterpret_cast<void *>(
        static_cast<void (*)(void *, std::size_t) noexcept>(&::operator delete)));
    check_ours("operator delete[](align_val_t)", reinterpret_cast<void *>(
        static_cast<void (*)(void *, std::align_val_t) noexcept>(&::operator delete[])));
    std::printf("ok: operators new and delete are libumalloc's\n");

    for (std::size_t size : {std::size_t(0), std::size_t(1), std::size_t(24), std::size_t(1000),
                             std::size_t(40000), std::size_t(3) << 20}) {
        std::size_t n = size ? size : 1;
        void *a = ::operator new(size);
        check_block("new", a, size, 16);
        ::operator delete(a, size);
        void *b = ::operator new[](size);
        check_block("new[]", b, size, 16);
        ::operator delete[](b);
        void *c = ::operator new(size, std::nothrow);
        check_block("new(nothrow)", c, size, 16);
        ::operator delete(c, std::nothrow);
        for (std::size_t align : {std::size_t(64), std::size_t(4096), std::size_t(1) << 21}) {
            void *d = ::operator new(n, std::align_val_t(align));
            check_block("new(align_val_t)", d, n, align);
            ::operator delete(d, n, std::align_val_t(align));
            void *e = ::operator new[](n, std::align_val_t(align), std::nothrow);
            check_block("new[](align_val_t, nothrow)", e, n, align);
            ::operator delete[](e, std::align_val_t(align), std::nothrow);
        }
    }
    std::printf("ok: every form of new gives a umalloc block, aligned as asked\n");

    const std::size_t huge = std::size_t(1) << 62;
    bool thrown = false;
    try {
        void *p = ::operator new(huge);
        std::printf("FAIL: new(2^62) returned %p\n", p);
        return 1;
    } catch (const std::bad_alloc &) {
        thrown = true;
    }
    CHECK(thrown, "new(2^62) did not throw");
    CHECK(::operator new(huge, std::nothrow) == nullptr, "new(2^62, nothrow) did not return nullptr");
    CHECK(::operator new[](huge, std::align_val_t(64), std::nothrow) == nullptr,
          "new[](2^62, align 64, nothrow) did not return nullptr");
    thrown = false;
    try {
        (void)::operator new[](huge, std::align_val_t(4096));
    } catch (const std::bad_alloc &) {
        thrown = true;
    }
    CHECK(thrown, "new[](2^62, align 4096) did not throw");
    std::printf("ok: out of memory throws std::bad_alloc, or returns nullptr with nothrow\n");

    std::set_new_handler(handler);
    thrown = false;
    try {
        (void)::operator new(huge);
    } catch (const std::bad_alloc &) {
        thrown = true;
    }
    CHECK(thrown && handler_calls == 1, "new-handler: called %d times (want 1), thrown %d", handler_calls, thrown);
    std::printf("ok: the new-handler is called before std::bad_alloc\n");

    std::printf("preload_cxx: all checks passed\n");
    return 0;
}
