#!/usr/bin/env python3
"""tests/ref/hf/make_fixture.py — dev-time generator of the Hugging Face GPT-2 fixtures
that tests/t_hf.sh checks rlhf-hf and rlhf-logprobs against. Run once with
/usr/bin/python3 (torch + numpy); never at test time. The outputs are committed.

It writes two tiny GPT-2s (V=96, n_positions=32, L=2, NH=2, C=32) in the Hugging Face
layout, with a hand-rolled safetensors writer (no `safetensors` / `transformers` package):
  lm/     config.json (GPT2LMHeadModel), model.safetensors: F32, keys WITHOUT the
          "transformer." prefix (like the hub's gpt2 file), the attention buffers
          h.<l>.attn.bias (BOOL) / h.<l>.attn.masked_bias (F32) to be skipped, and a tied
          lm_head.weight equal to wte.weight; vocab.json + merges.txt (a made-up tokenizer)
  score/  config.json (GPT2ForSequenceClassification, one label), model.safetensors:
          F16, keys WITH the "transformer." prefix, plus score.weight (1, C)
and the reference outputs of an independent float64 PyTorch implementation of GPT-2
(written out below from the paper/HF definitions, not taken from rlhf-c):
  tokens.jsonl  one JSON array of token ids per line (lengths 1..32)
  lm_ref.txt    per line: the T-1 values log p(x_t | x_<t), space separated
  score_ref.txt per line: the reward-model score read at the last token
Weights are random with larger scales than GPT-2's initialisation (LN weights and biases
perturbed too), so every parameter changes the outputs measurably.

`make_fixture.py --check DIR` (dev time) reads a folder written by `rlhf-hf export` with
the independent reader below and prints the largest difference of its outputs from the
references, i.e. checks the export is the HF layout this script's GPT-2 expects.
"""
import json
import math
import os
import struct

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
V, T, L, NH, C = 96, 32, 2, 2, 32
EPS = 1e-5


def tensor_table(head):
    """(name, shape) in rlhf-c's table order; names as in HF GPT2Model."""
    rows = [("wte.weight", (V, C)), ("wpe.weight", (T, C))]
    for l in range(L):
        p = f"h.{l}."
        rows += [(p + "ln_1.weight", (C,)), (p + "ln_1.bias", (C,)),
                 (p + "attn.c_attn.weight", (C, 3 * C)), (p + "attn.c_attn.bias", (3 * C,)),
                 (p + "attn.c_proj.weight", (C, C)), (p + "attn.c_proj.bias", (C,)),
                 (p + "ln_2.weight", (C,)), (p + "ln_2.bias", (C,)),
                 (p + "mlp.c_fc.weight", (C, 4 * C)), (p + "mlp.c_fc.bias", (4 * C,)),
                 (p + "mlp.c_proj.weight", (4 * C, C)), (p + "mlp.c_proj.bias", (C,))]
    rows += [("ln_f.weight", (C,)), ("ln_f.bias", (C,))]
    if head == "score":
        rows.append(("score.weight", (1, C)))
    return rows


def random_weights(head, seed):
    g = np.random.default_rng(seed)
    w = {}
    for name, shape in tensor_table(head):
        if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
            a = 1.0 + 0.2 * g.standard_normal(shape)
        elif name.endswith(".bias"):
            a = 0.1 * g.standard_normal(shape)
        elif name == "wte.weight":
            a = 0.3 * g.standard_normal(shape)
        elif name == "wpe.weight":
            a = 0.1 * g.standard_normal(shape)
        elif name == "score.weight":
            a = g.standard_normal(shape) / math.sqrt(C)
        else:  # linear weights (in, out)
            a = g.standard_normal(shape) * (1.0 / math.sqrt(shape[0]))
        w[name] = a.astype(np.float32)
    return w


# ---- an independent GPT-2 forward in float64 ------------------------------------------

def layer_norm(x, w, b):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)  # biased, as torch.nn.LayerNorm
    return (x - mu) / torch.sqrt(var + EPS) * w + b


def gelu_tanh(x):  # GELU, tanh approximation (Hendrycks & Gimpel 2016), HF "gelu_new"
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def trunk(w, tokens):
    t = {k: torch.tensor(v, dtype=torch.float64) for k, v in w.items()}
    n = len(tokens)
    idx = torch.tensor(tokens)
    x = t["wte.weight"][idx] + t["wpe.weight"][torch.arange(n)]
    hd = C // NH
    mask = torch.tril(torch.ones(n, n, dtype=torch.bool))
    for l in range(L):
        p = f"h.{l}."
        h = layer_norm(x, t[p + "ln_1.weight"], t[p + "ln_1.bias"])
        qkv = h @ t[p + "attn.c_attn.weight"] + t[p + "attn.c_attn.bias"]
        q, k, v = qkv[:, :C], qkv[:, C:2 * C], qkv[:, 2 * C:]
        heads = []
        for i in range(NH):
            s = slice(i * hd, (i + 1) * hd)
            att = (q[:, s] @ k[:, s].T) / math.sqrt(hd)
            att = att.masked_fill(~mask, float("-inf"))
            att = torch.softmax(att, dim=-1)
            heads.append(att @ v[:, s])
        y = torch.cat(heads, dim=-1)
        x = x + y @ t[p + "attn.c_proj.weight"] + t[p + "attn.c_proj.bias"]
        h = layer_norm(x, t[p + "ln_2.weight"], t[p + "ln_2.bias"])
        h = gelu_tanh(h @ t[p + "mlp.c_fc.weight"] + t[p + "mlp.c_fc.bias"])
        x = x + h @ t[p + "mlp.c_proj.weight"] + t[p + "mlp.c_proj.bias"]
    return layer_norm(x, t["ln_f.weight"], t["ln_f.bias"]), t


def lm_logprobs(w, tokens):
    x, t = trunk(w, tokens)
    lp = torch.log_softmax(x @ t["wte.weight"].T, dim=-1)
    return [lp[i, tokens[i + 1]].item() for i in range(len(tokens) - 1)]


def score(w, tokens):
    x, t = trunk(w, tokens)
    return (x[-1] @ t["score.weight"][0]).item()


# ---- a hand-rolled safetensors writer ---------------------------------------------------

def write_safetensors(path, items, metadata=None):
    """items: list of (name, numpy array, dtype string)."""
    header, blobs, off = {}, [], 0
    for name, arr, dt in items:
        raw = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    js = json.dumps(header, separators=(",", ":")).encode()
    js += b" " * ((8 - len(js) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(js)))
        f.write(js)
        for b in blobs:
            f.write(b)


def config_json(arch, extra):
    c = {"architectures": [arch], "model_type": "gpt2", "vocab_size": V, "n_positions": T,
         "n_ctx": T, "n_embd": C, "n_layer": L, "n_head": NH, "n_inner": None,
         "activation_function": "gelu_new", "layer_norm_epsilon": 1e-05,
         "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1, "initializer_range": 0.02,
         "scale_attn_weights": True, "use_cache": True, "bos_token_id": V - 1,
         "eos_token_id": V - 1}
    c.update(extra)
    return json.dumps(c, indent=2) + "\n"


def main():
    torch.manual_seed(0)
    rng = np.random.default_rng(7)
    lengths = [1, 2, 3, 5, 8, 13, 21, 32, 32]
    seqs = [[int(x) for x in rng.integers(0, V, n)] for n in lengths]

    # LM: F32, no prefix, attention buffers, tied lm_head
    lm = random_weights("lm", 1)
    d = os.path.join(HERE, "lm")
    os.makedirs(d, exist_ok=True)
    items = []
    for name, shape in tensor_table("lm"):
        items.append((name, lm[name], "F32"))
        if name.endswith("attn.c_proj.bias"):
            l = name.split(".")[1]
            items.append((f"h.{l}.attn.bias", np.tril(np.ones((1, 1, T, T), dtype=np.uint8)), "BOOL"))
            items.append((f"h.{l}.attn.masked_bias", np.array(-1e4, dtype=np.float32), "F32"))
    items.append(("lm_head.weight", lm["wte.weight"], "F32"))
    write_safetensors(os.path.join(d, "model.safetensors"), items, {"format": "pt"})
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write(config_json("GPT2LMHeadModel", {}))
    vocab = {chr(33 + i): i for i in range(92)}
    vocab.update({"\u0120": 92, "\u0120t": 93, "he": 94, "<|endoftext|>": 95})
    with open(os.path.join(d, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(d, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n\u0120 t\nh e\n")

    # score model: F16 with the "transformer." prefix; the reference uses the f16 values
    sc = random_weights("score", 2)
    sc16 = {k: v.astype(np.float16) for k, v in sc.items()}
    d = os.path.join(HERE, "score")
    os.makedirs(d, exist_ok=True)
    items = []
    for name, shape in tensor_table("score"):
        key = name if name == "score.weight" else "transformer." + name
        items.append((key, sc16[name], "F16"))
    write_safetensors(os.path.join(d, "model.safetensors"), items, {"format": "pt"})
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write(config_json("GPT2ForSequenceClassification",
                            {"id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0},
                             "pad_token_id": V - 1}))
    sc_exact = {k: v.astype(np.float32) for k, v in sc16.items()}

    with open(os.path.join(HERE, "tokens.jsonl"), "w") as f:
        for s in seqs:
            f.write(json.dumps(s) + "\n")
    with open(os.path.join(HERE, "lm_ref.txt"), "w") as f:
        for s in seqs:
            f.write(" ".join(f"{v:.10g}" for v in lm_logprobs(lm, s)) + "\n")
    with open(os.path.join(HERE, "score_ref.txt"), "w") as f:
        for s in seqs:
            f.write(f"{score(sc_exact, s):.10g}\n")


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    np_types = {"F32": np.float32, "F16": np.float16}
    out = {}
    for k, v in header.items():
        b, e = v["data_offsets"]
        out[k] = np.frombuffer(data[b:e], dtype=np_types[v["dtype"]]).reshape(v["shape"]).astype(np.float32)
    return out, meta


def check(d):
    w, meta = read_safetensors(os.path.join(d, "model.safetensors"))
    assert meta.get("format") == "pt", meta
    cfg = json.load(open(os.path.join(d, "config.json")))
    arch = cfg["architectures"][0]
    w = {(k[12:] if k.startswith("transformer.") else k): v for k, v in w.items()}
    seqs = [json.loads(line) for line in open(os.path.join(HERE, "tokens.jsonl"))]
    worst = 0.0
    if arch == "GPT2LMHeadModel":
        assert "lm_head.weight" not in w
        ref = [[float(x) for x in line.split()] for line in open(os.path.join(HERE, "lm_ref.txt"))]
        for s, r in zip(seqs, ref):
            worst = max([worst] + [abs(a - b) for a, b in zip(lm_logprobs(w, s), r)])
    else:
        ref = [float(line) for line in open(os.path.join(HERE, "score_ref.txt"))]
        for s, r in zip(seqs, ref):
            worst = max(worst, abs(score(w, s) - r))
    print(f"{d}: {arch}, {len(w)} tensors, max |difference| from the reference {worst:.3g}")


if __name__ == "__main__":
    import sys
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        check(sys.argv[2])
    else:
        main()
