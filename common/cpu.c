/*
 * common/cpu.c — the CPU check at load time, the build's x86-64 level and the CPU
 * vendor (see cpu.h).
 *
 * The Makefile compiles this file for plain x86-64 whatever the rest of the library is
 * built for, so that the check below runs on any 64-bit x86 CPU: it is the one place
 * that may execute before we know the CPU can run the rest. It passes
 *   RLHF_ARCH_NAME  the level the library copy was built for ("x86-64-v2", "native", ...)
 *   RLHF_CPU_NEED   the instruction sets that level enables, as the compiler's macro
 *                   names without underscores ("SSE4_2 POPCNT AVX2 FMA ..."), read from
 *                   `cc -march=... -dM -E` so that the list cannot drift from the flags.
 */
#include "cpu.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define CPU_X86 1
#endif

#ifndef RLHF_ARCH_NAME
#define RLHF_ARCH_NAME "default"
#endif
#ifndef RLHF_CPU_NEED
#define RLHF_CPU_NEED ""
#endif

const char *cpu_build_arch(void) { return RLHF_ARCH_NAME; }

// ----------------------------------------------------------------------------
// The load-time check

#if defined(CPU_X86)
typedef struct {
    const char *macro; /* as in RLHF_CPU_NEED */
    const char *name;  /* for the message */
    int have;
} CpuFeature;

/* What the CPU (and the OS: AVX state saved on context switches) supports, for every
 * instruction set an x86-64 level up to v4 enables. __builtin_cpu_supports takes only
 * string literals, hence the table filled by hand. */
static int cpu_fill(CpuFeature *f, int cap) {
    __builtin_cpu_init(); /* required before __builtin_cpu_supports in a constructor */
    CpuFeature all[] = {
        {"SSE3", "SSE3", __builtin_cpu_supports("sse3")},
        {"SSSE3", "SSSE3", __builtin_cpu_supports("ssse3")},
        {"SSE4_1", "SSE4.1", __builtin_cpu_supports("sse4.1")},
        {"SSE4_2", "SSE4.2", __builtin_cpu_supports("sse4.2")},
        {"POPCNT", "POPCNT", __builtin_cpu_supports("popcnt")},
        {"AVX", "AVX", __builtin_cpu_supports("avx")},
        {"AVX2", "AVX2", __builtin_cpu_supports("avx2")},
        {"FMA", "FMA", __builtin_cpu_supports("fma")},
        {"BMI", "BMI1", __builtin_cpu_supports("bmi")},
        {"BMI2", "BMI2", __builtin_cpu_supports("bmi2")},
        {"PCLMUL", "PCLMULQDQ", __builtin_cpu_supports("pclmul")},
        {"AES", "AES-NI", __builtin_cpu_supports("aes")},
        {"AVX512F", "AVX-512F", __builtin_cpu_supports("avx512f")},
        {"AVX512BW", "AVX-512BW", __builtin_cpu_supports("avx512bw")},
        {"AVX512CD", "AVX-512CD", __builtin_cpu_supports("avx512cd")},
        {"AVX512DQ", "AVX-512DQ", __builtin_cpu_supports("avx512dq")},
        {"AVX512VL", "AVX-512VL", __builtin_cpu_supports("avx512vl")},
        {"AVX512VNNI", "AVX-512 VNNI", __builtin_cpu_supports("avx512vnni")},
        {"AVX512BF16", "AVX-512 BF16", __builtin_cpu_supports("avx512bf16")},
    };
    int n = (int)(sizeof all / sizeof all[0]);
    if (n > cap) n = cap;
    memcpy(f, all, (size_t)n * sizeof *f);
    return n;
}

/* Runs when the library is loaded, before main and before any code built for the
 * library's level. Writes with write(2) and leaves with _exit: nothing else of the
 * process has been set up, and nothing should run after the refusal. */
__attribute__((constructor(101))) static void cpu_check_baseline(void) {
    CpuFeature f[32];
    int n = cpu_fill(f, 32);
    char missing[256] = "";
    size_t used = 0;
    const char *need = RLHF_CPU_NEED;
    while (*need) {
        while (*need == ' ') need++;
        size_t len = strcspn(need, " ");
        if (!len) break;
        for (int i = 0; i < n; i++)
            if (strlen(f[i].macro) == len && !strncmp(f[i].macro, need, len) && !f[i].have) {
                int w = snprintf(missing + used, sizeof missing - used, "%s%s",
                                 used ? ", " : "", f[i].name);
                if (w > 0 && (size_t)w < sizeof missing - used) used += (size_t)w;
            }
        need += len;
    }
    if (!used) return;
    char msg[768];
    int w = snprintf(msg, sizeof msg,
                     "rlhf-c: this CPU lacks %s, which this build of rlhf-c (%s) needs.\n"
                     "rlhf-c: rebuild it for this machine: make clean && make ARCH=native "
                     "(or ARCH=x86-64 for any 64-bit x86 CPU, slower)\n",
                     missing, RLHF_ARCH_NAME);
    if (w > 0) {
        ssize_t r = write(2, msg, (size_t)w < sizeof msg ? (size_t)w : sizeof msg - 1);
        (void)r;
    }
    _exit(1);
}

const char *cpu_vendor(void) {
    static char vendor[13];
    unsigned a, b, c, d;
    if (!vendor[0] && __get_cpuid(0, &a, &b, &c, &d)) {
        memcpy(vendor, &b, 4);
        memcpy(vendor + 4, &d, 4);
        memcpy(vendor + 8, &c, 4);
    }
    return vendor;
}
#else
const char *cpu_vendor(void) { return ""; }
#endif
