#!/usr/bin/env bash
# tests/t_mpi.sh — common/mpi_util.c and common/msg.c under real MPMD mpirun launches of
# the helper programs tests/mpi_roles.c and tests/mpi_echo.c (4-6 ranks, oversubscribed).
#
# Checks: roles are found and counted on every rank; run.threads = 0 divides the CPUs a
# rank may use among the ranks sharing them (unbound and bound launches); a launch that lacks a role (or has
# one an offline stage cannot use) exits non-zero with ONE clear message from rank 0; msg
# messages travel learner -> all (weights), actor -> reward -> actor -> learner and are
# verified bit-exactly; a bad message makes the receiver abort the job naming the sender;
# mpi_fatal, an MPI error caught by MPI_CHECK, a SIGSEGV, a kill -9 of one rank, a silent peer (peer timeout) and a stuck
# collective (watchdog) each end the WHOLE job with a non-zero exit well within 30 s
# (every launch runs under `timeout`, so a hang fails the test); ranks waiting for a
# message use < 10% of a core (utime+stime from /proc/<pid>/stat over 3 s) and really sleep
# (voluntary context switches in /proc/<pid>/status: >= 20/s; a sleeping poll blocks ~500
# times/s on an idle machine, fewer when the CPUs are busy; a spin loop has none).
# Run by tests/run.sh (TEST_FILTER=mpi); exits non-zero on the first failed check.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
ROLES=$BUILD/tests/mpi_roles
ECHO=$BUILD/tests/mpi_echo
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
# Open MPI's own allocations look like leaks to LeakSanitizer; everything else of ASan stays.
if [ -n "${RLHF_ASAN:-}" ]; then export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0"; fi
TMP=$(mktemp -d "${RLHF_TEST_TMP:-/tmp}/t_mpi.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

fail() { echo "FAIL: $*"; [ -f "$TMP/out" ] && sed 's/^/    > /' "$TMP/out" | tail -n 30; exit 1; }
for p in "$ROLES" "$ECHO"; do [ -x "$p" ] || fail "$p is not built (make $p)"; done
command -v mpirun >/dev/null || fail "mpirun not found: install Open MPI (tools/deps.sh)"

MPIRUN=(mpirun --allow-run-as-root --oversubscribe)
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# launch LIMIT_S ARGS... : run mpirun under timeout; sets RC and MS (elapsed), output in $TMP/out
launch() {
  local limit=$1; shift
  local t0; t0=$(now_ms)
  timeout "$limit" "${MPIRUN[@]}" "$@" >"$TMP/out" 2>&1
  RC=$?
  MS=$(( $(now_ms) - t0 ))
}
expect_ok() { [ "$RC" -eq 0 ] || fail "$1: exit $RC, expected 0"; }
# a failure that ended the job by itself: non-zero, not killed by `timeout`, under 30 s
expect_abort() {
  [ "$RC" -ne 0 ] || fail "$1: exit 0, expected a failure"
  [ "$RC" -ne 124 ] || fail "$1: hung (killed by timeout)"
  [ "$MS" -lt 30000 ] || fail "$1: took ${MS} ms to end the job"
}
expect_text() { grep -qF -- "$2" "$TMP/out" || fail "$1: output lacks '$2'"; }
ok() { echo "ok   $1 (${MS} ms)"; }

# ---- roles ------------------------------------------------------------------------------
launch 60 -np 1 "$ROLES" learner roles : -np 2 "$ROLES" actor roles : -np 1 "$ROLES" reward roles
expect_ok "roles 1:2:1"
expect_text "roles 1:2:1" "launch: 1 learner, 2 actor, 1 reward"
expect_text "roles 1:2:1" "two-tag wait alternated"
expect_text "roles 1:2:1" "roles ok"
[ "$(grep -c 'role_rank' "$TMP/out")" -eq 4 ] || fail "roles 1:2:1: not every rank reported"
expect_text "roles 1:2:1" "rank 2 role actor role_rank 1/2: world rank 2 (actor 1)"
ok "roles 1:2:1"

launch 60 -np 2 "$ROLES" learner roles : -np 3 "$ROLES" actor roles : -np 1 "$ROLES" reward roles
expect_ok "roles 2:3:1"
expect_text "roles 2:3:1" "launch: 2 learner, 3 actor, 1 reward"
expect_text "roles 2:3:1" "rank 1 role learner role_rank 1/2: world rank 1 (learner 1)"
expect_text "roles 2:3:1" "rank 5 role reward role_rank 0/1: world rank 5 (reward 0)"
ok "roles 2:3:1"

launch 60 -np 2 "$ROLES" learner offline
expect_ok "offline 2 learners"
expect_text "offline 2 learners" "roles ok"
ok "offline 2 learners"

# ---- run.threads = 0: the CPUs a rank may use, divided among the ranks sharing them ------
NCPU=$(nproc)
launch 60 --bind-to none -np 3 "$ROLES" learner threads
expect_ok "auto threads, 3 unbound ranks"
want=$(( NCPU / 3 > 1 ? NCPU / 3 : 1 ))
[ "$(grep -c "threads $want (auto: $NCPU CPUs* for this rank, shared by 3 ranks of the job on this node)" "$TMP/out")" -eq 3 ] \
  || fail "auto threads, 3 unbound ranks on $NCPU CPUs: expected $want threads each"
ok "auto threads: 3 unbound ranks on $NCPU CPUs -> $want each"
launch 60 --bind-to none -np 1 "$ROLES" learner threads
expect_ok "auto threads, 1 unbound rank"
expect_text "auto threads, 1 unbound rank" "rank 0 threads $NCPU (auto: $NCPU CPU"
ok "auto threads: 1 unbound rank -> $NCPU"
launch 60 --bind-to none -np 1 "$ROLES" learner threads : -np 2 "$ROLES" actor threads : -np 1 "$ROLES" reward threads
expect_ok "auto threads, PPO layout"
want=$(( NCPU / 4 > 1 ? NCPU / 4 : 1 )); want3=$(( NCPU / 3 > 1 ? NCPU / 3 : 1 ))
[ "$(grep -c "threads $want (auto: $NCPU CPUs* for this rank, shared by 4 ranks of the job on this node)" "$TMP/out")" -eq 4 ] \
  || fail "auto threads, PPO layout: expected $want threads each among all 4 ranks"
expect_text "auto threads, PPO layout" "rank 0 phased $NCPU (auto: $NCPU CPU"
expect_text "auto threads, PPO layout" "shared by 1 rank of the job that train on this node)"
[ "$(grep -c "phased $want3 (auto: $NCPU CPUs* for this rank, shared by 3 ranks of the job that generate or score on this node)" "$TMP/out")" -eq 3 ] \
  || fail "auto threads, PPO layout: expected $want3 threads for each actor and reward server when the phases take turns"
ok "auto threads: learner + reward + 2 actors -> $want each; taking turns: learner $NCPU, the others $want3"
if [ "$NCPU" -ge 2 ]; then
  launch 60 --bind-to core -np 2 "$ROLES" learner threads
  expect_ok "auto threads, 2 ranks bound to a core each"
  [ "$(grep -c "threads 1 (auto: 1 CPU for this rank, shared by 1 rank of" "$TMP/out")" -eq 2 ] \
    || fail "auto threads, 2 ranks bound to a core each: expected 1 thread each"
  ok "auto threads: 2 ranks bound to a core each -> 1 each"
fi

# ---- wrong launches: one message from rank 0, non-zero exit ------------------------------
launch 60 -np 1 "$ROLES" learner roles : -np 2 "$ROLES" actor roles
expect_abort "no reward rank"
expect_text "no reward rank" "stage 'ppo' was launched with 1 learner, 2 actor and 0 reward ranks"
expect_text "no reward rank" "it needs at least 1 reward rank"
expect_text "no reward rank" "mpirun -np 1 build/learner ppo cfg.ini : -np 1 build/reward_server"
[ "$(grep -c 'rlhf-c: error' "$TMP/out")" -eq 1 ] || fail "no reward rank: message not printed exactly once"
grep -q "roles ok" "$TMP/out" && fail "no reward rank: the ranks went on running"
ok "no reward rank"

launch 60 -np 2 "$ROLES" learner offline : -np 1 "$ROLES" actor offline
expect_abort "offline with an actor"
expect_text "offline with an actor" "but it needs no actor ranks"
expect_text "offline with an actor" "mpirun -np 2 build/learner sft cfg.ini"
ok "offline with an actor"

# ---- the message flow ---------------------------------------------------------------------
launch 120 -np 1 "$ECHO" learner 4 : -np 3 "$ECHO" actor 4 : -np 2 "$ECHO" reward 4
expect_ok "echo 1:3:2"
expect_text "echo 1:3:2" "learner verified 12 rollouts"
expect_text "echo 1:3:2" "from 3 actors via 2 reward ranks"
[ "$(grep -c 'reward . served' "$TMP/out")" -eq 2 ] || fail "echo 1:3:2: a reward rank did not finish"
ok "echo 1:3:2: $(grep -o 'weights.*' "$TMP/out")"

launch 60 -np 1 "$ECHO" learner 3 : -np 2 "$ECHO" actor 3 bad : -np 1 "$ECHO" reward 3
expect_abort "bad token"
expect_text "bad token" "[rank 3 role reward]"
expect_text "bad token" "bad message from world rank 1 (actor 0) (TAG_SCORE_REQ"
expect_text "bad token" "field 'tokens': sequence 0 position 0: token id 500 outside 0..499"
ok "bad token"

launch 60 -np 1 "$ECHO" learner 3 : -np 2 "$ECHO" actor 3 wrongtag : -np 1 "$ECHO" reward 3
expect_abort "wrong tag"
expect_text "wrong tag" "world rank 1 (actor 0) sent a stop message with TAG_SCORE_REQ"
ok "wrong tag"

# ---- failures end the whole job -----------------------------------------------------------
launch 60 -np 1 "$ROLES" learner fatal : -np 2 "$ROLES" actor fatal : -np 1 "$ROLES" reward fatal
expect_abort "mpi_fatal"
expect_text "mpi_fatal" "rlhf-c: [rank 3 role reward] tests/mpi_roles.c:"
expect_text "mpi_fatal" "deliberate failure for the test"
ok "mpi_fatal"

launch 60 -np 1 "$ROLES" learner mpierror : -np 2 "$ROLES" actor mpierror : -np 1 "$ROLES" reward mpierror
expect_abort "MPI_CHECK"
expect_text "MPI_CHECK" "rlhf-c: [rank 1 role actor] tests/mpi_roles.c:"
expect_text "MPI_CHECK" ": MPI error: MPI_ERR_RANK: invalid rank (in MPI_Send("
ok "MPI_CHECK"

launch 60 -np 1 "$ROLES" learner crash : -np 2 "$ROLES" actor crash : -np 1 "$ROLES" reward crash
expect_abort "SIGSEGV"
expect_text "SIGSEGV" "rlhf-c: [rank 2 role actor] crashed with signal 11 (SIGSEGV)"
ok "SIGSEGV"

# (the environment reaches every rank of a local launch; `mpirun -x` would apply to one
# app context of an MPMD line only)
export RLHF_PEER_TIMEOUT=2
launch 60 -np 1 "$ROLES" learner silent : -np 2 "$ROLES" actor silent : -np 1 "$ROLES" reward silent
expect_abort "silent peers"
expect_text "silent peers" "waited 2 s for a message (TAG_STOP) from any rank"
[ "$(grep -c 'waited 2 s' "$TMP/out")" -ge 2 ] || fail "silent peers: the timeout did not reach every rank"
ok "silent peers"

launch 60 -np 1 "$ROLES" learner watchdog : -np 2 "$ROLES" actor watchdog : \
  -np 1 "$ROLES" reward watchdog
expect_abort "watchdog"
expect_text "watchdog" "no progress for 2 s in the test's MPI_Barrier"
ok "watchdog"

export RLHF_PEER_TIMEOUT=soon
launch 60 -np 1 "$ROLES" learner roles : -np 1 "$ROLES" actor roles : -np 1 "$ROLES" reward roles
unset RLHF_PEER_TIMEOUT
expect_abort "bad RLHF_PEER_TIMEOUT"
expect_text "bad RLHF_PEER_TIMEOUT" "RLHF_PEER_TIMEOUT='soon' is not a number"
ok "bad RLHF_PEER_TIMEOUT"

# kill -9 of one actor while everybody waits (the learner would stop them after 60 s);
# the job must end within 30 s of the kill. (The waits for the ranks to start and to be
# gone have no limit of their own but the launch's: they end as soon as that happens.)
mkdir -p "$TMP/kill"
timeout 120 "${MPIRUN[@]}" -np 1 "$ROLES" learner idle "$TMP/kill" 60 : -np 2 "$ROLES" actor idle \
  "$TMP/kill" 60 : -np 1 "$ROLES" reward idle "$TMP/kill" 60 >"$TMP/out" 2>&1 &
job=$!
while [ "$(ls "$TMP/kill" | wc -l)" -lt 4 ] && kill -0 "$job" 2>/dev/null; do sleep 0.1; done
[ "$(ls "$TMP/kill" | wc -l)" -eq 4 ] || { wait "$job"; fail "kill -9: the ranks did not start"; }
sleep 0.5
victim=$(cat "$TMP/kill/pid.2")
t0=$(now_ms)
kill -9 "$victim"
wait "$job"
RC=$?
MS=$(( $(now_ms) - t0 ))
expect_abort "kill -9"
expect_text "kill -9" "exited on signal 9"
for _ in $(seq 300); do
  alive=0
  for f in "$TMP"/kill/pid.*; do [ -e "/proc/$(cat "$f")" ] && alive=1; done
  [ $alive -eq 0 ] && break
  sleep 0.1
done
[ $alive -eq 0 ] || fail "kill -9: ranks still alive 30 s after mpirun ended"
ok "kill -9 of one rank"

# ---- waiting ranks do not spin ------------------------------------------------------------
# The learner holds everyone waiting until $TMP/idle/go exists; meanwhile the CPU time of
# the four waiting ranks is read from /proc twice, 3 s apart.
mkdir -p "$TMP/idle"
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}'; } # utime+stime
# times the main thread blocked (a sleeping poll blocks ~500 times/s; a spin loop never
# does, even one that yields, which on a loaded machine may get little CPU anyway)
blocks() { awk '/^voluntary_ctxt_switches/ {print $2}' "/proc/$1/status" 2>/dev/null; }
timeout 120 "${MPIRUN[@]}" -np 1 "$ROLES" learner idle "$TMP/idle" 90 : -np 3 "$ROLES" actor \
  idle "$TMP/idle" 90 : -np 1 "$ROLES" reward idle "$TMP/idle" 90 >"$TMP/out" 2>&1 &
job=$!
while [ "$(ls "$TMP/idle" | wc -l)" -lt 5 ] && kill -0 "$job" 2>/dev/null; do sleep 0.1; done
[ "$(ls "$TMP/idle" | wc -l)" -eq 5 ] || { wait "$job"; fail "idle: the ranks did not start"; }
sleep 1
hz=$(getconf CLK_TCK)
declare -A before
declare -A vol0 vol1
for w in 1 2 3 4; do
  before[$w]=$(cpu_ticks "$(cat "$TMP/idle/pid.$w")")
  vol0[$w]=$(blocks "$(cat "$TMP/idle/pid.$w")")
done
t0=$(now_ms)
sleep 3
declare -A after
for w in 1 2 3 4; do
  after[$w]=$(cpu_ticks "$(cat "$TMP/idle/pid.$w")")
  vol1[$w]=$(blocks "$(cat "$TMP/idle/pid.$w")")
done
ms=$(( $(now_ms) - t0 ))
touch "$TMP/idle/go"
wait "$job"
RC=$?
expect_ok "idle"
report=""
for w in 1 2 3 4; do
  [[ "${before[$w]}" =~ ^[0-9]+$ && "${after[$w]}" =~ ^[0-9]+$ ]] ||
    fail "idle: could not read /proc/<pid>/stat of world rank $w while it waited"
  [[ "${vol0[$w]}" =~ ^[0-9]+$ && "${vol1[$w]}" =~ ^[0-9]+$ ]] ||
    fail "idle: could not read /proc/<pid>/status of world rank $w while it waited"
  pct=$(( (after[$w] - before[$w]) * 1000 * 100 / hz / ms ))  # percent of one core
  rate=$(( (vol1[$w] - vol0[$w]) * 1000 / ms ))              # blocking sleeps per second
  report="$report rank$w=${pct}%,${rate}/s"
  [ "$pct" -lt 10 ] || fail "idle: waiting world rank $w used ${pct}% of a core"
  [ "$rate" -ge 20 ] || fail "idle: waiting world rank $w slept only ${rate} times/s: spinning?"
done
[ "$(grep -c 'waited .* s using' "$TMP/out")" -eq 4 ] || fail "idle: not every waiting rank got the stop"
MS=$ms
ok "idle waiting CPU, sleeps over 3 s:$report (self-reported: $(grep -o '[0-9.]*% of a core' "$TMP/out" | tr '\n' ' '))"

echo "t_mpi: all checks passed"
