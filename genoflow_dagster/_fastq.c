/*
 * The per-byte inner loops of FASTQ validation (formats/fastq.py) and QC (qc/fastq_kernel.py,
 * which says what the counters mean).
 *
 * Plain C over buffers the Python side has sized (dtype, contiguity, lengths are checked
 * here again): no Python objects in the loops, the GIL released while counting. The QC
 * scanners find the 4-line records themselves (memchr per line), count them, and hand back
 * to Python only when they need more data, bigger counters or a line parser.
 *
 * On x86-64 the base and adapter loops use vectors: 32 bytes (AVX2) when the CPU has it,
 * else 16 (SSE2 is part of the architecture; the adapter prefilter's byte shuffle needs
 * SSSE3), chosen at run time. Every vector loop has a scalar twin with the same results,
 * used elsewhere and by the tests (`vector=0`).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <immintrin.h>
#define HAVE_SSE2 1
#else
#define HAVE_SSE2 0
#endif

#define ADAPTER_K 12
#define DUP_AHEAD 16 /* reads between a hash's prefetch and its probe (dup_update) */
#define MAX_ADAPTERS 8    /* one bit each in the prefilter's bytes */
#define BASE8_READS 255
#define QUAL32_MAX_BYTES (2 << 20) /* beyond this many positions' worth, count in int64 directly */
/* Rows of the 32-bit quality counters are 18 cache lines apart, not 16: with 16, the same
 * quality of every 4th position falls into one L1 set and the rows evict each other.
 * (32-bit counters: about 10% faster than 16-bit ones here, and a block never fills them.) */
#define Q32_STRIDE 288

/* Bits 0-2 of BASE_CLASS: A C G T N other; bit 3: upper-case A/C/G/T (see fastq_kernel.py). */

typedef struct {
    const uint8_t *buf_end;    /* loads never pass this */
    Py_ssize_t cap;            /* rows of the per-position counters */
    Py_ssize_t pooled;         /* position_cap - 1: positions from here on share this row */
    int64_t *pos_qual, *pos_base, *adapter_hist, *seq_mean_q, *len_hist, *gc_table, *overflow, *dup;
    Py_ssize_t n_mean, n_len, gc_dim, overflow_cap, n_overflow, dup_cap, n_dup;
    const uint8_t *base_class;
    int n_adapters, level, shuffle; /* level: 0 scalar, 1 SSE2 (+SSSE3 adapters), 2 AVX2 */
    uint8_t motifs[MAX_ADAPTERS][ADAPTER_K];
    uint32_t codes[MAX_ADAPTERS];
    uint8_t nibble[ADAPTER_K][16]; /* prefilter: adapters whose byte at offset o has this low nibble */
    uint32_t *q32;                 /* pending per-position quality counts, or NULL */
    Py_ssize_t q32_rows;
    int64_t q32_reads;
    uint8_t *b8;                   /* pending per-position base counts: A C G T N all, each `stride` */
    Py_ssize_t stride, b8_rows;
    int64_t b8_reads;
} qc_t;

static int cpu_has(int avx2) {
#if HAVE_SSE2 && defined(__GNUC__)
    __builtin_cpu_init();
    return avx2 ? __builtin_cpu_supports("avx2") : __builtin_cpu_supports("ssse3");
#else
    return 0;
#endif
}

/* One record at p: 1 when it is a whole regular 4-line record (its sequence, length, quality,
 * and where the next one starts), 0 when it runs past `end`, -1 when it is irregular: no '@'
 * or '+' at its line starts, or a quality line of another length (a CR before each '\n' is
 * not part of the line). */
static inline int parse_record(const uint8_t *p, const uint8_t *end, const uint8_t **seq, Py_ssize_t *len,
                               const uint8_t **qual, const uint8_t **next) {
    if (*p != '@') {
        return -1;
    }
    const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) {
        return 0;
    }
    const uint8_t *s = nl + 1;
    nl = memchr(s, '\n', (size_t)(end - s));
    if (!nl) {
        return 0;
    }
    Py_ssize_t L = nl - s;
    if (L > 0 && s[L - 1] == '\r') {
        L--;
    }
    const uint8_t *plus = nl + 1;
    if (plus >= end) {
        return 0;
    }
    if (*plus != '+') {
        return -1;
    }
    if (plus + 1 < end && plus[1] == '\n') {
        nl = plus + 1;
    } else {
        nl = memchr(plus, '\n', (size_t)(end - plus));
        if (!nl) {
            return 0;
        }
    }
    const uint8_t *q = nl + 1;
    if (q >= end) {
        return 0;
    }
    nl = memchr(q, '\n', (size_t)(end - q));
    if (!nl) {
        return 0;
    }
    Py_ssize_t QL = nl - q;
    if (QL > 0 && q[QL - 1] == '\r') {
        QL--;
    }
    if (QL != L) {
        return -1;
    }
    *seq = s;
    *len = L;
    *qual = q;
    *next = nl + 1;
    return 1;
}

static void flush_q32(qc_t *st) {
    if (!st->q32) {
        return;
    }
    for (Py_ssize_t p = 0; p < st->q32_rows; p++) {
        uint32_t *row = st->q32 + p * Q32_STRIDE;
        int64_t *out = st->pos_qual + p * 256;
        for (int k = 0; k < 256; k++) {
            out[k] += row[k];
        }
        memset(row, 0, 256 * sizeof(uint32_t));
    }
    st->q32_rows = 0;
    st->q32_reads = 0;
}

static void flush_b8(qc_t *st) {
    if (!st->b8) {
        return;
    }
    const Py_ssize_t w = st->stride;
    for (Py_ssize_t p = 0; p < st->b8_rows; p++) {
        int64_t *out = st->pos_base + p * 6;
        int64_t named = 0;
        for (int c = 0; c < 5; c++) {
            out[c] += st->b8[c * w + p];
            named += st->b8[c * w + p];
        }
        out[5] += st->b8[5 * w + p] - named;
    }
    memset(st->b8, 0, (size_t)(6 * w));
    st->b8_rows = 0;
    st->b8_reads = 0;
}

/* Whether the 12 bytes at s are the motif (upper-case A/C/G/T) in either case: FastQC upper-cases
 * reads before it looks for adapters. b & 0xDF is an upper-case letter L only for b = L or l. */
static inline int motif_at(const uint8_t *s, const uint8_t *motif) {
    for (int k = 0; k < ADAPTER_K; k++) {
        if ((s[k] & 0xDF) != motif[k]) {
            return 0;
        }
    }
    return 1;
}

/* First hit of each adapter by the rolling 2-bit code of the last 12 A/C/G/T of either case. */
static void adapters_scalar(qc_t *st, const uint8_t *s, Py_ssize_t L) {
    const uint32_t mask = (1u << 24) - 1;
    unsigned live = (1u << st->n_adapters) - 1;
    uint32_t code = 0;
    Py_ssize_t run = 0;
    for (Py_ssize_t j = 0; j < L && live; j++) {
        const uint8_t v = st->base_class[s[j]];
        if (!(v & 8)) {
            run = 0;
            continue;
        }
        code = ((code << 2) | (v & 3)) & mask;
        if (++run < ADAPTER_K) {
            continue;
        }
        for (int a = 0; a < st->n_adapters; a++) {
            if ((live >> a & 1) && code == st->codes[a]) {
                live &= ~(1u << a);
                const Py_ssize_t start = j - (ADAPTER_K - 1);
                st->adapter_hist[a * st->cap + (start < st->pooled ? start : st->pooled)]++;
            }
        }
    }
}

#if HAVE_SSE2
/* The same first hits: a byte-shuffle prefilter on the low nibbles of 5 of the 12 bytes
 * (A C G T differ there) proposes starts, a byte comparison decides. */
__attribute__((target("ssse3"))) static void adapters_shuffle(qc_t *st, const uint8_t *s, Py_ssize_t L) {
    static const int offs[5] = {0, 3, 6, 9, 11};
    const __m128i low = _mm_set1_epi8(0x0F), zero = _mm_setzero_si128();
    __m128i table[5];
    for (int k = 0; k < 5; k++) {
        table[k] = _mm_loadu_si128((const __m128i *)st->nibble[offs[k]]);
    }
    unsigned live = (1u << st->n_adapters) - 1;
    const Py_ssize_t last = L - ADAPTER_K; /* the last start a whole adapter fits after */
    uint8_t tmp[48];
    uint8_t cand[16];
    for (Py_ssize_t j = 0; j <= last && live; j += 16) {
        const uint8_t *w = s + j;
        if (w + 11 + 16 > st->buf_end) {
            /* near the end of the buffer: work on a zero-padded copy (no nibble 0 in A C G T) */
            memset(tmp, 0, sizeof(tmp));
            Py_ssize_t have = L - j < 27 ? L - j : 27;
            memcpy(tmp, w, (size_t)have);
            w = tmp;
        }
        __m128i c = _mm_set1_epi8((char)live);
        for (int k = 0; k < 5; k++) {
            __m128i v = _mm_and_si128(_mm_loadu_si128((const __m128i *)(w + offs[k])), low);
            c = _mm_and_si128(c, _mm_shuffle_epi8(table[k], v));
        }
        unsigned m = ~(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(c, zero)) & 0xFFFFu;
        if (last - j < 15) {
            m &= (1u << (last - j + 1)) - 1;
        }
        if (!m) {
            continue;
        }
        _mm_storeu_si128((__m128i *)cand, c);
        while (m) {
            const int lane = __builtin_ctz(m);
            m &= m - 1;
            unsigned bits = cand[lane] & live;
            while (bits) {
                const int a = __builtin_ctz(bits);
                bits &= bits - 1;
                if (motif_at(s + j + lane, st->motifs[a])) {
                    live &= ~(1u << a);
                    const Py_ssize_t start = j + lane;
                    st->adapter_hist[a * st->cap + (start < st->pooled ? start : st->pooled)]++;
                }
            }
        }
    }
}
#endif

#if HAVE_SSE2
/* Per-position base classes of s[0:lim] into the 8-bit counters (A C G T N all, `stride`
 * apart) and the read's G/C count over s[0:min(lim, gc_len)]: compare 16 (SSE2) or 32 (AVX2)
 * bytes at a time, lower case folded by OR 0x20 (which maps no other byte onto a/c/g/t/n). */
static void bases_sse2(qc_t *st, const uint8_t *s, Py_ssize_t lim, Py_ssize_t gc_len, int64_t *gc_out) {
    static const uint8_t ramp[32] = {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
                                     0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0};
    const __m128i lower = _mm_set1_epi8(0x20), zero = _mm_setzero_si128();
    const __m128i ka = _mm_set1_epi8('a'), kc = _mm_set1_epi8('c'), kg = _mm_set1_epi8('g');
    const __m128i kt = _mm_set1_epi8('t'), kn = _mm_set1_epi8('n');
    const Py_ssize_t w = st->stride;
    uint8_t *b8 = st->b8;
    __m128i vgc = zero;
    int64_t gc = 0;
    int chunks = 0;
    uint8_t tmp[16];
    for (Py_ssize_t j = 0; j < lim; j += 16) {
        const uint8_t *src = s + j;
        if (src + 16 > st->buf_end) {
            memset(tmp, 0, sizeof(tmp));
            memcpy(tmp, src, (size_t)(lim - j < 16 ? lim - j : 16));
            src = tmp;
        }
        __m128i v = _mm_or_si128(_mm_loadu_si128((const __m128i *)src), lower);
        __m128i all = _mm_cmpeq_epi8(zero, zero);
        if (lim - j < 16) {
            all = _mm_loadu_si128((const __m128i *)(ramp + 16 - (lim - j)));
        }
        __m128i ea = _mm_and_si128(_mm_cmpeq_epi8(v, ka), all);
        __m128i ec = _mm_and_si128(_mm_cmpeq_epi8(v, kc), all);
        __m128i eg = _mm_and_si128(_mm_cmpeq_epi8(v, kg), all);
        __m128i et = _mm_and_si128(_mm_cmpeq_epi8(v, kt), all);
        __m128i en = _mm_and_si128(_mm_cmpeq_epi8(v, kn), all);
        const __m128i add[6] = {ea, ec, eg, et, en, all};
        for (int c = 0; c < 6; c++) {
            __m128i *o = (__m128i *)(b8 + c * w + j);
            _mm_storeu_si128(o, _mm_sub_epi8(_mm_loadu_si128(o), add[c]));
        }
        __m128i egc = _mm_or_si128(ec, eg);
        if (gc_len - j < 16) { /* only the first gc_len bases count for the read's GC */
            egc = gc_len <= j ? zero : _mm_and_si128(egc, _mm_loadu_si128((const __m128i *)(ramp + 16 - (gc_len - j))));
        }
        vgc = _mm_sub_epi8(vgc, egc);
        if (++chunks == 255 || j + 16 >= lim) {
            __m128i sg = _mm_sad_epu8(vgc, zero);
            gc += _mm_cvtsi128_si64(sg) + _mm_cvtsi128_si64(_mm_unpackhi_epi64(sg, sg));
            vgc = zero;
            chunks = 0;
        }
    }
    if (lim > st->b8_rows) {
        st->b8_rows = lim;
    }
    *gc_out += gc;
}

__attribute__((target("avx2"))) static inline int64_t sum_bytes256(__m256i v) {
    const __m256i s = _mm256_sad_epu8(v, _mm256_setzero_si256());
    const __m128i t = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    return _mm_cvtsi128_si64(t) + _mm_cvtsi128_si64(_mm_unpackhi_epi64(t, t));
}

__attribute__((target("avx2"))) static void bases_avx2(qc_t *st, const uint8_t *s, Py_ssize_t lim, Py_ssize_t gc_len,
                                                       int64_t *gc_out) {
    static const uint8_t ramp[64] = {255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
                                     255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255};
    const __m256i lower = _mm256_set1_epi8(0x20), zero = _mm256_setzero_si256();
    const __m256i ka = _mm256_set1_epi8('a'), kc = _mm256_set1_epi8('c'), kg = _mm256_set1_epi8('g');
    const __m256i kt = _mm256_set1_epi8('t'), kn = _mm256_set1_epi8('n');
    const Py_ssize_t w = st->stride;
    uint8_t *b8 = st->b8;
    __m256i vgc = zero;
    int64_t gc = 0;
    int chunks = 0;
    uint8_t tmp[32];
    for (Py_ssize_t j = 0; j < lim; j += 32) {
        const uint8_t *src = s + j;
        if (src + 32 > st->buf_end) {
            memset(tmp, 0, sizeof(tmp));
            memcpy(tmp, src, (size_t)(lim - j < 32 ? lim - j : 32));
            src = tmp;
        }
        __m256i v = _mm256_or_si256(_mm256_loadu_si256((const __m256i *)src), lower);
        __m256i all = _mm256_cmpeq_epi8(zero, zero);
        if (lim - j < 32) {
            all = _mm256_loadu_si256((const __m256i *)(ramp + 32 - (lim - j)));
        }
        __m256i ea = _mm256_and_si256(_mm256_cmpeq_epi8(v, ka), all);
        __m256i ec = _mm256_and_si256(_mm256_cmpeq_epi8(v, kc), all);
        __m256i eg = _mm256_and_si256(_mm256_cmpeq_epi8(v, kg), all);
        __m256i et = _mm256_and_si256(_mm256_cmpeq_epi8(v, kt), all);
        __m256i en = _mm256_and_si256(_mm256_cmpeq_epi8(v, kn), all);
        const __m256i add[6] = {ea, ec, eg, et, en, all};
        for (int c = 0; c < 6; c++) {
            __m256i *o = (__m256i *)(b8 + c * w + j);
            _mm256_storeu_si256(o, _mm256_sub_epi8(_mm256_loadu_si256(o), add[c]));
        }
        __m256i egc = _mm256_or_si256(ec, eg);
        if (gc_len - j < 32) { /* only the first gc_len bases count for the read's GC */
            egc = gc_len <= j ? zero
                              : _mm256_and_si256(egc, _mm256_loadu_si256((const __m256i *)(ramp + 32 - (gc_len - j))));
        }
        vgc = _mm256_sub_epi8(vgc, egc);
        if (++chunks == 255 || j + 32 >= lim) {
            gc += sum_bytes256(vgc);
            vgc = zero;
            chunks = 0;
        }
    }
    if (lim > st->b8_rows) {
        st->b8_rows = lim;
    }
    *gc_out += gc;
}

/* adapters_shuffle with 32 starts at a time. */
__attribute__((target("avx2"))) static void adapters_avx2(qc_t *st, const uint8_t *s, Py_ssize_t L) {
    static const int offs[5] = {0, 3, 6, 9, 11};
    const __m256i low = _mm256_set1_epi8(0x0F), zero = _mm256_setzero_si256();
    __m256i table[5];
    for (int k = 0; k < 5; k++) {
        table[k] = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)st->nibble[offs[k]]));
    }
    unsigned live = (1u << st->n_adapters) - 1;
    const Py_ssize_t last = L - ADAPTER_K;
    uint8_t tmp[80];
    uint8_t cand[32];
    for (Py_ssize_t j = 0; j <= last && live; j += 32) {
        const uint8_t *w = s + j;
        if (w + 11 + 32 > st->buf_end) {
            memset(tmp, 0, sizeof(tmp));
            Py_ssize_t have = L - j < 43 ? L - j : 43;
            memcpy(tmp, w, (size_t)have);
            w = tmp;
        }
        __m256i c = _mm256_set1_epi8((char)live);
        for (int k = 0; k < 5; k++) {
            __m256i v = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(w + offs[k])), low);
            c = _mm256_and_si256(c, _mm256_shuffle_epi8(table[k], v));
        }
        uint32_t m = ~(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(c, zero));
        if (last - j < 31) {
            m &= (1u << (last - j + 1)) - 1;
        }
        if (!m) {
            continue;
        }
        _mm256_storeu_si256((__m256i *)cand, c);
        while (m) {
            const int lane = __builtin_ctz(m);
            m &= m - 1;
            unsigned bits = cand[lane] & live;
            while (bits) {
                const int a = __builtin_ctz(bits);
                bits &= bits - 1;
                if (motif_at(s + j + lane, st->motifs[a])) {
                    live &= ~(1u << a);
                    const Py_ssize_t start = j + lane;
                    st->adapter_hist[a * st->cap + (start < st->pooled ? start : st->pooled)]++;
                }
            }
        }
    }
}
#endif

/* Per-position and per-read counts of one record (sequence s, quality q, length L). */
static void count_qc(qc_t *st, const uint8_t *s, const uint8_t *q, Py_ssize_t L) {
    const Py_ssize_t pooled = st->pooled;
    const Py_ssize_t lim = L < pooled ? L : pooled; /* positions below lim have their own row */
    int64_t qsum = 0, gc = 0;
    /* FastQC's per-sequence GC looks at the first 100s (or 1000s) of bases of a read over 100 (1000) */
    const Py_ssize_t gc_len = L > 1000 ? L / 1000 * 1000 : L > 100 ? L / 100 * 100 : L;

    /* quality per position */
    if (st->q32) {
        uint32_t *h = st->q32;
        Py_ssize_t j = 0;
        for (; j + 4 <= lim; j += 4) {
            const uint8_t a = q[j], b = q[j + 1], c = q[j + 2], d = q[j + 3];
            h[j * Q32_STRIDE + a]++;
            h[(j + 1) * Q32_STRIDE + b]++;
            h[(j + 2) * Q32_STRIDE + c]++;
            h[(j + 3) * Q32_STRIDE + d]++;
            qsum += (int64_t)a + b + c + d;
        }
        for (; j < lim; j++) {
            h[j * Q32_STRIDE + q[j]]++;
            qsum += q[j];
        }
        if (lim > st->q32_rows) {
            st->q32_rows = lim;
        }
    } else {
        for (Py_ssize_t j = 0; j < lim; j++) {
            st->pos_qual[j * 256 + q[j]]++;
            qsum += q[j];
        }
    }
    for (Py_ssize_t j = lim; j < L; j++) {
        st->pos_qual[pooled * 256 + q[j]]++;
        qsum += q[j];
    }

    /* bases per position, read GC */
    Py_ssize_t done = 0;
#if HAVE_SSE2
    if (st->level >= 2) {
        bases_avx2(st, s, lim, gc_len, &gc);
        done = lim;
    } else if (st->level >= 1) {
        bases_sse2(st, s, lim, gc_len, &gc);
        done = lim;
    }
#endif
    for (Py_ssize_t j = done; j < L; j++) {
        const uint8_t cls = st->base_class[s[j]] & 7;
        st->pos_base[(j < pooled ? j : pooled) * 6 + cls]++;
        gc += (cls == 1 || cls == 2) && j < gc_len;
    }

    if (st->n_adapters && L >= ADAPTER_K) {
#if HAVE_SSE2
        if (st->level >= 2) {
            adapters_avx2(st, s, L);
        } else if (st->level >= 1 && st->shuffle) {
            adapters_shuffle(st, s, L);
        } else
#endif
        {
            adapters_scalar(st, s, L);
        }
    }

    if (L > 0) {
        const int64_t mean = qsum / L;
        st->seq_mean_q[mean < st->n_mean ? mean : st->n_mean - 1]++;
    }
    st->len_hist[L]++;
    if (gc_len > 0) {
        if (gc_len < st->gc_dim) {
            st->gc_table[gc_len * st->gc_dim + gc]++;
        } else {
            st->overflow[2 * st->n_overflow] = gc_len;
            st->overflow[2 * st->n_overflow + 1] = gc;
            st->n_overflow++;
        }
    }
    if (st->q32 && ++st->q32_reads == UINT32_MAX) {
        flush_q32(st);
    }
    if (st->b8 && ++st->b8_reads == BASE8_READS) {
        flush_b8(st);
    }
}

typedef struct {
    Py_buffer view;
    int held;
} buffer_t;

static void release(buffer_t *bufs, int n) {
    for (int i = 0; i < n; i++) {
        if (bufs[i].held) {
            PyBuffer_Release(&bufs[i].view);
            bufs[i].held = 0;
        }
    }
}

static int get(PyObject *obj, buffer_t *b, int writable, const char *name) {
    if (PyObject_GetBuffer(obj, &b->view, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) < 0) {
        return -1;
    }
    b->held = 1;
    if (writable && b->view.len % 8 != 0) {
        PyErr_Format(PyExc_ValueError, "%s: not a whole number of int64 counters", name);
        return -1;
    }
    return 0;
}

enum { NEED_DATA = 0, IRREGULAR = 1, GROW = 2, DRAIN = 3 };

/* scan_qc(buf, start, end, pos_qual, pos_base, adapter_hist, seq_mean_q, len_hist, gc_table, overflow, dup,
 *         position_cap, adapters, base_class, vector)
 *     -> (consumed, records, status, need, n_overflow, n_dup, max_length)
 *
 * Counts the whole 4-line records of buf[start:end] into the int64 counters (see
 * fastq_kernel.py) and stops at `consumed` with `status`: NEED_DATA (the record there is
 * incomplete, or end was reached), IRREGULAR (the line parser must take over there), GROW
 * (the record there has `need` bases: the per-position counters need min(need, position_cap)
 * rows and len_hist need + 1 entries), DRAIN (the overflow or dup pairs are full). `overflow`
 * receives (GC length, GC) of reads whose GC length is gc_dim or more, `dup` (start, length)
 * of every sequence counted (for dup_update; an empty `dup` records none). */
static PyObject *scan_qc(PyObject *self, PyObject *args) {
    PyObject *o[11];
    Py_ssize_t start, end, position_cap;
    int vector;
    if (!PyArg_ParseTuple(args, "OnnOOOOOOOOnOOi", &o[0], &start, &end, &o[1], &o[2], &o[3], &o[4], &o[5], &o[6],
                          &o[7], &o[8], &position_cap, &o[9], &o[10], &vector)) {
        return NULL;
    }
    static const int writable[11] = {0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
    static const char *names[11] = {"buf", "pos_qual", "pos_base", "adapter_hist", "seq_mean_q", "len_hist",
                                    "gc_table", "overflow", "dup", "adapters", "base_class"};
    buffer_t b[11];
    memset(b, 0, sizeof(b));
    for (int i = 0; i < 11; i++) {
        if (get(o[i], &b[i], writable[i], names[i]) < 0) {
            release(b, 11);
            return NULL;
        }
    }
    qc_t st;
    memset(&st, 0, sizeof(st));
    const uint8_t *buf = b[0].view.buf;
    st.buf_end = buf + b[0].view.len;
    st.cap = b[1].view.len / (8 * 256);
    st.pos_qual = b[1].view.buf;
    st.pos_base = b[2].view.buf;
    st.adapter_hist = b[3].view.buf;
    st.seq_mean_q = b[4].view.buf;
    st.n_mean = b[4].view.len / 8;
    st.len_hist = b[5].view.buf;
    st.n_len = b[5].view.len / 8;
    st.gc_table = b[6].view.buf;
    st.overflow = b[7].view.buf;
    st.overflow_cap = b[7].view.len / 16;
    st.dup = b[8].view.buf;
    st.dup_cap = b[8].view.len / 16;
    st.n_adapters = (int)(b[9].view.len / ADAPTER_K);
    st.base_class = b[10].view.buf;
    st.level = vector <= 0 || !HAVE_SSE2 ? 0 : vector >= 2 && cpu_has(1) ? 2 : 1;
    st.pooled = position_cap - 1;
    Py_ssize_t gc_dim = 0;
    while ((gc_dim + 1) * (gc_dim + 1) * 8 <= b[6].view.len) {
        gc_dim++;
    }
    st.gc_dim = gc_dim;
    int ok = 0 <= start && start <= end && end <= b[0].view.len && st.cap > 0 && position_cap >= 1 &&
             st.cap <= position_cap && b[1].view.len == st.cap * 256 * 8 && b[2].view.len == st.cap * 6 * 8 &&
             b[3].view.len == (Py_ssize_t)st.n_adapters * st.cap * 8 && b[9].view.len % ADAPTER_K == 0 &&
             st.n_adapters <= MAX_ADAPTERS && st.n_mean > 0 && st.n_len > 0 && gc_dim * gc_dim * 8 == b[6].view.len &&
             st.overflow_cap > 0 && b[7].view.len % 16 == 0 && b[8].view.len % 16 == 0 && b[10].view.len == 256;
    if (!ok) {
        release(b, 11);
        PyErr_SetString(PyExc_ValueError, "scan_qc: inconsistent buffer sizes or offsets");
        return NULL;
    }
    const uint8_t *motifs = b[9].view.buf;
    for (int a = 0; a < st.n_adapters; a++) {
        memcpy(st.motifs[a], motifs + a * ADAPTER_K, ADAPTER_K);
        for (int k = 0; k < ADAPTER_K; k++) {
            const uint8_t c = st.motifs[a][k];
            if (!(st.base_class[c] & 8) || c > 'Z') {
                release(b, 11);
                PyErr_SetString(PyExc_ValueError, "scan_qc: adapters must be upper-case A/C/G/T");
                return NULL;
            }
            st.codes[a] = (st.codes[a] << 2) | (st.base_class[c] & 3);
            st.nibble[k][c & 15] |= (uint8_t)(1u << a);
        }
    }
    st.shuffle = cpu_has(0);

    Py_ssize_t records = 0, need = 0, max_length = 0;
    int status = NEED_DATA;
    const uint8_t *p = buf + start, *stop = buf + end;
    Py_BEGIN_ALLOW_THREADS
    if ((size_t)st.cap * Q32_STRIDE * sizeof(uint32_t) <= QUAL32_MAX_BYTES) {
        st.q32 = calloc((size_t)st.cap * Q32_STRIDE, sizeof(uint32_t));
    }
    st.stride = (st.cap + 63) / 32 * 32; /* room for a whole vector past the last row */
    st.b8 = calloc((size_t)(6 * st.stride), 1);
    while (p < stop) {
        const uint8_t *seq, *qual, *next;
        Py_ssize_t L;
        const int r = parse_record(p, stop, &seq, &L, &qual, &next);
        if (r <= 0) {
            status = r < 0 ? IRREGULAR : NEED_DATA;
            break;
        }
        if ((L < position_cap ? L : position_cap) > st.cap || L >= st.n_len) {
            status = GROW;
            need = L;
            break;
        }
        if (st.n_overflow == st.overflow_cap || (st.dup_cap && st.n_dup == st.dup_cap)) {
            status = DRAIN;
            break;
        }
        if (st.dup_cap) {
            st.dup[2 * st.n_dup] = seq - buf;
            st.dup[2 * st.n_dup + 1] = L;
            st.n_dup++;
        }
        count_qc(&st, seq, qual, L);
        max_length = L > max_length ? L : max_length;
        records++;
        p = next;
    }
    flush_q32(&st);
    flush_b8(&st);
    free(st.q32);
    free(st.b8);
    Py_END_ALLOW_THREADS
    release(b, 11);
    return Py_BuildValue("nninnnn", (Py_ssize_t)(p - buf), records, status, need, st.n_overflow, st.n_dup,
                         max_length);
}

/* scan_basic(buf, start, end, qual_hist, base_hist, len_hist, base_class, vector)
 *     -> (consumed, records, status, need)
 *
 * The whole-file quality histogram (256), base classes (6) and read lengths of the whole
 * records of buf[start:end]; statuses as scan_qc (GROW: len_hist needs need + 1 entries). */
static PyObject *scan_basic(PyObject *self, PyObject *args) {
    PyObject *o[5];
    Py_ssize_t start, end;
    int vector;
    if (!PyArg_ParseTuple(args, "OnnOOOOi", &o[0], &start, &end, &o[1], &o[2], &o[3], &o[4], &vector)) {
        return NULL;
    }
    static const int writable[5] = {0, 1, 1, 1, 0};
    static const char *names[5] = {"buf", "qual_hist", "base_hist", "len_hist", "base_class"};
    buffer_t b[5];
    memset(b, 0, sizeof(b));
    for (int i = 0; i < 5; i++) {
        if (get(o[i], &b[i], writable[i], names[i]) < 0) {
            release(b, 5);
            return NULL;
        }
    }
    const uint8_t *buf = b[0].view.buf;
    const uint8_t *buf_end = buf + b[0].view.len;
    int64_t *qual_hist = b[1].view.buf, *base_hist = b[2].view.buf, *len_hist = b[3].view.buf;
    const Py_ssize_t n_len = b[3].view.len / 8;
    const uint8_t *base_class = b[4].view.buf;
    if (!(0 <= start && start <= end && end <= b[0].view.len && b[1].view.len == 256 * 8 &&
          b[2].view.len == 6 * 8 && n_len > 0 && b[4].view.len == 256)) {
        release(b, 5);
        PyErr_SetString(PyExc_ValueError, "scan_basic: inconsistent buffer sizes or offsets");
        return NULL;
    }
    Py_ssize_t records = 0, need = 0;
    int status = NEED_DATA;
    const uint8_t *p = buf + start, *stop = buf + end;
    Py_BEGIN_ALLOW_THREADS
    int64_t qh[4][256];
    memset(qh, 0, sizeof(qh));
    int64_t named[6] = {0, 0, 0, 0, 0, 0};
#if HAVE_SSE2
    const __m128i lower = _mm_set1_epi8(0x20), zero = _mm_setzero_si128();
    const __m128i ka = _mm_set1_epi8('a'), kc = _mm_set1_epi8('c'), kg = _mm_set1_epi8('g');
    const __m128i kt = _mm_set1_epi8('t'), kn = _mm_set1_epi8('n');
    __m128i acc[5] = {zero, zero, zero, zero, zero};
    int chunks = 0;
#endif
    while (p < stop) {
        const uint8_t *s, *q, *next;
        Py_ssize_t L;
        const int r = parse_record(p, stop, &s, &L, &q, &next);
        if (r <= 0) {
            status = r < 0 ? IRREGULAR : NEED_DATA;
            break;
        }
        if (L >= n_len) {
            status = GROW;
            need = L;
            break;
        }
        len_hist[L]++;
        Py_ssize_t j = 0;
        for (; j + 4 <= L; j += 4) {
            qh[0][q[j]]++;
            qh[1][q[j + 1]]++;
            qh[2][q[j + 2]]++;
            qh[3][q[j + 3]]++;
        }
        for (; j < L; j++) {
            qh[0][q[j]]++;
        }
        j = 0;
#if HAVE_SSE2
        if (vector) {
            for (; j + 16 <= L && s + j + 16 <= buf_end; j += 16) {
                __m128i v = _mm_or_si128(_mm_loadu_si128((const __m128i *)(s + j)), lower);
                acc[0] = _mm_sub_epi8(acc[0], _mm_cmpeq_epi8(v, ka));
                acc[1] = _mm_sub_epi8(acc[1], _mm_cmpeq_epi8(v, kc));
                acc[2] = _mm_sub_epi8(acc[2], _mm_cmpeq_epi8(v, kg));
                acc[3] = _mm_sub_epi8(acc[3], _mm_cmpeq_epi8(v, kt));
                acc[4] = _mm_sub_epi8(acc[4], _mm_cmpeq_epi8(v, kn));
                if (++chunks == 255) {
                    for (int c = 0; c < 5; c++) {
                        __m128i t = _mm_sad_epu8(acc[c], zero);
                        named[c] += _mm_cvtsi128_si64(t) + _mm_cvtsi128_si64(_mm_unpackhi_epi64(t, t));
                        acc[c] = zero;
                    }
                    chunks = 0;
                }
            }
            named[5] += j; /* every vector-counted base; the named ones are taken off below */
        }
#endif
        for (; j < L; j++) {
            base_hist[base_class[s[j]] & 7]++;
        }
        records++;
        p = next;
    }
#if HAVE_SSE2
    for (int c = 0; c < 5; c++) {
        __m128i t = _mm_sad_epu8(acc[c], zero);
        named[c] += _mm_cvtsi128_si64(t) + _mm_cvtsi128_si64(_mm_unpackhi_epi64(t, t));
    }
#endif
    for (int c = 0; c < 5; c++) {
        base_hist[c] += named[c];
        named[5] -= named[c];
    }
    base_hist[5] += named[5];
    for (int k = 0; k < 256; k++) {
        qual_hist[k] += qh[0][k] + qh[1][k] + qh[2][k] + qh[3][k];
    }
    Py_END_ALLOW_THREADS
    release(b, 5);
    return Py_BuildValue("nnin", (Py_ssize_t)(p - buf), records, status, need);
}

/* scan_records(buf, n_bytes, quality_range, sequence_ok) -> (consumed, records, irregular)
 *
 * Checks whole 4-line records from the start of `buf[:n_bytes]`: '@' title, sequence bytes
 * allowed by the 256-entry table `sequence_ok`, a bare '+' line, a quality line as long as
 * the sequence with bytes 33-126, '\n' line ends. Stops at the first record that is
 * incomplete (irregular = 0: more data needed) or breaks any of those rules, CR line ends
 * included (irregular = 1: the exact line parser takes over at `consumed` and names the
 * problem). quality_range (int64[2]) keeps the lowest and highest quality byte seen; an
 * int64[3] also carries, in [2], the running read-name digest (see name_digest_update). */
/* FNV-1a (64-bit) over "name\n" per read, the name being the title up to the first blank
 * with a trailing /1 or /2 removed: equal digests (and counts) for R1 and R2 mean the mates
 * carry the same names in the same order. */
#define NAME_FNV_PRIME 1099511628211ULL

static inline uint64_t name_digest(uint64_t h, const uint8_t *name, Py_ssize_t len) {
    if (len >= 2 && name[len - 2] == '/' && (name[len - 1] == '1' || name[len - 1] == '2')) {
        len -= 2;
    }
    for (Py_ssize_t j = 0; j < len; j++) {
        h = (h ^ name[j]) * NAME_FNV_PRIME;
    }
    return (h ^ (uint64_t)'\n') * NAME_FNV_PRIME;
}

static inline int is_blank(uint8_t c) {
    return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r';
}

/* Fold the read name of the title text [text, end) (after the '@') into h: the first blank-separated
 * word, as Python's bytes.split() finds it. */
static inline uint64_t title_digest(uint64_t h, const uint8_t *text, const uint8_t *end) {
    while (text < end && is_blank(*text)) {
        text++;
    }
    const uint8_t *q = text;
    while (q < end && !is_blank(*q)) {
        q++;
    }
    return name_digest(h, text, q - text);
}

/* name_digest_update(state, titles) -> None: fold the '\n'-separated titles (each without its
 * '@', whole title lines) into state[2] (int64[3]) as scan_records does, for records the exact
 * line parser read. */
static PyObject *name_digest_update(PyObject *self, PyObject *args) {
    Py_buffer range, titles;
    if (!PyArg_ParseTuple(args, "w*y*", &range, &titles)) {
        return NULL;
    }
    if (range.len != 24) {
        PyBuffer_Release(&range);
        PyBuffer_Release(&titles);
        PyErr_SetString(PyExc_ValueError, "name_digest_update: state must be int64[3]");
        return NULL;
    }
    int64_t *state = range.buf;
    uint64_t h = (uint64_t)state[2];
    const uint8_t *p = titles.buf, *end = p + titles.len;
    while (p < end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        const uint8_t *line_end = nl ? nl : end;
        h = title_digest(h, p, line_end);
        if (!nl) {
            break;
        }
        p = nl + 1;
    }
    state[2] = (int64_t)h;
    PyBuffer_Release(&range);
    PyBuffer_Release(&titles);
    Py_RETURN_NONE;
}

static PyObject *scan_records(PyObject *self, PyObject *args) {
    Py_buffer data, range, table;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "y*nw*y*", &data, &n, &range, &table)) {
        return NULL;
    }
    if (n < 0 || n > data.len || (range.len != 16 && range.len != 24) || table.len != 256) {
        PyBuffer_Release(&data);
        PyBuffer_Release(&range);
        PyBuffer_Release(&table);
        PyErr_SetString(PyExc_ValueError, "scan_records: bad sizes");
        return NULL;
    }
    const uint8_t *p = data.buf, *ok = table.buf;
    int64_t *qrange = range.buf;
    const int digest_names = range.len == 24;
    Py_ssize_t pos = 0, records = 0;
    int irregular = 0;
    Py_BEGIN_ALLOW_THREADS
    uint8_t qmin = (uint8_t)qrange[0], qmax = (uint8_t)qrange[1];
    uint64_t names = digest_names ? (uint64_t)qrange[2] : 0;
    for (;;) {
        const uint8_t *title = p + pos, *end = p + n;
        if (title == end) {
            break;
        }
        if (*title != '@') {
            irregular = 1;
            break;
        }
        const uint8_t *nl1 = memchr(title, '\n', (size_t)(end - title));
        if (!nl1) {
            break;
        }
        if (nl1[-1] == '\r') {
            irregular = 1;
            break;
        }
        const uint8_t *seq = nl1 + 1;
        const uint8_t *nl2 = memchr(seq, '\n', (size_t)(end - seq));
        if (!nl2) {
            break;
        }
        const Py_ssize_t len = nl2 - seq;
        int bad = 0;
        for (Py_ssize_t j = 0; j < len; j++) {
            bad |= !ok[seq[j]];
        }
        if (bad) {
            irregular = 1;
            break;
        }
        if (end - nl2 < 3) {
            break;
        }
        if (nl2[1] != '+' || nl2[2] != '\n') {
            irregular = 1;
            break;
        }
        const uint8_t *qual = nl2 + 3;
        if (end - qual < len + 1) {
            /* incomplete, unless a line break already shows the quality line is the wrong length */
            if (memchr(qual, '\n', (size_t)(end - qual))) {
                irregular = 1;
            }
            break;
        }
        if (qual[len] != '\n') {
            irregular = 1;
            break;
        }
        uint8_t lo = 255, hi = 0;
        for (Py_ssize_t j = 0; j < len; j++) {
            const uint8_t c = qual[j];
            lo = c < lo ? c : lo;
            hi = c > hi ? c : hi;
        }
        if (len && (lo < 33 || hi > 126)) {
            irregular = 1;
            break;
        }
        if (len) {
            qmin = lo < qmin ? lo : qmin;
            qmax = hi > qmax ? hi : qmax;
        }
        if (digest_names) {
            names = title_digest(names, title + 1, nl1);
        }
        pos = (qual + len + 1) - p;
        records++;
    }
    qrange[0] = qmin;
    qrange[1] = qmax;
    if (digest_names) {
        qrange[2] = (int64_t)names;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&data);
    PyBuffer_Release(&range);
    PyBuffer_Release(&table);
    return Py_BuildValue("nni", pos, records, irregular);
}

/* dup_update(buf, pairs, n, slots, counts, arena, state, truncate_over, truncate_to)
 *
 * FastQC's duplication / overrepresented-sequence counting (OverRepresentedSeqs) over the n
 * sequences at buf[start:start + length] ((start, length) int64 pairs): each read, upper-cased
 * and cut to truncate_to bases when longer than truncate_over, counts once in state[2] (all
 * reads); a sequence already tracked gains one, a new one is tracked until len(counts) distinct
 * ones are (then the set is frozen, state[1] = 1). state[3] is the read count when the set last
 * changed or a tracked sequence was seen while not frozen (FastQC's countAtUniqueLimit), state[0]
 * how many are tracked. Tracked sequence i is at arena[i * stride]: its length, then its bytes;
 * `slots` (uint64, a power of two, more than len(counts)) is an open-addressing index: the hash's
 * top 32 bits, then i + 1 (0: empty), so a probe reads the arena only when the hashes agree. */
static PyObject *dup_update(PyObject *self, PyObject *args) {
    Py_buffer bufs[7];
    Py_ssize_t n, over, to;
    if (!PyArg_ParseTuple(args, "y*y*nw*w*w*w*nn", &bufs[0], &bufs[1], &n, &bufs[2], &bufs[3], &bufs[4], &bufs[5],
                          &over, &to)) {
        return NULL;
    }
    const Py_ssize_t limit = bufs[3].len / 8, n_slots = bufs[2].len / 8;
    const Py_ssize_t stride = limit ? bufs[4].len / limit : 0;
    int ok = n >= 0 && n * 16 <= bufs[1].len && limit > 0 && bufs[3].len % 8 == 0 && bufs[2].len % 8 == 0 &&
             n_slots > limit && (n_slots & (n_slots - 1)) == 0 && stride > over && stride <= 256 && to <= over &&
             to >= 0 && bufs[4].len == limit * stride && bufs[5].len == 32;
    const int64_t *pairs = bufs[1].buf;
    for (Py_ssize_t i = 0; ok && i < n; i++) {
        ok = pairs[2 * i] >= 0 && pairs[2 * i + 1] >= 0 && pairs[2 * i] + pairs[2 * i + 1] <= bufs[0].len;
    }
    if (!ok) {
        for (int i = 0; i < 6; i++) {
            PyBuffer_Release(&bufs[i]);
        }
        PyErr_SetString(PyExc_ValueError, "dup_update: inconsistent buffer sizes or pairs");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    const uint8_t *buf = bufs[0].buf;
    uint64_t *slots = bufs[2].buf;
    int64_t *counts = bufs[3].buf, *state = bufs[5].buf;
    uint8_t *arena = bufs[4].buf;
    const uint64_t mask = (uint64_t)n_slots - 1;
    /* The slot (and then the arena entry) a read needs is fetched DUP_AHEAD (DUP_AHEAD / 2) reads
     * ahead of its probe: the index and arena are far bigger than the caches. */
    uint8_t ring[DUP_AHEAD][264];
    uint64_t hashes[DUP_AHEAD];
    Py_ssize_t lens[DUP_AHEAD];
    for (Py_ssize_t i = 0; i < n + DUP_AHEAD; i++) { /* probe read i - DUP_AHEAD, prepare read i */
        if (i >= DUP_AHEAD) {
            const Py_ssize_t r = (i - DUP_AHEAD) % DUP_AHEAD;
            const uint8_t *seq = ring[r];
            const Py_ssize_t L = lens[r];
            const uint64_t h = hashes[r], tag = h & 0xFFFFFFFF00000000ull;
            state[2]++;
            uint64_t at = h & mask;
            for (;;) {
                const uint64_t e = slots[at];
                if (e == 0) {
                    if (!state[1]) {
                        const int64_t idx = state[0]++;
                        uint8_t *entry = arena + idx * stride;
                        entry[0] = (uint8_t)L;
                        memcpy(entry + 1, seq, (size_t)L);
                        counts[idx] = 1;
                        slots[at] = tag | (uint64_t)(idx + 1);
                        state[3] = state[2];
                        if (state[0] == limit) {
                            state[1] = 1;
                        }
                    }
                    break;
                }
                if ((e & 0xFFFFFFFF00000000ull) == tag) {
                    const uint8_t *entry = arena + ((Py_ssize_t)(e & 0xFFFFFFFFull) - 1) * stride;
                    if (entry[0] == L && memcmp(entry + 1, seq, (size_t)L) == 0) {
                        counts[(e & 0xFFFFFFFFull) - 1]++;
                        if (!state[1]) {
                            state[3] = state[2];
                        }
                        break;
                    }
                }
                at = (at + 1) & mask;
            }
        }
        const Py_ssize_t half = i - DUP_AHEAD / 2;
        if (half >= 0 && half < n) {
            const uint64_t e = slots[hashes[half % DUP_AHEAD] & mask];
            if (e) {
                __builtin_prefetch(arena + ((Py_ssize_t)(e & 0xFFFFFFFFull) - 1) * stride);
            }
        }
        if (i < n) {
            const Py_ssize_t r = i % DUP_AHEAD;
            Py_ssize_t L = pairs[2 * i + 1];
            if (L > over) {
                L = to;
            }
            uint8_t *seq = ring[r];
            const uint8_t *s = buf + pairs[2 * i];
            for (Py_ssize_t k = 0; k < L; k++) {
                const uint8_t c = s[k];
                seq[k] = (uint8_t)(c - ((uint8_t)(c - 'a') < 26u ? 32 : 0));
            }
            memset(seq + L, 0, 8);
            uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t)L;
            for (Py_ssize_t k = 0; k < L; k += 8) {
                uint64_t w;
                memcpy(&w, seq + k, 8);
                h = (h ^ w) * 0xFF51AFD7ED558CCDull;
                h ^= h >> 29;
            }
            hashes[r] = h;
            lens[r] = L;
            __builtin_prefetch(slots + (h & mask));
        }
    }
    Py_END_ALLOW_THREADS
    for (int i = 0; i < 6; i++) {
        PyBuffer_Release(&bufs[i]);
    }
    Py_RETURN_NONE;
}

/* dup_unseen(at_limit, total, level, observed) -> float
 *
 * FastQC's (DuplicationLevel.getCorrectedCount) probability that a sequence occurring `level`
 * times among `total` reads had none of them in the first `at_limit`: the product over i below
 * at_limit of ((total - i) - level) / (total - i), in that order, taken as 0 once it falls below
 * 1 - observed / (observed + 0.01). */
static PyObject *dup_unseen(PyObject *self, PyObject *args) {
    long long at_limit, total, level, observed;
    if (!PyArg_ParseTuple(args, "LLLL", &at_limit, &total, &level, &observed)) {
        return NULL;
    }
    const double limit = 1.0 - (double)observed / ((double)observed + 0.01);
    double p = 1.0;
    Py_BEGIN_ALLOW_THREADS
    for (long long i = 0; i < at_limit; i++) {
        p *= (double)((total - i) - level) / (double)(total - i);
        if (p < limit) {
            p = 0.0;
            break;
        }
    }
    Py_END_ALLOW_THREADS
    return PyFloat_FromDouble(p);
}

static PyMethodDef methods[] = {
    {"dup_unseen", dup_unseen, METH_VARARGS, "FastQC's chance that a duplicated sequence was not tracked."},
    {"dup_update", dup_update, METH_VARARGS, "FastQC's duplicate counting over (start, length) sequences of a buffer."},
    {"scan_records", scan_records, METH_VARARGS, "Validate whole 4-line FASTQ records from the start of a buffer."},
    {"name_digest_update", name_digest_update, METH_VARARGS, "Fold read titles into the read-name digest."},
    {"scan_qc", scan_qc, METH_VARARGS, "Count the records of a buffer into the FastQC-style counters."},
    {"scan_basic", scan_basic, METH_VARARGS, "Whole-file quality, base and length histograms of a buffer's records."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fastq", NULL, -1, methods};

PyMODINIT_FUNC PyInit__fastq(void) { return PyModule_Create(&module); }
