#!/usr/bin/env bash
# tests/t_label_browser.sh — the labelling web page in a real headless browser: Debian's
# chromium driven by puppeteer-core (tests/label_browser.js) logs in with a token, judges
# items in pair, thumbs and rank mode by clicking buttons and pressing the page's
# keyboard shortcuts (rank mode: placing responses best first with a tie and a
# take-back, and once by the place selects alone), undoes one judgment and judges that
# item again; the JSONL log must then hold exactly those records, in order (rankings with
# their places). The first item is hostile (markup and a <script> in its texts): it must
# show as text and open no dialog.
#
# Needs chromium and node (tools/deps.sh installs them) and puppeteer-core with its
# dependencies under .cache/npm/ (tools/deps.sh fetches them, pinned); without them, or
# when chromium cannot start here, it prints SKIP with the reason (exit 77). Servers
# listen on a port the kernel picks; the test waits for their "listening on" line.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=$PWD/$BUILD/rlhf-label
[ -x "$BIN" ] || { echo "t_label_browser: $BIN is missing: run make first"; exit 1; }
PUPPETEER_DIR=$PWD/.cache/npm/puppeteer-core-24.43.1/package
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
command -v node >/dev/null || { echo "SKIP: node is not installed (tools/deps.sh installs it)"; exit 77; }
[ -n "$CHROMIUM" ] || { echo "SKIP: chromium is not installed (tools/deps.sh installs it)"; exit 77; }
[ -d "$PUPPETEER_DIR/node_modules" ] || {
  echo "SKIP: puppeteer-core is not in $PUPPETEER_DIR (tools/deps.sh fetches it; was the npm registry out of reach?)"; exit 77; }
export PUPPETEER_DIR CHROMIUM
W=$(mktemp -d "${RLHF_TEST_TMP:-/tmp}/t_label_browser.XXXXXX")
PID=
cleanup() { [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
wait_for() {
  local end=$((SECONDS + $1 * ${RLHF_TEST_WAIT_SCALE:-6})); shift
  until "$@"; do [ $SECONDS -ge $end ] && return 1; sleep 0.1; done
}

# session MODE CANDIDATES: serve, click through, stop, check the log
session() {
  local mode=$1 cand=$2 log=$W/$1.prefs.jsonl
  "$BIN" serve --port 0 --mode "$mode" --annotators annie "$cand" --out "$log" >"$W/$mode.out" 2>&1 &
  PID=$!
  if ! wait_for 10 grep -qs "listening on" "$W/$mode.out"; then
    bad "$mode: the server did not start"; sed 's/^/    | /' "$W/$mode.out"; return
  fi
  local url tok rc
  url=$(sed -n 's/.*listening on \(http:[^ ]*\) .*/\1/p' "$W/$mode.out")
  tok=$(sed -n 's/.*token for annie: //p' "$W/$mode.out")
  timeout 300 node tests/label_browser.js run "$mode" "$url" "$tok" "$W/$mode.actions" >"$W/$mode.node" 2>&1
  rc=$?
  kill "$PID"; wait "$PID" 2>/dev/null
  local src=$?
  PID=
  # exit 0 on SIGTERM: under ASan, no leak or error report either
  [ $src -eq 0 ] || { bad "$mode: the server exited $src on SIGTERM"; tail -20 "$W/$mode.out" | sed 's/^/    | /'; }
  if [ $rc -eq 3 ]; then
    echo "SKIP: $(grep -m1 'chromium did not start' "$W/$mode.node" | cut -c1-180)"
    exit 77
  fi
  if [ $rc -ne 0 ]; then bad "$mode: clicking through the page"; sed 's/^/    | /' "$W/$mode.node"; return; fi
  ok "$mode: $(tail -1 "$W/$mode.node")"
  if node tests/label_browser.js check "$log" "$W/$mode.actions" annie >"$W/$mode.check" 2>&1; then
    ok "$mode: $(tail -1 "$W/$mode.check")"
  else
    bad "$mode: the log"; sed 's/^/    | /' "$W/$mode.check" "$log"
  fi
}

cat >"$W/pairs.jsonl" <<'EOF'
{"id":"h<1>","prompt":"Say <b>hi</b>","a":"<script>alert('pwned')</script>","b":"<img src=x onerror=alert(2)>"}
{"id":"p2","prompt":"two","a":"a two","b":"b two"}
{"id":"p3","prompt":"three","a":"a three","b":"b three"}
{"id":"p4","prompt":"four","a":"a four","b":"b four"}
EOF
cat >"$W/thumbs.jsonl" <<'EOF'
{"id":"t1","prompt":"Say <b>hi</b>","response":"<script>alert('pwned')</script>"}
{"id":"t2","prompt":"two","response":"r two"}
{"id":"t3","prompt":"three","response":"r three"}
EOF
cat >"$W/rank.jsonl" <<'EOF'
{"id":"k<1>","prompt":"Rank <b>these</b>","responses":["<script>alert('pwned')</script>","<img src=x onerror=alert(3)>","three","four"]}
{"id":"k2","prompt":"two","responses":["x","y","z"]}
{"id":"k3","prompt":"three","responses":["p","q","r"]}
EOF
session pair "$W/pairs.jsonl"
session thumbs "$W/thumbs.jsonl"
session rank "$W/rank.jsonl"
echo "t_label_browser: $fails failure(s)"
[ "$fails" -eq 0 ]
