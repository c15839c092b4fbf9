/*
 * fuzz/fuzz_util.h — helpers shared by the libFuzzer targets in fuzz/fuzz_*.c.
 *
 * fuzz_memfile puts the fuzzer's bytes into an anonymous in-memory file (memfd_create) and
 * gives a path to it (/proc/self/fd/N), so decoders that take a path (datasets, label
 * logs) read the bytes through their real open/read/pread code without touching the disk.
 * Not here: anything a target asserts about its decoder (each target does that).
 */
#ifndef RLHF_FUZZ_UTIL_H
#define RLHF_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct {
    int fd;
    char path[64];
} FuzzFile;

/* Write n bytes into a fresh memfd; aborts if the kernel refuses (a harness bug, not a
 * finding). */
static inline void fuzz_memfile(FuzzFile *f, const void *data, size_t n) {
    f->fd = memfd_create("fuzz", 0);
    if (f->fd < 0) {
        perror("memfd_create");
        abort();
    }
    const char *p = data;
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(f->fd, p + done, n - done);
        if (w <= 0) {
            perror("write memfd");
            abort();
        }
        done += (size_t)w;
    }
    snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
}

static inline void fuzz_memfile_close(FuzzFile *f) {
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
}

/* A NUL-terminated copy of the input (decoders of text take C strings). */
static inline char *fuzz_cstr(const uint8_t *data, size_t n) {
    char *s = malloc(n + 1);
    if (!s) abort();
    memcpy(s, data, n);
    s[n] = 0;
    return s;
}

/* A failed decoder must say why: an empty error message is a finding too. */
#define FUZZ_REQUIRE(cond)                                                                \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__,     \
                    #cond);                                                               \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

#endif
