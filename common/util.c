/*
 * common/util.c — checked allocation, fatal errors, time, whole-file I/O, UTF-8 check.
 * See util.h for the error tiers these implement.
 */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void *xmalloc_at(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) fatal_at(file, line, "out of memory allocating %zu bytes", n);
    return p;
}

void *xcalloc_at(size_t n, size_t size, const char *file, int line) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) fatal_at(file, line, "out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

void *xrealloc_at(void *p, size_t n, const char *file, int line) {
    void *q = realloc(p, n ? n : 1);
    if (!q) fatal_at(file, line, "out of memory reallocating to %zu bytes", n);
    return q;
}

char *xstrdup_at(const char *s, const char *file, int line) {
    size_t n = strlen(s) + 1;
    char *p = xmalloc_at(n, file, line);
    memcpy(p, s, n);
    return p;
}

/* Buffers of at least this size get transparent huge pages: 2 MB-aligned, rounded up to
 * 2 MB, and advised MADV_HUGEPAGE before the first touch (this kernel hands huge pages
 * only to advised memory, "madvise" mode). A tiny training step streams ~100 MB of
 * activations and the 124M model 0.5 GB of weights per token; with 4 KiB pages that is a
 * TLB miss every 64 cache lines. Where the advice is refused, the buffer
 * simply keeps small pages. */
#define HUGE_BYTES ((size_t)2 << 20)

float *xalloc_floats_at(size_t n, const char *file, int line) {
    size_t bytes = (n ? n : 1) * sizeof(float);
    int huge = bytes >= HUGE_BYTES;
    size_t align = huge ? HUGE_BYTES : 64;
    bytes = (bytes + align - 1) & ~(align - 1);
    void *p = aligned_alloc(align, bytes);
    if (!p) fatal_at(file, line, "out of memory allocating %zu floats", n);
#if defined(MADV_HUGEPAGE)
    if (huge) (void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
    memset(p, 0, bytes);
    return p;
}

static FatalHook g_fatal_hook;

void fatal_set_hook(FatalHook hook) { g_fatal_hook = hook; }

void fatal_at(const char *file, int line, const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    FatalHook hook = g_fatal_hook;
    if (hook) {
        g_fatal_hook = NULL; /* a failure inside the hook must not recurse */
        hook(file, line, msg);
    }
    fflush(stdout);
    fprintf(stderr, "rlhf-c: error: %s (%s:%d)\n", msg, file, line);
    exit(1);
}

void usage_error(const char *prog, const char *fmt, ...) {
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see %s --help)\n", prog);
    exit(2);
}

int errf(char *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, ERRBUF_LEN, fmt, ap);
        va_end(ap);
    }
    return -1;
}

double time_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

char *file_read_all(const char *path, size_t *len, char *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        errf(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = xmalloc(cap + 1);
    for (;;) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        cap *= 2;
        buf = xrealloc(buf, cap + 1);
    }
    if (ferror(f)) {
        errf(err, "%s: read error: %s", path, strerror(errno));
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

int file_sync_dir(const char *path, char *err) {
    char *copy = xstrdup(path);
    const char *dir = dirname(copy);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        errf(err, "%s: cannot open directory: %s", dir, strerror(errno));
        free(copy);
        return -1;
    }
    int rc = fsync(fd);
    close(fd);
    free(copy);
    if (rc != 0 && errno != EINVAL) return errf(err, "%s: fsync of directory failed", path);
    return 0;
}

int file_write_atomic(const char *path, const void *data, size_t len, char *err) {
    size_t plen = strlen(path);
    char *tmp = xmalloc(plen + 5);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        errf(err, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            errf(err, "%s: write failed: %s (the previous %s is untouched)", tmp,
                 strerror(errno), path);
            goto fail;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0) {
        errf(err, "%s: fsync failed: %s (the previous %s is untouched)", tmp,
             strerror(errno), path);
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        errf(err, "%s: close failed: %s", tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        errf(err, "rename %s -> %s failed: %s", tmp, path, strerror(errno));
        goto fail;
    }
    free(tmp);
    return file_sync_dir(path, err);
fail:
    if (fd >= 0) close(fd);
    unlink(tmp);
    free(tmp);
    return -1;
}

int file_mkdirs(const char *path, char *err) {
    char *buf = xstrdup(path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
                errf(err, "%s: cannot create directory: %s", buf, strerror(errno));
                free(buf);
                return -1;
            }
            *p = c;
            if (c == 0) break;
        }
    }
    free(buf);
    return 0;
}

int utf8_valid(const char *str, size_t n, size_t *bad_offset) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            goto bad;
        }
        if (i + len > n) goto bad;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) goto bad;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            goto bad;
        i += len;
    }
    return 1;
bad:
    if (bad_offset) *bad_offset = i;
    return 0;
}
