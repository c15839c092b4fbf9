/* tests/test_mpi_util.c — the parts of mpi_util.h that need no MPI launch: the thread cap
 * of run.threads (the auto rule, the config range, the kernel pool at the cap) and how
 * run.peer_timeout and RLHF_PEER_TIMEOUT decide the peer timeout. */
#include <stdatomic.h>
#include <stdlib.h>

#include "config.h"
#include "mpi_util.h"
#include "ops.h"
#include "test.h"
#include "util.h"

/* run.threads = 0: cpus / share, at least 1, never above the pool's size */
static void test_auto_threads_cap(void) {
    CHECK_EQ_INT(mpi_threads_auto(16, 4), 4);
    CHECK_EQ_INT(mpi_threads_auto(3, 4), 1);
    CHECK_EQ_INT(mpi_threads_auto(OPS_MAX_THREADS, 1), OPS_MAX_THREADS);
    CHECK_EQ_INT(mpi_threads_auto(OPS_MAX_THREADS + 1, 1), OPS_MAX_THREADS);
    CHECK_EQ_INT(mpi_threads_auto(256, 1), OPS_MAX_THREADS);
    CHECK_EQ_INT(mpi_threads_auto(256, 2), OPS_MAX_THREADS);
    CHECK_EQ_INT(mpi_threads_auto(256, 8), 32);
}

/* run.threads above the cap is refused by name, with the limit */
static void test_config_threads_limit(void) {
    RlhfConfig c;
    char err[ERRBUF_LEN] = "", v[32];
    config_defaults(&c);
    snprintf(v, sizeof v, "%d", OPS_MAX_THREADS);
    CHECK_MSG(config_set(&c, "run.threads", v, err) == 0, "%s", err);
    CHECK_EQ_INT(c.run.threads, OPS_MAX_THREADS);
    snprintf(v, sizeof v, "%d", OPS_MAX_THREADS + 1);
    CHECK(config_set(&c, "run.threads", v, err) != 0);
    char lim[32];
    snprintf(lim, sizeof lim, "..%d", OPS_MAX_THREADS);
    CHECK_MSG(strstr(err, "run.threads") && strstr(err, lim), "message: %s", err);
}

static atomic_int parts_seen, nparts_seen;
static void count_part(void *arg, int part, int nparts) {
    (void)arg;
    (void)part;
    atomic_fetch_add(&parts_seen, 1);
    atomic_store(&nparts_seen, nparts);
}

/* a count above the cap (OpenBLAS's default on a big node, a direct call) is clamped,
 * and the pool runs a job over exactly that many threads */
static void test_pool_at_cap(void) {
    ops_blas_setup(OPS_MAX_THREADS * 4);
    CHECK_EQ_INT(ops_blas_threads(), OPS_MAX_THREADS);
    ops_parallel(count_part, NULL, 1 << 20);
    CHECK_EQ_INT(atomic_load(&parts_seen), OPS_MAX_THREADS);
    CHECK_EQ_INT(atomic_load(&nparts_seen), OPS_MAX_THREADS);
    ops_blas_setup(1);
}

/* run.peer_timeout applies unless RLHF_PEER_TIMEOUT is set (which mpi_roles_init read) */
static void test_peer_timeout_source(void) {
    RlhfConfig c;
    char err[ERRBUF_LEN] = "";
    config_defaults(&c);
    CHECK(c.run.peer_timeout == 600);
    CHECK(config_set(&c, "run.peer_timeout", "-1", err) != 0);
    CHECK_MSG(config_set(&c, "run.peer_timeout", "1800", err) == 0, "%s", err);
    unsetenv("RLHF_PEER_TIMEOUT");
    mpi_config_peer_timeout(c.run.peer_timeout);
    CHECK(mpi_peer_timeout() == 1800);
    mpi_config_peer_timeout(0);
    CHECK(mpi_peer_timeout() == 0); /* 0: wait forever */
    setenv("RLHF_PEER_TIMEOUT", "7", 1);
    mpi_config_peer_timeout(1800);
    CHECK(mpi_peer_timeout() == 0); /* the environment's value stays */
    unsetenv("RLHF_PEER_TIMEOUT");
}

int main(void) {
    TEST_RUN(test_auto_threads_cap);
    TEST_RUN(test_config_threads_limit);
    TEST_RUN(test_pool_at_cap);
    TEST_RUN(test_peer_timeout_source);
    return TEST_EXIT();
}
