/*
 * common/ops.c — GPT-2 kernels (see ops.h for the contract of each op).
 *
 * Linear layers, the LM head and the products of attention go through gemm.c's AVX-512
 * kernel (bias, GELU, residual add and bias gradient fused into it; attention one (batch,
 * head) pair at a time with its causal shapes), or cblas_sgemm where that kernel is not
 * compiled in or not chosen (ops_gemm_choose: run.gemm, by CPU vendor); the element-wise and row-wise ops are
 * plain loops written so that GCC vectorises them without -ffast-math, or AVX-512
 * intrinsics where it would not. The `_rows` kernels are the batch-invariant ones
 * generation uses (gemm.c computes each element with the same chain, so the two agree).
 *
 * Threads: one pool per process (ops_blas_threads() threads, part 0 on the caller,
 * started on first use; workers poll for 50 us after a job, then sleep). Everything is
 * split over it: the `_rows` kernels by output columns, the element-wise and row-wise
 * ops (LayerNorm, GELU, residual, embedding, log-softmax, bias gradients) by rows or
 * columns, attention by (batch, head) pairs, gemm.c's GEMMs by 12-row tiles or 32-column
 * panels, and OpenBLAS's in whole 48-row shares (see gemm_range), each one single-threaded
 * sgemm call. OpenBLAS itself runs with one thread: with
 * its own threads, its workers spin in sched_yield for ~0.1 s after every call and, with
 * as many threads as cores, steal the cores the element-wise work needs (tiny training
 * step, 2 threads, Intel Xeon VM: 103 ms with OpenBLAS threads, 83 ms this way). Each
 * output element is computed by the same code whichever thread computes it, so results do
 * not depend on the thread count: tests/test_ops.c and tests/test_generate.c check a
 * training step's kernels and generation bit for bit at 1, 2 and 3 threads.
 * The thread count and the pool are the only state of this file; the kernels are not
 * reentrant across threads of the caller (one model per thread of the caller is fine,
 * concurrent calls are not).
 */
#include "ops.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#if defined(__AVX2__) /* the bf16 loads (BF16_LOAD) */
#include <immintrin.h>
#endif

#include "cpu.h"
#include "gemm.h"
#include "gpt.h"
#include "util.h"
#include "vmath.h"

// ----------------------------------------------------------------------------
// BLAS set-up

/* The kernel thread count: OpenBLAS's own count at the first call (OPENBLAS_NUM_THREADS
 * or its default) unless set. OpenBLAS itself is then kept single-threaded: every thread
 * of a rank is one of the pool below, which sleeps between jobs, instead of OpenBLAS
 * workers that spin (sched_yield) for ~0.1 s after each call and fight the pool for
 * the cores while the element-wise kernels run. */
static int g_threads;

const char *ops_blas_setup(int threads) {
    if (g_threads == 0) g_threads = openblas_get_num_threads();
    if (threads > 0) g_threads = threads;
    if (g_threads < 1) g_threads = 1;
    if (g_threads > OPS_MAX_THREADS) g_threads = OPS_MAX_THREADS; /* OpenBLAS's default on a big node */
    openblas_set_num_threads(1);
    return openblas_get_corename();
}

int ops_blas_threads(void) {
    if (g_threads == 0) ops_blas_setup(0);
    return g_threads;
}

// ----------------------------------------------------------------------------
// the pool of worker threads of every kernel below

#define POOL_MAX OPS_MAX_THREADS
/* After a job, workers (and the caller waiting for them) poll for this long before they
 * sleep on the condition variable: a training step issues a job every few tens of
 * microseconds, and waking a sleeping thread on an idle (virtual) CPU costs about as
 * much. Past it nothing polls, so an idle rank uses no CPU. */
#define POOL_SPIN_NS 50000

static struct {
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    pthread_t th[POOL_MAX];
    int started;   /* workers running */
    unsigned gen;  /* job generation: workers run each generation once */
    int nparts;    /* parts of the current job: part 0 on the caller, 1.. on workers */
    int pending;   /* worker parts not finished */
    OpsPartFn fn;
    void *arg;
    atomic_uint gen_seen; /* copies of gen and pending, for polling without the mutex */
    atomic_int pending_seen;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER};

static uint64_t pool_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void pool_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Poll until a new job is published (or its worker parts are done) or POOL_SPIN_NS
 * pass; the caller then takes the mutex and sleeps if it has to. */
static void pool_spin_gen(unsigned seen) {
    uint64_t t0 = pool_now_ns();
    while (atomic_load_explicit(&pool.gen_seen, memory_order_acquire) == seen &&
           pool_now_ns() - t0 < POOL_SPIN_NS)
        pool_relax();
}

static void pool_spin_done(void) {
    uint64_t t0 = pool_now_ns();
    while (atomic_load_explicit(&pool.pending_seen, memory_order_acquire) != 0 &&
           pool_now_ns() - t0 < POOL_SPIN_NS)
        pool_relax();
}

static void *pool_worker(void *p) {
    int id = (int)(intptr_t)p; /* 1.. */
    unsigned seen = 0;
    pthread_mutex_lock(&pool.mu);
    for (;;) {
        if (pool.gen == seen) {
            pthread_mutex_unlock(&pool.mu);
            pool_spin_gen(seen);
            pthread_mutex_lock(&pool.mu);
        }
        while (pool.gen == seen) pthread_cond_wait(&pool.wake, &pool.mu);
        seen = pool.gen;
        if (id >= pool.nparts) continue;
        OpsPartFn fn = pool.fn;
        void *arg = pool.arg;
        int nparts = pool.nparts;
        pthread_mutex_unlock(&pool.mu);
        fn(arg, id, nparts);
        pthread_mutex_lock(&pool.mu);
        atomic_store_explicit(&pool.pending_seen, --pool.pending, memory_order_release);
        if (pool.pending == 0) pthread_cond_signal(&pool.done);
    }
    return NULL;
}

/* Run fn(arg, i, n) for i < n parts, n = ops_blas_threads() (capped by max_parts
 * and POOL_MAX), part 0 on the calling thread. Workers poll, then sleep, between jobs. */
static void pool_run(OpsPartFn fn, void *arg, int max_parts) {
    int n = ops_blas_threads();
    if (n > max_parts) n = max_parts;
    if (n > POOL_MAX) n = POOL_MAX;
    if (n <= 1) {
        fn(arg, 0, 1);
        return;
    }
    pthread_mutex_lock(&pool.mu);
    while (pool.started < n - 1) {
        if (pthread_create(&pool.th[pool.started], NULL, pool_worker,
                           (void *)(intptr_t)(pool.started + 1)) != 0) {
            break; /* fewer threads: still correct, the parts are redistributed below */
        }
        pthread_detach(pool.th[pool.started]);
        pool.started++;
    }
    if (n > pool.started + 1) n = pool.started + 1;
    pool.fn = fn;
    pool.arg = arg;
    pool.nparts = n;
    pool.pending = n - 1;
    atomic_store_explicit(&pool.pending_seen, n - 1, memory_order_release);
    pool.gen++;
    atomic_store_explicit(&pool.gen_seen, pool.gen, memory_order_release);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.mu);
    fn(arg, 0, n);
    pool_spin_done();
    pthread_mutex_lock(&pool.mu);
    while (pool.pending > 0) pthread_cond_wait(&pool.done, &pool.mu);
    pthread_mutex_unlock(&pool.mu);
}

void ops_parallel(OpsPartFn fn, void *arg, int max_parts) {
    pool_run(fn, arg, max_parts < 1 ? 1 : max_parts);
}

/* Contiguous share [lo, hi) of `units` work units for part i of n. */
static void part_range(int units, int i, int n, int *lo, int *hi) {
    *lo = (int)((long long)units * i / n);
    *hi = (int)((long long)units * (i + 1) / n);
}

/* Below this many multiply-adds a kernel runs on the calling thread only: waking the
 * pool costs more than it saves. */
#define POOL_MIN_WORK (1 << 20)

/* The element-wise and row-wise kernels: fn(arg, lo, hi, part) does units [lo, hi) with
 * the same loop a serial call runs, so every output element is computed by the same code
 * whichever part (thread) gets it and the results do not depend on the thread count.
 * Reductions over rows (bias and LayerNorm weight gradients) are split by columns for
 * the same reason: each column is still summed over the rows in order. */
typedef void (*RangeFn)(void *arg, size_t lo, size_t hi, int part);
typedef struct {
    RangeFn fn;
    void *arg;
    size_t units;
} RangeJob;

static void range_part(void *p, int part, int nparts) {
    const RangeJob *j = p;
    size_t lo = j->units * (size_t)part / (size_t)nparts;
    size_t hi = j->units * (size_t)(part + 1) / (size_t)nparts;
    if (lo < hi) j->fn(j->arg, lo, hi, part);
}

/* Below this many elements touched a kernel runs on the calling thread. */
#define POOL_MIN_ELEMS (1 << 15)

/* Split `units` over at most max_parts parts of the pool when `elems` is worth it. */
static void run_range(RangeFn fn, void *arg, size_t units, size_t elems, int max_parts) {
    /* first use in a program that never called ops_blas_setup: OpenBLAS is made
     * single-threaded before any sgemm below runs */
    (void)ops_blas_threads();
    if (elems < POOL_MIN_ELEMS || units < 2 || max_parts < 2) {
        if (units > 0) fn(arg, 0, units, 0);
        return;
    }
    RangeJob j = {fn, arg, units};
    pool_run(range_part, &j, units < (size_t)max_parts ? (int)units : max_parts);
}

/* C (M,N) = alpha op(A) op(B) + beta C (row-major) on the pool: the rows of C are cut
 * into shares of whole GEMM_GRAIN rows, one single-threaded sgemm per share, each packing
 * all of op(B). Rows only, and 48 of them: OpenBLAS's x86 sgemm kernels give an element
 * of C other bits when it falls in another position of their register tiles (an edge
 * tile sums differently), so a share must start on a tile boundary of every kernel. Row
 * shares of a multiple of 12 give the bits of the unsplit call on the Haswell and Zen
 * kernels (every transpose combination; Sandybridge and Nehalem at any split), while a
 * split of the columns changes them at every width tried (12 to 120): measured with
 * OpenBLAS 0.3.21. 48 is a multiple of every register tile height of those kernels (4, 8,
 * 12, 16, 24), so the result does not depend on the thread count (test_ops checks 1, 2
 * and 3 threads). With `bias` (N), each part first fills its rows of C with the bias
 * row and beta must be 1. */
#define GEMM_GRAIN 48
typedef struct {
    CBLAS_TRANSPOSE ta, tb;
    int M, N, K, lda, ldb, ldc;
    float alpha, beta;
    const float *A, *B, *bias;
    float *C;
} GemmJob;

static void gemm_range(void *p, size_t lo, size_t hi, int part) {
    (void)part;
    const GemmJob *j = p;
    int i0 = (int)lo * GEMM_GRAIN, i1 = (int)hi * GEMM_GRAIN < j->M ? (int)hi * GEMM_GRAIN : j->M;
    for (int r = i0; j->bias && r < i1; r++)
        memcpy(j->C + (size_t)r * j->ldc, j->bias, (size_t)j->N * sizeof(float));
    /* rows i0.. of op(A): A is (M,K), or (K,M) when transposed */
    const float *A = j->A + (j->ta == CblasNoTrans ? (size_t)i0 * j->lda : (size_t)i0);
    cblas_sgemm(CblasRowMajor, j->ta, j->tb, i1 - i0, j->N, j->K, j->alpha, A, j->lda, j->B,
                j->ldb, j->beta, j->C + (size_t)i0 * j->ldc, j->ldc);
}

/* gemm.c's kernel for the linear layers and the LM head, or OpenBLAS: see ops_gemm_choose. */
static int g_own_gemm = -1;

/* The "auto" rule, from measurements (docs/bench.md, "Other machines"): the own kernel beats OpenBLAS on the
 * training step's products on the Intel Xeons it was tuned on (1.22x tiny, 1.03-1.06x
 * 124M) and loses on AMD Zen 5 (0.86x tiny, 0.87x 124M). No other AVX-512 CPU has been
 * measured; OpenBLAS is the safer default there. A rule, not a timing at start-up: the
 * same machine and config always choose the same kernel, so runs stay bit-reproducible
 * and a resumed run computes what the uninterrupted one would have. */
/* Whether OpenBLAS runs AVX-512 kernels: its core for this CPU, or the one
 * OPENBLAS_CORETYPE forces (OpenBLAS 0.3.21 names Zen 4 and 5 "Cooperlake") */
static int blas_core_avx512(void) {
    const char *core = openblas_get_corename();
    static const char *const wide[] = {"skylakex", "cooperlake", "sapphirerapids"};
    for (size_t i = 0; i < sizeof wide / sizeof wide[0]; i++)
        if (core && !strcasecmp(core, wide[i])) return 1;
    return 0;
}

/* run.gemm = auto: gemm.c on Intel CPUs, and wherever OpenBLAS runs narrower kernels than
 * the CPU has (OPENBLAS_CORETYPE=Haswell on an AVX-512 CPU, or an OpenBLAS too old to know
 * it); OpenBLAS's AVX-512 kernels elsewhere. GPT-2 124M training step, Zen 5 VM, 2
 * threads: gemm.c 653 ms against OpenBLAS 1133 ms on its Haswell core, 694 ms against
 * 671 ms on its own (Cooperlake) core. */
static int ops_gemm_auto(void) {
    return gemm_f32_available() && (!strcmp(cpu_vendor(), "GenuineIntel") || !blas_core_avx512());
}

int ops_gemm_own(int on) {
    if (g_own_gemm < 0) g_own_gemm = ops_gemm_auto();
    int was = g_own_gemm;
    if (on >= 0) g_own_gemm = on && gemm_f32_available();
    return was;
}

const char *ops_gemm_choose(const char *mode) {
    static char why[160];
    int have = gemm_f32_available();
    if (!strcmp(mode, "openblas")) {
        ops_gemm_own(0);
        snprintf(why, sizeof why, "OpenBLAS (run.gemm=openblas)");
    } else if (!strcmp(mode, "own")) {
        ops_gemm_own(1);
        snprintf(why, sizeof why, "%s (run.gemm=own%s)", have ? "gemm.c AVX-512" : "OpenBLAS",
                 have ? "" : ", but this copy of the library has no AVX-512 kernel");
    } else {
        int own = ops_gemm_auto();
        ops_gemm_own(own);
        int intel = !strcmp(cpu_vendor(), "GenuineIntel");
        snprintf(why, sizeof why, "%s (auto: %s)", own ? "gemm.c AVX-512" : "OpenBLAS",
                 !have  ? "no AVX-512 kernel in this copy of the library"
                 : intel ? "an Intel CPU"
                 : own   ? "OpenBLAS's core has no AVX-512 kernels"
                         : "not an Intel CPU, OpenBLAS on AVX-512 kernels");
    }
    return why;
}

static void gemm_bias(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha,
                      const float *A, int lda, const float *B, int ldb, float beta, float *C,
                      int ldc, const float *bias) {
    if (alpha == 1.0f && (beta == 0.0f || beta == 1.0f) && ops_gemm_own(-1)) {
        GemmEpilogue e = {.accumulate = beta == 1.0f, .bias = bias};
        gemm_f32(ta == CblasTrans, tb == CblasTrans, M, N, K, A, lda, B, ldb, C, ldc, &e);
        return;
    }
    GemmJob j = {ta, tb, M, N, K, lda, ldb, ldc, alpha, bias ? 1.0f : beta, A, B, bias, C};
    size_t units = ((size_t)M + GEMM_GRAIN - 1) / GEMM_GRAIN;
    run_range(gemm_range, &j, units, (double)M * N * K < POOL_MIN_WORK ? 0 : POOL_MIN_ELEMS,
              POOL_MAX);
}

static void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha,
                 const float *A, int lda, const float *B, int ldb, float beta, float *C,
                 int ldc) {
    gemm_bias(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL);
}

// ----------------------------------------------------------------------------
// exp: vmath.h's vm_exp (a branch-free float exp; libm's expf is a scalar call, and the
// softmax rows and GELU call it for every element). Deterministic. GCC leaves its loops
// scalar (it treats the clamps as control flow), so the vector builds run them through
// vm_exp16 / vm_exp8 (a softmax row: vm_exp_shift_row), which give every lane the scalar
// call's bits; some AVX-512 passes below keep their own fused paths.

#define exp_fast vm_exp
#if defined(__AVX2__) && !defined(__AVX512F__)
#define OPS_AVX2 1
#else
#define OPS_AVX2 0
#endif

#define exp_shift_row vm_exp_shift_row /* dst[i] = exp_fast(src[i] - mx) (vmath.h) */

#if defined(__AVX512F__)
/* the halves of a vector */
static inline __m256 lo_half(__m512 x) { return _mm512_castps512_ps256(x); }
static inline __m256 hi_half(__m512 x) {
    return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1));
}
#endif

/* sum_i a_i b_i in double over 8 fixed lanes (vectorised; the order is fixed by the code) */
static inline double dot_lanes_d(const float *a, const float *b, int n) {
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int nv = n - n % 8;
#if defined(__AVX512F__) /* the same lanes (GCC leaves the float -> double mix scalar) */
    __m512d v = _mm512_setzero_pd();
    for (int i = 0; i < nv; i += 8)
        v = _mm512_add_pd(v, _mm512_mul_pd(_mm512_cvtps_pd(_mm256_loadu_ps(a + i)),
                                           _mm512_cvtps_pd(_mm256_loadu_ps(b + i))));
    _mm512_storeu_pd(s, v);
#elif OPS_AVX2 /* the same 8 lanes in two registers of 4 doubles */
    __m256d v0 = _mm256_setzero_pd(), v1 = _mm256_setzero_pd();
    for (int i = 0; i < nv; i += 8) {
        v0 = _mm256_add_pd(v0, _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(a + i)),
                                             _mm256_cvtps_pd(_mm_loadu_ps(b + i))));
        v1 = _mm256_add_pd(v1, _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(a + i + 4)),
                                             _mm256_cvtps_pd(_mm_loadu_ps(b + i + 4))));
    }
    _mm256_storeu_pd(s, v0);
    _mm256_storeu_pd(s + 4, v1);
#else
    for (int i = 0; i < nv; i += 8)
        for (int l = 0; l < 8; l++) s[l] += (double)a[i + l] * b[i + l];
#endif
    double r = 0.0;
    for (int l = 0; l < 8; l++) r += s[l];
    for (int i = nv; i < n; i++) r += (double)a[i] * b[i];
    return r;
}

/* Row reductions with fixed lanes (vectorised, and the order is fixed by the code). */
static inline float max_lanes(const float *x, int n) {
    float m[16];
    for (int l = 0; l < 16; l++) m[l] = x[0];
    int nv = n - n % 16;
    for (int i = 0; i < nv; i += 16)
        for (int l = 0; l < 16; l++) m[l] = x[i + l] > m[l] ? x[i + l] : m[l];
    float r = m[0];
    for (int l = 1; l < 16; l++) r = m[l] > r ? m[l] : r;
    for (int i = nv; i < n; i++) r = x[i] > r ? x[i] : r;
    return r;
}

static inline double sum_lanes_d(const float *x, int n) {
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int nv = n - n % 8;
#if defined(__AVX512F__)
    __m512d v = _mm512_setzero_pd();
    for (int i = 0; i < nv; i += 8) v = _mm512_add_pd(v, _mm512_cvtps_pd(_mm256_loadu_ps(x + i)));
    _mm512_storeu_pd(s, v);
#elif OPS_AVX2
    __m256d v0 = _mm256_setzero_pd(), v1 = _mm256_setzero_pd();
    for (int i = 0; i < nv; i += 8) {
        v0 = _mm256_add_pd(v0, _mm256_cvtps_pd(_mm_loadu_ps(x + i)));
        v1 = _mm256_add_pd(v1, _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4)));
    }
    _mm256_storeu_pd(s, v0);
    _mm256_storeu_pd(s + 4, v1);
#else
    for (int i = 0; i < nv; i += 8)
        for (int l = 0; l < 8; l++) s[l] += (double)x[i + l];
#endif
    double r = 0.0;
    for (int l = 0; l < 8; l++) r += s[l];
    for (int i = nv; i < n; i++) r += x[i];
    return r;
}

double softmax_row_weights(float *e, double *block, const float *x, int n, float inv_t) {
    float mx = max_lanes(x, n) * inv_t;
    double total = 0.0;
    for (int i0 = 0; i0 < n; i0 += SOFTMAX_BLOCK) {
        int m = n - i0 < SOFTMAX_BLOCK ? n - i0 : SOFTMAX_BLOCK;
        float *eb = e + i0;
        int j = 0;
#if OPS_AVX2
        for (; j + 8 <= m; j += 8) {
            __m256 z =
                _mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i0 + j), _mm256_set1_ps(inv_t)),
                              _mm256_set1_ps(mx));
            __m256 under = _mm256_cmp_ps(z, _mm256_set1_ps(-87.0f), _CMP_LT_OQ);
            _mm256_storeu_ps(eb + j, _mm256_blendv_ps(vm_exp8(z), _mm256_setzero_ps(), under));
        }
#endif
        for (; j < m; j++) {
            float z = x[i0 + j] * inv_t - mx;
            eb[j] = z < -87.0f ? 0.0f : exp_fast(z);
        }
        double b = sum_lanes_d(eb, m);
        block[i0 / SOFTMAX_BLOCK] = b;
        total += b;
    }
    return total;
}

/* For z = x * inv_t - mx: sum of e^z and of z e^z, in double, through a stack block so
 * that the exp loop and the lane sums both vectorise. */
#define STATS_BLOCK 256
static void softmax_row_stats(const float *x, int n, float inv_t, float mx, double *sum,
                              double *sumz) {
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0}, sz[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    float e[STATS_BLOCK], z[STATS_BLOCK];
    for (int i0 = 0; i0 < n; i0 += STATS_BLOCK) {
        int m = n - i0 < STATS_BLOCK ? n - i0 : STATS_BLOCK;
        int j = 0;
#if OPS_AVX2
        for (; j + 8 <= m; j += 8) {
            __m256 zc =
                _mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i0 + j), _mm256_set1_ps(inv_t)),
                              _mm256_set1_ps(mx));
            __m256 zv = _mm256_max_ps(_mm256_set1_ps(-88.0f), zc); /* NaN passes, as below */
            _mm256_storeu_ps(z + j, zv);
            _mm256_storeu_ps(e + j, vm_exp8(zv));
        }
#endif
        for (; j < m; j++) {
            /* clamped so that a -inf logit contributes e^-88 * -88 ~ 0, not 0 * -inf */
            float zc = x[i0 + j] * inv_t - mx;
            z[j] = zc < -88.0f ? -88.0f : zc;
            e[j] = exp_fast(z[j]);
        }
        int mp = (m + 7) / 8 * 8;
        for (int j = m; j < mp; j++) z[j] = e[j] = 0.0f;
        for (int j = 0; j < mp; j += 8)
            for (int l = 0; l < 8; l++) {
                s[l] += (double)e[j + l];
                sz[l] += (double)e[j + l] * (double)z[j + l];
            }
    }
    double a = 0.0, b = 0.0;
    for (int l = 0; l < 8; l++) a += s[l], b += sz[l];
    *sum = a;
    *sumz = b;
}

// ----------------------------------------------------------------------------
// embedding

typedef struct {
    float *out;
    const int *tokens;
    const float *wte, *wpe;
    int T, C;
} EncoderJob;

static void encoder_forward_range(void *p, size_t lo, size_t hi, int part) {
    (void)part;
    const EncoderJob *j = p;
    int C = j->C;
    for (size_t n = lo; n < hi; n++) {
        float *o = j->out + n * C;
        const float *we = j->wte + (size_t)j->tokens[n] * C;
        const float *pe = j->wpe + (n % (size_t)j->T) * C;
        for (int i = 0; i < C; i++) o[i] = we[i] + pe[i];
    }
}

void encoder_forward(float *out, const int *tokens, const float *wte, const float *wpe,
                     int B, int T, int C) {
    EncoderJob j = {out, tokens, wte, wpe, T, C};
    size_t N = (size_t)B * T;
    run_range(encoder_forward_range, &j, N, N * C, POOL_MAX);
}

void encoder_backward(float *dwte, float *dwpe, const float *dout, const int *tokens, int B,
                      int T, int C) {
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            const float *d = dout + ((size_t)b * T + t) * C;
            float *dwe = dwte + (size_t)tokens[b * T + t] * C;
            float *dpe = dwpe + (size_t)t * C;
            for (int i = 0; i < C; i++) {
                dwe[i] += d[i];
                dpe[i] += d[i];
            }
        }
    }
}

// ----------------------------------------------------------------------------
// layernorm

/* Sum of (x[i] - m)^2 over 8 double lanes (vectorised, fixed order). */
static inline double sumsq_dev_lanes_d(const float *x, float m, int n) {
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int nv = n - n % 8;
#if defined(__AVX512F__)
    __m512d v = _mm512_setzero_pd();
    __m256 vm = _mm256_set1_ps(m);
    for (int i = 0; i < nv; i += 8) {
        __m512d d = _mm512_cvtps_pd(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        v = _mm512_add_pd(v, _mm512_mul_pd(d, d));
    }
    _mm512_storeu_pd(s, v);
#elif OPS_AVX2 /* the same 8 lanes in two registers of 4 doubles */
    __m256d v0 = _mm256_setzero_pd(), v1 = _mm256_setzero_pd();
    __m256 vm = _mm256_set1_ps(m);
    for (int i = 0; i < nv; i += 8) {
        __m256 dv = _mm256_sub_ps(_mm256_loadu_ps(x + i), vm);
        __m256d d0 = _mm256_cvtps_pd(_mm256_castps256_ps128(dv));
        __m256d d1 = _mm256_cvtps_pd(_mm256_extractf128_ps(dv, 1));
        v0 = _mm256_add_pd(v0, _mm256_mul_pd(d0, d0));
        v1 = _mm256_add_pd(v1, _mm256_mul_pd(d1, d1));
    }
    _mm256_storeu_pd(s, v0);
    _mm256_storeu_pd(s + 4, v1);
#else
    for (int i = 0; i < nv; i += 8)
        for (int l = 0; l < 8; l++) {
            double d = (double)(x[i + l] - m);
            s[l] += d * d;
        }
#endif
    double r = 0.0;
    for (int l = 0; l < 8; l++) r += s[l];
    for (int i = nv; i < n; i++) {
        double d = (double)(x[i] - m);
        r += d * d;
    }
    return r;
}

typedef struct {
    float *out, *mean, *rstd;
    const float *inp, *weight, *bias;
    int C;
} LNForwardJob;

static void layernorm_forward_range(void *p, size_t lo, size_t hi, int part) {
    (void)part;
    const LNForwardJob *j = p;
    int C = j->C;
    const float *weight = j->weight, *bias = j->bias;
    for (size_t n = lo; n < hi; n++) {
        const float *x = j->inp + n * C;
        float m = (float)(sum_lanes_d(x, C) / C);
        double v = sumsq_dev_lanes_d(x, m, C);
        float r = (float)(1.0 / sqrt(v / C + (double)GPT_LN_EPS));
        float *o = j->out + n * C;
        for (int i = 0; i < C; i++) o[i] = (x[i] - m) * r * weight[i] + bias[i];
        j->mean[n] = m;
        j->rstd[n] = r;
    }
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, int N, int C) {
    LNForwardJob j = {out, mean, rstd, inp, weight, bias, C};
    run_range(layernorm_forward_range, &j, (size_t)N, (size_t)N * C, POOL_MAX);
}

typedef struct {
    float *dinp, *dweight, *dbias;
    const float *dout, *inp, *weight, *mean, *rstd;
    int N, C;
} LNBackwardJob;

/* dinp for rows [lo, hi): the two row means of the backward (llm.c's dnorm_mean,
 * dnorm_norm_mean) over 8 double lanes, then dx += (dnorm - a - norm b) r. */
static void layernorm_backward_rows(void *p, size_t lo, size_t hi, int part) {
    (void)part;
    const LNBackwardJob *j = p;
    int C = j->C;
    const float *weight = j->weight;
    for (size_t n = lo; n < hi; n++) {
        const float *x = j->inp + n * C;
        const float *d = j->dout + n * C;
        float *restrict dx = j->dinp + n * C;
        float m = j->mean[n], r = j->rstd[n];
        double s1[8] = {0, 0, 0, 0, 0, 0, 0, 0}, s2[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int nv = C - C % 8;
#if defined(__AVX512F__)
        /* the loop below, 8 lanes at a time (GCC leaves the float -> double mix scalar) */
        __m512d v1 = _mm512_setzero_pd(), v2 = _mm512_setzero_pd();
        __m256 vm = _mm256_set1_ps(m), vr = _mm256_set1_ps(r);
        for (int i = 0; i < nv; i += 8) {
            __m256 norm = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), vr);
            __m256 dnorm = _mm256_mul_ps(_mm256_loadu_ps(weight + i), _mm256_loadu_ps(d + i));
            __m512d dd = _mm512_cvtps_pd(dnorm);
            v1 = _mm512_add_pd(v1, dd);
            v2 = _mm512_add_pd(v2, _mm512_mul_pd(dd, _mm512_cvtps_pd(norm)));
        }
        _mm512_storeu_pd(s1, v1);
        _mm512_storeu_pd(s2, v2);
#elif OPS_AVX2 /* the same 8 lanes, each half in a register of 4 doubles */
        __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
        __m256d b0 = _mm256_setzero_pd(), b1 = _mm256_setzero_pd();
        __m256 vm = _mm256_set1_ps(m), vr = _mm256_set1_ps(r);
        for (int i = 0; i < nv; i += 8) {
            __m256 norm = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), vr);
            __m256 dnorm = _mm256_mul_ps(_mm256_loadu_ps(weight + i), _mm256_loadu_ps(d + i));
            __m256d d0 = _mm256_cvtps_pd(_mm256_castps256_ps128(dnorm));
            __m256d d1 = _mm256_cvtps_pd(_mm256_extractf128_ps(dnorm, 1));
            a0 = _mm256_add_pd(a0, d0);
            a1 = _mm256_add_pd(a1, d1);
            b0 =
                _mm256_add_pd(b0, _mm256_mul_pd(d0, _mm256_cvtps_pd(_mm256_castps256_ps128(norm))));
            b1 = _mm256_add_pd(b1,
                               _mm256_mul_pd(d1, _mm256_cvtps_pd(_mm256_extractf128_ps(norm, 1))));
        }
        _mm256_storeu_pd(s1, a0);
        _mm256_storeu_pd(s1 + 4, a1);
        _mm256_storeu_pd(s2, b0);
        _mm256_storeu_pd(s2 + 4, b1);
#else
        for (int i = 0; i < nv; i += 8)
            for (int l = 0; l < 8; l++) {
                float norm = (x[i + l] - m) * r;
                float dnorm = weight[i + l] * d[i + l];
                s1[l] += (double)dnorm;
                s2[l] += (double)dnorm * (double)norm;
            }
#endif
        double dn_mean = 0.0, dn_norm_mean = 0.0;
        for (int l = 0; l < 8; l++) dn_mean += s1[l], dn_norm_mean += s2[l];
        for (int i = nv; i < C; i++) {
            float norm = (x[i] - m) * r;
            float dnorm = weight[i] * d[i];
            dn_mean += dnorm;
            dn_norm_mean += (double)dnorm * norm;
        }
        float a = (float)(dn_mean / C), bb = (float)(dn_norm_mean / C);
        for (int i = 0; i < C; i++) {
            float norm = (x[i] - m) * r;
            float dnorm = weight[i] * d[i];
            dx[i] += (dnorm - a - norm * bb) * r;
        }
    }
}

/* dweight, dbias for the 16-column groups [lo, hi), each column summed over the rows
 * in order. */
static void layernorm_backward_cols(void *p, size_t lo, size_t hi, int part) {
    (void)part;
    const LNBackwardJob *j = p;
    int C = j->C, c0 = (int)lo * 16, c1 = (int)hi * 16 < C ? (int)hi * 16 : C, w = c1 - c0;
    /* 32 columns at a time, summed down the rows in a local buffer (as colsum_range) */
    for (int b0 = 0; b0 < w; b0 += 32) {
        int bw = w - b0 < 32 ? w - b0 : 32;
        float db[32], dw[32];
        memcpy(db, j->dbias + c0 + b0, (size_t)bw * sizeof(float));
        memcpy(dw, j->dweight + c0 + b0, (size_t)bw * sizeof(float));
        for (int n = 0; n < j->N; n++) {
            const float *x = j->inp + (size_t)n * C + c0 + b0, *d = j->dout + (size_t)n * C + c0 + b0;
            float m = j->mean[n], r = j->rstd[n];
            for (int i = 0; i < bw; i++) {
                db[i] += d[i];
                dw[i] += (x[i] - m) * r * d[i];
            }
        }
        memcpy(j->dbias + c0 + b0, db, (size_t)bw * sizeof(float));
        memcpy(j->dweight + c0 + b0, dw, (size_t)bw * sizeof(float));
    }
}

void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean,
                        const float *rstd, int N, int C) {
    LNBackwardJob j = {dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C};
    size_t elems = (size_t)N * C;
    run_range(layernorm_backward_rows, &j, (size_t)N, elems, POOL_MAX);
    run_range(layernorm_backward_cols, &j, ((size_t)C + 15) / 16, elems, POOL_MAX);
}

// ----------------------------------------------------------------------------
// matmul

void matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
                    int N, int C, int OC) {
    gemm_bias(CblasNoTrans, CblasNoTrans, N, OC, C, 1.0f, inp, C, weight, OC, 0.0f, out, OC,
              bias);
}

void matmul_forward_naive(float *out, const float *inp, const float *weight,
                          const float *bias, int N, int C, int OC) {
    for (int n = 0; n < N; n++) {
        for (int o = 0; o < OC; o++) {
            double s = bias ? bias[o] : 0.0;
            for (int i = 0; i < C; i++) s += (double)inp[(size_t)n * C + i] * weight[(size_t)i * OC + o];
            out[(size_t)n * OC + o] = (float)s;
        }
    }
}

/* The batch-invariant kernels use GCC vector extensions (16 floats: one AVX-512
 * register, two AVX2 ones) so the accumulators stay in registers. In this section (to the
 * end of lmhead_forward_rows) `acc += x * w` is contracted into a fused multiply-add
 * (-ffp-contract=fast for these functions only; -std=c11 turns contraction off elsewhere):
 * one rounding per step instead of two, half the instructions — decoding at batch 8 is
 * bound by them. Every element, in the vector tiles and in the scalar edge loops alike,
 * sees the same sequence of fused roundings, so a row's result still does not depend on
 * the batch around it (tests/test_ops.c checks it bit for bit). */
#pragma GCC push_options
#pragma GCC optimize("fp-contract=fast")
typedef float v16f __attribute__((vector_size(64)));

/* loads and stores through memcpy (unaligned); macros rather than functions, since
 * passing a 64-byte vector by value has a target-dependent ABI (-Wpsabi) */
#define V16_LOAD(v, p) memcpy(&(v), (p), sizeof(v16f))
#define V16_STORE(p, v) memcpy((p), &(v), sizeof(v16f))
/* 16 bfloat16 into a v16f: a bf16 is the top half of a float, so zero-extend each to 32
 * bits and shift it up (exact). AVX-512 (the x86-64-v4 copy): one zmm vpmovzxwd + vpslld.
 * AVX2 (the x86-64-v3 copy): the same on two halves; plain C otherwise. (Two ymm halves
 * joined into a zmm went through the stack, and the 64-byte reload of two 32-byte stores
 * missed store forwarding: the bf16 step ran at 0.56x the fp32 one on a Zen 5.) */
#if defined(__AVX512F__)
#define BF16_LOAD(v, p)                                                                    \
    do {                                                                                   \
        __m512i w_ = _mm512_slli_epi32(                                                    \
            _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(p))), 16); \
        memcpy(&(v), &w_, sizeof(v16f));                                                   \
    } while (0)
#elif defined(__AVX2__)
#define BF16_LOAD(v, p)                                                                    \
    do {                                                                                   \
        const __m128i *bp_ = (const __m128i *)(const void *)(p);                           \
        __m256i lo_ = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(bp_)), 16);  \
        __m256i hi_ = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(bp_ + 1)), 16); \
        memcpy(&(v), &lo_, 32);                                                            \
        memcpy((char *)&(v) + 32, &hi_, 32);                                               \
    } while (0)
#else
#define BF16_LOAD(v, p)                                                                    \
    do {                                                                                   \
        uint32_t u_[16];                                                                   \
        for (int j_ = 0; j_ < 16; j_++) u_[j_] = (uint32_t)(p)[j_] << 16;                  \
        memcpy(&(v), u_, sizeof(v16f));                                                    \
    } while (0)
#endif
/* 16 weights from a float or (bf16 set, a compile-time constant) a bfloat16 array */
#define W16_LOAD(v, base, off, bf16)                                                       \
    do {                                                                                   \
        if (bf16) BF16_LOAD(v, (const uint16_t *)(base) + (off));                          \
        else V16_LOAD(v, (const float *)(base) + (off));                                   \
    } while (0)

/* Tile of the batch-invariant matmul: nr rows (1..MM_RB) x cb columns from j0, cb a
 * compile-time 16, 32 or MM_CB (the call sites pass constants; the function is inlined
 * and specialised). For every element: acc = bias (or 0); for k in 0..C-1:
 * acc = acc + x[k] * w[k] — the same sequence of roundings whatever nr, cb and the tile
 * position are. MM_RB x MM_CB = 8 x 48: 24 accumulator registers, 3 for W, 1 for the
 * broadcast x (of AVX-512's 32); at decode batch 8 each W element is loaded once per
 * call. (The 124M trunk at batch 8, 2 threads: 1.36x faster than the 4 x 64 tile it
 * replaced, which read every panel twice; Intel Xeon VM.) */
#if defined(__AVX512F__)
#define MM_RB 8
#define MM_CB 48
#define MM_VW 16 /* floats per accumulator: one AVX-512 register */
typedef v16f mmvec;
#else
/* AVX2 has 16 vector registers of 8 floats. The accumulators are 8-float vectors here:
 * GCC lowers a 16-float generic vector on AVX2 through the stack (every k stored and
 * reloaded it: the 124M decode step ran at 10 % of its bandwidth bound on a Zen 3), while
 * an 8-float one is one ymm register. The tiles are 4 x 24 (mm_rows_panel below).
 * Each element sees the same arithmetic as in a 16-float lane, so the same bits. */
#define MM_RB 6
#define MM_CB 48 /* three 16-column panels: mm_rows_panel below */
#define MM_VW 8
typedef float mmvec __attribute__((vector_size(32)));
#endif
#define MM_VG (16 / MM_VW) /* accumulators per 16-column group */
/* MM_VW weights from a float or (bf16 set, a compile-time constant) a bfloat16 array */
#if MM_VW == 16
#define MM_WLOAD(v, base, off, bf16) W16_LOAD(v, base, off, bf16)
#elif defined(__AVX2__)
#define MM_WLOAD(v, base, off, bf16)                                                       \
    do {                                                                                   \
        if (bf16) {                                                                        \
            const void *bp_ = (const uint16_t *)(base) + (off);                           \
            __m256i w_ = _mm256_slli_epi32(                                                \
                _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)bp_)), 16);         \
            memcpy(&(v), &w_, sizeof(mmvec));                                              \
        } else memcpy(&(v), (const float *)(base) + (off), sizeof(mmvec));                 \
    } while (0)
#else
#define MM_WLOAD(v, base, off, bf16)                                                       \
    do {                                                                                   \
        if (bf16) {                                                                        \
            uint32_t u_[MM_VW];                                                            \
            for (int j_ = 0; j_ < MM_VW; j_++)                                             \
                u_[j_] = (uint32_t)((const uint16_t *)(base) + (off))[j_] << 16;           \
            memcpy(&(v), u_, sizeof(mmvec));                                               \
        } else memcpy(&(v), (const float *)(base) + (off), sizeof(mmvec));                 \
    } while (0)
#endif
#define MM_PF 8   /* (C,OC) layout: rows of W prefetched ahead, into L1 */
#define MM_PFP 48 /* packed layout: rows prefetched ahead in each 16-column stream, into L2 */
/* The tiles' inner step: acc[r][a] += x[r][k] * wv[a] for the nr (of at most rb) rows of
 * the tile's input and its na weight vectors, rows and vectors unrolled (acc then stays
 * in registers). One statement, so it can follow an if. */
#define MM_TILE_FMA(acc, inp, C, k, wv, nr, na, rb)                                         \
    _Pragma("GCC unroll 8") for (int r_ = 0; r_ < (rb); r_++) {                             \
        if (r_ >= (nr)) break;                                                              \
        float x_ = (inp)[(size_t)r_ * (C) + (k)];                                           \
        _Pragma("GCC unroll 6") for (int a_ = 0; a_ < (na); a_++) (acc)[r_][a_] += x_ * (wv)[a_]; \
    }
#if MM_VW == 16
/* mm_rows_tile's rows from a bf16 copy: each pair of W's rows is one 64-byte line per
 * panel (mm_bf16_index), 32-bit lane j holding w[k][j] | w[k + 1][j] << 16; row k is the
 * lane shifted up by 16 and row k + 1 the lane with its low half cleared (both exact).
 * Then the same multiply-adds in the same order as from fp32 (acc += x[k] w[k], then
 * x[k+1] w[k+1]); an odd C's last row is stored alone. The pair's line is prefetched
 * MM_PFP rows ahead. */
static inline __attribute__((always_inline)) void mm_rows_tile_bf16(
    mmvec acc[MM_RB][MM_CB / MM_VW], const float *inp, const uint16_t *W, size_t qs, int nr,
    int C, int na) {
    enum { NA = MM_CB / MM_VW };
    const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
    int k = 0;
    for (; k + 1 < C; k += 2) {
        const uint16_t *w = W + (size_t)k * 16;
#pragma GCC unroll 3
        for (int a = 0; a < na; a++) __builtin_prefetch(w + (size_t)MM_PFP * 16 + a * qs, 0, 2);
        mmvec we[NA], wo[NA];
#pragma GCC unroll 3
        for (int a = 0; a < na; a++) {
            __m512i v = _mm512_loadu_si512((const void *)(w + a * qs));
            __m512i e = _mm512_slli_epi32(v, 16), o = _mm512_and_si512(v, hi);
            memcpy(&we[a], &e, sizeof(mmvec));
            memcpy(&wo[a], &o, sizeof(mmvec));
        }
        MM_TILE_FMA(acc, inp, C, k, we, nr, na, MM_RB);
        MM_TILE_FMA(acc, inp, C, k + 1, wo, nr, na, MM_RB);
    }
    if (k < C) { /* an odd C's last row */
        mmvec wv[NA];
#pragma GCC unroll 3
        for (int a = 0; a < na; a++) BF16_LOAD(wv[a], W + (size_t)k * 16 + a * qs);
        MM_TILE_FMA(acc, inp, C, k, wv, nr, na, MM_RB);
    }
}

/* mm_rows_tile's rows from fp32 weights, packed or in place (W, ldw, qs as there) */
static inline __attribute__((always_inline)) void mm_rows_tile_f32(
    mmvec acc[MM_RB][MM_CB / MM_VW], const float *inp, const void *W, size_t ldw, size_t qs,
    int packed, int nr, int C, int cb, int na) {
    enum { NA = MM_CB / MM_VW };
    for (int k = 0; k < C; k++) {
        /* element offset of this row; W is float */
        size_t wk = (size_t)k * ldw;
        const float *w = (const float *)W + wk;
        /* In the (C,OC) layout the panel walks W with a stride of OC floats, which the
         * hardware prefetchers do not follow across pages: fetch the row MM_PF ahead (the
         * start of every 16 floats and the last float cover each cache line its cb floats
         * touch). 124M decode at batch 8, 2 threads: 1.26x. Packed, each column group is a
         * sequential stream of 64-byte rows, three streams per tile: a core keeps more
         * misses in flight over several streams than over one, and the prefetch, 3 KiB
         * ahead in each into L2 (prefetcht1), keeps them coming while the loop computes.
         * 124M trunk at batch 8, 2 threads, per token step: 16.5 ms one 48-wide packed
         * stream prefetched into L1, 13.9 ms into L2, 11.5 ms three streams (Intel Xeon VM).
         * The packed buffer ends in MM_PFP rows of slack, so the prefetch needs no bound. */
        if (packed) {
#pragma GCC unroll 3
            for (int q = 0; q < cb / 16; q++) __builtin_prefetch(w + (size_t)MM_PFP * 16 + q * qs, 0, 2);
        } else if (k + MM_PF < C) {
#pragma GCC unroll 4
            for (int q = 0; q < cb / 16; q++) __builtin_prefetch(w + (size_t)MM_PF * ldw + 16 * q);
            __builtin_prefetch(w + (size_t)MM_PF * ldw + cb - 1);
        }
        mmvec wv[NA];
#pragma GCC unroll 6
        for (int a = 0; a < na; a++)
            MM_WLOAD(wv[a], W, wk + (a / MM_VG) * qs + (a % MM_VG) * MM_VW, 0);
        MM_TILE_FMA(acc, inp, C, k, wv, nr, na, MM_RB);
    }
}

/* The column group q (16 floats) of row k of the tile is at W + k * ldw + q * qs: the
 * (C,OC) layout is W = weight + j0, ldw = OC, qs = 16; the packed one (matmul_pack_rows)
 * is W = the tile's first 16-column panel, ldw = 16, qs = C * 16 (the next panel). */
static inline __attribute__((always_inline)) void mm_rows_tile(float *out, const float *inp,
                                                               const void *W, size_t ldw,
                                                               size_t qs, int packed, int bf16,
                                                               const float *bias, int nr, int C,
                                                               int OC, int j0, int cb) {
    enum { NA = MM_CB / MM_VW }; /* accumulators per row of the widest tile */
    const int na = cb / MM_VW;   /* this tile's */
    mmvec acc[MM_RB][NA];
#pragma GCC unroll 8
    for (int r = 0; r < MM_RB; r++)
#pragma GCC unroll 6
        for (int a = 0; a < na; a++) {
            if (bias) memcpy(&acc[r][a], bias + j0 + MM_VW * a, sizeof(mmvec));
            else acc[r][a] = (mmvec){0};
        }
    if (bf16) /* packed bf16: rows in pairs (matmul_pack_rows_bf16), two per load */
        mm_rows_tile_bf16(acc, inp, (const uint16_t *)W, qs, nr, C, na);
    else
        mm_rows_tile_f32(acc, inp, W, ldw, qs, packed, nr, C, cb, na);
#pragma GCC unroll 8
    for (int r = 0; r < MM_RB; r++) {
        if (r >= nr) break;
#pragma GCC unroll 6
        for (int a = 0; a < na; a++)
            memcpy(out + (size_t)r * OC + j0 + MM_VW * a, &acc[r][a], sizeof(mmvec));
    }
}

/* All rows for the columns [j0, j0 + cb), in row tiles of MM_RB (then the rest); W, ldw,
 * qs as for mm_rows_tile. */
static inline __attribute__((always_inline)) void mm_rows_panel(float *out, const float *inp,
                                                                const void *W, size_t ldw,
                                                                size_t qs, int packed, int bf16,
                                                                const float *bias, int N, int C,
                                                                int OC, int j0, int cb) {
    int n = 0;
    for (; n + MM_RB <= N; n += MM_RB)
        mm_rows_tile(out + (size_t)n * OC, inp + (size_t)n * C, W, ldw, qs, packed, bf16, bias,
                     MM_RB, C, OC, j0, cb);
    if (n < N)
        mm_rows_tile(out + (size_t)n * OC, inp + (size_t)n * C, W, ldw, qs, packed, bf16, bias,
                     N - n, C, OC, j0, cb);
}
#else
/* AVX2 (and the portable build): a 6 x 16 tile would read a 16-column panel of W once per
 * 6 rows, so at decode batch 8 twice (rows 0-5, then 6-7 in a latency-bound tile of 4
 * accumulators). Here the 48 columns of three panels are cut into two tiles of 4 rows x
 * 24 columns (12 accumulators, 3 registers for W, 1 for x: AVX2's 16), and the panels are
 * walked in blocks of MM_KB rows (3 x 4 KiB, L1-resident): within a block every row tile
 * runs, so W leaves memory once per call and a bf16 weight is widened once per 4 rows.
 * Between blocks the partial sums wait in `out`: a float stored and reloaded is the same
 * float, so every element still sees acc = bias (or 0), then acc + x[k] * w[k] for
 * k = 0..C-1 in order — the same bits as mm_rows_tile, whatever the batch. */
#define MM_KR 4  /* rows of a tile */
#define MM_KV 3  /* 8-column vectors of a tile */
#define MM_KB 64 /* rows of W per block */
/* W's rows [k0, k1) for the nr (1..MM_KR) rows from inp, into the nv (1..MM_KV) 8-column
 * vectors v0 .. v0 + nv - 1 of the panel group at j0 (vector v: column group v / 2 at
 * W + (v / 2) * qs, half v % 2); ncb: the group's 16-column panels, all prefetched when pf */
static inline __attribute__((always_inline)) void mm_rows_block(float *out, const float *inp,
                                                                const void *W, size_t ldw,
                                                                size_t qs, int packed, int bf16,
                                                                const float *bias, int nr,
                                                                int C, int OC, int j0, int v0,
                                                                int nv, int ncb, int k0, int k1,
                                                                int pf) {
    mmvec acc[MM_KR][MM_KV] = {{{0}}}; /* those past nr, nv stay unused */
    size_t wo[MM_KV] = {0};            /* element offset of each vector in a row of W */
#pragma GCC unroll 3
    for (int a = 0; a < nv; a++) wo[a] = (size_t)((v0 + a) / 2) * qs + (size_t)((v0 + a) % 2) * 8;
#pragma GCC unroll 4
    for (int r = 0; r < MM_KR; r++) {
        if (r >= nr) break;
#pragma GCC unroll 3
        for (int a = 0; a < nv; a++) {
            int j = j0 + 8 * (v0 + a);
            if (k0 > 0) memcpy(&acc[r][a], out + (size_t)r * OC + j, sizeof(mmvec));
            else if (bias) memcpy(&acc[r][a], bias + j, sizeof(mmvec));
        }
    }
    for (int k = k0; k < k1; k++) {
        size_t wk = (size_t)k * ldw;
        const float *w = (const float *)W + wk;
        /* one line per row of each packed panel, MM_PFP rows ahead into L2 (the slack
         * after the last panel covers the overrun); (C,OC): mm_rows_tile says why */
        if (pf && packed) {
#pragma GCC unroll 3
            for (int q = 0; q < ncb; q++) {
                if (bf16)
                    __builtin_prefetch((const uint16_t *)W + wk + (size_t)MM_PFP * 16 + q * qs, 0, 2);
                else __builtin_prefetch(w + (size_t)MM_PFP * 16 + q * qs, 0, 2);
            }
        } else if (pf && k + MM_PF < C) {
#pragma GCC unroll 3
            for (int q = 0; q < ncb; q++) __builtin_prefetch(w + (size_t)MM_PF * ldw + 16 * q);
            __builtin_prefetch(w + (size_t)MM_PF * ldw + 16 * ncb - 1);
        }
        mmvec wv[MM_KV] = {{0}}; /* those past nv stay unused */
#pragma GCC unroll 3
        for (int a = 0; a < nv; a++) MM_WLOAD(wv[a], W, wk + wo[a], bf16);
        MM_TILE_FMA(acc, inp, C, k, wv, nr, nv, MM_KR);
    }
#pragma GCC unroll 4
    for (int r = 0; r < MM_KR; r++) {
        if (r >= nr) break;
#pragma GCC unroll 3
        for (int a = 0; a < nv; a++)
            memcpy(out + (size_t)r * OC + j0 + 8 * (v0 + a), &acc[r][a], sizeof(mmvec));
    }
}

/* One row tile's share of a block: the cb / 8 vectors of the group in tiles of up to
 * MM_KV (48 columns: 3 + 3; 32: 2 + 2; 16: 2), nr a constant where it is MM_KR */
static inline __attribute__((always_inline)) void mm_rows_rowtile(float *out, const float *inp,
                                                                  const void *W, size_t ldw,
                                                                  size_t qs, int packed,
                                                                  int bf16, const float *bias,
                                                                  int nr, int C, int OC, int j0,
                                                                  int cb, int k0, int k1, int pf) {
    int nvec = cb / 8, per = nvec == 4 ? 2 : MM_KV;
    for (int v0 = 0; v0 < nvec; v0 += per)
        mm_rows_block(out, inp, W, ldw, qs, packed, bf16, bias, nr, C, OC, j0, v0,
                      nvec - v0 < per ? nvec - v0 : per, cb / 16, k0, k1, pf && v0 == 0);
}

/* All rows for the columns [j0, j0 + cb) (cb 16, 32 or MM_CB), block by block of W's
 * rows; W, ldw, qs as for mm_rows_tile. Every row tile issues the prefetch, not only the
 * first (124M trunk at batch 8, 1 thread, CPU time under load: 29-32 ms against 31-39). */
static inline __attribute__((always_inline)) void mm_rows_panel(float *out, const float *inp,
                                                                const void *W, size_t ldw,
                                                                size_t qs, int packed, int bf16,
                                                                const float *bias, int N, int C,
                                                                int OC, int j0, int cb) {
    for (int k0 = 0; k0 < C; k0 += MM_KB) {
        int k1 = C - k0 < MM_KB ? C : k0 + MM_KB;
        for (int n = 0; n < N; n += MM_KR) {
            float *o = out + (size_t)n * OC;
            const float *x = inp + (size_t)n * C;
            if (N - n >= MM_KR)
                mm_rows_rowtile(o, x, W, ldw, qs, packed, bf16, bias, MM_KR, C, OC, j0, cb, k0,
                                k1, 1);
            else
                mm_rows_rowtile(o, x, W, ldw, qs, packed, bf16, bias, N - n, C, OC, j0, cb, k0,
                                k1, 1);
        }
    }
}
#endif

/* acc + x * w with the rounding of the tiles (one fused rounding where the build has FMA).
 * Spelled out: GCC vectorises the products of a scalar dot-product loop and then adds them
 * in order, which leaves nothing to contract. */
#if defined(__FMA__)
#define MM_FMA1(x, w, acc) __builtin_fmaf((x), (w), (acc))
#else
#define MM_FMA1(x, w, acc) ((acc) + (x) * (w))
#endif

/* The same per-element computation for the last OC % 16 columns, one row at a time,
 * from a weight stored (OC,C) (the LM head's (V,C) embedding), each weight rounded to
 * bf16 first when `round` (the packed copy is bf16): the chain of mm_rows_edge. round 2
 * (the bf16 dot-product kernels): each input rounded to bf16 as well; the products are
 * then exact and summed in order, one rounding per term. */
static void mm_rows_edge_vc(float *out, const float *inp, const float *W, int round, int C,
                            int j0, int nj) {
    for (int j = 0; j < nj; j++) {
        const float *w = W + (size_t)(j0 + j) * C;
        float acc = 0.0f;
        for (int k = 0; k < C; k++) {
            float x = round == 2 ? bf16_to_f32(bf16_from_f32(inp[k])) : inp[k];
            acc = MM_FMA1(x, round ? bf16_to_f32(bf16_from_f32(w[k])) : w[k], acc);
        }
        out[j0 + j] = acc;
    }
}

/* The same per-element computation for the last OC % 16 columns, one row at a time. */
static void mm_rows_edge(float *out, const float *inp, const float *W, const float *bias, int C,
                         int OC, int j0, int nj) {
    float acc[16];
    for (int j = 0; j < nj; j++) acc[j] = bias ? bias[j0 + j] : 0.0f;
    for (int k = 0; k < C; k++) {
        const float *w = W + (size_t)k * OC + j0;
        float x = inp[k];
        for (int j = 0; j < nj; j++) acc[j] += x * w[j];
    }
    memcpy(out + j0, acc, (size_t)nj * sizeof(float));
}

#if MM_VW == 16
#define MM_HAVE_DOT 1
/* The bf16 dot-product tile (AVX512-BF16, x86-64-v4 copy on a CPU that has it): nr
 * (1..MM_RB) rows x 16 na columns from j0, the inputs as bf16 pairs (bf16_pairs_from_f32,
 * P pairs a row), the weights as the bf16 copy's row pairs (mm_bf16_index). Each output:
 * acc = bias (or 0); for each pair i in order, acc = vdpbf16ps(acc, x pair i, w pair i)
 * (acc + x[2i] w[2i] + x[2i+1] w[2i+1], the products exact, fp32 accumulation); an odd
 * C's last row is the pair (x, 0) against (w, 0). Every output's chain depends on its
 * own row only: the same bits whatever the batch, tile or thread. Two multiply-adds per
 * lane per instruction and no widening: half the instructions of mm_rows_tile_bf16. */
static inline __attribute__((always_inline, target("avx512bf16"))) void mm_dot_tile(
    float *out, const uint32_t *xp, int P, const uint16_t *W, size_t qs, const float *bias,
    int nr, int C, int OC, int j0, int na) {
    __m512 acc[MM_RB][3];
#pragma GCC unroll 8
    for (int r = 0; r < MM_RB; r++)
#pragma GCC unroll 3
        for (int a = 0; a < na; a++)
            acc[r][a] = bias ? _mm512_loadu_ps(bias + j0 + 16 * a) : _mm512_setzero_ps();
    for (int i = 0; i < C / 2; i++) {
        const uint16_t *w = W + (size_t)i * 32;
#pragma GCC unroll 3
        for (int a = 0; a < na; a++) __builtin_prefetch(w + (size_t)MM_PFP * 16 + a * qs, 0, 2);
        __m512bh wv[3];
#pragma GCC unroll 3
        for (int a = 0; a < na; a++) wv[a] = (__m512bh)_mm512_loadu_si512((const void *)(w + a * qs));
#pragma GCC unroll 8
        for (int r = 0; r < MM_RB; r++) {
            if (r >= nr) break;
            __m512bh x = (__m512bh)_mm512_set1_epi32((int)xp[(size_t)r * P + i]);
#pragma GCC unroll 3
            for (int a = 0; a < na; a++) acc[r][a] = _mm512_dpbf16_ps(acc[r][a], x, wv[a]);
        }
    }
    if (C & 1) { /* the last row, stored alone: (w, 0) pairs */
        __m512bh wv[3];
        const uint16_t *w = W + (size_t)(C - 1) * 16;
#pragma GCC unroll 3
        for (int a = 0; a < na; a++)
            wv[a] = (__m512bh)_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(w + a * qs)));
#pragma GCC unroll 8
        for (int r = 0; r < MM_RB; r++) {
            if (r >= nr) break;
            __m512bh x = (__m512bh)_mm512_set1_epi32((int)xp[(size_t)r * P + C / 2]);
#pragma GCC unroll 3
            for (int a = 0; a < na; a++) acc[r][a] = _mm512_dpbf16_ps(acc[r][a], x, wv[a]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < MM_RB; r++) {
        if (r >= nr) break;
#pragma GCC unroll 3
        for (int a = 0; a < na; a++) _mm512_storeu_ps(out + (size_t)r * OC + j0 + 16 * a, acc[r][a]);
    }
}

/* All N rows for the columns [j0, j0 + cb) (cb 16, 32 or 48) of a bf16 copy's panels
 * from j0 (W: the first panel, qs elements apart), in row tiles of MM_RB then the rest */
__attribute__((target("avx512bf16"))) static void mm_dot_panel(float *out, const uint32_t *xp,
                                                               const uint16_t *W, size_t qs,
                                                               const float *bias, int N, int C,
                                                               int OC, int j0, int cb) {
    int P = (C + 1) / 2;
    for (int n = 0; n < N; n += MM_RB) {
        int nr = N - n < MM_RB ? N - n : MM_RB;
        float *o = out + (size_t)n * OC;
        const uint32_t *x = xp + (size_t)n * P;
        if (cb == 48 && nr == MM_RB) mm_dot_tile(o, x, P, W, qs, bias, MM_RB, C, OC, j0, 3);
        else if (cb == 48) mm_dot_tile(o, x, P, W, qs, bias, nr, C, OC, j0, 3);
        else if (cb == 32) mm_dot_tile(o, x, P, W, qs, bias, nr, C, OC, j0, 2);
        else mm_dot_tile(o, x, P, W, qs, bias, nr, C, OC, j0, 1);
    }
}
#else
#define MM_HAVE_DOT 0
#endif

typedef struct {
    float *out;
    const float *inp, *weight, *packed, *bias; /* packed: NULL or matmul_pack_rows's copy */
    const uint16_t *packed_bf16;               /* or a bfloat16 copy (packed NULL) */
    int N, C, OC;
    const float *edge_vc; /* weight NULL: the OC % 16 edge columns from this (OC,C) weight */
    const uint32_t *xpairs; /* with packed_bf16: the bf16 dot-product kernel on these inputs */
} MMRowsJob;

/* Part of matmul_forward_rows: a contiguous range of the MM_CB-wide column panels; the
 * last part also takes the OC % MM_CB columns that remain (a 32- and a 16-wide panel as
 * they fit, then the OC % 16 edge). Which code computes a column depends on OC only, and
 * the packed and unpacked layouts run the same tile on the same values in the same order,
 * so they agree bit for bit. */
static void mm_rows_part(void *p, int part, int nparts) {
    const MMRowsJob *jb = p;
    float *out = jb->out;
    const float *inp = jb->inp, *weight = jb->weight, *packed = jb->packed, *bias = jb->bias;
    const uint16_t *pbf = jb->packed_bf16;
    int N = jb->N, C = jb->C, OC = jb->OC;
    int full = OC - OC % MM_CB, lo, hi;
    part_range(full / MM_CB, part, nparts, &lo, &hi);
    size_t g = (size_t)C * 16; /* floats of one packed 16-column panel */
    /* columns [j0, j0 + cb) from the packed copy or in place (constant flags, so each
     * layout gets its own specialised tile) */
#if MM_HAVE_DOT
#define MM_DOT_PANEL(j0, cb) mm_dot_panel(out, jb->xpairs, pbf + (size_t)(j0) * C, g, bias, N, C, OC, j0, cb)
#else
#define MM_DOT_PANEL(j0, cb) fatal("ops: the bf16 dot-product kernel is not in this build")
#endif
#define MM_PANEL(j0, cb)                                                                     \
    (jb->xpairs ? MM_DOT_PANEL(j0, cb) :                                                     \
     pbf      ? mm_rows_panel(out, inp, pbf + (size_t)(j0) * C, 16, g, 1, 1, bias, N, C, OC, \
                              j0, cb)                                                        \
     : packed ? mm_rows_panel(out, inp, packed + (size_t)(j0) * C, 16, g, 1, 0, bias, N, C,  \
                              OC, j0, cb)                                                    \
              : mm_rows_panel(out, inp, weight + (j0), (size_t)OC, 16, 0, 0, bias, N, C, OC,  \
                              j0, cb))
    for (int pi = lo; pi < hi; pi++) MM_PANEL(pi * MM_CB, MM_CB);
    if (full == OC || part != nparts - 1) return;
    int j0 = full;
#if MM_CB > 32
    if (OC - j0 >= 32) MM_PANEL(j0, 32), j0 += 32;
#endif
#if MM_CB > 16
    if (OC - j0 >= 16) MM_PANEL(j0, 16), j0 += 16;
#endif
#undef MM_PANEL
#undef MM_DOT_PANEL
    if (j0 < OC && !weight && jb->edge_vc) {
        for (int n = 0; n < N; n++)
            mm_rows_edge_vc(out + (size_t)n * OC, inp + (size_t)n * C, jb->edge_vc,
                            jb->xpairs ? 2 : pbf != NULL, C, j0, OC - j0);
        return;
    }
    if (j0 < OC && !weight)
        fatal("matmul_forward_rows_packed: the last %d columns (OC %% 16) need the (C,OC) weight",
              OC - j0);
    if (j0 < OC)
        for (int n = 0; n < N; n++)
            mm_rows_edge(out + (size_t)n * OC, inp + (size_t)n * C, weight, bias, C, OC, j0,
                         OC - j0);
}

static void mm_rows_run(const MMRowsJob *jb) {
    double work = (double)jb->N * jb->C * jb->OC;
    int panels = jb->OC / MM_CB;
    if (work < POOL_MIN_WORK || panels < 2) mm_rows_part((void *)jb, 0, 1);
    else pool_run(mm_rows_part, (void *)jb, panels);
}

void matmul_forward_rows(float *out, const float *inp, const float *weight,
                         const float *bias, int N, int C, int OC) {
    mm_rows_run(&(MMRowsJob){out, inp, weight, NULL, bias, NULL, N, C, OC, NULL, NULL});
}

void matmul_forward_rows_packed(float *out, const float *inp, const float *packed,
                                const float *weight, const float *bias, int N, int C, int OC) {
    mm_rows_run(&(MMRowsJob){out, inp, weight, packed, bias, NULL, N, C, OC, NULL, NULL});
}

void matmul_forward_rows_packed_bf16(float *out, const float *inp, const uint16_t *packed,
                                     const float *weight, const float *bias, int N, int C,
                                     int OC) {
    mm_rows_run(&(MMRowsJob){out, inp, weight, NULL, bias, packed, N, C, OC, NULL, NULL});
}

void lmhead_forward_rows_packed(float *logits, const float *inp, const float *packed,
                                const float *wte, int N, int C, int V) {
    mm_rows_run(&(MMRowsJob){logits, inp, NULL, packed, NULL, NULL, N, C, V, wte, NULL});
}

void lmhead_forward_rows_packed_bf16(float *logits, const float *inp, const uint16_t *packed,
                                     const float *wte, int N, int C, int V) {
    mm_rows_run(&(MMRowsJob){logits, inp, NULL, NULL, NULL, packed, N, C, V, wte, NULL});
}

int ops_bf16_dot_supported(void) {
#if MM_HAVE_DOT
    return __builtin_cpu_supports("avx512bf16") != 0;
#else
    return 0;
#endif
}

/* one float's bf16 bits (bf16_from_f32) in the low half of a 32-bit lane, 16 at a time */
#if defined(__AVX512F__)
static inline __m512i bf16_bits16(__m512 v) {
    __m512i u = _mm512_castps_si512(v), one = _mm512_set1_epi32(1);
    __m512i r = _mm512_srli_epi32(
        _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)),
                         _mm512_and_si512(_mm512_srli_epi32(u, 16), one)), 16);
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                            _mm512_set1_epi32(0x7f800000));
    return _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
}
#endif

void bf16_pairs_from_f32(uint32_t *dst, const float *src, int N, int C) {
    int P = (C + 1) / 2;
    for (int n = 0; n < N; n++) {
        const float *x = src + (size_t)n * C;
        uint32_t *d = dst + (size_t)n * P;
        int k = 0;
#if defined(__AVX512F__)
        for (; k + 16 <= C; k += 16) /* 8 pairs: the 16 low halves packed in order */
            _mm256_storeu_si256((__m256i *)(void *)(d + k / 2),
                                _mm512_cvtepi32_epi16(bf16_bits16(_mm512_loadu_ps(x + k))));
#endif
        for (; k + 1 < C; k += 2)
            d[k / 2] = (uint32_t)bf16_from_f32(x[k]) | (uint32_t)bf16_from_f32(x[k + 1]) << 16;
        if (k < C) d[k / 2] = bf16_from_f32(x[k]);
    }
}

/* the dot-product kernels' job: the inputs converted once, then every panel */
static void mm_dot_run(MMRowsJob jb, uint32_t *xpairs) {
    if (!ops_bf16_dot_supported())
        fatal("ops: the bf16 dot-product kernel needs AVX512-BF16 and the x86-64-v4 copy of "
              "the library; this CPU or build has not got it (ops_bf16_dot_supported)");
    bf16_pairs_from_f32(xpairs, jb.inp, jb.N, jb.C);
    jb.xpairs = xpairs;
    mm_rows_run(&jb);
}

void matmul_forward_rows_packed_bf16dot(float *out, const float *inp, uint32_t *xpairs,
                                        const uint16_t *packed, const float *weight,
                                        const float *bias, int N, int C, int OC) {
    mm_dot_run((MMRowsJob){out, inp, weight, NULL, bias, packed, N, C, OC, NULL, NULL}, xpairs);
}

void lmhead_forward_rows_packed_bf16dot(float *logits, const float *inp, uint32_t *xpairs,
                                        const uint16_t *packed, const float *wte, int N, int C,
                                        int V) {
    mm_dot_run((MMRowsJob){logits, inp, NULL, NULL, NULL, packed, N, C, V, wte, NULL}, xpairs);
}

size_t matmul_packed_floats(int C, int OC) {
    return (size_t)(OC / 16) * 16 * (size_t)C + (size_t)MM_PFP * 16;
}

typedef struct {
    float *packed;
    const float *weight;
    int C, OC;
} MMPackJob;

/* Part of matmul_pack_rows: a range of W's rows, each read once in order and written as
 * one 64-byte line into every panel (twice as fast as filling one panel at a time, which
 * reads W a line per row down the columns). */
static void mm_pack_part(void *p, int part, int nparts) {
    const MMPackJob *jb = p;
    int lo, hi, panels = jb->OC / 16;
    part_range(jb->C, part, nparts, &lo, &hi);
    for (int k = lo; k < hi; k++)
        for (int pi = 0; pi < panels; pi++) {
            float *dst = jb->packed + ((size_t)pi * jb->C + k) * 16;
            const float *src = jb->weight + (size_t)k * jb->OC + (size_t)pi * 16;
#if defined(__AVX512F__)
            /* streaming stores: every line of the copy is overwritten whole, so it need not
             * be read into the cache first */
            if (((uintptr_t)dst & 63) == 0) {
                _mm512_stream_ps(dst, _mm512_loadu_ps(src));
                continue;
            }
#endif
            memcpy(dst, src, 16 * sizeof(float));
        }
#if defined(__AVX512F__)
    _mm_sfence();
#endif
}

/* Where W[k][16p + j] sits in a bf16 copy; panel p starts at p * C * 16 as in the fp32
 * copy. AVX-512 (the x86-64-v4 copy of the library): rows in pairs, lane j of a pair's
 * 64-byte line w[k][j] | w[k + 1][j] << 16 (one load serves two rows, and the pairs are
 * the operands of the AVX512-BF16 dot product), the last row of an odd C alone, 16
 * elements. Elsewhere one row after the other, like the fp32 copy (on AVX2 the pairs
 * measured 1.17x slower: 15.3-15.5 ms against 13.0-13.2 per 124M bf16 step, Zen 5). The
 * copy never leaves the process that made it, so each copy of the library keeps its own. */
static size_t mm_bf16_index(int C, int p, int k, int j) {
    size_t base = (size_t)p * C * 16;
#if MM_VW == 16
    if (k < (C & ~1)) return base + (size_t)(k & ~1) * 16 + 2 * (size_t)j + (size_t)(k & 1);
#endif
    return base + (size_t)k * 16 + (size_t)j;
}

typedef struct {
    void *packed;         /* float, or uint16_t when bf16 */
    const float *weight;  /* (C,OC), or (OC,C) when out_in */
    int C, OC, out_in, bf16;
} MMPackAnyJob;

/* Part of the bf16 and (OC,C)-layout packs: a range of the 16-column panels, each
 * written in order; a panel reads 16 rows of W at once when W is (OC,C). */
static void mm_pack_any_part(void *p, int part, int nparts) {
    const MMPackAnyJob *jb = p;
    int lo, hi, C = jb->C, OC = jb->OC;
    part_range(OC / 16, part, nparts, &lo, &hi);
    for (int pi = lo; pi < hi; pi++)
        for (int k = 0; k < C; k++) {
            size_t d = ((size_t)pi * C + k) * 16;
            for (int j = 0; j < 16; j++) {
                int o = pi * 16 + j;
                float v = jb->out_in ? jb->weight[(size_t)o * C + k] : jb->weight[(size_t)k * OC + o];
                if (jb->bf16) ((uint16_t *)jb->packed)[mm_bf16_index(C, pi, k, j)] = bf16_from_f32(v);
                else ((float *)jb->packed)[d + j] = v;
            }
        }
}

static void mm_pack_any(void *packed, const float *weight, int C, int OC, int out_in, int bf16) {
    MMPackAnyJob jb = {packed, weight, C, OC, out_in, bf16};
    int panels = OC / 16;
    size_t tail = (size_t)panels * 16 * C, slack = (size_t)MM_PFP * 16;
    if (bf16) memset((uint16_t *)packed + tail, 0, slack * sizeof(uint16_t));
    else memset((float *)packed + tail, 0, slack * sizeof(float));
    if (panels < 1) return;
    if ((double)C * OC < POOL_MIN_WORK || panels < 2) mm_pack_any_part(&jb, 0, 1);
    else pool_run(mm_pack_any_part, &jb, panels);
}

void matmul_pack_rows_bf16(uint16_t *packed, const float *weight, int C, int OC) {
    mm_pack_any(packed, weight, C, OC, 0, 1);
}

void matmul_pack_cols(float *packed, const float *weight, int C, int OC) {
    mm_pack_any(packed, weight, C, OC, 1, 0);
}

void matmul_pack_cols_bf16(uint16_t *packed, const float *weight, int C, int OC) {
    mm_pack_any(packed, weight, C, OC, 1, 1);
}

uint16_t bf16_from_f32(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

void bf16_from_f32_array(uint16_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = bf16_from_f32(src[i]);
}

void matmul_pack_rows(float *packed, const float *weight, int C, int OC) {
    MMPackJob jb = {packed, weight, C, OC};
    int panels = OC / 16;
    memset(packed + (size_t)panels * 16 * C, 0, (size_t)MM_PFP * 16 * sizeof(float));
    if (panels < 1) return;
    if ((double)C * OC < POOL_MIN_WORK || C < 2) mm_pack_part(&jb, 0, 1);
    else pool_run(mm_pack_part, &jb, C);
}

typedef struct {
    float *dbias;
    const float *dout;
    int N, OC;
} ColSumJob;

/* dbias[c] += sum over the rows in order of dout[n, c], for the 16-column groups
 * [lo, hi). */
static void colsum_range(void *p, size_t lo, size_t hi, int part) {
    (void)part;
    const ColSumJob *j = p;
    int OC = j->OC, c0 = (int)lo * 16, c1 = (int)hi * 16 < OC ? (int)hi * 16 : OC;
    /* 64 columns at a time, summed down the rows in a local buffer (each column still in
     * row order), stored once instead of once per row */
    for (int b0 = c0; b0 < c1; b0 += 64) {
        int w = c1 - b0 < 64 ? c1 - b0 : 64;
#if OPS_AVX2
        if (w == 64) { /* in 8 registers: GCC kept acc on the stack, a load and store per row */
            __m256 a[8];
            for (int u = 0; u < 8; u++) a[u] = _mm256_loadu_ps(j->dbias + b0 + 8 * u);
            for (int n = 0; n < j->N; n++) {
                const float *d = j->dout + (size_t)n * OC + b0;
                for (int u = 0; u < 8; u++) a[u] = _mm256_add_ps(a[u], _mm256_loadu_ps(d + 8 * u));
            }
            for (int u = 0; u < 8; u++) _mm256_storeu_ps(j->dbias + b0 + 8 * u, a[u]);
            continue;
        }
#endif
        float acc[64];
        memcpy(acc, j->dbias + b0, (size_t)w * sizeof(float));
        for (int n = 0; n < j->N; n++) {
            const float *d = j->dout + (size_t)n * OC + b0;
            for (int o = 0; o < w; o++) acc[o] += d[o];
        }
        memcpy(j->dbias + b0, acc, (size_t)w * sizeof(float));
    }
}

/* dweight (C,OC) += inp^T @ dout; dbias (OC) += colsum(dout) */
static void matmul_backward_weights(float *dweight, float *dbias, const float *dout,
                                    const float *inp, int N, int C, int OC) {
    if (ops_gemm_own(-1)) { /* dbias summed while the GEMM packs dout (the same bits) */
        GemmEpilogue e = {.accumulate = 1, .colsum_b = dbias};
        gemm_f32(1, 0, C, OC, N, inp, C, dout, OC, dweight, OC, &e);
        return;
    }
    gemm(CblasTrans, CblasNoTrans, C, OC, N, 1.0f, inp, C, dout, OC, 1.0f, dweight, OC);
    if (dbias) {
        ColSumJob j = {dbias, dout, N, OC};
        run_range(colsum_range, &j, ((size_t)OC + 15) / 16, (size_t)N * OC, POOL_MAX);
    }
}

void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, int N, int C, int OC) {
    gemm(CblasNoTrans, CblasTrans, N, C, OC, 1.0f, dout, OC, weight, OC, 0.0f, dinp, C);
    matmul_backward_weights(dweight, dbias, dout, inp, N, C, OC);
}

/* Linear layers in torch's nn.Linear layout (OC,C): the same GEMM with the weight
 * transposed, so a Llama-family checkpoint keeps Hugging Face's shapes. */
void linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                    int N, int C, int OC) {
    gemm_bias(CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, weight, C, 0.0f, out, OC, bias);
}

void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, int N, int C, int OC) {
    gemm(CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, weight, C, 0.0f, dinp, C);
    gemm(CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
    if (dbias) {
        ColSumJob j = {dbias, dout, N, OC};
        run_range(colsum_range, &j, ((size_t)OC + 15) / 16, (size_t)N * OC, POOL_MAX);
    }
}

// ----------------------------------------------------------------------------
// LM head

void lmhead_forward(float *logits, const float *inp, const float *wte, int N, int C, int V) {
    gemm(CblasNoTrans, CblasTrans, N, V, C, 1.0f, inp, C, wte, C, 0.0f, logits, V);
}

/* Batch-invariant dot products: 16 fixed lanes (lane l sums k = l, l+16, ... in order,
 * the last C % 16 terms go to lanes 0..), then a fixed pairwise reduction of the lanes.
 * A tile is nr (<= LM_RB) rows x LM_NV vocabulary rows (any two); the result of a (row,
 * token) pair does not depend on the tile it was computed in. */
#define LM_RB 8
#define LM_NV 2
static inline float lanes_reduce(const float l[16]) {
    float s8[8], s4[4], s2[2];
    for (int i = 0; i < 8; i++) s8[i] = l[i] + l[i + 8];
    for (int i = 0; i < 4; i++) s4[i] = s8[i] + s8[i + 4];
    for (int i = 0; i < 2; i++) s2[i] = s4[i] + s4[i + 2];
    return s2[0] + s2[1];
}

/* lanes_reduce of 16 vectors at once: res[j] = lanes_reduce(v[j]), bit for bit (every
 * sum has the same two operands as there; IEEE addition is commutative). Each stage
 * pairs vectors with two shuffles and one add: 8 + 4 + 2 + 1 adds instead of 16 x 15
 * scalar ones. Stage 1 puts s8 of v[2m] in lanes 0..7 and of v[2m+1] in lanes 8..15;
 * stage 2 s4 of four vectors in lanes 4j..4j+3; stage 3 s2 of eight in lanes 2j, 2j+1;
 * stage 4 the sums of all sixteen, in order. (1.3x on the 124M LM head at batch 8.) */
/* __builtin_shufflevector (GCC >= 12, clang): lanes 0..15 of the result are the listed
 * lanes of the pair (a, b), b's numbered 16..31 */
#define SHUF(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#define LO8 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23
#define HI8 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31
#define LO4 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27
#define HI4 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31
#define LO2 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29
#define HI2 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31
#define LO1 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30
#define HI1 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31
static inline __attribute__((always_inline)) void lanes_reduce16(float res[16], const v16f *v) {
    v16f b[8], c[4], d[2], e;
    for (int m = 0; m < 8; m++)
        b[m] = SHUF(v[2 * m], v[2 * m + 1], LO8) + SHUF(v[2 * m], v[2 * m + 1], HI8);
    for (int m = 0; m < 4; m++)
        c[m] = SHUF(b[2 * m], b[2 * m + 1], LO4) + SHUF(b[2 * m], b[2 * m + 1], HI4);
    for (int m = 0; m < 2; m++)
        d[m] = SHUF(c[2 * m], c[2 * m + 1], LO2) + SHUF(c[2 * m], c[2 * m + 1], HI2);
    e = SHUF(d[0], d[1], LO1) + SHUF(d[0], d[1], HI1);
    V16_STORE(res, e);
}

#if MM_VW != 16 && defined(__AVX2__)
/* lanes_reduce of 8 vectors in AVX2 registers, s[i] = lanes 0..7 + lanes 8..15 of a
 * 16-lane accumulator (lanes_reduce's first stage): res[i] = lanes_reduce of it, bit for
 * bit. Stage A adds lanes j and j + 4 (two vectors per register, one per 128-bit half),
 * stage B lanes j and j + 2 of the sums, stage C the last pair — the tree of
 * lanes_reduce16 in 8-float registers (GCC lowers its 16-float shuffles on AVX2 through
 * the stack: the 124M LM head at batch 8 ran at 46 % of the FMA rate of the matmul tile). */
static inline __attribute__((always_inline)) void lanes_reduce8x8(float res[8], const __m256 s[8]) {
    __m256 x[4], y[2];
    for (int m = 0; m < 4; m++)
        x[m] = _mm256_add_ps(_mm256_permute2f128_ps(s[2 * m], s[2 * m + 1], 0x20),
                             _mm256_permute2f128_ps(s[2 * m], s[2 * m + 1], 0x31));
    /* x[m] = stage A of s[2m] in the low half, of s[2m + 1] in the high half */
    for (int m = 0; m < 2; m++)
        y[m] = _mm256_add_ps(_mm256_shuffle_ps(x[2 * m], x[2 * m + 1], 0x44),
                             _mm256_shuffle_ps(x[2 * m], x[2 * m + 1], 0xEE));
    /* y[0] = stage B of s0, s2 (low half), s1, s3 (high); y[1] of s4, s6, s5, s7 */
    __m256 z = _mm256_add_ps(_mm256_shuffle_ps(y[0], y[1], 0x88), _mm256_shuffle_ps(y[0], y[1], 0xDD));
    float t[8];
    _mm256_storeu_ps(t, z); /* s0, s2, s4, s6, s1, s3, s5, s7 */
    for (int i = 0; i < 4; i++) res[2 * i] = t[i], res[2 * i + 1] = t[4 + i];
}
#endif

#define LM_STAGE_MAX 8192 /* widest C whose row tile lm_rows_part stages on its stack (256 KiB) */
#define LM_PFD 2 /* vocabulary rows prefetched ahead in each of a tile's two streams */
/* nr rows x the vocabulary rows va and (nv = 2) vb: two streams through wte. */
static inline __attribute__((always_inline)) void lm_rows_tile(float *logits, const float *inp,
                                                               size_t ldx, const void *wte,
                                                               int bf16, int nr, int C, int V,
                                                               int va, int vb, int nv) {
    int Cv = C - C % 16, vs[LM_NV] = {va, nv > 1 ? vb : va};
    v16f acc[LM_RB][LM_NV];
#pragma GCC unroll 8
    for (int r = 0; r < LM_RB; r++)
#pragma GCC unroll 2
        for (int u = 0; u < LM_NV; u++) acc[r][u] = (v16f){0};
    /* element offsets of the two vocabulary rows (wte is float, or uint16_t when bf16) */
    size_t o0 = (size_t)vs[0] * C, o1 = (size_t)vs[1] * C;
    size_t es = bf16 ? sizeof(uint16_t) : sizeof(float);
    const char *w0 = (const char *)wte + o0 * es, *w1 = (const char *)wte + o1 * es;
    /* Each stream's row LM_PFD ahead, fetched into L2: the streams are sequential, but
     * the hardware prefetchers alone keep too few lines in flight for a loop that also
     * computes, and a core keeps more in flight over two streams than over one. 124M head
     * at batch 8, 2 threads: 9.7 ms with neither, 6.2 ms one stream prefetched a tile
     * ahead (Intel Xeon VM). Rows past the end fall back to the current ones. */
    const char *p0 = vs[0] + LM_PFD < V ? w0 + (size_t)LM_PFD * C * es : w0;
    const char *p1 = vs[1] + LM_PFD < V ? w1 + (size_t)LM_PFD * C * es : w1;
#if MM_VW == 16
    for (int k = 0; k < Cv; k += 16) {
        v16f a, b;
        __builtin_prefetch(p0 + k * es, 0, 2);
        __builtin_prefetch(p1 + k * es, 0, 2);
        W16_LOAD(a, wte, o0 + k, bf16);
        W16_LOAD(b, wte, o1 + k, bf16);
#pragma GCC unroll 8
        for (int r = 0; r < LM_RB; r++) {
            if (r >= nr) break;
            v16f x;
            V16_LOAD(x, inp + r * ldx + k);
            acc[r][0] += x * a;
            acc[r][1] += x * b;
        }
    }
#else
    /* 8-float registers (mm_rows_tile says why): the 16 lanes of one vocabulary row in two
     * passes of 8 (lanes 0..7, then 8..15; each lane still sums k = l, l + 16, ... in
     * order, so the same bits), LM_RB accumulators a pass; the row's C floats stay in L1
     * for the second pass. */
    const size_t ou[LM_NV] = {o0, o1};
    const char *pu[LM_NV] = {p0, p1};
    mmvec half[2][LM_RB][LM_NV]; /* lanes 0..7 (pass h = 0) and 8..15 of each accumulator */
    for (int u = 0; u < nv; u++)
        for (int h = 0; h < 2; h++) {
            mmvec a8[LM_RB];
#pragma GCC unroll 8
            for (int r = 0; r < LM_RB; r++) a8[r] = (mmvec){0};
            for (int k = 8 * h; k < Cv; k += 16) {
                if (h == 0) __builtin_prefetch(pu[u] + k * es, 0, 2);
                mmvec w;
                MM_WLOAD(w, wte, ou[u] + k, bf16);
#pragma GCC unroll 8
                for (int r = 0; r < LM_RB; r++) {
                    if (r >= nr) break;
                    mmvec x;
                    memcpy(&x, inp + r * ldx + k, sizeof x);
                    a8[r] += x * w;
                }
            }
            for (int r = 0; r < nr; r++) half[h][r][u] = a8[r];
        }
#if defined(__AVX2__)
    if (nr == LM_RB && nv == LM_NV && Cv == C) {
        __m256 sv[LM_RB * LM_NV];
        for (int i = 0; i < LM_RB * LM_NV; i++) {
            mmvec t = half[0][i / LM_NV][i % LM_NV] + half[1][i / LM_NV][i % LM_NV];
            memcpy(&sv[i], &t, sizeof t);
        }
        float res[LM_RB * LM_NV];
        lanes_reduce8x8(res, sv);
        lanes_reduce8x8(res + 8, sv + 8);
        for (int r = 0; r < LM_RB; r++)
            for (int u = 0; u < LM_NV; u++) logits[(size_t)r * V + vs[u]] = res[r * LM_NV + u];
        return;
    }
#endif
    for (int r = 0; r < nr; r++)
        for (int u = 0; u < nv; u++)
            for (int h = 0; h < 2; h++) memcpy((float *)&acc[r][u] + 8 * h, &half[h][r][u], sizeof(mmvec));
#endif
    if (nr == LM_RB && nv == LM_NV && Cv == C) {
        /* the 16 reductions at once, lane-parallel: the same additions in the same tree */
        float res[16];
        lanes_reduce16(res, &acc[0][0]);
        for (int r = 0; r < LM_RB; r++)
            for (int u = 0; u < LM_NV; u++) logits[(size_t)r * V + vs[u]] = res[r * LM_NV + u];
        return;
    }
    for (int r = 0; r < nr; r++) {
        const float *x = inp + r * ldx;
        for (int u = 0; u < nv; u++) {
            size_t ou = (size_t)vs[u] * C;
            float l[16];
            V16_STORE(l, acc[r][u]);
            for (int k = Cv; k < C; k++)
                l[k - Cv] += x[k] * (bf16 ? bf16_to_f32(((const uint16_t *)wte)[ou + k])
                                          : ((const float *)wte)[ou + k]);
            logits[(size_t)r * V + vs[u]] = lanes_reduce(l);
        }
    }
}

typedef struct {
    float *logits;
    const float *inp, *wte;
    int N, C, V;
} LMRowsJob;

/* Part of lmhead_forward_rows: a contiguous range of vocabulary rows, cut in two halves
 * that a tile walks side by side (rows lo + i and mid + i). */
static void lm_rows_part(void *p, int part, int nparts) {
    const LMRowsJob *jb = p;
    float *logits = jb->logits;
    const float *inp = jb->inp, *wte = jb->wte;
    int N = jb->N, C = jb->C, V = jb->V, lo, hi;
    part_range(V, part, nparts, &lo, &hi);
    int half = (hi - lo + 1) / 2, mid = lo + half;
    /* The tile's rows are copied to a 64-byte-aligned stack buffer whose row stride is an
     * odd number of cache lines: the vector loads of x then never straddle a line, and the
     * 8 rows fall in different L1 sets (rows C = 2048 floats apart all map to one set and
     * evict each other). Same values, same operations: the same bits. 124M head at batch
     * 8, 1 thread, weights in cache (Zen 3 VM): 21.8 -> 28.8 GFMA/s. */
    size_t ldx = (((size_t)C + 15) / 16 | 1) * 16;
    int stage = C <= LM_STAGE_MAX;
    float xbuf[stage ? LM_RB * ldx + 16 : 1];
    float *xs = (float *)(((uintptr_t)xbuf + 63) & ~(uintptr_t)63);
    if (!stage) ldx = (size_t)C;
    for (int n = 0; n < N; n += LM_RB) {
        int nr = N - n < LM_RB ? N - n : LM_RB;
        float *lg = logits + (size_t)n * V;
        const float *x = inp + (size_t)n * C;
        if (stage) {
            for (int r = 0; r < nr; r++) memcpy(xs + r * ldx, x + (size_t)r * C, (size_t)C * sizeof(float));
            x = xs;
        }
        for (int i = 0; i < half; i++) {
            int nv = mid + i < hi ? 2 : 1;
            if (nr == LM_RB) lm_rows_tile(lg, x, ldx, wte, 0, LM_RB, C, V, lo + i, mid + i, nv);
            else lm_rows_tile(lg, x, ldx, wte, 0, nr, C, V, lo + i, mid + i, nv);
        }
    }
}

static void lm_rows_run(LMRowsJob *jb) {
    double work = (double)jb->N * jb->C * jb->V;
    int pairs = jb->V / LM_NV;
    if (work < POOL_MIN_WORK || pairs < 2) lm_rows_part(jb, 0, 1);
    else pool_run(lm_rows_part, jb, pairs);
}

void lmhead_forward_rows(float *logits, const float *inp, const float *wte, int N, int C,
                         int V) {
    lm_rows_run(&(LMRowsJob){logits, inp, wte, N, C, V});
}

#pragma GCC pop_options

void lmhead_backward(float *dinp, float *dwte, const float *dlogits, const float *inp,
                     const float *wte, int N, int C, int V) {
    gemm(CblasNoTrans, CblasNoTrans, N, C, V, 1.0f, dlogits, V, wte, C,
                1.0f, dinp, C);
    gemm(CblasTrans, CblasNoTrans, V, C, N, 1.0f, dlogits, V, inp, C,
                1.0f, dwte, C);
}

// ----------------------------------------------------------------------------
// attention

/* In-place causal softmax of the T x T score rows (row t keeps columns 0..t). */
static void causal_softmax_rows(float *a, int T) {
    for (int t = 0; t < T; t++) {
        float *row = a + (size_t)t * T;
        int n = t + 1;
#if defined(__AVX512F__)
        /* 16 lanes with a masked last chunk (the scalar tails of up to 15 exps per row
         * cost as much as the vector part at T = 128); the sum in 8 double lanes */
        __m512 vmx = _mm512_set1_ps(-INFINITY);
        for (int s = 0; s < n; s += 16) {
            __mmask16 m = vm_mask16(n - s);
            vmx = _mm512_mask_max_ps(vmx, m, vmx, _mm512_maskz_loadu_ps(m, row + s));
        }
        __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vmx));
        __m512d acc = _mm512_setzero_pd();
        for (int s = 0; s < n; s += 16) {
            __mmask16 m = vm_mask16(n - s);
            __m512 e = _mm512_maskz_mov_ps(m, vm_exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, row + s), mx)));
            _mm512_mask_storeu_ps(row + s, m, e);
            acc = _mm512_add_pd(acc, _mm512_cvtps_pd(lo_half(e)));
            acc = _mm512_add_pd(acc, _mm512_cvtps_pd(hi_half(e)));
        }
        __m512 inv = _mm512_set1_ps((float)(1.0 / _mm512_reduce_add_pd(acc)));
        /* lanes past t become 0: the upper triangle */
        for (int s = 0; s < T; s += 16) {
            __mmask16 m = vm_mask16(n - s);
            _mm512_mask_storeu_ps(row + s, vm_mask16(T - s),
                                  _mm512_maskz_mul_ps(m, _mm512_maskz_loadu_ps(m, row + s), inv));
        }
#else
        float mx = max_lanes(row, n);
        exp_shift_row(row, row, mx, n);
        float inv = (float)(1.0 / sum_lanes_d(row, n));
        for (int s = 0; s < n; s++) row[s] *= inv;
        for (int s = n; s < T; s++) row[s] = 0.0f;
#endif
    }
}

/* The (b, h) pairs are split over the pool; each pair runs the same single-threaded
 * products whichever thread takes it. */
typedef struct {
    float *out, *att;
    float *dqkv, *scratch;
    const float *qkv, *dout;
    const float *catt;
    int T, C, NH;
} AttJob;

/* gemm.c's kernel on one (b, h) pair, whole T x T at once with its causal shapes: the
 * scores' panels above the diagonal and the zero terms of P are skipped. */
static void attention_forward_own(const AttJob *j, size_t b, size_t h, int part) {
    int T = j->T, C = j->C, hs = C / j->NH, C3 = 3 * C;
    const float *q = j->qkv + b * T * C3 + h * hs, *k = q + C, *v = q + 2 * C;
    float *a = j->att + (b * j->NH + h) * T * T;
    GemmEpilogue es = {.scale = 1.0f / sqrtf((float)hs), .causal = GEMM_CAUSAL_OUT};
    gemm_f32_serial(part, 0, 1, T, T, hs, q, C3, k, C3, a, T, &es);
    causal_softmax_rows(a, T); /* also zeroes the upper part */
    GemmEpilogue ev = {.causal = GEMM_CAUSAL_K_UPTO};
    gemm_f32_serial(part, 0, 0, T, hs, T, a, T, v, C3, j->out + b * T * C + h * hs, C, &ev);
}

static void attention_forward_range(void *p, size_t lo, size_t hi, int part) {
    const AttJob *j = p;
    int T = j->T, C = j->C, NH = j->NH, hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    int own = ops_gemm_own(-1);
    for (size_t bh = lo; bh < hi; bh++) {
        size_t b = bh / (size_t)NH, h = bh % (size_t)NH;
        if (own) {
            attention_forward_own(j, b, h, part);
            continue;
        }
        const float *q = j->qkv + b * T * C3 + h * hs;
        const float *k = q + C, *v = q + 2 * C;
        float *a = j->att + bh * T * T;
        /* causal: query block [t0, t0+nt) needs keys [0, t0+nt) only */
        for (int t0 = 0; t0 < T; t0 += OPS_ATT_BLOCK) {
            int nt = T - t0 < OPS_ATT_BLOCK ? T - t0 : OPS_ATT_BLOCK, nk = t0 + nt;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nt, nk, hs, scale,
                        q + (size_t)t0 * C3, C3, k, C3, 0.0f, a + (size_t)t0 * T, T);
        }
        causal_softmax_rows(a, T); /* also zeroes the never-computed upper part */
        for (int t0 = 0; t0 < T; t0 += OPS_ATT_BLOCK) {
            int nt = T - t0 < OPS_ATT_BLOCK ? T - t0 : OPS_ATT_BLOCK, nk = t0 + nt;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nt, hs, nk, 1.0f,
                        a + (size_t)t0 * T, T, v, C3, 0.0f,
                        j->out + (b * T + t0) * C + h * hs, C);
        }
    }
}

void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C,
                       int NH) {
    AttJob j = {.out = out, .att = att, .qkv = qkv, .T = T, .C = C, .NH = NH};
    size_t pairs = (size_t)B * NH;
    run_range(attention_forward_range, &j, pairs, pairs * T * T, POOL_MAX);
}

static double naive_dot(const float *a, const float *b, int n) {
    double d = 0.0;
    for (int i = 0; i < n; i++) d += (double)a[i] * b[i];
    return d;
}

void attention_forward_naive(float *out, float *att, const float *qkv, int B, int T, int C,
                             int NH) {
    int hs = C / NH, C3 = 3 * C;
    double scale = 1.0 / sqrt((double)hs);
    for (int b = 0; b < B; b++) {
        const float *base = qkv + (size_t)b * T * C3;
        for (int h = 0; h < NH; h++) {
            float *a = att + ((size_t)b * NH + h) * T * T;
            for (int t = 0; t < T; t++) {
                const float *q = base + (size_t)t * C3 + (size_t)h * hs;
                double mx = -INFINITY, sum = 0.0;
                for (int s = 0; s <= t; s++) {
                    double d = scale * naive_dot(q, base + (size_t)s * C3 + C + h * hs, hs);
                    mx = d > mx ? d : mx;
                }
                for (int s = 0; s <= t; s++)
                    sum += exp(scale * naive_dot(q, base + (size_t)s * C3 + C + h * hs, hs) - mx);
                for (int s = 0; s < T; s++) {
                    double p = 0.0;
                    if (s <= t)
                        p = exp(scale * naive_dot(q, base + (size_t)s * C3 + C + h * hs, hs) -
                                mx) / sum;
                    a[(size_t)t * T + s] = (float)p;
                }
                float *o = out + ((size_t)b * T + t) * C + (size_t)h * hs;
                for (int i = 0; i < hs; i++) {
                    double y = 0.0;
                    for (int s = 0; s <= t; s++)
                        y += (double)a[(size_t)t * T + s] * base[(size_t)s * C3 + 2 * C + h * hs + i];
                    o[i] = (float)y;
                }
            }
        }
    }
}

/* dS = P (dP - sum_s P dP) times ds_scale, zero above the diagonal (in place in ds) */
static void softmax_backward_rows(float *ds, const float *a, int T, float ds_scale) {
    for (int t = 0; t < T; t++) {
        const float *pr = a + (size_t)t * T;
        float *dr = ds + (size_t)t * T;
        int n = t + 1;
#if defined(__AVX512F__)
        /* as causal_softmax_rows: 16 lanes, a masked last chunk, the dot in 8 double lanes */
        __m512d acc = _mm512_setzero_pd();
        for (int s = 0; s < n; s += 16) {
            __mmask16 m = vm_mask16(n - s);
            __m512 x = _mm512_maskz_loadu_ps(m, pr + s), y = _mm512_maskz_loadu_ps(m, dr + s);
            acc = _mm512_add_pd(acc, _mm512_mul_pd(_mm512_cvtps_pd(lo_half(x)), _mm512_cvtps_pd(lo_half(y))));
            acc = _mm512_add_pd(acc, _mm512_mul_pd(_mm512_cvtps_pd(hi_half(x)), _mm512_cvtps_pd(hi_half(y))));
        }
        __m512 dot = _mm512_set1_ps((float)_mm512_reduce_add_pd(acc)), sc = _mm512_set1_ps(ds_scale);
        for (int s = 0; s < T; s += 16) {
            __mmask16 m = vm_mask16(n - s);
            __m512 x = _mm512_maskz_loadu_ps(m, pr + s), y = _mm512_maskz_loadu_ps(m, dr + s);
            _mm512_mask_storeu_ps(dr + s, vm_mask16(T - s),
                                  _mm512_maskz_mul_ps(m, sc, _mm512_mul_ps(x, _mm512_sub_ps(y, dot))));
        }
#else
        float fdot = (float)dot_lanes_d(pr, dr, n);
        for (int s = 0; s <= t; s++) dr[s] = ds_scale * (pr[s] * (dr[s] - fdot));
        for (int s = t + 1; s < T; s++) dr[s] = 0.0f;
#endif
    }
}

/* gemm.c's kernel on one (b, h) pair (see attention_forward_own); S = scale Q K^T, so
 * dS is scaled once and dQ = dS' K, dK = dS'^T Q take no alpha. */
static void attention_backward_own(const AttJob *j, size_t b, size_t h, float *ds, int part) {
    int T = j->T, C = j->C, hs = C / j->NH, C3 = 3 * C;
    size_t off = b * T * C3 + h * hs;
    const float *q = j->qkv + off, *k = q + C, *v = q + 2 * C;
    float *dq = j->dqkv + off, *dk = dq + C, *dv = dq + 2 * C;
    const float *a = j->catt + (b * j->NH + h) * T * T;
    const float *dy = j->dout + b * T * C + h * hs;
    GemmEpilogue out = {.causal = GEMM_CAUSAL_OUT}, upto = {.causal = GEMM_CAUSAL_K_UPTO};
    GemmEpilogue from = {.causal = GEMM_CAUSAL_K_FROM};
    gemm_f32_serial(part, 0, 1, T, T, hs, dy, C, v, C3, ds, T, &out);  /* dP = dY V^T */
    gemm_f32_serial(part, 1, 0, T, hs, T, a, T, dy, C, dv, C3, &from); /* dV = P^T dY */
    softmax_backward_rows(ds, a, T, 1.0f / sqrtf((float)hs));
    gemm_f32_serial(part, 0, 0, T, hs, T, ds, T, k, C3, dq, C3, &upto); /* dQ = dS' K */
    gemm_f32_serial(part, 1, 0, T, hs, T, ds, T, q, C3, dk, C3, &from); /* dK = dS'^T Q */
}

/* Part `part` uses the (T,T) scratch slot `part`. The causal query blocks run last to
 * first: the last block reaches every key, so its dK, dV products overwrite (beta 0)
 * and the earlier ones accumulate; each dQ row belongs to one block. */
static void attention_backward_range(void *p, size_t lo, size_t hi, int part) {
    const AttJob *j = p;
    int T = j->T, C = j->C, NH = j->NH, hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    float *ds = j->scratch + (size_t)part * T * T;
    int last = (T - 1) / OPS_ATT_BLOCK * OPS_ATT_BLOCK;
    int own = ops_gemm_own(-1);
    for (size_t bh = lo; bh < hi; bh++) {
        size_t b = bh / (size_t)NH, h = bh % (size_t)NH;
        if (own) {
            attention_backward_own(j, b, h, ds, part);
            continue;
        }
        size_t off = b * T * C3 + h * hs;
        const float *q = j->qkv + off, *k = q + C, *v = q + 2 * C;
        float *dq = j->dqkv + off, *dk = dq + C, *dv = dq + 2 * C;
        const float *a = j->catt + bh * T * T;
        const float *dy = j->dout + b * T * C + h * hs;
        /* per causal query block: dP = dY V^T, dV (+)= P^T dY */
        for (int t0 = last; t0 >= 0; t0 -= OPS_ATT_BLOCK) {
            int nt = T - t0 < OPS_ATT_BLOCK ? T - t0 : OPS_ATT_BLOCK, nk = t0 + nt;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nt, nk, hs, 1.0f,
                        dy + (size_t)t0 * C, C, v, C3, 0.0f, ds + (size_t)t0 * T, T);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, hs, nt, 1.0f,
                        a + (size_t)t0 * T, T, dy + (size_t)t0 * C, C, t0 == last ? 0.0f : 1.0f,
                        dv, C3);
        }
        softmax_backward_rows(ds, a, T, 1.0f);
        /* S = scale Q K^T: dQ = scale dS K, dK (+)= scale dS^T Q */
        for (int t0 = last; t0 >= 0; t0 -= OPS_ATT_BLOCK) {
            int nt = T - t0 < OPS_ATT_BLOCK ? T - t0 : OPS_ATT_BLOCK, nk = t0 + nt;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nt, hs, nk, scale,
                        ds + (size_t)t0 * T, T, k, C3, 0.0f, dq + (size_t)t0 * C3, C3);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, hs, nt, scale,
                        ds + (size_t)t0 * T, T, q + (size_t)t0 * C3, C3,
                        t0 == last ? 0.0f : 1.0f, dk, C3);
        }
    }
}

void attention_backward(float *dqkv, float *scratch, int slots, const float *dout,
                        const float *qkv, const float *att, int B, int T, int C, int NH) {
    AttJob j = {.dqkv = dqkv, .scratch = scratch, .qkv = qkv, .dout = dout, .catt = att,
                .T = T, .C = C, .NH = NH};
    size_t pairs = (size_t)B * NH;
    run_range(attention_backward_range, &j, pairs, pairs * T * T, slots);
}

/* 8 floats as one value (two SSE registers in the x86-64-v2 build, one ymm above) */
typedef float att8 __attribute__((vector_size(32)));

/* The lane tree of every score: ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)). */
static inline float att_lanes_sum(const att8 *v) {
    const float *a = (const float *)v;
    return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}

/* Dot product with 8 fixed lanes and a fixed reduction: vectorisable without
 * -ffast-math and independent of anything but the two vectors. */
static inline float dot_lanes8(const float *a, const float *b, int n) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int nv = n - n % 8;
    for (int i = 0; i < nv; i += 8)
        for (int l = 0; l < 8; l++) acc[l] += a[i + l] * b[i + l];
    for (int i = nv; i < n; i++) acc[i - nv] += a[i] * b[i];
    att8 v;
    memcpy(&v, acc, sizeof v);
    return att_lanes_sum(&v);
}

void attention_qk_row(float *scores, const float *q, const float *K, int n, int hd, float scale) {
    int s = 0;
    /* four keys at a time: four independent lane chains, each key's the same as alone
     * (one chain of adds is latency-bound) */
    if (hd % 8 == 0)
        for (; s + 4 <= n; s += 4) {
            att8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, x, k;
            const float *k0 = K + (size_t)s * hd;
            for (int i = 0; i < hd; i += 8) {
                memcpy(&x, q + i, sizeof x);
                memcpy(&k, k0 + i, sizeof k), a0 += x * k;
                memcpy(&k, k0 + hd + i, sizeof k), a1 += x * k;
                memcpy(&k, k0 + 2 * hd + i, sizeof k), a2 += x * k;
                memcpy(&k, k0 + 3 * hd + i, sizeof k), a3 += x * k;
            }
            scores[s] = att_lanes_sum(&a0) * scale, scores[s + 1] = att_lanes_sum(&a1) * scale;
            scores[s + 2] = att_lanes_sum(&a2) * scale, scores[s + 3] = att_lanes_sum(&a3) * scale;
        }
    for (; s < n; s++) scores[s] = dot_lanes8(q, K + (size_t)s * hd, hd) * scale;
}

void attention_pv_row(float *o, const float *p, float inv, const float *V, int n, int hd) {
    int i0 = 0;
    /* 32 outputs at a time in registers (o may alias nothing the loop reads, but the
     * compiler cannot know that of a pointer) */
    for (; i0 + 32 <= hd; i0 += 32) {
        att8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, v;
        for (int s = 0; s < n; s++) {
            float ps = p[s] * inv;
            att8 pv = {ps, ps, ps, ps, ps, ps, ps, ps};
            const float *vs = V + (size_t)s * hd + i0;
            memcpy(&v, vs, sizeof v), a0 += pv * v;
            memcpy(&v, vs + 8, sizeof v), a1 += pv * v;
            memcpy(&v, vs + 16, sizeof v), a2 += pv * v;
            memcpy(&v, vs + 24, sizeof v), a3 += pv * v;
        }
        memcpy(o + i0, &a0, sizeof a0), memcpy(o + i0 + 8, &a1, sizeof a1);
        memcpy(o + i0 + 16, &a2, sizeof a2), memcpy(o + i0 + 24, &a3, sizeof a3);
    }
    for (; i0 + 8 <= hd; i0 += 8) {
        att8 a = {0}, v;
        for (int s = 0; s < n; s++) {
            float ps = p[s] * inv;
            att8 pv = {ps, ps, ps, ps, ps, ps, ps, ps};
            memcpy(&v, V + (size_t)s * hd + i0, sizeof v), a += pv * v;
        }
        memcpy(o + i0, &a, sizeof a);
    }
    for (; i0 < hd; i0++) {
        float a = 0.0f;
        for (int s = 0; s < n; s++) a += p[s] * inv * V[(size_t)s * hd + i0];
        o[i0] = a;
    }
}

void attention_row_forward(float *out, float *scores, const float *q, const float *kc,
                           const float *vc, int n, int T, int C, int NH) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    for (int h = 0; h < NH; h++) {
        const float *K = kc + (size_t)h * T * hs, *Vm = vc + (size_t)h * T * hs;
        attention_qk_row(scores, q + (size_t)h * hs, K, n, hs, scale);
        float mx = max_lanes(scores, n);
        exp_shift_row(scores, scores, mx, n);
        float inv = (float)(1.0 / sum_lanes_d(scores, n));
        attention_pv_row(out + (size_t)h * hs, scores, inv, Vm, n, hs);
    }
}

// ----------------------------------------------------------------------------
// flat element-wise jobs: fn(j, i0, i1) on elements [i0, i1), split over the pool in
// units of FLAT_UNIT elements

#define FLAT_UNIT 4096
typedef struct FlatJob FlatJob;
struct FlatJob {
    void (*fn)(const FlatJob *j, size_t i0, size_t i1);
    float *out;
    const float *a, *b;
    size_t N;
};

static void flat_range(void *p, size_t lo, size_t hi, int part) {
    (void)part;
    const FlatJob *j = p;
    j->fn(j, lo * FLAT_UNIT, hi * FLAT_UNIT < j->N ? hi * FLAT_UNIT : j->N);
}

static void run_flat(FlatJob j) {
    run_range(flat_range, &j, (j.N + FLAT_UNIT - 1) / FLAT_UNIT, j.N, POOL_MAX);
}

/* Above this many floats per part (8 MB) the zeros go out with streaming stores: a
 * buffer that large (the 124M model's gradients, 0.5 GB) is not read back before it has
 * left the cache anyway, and plain stores first read every line they write. */
#define ZERO_STREAM_MIN ((size_t)1 << 21)

static void zero_flat(const FlatJob *j, size_t i0, size_t i1) {
    float *p = j->out + i0;
    size_t n = i1 - i0;
#if defined(__AVX512F__)
    if (n >= ZERO_STREAM_MIN) {
        size_t head = (64 - ((uintptr_t)p & 63)) % 64 / sizeof(float); /* to a 64-byte line */
        memset(p, 0, head * sizeof(float));
        p += head, n -= head;
        size_t nv = n - n % 16;
        for (size_t i = 0; i < nv; i += 16) _mm512_stream_ps(p + i, _mm512_setzero_ps());
        _mm_sfence();
        p += nv, n -= nv;
    }
#endif
    memset(p, 0, n * sizeof(float));
}

void ops_zero(float *x, size_t n) { run_flat((FlatJob){zero_flat, x, NULL, NULL, n}); }

// ----------------------------------------------------------------------------
// GELU

/* The span functions are the only GELU loops here: 16 lanes (AVX-512) or 8 (AVX2) at a
 * time with vmath.h's vector formulas, the same bits as its scalar ones (the tail). */
static inline void gelu_span_forward(float *out, const float *inp, size_t n) {
    size_t i = 0;
#if defined(__AVX512F__)
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, vm_gelu16(_mm512_loadu_ps(inp + i)));
#elif defined(__AVX2__)
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, vm_gelu8(_mm256_loadu_ps(inp + i)));
#endif
    for (; i < n; i++) out[i] = vm_gelu(inp[i]);
}

/* dinp may be dout (in place) */
static inline void gelu_span_backward(float *dinp, const float *inp, const float *dout,
                                      size_t n) {
    size_t i = 0;
#if defined(__AVX512F__)
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dinp + i, vm_gelu_grad16(_mm512_loadu_ps(inp + i),
                                                  _mm512_loadu_ps(dout + i)));
#elif defined(__AVX2__)
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dinp + i,
                         vm_gelu_grad8(_mm256_loadu_ps(inp + i), _mm256_loadu_ps(dout + i)));
#endif
    for (; i < n; i++) dinp[i] = vm_gelu_grad(inp[i], dout[i]);
}

static void gelu_forward_flat(const FlatJob *j, size_t i0, size_t i1) {
    gelu_span_forward(j->out + i0, j->a + i0, i1 - i0);
}

void gelu_forward(float *out, const float *inp, size_t N) {
    run_flat((FlatJob){gelu_forward_flat, out, inp, NULL, N});
}

static void gelu_backward_flat(const FlatJob *j, size_t i0, size_t i1) {
    gelu_span_backward(j->out + i0, j->a + i0, j->b + i0, i1 - i0);
}

void gelu_backward(float *dinp, const float *inp, const float *dout, size_t N) {
    run_flat((FlatJob){gelu_backward_flat, dinp, inp, dout, N});
}

void matmul_residual_forward(float *out, const float *inp, const float *weight,
                             const float *bias, const float *residual, int N, int C, int OC) {
    if (!ops_gemm_own(-1)) {
        matmul_forward(out, inp, weight, bias, N, C, OC);
        residual_forward(out, residual, out, (size_t)N * OC);
        return;
    }
    GemmEpilogue e = {.bias = bias, .residual = residual};
    gemm_f32(0, 0, N, OC, C, inp, C, weight, OC, out, OC, &e);
}

void matmul_gelu_forward(float *out, float *out_gelu, const float *inp, const float *weight,
                         const float *bias, int N, int C, int OC) {
    if (!ops_gemm_own(-1)) {
        matmul_forward(out, inp, weight, bias, N, C, OC);
        gelu_forward(out_gelu, out, (size_t)N * OC);
        return;
    }
    GemmEpilogue e = {.bias = bias, .gelu_out = out_gelu};
    gemm_f32(0, 0, N, OC, C, inp, C, weight, OC, out, OC, &e);
}

void matmul_gelu_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight, const float *gelu_inp, int N,
                          int C, int OC) {
    if (!ops_gemm_own(-1)) {
        matmul_backward(dinp, dweight, dbias, dout, inp, weight, N, C, OC);
        gelu_backward(dinp, gelu_inp, dinp, (size_t)N * C);
        return;
    }
    GemmEpilogue e = {.gelu_grad_inp = gelu_inp};
    gemm_f32(0, 1, N, C, OC, dout, OC, weight, OC, dinp, C, &e);
    matmul_backward_weights(dweight, dbias, dout, inp, N, C, OC);
}

// ----------------------------------------------------------------------------
// residual

static void residual_forward_flat(const FlatJob *j, size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; i++) j->out[i] = j->a[i] + j->b[i];
}

void residual_forward(float *out, const float *a, const float *b, size_t N) {
    run_flat((FlatJob){residual_forward_flat, out, a, b, N});
}

void residual_backward(float *da, float *db, const float *dout, size_t N) {
    for (size_t i = 0; i < N; i++) {
        da[i] += dout[i];
        db[i] += dout[i];
    }
}

// ----------------------------------------------------------------------------
// scalar heads

void rowdot_forward(float *out, const float *inp, const float *w, const float *b, int N,
                    int C) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        double s = b ? *b : 0.0;
        for (int i = 0; i < C; i++) s += (double)x[i] * w[i];
        out[n] = (float)s;
    }
}

void rowdot_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                     const float *w, int N, int C) {
    for (int n = 0; n < N; n++) {
        float d = dout[n];
        const float *x = inp + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        for (int i = 0; i < C; i++) {
            dx[i] += d * w[i];
            dw[i] += d * x[i];
        }
        if (db) *db += d;
    }
}

// ----------------------------------------------------------------------------
// fused log-softmax / log-prob / entropy

typedef struct {
    float *logprobs, *entropy, *lse, *dlogits;
    const float *logits, *dlogprobs, *dentropy, *clse, *centropy;
    const int *targets;
    float inv_t;
    int V;
} LogprobJob;

static void logprob_forward_range(void *p, size_t lo, size_t hi, int part) {
    (void)part;
    const LogprobJob *j = p;
    int V = j->V;
    float inv_t = j->inv_t;
    for (size_t n = lo; n < hi; n++) {
        if (j->targets[n] < 0) {
            j->logprobs[n] = j->entropy[n] = j->lse[n] = 0.0f;
            continue;
        }
        const float *x = j->logits + n * V;
        /* inv_t > 0: the max of x * inv_t is the max of x, times inv_t */
        float mx = max_lanes(x, V) * inv_t;
        double sum, sumz;
        softmax_row_stats(x, V, inv_t, mx, &sum, &sumz);
        double log_sum = log(sum);
        j->logprobs[n] = (float)((double)(x[j->targets[n]] * inv_t - mx) - log_sum);
        j->entropy[n] = (float)(log_sum - sumz / sum);
        j->lse[n] = (float)(mx + log_sum);
    }
}

void logprob_forward(float *logprobs, float *entropy, float *lse, const float *logits,
                     const int *targets, float temperature, int N, int V) {
    LogprobJob j = {.logprobs = logprobs, .entropy = entropy, .lse = lse, .logits = logits,
                    .targets = targets, .inv_t = 1.0f / temperature, .V = V};
    run_range(logprob_forward_range, &j, (size_t)N, (size_t)N * V, POOL_MAX);
}

/* Each element of a row is read once and then written, and the target's term is added
 * after the row loop, so dlogits may be the logits themselves. */
static void logprob_backward_range(void *p, size_t lo, size_t hi, int part) {
    (void)part;
    const LogprobJob *j = p;
    int V = j->V;
    float inv_t = j->inv_t;
    for (size_t n = lo; n < hi; n++) {
        float *dx = j->dlogits + n * V;
        if (j->targets[n] < 0) {
            memset(dx, 0, (size_t)V * sizeof(float));
            continue;
        }
        const float *x = j->logits + n * V;
        float dlp = j->dlogprobs ? j->dlogprobs[n] : 0.0f;
        float dent = j->dentropy ? j->dentropy[n] : 0.0f;
        float l = j->clse[n], H = j->centropy[n];
        if (dent == 0.0f) {
            int i = 0;
#if OPS_AVX2
            for (; i + 8 <= V; i += 8) {
                __m256 pr = vm_exp8(
                    _mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), _mm256_set1_ps(inv_t)),
                                  _mm256_set1_ps(l)));
                _mm256_storeu_ps(dx + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(-dlp), pr),
                                                       _mm256_set1_ps(inv_t)));
            }
#endif
            for (; i < V; i++) {
                float pr = exp_fast(x[i] * inv_t - l);
                dx[i] = -dlp * pr * inv_t;
            }
        } else {
            int i = 0;
#if OPS_AVX2
            for (; i + 8 <= V; i += 8) {
                __m256 lp =
                    _mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), _mm256_set1_ps(inv_t)),
                                  _mm256_set1_ps(l));
                lp = _mm256_max_ps(_mm256_set1_ps(-88.0f), lp);
                __m256 pr = vm_exp8(lp);
                __m256 a = _mm256_mul_ps(_mm256_set1_ps(-dlp), pr);
                __m256 b = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(dent), pr),
                                         _mm256_add_ps(lp, _mm256_set1_ps(H)));
                _mm256_storeu_ps(dx + i, _mm256_mul_ps(_mm256_sub_ps(a, b), _mm256_set1_ps(inv_t)));
            }
#endif
            for (; i < V; i++) {
                float lp = x[i] * inv_t - l;
                lp = lp < -88.0f ? -88.0f : lp; /* as in the forward: -inf logits stay finite */
                float pr = exp_fast(lp);
                dx[i] = (-dlp * pr - dent * pr * (lp + H)) * inv_t;
            }
        }
        dx[j->targets[n]] += dlp * inv_t;
    }
}

void logprob_backward(float *dlogits, const float *dlogprobs, const float *dentropy,
                      const float *logits, const float *lse, const float *entropy,
                      const int *targets, float temperature, int N, int V) {
    LogprobJob j = {.dlogits = dlogits, .logits = logits, .dlogprobs = dlogprobs,
                    .dentropy = dentropy, .clse = lse, .centropy = entropy, .targets = targets,
                    .inv_t = 1.0f / temperature, .V = V};
    run_range(logprob_backward_range, &j, (size_t)N, (size_t)N * V, POOL_MAX);
}
