#!/usr/bin/python3
"""bench/torch_gpt2.py - the PyTorch side of `make bench`: the same GPT-2 as common/gpt.c,
written in plain torch (no transformers), timed on the CPU at the shapes bench_model uses.

    /usr/bin/python3 bench/torch_gpt2.py --preset tiny|gpt2 --threads 2 --reps 5 --label default

Run it with Debian's /usr/bin/python3 (python3-torch 1.13 + numpy), never another python
on PATH. bench/run.sh runs it twice per preset: the default setup, and the best setup it
can arrange from outside (LD_PRELOAD of libtcmalloc_minimal, the OpenMP build of OpenBLAS
put first on LD_LIBRARY_PATH, OPENBLAS_CORETYPE unset so OpenBLAS picks the core itself);
this script only reports what it finds loaded (allocator, BLAS library, its build and
its core), and run.sh rejects a "best" run whose setup did not take.

Model: token + position embeddings, pre-LayerNorm blocks (causal multi-head attention,
GELU(tanh) MLP, residuals), final LayerNorm, LM head tied to wte; fp32; GPT-2 init
(N(0, 0.02), residual projections N(0, 0.02/sqrt(2L))). Presets as gpt.h: tiny = V512 L4
NH4 C128 maxT128; gpt2 = V50257 L12 NH12 C768 maxT1024 (124M).

Measured, each as `reps` samples after one warm-up, reported as the median (and min):
  train     zero_grad + forward + log-softmax of the targets + backward of -mean log-prob
            (what bench_model times: gpt_forward + gpt_lm_forward + gpt_lm_backward);
  adamw     torch.optim.AdamW.step() alone (bench_model's step has no optimizer);
  generate  KV-cache sampling: prefill of B prompts of P tokens, then NEW decode steps,
            each a softmax over the full vocabulary at temperature 1, torch.multinomial,
            and the log-prob of the drawn token (what common/generate.c does for
            temperature 1, no top-k/top-p, no EOS).
FLOPs use bench_model's formulas (GEMM FLOPs only; attention as the full T x T square),
so GFLOP/s of both sides are comparable. Output: a table and RESULT lines (key, value,
unit) that bench/run.sh collects. Not a test; never run by `make test`.
"""
import argparse
import math
import sys

import torch
import torch.nn.functional as F

from torch_common import report_setup, report_train, time_reps

PRESETS = {
    # name: (V, maxT, L, NH, C, train_B, train_T, gen_B, gen_prompt, gen_new)
    "tiny": (512, 128, 4, 4, 128, 16, 128, 16, 16, 112),
    "gpt2": (50257, 1024, 12, 12, 768, 4, 64, 8, 16, 48),
}


class Block(torch.nn.Module):
    def __init__(self, C, NH, L):
        super().__init__()
        self.NH = NH
        self.ln_1 = torch.nn.LayerNorm(C, eps=1e-5)
        self.c_attn = torch.nn.Linear(C, 3 * C)
        self.c_proj = torch.nn.Linear(C, C)
        self.ln_2 = torch.nn.LayerNorm(C, eps=1e-5)
        self.c_fc = torch.nn.Linear(C, 4 * C)
        self.c_fc_proj = torch.nn.Linear(4 * C, C)
        for lin in (self.c_attn, self.c_fc):
            torch.nn.init.normal_(lin.weight, std=0.02)
            torch.nn.init.zeros_(lin.bias)
        for lin in (self.c_proj, self.c_fc_proj):
            torch.nn.init.normal_(lin.weight, std=0.02 / math.sqrt(2 * L))
            torch.nn.init.zeros_(lin.bias)

    def attn(self, x, cache=None, pos=0):
        """Causal self-attention. cache = (k, v) of shape (B, NH, maxT, hs): the new keys
        and values are written at pos.. and attention runs over 0..pos+T."""
        B, T, C = x.shape
        hs = C // self.NH
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.NH, hs).transpose(1, 2)
        k = k.view(B, T, self.NH, hs).transpose(1, 2)
        v = v.view(B, T, self.NH, hs).transpose(1, 2)
        if cache is not None:
            kc, vc = cache
            kc[:, :, pos:pos + T] = k
            vc[:, :, pos:pos + T] = v
            k, v = kc[:, :, :pos + T], vc[:, :, :pos + T]
        S = k.shape[2]
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        if T > 1:  # causal mask: query t (at position pos+t) sees keys 0..pos+t
            mask = torch.ones(T, S, dtype=torch.bool).tril(diagonal=S - T)
            att = att.masked_fill(~mask, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)

    def forward(self, x, cache=None, pos=0):
        x = x + self.attn(self.ln_1(x), cache, pos)
        x = x + self.c_fc_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))
        return x


class GPT(torch.nn.Module):
    def __init__(self, V, maxT, L, NH, C):
        super().__init__()
        self.wte = torch.nn.Parameter(torch.randn(V, C) * 0.02)
        self.wpe = torch.nn.Parameter(torch.randn(maxT, C) * 0.02)
        self.h = torch.nn.ModuleList([Block(C, NH, L) for _ in range(L)])
        self.ln_f = torch.nn.LayerNorm(C, eps=1e-5)

    def forward(self, tokens, caches=None, pos=0):
        """tokens (B,T) at positions pos..pos+T -> logits (B,T,V)."""
        T = tokens.shape[1]
        x = self.wte[tokens] + self.wpe[pos:pos + T]
        for i, blk in enumerate(self.h):
            x = blk(x, None if caches is None else caches[i], pos)
        return self.ln_f(x) @ self.wte.t()


def train_flops(V, L, C, B, T):
    BT = B * T
    fwd = L * (24.0 * BT * C * C + 4.0 * B * T * T * C) + 2.0 * BT * C * V
    bwd = L * (48.0 * BT * C * C + 8.0 * B * T * T * C) + 4.0 * BT * C * V
    return fwd + bwd


def gen_flops(V, L, C, B, P, NEW):
    ntok, nlog, avg_ctx = B * (P + NEW - 1), B * NEW, (P + NEW) / 2.0
    return ntok * L * (24.0 * C * C + 4.0 * avg_ctx * C) + nlog * 2.0 * C * V


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--label", default="default")
    ap.add_argument("--skip-adamw", action="store_true")
    ap.add_argument("--skip-generate", action="store_true")
    a = ap.parse_args()
    if a.reps < 5 or a.threads < 1 or not a.label.replace("_", "").isalnum():
        sys.exit("torch_gpt2.py: --reps must be >= 5, --threads >= 1, --label [A-Za-z0-9_]")
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    V, maxT, L, NH, C, B, T, GB, P, NEW = PRESETS[a.preset]
    model = GPT(V, maxT, L, NH, C)
    nparams = sum(p.numel() for p in model.parameters())
    # decay 2-D tensors only (adamw.c's table); hyper-parameters of adamw_config_default
    decay = [p for p in model.parameters() if p.dim() == 2]
    nodecay = [p for p in model.parameters() if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": nodecay, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.95), eps=1e-8)
    g = torch.Generator().manual_seed(2)
    tokens = torch.randint(0, V, (B, T), generator=g)
    targets = torch.randint(0, V, (B, T), generator=g)

    def train_step():
        opt.zero_grad(set_to_none=False)
        logits = model(tokens)
        lp = F.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1))
        (-lp.mean()).backward()

    label = f"torch.{a.label}.{a.preset}"
    report_setup(torch, label)
    print(f"== torch {a.label} {a.preset}: V={V} L={L} NH={NH} C={C}, {nparams / 1e6:.1f}M "
          f"parameters, median of {a.reps}")

    med, best = time_reps(train_step, a.reps)
    report_train(label, B, T, train_flops(V, L, C, B, T), med, best)
    med_o, best_o = time_reps(opt.step, a.reps) if not a.skip_adamw else (0.0, 0.0)
    if not a.skip_adamw:
        print(f"  AdamW step alone: median {med_o * 1e3:.1f} ms (min {best_o * 1e3:.1f}); "
              f"fwd+bwd+AdamW {(med + med_o) * 1e3:.1f} ms")
        print(f"RESULT\t{label}.adamw_ms\t{med_o * 1e3:.3f}\tms")

    if a.skip_generate:
        return
    hs = C // NH
    prompts = torch.randint(0, V, (GB, P), generator=g)
    gen = torch.Generator().manual_seed(5)

    @torch.no_grad()
    def generate():
        caches = [(torch.empty(GB, NH, P + NEW, hs), torch.empty(GB, NH, P + NEW, hs))
                  for _ in range(L)]
        logits = model(prompts, caches, 0)[:, -1]
        out = torch.empty(GB, NEW, dtype=torch.long)
        lps = torch.empty(GB, NEW)
        for i in range(NEW):
            logp = F.log_softmax(logits, dim=-1)  # temperature 1
            tok = torch.multinomial(logp.exp(), 1, generator=gen)
            out[:, i] = tok[:, 0]
            lps[:, i] = logp.gather(-1, tok)[:, 0]
            if i + 1 < NEW:
                logits = model(tok, caches, P + i)[:, -1]
        return out, lps

    med_g, best_g = time_reps(generate, a.reps)
    gfl = gen_flops(V, L, C, GB, P, NEW)
    print(f"  generate {GB} x ({P} prompt + {NEW} new): median {med_g * 1e3:.1f} ms "
          f"(min {best_g * 1e3:.1f}), {GB * NEW / med_g:.0f} new tokens/s, "
          f"{gfl / med_g / 1e9:.1f} GFLOP/s")
    print(f"RESULT\t{label}.gen_ms\t{med_g * 1e3:.3f}\tms")
    print(f"RESULT\t{label}.gen_min_ms\t{best_g * 1e3:.3f}\tms")
    print(f"RESULT\t{label}.gen_tok_s\t{GB * NEW / med_g:.3f}\ttokens/s")
    print(f"RESULT\t{label}.gen_gflops\t{gfl / med_g / 1e9:.3f}\tGFLOP/s")


if __name__ == "__main__":
    main()
