// The Internet checksum's bulk sum (RFC 1071), and a copy that sums what it copies.
//
// Both return the folded ones'-complement sum as a big-endian 16-bit value ("folded, not complemented"), the
// same as InternetChecksum.sum in Swift. The data is added as native 32-bit words into 64-bit accumulators: no
// carry can be lost below 2^32 words, and with several accumulators the adds do not wait for each other
// (an add-with-carry chain on one register is bound by its latency). The sum of 32-bit words folds to the same
// 16-bit value as the sum of 16-bit words (2^16 ≡ 1 modulo 2^16 − 1), and the byte order only matters in the
// final swap (RFC 1071 §2(B)). The AVX2 variants are chosen once, by CPU feature.
#include <stdint.h>
#include <string.h>
#include "CShims.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static inline uint16_t csum_fold(uint64_t s) {
    s = (s & 0xffffffffu) + (s >> 32);
    s = (s & 0xffffffffu) + (s >> 32);
    s = (s & 0xffffu) + (s >> 16);
    s = (s & 0xffffu) + (s >> 16);
    return __builtin_bswap16((uint16_t)s);
}

// The last bytes, fewer than a vector loop step. The words before them were a multiple of 4 bytes, so an odd
// last byte is the high half of a big-endian word: in a native little-endian word it is the low byte.
static inline uint64_t csum_tail(const uint8_t *p, size_t n) {
    uint64_t acc = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) { uint32_t w; memcpy(&w, p + i, 4); acc += w; }
    if (i + 2 <= n) { uint16_t w; memcpy(&w, p + i, 2); acc += w; i += 2; }
    if (i < n) acc += p[i];
    return acc;
}

#if defined(__x86_64__)
static inline uint64_t hsum(__m128i a) {
    return (uint64_t)_mm_cvtsi128_si64(a) + (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(a, a));
}

// One body per instruction set for both the sum and the copying sum: `copy` is a constant at each call site, so
// the compiler emits two straight-line versions.
__attribute__((always_inline))
static inline uint16_t sum_sse2(uint8_t *d, const uint8_t *s, size_t n, int copy) {
    const __m128i zero = _mm_setzero_si128();
    __m128i a0 = zero, a1 = zero, a2 = zero, a3 = zero;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
        __m128i w = _mm_loadu_si128((const __m128i *)(s + i + 16));
        if (copy) {
            _mm_storeu_si128((__m128i *)(d + i), v);
            _mm_storeu_si128((__m128i *)(d + i + 16), w);
        }
        a0 = _mm_add_epi64(a0, _mm_unpacklo_epi32(v, zero));
        a1 = _mm_add_epi64(a1, _mm_unpackhi_epi32(v, zero));
        a2 = _mm_add_epi64(a2, _mm_unpacklo_epi32(w, zero));
        a3 = _mm_add_epi64(a3, _mm_unpackhi_epi32(w, zero));
    }
    uint64_t acc = hsum(_mm_add_epi64(_mm_add_epi64(a0, a1), _mm_add_epi64(a2, a3)));
    if (copy) memcpy(d + i, s + i, n - i);
    return csum_fold(acc + csum_tail(s + i, n - i));
}

static uint16_t csum_sse2(const void *data, size_t n) { return sum_sse2(NULL, data, n, 0); }

static uint16_t copy_csum_sse2(void *dst, const void *src, size_t n) { return sum_sse2(dst, src, n, 1); }

__attribute__((target("avx2")))
static inline uint64_t hsum256(__m256i a) {
    __m128i x = _mm_add_epi64(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    return hsum(x);
}

__attribute__((target("avx2"), always_inline))
static inline uint16_t sum_avx2(uint8_t *d, const uint8_t *s, size_t n, int copy) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(s + i));
        __m256i w = _mm256_loadu_si256((const __m256i *)(s + i + 32));
        if (copy) {
            _mm256_storeu_si256((__m256i *)(d + i), v);
            _mm256_storeu_si256((__m256i *)(d + i + 32), w);
        }
        a0 = _mm256_add_epi64(a0, _mm256_cvtepu32_epi64(_mm256_castsi256_si128(v)));
        a1 = _mm256_add_epi64(a1, _mm256_cvtepu32_epi64(_mm256_extracti128_si256(v, 1)));
        a2 = _mm256_add_epi64(a2, _mm256_cvtepu32_epi64(_mm256_castsi256_si128(w)));
        a3 = _mm256_add_epi64(a3, _mm256_cvtepu32_epi64(_mm256_extracti128_si256(w, 1)));
    }
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
        if (copy) _mm_storeu_si128((__m128i *)(d + i), v);
        a0 = _mm256_add_epi64(a0, _mm256_cvtepu32_epi64(v));
    }
    uint64_t acc = hsum256(_mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3)));
    if (copy) memcpy(d + i, s + i, n - i);
    return csum_fold(acc + csum_tail(s + i, n - i));
}

__attribute__((target("avx2")))
static uint16_t csum_avx2(const void *data, size_t n) { return sum_avx2(NULL, data, n, 0); }

__attribute__((target("avx2")))
static uint16_t copy_csum_avx2(void *dst, const void *src, size_t n) { return sum_avx2(dst, src, n, 1); }

// -1: not yet decided; 0: SSE2 (every x86-64); 1: AVX2. Racing first callers decide the same.
static int csum_level = -1;

static inline int level(void) {
    int l = __atomic_load_n(&csum_level, __ATOMIC_RELAXED);
    if (l < 0) {
        __builtin_cpu_init();
        l = __builtin_cpu_supports("avx2") ? 1 : 0;
        __atomic_store_n(&csum_level, l, __ATOMIC_RELAXED);
    }
    return l;
}

uint16_t vf_csum(const void *data, size_t length) {
    return level() ? csum_avx2(data, length) : csum_sse2(data, length);
}

uint16_t vf_copy_csum(void *dst, const void *src, size_t length) {
    return level() ? copy_csum_avx2(dst, src, length) : copy_csum_sse2(dst, src, length);
}

uint16_t vf_csum_baseline(const void *data, size_t length) { return csum_sse2(data, length); }

uint16_t vf_copy_csum_baseline(void *dst, const void *src, size_t length) {
    return copy_csum_sse2(dst, src, length);
}

#else
// Other CPUs: four scalar accumulators of 32-bit words, which compilers vectorize where they can.
// (The tail's odd byte is the low byte of a native word on little-endian CPUs only.)
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "csum.c assumes a little-endian CPU");

uint16_t vf_csum(const void *data, size_t length) {
    const uint8_t *p = data;
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    size_t i = 0;
    for (; i + 16 <= length; i += 16) {
        uint32_t w[4];
        memcpy(w, p + i, 16);
        a0 += w[0]; a1 += w[1]; a2 += w[2]; a3 += w[3];
    }
    return csum_fold(a0 + a1 + a2 + a3 + csum_tail(p + i, length - i));
}

uint16_t vf_copy_csum(void *dst, const void *src, size_t length) {
    memcpy(dst, src, length);
    return vf_csum(dst, length);
}

uint16_t vf_csum_baseline(const void *data, size_t length) { return vf_csum(data, length); }

uint16_t vf_copy_csum_baseline(void *dst, const void *src, size_t length) {
    return vf_copy_csum(dst, src, length);
}
#endif
