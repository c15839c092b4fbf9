/*
 * common/mpi_util.h — how the ranks of an rlhf-c job find each other, wait for each other
 * without spinning, move bytes, and fail loudly.
 *
 * Roles. Every program (learner, actor, reward_server, the test helpers) starts with
 *     MpiRoles roles;
 *     MpiRoleNeeds need = mpi_needs_online("ppo");
 *     mpi_roles_init(&argc, &argv, ROLE_ACTOR, &need, &roles);
 * which MPI_Inits, sets MPI_ERRORS_RETURN on MPI_COMM_WORLD (so MPI_CHECK sees errors),
 * Allgathers every rank's role, splits a per-role communicator on the role colour, builds
 * the sorted world-rank list of each role and checks the counts against what the stage
 * needs. A wrong launch (e.g. no reward rank for PPO) makes world rank 0 print one message
 * — what was launched, what is needed, an example mpirun line — and every rank exit(1).
 * A run is one MPMD launch:
 *     mpirun -np 1 build/learner ppo cfg.ini : -np 1 build/reward_server cfg.ini \
 *            : -np 2 build/actor cfg.ini
 * Cross-role messages go over MPI_COMM_WORLD to the world ranks in roles.ranks[ROLE_x];
 * collectives inside a role (learner gradient Allreduce) use roles.role_comm.
 *
 * Failing. MPI_CHECK(call) and mpi_fatal(fmt, ...) print
 *     rlhf-c: [rank R role ROLE] file:line: <what>
 * and MPI_Abort the job; so does fatal() (util.h) once mpi_roles_init has run. Every
 * communicator a program uses has MPI_ERRORS_RETURN (MPI_COMM_WORLD and role_comm here,
 * the weight communicator in online.c), so that MPI_CHECK sees errors instead of MPI's
 * default handler ending the rank without rank, role or call site. Fatal signals
 * (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) are reported with rank and role, then passed
 * on to the handler that was there before (Open MPI's backtrace, ASan, or the default), so
 * mpirun tears the job down.
 *
 * Waiting. Ranks often outnumber cores, so nothing here busy-waits: message waits are
 * MPI_Iprobe / MPI_Test polls with nanosleep between them, backing off from 50 us to 2 ms
 * (a waiting rank costs well under 1% of a core). Every wait has a deadline, the peer
 * timeout (default 600 s; RLHF_PEER_TIMEOUT in the environment or mpi_set_peer_timeout):
 * a peer that stays silent that long aborts the job with a message naming the wait, so
 * nothing hangs forever. Blocking calls that cannot be polled (collectives) are guarded
 * with mpi_watch_begin/end, a watchdog thread with the same timeout. The timeout is the
 * config key run.peer_timeout (every role applies it with mpi_config_peer_timeout once it
 * has read the config, so one config file sets it for the whole job); RLHF_PEER_TIMEOUT in
 * the environment overrides it, for tests. (An environment variable reaches every rank of
 * a single-node launch; across nodes give `-x RLHF_PEER_TIMEOUT` in EVERY ':'-separated app
 * context — mpirun applies -x per context.)
 *
 * Not here: what the messages mean (msg.h, the role programs), the weight broadcast.
 * Sends are one message at a time (mpi_send_bytes waits for completion); a rank that may
 * itself be the target of a large send while sending must post its receive first or use
 * MPI_Isend + mpi_wait_request, as MPI always requires.
 */
#ifndef RLHF_MPI_UTIL_H
#define RLHF_MPI_UTIL_H

#include <mpi.h>
#include <stddef.h>

#include "msg.h"

// ----------------------------------------------------------------------------------------
// Roles

typedef enum { ROLE_LEARNER = 0, ROLE_ACTOR = 1, ROLE_REWARD = 2 } Role;
#define ROLE_COUNT 3

/* "learner", "actor", "reward"; "?" for anything else */
const char *mpi_role_name(Role r);
/* Parse "learner", "actor", "reward" (or "reward_server"); 0 or -1. */
int mpi_role_parse(const char *s, Role *out);

/* What a stage needs launched: min[r] <= count of role r <= max[r] (max -1: no bound). */
typedef struct {
    const char *stage; /* named in the error message: "ppo", "sft", ... */
    int min[ROLE_COUNT];
    int max[ROLE_COUNT];
} MpiRoleNeeds;

/* ppo / grpo: at least one of each role. */
MpiRoleNeeds mpi_needs_online(const char *stage);
/* sft / rm / dpo / eval: learners only (an actor or reward rank would wait forever). */
MpiRoleNeeds mpi_needs_offline(const char *stage);

typedef struct {
    int world_rank, world_size;
    Role role;              /* this rank's */
    MPI_Comm role_comm;     /* the ranks of this rank's role */
    int role_rank, role_size;
    int count[ROLE_COUNT];  /* ranks of each role */
    int *ranks[ROLE_COUNT]; /* (count[r]) their world ranks, ascending */
    Role *role_of;          /* (world_size) the role of each world rank */
} MpiRoles;

/* MPI_Init and everything described at the top. Exits (after rank 0 explained why) when
 * the launch does not satisfy needs (NULL: anything goes). Reads RLHF_PEER_TIMEOUT. */
void mpi_roles_init(int *argc, char ***argv, Role my_role, const MpiRoleNeeds *needs,
                    MpiRoles *roles);
/* Kernel threads for this rank: `configured` (run.threads) when > 0; 0 = auto: the CPUs
 * this rank may run on divided by the most ranks of the job on this node sharing one of
 * them (measured in mpi_roles_init; 1 before it) — with `phased`, only the ranks of this
 * rank's phase count (learners; actors and reward servers): for jobs whose phases take
 * turns (synchronous PPO / GRPO, ppo.max_staleness = 0; offline stages, all learners).
 * mpi_threads_why says which, for logs. Auto never exceeds OPS_MAX_THREADS (ops.h): a
 * rank that could use more says so once per node on stderr and gets that many. */
int mpi_threads(int configured, int phased);
/* The auto rule: cpus / share, at least 1, at most OPS_MAX_THREADS. */
int mpi_threads_auto(int cpus, int share);
const char *mpi_threads_why(int configured, int phased);
/* Stops the watchdog, frees the communicator and lists, MPI_Finalize (the counterpart of
 * the MPI_Init in mpi_roles_init). NULL: no-op. */
void mpi_roles_free(MpiRoles *roles);
/* "1 learner, 2 actor, 1 reward" into buf; returns buf. */
char *mpi_roles_describe(const MpiRoles *roles, char *buf, size_t n);
/* "world rank 3 (actor 1)" — role and index within the role, when known. */
char *mpi_describe_rank(int world_rank, char *buf, size_t n);

// ----------------------------------------------------------------------------------------
// Failing loudly

_Noreturn void mpi_check_fail(int rc, const char *call, const char *file, int line);
/* MPI_Abort(MPI_COMM_WORLD, code) when MPI is up (mpirun then ends every rank), else
 * exit(code): for paths that have printed their own message. */
_Noreturn void mpi_abort_job(int code);
_Noreturn void mpi_fatal_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define MPI_CHECK(call)                                                                   \
    do {                                                                                  \
        int mpi_rc_ = (call);                                                             \
        if (mpi_rc_ != MPI_SUCCESS) mpi_check_fail(mpi_rc_, #call, __FILE__, __LINE__);   \
    } while (0)
#define mpi_fatal(...) mpi_fatal_at(__FILE__, __LINE__, __VA_ARGS__)

// ----------------------------------------------------------------------------------------
// Tags: one per message kind, the same on every rank.

enum {
    TAG_SCORE_REQ = 101,  /* actor -> reward: msg score_req */
    TAG_SCORE_REP,        /* reward -> actor: msg score_rep */
    TAG_ROLLOUT,          /* actor -> learner: msg rollout */
    TAG_WEIGHTS_HDR,      /* learner -> actor / reward: msg weights */
    TAG_WEIGHTS_DATA,     /* learner -> actor / reward: the raw weight image */
    TAG_STOP,             /* anyone -> anyone: msg stop */
    TAG_CTRL,             /* small control messages between the role programs */
    TAG_LAST_
};
/* "TAG_SCORE_REQ", ...; "tag <n>" (in a static buffer) for anything else */
const char *mpi_tag_name(int tag);
/* The message type a tag carries (MSG_TYPE_NONE: raw bytes / any). */
MsgType mpi_tag_msg_type(int tag);

// ----------------------------------------------------------------------------------------
// Waiting without spinning, with a deadline. The functions that can abort the job are
// macros over *_at(file, line, ...) so that the message names the caller's file:line.

/* Seconds a wait may last before the job is aborted (<= 0: forever). Default 600. */
void mpi_set_peer_timeout(double seconds);
double mpi_peer_timeout(void);
/* run.peer_timeout from the config, unless RLHF_PEER_TIMEOUT is set (which then stays). */
void mpi_config_peer_timeout(double seconds);

/* Wait until a message with one of tags[0..ntags) (ntags 0: any tag) from source (a rank
 * of comm, or MPI_ANY_SOURCE) is pending; fills *st and returns its tag. Tags are probed
 * in rotating order so that a busy tag does not starve the others. Aborts the job after
 * the peer timeout. */
int mpi_wait_any_message_at(const char *file, int line, MPI_Comm comm, int source,
                            const int *tags, int ntags, MPI_Status *st);
#define mpi_wait_any_message(...) mpi_wait_any_message_at(__FILE__, __LINE__, __VA_ARGS__)
/* The same, giving up after timeout_s seconds (0: probe once): the tag, or -1. */
int mpi_poll_any_message(MPI_Comm comm, int source, const int *tags, int ntags,
                         double timeout_s, MPI_Status *st);
/* MPI_Test + sleep until *req completes (st may be NULL); `what` names the operation in
 * the message if the peer timeout passes first. */
void mpi_wait_request_at(const char *file, int line, MPI_Request *req, MPI_Status *st,
                         const char *what);
void mpi_wait_all_at(const char *file, int line, int n, MPI_Request *reqs, const char *what);
#define mpi_wait_request(...) mpi_wait_request_at(__FILE__, __LINE__, __VA_ARGS__)
#define mpi_wait_all(...) mpi_wait_all_at(__FILE__, __LINE__, __VA_ARGS__)

/* Guard a blocking call that cannot be polled (a collective, a broadcast): if
 * mpi_watch_end does not follow within the peer timeout, a watchdog thread prints
 * "[rank R role X] no progress for N s in <what>" and exits the process non-zero, which
 * makes mpirun abort the job. `what` must stay valid until mpi_watch_end. Not nested. */
void mpi_watch_begin(const char *what);
void mpi_watch_end(void);

// ----------------------------------------------------------------------------------------
// Bytes and messages

/* Send len bytes (<= INT_MAX) and wait for the send to complete (polling, with the peer
 * timeout). */
void mpi_send_bytes_at(const char *file, int line, MPI_Comm comm, int dest, int tag,
                       const void *data, size_t len);
#define mpi_send_bytes(...) mpi_send_bytes_at(__FILE__, __LINE__, __VA_ARGS__)
/* Receive the message that *st (from mpi_wait_any_message / MPI_Iprobe) describes into
 * buf, growing it; returns the byte count (also buf->len). A message over max_bytes
 * aborts the job, naming the sender. */
size_t mpi_recv_bytes_at(const char *file, int line, MPI_Comm comm, const MPI_Status *st,
                         MsgBuf *buf, size_t max_bytes);
#define mpi_recv_bytes(...) mpi_recv_bytes_at(__FILE__, __LINE__, __VA_ARGS__)
/* mpi_recv_bytes + msg_decode under lim (max size msg_max_bytes(lim)); a message that
 * does not decode, or whose type is not what its tag carries (mpi_tag_msg_type), aborts
 * the job with the decoder's error and the sender's rank and role. */
void mpi_recv_msg_at(const char *file, int line, MPI_Comm comm, const MPI_Status *st,
                     MsgBuf *buf, const MsgLimits *lim, Msg *out);
#define mpi_recv_msg(...) mpi_recv_msg_at(__FILE__, __LINE__, __VA_ARGS__)

// ----------------------------------------------------------------------------------------
// Traffic: bytes received by this process, by tag (the weight payload under
// TAG_WEIGHTS_DATA whichever way it came: broadcast or point to point). Every message
// received with mpi_recv_bytes / mpi_recv_msg is counted; a raw receive is counted by its
// caller with mpi_bytes_count.

void mpi_bytes_count(int tag, size_t n);
/* Sum of every rank's counters of comm into out[tag - TAG_SCORE_REQ] on root (collective,
 * guarded by the watchdog; out needs TAG_LAST_ - TAG_SCORE_REQ entries on root). */
void mpi_bytes_total(MPI_Comm comm, int root, unsigned long long *out);

// ----------------------------------------------------------------------------------------
// Progress and timing: one rank prints, timings are the slowest rank's.

int mpi_is_root(MPI_Comm comm); /* rank 0 of comm */
double mpi_max_double(MPI_Comm comm, double x);
double mpi_sum_double(MPI_Comm comm, double x);

#endif
