/*
 * learner/main.c — the learner program: `build/learner STAGE CONFIG [section.key=value ...]`
 * where STAGE is one of the stages below. It is the learning side of rlhf-c: offline
 * stages (sft, dpo, rm) run data-parallel over however many ranks mpirun starts; online
 * ones (ppo, grpo, rloo) share one mpirun launch with actors and reward servers.
 *
 * The command line is read here, before MPI_Init (mpi_roles_init), so that --help, -h and
 * usage errors need neither mpirun nor an MPI singleton, open no file and start no job.
 */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "learner.h"
#include "mpi_util.h"

typedef struct {
    const char *name;
    int online; /* 1: needs actors and reward servers in the same launch */
    int (*run)(int argc, char **argv, MpiRoles *roles);
    const char *help;
    const char *data; /* what data.train holds */
} Stage;

static const Stage stages[] = {
    {"sft", 0, learner_sft, "supervised fine-tuning on {\"prompt\",\"response\"} JSONL",
     "{\"prompt\",\"response\"} JSONL"},
    {"dpo", 0, learner_dpo, "DPO / IPO / conservative DPO on comparison JSONL, from an SFT checkpoint",
     "{\"prompt\",\"chosen\",\"rejected\"} JSONL; model.init: the SFT checkpoint"},
    {"rm", 0, learner_rm, "reward model (Bradley-Terry) on {\"prompt\",\"chosen\",\"rejected\"} JSONL",
     "{\"prompt\",\"chosen\",\"rejected\"} JSONL"},
    {"ppo", 1, learner_ppo, "PPO against the reward server(s), with actors (online: see docs/ppo.md)",
     "{\"prompt\"} JSONL; model.init: the SFT checkpoint; ppo.reward_ckpt: the reward model"},
    {"grpo", 1, learner_grpo, "GRPO: G samples per prompt, group-normalised advantages, no critic (online)",
     "{\"prompt\"} JSONL; model.init: the SFT checkpoint; ppo.reward_ckpt: the reward model"},
    {"rloo", 1, learner_rloo, "RLOO: G samples per prompt, leave-one-out baseline, no critic (online)",
     "{\"prompt\"} JSONL; model.init: the SFT checkpoint; ppo.reward_ckpt: the reward model"},
};
#define N_STAGES (sizeof stages / sizeof stages[0])

static const char exit_text[] =
    "Exit status: 0 done; 1 an error (bad config or data, a failed rank: the message names\n"
    "the file, line or key); 2 a usage error (unknown stage or option, no CONFIG.ini).\n";

static void usage(FILE *f) {
    fprintf(f, "usage: build/learner STAGE CONFIG.ini [section.key=value ...]\n"
               "       mpirun -np N build/learner STAGE CONFIG.ini ...   (data-parallel)\n"
               "       build/learner STAGE --help | build/learner help-config\n"
               "stages:\n");
    for (size_t i = 0; i < N_STAGES; i++)
        fprintf(f, "  %-6s %s\n", stages[i].name, stages[i].help);
    fprintf(f, "Overrides: section.key=value after CONFIG.ini, applied in order over the file\n"
               "(e.g. optim.steps=200 run.out_dir=runs/x); every key: build/learner help-config.\n"
               "%s", exit_text);
}

static void stage_usage(FILE *f, const Stage *st) {
    fprintf(f, "usage: build/learner %s CONFIG.ini [section.key=value ...]\n", st->name);
    fprintf(f, "%s.\ndata.train: %s.\n", st->help, st->data);
    if (st->online)
        fprintf(f, "Online: one mpirun launch with the reward server(s) and actors, the same\n"
                   "config and overrides for every program:\n"
                   "  mpirun -np 1 build/learner %s CONFIG.ini : -np 1 build/reward_server "
                   "CONFIG.ini : -np 2 build/actor CONFIG.ini\n"
                   "  tools/rlhf-run CONFIG.ini -s %s -a 2      (builds that line)\n",
                st->name, st->name);
    else
        fprintf(f, "Offline: alone, or data-parallel over N learner ranks:\n"
                   "  mpirun -np N build/learner %s CONFIG.ini ...\n", st->name);
    fprintf(f, "Overrides: section.key=value after CONFIG.ini (e.g. run.out_dir=runs/%s\n"
               "run.resume=auto); every key: build/learner help-config.\n%s",
            st->name, exit_text);
}

static int is_help(const char *a) { return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0; }

/* The stage's arguments (argv[2..]): -1 to run it, else the exit status (help: 0, a
 * usage error: 2, with a one-line hint). */
static int check_stage_args(int argc, char **argv, const Stage *st) {
    for (int i = 2; i < argc; i++)
        if (is_help(argv[i])) {
            stage_usage(stdout, st);
            return 0;
        }
    for (int i = 2; i < argc; i++)
        if (argv[i][0] == '-') {
            fprintf(stderr, "rlhf-c: learner %s: unknown option '%s' (see build/learner %s --help)\n",
                    st->name, argv[i], st->name);
            return 2;
        }
    if (argc < 3) {
        fprintf(stderr, "rlhf-c: learner %s: missing CONFIG.ini (see build/learner %s --help)\n",
                st->name, st->name);
        return 2;
    }
    return -1;
}

int main(int argc, char **argv) {
    if (argc >= 2 && (strcmp(argv[1], "help-config") == 0 || strcmp(argv[1], "--help-config") == 0)) {
        config_print_help(stdout);
        return 0;
    }
    if (argc >= 2 && is_help(argv[1])) {
        usage(stdout);
        return 0;
    }
    if (argc < 2) {
        fprintf(stderr, "rlhf-c: learner: missing STAGE (see build/learner --help)\n");
        return 2;
    }
    const Stage *st = NULL;
    for (size_t i = 0; i < N_STAGES; i++)
        if (strcmp(argv[1], stages[i].name) == 0) st = &stages[i];
    if (!st) {
        fprintf(stderr, "rlhf-c: learner: unknown stage '%s' (stages:", argv[1]);
        for (size_t i = 0; i < N_STAGES; i++) fprintf(stderr, " %s", stages[i].name);
        fprintf(stderr, "; see build/learner --help)\n");
        return 2;
    }
    int rc = check_stage_args(argc, argv, st);
    if (rc >= 0) return rc;
    MpiRoles roles;
    MpiRoleNeeds need = st->online ? mpi_needs_online(st->name) : mpi_needs_offline(st->name);
    mpi_roles_init(&argc, &argv, ROLE_LEARNER, &need, &roles);
    rc = st->run(argc - 2, argv + 2, &roles);
    mpi_roles_free(&roles);
    return rc;
}
