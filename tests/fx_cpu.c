/*
 * tests/fx_cpu.c — prints which copy of librlhf.so this process loaded and what it chose,
 * for tests/t_portable.sh (which runs it as other CPUs under qemu-user):
 *   arch <level the loaded library copy was built for>
 *   gemm <own|openblas>      (the run.gemm=auto choice)
 *   vendor <CPUID vendor>
 */
#include <stdio.h>

#include "cpu.h"
#include "gemm.h"
#include "ops.h"

int main(void) {
    printf("arch %s\n", cpu_build_arch());
    printf("kernel %s\n", gemm_f32_available() ? "avx512" : "none");
    ops_gemm_choose("auto");
    printf("gemm %s\n", ops_gemm_own(-1) ? "own" : "openblas");
    printf("vendor %s\n", cpu_vendor()[0] ? cpu_vendor() : "unknown");
    return 0;
}
