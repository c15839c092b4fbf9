/*
 * common/fault.c — environment-driven fault injection (see fault.h).
 */
#include "fault.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define FAULT_MAX_STEPS 64

/* The points RLHF_FAULT_KILL may name (fault.h says where each one is). */
static const char *const FAULT_POINTS[] = {"ckpt_data", "ckpt_commit", "ckpt_saved",
                                           "train_step", "ppo_update"};
#define FAULT_N_POINTS ((int)(sizeof FAULT_POINTS / sizeof FAULT_POINTS[0]))

static struct {
    int loaded;
    int n_steps;
    long steps[FAULT_MAX_STEPS];
    char kill_point[32];
    long kill_at;    /* the visit that kills, 0 = none */
    long kill_seen;
} F;

static int fault_point_known(const char *name) {
    for (int i = 0; i < FAULT_N_POINTS; i++)
        if (strcmp(name, FAULT_POINTS[i]) == 0) return 1;
    return 0;
}

static void fault_load(void) {
    if (F.loaded) return;
    F.loaded = 1;
    const char *s = getenv("RLHF_FAULT_NONFINITE");
    if (s && *s) {
        const char *p = s;
        while (*p) {
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p || v < 1 || (*end && *end != ',') || F.n_steps == FAULT_MAX_STEPS)
                fatal("RLHF_FAULT_NONFINITE=\"%s\": expected up to %d comma-separated step "
                      "numbers >= 1", s, FAULT_MAX_STEPS);
            F.steps[F.n_steps++] = v;
            p = *end ? end + 1 : end;
        }
    }
    const char *k = getenv("RLHF_FAULT_KILL");
    if (k && *k) {
        const char *colon = strchr(k, ':');
        char *end = NULL;
        long n = colon ? strtol(colon + 1, &end, 10) : 0;
        size_t len = colon ? (size_t)(colon - k) : 0;
        if (!colon || len == 0 || len >= sizeof F.kill_point || n < 1 || *end)
            fatal("RLHF_FAULT_KILL=\"%s\": expected POINT:N (e.g. ckpt_commit:2)", k);
        memcpy(F.kill_point, k, len);
        F.kill_point[len] = '\0';
        if (!fault_point_known(F.kill_point))
            fatal("RLHF_FAULT_KILL=\"%s\": unknown point \"%s\" (ckpt_data, ckpt_commit, "
                  "ckpt_saved, train_step, ppo_update)", k, F.kill_point);
        F.kill_at = n;
    }
}

int fault_nonfinite_at(long step) {
    fault_load();
    for (int i = 0; i < F.n_steps; i++)
        if (F.steps[i] == step) return 1;
    return 0;
}

void fault_kill_point(const char *point) {
    fault_load();
    if (F.kill_at == 0) return;
    /* a call site whose name is missing from the table could never be triggered */
    ASSERT(fault_point_known(point));
    if (strcmp(point, F.kill_point) != 0) return;
    if (++F.kill_seen != F.kill_at) return;
    char line[128];
    int n = snprintf(line, sizeof line,
                     "rlhf-c: fault injection: SIGKILL at %s (visit %ld, pid %d)\n", point,
                     F.kill_seen, (int)getpid());
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof line) n = (int)sizeof line - 1;
    fputs(line, stderr);
    fflush(stderr);
    /* mpirun may end the job before it forwards a killed rank's last stderr bytes: the
     * same line also goes to RLHF_FAULT_LOG, written (page cache) before the kill */
    const char *log = getenv("RLHF_FAULT_LOG");
    if (log && *log) {
        int fd = open(log, O_WRONLY | O_APPEND | O_CREAT, 0644);
        if (fd >= 0) {
            if (write(fd, line, (size_t)n) != n) { /* the stderr copy is still there */ }
            close(fd);
        }
    }
    raise(SIGKILL);
}
