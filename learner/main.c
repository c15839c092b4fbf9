/*
 * learner/main.c — the learner program: `build/learner STAGE CONFIG [section.key=value ...]`
 * where STAGE is one of the stages below. It is the learning side of rlhf-c: offline
 * stages (sft) run data-parallel over however many ranks mpirun starts.
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
} Stage;

static const Stage stages[] = {
    {"sft", 0, learner_sft, "supervised fine-tuning on {\"prompt\",\"response\"} JSONL"},
    {"dpo", 0, learner_dpo, "DPO / IPO / conservative DPO on comparison JSONL, from an SFT checkpoint"},
    {"rm", 0, learner_rm, "reward model (Bradley-Terry) on {\"prompt\",\"chosen\",\"rejected\"} JSONL"},
    {"ppo", 1, learner_ppo, "PPO against the reward server(s), with actors (online: see docs/ppo.md)"},
    {"grpo", 1, learner_grpo, "GRPO: G samples per prompt, group-normalised advantages, no critic (online)"},
    {"rloo", 1, learner_rloo, "RLOO: G samples per prompt, leave-one-out baseline, no critic (online)"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: build/learner STAGE CONFIG.ini [section.key=value ...]\n"
               "       mpirun -np N build/learner STAGE CONFIG.ini ...   (data-parallel)\n"
               "stages:\n");
    for (size_t i = 0; i < sizeof stages / sizeof stages[0]; i++)
        fprintf(f, "  %-6s %s\n", stages[i].name, stages[i].help);
    fprintf(f, "configuration keys: build/learner help-config\n");
}

int main(int argc, char **argv) {
    if (argc >= 2 && (strcmp(argv[1], "help-config") == 0 || strcmp(argv[1], "--help-config") == 0)) {
        config_print_help(stdout);
        return 0;
    }
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const Stage *st = NULL;
    for (size_t i = 0; i < sizeof stages / sizeof stages[0]; i++)
        if (strcmp(argv[1], stages[i].name) == 0) st = &stages[i];
    if (!st) {
        fprintf(stderr, "rlhf-c: learner: unknown stage '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }
    MpiRoles roles;
    MpiRoleNeeds need = st->online ? mpi_needs_online(st->name) : mpi_needs_offline(st->name);
    mpi_roles_init(&argc, &argv, ROLE_LEARNER, &need, &roles);
    int rc = st->run(argc - 2, argv + 2, &roles);
    mpi_roles_free(&roles);
    return rc;
}
