#!/usr/bin/env python3
"""Dev-time generator of tests/ref/gpt_tiny.bin: an independent GPT-2 (written here in
PyTorch, float64) evaluated on random weights, for tests/test_gpt.c. Never run by the tests.

Usage: python3 tests/ref/make_gpt_ref.py tests/ref/gpt_tiny.bin
The file layout is documented above test_torch_reference in tests/test_gpt.c.
"""
import math
import struct
import sys

import torch

V, MAXT, L, NH, C = 32, 8, 2, 2, 16
B, T = 2, 7
TEMP = 0.9
LN_EPS = 1e-5


def table():
    """(name, shape) in the order of common/gpt.c's gpt_tensors_build (LM head)."""
    t = [("wte.weight", (V, C)), ("wpe.weight", (MAXT, C))]
    for l in range(L):
        p = f"h.{l}."
        t += [(p + "ln_1.weight", (C,)), (p + "ln_1.bias", (C,)),
              (p + "attn.c_attn.weight", (C, 3 * C)), (p + "attn.c_attn.bias", (3 * C,)),
              (p + "attn.c_proj.weight", (C, C)), (p + "attn.c_proj.bias", (C,)),
              (p + "ln_2.weight", (C,)), (p + "ln_2.bias", (C,)),
              (p + "mlp.c_fc.weight", (C, 4 * C)), (p + "mlp.c_fc.bias", (4 * C,)),
              (p + "mlp.c_proj.weight", (4 * C, C)), (p + "mlp.c_proj.bias", (C,))]
    t += [("ln_f.weight", (C,)), ("ln_f.bias", (C,))]
    return t


def layernorm(x, w, b):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + LN_EPS) * w + b


def gelu(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def forward(P, tokens):
    hs = C // NH
    x = P["wte.weight"][tokens] + P["wpe.weight"][:T][None]
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for l in range(L):
        g = lambda n: P[f"h.{l}.{n}"]
        h = layernorm(x, g("ln_1.weight"), g("ln_1.bias"))
        qkv = h @ g("attn.c_attn.weight") + g("attn.c_attn.bias")
        q, k, v = qkv.split(C, dim=-1)
        q = q.view(B, T, NH, hs).transpose(1, 2)
        k = k.view(B, T, NH, hs).transpose(1, 2)
        v = v.view(B, T, NH, hs).transpose(1, 2)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(hs)
        s = s.masked_fill(~mask, float("-inf"))
        y = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, C)
        x = x + y @ g("attn.c_proj.weight") + g("attn.c_proj.bias")
        h = layernorm(x, g("ln_2.weight"), g("ln_2.bias"))
        x = x + gelu(h @ g("mlp.c_fc.weight") + g("mlp.c_fc.bias")) @ g("mlp.c_proj.weight") \
            + g("mlp.c_proj.bias")
    x = layernorm(x, P["ln_f.weight"], P["ln_f.bias"])
    return x @ P["wte.weight"].T


def main():
    out = sys.argv[1]
    torch.manual_seed(1234)
    P, order = {}, table()
    for name, shape in order:
        if "ln_" in name and name.endswith(".weight"):
            w = 1.0 + 0.1 * torch.randn(shape)
        elif name.endswith(".bias"):
            w = 0.1 * torch.randn(shape)
        else:
            w = 0.3 * torch.randn(shape)
        P[name] = w.float().double().requires_grad_(True)
    tokens = torch.randint(0, V, (B, T))
    targets = torch.randint(0, V, (B, T))
    targets[0, 1] = -1
    targets[1, 4] = -1
    targets[1, 6] = -1
    dlp = torch.randn(B, T).float().double()
    dent = torch.randn(B, T).float().double()
    valid = targets >= 0
    logits = forward(P, tokens)
    logp = torch.log_softmax(logits / TEMP, dim=-1)
    lp = logp.gather(-1, targets.clamp(min=0)[..., None])[..., 0] * valid
    ent = -(logp.exp() * logp).sum(-1) * valid
    loss = (dlp * lp + dent * ent).sum()
    loss.backward()
    with open(out, "wb") as f:
        f.write(struct.pack("<8i", 0x47505431, V, MAXT, L, NH, C, B, T))
        f.write(struct.pack("<f", TEMP))
        f32 = lambda t: f.write(t.detach().reshape(-1).float().numpy().astype("<f4").tobytes())
        i32 = lambda t: f.write(t.reshape(-1).int().numpy().astype("<i4").tobytes())
        for name, _ in order:
            f32(P[name])
        i32(tokens)
        i32(targets)
        f32(dlp)
        f32(dent)
        f32(logits)
        f32(lp)
        f32(ent)
        for name, _ in order:
            f32(P[name].grad)


if __name__ == "__main__":
    main()
