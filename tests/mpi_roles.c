/*
 * tests/mpi_roles.c — helper program for tests/t_mpi.sh: role assignment, failure paths
 * and idle waiting of common/mpi_util.c under a real mpirun (MPMD, one role per app
 * context):
 *     mpirun -np 1 build/tests/mpi_roles learner MODE [ARG] : -np 2 ... actor MODE [ARG] : ...
 * Modes:
 *   roles      PPO needs; check the role tables on every rank (lists, communicators,
 *              counts agree everywhere), mpi_max_double / mpi_sum_double / mpi_is_root,
 *              a poll that times out, and that waiting on two tags alternates between them
 *   offline    the same tables with offline needs (learners only)
 *   threads    (any roles) print the kernel thread counts of run.threads = 0 (auto), among
 *              all ranks and among the ranks of this one's phase
 *   fatal      the first reward rank calls mpi_fatal; everyone else waits for a message
 *   mpierror   the first actor sends to a rank that does not exist (through MPI_CHECK,
 *              so the error comes back from MPI and is reported); everyone else waits
 *   crash      the last actor writes to an unmapped address; everyone else waits
 *   idle DIR S every rank writes DIR/pid.<world rank>; the first learner waits (no MPI)
 *              until the file DIR/go exists, at most S seconds, then sends stop to all;
 *              the others wait for it in mpi_wait_any_message and print the CPU time
 *              they used while waiting
 *   silent     everyone waits for a message that never comes (the peer timeout fires)
 *   watchdog   the actors enter a guarded MPI_Barrier that the learner joins only after
 *              60 s (the watchdog fires first)
 * Exit 0 when the mode's checks pass; a failed check is an mpi_fatal (non-zero exit).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mpi_util.h"
#include "msg.h"
#include "util.h"

#define REQUIRE(cond)                                                                     \
    do {                                                                                  \
        if (!(cond)) mpi_fatal("check failed: %s", #cond);                                \
    } while (0)

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) == -1) {
    }
}

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void check_tables(const MpiRoles *r) {
    /* the lists partition the world, ascending, consistent with role_of */
    int seen = 0;
    for (int k = 0; k < ROLE_COUNT; k++) {
        for (int i = 0; i < r->count[k]; i++) {
            int w = r->ranks[k][i];
            REQUIRE(w >= 0 && w < r->world_size);
            REQUIRE(r->role_of[w] == (Role)k);
            if (i > 0) REQUIRE(r->ranks[k][i - 1] < w);
            seen++;
        }
    }
    REQUIRE(seen == r->world_size);
    REQUIRE(r->role_of[r->world_rank] == r->role);
    REQUIRE(r->ranks[r->role][r->role_rank] == r->world_rank);
    /* the role communicator holds exactly this role's ranks, in world order */
    int members = 0, world_of_root = -1, me = r->world_rank;
    int one = 1;
    MPI_CHECK(MPI_Allreduce(&one, &members, 1, MPI_INT, MPI_SUM, r->role_comm));
    REQUIRE(members == r->count[r->role] && members == r->role_size);
    MPI_CHECK(MPI_Allreduce(&me, &world_of_root, 1, MPI_INT, MPI_MIN, r->role_comm));
    REQUIRE(world_of_root == r->ranks[r->role][0]);
    REQUIRE(mpi_is_root(r->role_comm) == (r->role_rank == 0));
    /* every rank has the same view of the world */
    int sig = 0;
    for (int i = 0; i < r->world_size; i++) sig = sig * 3 + (int)r->role_of[i];
    int lo = 0, hi = 0;
    MPI_CHECK(MPI_Allreduce(&sig, &lo, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
    MPI_CHECK(MPI_Allreduce(&sig, &hi, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
    REQUIRE(lo == hi);
    /* timings combine with MAX, sums with SUM */
    double mx = mpi_max_double(MPI_COMM_WORLD, 1.5 * r->world_rank);
    REQUIRE(mx == 1.5 * (r->world_size - 1));
    double sum = mpi_sum_double(MPI_COMM_WORLD, 1.0);
    REQUIRE(sum == (double)r->world_size);
    REQUIRE(mpi_is_root(MPI_COMM_WORLD) == (r->world_rank == 0));
    char buf[128];
    printf("rank %d role %s role_rank %d/%d: %s\n", r->world_rank, mpi_role_name(r->role),
           r->role_rank, r->role_size, mpi_describe_rank(r->world_rank, buf, sizeof buf));
}

/* A poll with nothing pending times out; two busy tags are served alternately. */
static void check_waits(const MpiRoles *r) {
    MPI_Status st;
    int tags[2] = {TAG_CTRL, TAG_WEIGHTS_DATA};
    double t0 = time_now();
    REQUIRE(mpi_poll_any_message(MPI_COMM_WORLD, MPI_ANY_SOURCE, tags, 2, 0.05, &st) == -1);
    REQUIRE(time_now() - t0 >= 0.05);
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD)); /* nobody sends before everyone polled */
    int sender = r->ranks[ROLE_LEARNER][0];
    int target = r->count[ROLE_ACTOR] ? r->ranks[ROLE_ACTOR][0] : -1;
    if (r->world_rank == sender && target >= 0) {
        for (int i = 0; i < 3; i++) {
            unsigned char b = (unsigned char)i;
            mpi_send_bytes(MPI_COMM_WORLD, target, TAG_CTRL, &b, 1);
        }
        for (int i = 0; i < 3; i++) {
            unsigned char b = (unsigned char)(10 + i);
            mpi_send_bytes(MPI_COMM_WORLD, target, TAG_WEIGHTS_DATA, &b, 1);
        }
    }
    if (r->world_rank == target) {
        /* let all six arrive, then take them through the two-tag wait */
        int flag = 0;
        while (!flag) {
            MPI_CHECK(MPI_Iprobe(sender, TAG_WEIGHTS_DATA, MPI_COMM_WORLD, &flag, &st));
            sleep_s(0.001);
        }
        MsgBuf buf;
        msg_buf_init(&buf);
        int got[6];
        for (int i = 0; i < 6; i++) {
            got[i] = mpi_wait_any_message(MPI_COMM_WORLD, sender, tags, 2, &st);
            REQUIRE(mpi_recv_bytes(MPI_COMM_WORLD, &st, &buf, 16) == 1);
            /* within a tag, messages keep their order */
            if (got[i] == TAG_CTRL) REQUIRE(buf.data[0] < 3);
            else REQUIRE(buf.data[0] >= 10);
        }
        for (int i = 1; i < 6; i++) REQUIRE(got[i] != got[i - 1]); /* alternating */
        msg_buf_free(&buf);
        printf("two-tag wait alternated over 6 messages\n");
    }
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
}

/* Everyone but the failing rank waits here, as a real rank waiting for work would. */
static void wait_for_stop(void) {
    MPI_Status st;
    int tag = TAG_STOP;
    mpi_wait_any_message(MPI_COMM_WORLD, MPI_ANY_SOURCE, &tag, 1, &st);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: mpi_roles learner|actor|reward MODE [ARGS]\n");
        return 2;
    }
    Role role;
    if (mpi_role_parse(argv[1], &role)) {
        fprintf(stderr, "mpi_roles: unknown role '%s'\n", argv[1]);
        return 2;
    }
    const char *mode = argv[2];
    MpiRoles r;
    MpiRoleNeeds need = strcmp(mode, "offline") == 0 ? mpi_needs_offline("sft")
                                                       : mpi_needs_online("ppo");
    mpi_roles_init(&argc, &argv, role, strcmp(mode, "threads") ? &need : NULL, &r);
    char desc[128];
    if (r.world_rank == 0) printf("launch: %s\n", mpi_roles_describe(&r, desc, sizeof desc));
    fflush(stdout);

    if (strcmp(mode, "roles") == 0 || strcmp(mode, "offline") == 0) {
        check_tables(&r);
        check_waits(&r);
        fflush(stdout);
        MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
        if (r.world_rank == 0) printf("roles ok\n");
    } else if (strcmp(mode, "threads") == 0) {
        /* run.threads = 0 (auto) as this rank decided it; a set count is kept */
        REQUIRE(mpi_threads(5, 0) == 5 && strcmp(mpi_threads_why(5, 1), "run.threads") == 0);
        printf("rank %d threads %d (%s)\n", r.world_rank, mpi_threads(0, 0), mpi_threads_why(0, 0));
        printf("rank %d phased %d (%s)\n", r.world_rank, mpi_threads(0, 1), mpi_threads_why(0, 1));
    } else if (strcmp(mode, "fatal") == 0) {
        if (r.role == ROLE_REWARD && r.role_rank == 0)
            mpi_fatal("deliberate failure for the test (reward rank %d)", r.role_rank);
        wait_for_stop();
        mpi_fatal("a stop message arrived, which nobody sends in this mode");
    } else if (strcmp(mode, "mpierror") == 0) {
        if (r.role == ROLE_ACTOR && r.role_rank == 0) {
            char byte = 0;
            MPI_CHECK(MPI_Send(&byte, 1, MPI_BYTE, r.world_size + 5, TAG_CTRL, MPI_COMM_WORLD));
        }
        wait_for_stop();
        mpi_fatal("a stop message arrived, which nobody sends in this mode");
    } else if (strcmp(mode, "crash") == 0) {
        if (r.role == ROLE_ACTOR && r.role_rank == r.role_size - 1) {
            /* a real SIGSEGV: an unmapped address the compiler (and UBSan) cannot see
             * as NULL */
            volatile uintptr_t addr = 64;
            *(volatile int *)addr = 42;
        }
        wait_for_stop();
        mpi_fatal("a stop message arrived, which nobody sends in this mode");
    } else if (strcmp(mode, "idle") == 0) {
        if (argc < 5) mpi_fatal("idle needs DIR SECONDS");
        char path[4096];
        snprintf(path, sizeof path, "%s/pid.%d", argv[3], r.world_rank);
        FILE *f = fopen(path, "w");
        if (!f) mpi_fatal("cannot write %s", path);
        fprintf(f, "%d\n", (int)getpid());
        fclose(f);
        double secs = atof(argv[4]);
        if (r.world_rank == r.ranks[ROLE_LEARNER][0]) {
            snprintf(path, sizeof path, "%s/go", argv[3]);
            double t0 = time_now();
            while (access(path, F_OK) != 0) {
                if (time_now() - t0 > secs) mpi_fatal("no %s after %g s", path, secs);
                sleep_s(0.05);
            }
            MsgBuf buf;
            msg_buf_init(&buf);
            msg_encode_stop(&buf, "idle test over");
            MPI_Request *reqs = xmalloc((size_t)r.world_size * sizeof(MPI_Request));
            int n = 0;
            for (int w = 0; w < r.world_size; w++)
                if (w != r.world_rank)
                    MPI_CHECK(MPI_Isend(buf.data, (int)buf.len, MPI_BYTE, w, TAG_STOP,
                                        MPI_COMM_WORLD, &reqs[n++]));
            mpi_wait_all(n, reqs, "sending stop");
            free(reqs);
            msg_buf_free(&buf);
        } else {
            double c0 = cpu_seconds(), t0 = time_now();
            MPI_Status st;
            int tag = TAG_STOP;
            mpi_wait_any_message(MPI_COMM_WORLD, MPI_ANY_SOURCE, &tag, 1, &st);
            double cpu = cpu_seconds() - c0, wall = time_now() - t0;
            MsgBuf buf;
            Msg m;
            msg_buf_init(&buf);
            msg_init(&m);
            MsgLimits lim = {.vocab_size = 1, .max_seq_len = 1, .max_batch = 1};
            mpi_recv_msg(MPI_COMM_WORLD, &st, &buf, &lim, &m);
            REQUIRE(m.type == MSG_TYPE_STOP && strcmp(m.reason, "idle test over") == 0);
            printf("rank %d waited %.2f s using %.4f s of CPU (%.2f%% of a core)\n",
                   r.world_rank, wall, cpu, 100.0 * cpu / wall);
            msg_free(&m);
            msg_buf_free(&buf);
        }
    } else if (strcmp(mode, "silent") == 0) {
        wait_for_stop();
        mpi_fatal("a stop message arrived, which nobody sends in this mode");
    } else if (strcmp(mode, "watchdog") == 0) {
        if (r.role == ROLE_LEARNER) sleep_s(60);
        mpi_watch_begin("the test's MPI_Barrier");
        MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
        mpi_watch_end();
        mpi_fatal("the barrier completed, but the learner should still be asleep");
    } else {
        mpi_fatal("unknown mode '%s'", mode);
    }
    fflush(stdout);
    mpi_roles_free(&r);
    return 0;
}
