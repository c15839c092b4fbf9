/*
 * tests/heapcount.h — bytes in use on the glibc heap (mallinfo2: small blocks + mmapped
 * ones), for tests that prove a memory saving by counting allocations. A sanitizer's
 * allocator is invisible to mallinfo2: heap_counts() says whether counting works here, and
 * such tests skip (with the reason) when it does not.
 */
#ifndef RLHF_TESTS_HEAPCOUNT_H
#define RLHF_TESTS_HEAPCOUNT_H

#include <malloc.h>
#include <stdlib.h>

#include "util.h"

static inline size_t heap_bytes(void) {
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* 1 if a 64 MiB allocation shows in heap_bytes (glibc's allocator), 0 otherwise. */
static inline int heap_counts(void) {
    size_t before = heap_bytes();
    float *probe = xalloc_floats((size_t)16 << 20);
    size_t seen = heap_bytes() - before;
    free(probe);
    return seen >= ((size_t)64 << 20);
}

#endif
