/*
 * learner/main.c — the learner program: `build/learner STAGE CONFIG [section.key=value ...]`
 * where STAGE is one of the stages below. It is the learning side of rlhf-c: offline
 * stages (sft) run data-parallel over however many ranks mpirun starts.
 */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "learner.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv, MPI_Comm comm);
    const char *help;
} Stage;

static const Stage stages[] = {
    {"sft", learner_sft, "supervised fine-tuning on {\"prompt\",\"response\"} JSONL"},
    {"rm", learner_rm, "reward model (Bradley-Terry) on {\"prompt\",\"chosen\",\"rejected\"} JSONL"},
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
    MPI_Init(&argc, &argv);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    int rc = st->run(argc - 2, argv + 2, MPI_COMM_WORLD);
    MPI_Finalize();
    return rc;
}
