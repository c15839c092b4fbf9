#!/usr/bin/env bash
# tests/t_help.sh — every program answers --help and -h, and usage errors are short.
#
# The programs are discovered, not listed: every executable file in $BUILD (the roles
# learner, actor, reward_server and the rlhf-* tools), tools/rlhf-run, every learner stage
# (from the "stages:" list of `learner --help`) and every subcommand a usage text names
# ("PROG word ..." at the start of a usage line, word in lower case). For each of them,
# with --help and with -h, run without mpirun in an empty folder with an empty TMPDIR:
#   - exit status 0, a "usage:" line on stdout, "Exit status" in the text, nothing on
#     stderr;
#   - nothing written to the working folder (`learner sft --help` must not open a file
#     named --help) and nothing to TMPDIR (MPI_Init, even as a singleton, creates its
#     session folder there: none means no MPI job was started);
# and, for each program, an unknown option exits 2 with one line on stderr naming
# `--help`. The role programs' texts must also show the override form section.key=value.
set -u
cd "$(dirname "$0")/.."
B=${BUILD:-build}
T=$(mktemp -d "${RLHF_TEST_TMP:-/tmp}/t_help.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
[ -x "$B/learner" ] || fail "$B/learner is missing: run make first"
REPO=$PWD
L=$(realpath "$B/learner")
n=0

# run_in_empty OUT_PREFIX CMD...: runs CMD in an empty folder with an empty TMPDIR, no
# stdin; leaves OUT_PREFIX.{out,err,rc,files}
run_in_empty() {
  local pre=$1; shift
  rm -rf "$T/wd" "$T/tmp"; mkdir "$T/wd" "$T/tmp"
  ( cd "$T/wd" && TMPDIR="$T/tmp" timeout 30 "$@" </dev/null >"$pre.out" 2>"$pre.err"; echo $? >"$pre.rc" )
  ( cd "$T" && find wd tmp -mindepth 1 ) >"$pre.files"
}

# check_help NAME CMD...: CMD is a --help or -h invocation
check_help() {
  local name=$1; shift
  local pre="$T/r"
  run_in_empty "$pre" "$@"
  [ "$(cat "$pre.rc")" = 0 ] || { cat "$pre.err"; fail "$name: exit $(cat "$pre.rc"), expected 0"; }
  grep -q '^usage:' "$pre.out" || { cat "$pre.out"; fail "$name: no 'usage:' line on stdout"; }
  grep -qi 'exit status' "$pre.out" || fail "$name: the usage text does not name the exit statuses"
  [ ! -s "$pre.err" ] || { cat "$pre.err"; fail "$name: wrote to stderr"; }
  [ ! -s "$pre.files" ] || { cat "$pre.files"; fail "$name: wrote files (above: wd = working folder, tmp = TMPDIR, where an MPI job leaves its session)"; }
  n=$((n + 1))
}

# check_usage_error NAME CMD...: an unknown option
check_usage_error() {
  local name=$1; shift
  local pre="$T/u"
  run_in_empty "$pre" "$@"
  [ "$(cat "$pre.rc")" = 2 ] || { cat "$pre.out" "$pre.err"; fail "$name: exit $(cat "$pre.rc"), expected 2"; }
  [ "$(wc -l <"$pre.err")" -eq 1 ] || { cat "$pre.err"; fail "$name: expected a one-line hint on stderr"; }
  grep -q -- '--help' "$pre.err" || { cat "$pre.err"; fail "$name: the hint does not point to --help"; }
  [ ! -s "$pre.files" ] || { cat "$pre.files"; fail "$name: wrote files"; }
  n=$((n + 1))
}

# subcommands named at the start of a usage line of PROG's help text
subcommands() { # PROG_BASENAME HELP_FILE
  sed -nE "s#^(usage:)?[[:space:]]*([a-z./-]*/)?$1[[:space:]]+([a-z][a-z-]*)([[:space:]].*)?\$#\3#p" "$2" | sort -u
}

progs=()
for p in "$B"/*; do
  [ -f "$p" ] && [ -x "$p" ] && progs+=("$(realpath "$p")")
done
progs+=("$REPO/tools/rlhf-run")
[ ${#progs[@]} -ge 4 ] || fail "found only ${#progs[@]} programs in $B"
for p in "${progs[@]}"; do
  name=${p#"$REPO"/}; name=${name#"$(realpath "$B")"/}
  base=$(basename "$p")
  for h in --help -h; do check_help "$name $h" "$p" "$h"; done
  cp "$T/r.out" "$T/help.$base"
  check_usage_error "$name --no-such-option" "$p" --no-such-option
  case $base in learner|actor|reward_server|rlhf-run)
    grep -q 'section.key=value' "$T/help.$base" || fail "$name --help does not show the override form section.key=value" ;;
  esac
  for sub in $(subcommands "$base" "$T/help.$base"); do
    for h in --help -h; do check_help "$name $sub $h" "$p" "$sub" "$h"; done
  done
done

# every learner stage, and the stage's own usage errors
stages=$(sed -n '/^stages:/,/^[^ ]/s/^  \([a-z][a-z]*\) .*/\1/p' "$T/help.learner")
[ "$(echo "$stages" | wc -w)" -ge 6 ] || fail "learner --help lists only: $stages"
for s in $stages; do
  for h in --help -h; do check_help "learner $s $h" "$L" "$s" "$h"; done
  grep -q "^usage: build/learner $s " "$T/r.out" || fail "learner $s -h: not the stage's usage"
  check_help "learner $s CONFIG --help" "$L" "$s" cfg.ini run.seed=1 --help
  check_usage_error "learner $s (no CONFIG)" "$L" "$s"
  check_usage_error "learner $s --no-such-option" "$L" "$s" cfg.ini --no-such-option
done
check_usage_error "learner (no stage)" "$L"
check_usage_error "actor (no CONFIG)" "$(realpath "$B/actor")"
echo "t_help: $n checks: ${#progs[@]} programs, stages: $(echo $stages)"
