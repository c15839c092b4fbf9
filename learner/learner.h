/*
 * learner/learner.h — the stages of the learner program (build/learner STAGE CONFIG ...).
 * Each takes the arguments after the stage name and the learner communicator, and returns
 * the process exit status. Offline stages (sft, rm, dpo) run on learner ranks alone.
 */
#ifndef RLHF_LEARNER_H
#define RLHF_LEARNER_H

#include <mpi.h>

int learner_sft(int argc, char **argv, MPI_Comm comm);
int learner_rm(int argc, char **argv, MPI_Comm comm);

#endif
