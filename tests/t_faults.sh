#!/usr/bin/env bash
# tests/t_faults.sh — the fault-injection suite (`make faults`; also part of `make test`).
# Each scenario runs the real programs under mpirun and checks what a user relies on:
#   1. SIGKILL, SFT (2 learner ranks) and PPO (learner + reward server + 2 actors, sync
#      mode): launches killed at named fault points (RLHF_FAULT_KILL, common/fault.h: right
#      after a checkpoint, after a training step or update, inside a checkpoint write),
#      which land at the same moment of the run on any machine, then by kill -9 at random
#      moments (every process of the launch, as a node loss or `scancel -s KILL` would; one
#      rank; mpirun alone); each time the job must end, and it is relaunched with
#      run.resume=auto until it finishes; the final checkpoint is bit-identical to an
#      uninterrupted run's (build/rlhf-ckpt diff). A half-written .tmp is ignored.
#   2. a rank dies in a real PPO job (actor, reward server, learner, by kill -9): the job
#      ends within 30 s, non-zero, with a message naming the rank and its role; no
#      process of the job is left running.
#   3. the disk fills while checkpointing (a file-size limit, `ulimit -f`, so the kernel
#      refuses the write with EFBIG as a full disk refuses it with ENOSPC; and, where a
#      tmpfs can be mounted, a really full filesystem, ENOSPC; elsewhere that part prints
#      a SKIP line, counted by tests/run.sh): a clear error, exit != 0,
#      the previous checkpoint byte-identical, loadable, still "latest".
#   4. NaN gradients (RLHF_FAULT_NONFINITE): isolated ones are skipped and logged and the
#      run finishes with finite weights; a skipped step changes no weight; too many in a
#      row stop the run with a message, and no checkpoint ever holds a non-finite value.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
T=$(mktemp -d "${RLHF_TEST_TMP:-/tmp}/t_faults.XXXXXX")
cleanup() {
  # never leave a process of ours behind, whatever failed
  for g in "${GROUPS_STARTED[@]:-}"; do [ -n "$g" ] && pkill -9 -s "$g" 2>/dev/null || true; done
  rm -rf "$T"
}
GROUPS_STARTED=()
trap cleanup EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1 RLHF_PEER_TIMEOUT=60
fail() { echo "FAIL: $*"; exit 1; }
RANDOM=20261123   # the kill moments are random but the same on every run

"$B/rlhf-task" gen --out "$T/data" --seed 11 --sizes sft=400,prefs=100,prefs_eval=20,prompts=64,prompts_eval=8,redteam=4 >/dev/null
"$B/rlhf-tokenize" train --vocab-size 320 --out "$T/tok" "$T/data/corpus.txt" >/dev/null 2>&1
MODEL="tokenizer.path=$T/tok model.preset=custom model.n_layer=2 model.n_head=2 model.n_embd=48
  model.max_seq_len=64 data.max_prompt_len=24 data.max_response_len=24 gen.max_new_tokens=24"
SFT="configs/sft.ini data.train=$T/data/sft.jsonl data.eval= $MODEL optim.batch_size=16
  optim.warmup_steps=5 optim.lr=3e-3 optim.min_lr=3e-4 run.log_every=20 run.eval_every=0"

# start CMD... in its own session in the background (Open MPI puts each rank in a process
# group of its own, but they stay in mpirun's session); sets JOB (mpirun's pid, also the
# session id) and remembers the session for the cleanup
start_group() {
  local log=$1; shift
  setsid "$@" > "$log" 2>&1 &
  JOB=$!
  GROUPS_STARTED+=("$JOB")
}
# processes of a session still alive
# (zombies do not count: they run nothing, and this container's init may not reap them)
group_alive() { ps -e -o sid=,stat= | awk -v s="$1" '$1 == s && $2 !~ /^Z/ { f = 1 } END { exit !f }'; }
# wait for a group's leader (up to $2 s); sets RC (124 if it did not end)
wait_job() {
  local pid=$1 limit=$2 i
  for ((i = 0; i < limit * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then RC=124; pkill -9 -s "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; return; fi
  RC=0; wait "$pid" 2>/dev/null || RC=$?
}
# a random delay in [lo, hi) seconds, at 0.05 s resolution
rand_delay() { awk -v lo="$1" -v hi="$2" -v r="$RANDOM" 'BEGIN { printf "%.2f", lo + (hi - lo) * r / 32768 }'; }

# the checkpoint a run directory's "latest" names (none if there is none)
latest_of() { readlink "$1/latest" 2>/dev/null || cat "$1/latest" 2>/dev/null || echo none; }
# run_with_kills NAME "POINT:N..." LO HI CMD...: launch CMD (which must write the run
# directory $T/NAME and resume with run.resume=auto) and kill it, launch after launch, then
# let it run to the end:
#   - first one launch per fault point, killed by RLHF_FAULT_KILL=POINT:N (common/fault.h):
#     learner rank 0 dies at an exact moment of the run (e.g. ckpt_saved:2, right after the
#     launch's 2nd checkpoint), whatever the machine's speed or load; mpirun must then end
#     the whole job. A kill right after a checkpoint guarantees that the later launches
#     resume from a checkpoint;
#   - then three launches killed by kill -9 from outside at random moments: every process
#     of the job, then one random rank, then mpirun alone. The 1st and 3rd come a random
#     [LO, HI) s after the launch (possibly before its first checkpoint: a relaunch from the
#     same one); the 2nd a random [0, HI - LO) s after the launch has written a checkpoint
#     of its own. A launch that finishes the run before its kill ends the kills (the run is
#     done; the fault-point kills have already happened).
run_with_kills() {
  local name=$1 points=$2 lo=$3 hi=$4; shift 4
  local k=0 point before
  for point in $points; do
    k=$((k + 1))
    before=$(latest_of "$T/$name")
    kill_at_point "$name" "$k" "$point" "$@"
    case $point in
      ckpt_saved:*) [ "$(latest_of "$T/$name")" != "$before" ] \
                      || fail "$name: killed at $point but latest still names $before" ;;
    esac
  done
  ended=0
  local j
  for j in 1 2 3; do
    k=$((k + 1))
    kill_timed "$name" "$k" "$j" "$lo" "$hi" "$@"
    [ $ended -eq 0 ] || break
  done
  if [ $ended -eq 0 ]; then
    start_group "$T/$name.final.log" "$@"
    RC=0; wait "$JOB" || RC=$?   # (no limit of ours: the suite's own, tests/run.sh)
    [ "$RC" -eq 0 ] || { cat "$T/$name.final.log"; fail "$name: the final resumed run failed (rc $RC)"; }
  fi
}
# every rank must be gone before the relaunch (an orphan would write the same run)
all_gone() {  # all_gone NAME HOW
  local i
  for ((i = 0; i < 300; i++)); do group_alive "$JOB" || return 0; sleep 0.1; done
  ps -e -o sid=,pid=,stat=,comm= | awk -v s="$JOB" '$1 == s'
  fail "$1: ranks still running 30 s after $2"
}
# kill_at_point NAME K POINT:N CMD...: one launch with RLHF_FAULT_KILL=POINT:N; it must
# die there (the fault log says so), and the whole job must end within 30 s of it.
kill_at_point() {
  local name=$1 k=$2 point=$3; shift 3
  local flog="$T/$name.kill$k.fault"
  start_group "$T/$name.kill$k.log" env RLHF_FAULT_KILL="$point" RLHF_FAULT_LOG="$flog" "$@"
  # (no time limit of ours on reaching the point: the suite's own limit, tests/run.sh)
  while kill -0 "$JOB" 2>/dev/null && ! grep -qs "SIGKILL at ${point%%:*}" "$flog"; do sleep 0.1; done
  wait_job "$JOB" 30
  [ "$RC" -ne 124 ] || fail "$name: the job did not end within 30 s of the kill at $point"
  grep -qs "SIGKILL at ${point%%:*} (visit ${point#*:}," "$flog" \
    || { cat "$T/$name.kill$k.log"; fail "$name: launch $k was not killed at $point (rc $RC)"; }
  [ "$RC" -ne 0 ] || fail "$name: launch $k killed at $point exited 0"
  all_gone "$name" "the kill at $point"
  echo "  kill $k at $point: learner rank 0 killed itself, mpirun ended the job (rc $RC); latest now $(latest_of "$T/$name")"
}
# kill_timed NAME K J LO HI CMD...: one launch killed from outside (J: 1 the whole job
# at a random moment, 2 one rank after the launch's first checkpoint, 3 mpirun alone);
# sets ended=1 if the launch finished the run first
kill_timed() {
  local name=$1 k=$2 j=$3 lo=$4 hi=$5; shift 5
  local d when how victim before t0w
  before=$(latest_of "$T/$name")
  start_group "$T/$name.kill$k.log" "$@"
  if [ "$j" -ne 2 ]; then
    d=$(rand_delay "$lo" "$hi"); sleep "$d"; when="${d}s"
  else
    t0w=$SECONDS
    # (the launch ending also stops the wait)
    while [ "$(latest_of "$T/$name")" = "$before" ] && kill -0 "$JOB" 2>/dev/null; do sleep 0.1; done
    d=$(rand_delay 0 "$(awk -v a="$lo" -v b="$hi" 'BEGIN { printf "%.2f", b - a }')"); sleep "$d"
    when="${d}s after its first new checkpoint ($((SECONDS - t0w)) s in)"
  fi
  if ! kill -0 "$JOB" 2>/dev/null; then   # finished before the kill
    wait "$JOB" || { cat "$T/$name.kill$k.log"; fail "$name: run $k failed"; }
    ended=1; echo "  kill $k: the run had already finished at $when"
    return
  fi
  case $j in
    1) how="the whole job"; pkill -9 -s "$JOB" 2>/dev/null || true ;;
    2) victim=""   # one rank of the job (mpirun may still be starting them)
       for _ in $(seq 50); do
         victim=$(pgrep -s "$JOB" | grep -v "^$JOB\$" | shuf -n1 --random-source=<(yes "$k") || true)
         [ -n "$victim" ] && break
         kill -0 "$JOB" 2>/dev/null || break; sleep 0.1
       done
       if [ -z "$victim" ]; then
         # no rank left: the launch is ending by itself (its ranks finished the run and
         # mpirun is closing) -- it must end well, and that counts as finished first
         wait_job "$JOB" 30
         [ "$RC" -eq 0 ] || { cat "$T/$name.kill$k.log"; fail "$name: run $k ended rc $RC with no rank left to kill"; }
         ended=1; echo "  kill $k: the run had already finished its ranks at $when"
         return
       fi
       how="rank process $victim ($(ps -o comm= -p "$victim" 2>/dev/null || echo gone))"
       kill -9 "$victim" 2>/dev/null || true ;;
    3) how="mpirun alone"; kill -9 "$JOB" 2>/dev/null || true ;;
  esac
  wait_job "$JOB" 30
  [ "$RC" -ne 124 ] || fail "$name: the job did not end within 30 s of kill -9 of $how"
  all_gone "$name" "kill -9 of $how"
  echo "  kill $k at $when: $how; latest now $(latest_of "$T/$name")"
}

# ---------------------------------------------------------------------------------------
echo "== 1a. SFT, 2 learner ranks: killed at fault points and at random moments, resume=auto -> bit-identical"
# (the fault-point kills land at steps 100, 130 and 150 whatever the run's length; the
# timed kills share the rest)
STEPS=600
# under ASan (make asan) every step is ~5x slower: fewer steps give as many kills
if [ -n "${RLHF_ASAN:-}" ]; then STEPS=400; fi
SFTRUN="$SFT optim.steps=$STEPS run.ckpt_every=50 run.keep_last=2"
t0=$(date +%s.%N)
mpirun -np 2 "$B/learner" sft $SFTRUN run.out_dir="$T/sft_ref" > "$T/sft_ref.log" 2>&1 || { cat "$T/sft_ref.log"; fail "reference SFT"; }
t_ref=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
echo "  uninterrupted run: ${t_ref}s"
# kill windows scale with the machine: each launch gets at most ~40% of a whole run
hi=$(awk -v t="$t_ref" 'BEGIN { h = 0.4 * t; if (h < 1.3) h = 1.3; printf "%.2f", h }')
run_with_kills sft_k "ckpt_saved:2 train_step:30 ckpt_saved:1" 0.8 "$hi" mpirun -np 2 "$B/learner" sft $SFTRUN run.out_dir="$T/sft_k" run.resume=auto
"$B/rlhf-ckpt" diff "$T/sft_ref/$(printf "ckpt-%08d.h5" "$STEPS")" "$T/sft_k/$(printf "ckpt-%08d.h5" "$STEPS")" > "$T/diff.log" 2>&1 \
  || { cat "$T/diff.log"; fail "SFT killed 6 times is not bit-identical to the uninterrupted run"; }
grep -h "resumed from" "$T"/sft_k.*.log | sed 's/^/  /' || true
[ "$(grep -l "resumed from" "$T"/sft_k.*.log | wc -l)" -ge 1 ] || fail "SFT: no relaunch resumed from a checkpoint"

echo "== 1b. SFT: SIGKILL inside a checkpoint write (after the weights / before the rename)"
for point in ckpt_data:2 ckpt_commit:3; do  # (the 2nd / 3rd checkpoint of the run)
  d="$T/sft_${point%%:*}"
  RLHF_FAULT_KILL=$point RLHF_FAULT_LOG="$d.fault" mpirun -np 2 "$B/learner" sft $SFTRUN run.out_dir="$d" > "$d.log" 2>&1 && fail "$point: the run was not killed"
  # (the killed rank's own stderr line may not reach the log: mpirun can end the job first)
  grep -q "fault injection: SIGKILL at ${point%%:*}" "$d.fault" || { cat "$d.log"; fail "$point: no injected kill"; }
  ls "$d"/*.tmp > /dev/null 2>&1 || fail "$point: no half-written .tmp left by the kill (test is vacuous)"
  mpirun -np 2 "$B/learner" sft $SFTRUN run.out_dir="$d" run.resume=auto > "$d.resume.log" 2>&1 || { cat "$d.resume.log"; fail "$point: resume"; }
  grep -q "resumed from" "$d.resume.log" || fail "$point: did not resume from the last complete checkpoint"
  "$B/rlhf-ckpt" diff "$T/sft_ref/$(printf "ckpt-%08d.h5" "$STEPS")" "$d/$(printf "ckpt-%08d.h5" "$STEPS")" > "$T/diff.log" 2>&1 \
    || { cat "$T/diff.log"; fail "$point: not bit-identical after the kill"; }
  echo "  $point: killed mid-write, $(grep -o 'resumed from .*' "$d.resume.log" | sed "s|$T/||"), final bit-identical"
done

# a misspelt point must stop the run, not make a fault test pass vacuously
RLHF_FAULT_KILL=ckpt_save:1 mpirun -np 1 "$B/learner" sft $SFT optim.steps=2 run.ckpt_every=0 \
  run.out_dir="$T/typo" > "$T/typo.log" 2>&1 && { cat "$T/typo.log"; fail "RLHF_FAULT_KILL=ckpt_save:1 was accepted"; }
grep -q 'unknown point "ckpt_save"' "$T/typo.log" || { cat "$T/typo.log"; fail "RLHF_FAULT_KILL typo: no clear error"; }
echo "  RLHF_FAULT_KILL=ckpt_save:1 refused: $(grep -o 'unknown point.*' "$T/typo.log" | head -1)"

# ---------------------------------------------------------------------------------------
echo "== SFT policy for the online scenarios"
mpirun -np 1 "$B/learner" sft $SFT optim.steps=150 run.ckpt_every=0 run.out_dir="$T/sft" > "$T/sft.log" 2>&1 || { cat "$T/sft.log"; fail "sft"; }
PPO="configs/ppo.ini data.train=$T/data/prompts_train.jsonl data.eval= model.init=$T/sft $MODEL
  judge.kind=rule judge.rule=contains:help ppo.value_init=sft ppo.reward_ckpt= ppo.ref_ckpt=
  ppo.actor_batch=8 ppo.rollout_batch=32 ppo.minibatch=16 optim.lr=5e-4 optim.min_lr=5e-4
  run.log_every=1 run.keep_last=2"
ppo_cmd() {  # ppo_cmd OUT [overrides]: the MPMD launch, 1 learner, 1 reward server, 2 actors
  local out=$1; shift
  echo mpirun -np 1 "$B/learner" ppo $PPO run.out_dir="$out" "$@" \
    : -np 1 "$B/reward_server" $PPO run.out_dir="$out" "$@" \
    : -np 2 "$B/actor" $PPO run.out_dir="$out" "$@"
}

echo "== 1c. PPO (sync, 4 ranks): killed at fault points and at random moments, resume=auto -> bit-identical"
U=30
if [ -n "${RLHF_ASAN:-}" ]; then U=16; fi
t0=$(date +%s.%N)
$(ppo_cmd "$T/ppo_ref" ppo.updates=$U run.ckpt_every=1) > "$T/ppo_ref.log" 2>&1 || { cat "$T/ppo_ref.log"; fail "reference PPO"; }
t_ref=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
echo "  uninterrupted run: ${t_ref}s"
hi=$(awk -v t="$t_ref" 'BEGIN { h = 0.4 * t; if (h < 1.5) h = 1.5; printf "%.2f", h }')
run_with_kills ppo_k "ckpt_saved:3 ppo_update:2 ckpt_commit:2" 1.0 "$hi" $(ppo_cmd "$T/ppo_k" ppo.updates=$U run.ckpt_every=1 run.resume=auto)
"$B/rlhf-ckpt" diff "$T/ppo_ref/$(printf "ckpt-%08d.h5" "$U")" "$T/ppo_k/$(printf "ckpt-%08d.h5" "$U")" > "$T/diff.log" 2>&1 \
  || { cat "$T/diff.log"; fail "PPO killed 6 times is not bit-identical to the uninterrupted run"; }
grep -h "resumed from" "$T"/ppo_k.*.log | sed 's/^/  /' || true
[ "$(grep -l "resumed from" "$T"/ppo_k.*.log | wc -l)" -ge 1 ] || fail "PPO: no relaunch resumed from a checkpoint"

# ---------------------------------------------------------------------------------------
echo "== 2. a rank of a PPO job dies: the job ends < 30 s, naming rank and role"
# world ranks of tools/rlhf-run's layout: 0 learner, 1 reward server, 2-3 actors
for spec in "3:actor 1" "1:reward_server 0" "0:learner 0"; do
  rank=${spec%%:*}; role=${spec#*:}
  start_group "$T/dead$rank.log" tools/rlhf-run configs/ppo.ini -a 2 \
    data.train="$T/data/prompts_train.jsonl" data.eval= model.init="$T/sft" $MODEL judge.kind=rule \
    judge.rule=contains:help ppo.value_init=sft ppo.reward_ckpt= ppo.ref_ckpt= ppo.actor_batch=8 \
    ppo.rollout_batch=32 ppo.minibatch=16 ppo.updates=1000 run.ckpt_every=0 run.out_dir="$T/dead$rank"
  # wait until the job is training (first metrics line), then kill the rank's process
  # (no time limit of ours: a job that ends first fails just below)
  while ! grep -qs '"stage": "ppo"' "$T/dead$rank/metrics.jsonl" && kill -0 "$JOB" 2>/dev/null; do sleep 0.1; done
  grep -q '"stage": "ppo"' "$T/dead$rank/metrics.jsonl" 2>/dev/null || { cat "$T/dead$rank.log"; fail "dead rank $rank: the job did not start"; }
  victim=""
  for _ in $(seq 50); do   # (a process's environ can be briefly unreadable: look again)
    for p in $(pgrep -s "$JOB"); do
      if tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$rank"; then victim=$p; fi
    done
    [ -n "$victim" ] && break
    kill -0 "$JOB" 2>/dev/null || break; sleep 0.1
  done
  if [ -z "$victim" ]; then
    ps -e -o sid=,pid=,stat=,args= | awk -v s="$JOB" '$1 == s'; cat "$T/dead$rank.log"
    fail "dead rank $rank: no process with OMPI_COMM_WORLD_RANK=$rank"
  fi
  t0=$(date +%s.%N)
  kill -9 "$victim"
  wait_job "$JOB" 30
  dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  [ "$RC" -ne 124 ] || fail "dead rank $rank ($role): the job did not end within 30 s"
  [ "$RC" -ne 0 ] || fail "dead rank $rank ($role): exit status 0"
  grep -q "world rank $rank was $role" "$T/dead$rank.log" || { cat "$T/dead$rank.log"; fail "dead rank $rank: no message naming rank $rank as $role"; }
  all_gone "dead rank $rank" "the end of the job"
  echo "  kill -9 of rank $rank ($role): job ended in ${dt}s, rc $RC: $(grep -m1 "was $role" "$T/dead$rank.log")"
done

# ---------------------------------------------------------------------------------------
echo "== 3. the disk fills while checkpointing"
D="$T/full"
# a bigger model (3.3 M parameters, ~40 MB checkpoints) so that the size limit below is
# far above what mpirun's own files need
BIG="$SFT model.n_embd=256 model.n_layer=4 model.n_head=4 optim.steps=6 run.ckpt_every=2"
mpirun -np 1 "$B/learner" sft $BIG run.stop_at_step=4 run.out_dir="$D" > "$D.log" 2>&1 || { cat "$D.log"; fail "disk-full: first run"; }
good="$D/ckpt-00000004.h5"
[ -f "$good" ] || fail "disk-full: no checkpoint at step 4"
sum_before=$(sha256sum "$good" | cut -d' ' -f1); latest_before=$(cat "$D/latest")
cp "$D/latest" "$T/latest_at_4"
size_kb=$(( $(stat -c %s "$good") / 1024 ))
limit_kb=$(( size_kb / 2 ))
# a file-size limit below one checkpoint: the next checkpoint write fails part-way with
# EFBIG, as a full disk fails it with ENOSPC (the ranks ignore SIGXFSZ, common/mpi_util.c)
( ulimit -f "$limit_kb"
  exec mpirun -np 1 "$B/learner" sft $BIG run.out_dir="$D" run.resume=auto ) > "$D.fill.log" 2>&1 \
  && { cat "$D.fill.log"; fail "disk-full: the run succeeded with a ${limit_kb} KiB file limit"; }
grep -q "checkpoint at step 6 failed: .*(the previous checkpoint is untouched)" "$D.fill.log" || { cat "$D.fill.log"; fail "disk-full: no clear error"; }
grep -q "signal" "$D.fill.log" && { cat "$D.fill.log"; fail "disk-full: a rank died of a signal"; }
[ "$(sha256sum "$good" | cut -d' ' -f1)" = "$sum_before" ] || fail "disk-full: the previous checkpoint changed"
[ "$(cat "$D/latest")" = "$latest_before" ] || fail "disk-full: latest moved"
ls "$D"/*.tmp > /dev/null 2>&1 && fail "disk-full: a partial .tmp file was left behind"
[ -f "$D/ckpt-00000006.h5" ] && fail "disk-full: a checkpoint at step 6 appeared"
"$B/rlhf-ckpt" info "$good" > /dev/null || fail "disk-full: the previous checkpoint does not load"
mpirun -np 1 "$B/learner" sft $BIG run.out_dir="$D" run.resume=auto > "$D.after.log" 2>&1 \
  || { cat "$D.after.log"; fail "disk-full: resume after space came back"; }
grep -q "resumed from .*ckpt-00000004.h5 at step 4" "$D.after.log" || fail "disk-full: did not resume from step 4"
echo "  limit ${limit_kb} KiB < checkpoint ${size_kb} KiB: $(grep -o 'checkpoint at step 6 failed: .*' "$D.fill.log" | head -1 | cut -c1-160)..."
echo "  previous checkpoint unchanged (sha256), loadable, still latest; resumed from it once space came back"

# (b) a really full filesystem: a tmpfs with room for one checkpoint and a half, holding
# the run directory; the next checkpoint write fails with ENOSPC. Needs CAP_SYS_ADMIN
# (root outside a restricted container); where mounting is refused it says so and the
# file-size limit above stands for it.
M="$T/tmpfs"
mkdir -p "$M"
if mount -t tmpfs -o size=$(( size_kb * 3 / 2 ))k tmpfs "$M" 2>/dev/null; then
  umount_m() { umount "$M" 2>/dev/null || true; }
  trap 'umount_m; cleanup' EXIT
  mkdir "$M/run" && cp "$good" "$M/run/" && cp "$T/latest_at_4" "$M/run/latest"
  sum_m=$(sha256sum "$M/run/$(basename "$good")" | cut -d' ' -f1)
  mpirun -np 1 "$B/learner" sft $BIG run.out_dir="$M/run" run.resume=auto > "$D.enospc.log" 2>&1 \
    && { cat "$D.enospc.log"; fail "tmpfs full: the run succeeded"; }
  grep -q "checkpoint at step 6 failed: .*(the previous checkpoint is untouched)" "$D.enospc.log" || { cat "$D.enospc.log"; fail "tmpfs full: no clear error"; }
  grep -q "signal" "$D.enospc.log" && { cat "$D.enospc.log"; fail "tmpfs full: a rank died of a signal"; }
  [ "$(sha256sum "$M/run/$(basename "$good")" | cut -d' ' -f1)" = "$sum_m" ] || fail "tmpfs full: the previous checkpoint changed"
  [ "$(cat "$M/run/latest")" = "$latest_before" ] || fail "tmpfs full: latest moved"
  ls "$M/run"/*.tmp > /dev/null 2>&1 && fail "tmpfs full: a partial .tmp file was left behind"
  "$B/rlhf-ckpt" info "$M/run/$(basename "$good")" > /dev/null || fail "tmpfs full: the previous checkpoint does not load"
  echo "  tmpfs of $(( size_kb * 3 / 2 )) KiB: $(grep -o 'checkpoint at step 6 failed: .*' "$D.enospc.log" | head -1 | cut -c1-160)..."
  umount_m
else
  echo "SKIP: disk full (b), a really full tmpfs: cannot mount a tmpfs here (needs CAP_SYS_ADMIN); the file-size limit (a) exercises the same write-failure path"
fi

# ---------------------------------------------------------------------------------------
echo "== 4. NaN gradients"
N="$T/nan"
# (a) two isolated NaN steps: skipped, logged, the run ends with finite weights
RLHF_FAULT_NONFINITE=5,6 mpirun -np 2 "$B/learner" sft $SFT optim.steps=12 run.ckpt_every=0 run.max_nonfinite=3 \
  run.out_dir="$N/a" > "$N.a.log" 2>&1 || { cat "$N.a.log"; fail "nan: isolated NaN steps stopped the run"; }
for s in 5 6; do grep -q "non-finite gradient at step $s: update skipped" "$N.a.log" || fail "nan: step $s not reported"; done
grep -q "2 non-finite steps skipped" "$N.a.log" || { cat "$N.a.log"; fail "nan: skipped count"; }
"$B/rlhf-ckpt" info "$N/a" > "$N.a.info" 2>&1 || { cat "$N.a.info"; fail "nan: final checkpoint does not load"; }
# (b) a skipped step changes nothing: NaN at step 5, stopped after step 5 == stopped after step 4
RLHF_FAULT_NONFINITE=5 mpirun -np 2 "$B/learner" sft $SFT optim.steps=12 run.stop_at_step=5 run.ckpt_every=0 \
  run.out_dir="$N/b5" > "$N.b5.log" 2>&1 || { cat "$N.b5.log"; fail "nan: stop at 5"; }
mpirun -np 2 "$B/learner" sft $SFT optim.steps=12 run.stop_at_step=4 run.ckpt_every=0 \
  run.out_dir="$N/b4" > "$N.b4.log" 2>&1 || { cat "$N.b4.log"; fail "nan: stop at 4"; }
"$B/rlhf-ckpt" diff "$N/b4/ckpt-00000004.h5" "$N/b5/ckpt-00000005.h5" > "$T/diff.log" 2>&1 || true
# only the step counter may differ (5 vs 4): weights, AdamW m, v and step identical
[ "$(grep -c "identical" "$T/diff.log")" -ge 3 ] && ! grep -v "^  step " "$T/diff.log" | grep -q DIFFER \
  || { cat "$T/diff.log"; fail "nan: the skipped step changed weights or optimizer state"; }
# (c) too many in a row: the run stops with a message; the checkpoints before stay finite
RLHF_FAULT_NONFINITE=7,8,9,10 mpirun -np 2 "$B/learner" sft $SFT optim.steps=12 run.ckpt_every=3 run.max_nonfinite=3 \
  run.out_dir="$N/c" > "$N.c.log" 2>&1 && { cat "$N.c.log"; fail "nan: 4 NaN steps in a row did not stop the run"; }
grep -q "4 consecutive non-finite gradients (run.max_nonfinite = 3)" "$N.c.log" || { cat "$N.c.log"; fail "nan: no stop message"; }
[ -f "$N/c/ckpt-00000012.h5" ] && fail "nan: the run went on to the end"
"$B/rlhf-ckpt" info "$N/c" > "$N.c.info" 2>&1 || { cat "$N.c.info"; fail "nan: latest checkpoint does not load or is not finite"; }
grep -q "ckpt-00000009.h5" "$N.c.info" || { cat "$N.c.info"; fail "nan: latest should be step 9"; }
# steps 7-9 were skipped: the step-9 checkpoint holds the step-6 weights and AdamW state
"$B/rlhf-ckpt" diff "$N/c/ckpt-00000006.h5" "$N/c/ckpt-00000009.h5" > "$T/diff.log" 2>&1 || true
[ "$(grep -c "identical" "$T/diff.log")" -ge 3 ] && ! grep -v "^  step " "$T/diff.log" | grep -q DIFFER \
  || { cat "$T/diff.log"; fail "nan: skipped steps 7-9 changed the weights"; }
# (d) PPO: an isolated NaN minibatch step is skipped (policy and value together)
RLHF_FAULT_NONFINITE=3 $(ppo_cmd "$N/ppo" ppo.updates=3 run.ckpt_every=0 run.max_nonfinite=2) > "$N.ppo.log" 2>&1 \
  || { cat "$N.ppo.log"; fail "nan: PPO with one NaN step"; }
grep -q "non-finite gradient in update 1: minibatch step skipped (1 in a row)" "$N.ppo.log" || { cat "$N.ppo.log"; fail "nan: PPO did not report the skip"; }
"$B/rlhf-ckpt" info "$N/ppo" > /dev/null || fail "nan: PPO final checkpoint"
echo "  isolated NaN steps skipped and logged; a skipped step changes no weight (bit-identical);"
echo "  4 in a row stop the run: $(grep -o '4 consecutive non-finite.*' "$N.c.log" | head -1 | cut -c1-100)"

echo "t_faults: all checks passed"
