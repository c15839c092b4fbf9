/*
 * learner/learner.h — the stages of the learner program (build/learner STAGE CONFIG ...).
 * Each takes the arguments after the stage name and the learner communicator, and returns
 * the process exit status. Offline stages (sft, rm, dpo) run on learner ranks alone.
 */
#ifndef RLHF_LEARNER_H
#define RLHF_LEARNER_H

#include "mpi_util.h"

/* roles: this launch (mpi_roles_init done by main); learner ranks talk over
 * roles->role_comm, other roles over MPI_COMM_WORLD. */
int learner_sft(int argc, char **argv, MpiRoles *roles);
int learner_rm(int argc, char **argv, MpiRoles *roles);
/* online stages (learner/ppo.c): need actors and reward servers in the same launch */
int learner_ppo(int argc, char **argv, MpiRoles *roles);
int learner_grpo(int argc, char **argv, MpiRoles *roles);
int learner_rloo(int argc, char **argv, MpiRoles *roles);
int learner_dpo(int argc, char **argv, MpiRoles *roles);

#endif
