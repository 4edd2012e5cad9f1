// cxx: a C++ program's allocations, through operator new and delete: standard containers
// keyed by strings longer than the small-string buffer, the way an index, a symbol table or a
// cache is kept. Each thread keeps a std::map<std::string, std::vector<uint32_t>> and a
// std::unordered_map<uint64_t, std::string>; each op picks a random key among `keys` and
// inserts, appends to, erases or replaces its entry; every 1000 ops a batch of 200
// shared_ptr'd objects is built and dropped. At the end each thread walks both maps and checks
// every value against what its key says it must hold.
//
//   cxx threads=1 ops=2000000 keys=20000 seed=1
// ops is per thread. Prints "cxx ok checksum=..." (independent of the allocator) or fails.
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

static long long arg(int argc, char **argv, const char *name, long long def) {
    size_t n = std::strlen(name);
    for (int i = 1; i < argc; i++)
        if (std::strncmp(argv[i], name, n) == 0 && argv[i][n] == '=') return std::atoll(argv[i] + n + 1);
    return def;
}

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

// the key's text: 20..67 characters, so never in std::string's inline buffer
static std::string key_text(uint64_t k) {
    uint64_t h = mix64(k);
    std::string s = "key:" + std::to_string(k) + ":";
    s.append(16 + h % 48, static_cast<char>('a' + h % 26));
    return s;
}

struct Obj {
    uint64_t id;
    std::string name;
    explicit Obj(uint64_t i) : id(i), name(key_text(i)) {}
};

struct Result {
    uint64_t sum = 0;
    long long bad = 0;
};

static void worker(int t, long long ops, long long keys, uint64_t seed, Result *out) {
    std::map<std::string, std::vector<uint32_t>> ordered;
    std::unordered_map<uint64_t, std::string> hashed;
    uint64_t x = mix64(seed * 1000003 + static_cast<uint64_t>(t)) | 1;
    uint64_t sum = 0;
    for (long long i = 0; i < ops; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t k = (x >> 8) % static_cast<uint64_t>(keys);
        switch (x & 7) {
        case 0: case 1: case 2: ordered[key_text(k)].push_back(static_cast<uint32_t>(k)); break;
        case 3: ordered.erase(key_text(k)); break;
        case 4: case 5: hashed[k] = key_text(k); break;
        case 6: hashed.erase(k); break;
        default:
            if (i % 1000 == 7) {
                std::vector<std::shared_ptr<Obj>> batch;
                for (int j = 0; j < 200; j++) batch.push_back(std::make_shared<Obj>(k + j));
                for (auto &o : batch) sum += o->name.size();
            }
        }
    }
    long long bad = 0;
    for (auto &e : ordered) {
        uint64_t k = std::strtoull(e.first.c_str() + 4, nullptr, 10);
        if (e.first != key_text(k)) bad++;
        for (uint32_t v : e.second)
            if (v != static_cast<uint32_t>(k)) bad++;
        sum += e.first.size() * 7 + e.second.size();
    }
    for (auto &e : hashed) {
        if (e.second != key_text(e.first)) bad++;
        sum += e.first * 3 + e.second.size();
    }
    out->sum = sum;
    out->bad = bad;
}

int main(int argc, char **argv) {
    int threads = static_cast<int>(arg(argc, argv, "threads", 1));
    long long ops = arg(argc, argv, "ops", 2000000);
    long long keys = arg(argc, argv, "keys", 20000);
    uint64_t seed = static_cast<uint64_t>(arg(argc, argv, "seed", 1));
    if (threads < 1 || ops < 1 || keys < 1) {
        std::fprintf(stderr, "cxx: threads, ops and keys must be positive\n");
        return 2;
    }
    std::vector<Result> res(threads);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; t++) pool.emplace_back(worker, t, ops, keys, seed, &res[t]);
    for (auto &th : pool) th.join();
    uint64_t sum = 0;
    long long bad = 0;
    for (auto &r : res) sum += r.sum, bad += r.bad;
    if (bad) {
        std::fprintf(stderr, "cxx: %lld values did not match their keys\n", bad);
        return 3;
    }
    std::printf("cxx ok checksum=%016" PRIx64 "\n", sum);
    return 0;
}
