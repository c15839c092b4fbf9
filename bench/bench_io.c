/*
 * bench/bench_io.c — checkpoint write and read speed of a model (ckpt.h) against plain
 * sequential write(2)+fsync and read(2) of the same number of bytes on the same disk, and
 * the in-memory HDF5 image (ckpt_image_build / ckpt_image_load) that weight sync uses.
 *
 *   build/bench/bench_io [tiny|gpt2] [reps] [dir]
 *
 * The model (default gpt2 = 124M, 498 MB of fp32) is written `reps` times (default 5, at
 * least 5) to dir (default: a fresh mkdtemp under $TMPDIR or /tmp, removed at the end):
 *   ckpt write   ckpt_writer_open + write_meta + write_model + commit (CRC-32 of every
 *                tensor, fsync, rename, fsync of the folder): the learner's checkpoint;
 *   raw write    open + write(2) in 8 MiB pieces + fsync + close of the same byte count;
 *   ckpt read    ckpt_reader_open + ckpt_read_model (shape and CRC checks) into a second
 *                model, after posix_fadvise(DONTNEED) has dropped the file from the page
 *                cache ("cold"), and again straight after ("warm");
 *   raw read     read(2) of the raw file, cold and warm the same way.
 * GB/s = parameter bytes (num_params * 4, 1e9 bytes per GB) / median seconds. Whether
 * "cold" really is cold depends on the kernel honouring DONTNEED (it does for clean pages
 * of a local file system); the raw cold read shows it: a cold rate near the warm one
 * means the cache was not dropped. Every read is compared with the written parameters
 * (exit 1 on a difference). Output: a table and RESULT lines for bench/run.sh.
 * Not a test; never run by `make test`.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "gpt.h"
#include "util.h"

#define MIN_REPS 5
#define IO_CHUNK ((size_t)8 << 20)

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Drop a file's pages from the page cache (they are clean after fsync). */
static void drop_cache(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) fatal("open %s: %s", path, strerror(errno));
    (void)fdatasync(fd);
    int rc = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    if (rc != 0) fprintf(stderr, "bench_io: posix_fadvise %s: %s\n", path, strerror(rc));
    close(fd);
}

static void raw_write(const char *path, const void *buf, size_t n) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) fatal("open %s: %s", path, strerror(errno));
    const char *p = buf;
    for (size_t off = 0; off < n;) {
        size_t k = n - off < IO_CHUNK ? n - off : IO_CHUNK;
        ssize_t w = write(fd, p + off, k);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) fatal("write %s: %s", path, strerror(errno));
        off += (size_t)w;
    }
    if (fsync(fd) != 0) fatal("fsync %s: %s", path, strerror(errno));
    if (close(fd) != 0) fatal("close %s: %s", path, strerror(errno));
}

static void raw_read(const char *path, void *buf, size_t n) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) fatal("open %s: %s", path, strerror(errno));
    char *p = buf;
    for (size_t off = 0; off < n;) {
        size_t k = n - off < IO_CHUNK ? n - off : IO_CHUNK;
        ssize_t r = read(fd, p + off, k);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) fatal("read %s: %s (at byte %zu of %zu)", path, r ? strerror(errno) : "EOF",
                          off, n);
        off += (size_t)r;
    }
    close(fd);
}

static void ckpt_save_once(const char *path, const GPT *m) {
    char err[ERRBUF_LEN];
    CkptMeta meta = {.stage = "sft", .step = 1, .policy_version = 1, .model = m->config};
    CkptWriter *w = ckpt_writer_open(path, err);
    if (!w) fatal("%s", err);
    if (ckpt_write_meta(w, &meta, err) != 0 || ckpt_write_model(w, "policy", m, err) != 0) {
        ckpt_writer_free(w);
        fatal("%s", err);
    }
    if (ckpt_writer_commit(w, err) != 0) fatal("%s", err);
}

static void ckpt_load_once(const char *path, GPT *m) {
    char err[ERRBUF_LEN];
    CkptReader *r = ckpt_reader_open(path, err);
    if (!r) fatal("%s", err);
    if (ckpt_read_model(r, "policy", m, err) != 0) fatal("%s", err);
    ckpt_reader_free(r);
}

static void check_same(const GPT *a, const GPT *b, const char *what) {
    if (memcmp(a->params, b->params, a->num_params * sizeof(float)) != 0)
        fatal("%s: the parameters read back differ from those written", what);
    memset(b->params, 0, b->num_params * sizeof(float));
}

enum { W_CKPT, W_RAW, R_CKPT_COLD, R_CKPT_WARM, R_RAW_COLD, R_RAW_WARM, NM };
static const char *NAMES[NM] = {"ckpt_write",     "raw_write",     "ckpt_read_cold",
                                "ckpt_read_warm", "raw_read_cold", "raw_read_warm"};

int main(int argc, char **argv) {
    const char *preset = argc > 1 ? argv[1] : "gpt2";
    int reps = argc > 2 ? atoi(argv[2]) : MIN_REPS;
    GPTConfig c;
    if (argc > 4 || reps < 1 || reps > 1000 || gpt_config_preset(preset, &c) != 0) {
        fprintf(stderr, "usage: bench_io [tiny|gpt2] [reps >= %d] [dir]\n", MIN_REPS);
        return 2;
    }
    if (reps < MIN_REPS) reps = MIN_REPS;
    char dir[CKPT_PATH_LEN], err[ERRBUF_LEN];
    int own_dir = argc <= 3;
    if (own_dir) {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/rlhf-bench-io.XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir)) fatal("mkdtemp %s: %s", dir, strerror(errno));
    } else {
        snprintf(dir, sizeof dir, "%s", argv[3]);
        if (file_mkdirs(dir, err) != 0) fatal("%s", err);
    }
    char ck[CKPT_PATH_LEN + 32], raw[CKPT_PATH_LEN + 32];
    snprintf(ck, sizeof ck, "%s/bench.h5", dir);
    snprintf(raw, sizeof raw, "%s/bench.raw", dir);

    GPT m, m2;
    gpt_init(&m, &c);
    gpt_init_weights(&m, 3);
    gpt_init(&m2, &c);
    size_t bytes = m.num_params * sizeof(float);
    double *t[NM];
    for (int k = 0; k < NM; k++) t[k] = xcalloc((size_t)reps, sizeof(double));
    size_t file_bytes = 0;

    for (int r = 0; r < reps; r++) {
        unlink(ck), unlink(raw);
        double t0 = time_now();
        ckpt_save_once(ck, &m);
        t[W_CKPT][r] = time_now() - t0;
        struct stat st;
        if (stat(ck, &st) == 0) file_bytes = (size_t)st.st_size;

        t0 = time_now();
        raw_write(raw, m.params, bytes);
        t[W_RAW][r] = time_now() - t0;

        drop_cache(ck);
        t0 = time_now();
        ckpt_load_once(ck, &m2);
        t[R_CKPT_COLD][r] = time_now() - t0;
        check_same(&m, &m2, "ckpt read (cold)");
        t0 = time_now();
        ckpt_load_once(ck, &m2);
        t[R_CKPT_WARM][r] = time_now() - t0;
        check_same(&m, &m2, "ckpt read (warm)");

        drop_cache(raw);
        t0 = time_now();
        raw_read(raw, m2.params, bytes);
        t[R_RAW_COLD][r] = time_now() - t0;
        check_same(&m, &m2, "raw read (cold)");
        t0 = time_now();
        raw_read(raw, m2.params, bytes);
        t[R_RAW_WARM][r] = time_now() - t0;
        check_same(&m, &m2, "raw read (warm)");

    }
    unlink(ck), unlink(raw);
    if (own_dir) rmdir(dir);

    printf("== checkpoint I/O, %s: %zu parameters = %.1f MB (file %.1f MB), "
           "median of %d, in %s\n",
           preset, m.num_params, bytes / 1e6, file_bytes / 1e6, reps,
           own_dir ? "a temp folder" : dir);
    double med[NM];
    for (int k = 0; k < NM; k++) {
        med[k] = median(t[k], reps);
        printf("  %-15s %9.1f ms %7.2f GB/s\n", NAMES[k], med[k] * 1e3, bytes / med[k] / 1e9);
        printf("RESULT\tio.%s.%s.gbps\t%.4f\tGB/s\n", preset, NAMES[k], bytes / med[k] / 1e9);
        free(t[k]);
    }
    printf("  ckpt/raw: write %.2f, cold read %.2f, warm read %.2f (throughput ratios)\n",
           med[W_RAW] / med[W_CKPT], med[R_RAW_COLD] / med[R_CKPT_COLD],
           med[R_RAW_WARM] / med[R_CKPT_WARM]);
    printf("RESULT\tio.%s.bytes\t%zu\tbytes\n", preset, bytes);
    printf("RESULT\tio.%s.file_bytes\t%zu\tbytes\n", preset, file_bytes);
    gpt_free(&m);
    gpt_free(&m2);
    return 0;
}
