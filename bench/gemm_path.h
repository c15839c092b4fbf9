/*
 * bench/gemm_path.h — why gemm.c (common/gemm.c, our AVX-512 GEMM) is not in use, for the
 * benchmarks that compare it with OpenBLAS: they print this reason in place of the gemm.c
 * figures and ratios, rather than leaving a silent gap.
 */
#ifndef RLHF_BENCH_GEMM_PATH_H
#define RLHF_BENCH_GEMM_PATH_H

#include "gemm.h"

/* NULL when gemm.c is compiled in; otherwise what keeps it out. A CPU with AVX-512 and a
 * build without it (a baseline -march) are told apart, since the remedy differs. */
static inline const char *bench_gemm_absent_reason(void) {
    if (gemm_f32_available()) return NULL;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return "not compiled into this build (the CPU has AVX-512; the build's -march does not)";
#endif
    return "not available on this CPU (needs AVX-512)";
}

#endif
