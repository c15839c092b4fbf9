/*
 * common/vmath.h — the element-wise formulas that more than one kernel file evaluates:
 * exp (ops.c's exp_fast; a softmax row's exponentials, vm_exp_shift_row, for ops.c's
 * attention rows) and the GELU with its derivative. With AVX-512: vm_exp16 performs
 * vm_exp's float operations in the same order (separate multiplies and adds, as the
 * scalar code compiles under -std=c11, where GCC does not contract a * b + c), so a lane
 * gives the bits of the scalar call; the GELU is defined by its 16-lane form (fused
 * multiply-adds) and its scalar calls run one lane of it. Without AVX-512 the GELU is the
 * plain scalar formula (other bits; no kernel mixes the two), with an 8-lane AVX2 form
 * that gives the scalar bits in every lane.
 *
 * ops.c runs the GELU passes with them and gemm.c applies them to a GEMM tile while it
 * is still in registers; the two therefore agree bit for bit (tests/test_gemm.c).
 */
#ifndef RLHF_VMATH_H
#define RLHF_VMATH_H

#include <stdint.h>
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

/* GELU, tanh approximation (Hendrycks & Gimpel 2016, sec. 2) */
#define VM_GELU_SCALE 0.7978845608028654f /* sqrt(2/pi) */
#define VM_GELU_CUBE 0.044715f

/* Branch-free float exp: Cody–Waite reduction x = n ln2 + r, |r| <= ln2/2, a degree-7
 * Taylor polynomial for e^r (truncation < 1e-8 relative) and 2^n from the exponent bits.
 * Max error about 2 ulp over the clamped range [-87, 88] (below: ~1e-38 instead of 0;
 * above: e^88). libm's expf is a scalar call; GCC does not vectorise loops that call
 * this one either (it treats the clamps as control flow), hence vm_exp16 / vm_exp8 below. */
static inline float vm_exp(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    float n = __builtin_rintf(x * 1.44269504088896341f); /* rintf vectorises, floorf not */
    float r = x - n * 0.693359375f;                      /* ln2 high part (exact product) */
    r = r - n * -2.12194440e-4f;                         /* ln2 low part */
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union {
        int32_t i;
        float f;
    } scale;
    /* unsigned shift: a NaN x (n out of range) must not be undefined behaviour */
    scale.i = (int32_t)((uint32_t)((int32_t)n + 127) << 23);
    return p * scale.f;
}

#if defined(__AVX512F__)
/* the first n lanes of 16 (n clamped to 0..16): masked loads and stores of a row's tail */
static inline __mmask16 vm_mask16(int n) {
    return n >= 16 ? (__mmask16)0xFFFF : n > 0 ? (__mmask16)((1u << n) - 1u) : (__mmask16)0;
}

static inline __m512 vm_exp16(__m512 x) {
    /* operand order as the scalar ternaries: a NaN passes through */
    x = _mm512_max_ps(_mm512_set1_ps(-87.0f), x);
    x = _mm512_min_ps(_mm512_set1_ps(88.0f), x);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_sub_ps(x, _mm512_mul_ps(n, _mm512_set1_ps(0.693359375f)));
    r = _mm512_sub_ps(r, _mm512_mul_ps(n, _mm512_set1_ps(-2.12194440e-4f)));
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(0.5f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

/* The GELU's own e^{-2u}: vm_exp16's reduction and polynomial with fused multiply-adds
 * (9 fewer operations: the GELU is bound by its vector operations, ~38 per 16 values
 * with separate multiplies and adds). Not bit-equal to vm_exp; the GELU's scalar form
 * below runs one lane of this, so fused and separate GELU passes still agree. */
static inline __m512 vm_gelu_exp16(__m512 x) {
    x = _mm512_max_ps(_mm512_set1_ps(-87.0f), x);
    x = _mm512_min_ps(_mm512_set1_ps(88.0f), x);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

/* gelu(x) = 0.5 x (1 + tanh(u)) = x sigmoid(2u) = x / (1 + e^{-2u}), u = sqrt(2/pi) (x +
 * 0.044715 x^3): one exp, no cancellation near 0; gelu'(x) = s + 2 x s (1 - s) du/dx with
 * s = sigmoid(2u). Here 1 + e^{-2u} = 1 + exp(-2 sqrt(2/pi) (x + 0.044715 x^3)). */
static inline __m512 vm_gelu_den16(__m512 x) {
    __m512 x2 = _mm512_mul_ps(x, x);
    __m512 inner = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(VM_GELU_CUBE), x2), x, x);
    __m512 e = vm_gelu_exp16(_mm512_mul_ps(_mm512_set1_ps(-2.0f * VM_GELU_SCALE), inner));
    return _mm512_add_ps(_mm512_set1_ps(1.0f), e);
}

static inline __m512 vm_gelu16(__m512 x) { return _mm512_div_ps(x, vm_gelu_den16(x)); }

static inline __m512 vm_gelu_grad16(__m512 x, __m512 dout) {
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 sg = _mm512_div_ps(one, vm_gelu_den16(x));
    __m512 x2 = _mm512_mul_ps(x, x);
    __m512 du = _mm512_mul_ps(_mm512_set1_ps(VM_GELU_SCALE),
                              _mm512_fmadd_ps(_mm512_set1_ps(3.0f * VM_GELU_CUBE), x2, one));
    /* s + 2 x s (1 - s) du */
    __m512 t = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(2.0f), x), sg),
                             _mm512_mul_ps(_mm512_sub_ps(one, sg), du));
    return _mm512_mul_ps(_mm512_add_ps(sg, t), dout);
}

/* one lane of the vector versions: the scalar calls give the same bits */
static inline float vm_gelu(float x) { return _mm512_cvtss_f32(vm_gelu16(_mm512_set1_ps(x))); }
static inline float vm_gelu_grad(float x, float dout) {
    return _mm512_cvtss_f32(vm_gelu_grad16(_mm512_set1_ps(x), _mm512_set1_ps(dout)));
}

#else

/* 0.5 (1 + tanh(u)) = sigmoid(2u), so gelu(x) = x / (1 + e^{-2u}): one exp, no
 * cancellation near 0. d/dx = s + 2 x s (1 - s) du/dx with s = sigmoid(2u). */
static inline float vm_gelu(float x) {
    float u = VM_GELU_SCALE * (x + VM_GELU_CUBE * x * x * x);
    return x / (1.0f + vm_exp(-2.0f * u));
}

/* gelu'(x) * dout */
static inline float vm_gelu_grad(float x, float dout) {
    float u = VM_GELU_SCALE * (x + VM_GELU_CUBE * x * x * x);
    float sg = 1.0f / (1.0f + vm_exp(-2.0f * u));
    float du = VM_GELU_SCALE * (1.0f + 3.0f * VM_GELU_CUBE * x * x);
    return (sg + 2.0f * x * sg * (1.0f - sg) * du) * dout;
}

#if defined(__AVX2__)
/* 8 lanes of the scalar formulas above for the AVX2 build (-march=x86-64-v3): GCC does
 * not vectorise the scalar loop (the GELU passes ran one float at a time), and a 16-float
 * generic vector would live on the stack. Every lane performs the scalar code's float
 * operations in its order, separate multiplies and adds (no FMA: the scalar code is not
 * contracted under -std=c11), so a lane gives the bits of vm_gelu / vm_gelu_grad and the
 * scalar tail of a pass agrees with its vector body. */
static inline __m256 vm_exp8(__m256 x) {
    /* operand order as the scalar ternaries: a NaN passes through */
    x = _mm256_max_ps(_mm256_set1_ps(-87.0f), x);
    x = _mm256_min_ps(_mm256_set1_ps(88.0f), x);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(0.693359375f)));
    r = _mm256_sub_ps(r, _mm256_mul_ps(n, _mm256_set1_ps(-2.12194440e-4f)));
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(0.5f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f));
    __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* 1 + e^{-2u}, u = sqrt(2/pi) (x + 0.044715 x^3), as the scalar code groups it */
static inline __m256 vm_gelu_den8(__m256 x) {
    __m256 cube =
        _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(VM_GELU_CUBE), x), x), x);
    __m256 u = _mm256_mul_ps(_mm256_set1_ps(VM_GELU_SCALE), _mm256_add_ps(x, cube));
    __m256 e = vm_exp8(_mm256_mul_ps(_mm256_set1_ps(-2.0f), u));
    return _mm256_add_ps(_mm256_set1_ps(1.0f), e);
}

static inline __m256 vm_gelu8(__m256 x) {
    return _mm256_div_ps(x, vm_gelu_den8(x));
}

static inline __m256 vm_gelu_grad8(__m256 x, __m256 dout) {
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 sg = _mm256_div_ps(one, vm_gelu_den8(x));
    __m256 x2c = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(3.0f * VM_GELU_CUBE), x), x);
    __m256 du = _mm256_mul_ps(_mm256_set1_ps(VM_GELU_SCALE), _mm256_add_ps(one, x2c));
    /* ((2 x) s (1 - s)) du, then s + that, then * dout */
    __m256 t = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(2.0f), x), sg);
    t = _mm256_mul_ps(_mm256_mul_ps(t, _mm256_sub_ps(one, sg)), du);
    return _mm256_mul_ps(_mm256_add_ps(sg, t), dout);
}
#endif

#endif

/* dst[i] = vm_exp(src[i] - mx) for i < n (dst may be src), the exponentials of a softmax
 * row: 16 (AVX-512) or 8 (AVX2) lanes at a time, each lane the scalar call's bits, then
 * the scalar tail */
static inline void vm_exp_shift_row(float *dst, const float *src, float mx, int n) {
    int i = 0;
#if defined(__AVX512F__)
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i,
                         vm_exp16(_mm512_sub_ps(_mm512_loadu_ps(src + i), _mm512_set1_ps(mx))));
#elif defined(__AVX2__)
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i,
                         vm_exp8(_mm256_sub_ps(_mm256_loadu_ps(src + i), _mm256_set1_ps(mx))));
#endif
    for (; i < n; i++) dst[i] = vm_exp(src[i] - mx);
}

#endif
