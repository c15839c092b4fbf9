/*
 * common/fault.h — fault injection for the fault suite (tests/t_faults.sh, `make faults`).
 *
 * Faults that cannot be produced from outside a process at a chosen moment are injected
 * by environment variables read once per process; without them every call here is a
 * no-op (one branch on a cached flag). They exist so that the recovery paths are run by
 * tests, not trusted:
 *
 *   RLHF_FAULT_NONFINITE=S[,S...]  the gradient of training step S (1-based, the step the
 *                                  learner is about to apply) gets a NaN on learner rank 0
 *                                  before the all-reduce, as an overflow would;
 *   RLHF_FAULT_KILL=POINT:N        the process sends itself SIGKILL the N-th time (1-based,
 *                                  counted from the process's start) it reaches POINT:
 *       ckpt_data    a checkpoint write after the model tensors, before the optimizer state;
 *       ckpt_commit  a checkpoint fully written to its .tmp file, before flush, fsync and
 *                    rename;
 *       ckpt_saved   a checkpoint committed: fsynced, renamed, the run directory's `latest`
 *                    naming it and older ones pruned (the next launch resumes from it);
 *       train_step   learner rank 0 of SFT / RM / DPO after an optimizer step is applied,
 *                    before any checkpoint of that step (the step is lost and redone);
 *       ppo_update   learner rank 0 of PPO / GRPO / RLOO after an update's training,
 *                    before its checkpoint and before the actors get the new weights;
 *   RLHF_FAULT_DROP=POINT:N        the process leaves something out of a message the N-th
 *                                  time it reaches POINT, as a peer with a bug would:
 *       rollout_ref  an actor sends a rollout without the ref_logprobs its work item
 *                    asked for (the learner must stop with a message, not train on zeros);
 *   RLHF_FAULT_LOG=PATH            a kill's message is appended to PATH too (mpirun can
 *                                  end a job before it forwards a killed rank's stderr).
 *   RLHF_FAULT_FATAL=POINT:N       the process calls fatal() the N-th time it reaches
 *                                  POINT, as an internal error would. Point: "train_step"
 *                                  (an offline learner's optimizer step, before the
 *                                  gradient all-reduce). Set it for one rank only (an MPMD
 *                                  launch with `env` in one app context) to check that
 *                                  one rank's fatal() ends the whole job.
 *
 * Only the process that reaches a kill point dies; mpirun then ends the other ranks of
 * the job, as after any rank's death. A kill counted in visits lands at the same moment
 * of the run however fast or loaded the machine is, which is what lets tests/t_faults.sh
 * guarantee that a relaunch resumes from a checkpoint.
 *
 * Bad values in these variables stop the program with a message (a typo must not make a
 * fault test pass vacuously).
 */
#ifndef RLHF_FAULT_H
#define RLHF_FAULT_H

/* 1 if RLHF_FAULT_NONFINITE names this step. */
int fault_nonfinite_at(long step);

/* SIGKILL this process if RLHF_FAULT_KILL names this point and this is its N-th visit. */
void fault_kill_point(const char *point);

/* fatal() here if RLHF_FAULT_FATAL names this point and this is its N-th visit. */
void fault_fatal_point(const char *point);

/* 1 if RLHF_FAULT_DROP names this point and this is its N-th visit. */
int fault_drop_point(const char *point);

#endif
