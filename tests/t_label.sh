#!/usr/bin/env bash
# tests/t_label.sh — end-to-end test of build/rlhf-label driven through real pseudo-terminals
# with tmux: label a few items, undo one, quit, and check the file; kill -9 in the middle
# and restart (nothing judged is lost, judged items are skipped, a torn last line is
# reported and sealed); q, SIGINT, SIGTERM, SIGHUP and Ctrl-Z/fg restore the terminal;
# side-by-side, narrow (stacked) and too-small terminals, a resize while running,
# scrolling, thumbs mode, rank mode (order keys, ties, undo, export), a second writer
# refused; without a terminal: the clear error,
# bad candidate files (file:line), non-UTF-8, an unwritable output; then `stats` and
# `export` on the files written.
#
# A private tmux server (-L rlhf-test-$$, no config file) is killed on exit (trap), so
# parallel runs never collide. Run by tests/run.sh; needs tmux (tools/deps.sh installs it).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BIN=$PWD/$BUILD/rlhf-label
[ -x "$BIN" ] || { echo "t_label: $BIN is missing: run make first"; exit 1; }
command -v tmux >/dev/null || { echo "SKIP: tmux is not installed (tools/deps.sh installs it)"; exit 77; }
W=$(mktemp -d "${RLHF_TEST_TMP:-/tmp}/t_label.XXXXXX")
SOCK=rlhf-test-$$
TM() { tmux -L "$SOCK" -f /dev/null "$@"; }
cleanup() {
  TM kill-server >/dev/null 2>&1
  rm -f "${TMUX_TMPDIR:-/tmp}/tmux-$(id -u)/$SOCK" # kill-server may leave the socket file
  rm -rf "$W"
}
trap cleanup EXIT

fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
# wait_for SECONDS CMD...: poll until CMD succeeds. SECONDS is what the step takes on an
# idle machine at most; the limit is 6 times that (RLHF_TEST_WAIT_SCALE), because it only
# catches a tool that never gets there: a condition that holds returns at once, however
# loaded the machine is, and nothing here waits for something NOT to happen.
wait_for() {
  local end=$((SECONDS + $1 * ${RLHF_TEST_WAIT_SCALE:-6})); shift
  until "$@"; do [ $SECONDS -ge $end ] && return 1; sleep 0.1; done
}
screen() { TM capture-pane -p -J -t "$1"; }
# after the tool ended: the whole pane, history included, wrapped lines joined
final_has() { TM capture-pane -p -J -S - -t "$1" | grep -qF -- "$2"; }
screen_has() { screen "$1" | grep -qF -- "$2"; }
nlines() { if [ -f "$1" ]; then wc -l <"$1" | tr -d ' '; else echo 0; fi; }
has_lines() { [ "$(nlines "$1")" -eq "$2" ]; }
# Every session runs the tool under wrap.sh, which writes the tool's pid, then its exit
# status and the terminal settings after it ended, and keeps the pane (and the tool's
# last words) on screen. (tmux's own #{pane_dead_status} is set late or not at all when
# the tool exits quickly, so the tests do not rely on it.)
dead() { [ -f "$W/$1.rc" ]; }
dead_status() { cat "$W/$1.rc"; }
tool_pid() { cat "$W/$1.pid"; }
key() { TM send-keys -t "$1" -l "$2"; }
show() { echo "---- screen of $1:"; TM capture-pane -p -J -S - -t "$1" | grep -v "^$" | sed 's/^/    | /'; }
# start NAME COLS ROWS ARGS...: a fresh session NAME running the tool with ARGS
start() {
  local name=$1 cols=$2 rows=$3; shift 3
  TM kill-session -t "$name" >/dev/null 2>&1
  rm -f "$W/$name.pid" "$W/$name.rc" "$W/$name.stty"
  TM new-session -d -s "$name" -x "$cols" -y "$rows" "sh $W/wrap.sh $W/$name $BIN $*"
}
# line_has FILE N ERE...: line N of FILE matches every extended regex
line_has() {
  local f=$1 n=$2 l; shift 2; l=$(sed -n "${n}p" "$f")
  for re in "$@"; do grep -Eq -- "$re" <<<"$l" || { echo "    line $n of $f: no match for $re: $l"; return 1; }; done
}
line_lacks() { ! sed -n "${2}p" "$1" | grep -Eq -- "$3"; }
side_by_side() { screen "$1" | grep -F '[A]' | grep -qF '[B]'; }
stacked() { screen "$1" | grep -qx '\[A\]' && screen "$1" | grep -qx '\[B\]'; }
# fails_with OUT ERE CMD...: CMD (stdin not a terminal) exits != 0 and its output matches
fails_with() {
  local out=$1 re=$2; shift 2
  "$@" </dev/null >"$out" 2>&1 && { echo "    exit status 0: $*"; return 1; }
  grep -Eq -- "$re" "$out" || { echo "    no '$re' in:"; sed 's/^/    | /' "$out"; return 1; }
}
# exits_with CODE CMD...
exits_with() { local want=$1; shift; "$@" </dev/null >/dev/null 2>&1; [ $? -eq "$want" ]; }
# stty_restored FILE: `stty -a` output shows canonical mode and echo on
stty_restored() { grep -qw -- icanon "$1" && ! grep -qw -- -icanon "$1" && grep -qw -- echo "$1" && ! grep -qw -- -echo "$1"; }
# labels FILE: the sequence of labels and undos, space-separated
labels() { grep -Eo '"label":"[A-Za-z]+"|^\{"undo"' "$1" | sed 's/"label"://; s/^{"undo"/undo/; s/"//g' | tr '\n' ' '; }

cat >"$W/wrap.sh" <<'EOF'
# wrap.sh BASE CMD...: runs CMD in the foreground of this terminal; writes BASE.pid (the
# pid of CMD), then BASE.stty (`stty -a` after CMD ended) and BASE.rc (its exit status,
# 128+n when killed by signal n); then keeps the pane open.
base=$1; shift
trap : INT TERM HUP
sh -c 'echo $$ > "$0.pid"; exec "$@"' "$base" "$@"
rc=$?
stty -a >"$base.stty" 2>&1
echo "$rc" >"$base.rc.tmp" && mv "$base.rc.tmp" "$base.rc"
exec sleep 600
EOF
# a session that outlives the others keeps the server up between them
TM new-session -d -s keep -x 80 -y 24 "sleep 600"

CAND=$W/cand.jsonl
cat >"$CAND" <<'EOF'
{"prompt":"What is the capital of France?","a":"Paris is the capital of France; it has been the seat of government for most of the last thousand years and is known for the Eiffel Tower.","b":"Lyon.","category":"geo","id":"q1"}
{"prompt":"Write a haiku about rain.","a":"Soft rain on the roof\nwhispers to the sleeping town\nmorning comes slowly","b":"Rain rain go away, come again another day.","category":"poetry"}
{"prompt":"2+2?","a":"4","b":"5 \u2014 clearly. 日本語 text","id":"q3"}
{"prompt":"Name a colour.","a":"Blue.","b":"\u001b[2J\u001b[31mred","id":"q4"}
EOF

# ---------------------------------------------------------------------------------------
echo "# 1. label, undo, quit (160x50: side by side)"
P1=$W/alice.jsonl
start s1 160 50 --annotator alice --out "$P1" "$CAND"
check "first item shown" wait_for 10 screen_has s1 "item 1 of 4"
check "side-by-side layout: [A] and [B] on one row" side_by_side s1
check "progress line" screen_has s1 "judged 0/4"
key s1 a; check "A saved and synced" wait_for 10 has_lines "$P1" 1
check "next item shown" wait_for 10 screen_has s1 "item 2 of 4"
key s1 b; check "B saved" wait_for 10 has_lines "$P1" 2
key s1 t; check "tie saved" wait_for 10 has_lines "$P1" 3
check "item 4 shown" wait_for 10 screen_has s1 "item 4 of 4"
check "escape sequences in a response are shown, not obeyed" screen_has s1 "[2J"
key s1 u; check "undo appended (not rewritten)" wait_for 10 has_lines "$P1" 4
check "undone item shown again" wait_for 10 screen_has s1 "item 3 of 4"
check "undo message" screen_has s1 "undone: tie"
key s1 '?'; check "help screen" wait_for 10 screen_has s1 "any key closes the help"
key s1 x; check "help closed" wait_for 10 screen_has s1 "item 3 of 4"
key s1 x; check "unknown key reported" wait_for 10 screen_has s1 "unknown key 'x'"
key s1 2; check "B for the undone item" wait_for 10 has_lines "$P1" 5
key s1 q; check "quit" wait_for 10 dead s1
check "exit status 0 after q" [ "$(dead_status s1)" = 0 ]
check "terminal restored after q" stty_restored "$W/s1.stty"
check "summary printed after the terminal is restored" wait_for 5 final_has s1 "4 judgment(s) this session (1 undone); alice has judged 3 of 4 items"
[ $fails -gt 0 ] && show s1
check "line 1: A, TRL pair, chosen = a" line_has "$P1" 1 '"chosen":"Paris is the capital' '"rejected":"Lyon."' '"label":"A","id":"q1","category":"geo"}$'
check "line 1: annotator and ISO 8601 UTC time" line_has "$P1" 1 '"annotator":"alice","time":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z"'
check "line 2: B means chosen = b" line_has "$P1" 2 '"chosen":"Rain rain go away' '"rejected":"Soft rain' '"label":"B"'
check "line 2: content id for a line without one" line_has "$P1" 2 '"id":"h[0-9a-f]{16}"'
check "line 3: tie: a and b, no chosen/rejected" line_has "$P1" 3 '"label":"tie"' '"a":"4"' '"b":"5 '
check "line 3: tie is not a training pair" line_lacks "$P1" 3 'chosen|rejected'
check "line 4: undo of q3" line_has "$P1" 4 '^\{"undo":"q3","annotator":"alice","time":"[^"]+"\}$'
check "line 5: B for q3" line_has "$P1" 5 '"label":"B","id":"q3"'
check "labels in order" [ "$(labels "$P1")" = "A B tie undo B " ]

# ---------------------------------------------------------------------------------------
echo "# 2. kill -9 in the middle, restart: nothing lost, judged items skipped"
P2=$W/bob.jsonl
start s2 120 40 --annotator bob --out "$P2" "$CAND"
check "bob starts at item 1" wait_for 10 screen_has s2 "item 1 of 4"
key s2 a; check "bob: A saved" wait_for 10 has_lines "$P2" 1
key s2 s; check "bob: skip saved" wait_for 10 has_lines "$P2" 2
check "bob sees item 3" wait_for 10 screen_has s2 "item 3 of 4"
cp "$P2" "$W/bob.before"
kill -9 "$(tool_pid s2)"
check "killed" wait_for 10 dead s2
check "kill -9: status 137" [ "$(dead_status s2)" = 137 ]
check "nothing judged was lost" cmp -s "$P2" "$W/bob.before"
# a crash in the middle of a write leaves a torn last line
printf '{"prompt":"2+2?","chosen":"4","rej' >>"$P2"
start s2 120 40 --annotator bob --out "$P2" "$CAND"
check "restart skips the judged and the skipped item" wait_for 10 screen_has s2 "item 3 of 4"
check "restart progress" screen_has s2 "judged 2/4"
check "torn line reported" screen_has s2 "line(s) of"
key s2 a; check "new judgment after the sealed torn line" wait_for 10 has_lines "$P2" 4
check "new record on a line of its own" line_has "$P2" 4 '^\{"prompt":"2\+2\?".*"label":"A","id":"q3"\}$'
key s2 q; check "bob quits" wait_for 10 dead s2
check "torn line listed on exit" wait_for 5 final_has s2 "not valid JSON"
[ $fails -gt 0 ] && show s2

# ---------------------------------------------------------------------------------------
echo "# 3. the terminal is restored on SIGINT, SIGTERM and SIGHUP, and around Ctrl-Z"
for sig in INT TERM HUP; do
  start "sig$sig" 100 30 --annotator carol --out "$W/carol.jsonl" "$CAND"
  check "SIG$sig: tool up" wait_for 10 screen_has "sig$sig" "item 1 of 4"
  if [ $sig = INT ]; then TM send-keys -t "sig$sig" C-c; else kill -$sig "$(tool_pid "sig$sig")"; fi
  check "SIG$sig: the tool ended" wait_for 10 dead "sig$sig"
  want=$((128 + $(kill -l $sig)))
  check "SIG$sig: died of the signal (status $want)" [ "$(dead_status "sig$sig")" = $want ]
  check "SIG$sig: canonical mode and echo restored" stty_restored "$W/sig$sig.stty"
  TM kill-session -t "sig$sig"
done

# Ctrl-Z under an interactive shell: stopped with the terminal restored, back on fg
TM new-session -d -s tstp -x 120 -y 30 "env PS1='$ ' bash --norc --noprofile -i"
check "Ctrl-Z: shell up" wait_for 10 screen_has tstp '$'
TM send-keys -t tstp "$BIN --annotator frank --out $W/frank.jsonl $CAND" Enter
check "Ctrl-Z: tool up" wait_for 10 screen_has tstp "item 1 of 4"
TM send-keys -t tstp C-z
check "Ctrl-Z: stopped, back at the shell" wait_for 10 screen_has tstp "Stopped"
TM send-keys -t tstp "stty -a > $W/tstp.stty; fg" Enter
check "Ctrl-Z: terminal restored while stopped" wait_for 10 stty_restored "$W/tstp.stty"
check "Ctrl-Z: fg redraws the item" wait_for 10 screen_has tstp "item 1 of 4"
key tstp a; check "Ctrl-Z: keys work after fg" wait_for 10 has_lines "$W/frank.jsonl" 1
key tstp q; check "Ctrl-Z: quits normally" wait_for 10 screen_has tstp "1 judgment(s) this session"
TM kill-session -t tstp

# ---------------------------------------------------------------------------------------
echo "# 4. narrow, forced, resized and too-small terminals"
start s4 60 30 --annotator dave --out "$W/dave.jsonl" "$CAND"
check "60 columns: tool up" wait_for 10 screen_has s4 "item 1 of 4"
check "stacked: [A] and [B] on rows of their own" stacked s4
check "second writer on the same file refused" fails_with "$W/e0" 'another rlhf-label is writing' "$BIN" --annotator dave --out "$W/dave.jsonl" "$CAND"
TM resize-window -t s4 -x 150 -y 30
check "resized to 150 columns: side by side" wait_for 10 side_by_side s4
TM resize-window -t s4 -x 30 -y 8
check "resized below the minimum: the size message" wait_for 10 screen_has s4 "needs at least 40x12"
key s4 q; check "q quits from the size message" wait_for 10 dead s4
start s5 60 30 --layout side --annotator dave --out "$W/dave.jsonl" "$CAND"
check "--layout side at 60 columns" wait_for 10 side_by_side s5
key s5 q; wait_for 10 dead s5
start s6 30 10 --annotator dave --out "$W/dave.jsonl" "$CAND"
check "too small: exits" wait_for 10 dead s6
check "too small: exit status 1" [ "$(dead_status s6)" = 1 ]
check "too small: says the minimum size" wait_for 5 final_has s6 "needs at least 40x12"
[ $fails -gt 0 ] && show s6

# a long response scrolls
LONG=$W/long.jsonl
{ printf '{"prompt":"Count.","a":"'; for i in $(seq 1 40); do printf 'line %d\\n' "$i"; done; printf '","b":"short"}\n'; } >"$LONG"
start s9 80 20 --layout stacked --annotator dave --out "$W/dave_long.jsonl" "$LONG"
check "long item: scroll hint" wait_for 10 screen_has s9 "lines 1-16 of"
key s9 j; check "j scrolls one line" wait_for 10 screen_has s9 "lines 2-17 of"
key s9 ' '; check "space pages down" wait_for 10 screen_has s9 "lines 17-32 of"
key s9 g; check "g goes to the top" wait_for 10 screen_has s9 "lines 1-16 of"
key s9 q; wait_for 10 dead s9

# ---------------------------------------------------------------------------------------
echo "# 5. thumbs mode"
TH=$W/thumbs.jsonl
cat >"$TH" <<'EOF'
{"prompt":"Say hi","response":"Hi there!","id":1}
{"prompt":"Say bye","response":"Bye.","id":2}
{"prompt":"Count to 3","response":"1 2 3","id":3}
EOF
PT=$W/thumbs_prefs.jsonl
start s7 80 24 --mode thumbs --annotator erin --out "$PT" "$TH"
check "thumbs: first item" wait_for 10 screen_has s7 "[Response]"
key s7 u; check "thumbs: u is explained, not taken" wait_for 10 screen_has s7 "u is not a key in thumbs mode"
key s7 y; check "thumbs: up" wait_for 10 has_lines "$PT" 1
key s7 n; check "thumbs: down" wait_for 10 has_lines "$PT" 2
key s7 z; check "thumbs: undo" wait_for 10 has_lines "$PT" 3
key s7 -; check "thumbs: down again" wait_for 10 has_lines "$PT" 4
key s7 s; check "thumbs: skip" wait_for 10 has_lines "$PT" 5
check "thumbs: all done screen" wait_for 10 screen_has s7 "All done"
key s7 q; wait_for 10 dead s7
check "thumbs: labels in order up, down, undo, down, skip" [ "$(labels "$PT")" = "up down undo down skip " ]
check "thumbs: response field, string id" line_has "$PT" 1 '"response":"Hi there!".*"id":"1"'
start s8 80 24 --mode thumbs --annotator erin --out "$PT" "$TH" 
check "thumbs: restart when all is judged: nothing to do" wait_for 10 dead s8
check "thumbs: nothing to do, exit 0" [ "$(dead_status s8)" = 0 ]
check "thumbs: says all is judged" wait_for 5 final_has s8 "already judged"

# ---------------------------------------------------------------------------------------
echo "# 5b. rank mode"
RC=$W/rank_cand.jsonl
cat >"$RC" <<'EOF'
{"prompt":"Say hi","responses":["Hello!","Go away.","Hi there."],"id":"r1"}
{"prompt":"2+2?","responses":["4","5","four","22"],"id":"r2","category":"fact"}
EOF
PR=$W/rank_prefs.jsonl
start s9 100 40 --mode rank --annotator fay --out "$PR" "$RC"
check "rank: K numbered responses" wait_for 10 screen_has s9 "[3]"
key s9 9; check "rank: no response 9" wait_for 10 screen_has s9 "there is no response 9"
key s9 2; key s9 =; key s9 3
check "rank: order so far, tie shown" wait_for 10 screen_has s9 "order: 2 = 3 > _"
check "rank: places shown on the responses" wait_for 10 screen_has s9 "[3]  place 1"
TM send-keys -t s9 Enter; check "rank: Enter saves, the last one placed last" wait_for 10 has_lines "$PR" 1
check "rank: second item (K = 4)" wait_for 10 screen_has s9 "[4]"
key s9 4; key s9 1; TM send-keys -t s9 BSpace; key s9 2
TM send-keys -t s9 Enter; check "rank: Enter refused with 2 of 4 placed" wait_for 10 screen_has s9 "place at least 3 of the 4"
key s9 1; TM send-keys -t s9 Enter; check "rank: second ranking saved" wait_for 10 has_lines "$PR" 2
check "rank: all done screen" wait_for 10 screen_has s9 "All done"
key s9 u; check "rank: undo" wait_for 10 has_lines "$PR" 3
check "rank: the undone item is shown again" wait_for 10 screen_has s9 "[4]"
key s9 s; check "rank: skip" wait_for 10 has_lines "$PR" 4
key s9 q; wait_for 10 dead s9
check "rank: labels rank, rank, undo, skip" [ "$(labels "$PR")" = "rank rank undo skip " ]
check "rank: 2 = 3 > 1 is places [3,1,1]" line_has "$PR" 1 '"ranks":\[3,1,1\]' '"label":"rank"' '"id":"r1"'
check "rank: 4 > 2 > 1 > 3 is places [3,2,4,1]" line_has "$PR" 2 '"ranks":\[3,2,4,1\]' '"category":"fact"'
check "rank: skip keeps the responses" line_has "$PR" 4 '"responses":\["4","5","four","22"\]' '"label":"skip"'
"$BIN" export --rankings "$PR" >"$W/rank_export.jsonl" 2>/dev/null
check "rank: export --rankings: the live ranking only" [ "$(nlines "$W/rank_export.jsonl")" -eq 1 ]
"$BIN" export "$PR" >"$W/rank_pairs.jsonl" 2>/dev/null
check "rank: export: the tie left out, 2 pairs of weight 1/3" [ "$(grep -c '"weight":0.3333' "$W/rank_pairs.jsonl")" -eq 2 ]
check "rank: export: exactly 2 pairs" [ "$(nlines "$W/rank_pairs.jsonl")" -eq 2 ]
check "wrong mode: rank line in pair mode" fails_with "$W/e9" 'rank_cand\.jsonl:1: .*use --mode rank' "$BIN" --out "$W/z.jsonl" "$RC"

# ---------------------------------------------------------------------------------------
echo "# 6. errors without a terminal"
"$BIN" --annotator zed --out "$W/z.jsonl" "$CAND" </dev/null >"$W/notty.out" 2>&1
rc=$?
check "stdin not a terminal: exit != 0" [ $rc -ne 0 ]
check "stdin not a terminal: the message" grep -qF "rlhf-label needs an interactive terminal; to label automatically use build/rlhf-judge" "$W/notty.out"
printf '{"prompt":"a","a":"x","b":"y"}\n{"prompt": "a", "a": \n' >"$W/bad.jsonl"
check "malformed JSONL: file:line" fails_with "$W/e1" 'bad\.jsonl:2: not valid JSON' "$BIN" --out "$W/z.jsonl" "$W/bad.jsonl"
printf '{"prompt":"caf\xe9","a":"x","b":"y"}\n' >"$W/latin1.jsonl"
check "non-UTF-8: file:line and the fix" fails_with "$W/e2" 'latin1\.jsonl:1: not valid UTF-8.*iconv' "$BIN" --out "$W/z.jsonl" "$W/latin1.jsonl"
check "wrong mode: says which --mode" fails_with "$W/e3" 'thumbs\.jsonl:1: .*use --mode thumbs' "$BIN" --out "$W/z.jsonl" "$TH"
check "unwritable output: clear error" fails_with "$W/e4" 'p\.jsonl: cannot open for appending: No such file' "$BIN" --out "$W/no/such/dir/p.jsonl" "$CAND"
check "output is a directory: clear error" fails_with "$W/e5" 'is a directory' "$BIN" --out "$W" "$CAND"
check "--out is the candidates file: refused" fails_with "$W/e8" 'is the candidates file' "$BIN" --out "$W/./cand.jsonl" "$CAND"
check "candidates file untouched" [ "$(nlines "$CAND")" -eq 4 ]
check "missing --out: usage, exit 2" exits_with 2 "$BIN" "$CAND"
check "bad --mode: exit 2" exits_with 2 "$BIN" --mode votes --out x "$CAND"

# ---------------------------------------------------------------------------------------
echo "# 7. stats and export on what was written"
"$BIN" stats "$P1" "$P2" >"$W/stats.out" 2>"$W/stats.err"
check "stats: exit 0" [ $? -eq 0 ]
# alice: q1 A, item2 B, q3 B (tie undone) -> A 1 B 2, 1 undone; bob: q1 A, item2 skip, q3 A
check "stats: alice counts" grep -Eq '^alice +1 +2 +0 +0 +0 +0 +3 +1$' "$W/stats.out"
check "stats: bob counts" grep -Eq '^bob +2 +0 +0 +1 +0 +0 +3 +0$' "$W/stats.out"
# common non-skip items: q1 (A/A) and q3 (B/A) -> 1 of 2 = 50%
check "stats: pairwise agreement" grep -Eq '^alice / bob +2 +1 +50\.0%' "$W/stats.out"
check "stats: the torn line of bob's file is reported" grep -q 'bob.jsonl:3: not valid JSON' "$W/stats.err"
check "stats: missing file is an error" fails_with "$W/e7" 'nope\.jsonl: cannot open' "$BIN" stats "$W/nope.jsonl"
"$BIN" export "$P1" "$P2" >"$W/train.jsonl" 2>/dev/null
check "export: 5 pairs (ties, skips and the undone tie left out)" has_lines "$W/train.jsonl" 5
check "export: no labels or undo records" eval "! grep -Eq '\"label\"|\"undo\"' '$W/train.jsonl'"
check "export: every line a TRL pair" [ "$(grep -c '^{"prompt":.*"chosen":.*"rejected":' "$W/train.jsonl")" -eq 5 ]
"$BIN" export --thumbs "$PT" >"$W/kto.jsonl" 2>/dev/null
check "export --thumbs: up + down" has_lines "$W/kto.jsonl" 2
check "export --thumbs: boolean labels" grep -q '"completion":"Bye.","label":false' "$W/kto.jsonl"

echo "t_label: $fails failed"
[ $fails -eq 0 ]
