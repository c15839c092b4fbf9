/*
 * bench/bench_bcast.c — weight sync cost: the learner's way (build the HDF5 image of the
 * model with ckpt_image_build, MPI_Bcast it, every other rank validates and loads it with
 * ckpt_image_load) against a raw MPI_Bcast of the same number of parameter bytes.
 *
 *   mpirun -np 4 build/bench/bench_bcast [tiny|gpt2] [reps]
 *
 * Every rank holds a model of the preset (default gpt2 = 124M); rank 0's weights are
 * random, the others start from zeros. As in the PPO job, rank 0 builds every image in one
 * reused CkptArena and the other ranks receive into one reused buffer, so the first
 * repetition pays the fresh-page faults and the median is the steady state. Each of `reps` repetitions (default 5, at least 5):
 *   image: barrier; rank 0 builds the image; the length, then the bytes are broadcast;
 *          ranks > 0 load it (CRC and shape checks) — timed per phase and in total;
 *   params: barrier; the ppo.weight_sync = params path of common/online.h: the msgpack
 *          weights header, decoded and checked by every receiver, then the parameter
 *          buffer broadcast from rank 0's model straight into the others' (header and all);
 *   raw:   barrier; MPI_Bcast of num_params * 4 bytes straight from the parameter buffer.
 * The phases are separated by barriers (so the broadcast time does not include waiting for
 * rank 0's build); phase times are the slowest rank's (MPI_MAX); the median over repetitions is reported,
 * with GB/s = parameter bytes / seconds and the ratio image-total / raw. After every
 * image load each rank's parameters are compared with rank 0's (CRC-32); a difference
 * aborts the job. Broadcasts go in pieces of at most 1 GiB (MPI counts are int).
 * With more ranks than cores (oversubscribed) the numbers include the time-sharing of the
 * cores; run with OMPI_MCA_mpi_yield_when_idle=1 (bench/run.sh does). Output: a table on
 * rank 0 and RESULT lines for bench/run.sh. Not a test; never run by `make test`.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "gpt.h"
#include "mpi_util.h"
#include "msg.h"
#include "online.h"
#include "util.h"

#define MIN_REPS 5
#define BCAST_PIECE ((size_t)1 << 30)

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void bcast_bytes(void *buf, size_t n) {
    char *p = buf;
    for (size_t off = 0; off < n; off += BCAST_PIECE) {
        size_t k = n - off < BCAST_PIECE ? n - off : BCAST_PIECE;
        MPI_CHECK(MPI_Bcast(p + off, (int)k, MPI_BYTE, 0, MPI_COMM_WORLD));
    }
}

static double max_all(double x) {
    double y;
    MPI_CHECK(MPI_Allreduce(&x, &y, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD));
    return y;
}

enum { P_BUILD, P_BCAST, P_LOAD, P_TOTAL, P_PARAMS, P_RAW, NP };
static const char *PNAMES[NP] = {"image_build", "image_bcast", "image_load", "image_total",
                                 "params_total", "raw_bcast"};

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    int rank, size;
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    const char *preset = argc > 1 ? argv[1] : "gpt2";
    int reps = argc > 2 ? atoi(argv[2]) : MIN_REPS;
    GPTConfig c;
    if (argc > 3 || reps < 1 || reps > 1000 || gpt_config_preset(preset, &c) != 0 || size < 2) {
        if (rank == 0)
            fprintf(stderr, "usage: mpirun -np N (N >= 2) bench_bcast [tiny|gpt2] [reps >= %d]\n",
                    MIN_REPS);
        MPI_Finalize();
        return 2;
    }
    if (reps < MIN_REPS) reps = MIN_REPS;
    GPT m;
    gpt_init(&m, &c);
    if (rank == 0) gpt_init_weights(&m, 9);
    size_t bytes = m.num_params * sizeof(float);
    double *t[NP];
    for (int k = 0; k < NP; k++) t[k] = xcalloc((size_t)reps, sizeof(double));
    char err[ERRBUF_LEN];
    uint32_t crc_root = rank == 0 ? ckpt_crc32(0, m.params, bytes) : 0;
    MPI_CHECK(MPI_Bcast(&crc_root, 1, MPI_UINT32_T, 0, MPI_COMM_WORLD));
    uint64_t image_len = 0;
    CkptArena arena = {0}; /* rank 0's image, rebuilt in place, as learner/ppo.c does */
    void *recv = NULL;     /* the other ranks' receive buffer, kept between broadcasts */
    size_t recv_cap = 0;
    MsgBuf hdr;
    Msg hmsg;
    msg_buf_init(&hdr);
    msg_init(&hmsg);
    MsgLimits lim = {.vocab_size = c.vocab_size, .max_seq_len = c.max_seq_len, .max_batch = 1};

    for (int r = 0; r < reps; r++) {
        /* the learner's weight sync */
        if (rank != 0) memset(m.params, 0, bytes);
        MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
        double t0 = time_now();
        void *img = rank == 0 ? NULL : recv;
        size_t len = 0;
        if (rank == 0) {
            CkptMeta meta = {.stage = "ppo", .step = r, .policy_version = r, .model = c};
            if (ckpt_image_build(&meta, "policy", &m, &arena, &img, &len, err) != 0) mpi_fatal("%s", err);
        }
        MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD)); /* phases timed apart, not overlapped */
        double t1 = time_now();
        uint64_t len64 = len;
        MPI_CHECK(MPI_Bcast(&len64, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD));
        if (rank != 0 && len64 > recv_cap) { /* grown once, reused: as build/actor does */
            free(recv);
            recv = img = xmalloc((size_t)len64);
            recv_cap = (size_t)len64;
        }
        bcast_bytes(img, (size_t)len64);
        MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
        double t2 = time_now();
        if (rank != 0 && ckpt_image_load(img, (size_t)len64, "policy", &m, NULL, err) != 0)
            mpi_fatal("%s", err);
        double t3 = time_now();
        image_len = len64;
        t[P_BUILD][r] = max_all(t1 - t0);
        t[P_BCAST][r] = max_all(t2 - t1);
        t[P_LOAD][r] = max_all(t3 - t2);
        t[P_TOTAL][r] = max_all(t3 - t0);
        if (ckpt_crc32(0, m.params, bytes) != crc_root)
            mpi_fatal("rank %d: parameters after the image broadcast differ from rank 0's", rank);

        /* the two parameter-buffer broadcasts, in alternating order (neither always runs
         * right after the image phase) */
        for (int q = 0; q < 2; q++) {
            if ((q + r) % 2 == 0) {
                /* ppo.weight_sync = params (common/online.h): the msgpack weights header
                 * (here by MPI_Bcast; the job sends it to each actor), decoded and checked
                 * by the receivers, then the parameter buffer straight into theirs */
                if (rank != 0) memset(m.params, 0, bytes);
                MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
                t0 = time_now();
                uint64_t hlen = 0;
                if (rank == 0) {
                    msg_encode_weights(&hdr, r, bytes, online_layout_crc(&c),
                                       MSG_WEIGHTS_FORMAT_PARAMS);
                    hlen = hdr.len;
                }
                MPI_CHECK(MPI_Bcast(&hlen, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD));
                msg_buf_reserve(&hdr, (size_t)hlen);
                MPI_CHECK(MPI_Bcast(hdr.data, (int)hlen, MPI_BYTE, 0, MPI_COMM_WORLD));
                if (rank == 0) {
                    online_params_bcast(MPI_COMM_WORLD, m.params, m.num_params);
                } else {
                    if (msg_decode(hdr.data, (size_t)hlen, &lim, &hmsg, err) != 0)
                        mpi_fatal("%s", err);
                    online_weights_recv_params(MPI_COMM_WORLD, &hmsg, &m);
                }
                t[P_PARAMS][r] = max_all(time_now() - t0);
                if (ckpt_crc32(0, m.params, bytes) != crc_root)
                    mpi_fatal("rank %d: parameters after the params broadcast differ", rank);
            } else {
                /* raw broadcast of the same parameter bytes */
                if (rank != 0) memset(m.params, 0, bytes);
                MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
                t0 = time_now();
                bcast_bytes(m.params, bytes);
                t[P_RAW][r] = max_all(time_now() - t0);
                if (ckpt_crc32(0, m.params, bytes) != crc_root)
                    mpi_fatal("rank %d: parameters after the raw broadcast differ", rank);
            }
        }
    }

    if (rank == 0) {
        printf("== weight sync, %s: %.1f MB of parameters, image %.1f MB, %d ranks, median of "
               "%d (slowest rank)\n",
               preset, bytes / 1e6, image_len / 1e6, size, reps);
        double med[NP];
        for (int k = 0; k < NP; k++) {
            med[k] = median(t[k], reps);
            printf("  %-12s %9.1f ms %7.2f GB/s\n", PNAMES[k], med[k] * 1e3, bytes / med[k] / 1e9);
            printf("RESULT\tbcast.%s.np%d.%s.ms\t%.3f\tms\n", preset, size, PNAMES[k],
                   med[k] * 1e3);
        }
        printf("  image total / raw bcast: %.2fx the time\n", med[P_TOTAL] / med[P_RAW]);
        printf("RESULT\tbcast.%s.np%d.image_over_raw\t%.3f\tratio\n", preset, size,
               med[P_TOTAL] / med[P_RAW]);
        printf("  params (header + bcast into the model) / raw bcast: %.2fx the time\n",
               med[P_PARAMS] / med[P_RAW]);
        printf("RESULT\tbcast.%s.np%d.params_over_raw\t%.3f\tratio\n", preset, size,
               med[P_PARAMS] / med[P_RAW]);
        fflush(stdout);
    }
    for (int k = 0; k < NP; k++) free(t[k]);
    free(recv);
    msg_buf_free(&hdr);
    msg_free(&hmsg);
    ckpt_arena_free(&arena);
    gpt_free(&m);
    MPI_Finalize();
    return 0;
}
