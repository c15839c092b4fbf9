/*
 * common/mpi_util.c — roles, fatal errors, non-spinning waits and byte transport over MPI.
 * See mpi_util.h for how programs use it. The process-wide state here (this rank's
 * number and role for messages, the peer timeout, the watchdog) is set by
 * mpi_roles_init; the functions work before it too, printing "rank ?".
 */
#include "mpi_util.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ops.h"
#include "util.h"

#define NAP_FIRST_NS 50000L  /* first sleep between polls: 50 us */
#define NAP_MAX_NS 2000000L  /* longest: 2 ms */
#define DEFAULT_PEER_TIMEOUT 600.0

static int g_rank = -1;
static int g_role = -1;
static const MpiRoles *g_roles;                        /* for naming peers */
static _Atomic double g_peer_timeout = DEFAULT_PEER_TIMEOUT;
/* where g_peer_timeout came from, for the messages that tell the user what to raise */
static _Atomic(const char *) g_timeout_src = "the default; run.peer_timeout";
static _Atomic unsigned long long g_bytes_in[TAG_LAST_ - TAG_SCORE_REQ]; /* by tag */
static char g_prefix[96] = "rlhf-c: [rank ? role ?] "; /* also read by the signal handler */

// ----------------------------------------------------------------------------------------
// Names

static const char *const role_names[ROLE_COUNT] = {"learner", "actor", "reward"};
static const char *const role_programs[ROLE_COUNT] = {"build/learner", "build/actor",
                                                      "build/reward_server"};

const char *mpi_role_name(Role r) {
    return ((int)r >= 0 && (int)r < ROLE_COUNT) ? role_names[r] : "?";
}

int mpi_role_parse(const char *s, Role *out) {
    for (int r = 0; r < ROLE_COUNT; r++)
        if (strcmp(s, role_names[r]) == 0) {
            *out = (Role)r;
            return 0;
        }
    if (strcmp(s, "reward_server") == 0) {
        *out = ROLE_REWARD;
        return 0;
    }
    return -1;
}

static const char *const tag_names[] = {
    "TAG_SCORE_REQ", "TAG_SCORE_REP", "TAG_ROLLOUT", "TAG_WEIGHTS_HDR",
    "TAG_WEIGHTS_DATA", "TAG_STOP", "TAG_CTRL",
};

const char *mpi_tag_name(int tag) {
    if (tag >= TAG_SCORE_REQ && tag < TAG_LAST_) return tag_names[tag - TAG_SCORE_REQ];
    static char other[32];
    snprintf(other, sizeof other, "tag %d", tag);
    return other;
}

MsgType mpi_tag_msg_type(int tag) {
    switch (tag) {
    case TAG_SCORE_REQ: return MSG_TYPE_SCORE_REQ;
    case TAG_SCORE_REP: return MSG_TYPE_SCORE_REP;
    case TAG_ROLLOUT: return MSG_TYPE_ROLLOUT;
    case TAG_WEIGHTS_HDR: return MSG_TYPE_WEIGHTS;
    case TAG_STOP: return MSG_TYPE_STOP;
    default: return MSG_TYPE_NONE;
    }
}

char *mpi_describe_rank(int world_rank, char *buf, size_t n) {
    if (world_rank == MPI_ANY_SOURCE) {
        snprintf(buf, n, "any rank");
        return buf;
    }
    const MpiRoles *r = g_roles;
    if (r && world_rank >= 0 && world_rank < r->world_size) {
        Role role = r->role_of[world_rank];
        int idx = 0;
        while (idx < r->count[role] && r->ranks[role][idx] != world_rank) idx++;
        snprintf(buf, n, "world rank %d (%s %d)", world_rank, mpi_role_name(role), idx);
    } else {
        snprintf(buf, n, "world rank %d", world_rank);
    }
    return buf;
}

char *mpi_roles_describe(const MpiRoles *roles, char *buf, size_t n) {
    snprintf(buf, n, "%d learner, %d actor, %d reward", roles->count[ROLE_LEARNER],
             roles->count[ROLE_ACTOR], roles->count[ROLE_REWARD]);
    return buf;
}

/* The world rank of rank `rank` of comm, for messages — most of them about to abort the
 * job, so a failing group call falls back to the comm rank instead of failing again. */
static int world_rank_of(MPI_Comm comm, int rank) {
    if (comm == MPI_COMM_WORLD || rank < 0) return rank;
    MPI_Group g, w;
    int out = rank;
    if (MPI_Comm_group(comm, &g) != MPI_SUCCESS) return rank;
    if (MPI_Comm_group(MPI_COMM_WORLD, &w) == MPI_SUCCESS) {
        if (MPI_Group_translate_ranks(g, 1, &rank, w, &out) != MPI_SUCCESS) out = rank;
        (void)MPI_Group_free(&w); /* a leaked group handle cannot change the message */
    }
    (void)MPI_Group_free(&g);
    return out;
}

static char *describe_peer(MPI_Comm comm, int rank, char *buf, size_t n) {
    return mpi_describe_rank(world_rank_of(comm, rank), buf, n);
}

// ----------------------------------------------------------------------------------------
// Failing loudly

/* The failure path itself: MPI_CHECK here would recurse, so a query that fails counts as
 * "not initialised" and the process at least exits. */
void mpi_abort_job(int code) {
    int init = 0, fin = 0;
    if (MPI_Initialized(&init) != MPI_SUCCESS) init = 0;
    if (init && MPI_Finalized(&fin) != MPI_SUCCESS) fin = 1;
    if (init && !fin) (void)MPI_Abort(MPI_COMM_WORLD, code); /* does not return on success */
    exit(code);
}

/* fatal() (util.h) inside an MPI job: the same line and the same abort as mpi_fatal. */
static void fatal_hook(const char *file, int line, const char *msg) {
    mpi_fatal_at(file, line, "%s", msg);
}

void mpi_fatal_at(const char *file, int line, const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fflush(stdout);
    fprintf(stderr, "%s%s:%d: %s\n", g_prefix, file, line, msg);
    fflush(stderr);
    mpi_abort_job(1);
}

void mpi_check_fail(int rc, const char *call, const char *file, int line) {
    char s[MPI_MAX_ERROR_STRING + 1];
    int len = 0;
    if (MPI_Error_string(rc, s, &len) != MPI_SUCCESS) len = snprintf(s, sizeof s, "code %d", rc);
    s[len < (int)sizeof s ? len : (int)sizeof s - 1] = '\0';
    mpi_fatal_at(file, line, "MPI error: %s (in %s)", s, call);
}

// ----------------------------------------------------------------------------------------
// Fatal signals: say which rank died, then let the previous handler do its job.

static const int crash_sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
static const char *const crash_names[] = {"SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGABRT"};
#define N_CRASH_SIGS 5
static struct sigaction crash_old[N_CRASH_SIGS];
static char crash_stack[1 << 16]; /* so a stack overflow can still be reported */

/* Append s to buf[*len] (async-signal-safe; truncates quietly). */
static void crash_cat(char *buf, size_t cap, size_t *len, const char *s) {
    while (*s && *len + 1 < cap) buf[(*len)++] = *s++;
    buf[*len] = '\0';
}

static void crash_handler(int sig, siginfo_t *info, void *uctx) {
    (void)uctx;
    int k = 0;
    while (k < N_CRASH_SIGS && crash_sigs[k] != sig) k++;
    if (k == N_CRASH_SIGS) return;
    char num[16];
    int i = (int)sizeof num - 1, v = sig;
    num[i] = '\0';
    do num[--i] = (char)('0' + v % 10), v /= 10;
    while (v > 0 && i > 0);
    /* One write() for the whole line: mpirun merges the ranks' output chunk by chunk, so
     * a line written in pieces can come out split by another rank's text. */
    char line[256];
    size_t n = 0;
    crash_cat(line, sizeof line, &n, g_prefix);
    crash_cat(line, sizeof line, &n, "crashed with signal ");
    crash_cat(line, sizeof line, &n, num + i);
    crash_cat(line, sizeof line, &n, " (");
    crash_cat(line, sizeof line, &n, crash_names[k]);
    crash_cat(line, sizeof line, &n, "); the job will be aborted\n");
    const char *p = line;
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w <= 0) break;
        p += w;
        n -= (size_t)w;
    }
    sigaction(sig, &crash_old[k], NULL);
    /* A signal sent by a process (abort, kill) is sent again, to the old handler, once we
     * return; a real fault happens again when the instruction re-runs. */
    if (!info || info->si_code <= 0) raise(sig);
}

static void install_crash_handlers(void) {
    stack_t ss;
    if (sigaltstack(NULL, &ss) == 0 && (ss.ss_flags & SS_DISABLE)) {
        ss.ss_sp = crash_stack;
        ss.ss_size = sizeof crash_stack;
        ss.ss_flags = 0;
        sigaltstack(&ss, NULL);
    }
    for (int k = 0; k < N_CRASH_SIGS; k++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = crash_handler;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        sigaction(crash_sigs[k], &sa, &crash_old[k]);
    }
    /* A write past a file-size limit (ulimit -f, or a quota set that way) then fails with
     * EFBIG and is reported like a full disk ("cannot write ..., the previous checkpoint is
     * untouched") instead of killing the rank with SIGXFSZ halfway through a file. */
    signal(SIGXFSZ, SIG_IGN);
}

// ----------------------------------------------------------------------------------------
// Roles

MpiRoleNeeds mpi_needs_online(const char *stage) {
    MpiRoleNeeds n = {.stage = stage, .min = {1, 1, 1}, .max = {-1, -1, -1}};
    return n;
}

MpiRoleNeeds mpi_needs_offline(const char *stage) {
    MpiRoleNeeds n = {.stage = stage, .min = {1, 0, 0}, .max = {-1, 0, 0}};
    return n;
}

/* Append to a message buffer (keeps it NUL-terminated, truncates quietly). */
static void cat(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void cat(char *buf, size_t n, const char *fmt, ...) {
    size_t l = strlen(buf);
    if (l + 1 >= n) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + l, n - l, fmt, ap);
    va_end(ap);
}

/* 0 if the counts satisfy needs, else -1 with the whole explanation in msg. */
static int check_needs(const MpiRoles *r, const MpiRoleNeeds *need, char *msg, size_t n) {
    const char *stage = need->stage ? need->stage : "this";
    char problems[512] = "";
    for (int k = 0; k < ROLE_COUNT; k++) {
        if (r->count[k] < need->min[k])
            cat(problems, sizeof problems, "%sat least %d %s rank%s", problems[0] ? ", " : "",
                need->min[k], role_names[k], need->min[k] == 1 ? "" : "s");
        else if (need->max[k] >= 0 && r->count[k] > need->max[k]) {
            if (need->max[k] == 0)
                cat(problems, sizeof problems, "%sno %s ranks", problems[0] ? ", " : "",
                    role_names[k]);
            else
                cat(problems, sizeof problems, "%sat most %d %s ranks", problems[0] ? ", " : "",
                    need->max[k], role_names[k]);
        }
    }
    if (!problems[0]) return 0;
    msg[0] = '\0';
    cat(msg, n,
        "rlhf-c: error: stage '%s' was launched with %d learner, %d actor and %d reward "
        "ranks (%d in all), but it needs %s.\n",
        stage, r->count[ROLE_LEARNER], r->count[ROLE_ACTOR], r->count[ROLE_REWARD],
        r->world_size, problems);
    int online = need->min[ROLE_ACTOR] > 0 || need->min[ROLE_REWARD] > 0;
    if (online) {
        cat(msg, n,
            "rlhf-c: start every role in ONE mpirun (MPMD, ':'-separated), e.g.\n"
            "rlhf-c:   mpirun -np %d %s %s cfg.ini : -np %d %s cfg.ini : -np %d %s cfg.ini\n",
            need->min[ROLE_LEARNER] > 1 ? need->min[ROLE_LEARNER] : 1,
            role_programs[ROLE_LEARNER], stage,
            need->min[ROLE_REWARD] > 1 ? need->min[ROLE_REWARD] : 1, role_programs[ROLE_REWARD],
            need->min[ROLE_ACTOR] > 2 ? need->min[ROLE_ACTOR] : 2, role_programs[ROLE_ACTOR]);
    } else {
        cat(msg, n,
            "rlhf-c: offline stages run on learner ranks alone (data-parallel), e.g.\n"
            "rlhf-c:   mpirun -np 2 %s %s cfg.ini\n",
            role_programs[ROLE_LEARNER], stage);
    }
    return -1;
}

/* The kernel threads of run.threads = 0: the CPUs this rank may run on (its affinity
 * mask, which mpirun --bind-to / srun --cpus-per-task set) divided by the most ranks of
 * the job on this node that share one of them, at least 1. Unbound ranks on a 16-core
 * node: 4 ranks -> 4 threads each; ranks bound to 4 cores each -> 4; to 1 core -> 1.
 * Counted twice: among all ranks, and among the ranks of this rank's phase only
 * (learners; actors and reward servers), for a job whose phases take turns (synchronous
 * PPO / GRPO: the learner trains while the others wait for weights, and waits while
 * they generate and score), where the ranks of the other phase sleep while this one
 * computes. Collective over the world (every program calls it from mpi_roles_init). */
static int g_auto_threads[2] = {1, 1}; /* [phased] */
static char g_auto_why[2][200] = {"auto: no MPI launch", "auto: no MPI launch"};

static void auto_threads_init(const MpiRoles *r) {
    struct {
        cpu_set_t mask;
        int learner;
    } mine, *all;
    memset(&mine, 0, sizeof mine);
    if (sched_getaffinity(0, sizeof mine.mask, &mine.mask) != 0) { /* no mask: every CPU */
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        for (long c = 0; c < n && c < CPU_SETSIZE; c++) CPU_SET((int)c, &mine.mask);
    }
    mine.learner = r->role == ROLE_LEARNER;
    MPI_Comm node;
    MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, r->world_rank,
                                  MPI_INFO_NULL, &node));
    /* (inherited from MPI_COMM_WORLD already; set anyway, as for every communicator here) */
    MPI_CHECK(MPI_Comm_set_errhandler(node, MPI_ERRORS_RETURN));
    int nn;
    MPI_CHECK(MPI_Comm_size(node, &nn));
    int node_rank;
    MPI_CHECK(MPI_Comm_rank(node, &node_rank));
    all = xmalloc((size_t)nn * sizeof *all);
    MPI_CHECK(MPI_Allgather(&mine, (int)sizeof mine, MPI_BYTE, all, (int)sizeof mine, MPI_BYTE,
                            node));
    MPI_CHECK(MPI_Comm_free(&node));
    int cpus = CPU_COUNT(&mine.mask), share[2] = {1, 1};
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, &mine.mask)) continue;
        int k[2] = {0, 0};
        for (int i = 0; i < nn; i++)
            if (CPU_ISSET(c, &all[i].mask)) {
                k[0]++;
                k[1] += all[i].learner == mine.learner;
            }
        for (int ph = 0; ph < 2; ph++) share[ph] = k[ph] > share[ph] ? k[ph] : share[ph];
    }
    free(all);
    if (cpus < 1) cpus = 1;
    for (int ph = 0; ph < 2; ph++) {
        g_auto_threads[ph] = mpi_threads_auto(cpus, share[ph]);
        int capped = cpus / share[ph] > OPS_MAX_THREADS;
        snprintf(g_auto_why[ph], sizeof g_auto_why[ph],
                 "auto: %d CPU%s for this rank, shared by %d rank%s of the job%s on this node%s",
                 cpus, cpus == 1 ? "" : "s", share[ph], share[ph] == 1 ? "" : "s",
                 !ph ? "" : mine.learner ? " that train" : " that generate or score",
                 capped ? "; capped at the kernel pool's size" : "");
    }
    /* once per node: the CPUs left unused are worth a line in the job's output */
    if (node_rank == 0 && cpus / share[0] > OPS_MAX_THREADS)
        fprintf(stderr, "rlhf-c: note: run.threads = 0 found %d CPUs per rank on this node; "
                "each rank uses at most %d kernel threads: start more ranks per node (or bind "
                "them to fewer CPUs) to use the rest\n", cpus / share[0], OPS_MAX_THREADS);
}

int mpi_threads_auto(int cpus, int share) {
    int n = share > 0 ? cpus / share : cpus;
    if (n < 1) n = 1;
    return n > OPS_MAX_THREADS ? OPS_MAX_THREADS : n;
}

int mpi_threads(int configured, int phased) {
    return configured > 0 ? configured : g_auto_threads[phased != 0];
}

const char *mpi_threads_why(int configured, int phased) {
    return configured > 0 ? "run.threads" : g_auto_why[phased != 0];
}

void mpi_roles_init(int *argc, char ***argv, Role my_role, const MpiRoleNeeds *needs,
                    MpiRoles *r) {
    ASSERT((int)my_role >= 0 && (int)my_role < ROLE_COUNT);
    memset(r, 0, sizeof *r);
    r->role_comm = MPI_COMM_NULL;
    int init = 0;
    if (MPI_Initialized(&init) != MPI_SUCCESS) init = 0;
    if (!init && MPI_Init(argc, argv) != MPI_SUCCESS) {
        fprintf(stderr, "rlhf-c: error: MPI_Init failed; start the program with mpirun\n");
        exit(1);
    }
    MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    fatal_set_hook(fatal_hook);
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &r->world_rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &r->world_size));
    r->role = my_role;
    g_rank = r->world_rank;
    g_role = (int)my_role;
    snprintf(g_prefix, sizeof g_prefix, "rlhf-c: [rank %d role %s] ", g_rank,
             role_names[my_role]);
    install_crash_handlers();

    const char *env = getenv("RLHF_PEER_TIMEOUT");
    if (env && *env) {
        char *end;
        errno = 0;
        double v = strtod(env, &end);
        if (end == env || *end || errno || !isfinite(v) || v < 0)
            mpi_fatal("RLHF_PEER_TIMEOUT='%s' is not a number of seconds >= 0 (0: no timeout)",
                      env);
        g_peer_timeout = v;
        g_timeout_src = "RLHF_PEER_TIMEOUT in the environment";
    }

    int mine = (int)my_role;
    int *all = xmalloc((size_t)r->world_size * sizeof(int));
    MPI_CHECK(MPI_Allgather(&mine, 1, MPI_INT, all, 1, MPI_INT, MPI_COMM_WORLD));
    r->role_of = xmalloc((size_t)r->world_size * sizeof(Role));
    for (int i = 0; i < r->world_size; i++) {
        if (all[i] < 0 || all[i] >= ROLE_COUNT)
            mpi_fatal("world rank %d announced role %d, which this build does not know: run "
                      "the same rlhf-c build on every rank", i, all[i]);
        r->role_of[i] = (Role)all[i];
        r->count[all[i]]++;
    }
    for (int k = 0; k < ROLE_COUNT; k++) {
        r->ranks[k] = xmalloc((size_t)(r->count[k] ? r->count[k] : 1) * sizeof(int));
        int c = 0;
        for (int i = 0; i < r->world_size; i++)
            if (all[i] == k) r->ranks[k][c++] = i; /* ascending world rank */
    }
    free(all);
    /* key = world rank: role ranks are ordered like world ranks */
    MPI_CHECK(MPI_Comm_split(MPI_COMM_WORLD, mine, r->world_rank, &r->role_comm));
    MPI_CHECK(MPI_Comm_set_errhandler(r->role_comm, MPI_ERRORS_RETURN));
    MPI_CHECK(MPI_Comm_rank(r->role_comm, &r->role_rank));
    MPI_CHECK(MPI_Comm_size(r->role_comm, &r->role_size));
    ASSERT(r->role_size == r->count[my_role]);
    ASSERT(r->ranks[my_role][r->role_rank] == r->world_rank);
    g_roles = r;
    auto_threads_init(r);

    char msg[2048];
    if (needs && check_needs(r, needs, msg, sizeof msg)) {
        /* every rank sees the same counts, so every rank takes this branch */
        if (r->world_rank == 0) {
            fflush(stdout);
            fputs(msg, stderr);
            fflush(stderr);
        }
        mpi_roles_free(r);
        exit(1);
    }
}

// ----------------------------------------------------------------------------------------
// Peer timeout and watchdog

void mpi_set_peer_timeout(double seconds) { g_peer_timeout = seconds > 0 ? seconds : 0; }
double mpi_peer_timeout(void) { return g_peer_timeout; }

void mpi_config_peer_timeout(double seconds) {
    if (getenv("RLHF_PEER_TIMEOUT") && *getenv("RLHF_PEER_TIMEOUT")) return; /* it wins */
    mpi_set_peer_timeout(seconds);
    g_timeout_src = "run.peer_timeout";
}

static void nap(long *ns) {
    struct timespec ts = {0, *ns};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
    *ns = *ns * 2 > NAP_MAX_NS ? NAP_MAX_NS : *ns * 2;
}

static pthread_t wd_thread;
static int wd_started;
static atomic_llong wd_since_ns;            /* 0: not armed */
static _Atomic(const char *) wd_what;
static atomic_int wd_quit;

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *wd_main(void *arg) {
    (void)arg;
    while (!atomic_load(&wd_quit)) {
        struct timespec ts = {0, 100000000L}; /* 0.1 s */
        nanosleep(&ts, NULL);
        long long since = atomic_load(&wd_since_ns);
        double to = g_peer_timeout;
        if (since && to > 0 && (double)(now_ns() - since) > to * 1e9) {
            const char *what = atomic_load(&wd_what);
            /* MPI may not be called from this thread: report and leave; mpirun sees a
             * process exit without MPI_Finalize and aborts the whole job. */
            fprintf(stderr,
                    "%sno progress for %.0f s in %s: a peer has stopped responding; "
                    "exiting so that mpirun aborts the job (peer timeout %g s, %s)\n",
                    g_prefix, (double)(now_ns() - since) * 1e-9, what ? what : "?", to,
                    g_timeout_src);
            fflush(stderr);
            _exit(1);
        }
    }
    return NULL;
}

void mpi_watch_begin(const char *what) {
    if (!wd_started) {
        atomic_store(&wd_quit, 0);
        int rc = pthread_create(&wd_thread, NULL, wd_main, NULL);
        if (rc) mpi_fatal("cannot start the watchdog thread: %s", strerror(rc));
        wd_started = 1;
    }
    ASSERT(atomic_load(&wd_since_ns) == 0); /* not nested */
    atomic_store(&wd_what, what);
    atomic_store(&wd_since_ns, now_ns());
}

void mpi_watch_end(void) { atomic_store(&wd_since_ns, 0); }

static void wd_stop(void) {
    if (!wd_started) return;
    atomic_store(&wd_quit, 1);
    pthread_join(wd_thread, NULL);
    wd_started = 0;
    atomic_store(&wd_since_ns, 0);
}

void mpi_roles_free(MpiRoles *r) {
    if (!r) return;
    wd_stop();
    int fin = 0;
    MPI_CHECK(MPI_Finalized(&fin));
    if (!fin && r->role_comm != MPI_COMM_NULL) MPI_CHECK(MPI_Comm_free(&r->role_comm));
    for (int k = 0; k < ROLE_COUNT; k++) free(r->ranks[k]);
    free(r->role_of);
    if (g_roles == r) g_roles = NULL;
    memset(r, 0, sizeof *r);
    r->role_comm = MPI_COMM_NULL;
    int init = 0;
    MPI_CHECK(MPI_Initialized(&init));
    if (init && !fin) {
        fatal_set_hook(NULL); /* after MPI_Finalize a fatal() can only exit this process */
        MPI_CHECK(MPI_Finalize());
    }
}

// ----------------------------------------------------------------------------------------
// Waiting

/* "TAG_SCORE_REP or TAG_STOP" into buf */
static char *describe_tags(const int *tags, int ntags, char *buf, size_t n) {
    buf[0] = '\0';
    if (ntags == 0) cat(buf, n, "any tag");
    for (int i = 0; i < ntags; i++)
        cat(buf, n, "%s%s", i == 0 ? "" : i == ntags - 1 ? " or " : ", ", mpi_tag_name(tags[i]));
    return buf;
}

/* One probe of every tag, starting after the tag that matched last time. */
static int probe_once(MPI_Comm comm, int source, const int *tags, int ntags, MPI_Status *st) {
    static int rot = 0;
    int flag = 0;
    if (ntags == 0) {
        MPI_CHECK(MPI_Iprobe(source, MPI_ANY_TAG, comm, &flag, st));
        return flag ? st->MPI_TAG : -1;
    }
    for (int i = 0; i < ntags; i++) {
        int k = (rot + i) % ntags;
        MPI_CHECK(MPI_Iprobe(source, tags[k], comm, &flag, st));
        if (flag) {
            rot = k + 1;
            return tags[k];
        }
    }
    return -1;
}

int mpi_poll_any_message(MPI_Comm comm, int source, const int *tags, int ntags,
                         double timeout_s, MPI_Status *st) {
    ASSERT(ntags >= 0 && (ntags == 0 || tags));
    double t0 = time_now();
    long ns = NAP_FIRST_NS;
    for (;;) {
        int tag = probe_once(comm, source, tags, ntags, st);
        if (tag >= 0) return tag;
        if (time_now() - t0 >= timeout_s) return -1;
        nap(&ns);
    }
}

int mpi_wait_any_message_at(const char *file, int line, MPI_Comm comm, int source,
                            const int *tags, int ntags, MPI_Status *st) {
    ASSERT(ntags >= 0 && (ntags == 0 || tags));
    double t0 = time_now();
    long ns = NAP_FIRST_NS;
    for (;;) {
        int tag = probe_once(comm, source, tags, ntags, st);
        if (tag >= 0) return tag;
        double to = g_peer_timeout, waited = time_now() - t0;
        if (to > 0 && waited > to) {
            char tb[256], pb[64];
            mpi_fatal_at(file, line, "waited %.0f s for a message (%s) from %s and none came: a peer has "
                      "died or is stuck. If it is only slow, raise the peer timeout "
                      "(now %g s, %s)",
                      waited, describe_tags(tags, ntags, tb, sizeof tb),
                      describe_peer(comm, source, pb, sizeof pb), to, g_timeout_src);
        }
        nap(&ns);
    }
}

void mpi_wait_request_at(const char *file, int line, MPI_Request *req, MPI_Status *st,
                         const char *what) {
    double t0 = time_now();
    long ns = NAP_FIRST_NS;
    for (;;) {
        int flag = 0;
        MPI_CHECK(MPI_Test(req, &flag, st ? st : MPI_STATUS_IGNORE));
        if (flag) return;
        double to = g_peer_timeout, waited = time_now() - t0;
        if (to > 0 && waited > to)
            mpi_fatal_at(file, line, "%s: not complete after %.0f s: the peer has died or is stuck (peer "
                      "timeout %g s, %s)", what, waited, to, g_timeout_src);
        nap(&ns);
    }
}

void mpi_wait_all_at(const char *file, int line, int n, MPI_Request *reqs, const char *what) {
    double t0 = time_now();
    long ns = NAP_FIRST_NS;
    for (;;) {
        int flag = 0;
        MPI_CHECK(MPI_Testall(n, reqs, &flag, MPI_STATUSES_IGNORE));
        if (flag) return;
        double to = g_peer_timeout, waited = time_now() - t0;
        if (to > 0 && waited > to)
            mpi_fatal_at(file, line, "%s: not complete after %.0f s: a peer has died or is stuck (peer "
                      "timeout %g s, %s)", what, waited, to, g_timeout_src);
        nap(&ns);
    }
}

// ----------------------------------------------------------------------------------------
// Bytes and messages

void mpi_send_bytes_at(const char *file, int line, MPI_Comm comm, int dest, int tag,
                       const void *data, size_t len) {
    char pb[64], what[160];
    if (len > (size_t)INT_MAX)
        mpi_fatal_at(file, line, "cannot send %zu bytes with %s to %s in one message (MPI counts are int): "
                  "split the payload", len, mpi_tag_name(tag), describe_peer(comm, dest, pb, sizeof pb));
    MPI_Request req;
    MPI_CHECK(MPI_Isend(data, (int)len, MPI_BYTE, dest, tag, comm, &req));
    snprintf(what, sizeof what, "sending %s (%zu bytes) to %s", mpi_tag_name(tag), len,
             describe_peer(comm, dest, pb, sizeof pb));
    mpi_wait_request_at(file, line, &req, NULL, what);
}

size_t mpi_recv_bytes_at(const char *file, int line, MPI_Comm comm, const MPI_Status *st,
                         MsgBuf *buf, size_t max_bytes) {
    int count = 0;
    char pb[64];
    MPI_Status s = *st;
    MPI_CHECK(MPI_Get_count(&s, MPI_BYTE, &count));
    if (count == MPI_UNDEFINED || count < 0)
        mpi_fatal_at(file, line, "message with %s from %s has no byte count", mpi_tag_name(st->MPI_TAG),
                  describe_peer(comm, st->MPI_SOURCE, pb, sizeof pb));
    if ((size_t)count > max_bytes)
        mpi_fatal_at(file, line, "message with %s from %s is %d bytes, more than the %zu this receiver "
                  "accepts: sender and receiver disagree on the limits (same config on "
                  "every rank?)", mpi_tag_name(st->MPI_TAG),
                  describe_peer(comm, st->MPI_SOURCE, pb, sizeof pb), count, max_bytes);
    msg_buf_reserve(buf, (size_t)count);
    MPI_CHECK(MPI_Recv(buf->data, count, MPI_BYTE, st->MPI_SOURCE, st->MPI_TAG, comm,
                       MPI_STATUS_IGNORE));
    buf->len = (size_t)count;
    mpi_bytes_count(st->MPI_TAG, buf->len);
    return buf->len;
}

void mpi_recv_msg_at(const char *file, int line, MPI_Comm comm, const MPI_Status *st,
                     MsgBuf *buf, const MsgLimits *lim, Msg *out) {
    char err[ERRBUF_LEN], pb[64];
    mpi_recv_bytes_at(file, line, comm, st, buf, msg_max_bytes(lim));
    if (msg_decode(buf->data, buf->len, lim, out, err))
        mpi_fatal_at(file, line, "bad message from %s (%s, %zu bytes): %s",
                  describe_peer(comm, st->MPI_SOURCE, pb, sizeof pb),
                  mpi_tag_name(st->MPI_TAG), buf->len, err);
    MsgType want = mpi_tag_msg_type(st->MPI_TAG);
    if (want != MSG_TYPE_NONE && out->type != want)
        mpi_fatal_at(file, line, "%s sent a %s message with %s, which carries %s messages",
                  describe_peer(comm, st->MPI_SOURCE, pb, sizeof pb),
                  msg_type_name(out->type), mpi_tag_name(st->MPI_TAG), msg_type_name(want));
}

// ----------------------------------------------------------------------------------------
// Progress and timing

int mpi_is_root(MPI_Comm comm) {
    int rank = -1;
    MPI_CHECK(MPI_Comm_rank(comm, &rank));
    return rank == 0;
}

double mpi_max_double(MPI_Comm comm, double x) {
    double y = x;
    MPI_CHECK(MPI_Allreduce(&x, &y, 1, MPI_DOUBLE, MPI_MAX, comm));
    return y;
}

double mpi_sum_double(MPI_Comm comm, double x) {
    double y = x;
    MPI_CHECK(MPI_Allreduce(&x, &y, 1, MPI_DOUBLE, MPI_SUM, comm));
    return y;
}

// ----------------------------------------------------------------------------------------
// Traffic

void mpi_bytes_count(int tag, size_t n) {
    if (tag >= TAG_SCORE_REQ && tag < TAG_LAST_) g_bytes_in[tag - TAG_SCORE_REQ] += n;
}

void mpi_bytes_total(MPI_Comm comm, int root, unsigned long long *out) {
    unsigned long long mine[TAG_LAST_ - TAG_SCORE_REQ];
    for (int i = 0; i < TAG_LAST_ - TAG_SCORE_REQ; i++) mine[i] = g_bytes_in[i];
    mpi_watch_begin("adding up the bytes received (end of the run)");
    MPI_CHECK(MPI_Reduce(mine, out, TAG_LAST_ - TAG_SCORE_REQ, MPI_UNSIGNED_LONG_LONG, MPI_SUM,
                         root, comm));
    mpi_watch_end();
}
