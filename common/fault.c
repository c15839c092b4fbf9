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

static struct {
    int loaded;
    int n_steps;
    long steps[FAULT_MAX_STEPS];
    char kill_point[32];
    long kill_at;    /* the visit that kills, 0 = none */
    long kill_seen;
    char fatal_point[32];
    long fatal_at;   /* the visit that calls fatal(), 0 = none */
    long fatal_seen;
    char drop_point[32];
    long drop_at;    /* the visit that leaves a field out, 0 = none */
    long drop_seen;
} F;

/* The points RLHF_FAULT_KILL and RLHF_FAULT_FATAL may name (fault.h says where each is). */
static const char *const kill_points[] = {"ckpt_commit", "ckpt_data", "ckpt_saved",
                                          "train_step", "ppo_update", NULL};
static const char *const fatal_points[] = {"train_step", NULL};
static const char *const drop_points[] = {"rollout_ref", NULL};

/* VAR=POINT:N with POINT one of known[]: the point into point[cap] and N into *at. */
static void parse_point(const char *var, const char *const *known, char *point, size_t cap,
                        long *at) {
    const char *v = getenv(var);
    if (!v || !*v) return;
    const char *colon = strchr(v, ':');
    char *end = NULL;
    long n = colon ? strtol(colon + 1, &end, 10) : 0;
    size_t len = colon ? (size_t)(colon - v) : 0;
    if (!colon || len == 0 || len >= cap || n < 1 || *end)
        fatal("%s=\"%s\": expected POINT:N (e.g. %s:2)", var, v, known[0]);
    memcpy(point, v, len);
    point[len] = '\0';
    char list[128] = "";
    int ok = 0;
    for (int i = 0; known[i]; i++) {
        ok |= strcmp(point, known[i]) == 0;
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", known[i]);
    }
    if (!ok) fatal("%s=\"%s\": unknown point \"%s\" (%s)", var, v, point, list);
    *at = n;
}

static int fault_point_known(const char *name) {
    for (int i = 0; kill_points[i]; i++)
        if (strcmp(name, kill_points[i]) == 0) return 1;
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
    parse_point("RLHF_FAULT_KILL", kill_points, F.kill_point, sizeof F.kill_point, &F.kill_at);
    parse_point("RLHF_FAULT_FATAL", fatal_points, F.fatal_point, sizeof F.fatal_point,
                &F.fatal_at);
    parse_point("RLHF_FAULT_DROP", drop_points, F.drop_point, sizeof F.drop_point, &F.drop_at);
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

void fault_fatal_point(const char *point) {
    fault_load();
    if (F.fatal_at == 0 || strcmp(point, F.fatal_point) != 0) return;
    if (++F.fatal_seen != F.fatal_at) return;
    fatal("fault injection: internal error at %s (visit %ld, RLHF_FAULT_FATAL)", point,
          F.fatal_seen);
}

int fault_drop_point(const char *point) {
    fault_load();
    if (F.drop_at == 0 || strcmp(point, F.drop_point) != 0) return 0;
    if (++F.drop_seen != F.drop_at) return 0;
    fprintf(stderr, "rlhf-c: fault injection: %s left out (visit %ld, RLHF_FAULT_DROP)\n", point,
            F.drop_seen);
    return 1;
}
