/*
 * common/cpu.h — what this CPU can run, and which build of the kernels is running.
 *
 * rlhf-c is built for a baseline x86-64 level (x86-64-v2 by default; `make ARCH=native`
 * builds for the build machine) plus, in the default portable build, two more copies of
 * the shared library build/lib/librlhf.so under build/lib/glibc-hwcaps/x86-64-v3/ and
 * x86-64-v4/: the dynamic loader (glibc >= 2.33) loads the best copy this CPU supports,
 * so an AVX-512 CPU runs the AVX-512 kernels and any other runs the AVX2 or SSE4.2 ones,
 * from the same binaries. Below the baseline the library refuses at load time, before
 * anything else runs, with a message naming the missing CPU features (a constructor
 * in cpu.c, compiled for plain x86-64) and exit status 1 — never a SIGILL later.
 *
 */
#ifndef RLHF_CPU_H
#define RLHF_CPU_H

/* The x86-64 level (or -march value) this copy of the library was compiled for, e.g.
 * "x86-64-v4", "x86-64-v2", "native". */
const char *cpu_build_arch(void);

/* The CPU vendor string from CPUID ("GenuineIntel", "AuthenticAMD"; "" elsewhere). */
const char *cpu_vendor(void);

#endif
