/*
 * common/util.h — the small things every rlhf-c file needs: checked allocation, fatal
 * errors with file:line, invariants, wall-clock time, and whole-file I/O.
 *
 * Error tiers:
 *   - libc calls that cannot reasonably fail (malloc of a known size) go through
 *     xmalloc/xcalloc/xrealloc, which print file:line and exit(1) on failure;
 *   - invariants use ASSERT(cond), which aborts with file:line (never compiled out);
 *   - recoverable errors (a bad file, a bad message) are returned as -1 with a message
 *     written by the callee into an `err` buffer (ERRBUF_LEN bytes) or printed, and the
 *     caller decides; MPI and HDF5 calls use the CHECK macros of mpi_util.h / ckpt.c.
 * fatal() prints "rlhf-c: error: ... (file:line)" and exits 1. Inside an MPI job (after
 * mpi_roles_init, which installs a fatal hook) it goes through mpi_fatal instead: the line
 * names rank, role and file:line, and MPI_Abort ends the whole job — a rank that simply
 * exited would leave its peers blocked in a collective until the peer timeout.
 */
#ifndef RLHF_UTIL_H
#define RLHF_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define ERRBUF_LEN 512

void *xmalloc_at(size_t n, const char *file, int line);
void *xcalloc_at(size_t n, size_t size, const char *file, int line);
void *xrealloc_at(void *p, size_t n, const char *file, int line);
char *xstrdup_at(const char *s, const char *file, int line);
#define xmalloc(n) xmalloc_at((n), __FILE__, __LINE__)
#define xcalloc(n, s) xcalloc_at((n), (s), __FILE__, __LINE__)
#define xrealloc(p, n) xrealloc_at((p), (n), __FILE__, __LINE__)
#define xstrdup(s) xstrdup_at((s), __FILE__, __LINE__)

/* Big buffers (parameters, activations): 64-byte aligned, zeroed, freed with free(). */
float *xalloc_floats_at(size_t n, const char *file, int line);
#define xalloc_floats(n) xalloc_floats_at((n), __FILE__, __LINE__)

_Noreturn void fatal_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define fatal(...) fatal_at(__FILE__, __LINE__, __VA_ARGS__)
/* A command-line usage error: "PROG: <what> (see PROG --help)" on stderr, exit 2. */
_Noreturn void usage_error(const char *prog, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* What fatal_at does with its formatted message instead of printing it and exiting (must
 * not return); NULL restores that default. mpi_roles_init sets it, mpi_roles_free clears
 * it. util.c itself knows nothing of MPI. */
typedef void (*FatalHook)(const char *file, int line, const char *msg);
void fatal_set_hook(FatalHook hook);

#define ASSERT(cond)                                                                      \
    do {                                                                                  \
        if (!(cond)) fatal_at(__FILE__, __LINE__, "assertion failed: %s", #cond);         \
    } while (0)

/* snprintf into an error buffer of ERRBUF_LEN bytes (err may be NULL). Returns -1, so
 * recoverable paths can write `return errf(err, "...")`. */
int errf(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Monotonic wall-clock seconds. */
double time_now(void);

/* Read a whole file into a NUL-terminated malloc'd buffer; returns NULL and fills err
 * (naming the path and the errno reason) on failure. *len gets the byte count. */
char *file_read_all(const char *path, size_t *len, char *err);

/* Write a whole buffer to path atomically: path.tmp, fsync, rename, fsync of the folder.
 * On failure the old file at path is untouched and the temp file removed. */
int file_write_atomic(const char *path, const void *data, size_t len, char *err);

/* fsync the directory containing path (so a rename is durable). */
int file_sync_dir(const char *path, char *err);

/* mkdir -p. Returns 0 or -1 with err. */
int file_mkdirs(const char *path, char *err);

/* 1 if the n bytes are valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). On
 * failure *bad_offset (if not NULL) is the offset of the first invalid byte. */
int utf8_valid(const char *s, size_t n, size_t *bad_offset);

#endif
