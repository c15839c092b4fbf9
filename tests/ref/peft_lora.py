#!/usr/bin/env python3
"""tests/ref/peft_lora.py — an independent check of `rlhf-hf export --peft` (GPT-2 family).

Reads the exported base (BASE_DIR: config.json + model.safetensors, HF GPT2LMHeadModel
names) and the PEFT folder (PEFT_DIR: adapter_config.json + adapter_model.safetensors with
PEFT's names base_model.model.transformer.h.<l>.<module>.lora_A.weight (r, in) and
.lora_B.weight (out, r)), runs GPT-2 in float64 in plain Python with PEFT's LoRA formula on
every adapted Conv1D module (fan_in_fan_out: the base weight is (in, out)):
    y = x W + b + (lora_alpha / r) * (x A^T) B^T
and compares the next-token log-probs of each token line of TOKENS (JSON arrays) with the
matching {"logprobs": [...]} line of RLHF_OUT (rlhf-logprobs on the LoRA checkpoint).
Plain Python (json, struct, math): no torch or numpy needed; the model must be tiny.
Exit 0 when every log-prob agrees within --tol, 1 otherwise.

usage: peft_lora.py BASE_DIR PEFT_DIR TOKENS RLHF_OUT [--tol 1e-4]
"""
import json
import math
import struct
import sys


def load_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":
            sys.exit(f"{path}: {name} is {t['dtype']}, this check reads F32 only")
        a, b = t["data_offsets"]
        vals = struct.unpack(f"<{(b - a) // 4}f", data[a:b])
        shape = t["shape"]
        if len(shape) == 2:
            vals = [list(vals[i * shape[1]:(i + 1) * shape[1]]) for i in range(shape[0])]
        else:
            vals = list(vals)
        out[name] = vals
    return out


def matmul(x, w):  # x (n, k) @ w (k, m)
    m = len(w[0])
    return [[sum(xi[k] * w[k][j] for k in range(len(w))) for j in range(m)] for xi in x]


def matmul_t(x, w):  # x (n, k) @ w^T, w (m, k)
    return [[sum(a * b for a, b in zip(xi, wr)) for wr in w] for xi in x]


def add_bias(x, b):
    return [[v + bb for v, bb in zip(r, b)] for r in x]


def layernorm(x, w, b, eps=1e-5):
    out = []
    for r in x:
        mu = sum(r) / len(r)
        var = sum((v - mu) ** 2 for v in r) / len(r)
        s = 1.0 / math.sqrt(var + eps)
        out.append([(v - mu) * s * ww + bb for v, ww, bb in zip(r, w, b)])
    return out


def gelu(v):
    return 0.5 * v * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v ** 3)))


def main():
    args = [a for a in sys.argv[1:]]
    tol = 1e-4
    if "--tol" in args:
        i = args.index("--tol")
        tol = float(args[i + 1])
        del args[i:i + 2]
    if len(args) != 4:
        sys.exit(__doc__)
    base_dir, peft_dir, tok_path, rlhf_path = args
    cfg = json.load(open(f"{base_dir}/config.json"))
    if cfg.get("model_type") != "gpt2":
        print(f"SKIP: model_type {cfg.get('model_type')}: this reference runs GPT-2 only")
        sys.exit(77)
    acfg = json.load(open(f"{peft_dir}/adapter_config.json"))
    assert acfg["peft_type"] == "LORA" and acfg["fan_in_fan_out"] is True, acfg
    P = load_safetensors(f"{base_dir}/model.safetensors")
    A = load_safetensors(f"{peft_dir}/adapter_model.safetensors")
    scaling = acfg["lora_alpha"] / acfg["r"]
    C, NH, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    hs = C // NH
    pre = "transformer."

    def lora(x, module):
        key = f"base_model.model.{pre}{module}"
        if key + ".lora_A.weight" not in A:
            return None
        a, b = A[key + ".lora_A.weight"], A[key + ".lora_B.weight"]
        assert len(a) == acfg["r"] and len(b[0]) == acfg["r"], module
        return [[scaling * v for v in r] for r in matmul_t(matmul_t(x, a), b)]

    def linear(x, module):
        y = add_bias(matmul(x, P[f"{pre}{module}.weight"]), P[f"{pre}{module}.bias"])
        d = lora(x, module)
        return y if d is None else [[u + v for u, v in zip(r, s)] for r, s in zip(y, d)]

    used = {k for k in A}
    worst, count = 0.0, 0
    outs = [json.loads(l) for l in open(rlhf_path) if l.strip()]
    toks = [json.loads(l) for l in open(tok_path) if l.strip()]
    for tokens, out in zip(toks, outs):
        T = len(tokens)
        x = [[w + p for w, p in zip(P[pre + "wte.weight"][t], P[pre + "wpe.weight"][i])]
             for i, t in enumerate(tokens)]
        for l in range(L):
            g = lambda n: P[f"{pre}h.{l}.{n}"]
            h = layernorm(x, g("ln_1.weight"), g("ln_1.bias"))
            qkv = linear(h, f"h.{l}.attn.c_attn")
            y = [[0.0] * C for _ in range(T)]
            for hd in range(NH):
                o = hd * hs
                for i in range(T):
                    q = qkv[i][o:o + hs]
                    sc = [sum(a * b for a, b in zip(q, qkv[j][C + o:C + o + hs])) / math.sqrt(hs)
                          for j in range(i + 1)]
                    m = max(sc)
                    e = [math.exp(s - m) for s in sc]
                    z = sum(e)
                    for j in range(i + 1):
                        for d in range(hs):
                            y[i][o + d] += e[j] / z * qkv[j][2 * C + o + d]
            pr = linear(y, f"h.{l}.attn.c_proj")
            x = [[u + v for u, v in zip(r, s)] for r, s in zip(x, pr)]
            h = layernorm(x, g("ln_2.weight"), g("ln_2.bias"))
            f = [[gelu(v) for v in r] for r in linear(h, f"h.{l}.mlp.c_fc")]
            pr = linear(f, f"h.{l}.mlp.c_proj")
            x = [[u + v for u, v in zip(r, s)] for r, s in zip(x, pr)]
        x = layernorm(x, P[pre + "ln_f.weight"], P[pre + "ln_f.bias"])
        logits = matmul_t(x, P[pre + "wte.weight"])
        lp_c = out["logprobs"]
        for i in range(T - 1):
            m = max(logits[i])
            lse = m + math.log(sum(math.exp(v - m) for v in logits[i]))
            ref = logits[i][tokens[i + 1]] - lse
            worst = max(worst, abs(ref - lp_c[i]))
            count += 1
    print(f"peft_lora: {count} log-probs, {len(used)} adapter tensors, max |PEFT ref - "
          f"rlhf-logprobs| {worst:.3g} (tol {tol:g})")
    sys.exit(0 if count > 0 and worst <= tol else 1)


if __name__ == "__main__":
    main()
