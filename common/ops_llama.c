/*
 * common/ops_llama.c — the Llama-family kernels (see ops_llama.h for each contract).
 *
 * Plain loops that GCC vectorises without -ffast-math, OpenBLAS (single-threaded, one
 * call per (batch, head) pair) for the products of attention. Work is split over ops.h's
 * pool in contiguous shares of rows, 16-column groups or head pairs; each unit is computed
 * by the same loop whichever share it falls in, so results do not depend on the thread
 * count (tests/test_ops_llama.c checks 1, 2 and 3 threads bit for bit). Reductions over
 * rows (RMSNorm's weight gradient) are split by columns for that reason, and the key and
 * value gradients of a grouped-query head pair are summed over its query heads in order
 * on one thread.
 */
#include "ops_llama.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "util.h"
#include "vmath.h"

// ----------------------------------------------------------------------------
// splitting work over the pool

typedef void (*LlamaRangeFn)(void *arg, size_t lo, size_t hi, int part);
typedef struct {
    LlamaRangeFn fn;
    void *arg;
    size_t units;
} LlamaRange;

static void llama_range_part(void *p, int part, int nparts) {
    const LlamaRange *j = p;
    size_t lo = j->units * (size_t)part / (size_t)nparts;
    size_t hi = j->units * (size_t)(part + 1) / (size_t)nparts;
    if (lo < hi) j->fn(j->arg, lo, hi, part);
}

/* Below this many elements touched the calling thread does all the work (waking the
 * pool costs more), as ops.c's run_range. */
#define LLAMA_MIN_ELEMS (1 << 15)

/* fn over units [0, units) in at most max_parts contiguous shares. */
static void llama_run(LlamaRangeFn fn, void *arg, size_t units, size_t elems, int max_parts) {
    int threads = ops_blas_threads();
    if (elems < LLAMA_MIN_ELEMS || units < 2 || threads < 2 || max_parts < 2) {
        if (units > 0) fn(arg, 0, units, 0);
        return;
    }
    LlamaRange j = {fn, arg, units};
    int parts = units < (size_t)max_parts ? (int)units : max_parts;
    ops_parallel(llama_range_part, &j, parts);
}

#define LLAMA_MAX_PARTS 64

// ----------------------------------------------------------------------------
// embedding

typedef struct {
    float *out;
    const int *tokens;
    const float *wte;
    int C;
} EmbedJob;

static void embed_range(void *p, size_t lo, size_t hi, int part) {
    (void)part;
    const EmbedJob *j = p;
    for (size_t n = lo; n < hi; n++)
        memcpy(j->out + n * j->C, j->wte + (size_t)j->tokens[n] * j->C, (size_t)j->C * sizeof(float));
}

void embedding_forward(float *out, const int *tokens, const float *wte, int N, int C) {
    EmbedJob j = {out, tokens, wte, C};
    llama_run(embed_range, &j, (size_t)N, (size_t)N * C, LLAMA_MAX_PARTS);
}

void embedding_backward(float *dwte, const float *dout, const int *tokens, int N, int C) {
    /* serial: rows that share a token add up in row order */
    for (int n = 0; n < N; n++) {
        const float *d = dout + (size_t)n * C;
        float *dw = dwte + (size_t)tokens[n] * C;
        for (int i = 0; i < C; i++) dw[i] += d[i];
    }
}

// ----------------------------------------------------------------------------
// RMSNorm

typedef struct {
    float *out, *rstd, *dinp, *dweight;
    const float *inp, *weight, *dout, *crstd;
    float eps;
    int N, G, C, ld;
} RMSJob;

/* sum of squares of a row in double, 8 fixed lanes (vectorised, fixed order) */
static double sumsq_d(const float *x, int n) {
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int nv = n - n % 8;
    for (int i = 0; i < nv; i += 8)
        for (int l = 0; l < 8; l++) s[l] += (double)x[i + l] * x[i + l];
    double r = 0.0;
    for (int l = 0; l < 8; l++) r += s[l];
    for (int i = nv; i < n; i++) r += (double)x[i] * x[i];
    return r;
}

static void rms_forward_range(void *p, size_t lo, size_t hi, int part) {
    (void)part;
    const RMSJob *j = p;
    int C = j->C;
    for (size_t r = lo; r < hi; r++) {
        size_t off = (r / (size_t)j->G) * (size_t)j->ld + (r % (size_t)j->G) * (size_t)C;
        const float *x = j->inp + off;
        float *o = j->out + off;
        float rs = (float)(1.0 / sqrt(sumsq_d(x, C) / C + (double)j->eps));
        for (int i = 0; i < C; i++) o[i] = x[i] * rs * j->weight[i];
        j->rstd[r] = rs;
    }
}

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight,
                     float eps, int N, int G, int C, int ld) {
    RMSJob j = {.out = out, .rstd = rstd, .inp = inp, .weight = weight, .eps = eps,
                .N = N, .G = G, .C = C, .ld = ld};
    size_t rows = (size_t)N * G;
    llama_run(rms_forward_range, &j, rows, rows * C, LLAMA_MAX_PARTS);
}

/* dx = r (w dy) - x r^3 mean(w dy x), for rows [lo, hi) */
static void rms_backward_rows(void *p, size_t lo, size_t hi, int part) {
    (void)part;
    const RMSJob *j = p;
    int C = j->C;
    const float *w = j->weight;
    for (size_t r = lo; r < hi; r++) {
        size_t off = (r / (size_t)j->G) * (size_t)j->ld + (r % (size_t)j->G) * (size_t)C;
        const float *x = j->inp + off, *d = j->dout + off;
        float *dx = j->dinp + off;
        double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int nv = C - C % 8;
        for (int i = 0; i < nv; i += 8)
            for (int l = 0; l < 8; l++) s[l] += (double)(w[i + l] * d[i + l]) * x[i + l];
        double sum = 0.0;
        for (int l = 0; l < 8; l++) sum += s[l];
        for (int i = nv; i < C; i++) sum += (double)(w[i] * d[i]) * x[i];
        double rs = j->crstd[r];
        float rr = (float)rs, k = (float)(sum / C * rs * rs * rs);
        for (int i = 0; i < C; i++) dx[i] += rr * (w[i] * d[i]) - k * x[i];
    }
}

/* dweight for the 16-column groups [lo, hi), each column summed over the rows in order */
static void rms_backward_cols(void *p, size_t lo, size_t hi, int part) {
    (void)part;
    const RMSJob *j = p;
    int C = j->C, c0 = (int)lo * 16, c1 = (int)hi * 16 < C ? (int)hi * 16 : C;
    size_t rows = (size_t)j->N * j->G;
    for (int b0 = c0; b0 < c1; b0 += 32) {
        int bw = c1 - b0 < 32 ? c1 - b0 : 32;
        float dw[32];
        memcpy(dw, j->dweight + b0, (size_t)bw * sizeof(float));
        for (size_t r = 0; r < rows; r++) {
            size_t off = (r / (size_t)j->G) * (size_t)j->ld + (r % (size_t)j->G) * (size_t)C + b0;
            const float *x = j->inp + off, *d = j->dout + off;
            float rs = j->crstd[r];
            for (int i = 0; i < bw; i++) dw[i] += x[i] * rs * d[i];
        }
        memcpy(j->dweight + b0, dw, (size_t)bw * sizeof(float));
    }
}

void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                      const float *weight, const float *rstd, int N, int G, int C, int ld) {
    RMSJob j = {.dinp = dinp, .dweight = dweight, .inp = inp, .weight = weight, .dout = dout,
                .crstd = rstd, .N = N, .G = G, .C = C, .ld = ld};
    size_t rows = (size_t)N * G;
    llama_run(rms_backward_rows, &j, rows, rows * C, LLAMA_MAX_PARTS);
    llama_run(rms_backward_cols, &j, ((size_t)C + 15) / 16, rows * C, LLAMA_MAX_PARTS);
}

// ----------------------------------------------------------------------------
// rotary positions

void rope_inv_freq(double *inv_freq, int hd, double theta, double factor,
                   double low_freq_factor, double high_freq_factor, double orig_ctx) {
    const double pi = 3.14159265358979323846;
    for (int i = 0; i < hd / 2; i++) {
        double f = 1.0 / pow(theta, (double)(2 * i) / hd);
        if (factor > 0.0) {
            double low_wavelen = orig_ctx / low_freq_factor;
            double high_wavelen = orig_ctx / high_freq_factor;
            double wavelen = 2.0 * pi / f;
            if (wavelen > low_wavelen) {
                f = f / factor; /* low frequencies: scaled */
            } else if (wavelen >= high_wavelen) {
                /* medium: interpolated between scaled and kept */
                double smooth = (orig_ctx / wavelen - low_freq_factor) /
                                (high_freq_factor - low_freq_factor);
                f = (1.0 - smooth) * f / factor + smooth * f;
            } /* high frequencies: kept */
        }
        inv_freq[i] = f;
    }
}

typedef struct {
    float *out;
    const float *inp;
    const double *inv_freq;
    const int *pos;
    int nh, hd, ld;
    float sign; /* +1 forward, -1 backward (the inverse rotation) */
} RopeJob;

#define ROPE_MAX_HALF 512

static void rope_range(void *p, size_t lo, size_t hi, int part) {
    (void)part;
    const RopeJob *j = p;
    int half = j->hd / 2;
    float cs[ROPE_MAX_HALF], sn[ROPE_MAX_HALF];
    for (size_t n = lo; n < hi; n++) {
        for (int i = 0; i < half; i++) {
            double a = (double)j->pos[n] * j->inv_freq[i];
            cs[i] = (float)cos(a);
            sn[i] = j->sign * (float)sin(a);
        }
        for (int h = 0; h < j->nh; h++) {
            size_t off = n * (size_t)j->ld + (size_t)h * j->hd;
            const float *x = j->inp + off;
            float *y = j->out + off;
            for (int i = 0; i < half; i++) {
                float x1 = x[i], x2 = x[i + half];
                y[i] = x1 * cs[i] - x2 * sn[i];
                y[i + half] = x2 * cs[i] + x1 * sn[i];
            }
        }
    }
}

static void rope_run(float *out, const float *inp, const double *inv_freq, const int *pos,
                     int N, int nh, int hd, int ld, float sign) {
    RopeJob j = {out, inp, inv_freq, pos, nh, hd, ld, sign};
    llama_run(rope_range, &j, (size_t)N, (size_t)N * nh * hd, LLAMA_MAX_PARTS);
}

void rope_forward(float *out, const float *inp, const double *inv_freq, const int *pos, int N,
                  int nh, int hd, int ld) {
    rope_run(out, inp, inv_freq, pos, N, nh, hd, ld, 1.0f);
}

void rope_backward(float *dinp, const float *dout, const double *inv_freq, const int *pos,
                   int N, int nh, int hd, int ld) {
    rope_run(dinp, dout, inv_freq, pos, N, nh, hd, ld, -1.0f);
}

// ----------------------------------------------------------------------------
// SwiGLU

typedef struct {
    float *out;
    const float *inp, *dout;
    int F;
} SwiGLUJob;

/* One row of silu(g) * u (Shazeer 2020), e^-g by vm_exp: 16 lanes (AVX-512) or 8 (AVX2)
 * at a time, each lane the scalar tail's operations in its order (separate divides,
 * multiplies and adds), so the bits do not depend on where a column falls. libm's expf
 * is a scalar call per element: at SmolLM2-135M's shape a decode step at batch 8 called
 * it 368,640 times. A build without vector lanes (the x86-64-v2 copy) keeps expf, whose
 * bits it always had (there vm_exp moved test_generate's cache-vs-training score gap on
 * llama-tiny untied from below 1e-5 to 1.1e-5, past the test's bound, for no speed). */
#if defined(__AVX2__)
#define SWIGLU_EXP vm_exp
#else
#define SWIGLU_EXP expf
#endif
static void swiglu_row_forward(float *o, const float *g, const float *u, int F) {
    int i = 0;
#if defined(__AVX512F__)
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    for (; i + 16 <= F; i += 16) {
        __m512 gv = _mm512_loadu_ps(g + i);
        __m512 e = vm_exp16(_mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(gv), sign)));
        __m512 s = _mm512_div_ps(gv, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
        _mm512_storeu_ps(o + i, _mm512_mul_ps(s, _mm512_loadu_ps(u + i)));
    }
#elif defined(__AVX2__)
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (; i + 8 <= F; i += 8) {
        __m256 gv = _mm256_loadu_ps(g + i);
        __m256 e = vm_exp8(_mm256_xor_ps(gv, sign));
        __m256 s = _mm256_div_ps(gv, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
        _mm256_storeu_ps(o + i, _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
    }
#endif
    for (; i < F; i++) o[i] = g[i] / (1.0f + SWIGLU_EXP(-g[i])) * u[i];
}

/* One row of swiglu's gradient: s = sigmoid(g), dg = d u s (1 + g (1 - s)),
 * du = d g s; lanes as in swiglu_row_forward */
static void swiglu_row_backward(float *dg, float *du, const float *g, const float *u,
                                const float *d, int F) {
    int i = 0;
#if defined(__AVX512F__)
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    const __m512 one = _mm512_set1_ps(1.0f);
    for (; i + 16 <= F; i += 16) {
        __m512 gv = _mm512_loadu_ps(g + i), dv = _mm512_loadu_ps(d + i);
        __m512 e = vm_exp16(_mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(gv), sign)));
        __m512 s = _mm512_div_ps(one, _mm512_add_ps(one, e));
        __m512 t = _mm512_mul_ps(s, _mm512_add_ps(one, _mm512_mul_ps(gv, _mm512_sub_ps(one, s))));
        _mm512_storeu_ps(dg + i, _mm512_mul_ps(_mm512_mul_ps(dv, _mm512_loadu_ps(u + i)), t));
        _mm512_storeu_ps(du + i, _mm512_mul_ps(dv, _mm512_mul_ps(gv, s)));
    }
#elif defined(__AVX2__)
    const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f);
    for (; i + 8 <= F; i += 8) {
        __m256 gv = _mm256_loadu_ps(g + i), dv = _mm256_loadu_ps(d + i);
        __m256 e = vm_exp8(_mm256_xor_ps(gv, sign));
        __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, e));
        __m256 t = _mm256_mul_ps(s, _mm256_add_ps(one, _mm256_mul_ps(gv, _mm256_sub_ps(one, s))));
        _mm256_storeu_ps(dg + i, _mm256_mul_ps(_mm256_mul_ps(dv, _mm256_loadu_ps(u + i)), t));
        _mm256_storeu_ps(du + i, _mm256_mul_ps(dv, _mm256_mul_ps(gv, s)));
    }
#endif
    for (; i < F; i++) {
        float s = 1.0f / (1.0f + SWIGLU_EXP(-g[i]));
        float silu = g[i] * s;
        dg[i] = d[i] * u[i] * (s * (1.0f + g[i] * (1.0f - s)));
        du[i] = d[i] * silu;
    }
}

static void swiglu_forward_range(void *p, size_t lo, size_t hi, int part) {
    (void)part;
    const SwiGLUJob *j = p;
    int F = j->F;
    for (size_t n = lo; n < hi; n++)
        swiglu_row_forward(j->out + n * F, j->inp + n * 2 * F, j->inp + n * 2 * F + F, F);
}

static void swiglu_backward_range(void *p, size_t lo, size_t hi, int part) {
    (void)part;
    const SwiGLUJob *j = p;
    int F = j->F;
    for (size_t n = lo; n < hi; n++) {
        const float *g = j->inp + n * 2 * F;
        float *dg = j->out + n * 2 * F;
        swiglu_row_backward(dg, dg + F, g, g + F, j->dout + n * F, F);
    }
}

void swiglu_forward(float *out, const float *inp, int N, int F) {
    SwiGLUJob j = {out, inp, NULL, F};
    llama_run(swiglu_forward_range, &j, (size_t)N, (size_t)N * F, LLAMA_MAX_PARTS);
}

void swiglu_backward(float *dinp, const float *dout, const float *inp, int N, int F) {
    SwiGLUJob j = {dinp, inp, dout, F};
    llama_run(swiglu_backward_range, &j, (size_t)N, (size_t)N * F, LLAMA_MAX_PARTS);
}

// ----------------------------------------------------------------------------
// grouped-query attention

/* query blocks of the causal products: block [t0, t0+nt) needs keys [0, t0+nt) only */
#define GQA_BLOCK 64

typedef struct {
    float *out, *att, *dqkv, *scratch;
    const float *qkv, *dout, *catt;
    int T, NH, NKV, hd;
} GQAJob;

/* In place: row t of the (T,T) scores keeps columns 0..t as softmax probabilities, the
 * rest zero. */
static void gqa_causal_softmax(float *a, int T) {
    for (int t = 0; t < T; t++) {
        float *row = a + (size_t)t * T;
        float mx = row[0];
        for (int s = 1; s <= t; s++) mx = row[s] > mx ? row[s] : mx;
        double sum = 0.0;
        for (int s = 0; s <= t; s++) {
            row[s] = expf(row[s] - mx);
            sum += row[s];
        }
        float inv = (float)(1.0 / sum);
        for (int s = 0; s <= t; s++) row[s] *= inv;
        for (int s = t + 1; s < T; s++) row[s] = 0.0f;
    }
}

static void gqa_forward_range(void *p, size_t lo, size_t hi, int part) {
    (void)part;
    const GQAJob *j = p;
    int T = j->T, NH = j->NH, hd = j->hd, rep = NH / j->NKV;
    int W = (NH + 2 * j->NKV) * hd, QW = NH * hd;
    float scale = 1.0f / sqrtf((float)hd);
    for (size_t bh = lo; bh < hi; bh++) {
        size_t b = bh / (size_t)NH;
        int h = (int)(bh % (size_t)NH), kvh = h / rep;
        const float *base = j->qkv + b * (size_t)T * W;
        const float *q = base + (size_t)h * hd, *k = base + QW + (size_t)kvh * hd;
        const float *v = base + QW + (size_t)j->NKV * hd + (size_t)kvh * hd;
        float *a = j->att + bh * (size_t)T * T;
        float *o = j->out + b * (size_t)T * QW + (size_t)h * hd;
        for (int t0 = 0; t0 < T; t0 += GQA_BLOCK) {
            int nt = T - t0 < GQA_BLOCK ? T - t0 : GQA_BLOCK, nk = t0 + nt;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nt, nk, hd, scale,
                        q + (size_t)t0 * W, W, k, W, 0.0f, a + (size_t)t0 * T, T);
        }
        gqa_causal_softmax(a, T);
        for (int t0 = 0; t0 < T; t0 += GQA_BLOCK) {
            int nt = T - t0 < GQA_BLOCK ? T - t0 : GQA_BLOCK, nk = t0 + nt;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nt, hd, nk, 1.0f,
                        a + (size_t)t0 * T, T, v, W, 0.0f, o + (size_t)t0 * QW, QW);
        }
    }
}

void gqa_attention_forward(float *out, float *att, const float *qkv, int B, int T, int NH,
                           int NKV, int hd) {
    GQAJob j = {.out = out, .att = att, .qkv = qkv, .T = T, .NH = NH, .NKV = NKV, .hd = hd};
    size_t pairs = (size_t)B * NH;
    llama_run(gqa_forward_range, &j, pairs, pairs * T * T, LLAMA_MAX_PARTS);
}

void gqa_attention_forward_naive(float *out, float *att, const float *qkv, int B, int T, int NH,
                                 int NKV, int hd) {
    int rep = NH / NKV, W = (NH + 2 * NKV) * hd, QW = NH * hd;
    double scale = 1.0 / sqrt((double)hd);
    double *sc = xcalloc((size_t)T, sizeof(double));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            int kvh = h / rep;
            for (int t = 0; t < T; t++) {
                const float *q = qkv + ((size_t)b * T + t) * W + (size_t)h * hd;
                double mx = -INFINITY, sum = 0.0;
                for (int s = 0; s <= t; s++) {
                    const float *k = qkv + ((size_t)b * T + s) * W + QW + (size_t)kvh * hd;
                    double d = 0.0;
                    for (int i = 0; i < hd; i++) d += (double)q[i] * k[i];
                    sc[s] = d * scale;
                    mx = sc[s] > mx ? sc[s] : mx;
                }
                for (int s = 0; s <= t; s++) sum += (sc[s] = exp(sc[s] - mx));
                float *a = att + (((size_t)b * NH + h) * T + t) * T;
                for (int s = 0; s < T; s++) a[s] = s <= t ? (float)(sc[s] / sum) : 0.0f;
                float *o = out + ((size_t)b * T + t) * QW + (size_t)h * hd;
                for (int i = 0; i < hd; i++) {
                    double y = 0.0;
                    for (int s = 0; s <= t; s++)
                        y += sc[s] / sum *
                             qkv[((size_t)b * T + s) * W + QW + (size_t)(NKV + kvh) * hd + i];
                    o[i] = (float)y;
                }
            }
        }
    free(sc);
}

/* dS = P (dP - sum_s P dP), zero above the diagonal (in place in ds) */
static void gqa_softmax_backward(float *ds, const float *a, int T) {
    for (int t = 0; t < T; t++) {
        const float *pr = a + (size_t)t * T;
        float *dr = ds + (size_t)t * T;
        double dot = 0.0;
        for (int s = 0; s <= t; s++) dot += (double)pr[s] * dr[s];
        float fdot = (float)dot;
        for (int s = 0; s <= t; s++) dr[s] = pr[s] * (dr[s] - fdot);
        for (int s = t + 1; s < T; s++) dr[s] = 0.0f;
    }
}

/* Part `part` works in scratch block `part`. Per (b, kv head): its query heads in order;
 * the first head's last causal block (which reaches every key) overwrites dK and dV,
 * everything after accumulates. */
static void gqa_backward_range(void *p, size_t lo, size_t hi, int part) {
    const GQAJob *j = p;
    int T = j->T, NH = j->NH, NKV = j->NKV, hd = j->hd, rep = NH / NKV;
    int W = (NH + 2 * NKV) * hd, QW = NH * hd;
    float scale = 1.0f / sqrtf((float)hd);
    float *ds = j->scratch + (size_t)part * T * T;
    int last = (T - 1) / GQA_BLOCK * GQA_BLOCK;
    for (size_t bk = lo; bk < hi; bk++) {
        size_t b = bk / (size_t)NKV;
        int kvh = (int)(bk % (size_t)NKV);
        size_t row0 = b * (size_t)T * W;
        const float *k = j->qkv + row0 + QW + (size_t)kvh * hd;
        const float *v = k + (size_t)NKV * hd;
        float *dk = j->dqkv + row0 + QW + (size_t)kvh * hd, *dv = dk + (size_t)NKV * hd;
        for (int r = 0; r < rep; r++) {
            int h = kvh * rep + r;
            const float *q = j->qkv + row0 + (size_t)h * hd;
            float *dq = j->dqkv + row0 + (size_t)h * hd;
            const float *a = j->catt + (b * NH + h) * (size_t)T * T;
            const float *dy = j->dout + b * (size_t)T * QW + (size_t)h * hd;
            for (int t0 = last; t0 >= 0; t0 -= GQA_BLOCK) {
                int nt = T - t0 < GQA_BLOCK ? T - t0 : GQA_BLOCK, nk = t0 + nt;
                float beta = r == 0 && t0 == last ? 0.0f : 1.0f;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nt, nk, hd, 1.0f,
                            dy + (size_t)t0 * QW, QW, v, W, 0.0f, ds + (size_t)t0 * T, T);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, hd, nt, 1.0f,
                            a + (size_t)t0 * T, T, dy + (size_t)t0 * QW, QW, beta, dv, W);
            }
            gqa_softmax_backward(ds, a, T);
            for (int t0 = last; t0 >= 0; t0 -= GQA_BLOCK) {
                int nt = T - t0 < GQA_BLOCK ? T - t0 : GQA_BLOCK, nk = t0 + nt;
                float beta = r == 0 && t0 == last ? 0.0f : 1.0f;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nt, hd, nk, scale,
                            ds + (size_t)t0 * T, T, k, W, 0.0f, dq + (size_t)t0 * W, W);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, hd, nt, scale,
                            ds + (size_t)t0 * T, T, q + (size_t)t0 * W, W, beta, dk, W);
            }
        }
    }
}

void gqa_attention_backward(float *dqkv, float *scratch, int slots, const float *dout,
                            const float *qkv, const float *att, int B, int T, int NH, int NKV,
                            int hd) {
    GQAJob j = {.dqkv = dqkv, .scratch = scratch, .qkv = qkv, .dout = dout, .catt = att,
                .T = T, .NH = NH, .NKV = NKV, .hd = hd};
    size_t pairs = (size_t)B * NKV;
    llama_run(gqa_backward_range, &j, pairs, pairs * (NH / NKV) * T * T, slots);
}

void gqa_attention_row_forward(float *out, float *scores, const float *q, const float *kc,
                               const float *vc, int n, int T, int NH, int NKV, int hd) {
    int rep = NH / NKV;
    float scale = 1.0f / sqrtf((float)hd);
    for (int h = 0; h < NH; h++) {
        const float *qh = q + (size_t)h * hd;
        const float *K = kc + (size_t)(h / rep) * T * hd, *V = vc + (size_t)(h / rep) * T * hd;
        attention_qk_row(scores, qh, K, n, hd, scale);
        float mx = -INFINITY;
        for (int s = 0; s < n; s++) mx = scores[s] > mx ? scores[s] : mx;
        double sum = 0.0;
        for (int s = 0; s < n; s++) {
            scores[s] = expf(scores[s] - mx);
            sum += scores[s];
        }
        attention_pv_row(out + (size_t)h * hd, scores, (float)(1.0 / sum), V, n, hd);
    }
}
