#!/usr/bin/python3
"""bench/torch_llama.py - the PyTorch side of `make bench` for the Llama family: the same
Llama block as common/gpt.c + common/ops_llama.c, in plain torch (no transformers), timed
on the CPU at the shapes `bench_model smol` uses.

    /usr/bin/python3 bench/torch_llama.py --preset smol --threads 2 --reps 5 --label default

Run it with Debian's /usr/bin/python3 (python3-torch 1.13 + numpy). bench/run.sh runs it
in the same two setups as bench/torch_gpt2.py (default; best = tcmalloc preloaded, the
OpenMP OpenBLAS first on the library path, OPENBLAS_CORETYPE unset) and rejects a "best"
run whose setup did not take; this script reports what it finds loaded.

PyTorch's CPU setup here: torch.set_num_threads(threads) (bench/run.sh passes the cores it
gives rlhf-c), training in eager mode (python3-torch 1.13 has no torch.compile and no
scaled_dot_product_attention), generation under torch.inference_mode() in two variants,
each timed: "eager" (the fp32 model as it trains) and "mkldnn" (every nn.Linear converted
with torch.utils.mkldnn.to_mkldnn to oneDNN's inner-product kernel, weights pre-packed; the
tied LM head stays a dense matmul). The faster of the two is the gen_* figure, and its
name is reported (gen_variant). TorchScript freezing was not used: the KV cache is written
in place at a moving position, which tracing would bake in.

Model: token embedding, pre-RMSNorm blocks (causal grouped-query attention with rotary
positions on q and k, no biases; SwiGLU MLP down(silu(gate(x)) * up(x))), final RMSNorm,
LM head tied to the embedding; fp32, weights N(0, 0.02). Preset smol = SmolLM2-135M's shape
(gpt.c's "smol"): V49152 L30 NH9 NKV3 C576 F1536, rope_theta 1e5, eps 1e-5.

Measured, each as `reps` samples after one warm-up, reported as the median (and min):
  train     zero_grad + forward + log-softmax of the targets + backward of -mean log-prob
            (what bench_model times: gpt_forward + gpt_lm_forward + gpt_lm_backward);
  generate  KV-cache sampling: prefill of B prompts of P tokens, then NEW decode steps
            (softmax over the vocabulary at temperature 1, torch.multinomial, the drawn
            token's log-prob), as common/generate.c does; decode_step: the decode steps
            of that run alone, per step (bench_model's decode.step_ms).
FLOPs: GEMM FLOPs only, attention as the full T x T square. Output: a table and RESULT
lines (key, value, unit) that bench/run.sh collects. Not a test; never run by `make test`.
"""
import argparse
import copy
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from torch_common import report_setup, report_train, time_reps

PRESETS = {
    # name: (V, maxT, L, NH, NKV, C, F, theta, train_B, train_T, gen_B, gen_prompt, gen_new)
    "smol": (49152, 2048, 30, 9, 3, 576, 1536, 1e5, 4, 256, 8, 16, 48),
}


class RMSNorm(torch.nn.Module):
    def __init__(self, C, eps):
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(C))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(maxT, hd, theta):
    """cos and sin of every (position, pair) rotation, (maxT, hd/2) each."""
    inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    ang = torch.outer(torch.arange(maxT, dtype=torch.float32), inv)
    return ang.cos(), ang.sin()


def rope(x, cos, sin):
    """x (B, H, T, hd) rotated in its (first half, second half) pairs."""
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


def linear(i, o):
    lin = torch.nn.Linear(i, o, bias=False)
    torch.nn.init.normal_(lin.weight, std=0.02)
    return lin


class Block(torch.nn.Module):
    def __init__(self, C, NH, NKV, Fd, eps):
        super().__init__()
        self.NH, self.NKV, self.hd = NH, NKV, C // NH
        self.input_layernorm = RMSNorm(C, eps)
        self.q_proj = linear(C, NH * self.hd)
        self.k_proj = linear(C, NKV * self.hd)
        self.v_proj = linear(C, NKV * self.hd)
        self.o_proj = linear(NH * self.hd, C)
        self.post_attention_layernorm = RMSNorm(C, eps)
        self.gate_proj = linear(C, Fd)
        self.up_proj = linear(C, Fd)
        self.down_proj = linear(Fd, C)

    def attn(self, x, cos, sin, cache=None, pos=0):
        """Causal grouped-query attention at positions pos..pos+T; cache = (k, v) of shape
        (B, NKV, maxT, hd), the new keys and values written at pos."""
        B, T, _ = x.shape
        hd = self.hd
        q = self.q_proj(x).view(B, T, self.NH, hd).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.NKV, hd).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.NKV, hd).transpose(1, 2)
        c, s = cos[pos:pos + T], sin[pos:pos + T]
        q, k = rope(q, c, s), rope(k, c, s)
        if cache is not None:
            kc, vc = cache
            kc[:, :, pos:pos + T] = k
            vc[:, :, pos:pos + T] = v
            k, v = kc[:, :, :pos + T], vc[:, :, :pos + T]
        S = k.shape[2]
        g = self.NH // self.NKV  # query heads per kv head: (B, NKV, g*T, hd) x (B, NKV, hd, S)
        q = q.reshape(B, self.NKV, g * T, hd)
        att = (q @ k.transpose(-2, -1)) * (hd ** -0.5)
        if T > 1:  # query t (at position pos+t) sees keys 0..pos+t
            mask = torch.ones(T, S, dtype=torch.bool).tril(diagonal=S - T).repeat(g, 1)
            att = att.masked_fill(~mask, float("-inf"))
        y = (F.softmax(att, dim=-1) @ v).view(B, self.NH, T, hd)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.NH * hd))

    def forward(self, x, cos, sin, cache=None, pos=0):
        x = x + self.attn(self.input_layernorm(x), cos, sin, cache, pos)
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Llama(torch.nn.Module):
    def __init__(self, V, maxT, L, NH, NKV, C, Fd, theta, eps=1e-5):
        super().__init__()
        self.embed = torch.nn.Parameter(torch.randn(V, C) * 0.02)
        self.layers = torch.nn.ModuleList([Block(C, NH, NKV, Fd, eps) for _ in range(L)])
        self.norm = RMSNorm(C, eps)
        cos, sin = rope_tables(maxT, C // NH, theta)
        self.register_buffer("cos", cos)
        self.register_buffer("sin", sin)

    def forward(self, tokens, caches=None, pos=0, last_only=False):
        """tokens (B,T) at positions pos..pos+T -> logits (B,T,V), or (B,1,V) of the last."""
        x = self.embed[tokens]
        for i, blk in enumerate(self.layers):
            x = blk(x, self.cos, self.sin, None if caches is None else caches[i], pos)
        if last_only:
            x = x[:, -1:]
        return self.norm(x) @ self.embed.t()


def layer_flops_per_token(C, NH, NKV, Fd):
    hd = C // NH
    return 2.0 * (C * NH * hd + 2 * C * NKV * hd + NH * hd * C + 3 * C * Fd)


def train_flops(V, L, NH, NKV, C, Fd, B, T):
    BT, hd = B * T, C // NH
    att = 4.0 * B * T * T * NH * hd
    fwd = L * (BT * layer_flops_per_token(C, NH, NKV, Fd) + att) + 2.0 * BT * C * V
    return 3.0 * fwd  # backward: twice the forward's GEMMs


def gen_flops(V, L, NH, NKV, C, Fd, B, P, NEW):
    ntok, nlog, avg_ctx = B * (P + NEW - 1), B * NEW, (P + NEW) / 2.0
    per_tok = layer_flops_per_token(C, NH, NKV, Fd) + 4.0 * avg_ctx * C
    return ntok * L * per_tok + nlog * 2.0 * C * V


def make_generate(model, V, L, NKV, hd, prompts, P, NEW, seed):
    """A generate() closure for `model`; it returns the seconds its decode steps took."""
    GB = prompts.shape[0]

    def generate():
        gen = torch.Generator().manual_seed(seed)
        with torch.inference_mode():
            caches = [(torch.empty(GB, NKV, P + NEW, hd), torch.empty(GB, NKV, P + NEW, hd))
                      for _ in range(L)]
            logits = model(prompts, caches, 0, last_only=True)[:, -1]
            out = torch.empty(GB, NEW, dtype=torch.long)
            lps = torch.empty(GB, NEW)
            t0 = time.perf_counter()
            for i in range(NEW):
                logp = F.log_softmax(logits, dim=-1)  # temperature 1
                tok = torch.multinomial(logp.exp(), 1, generator=gen)
                out[:, i] = tok[:, 0]
                lps[:, i] = logp.gather(-1, tok)[:, 0]
                if i + 1 < NEW:
                    logits = model(tok, caches, P + i)[:, -1]
            return time.perf_counter() - t0
    return generate


def time_generate(generate, reps):
    """median and min of the whole generation, median decode time per step."""
    generate()
    whole, dec = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        d = generate()
        whole.append(time.perf_counter() - t0)
        dec.append(d)
    return statistics.median(whole), min(whole), statistics.median(dec)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="smol")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--label", default="default")
    ap.add_argument("--skip-generate", action="store_true")
    a = ap.parse_args()
    if a.reps < 5 or a.threads < 1 or not a.label.replace("_", "").isalnum():
        sys.exit("torch_llama.py: --reps must be >= 5, --threads >= 1, --label [A-Za-z0-9_]")
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    V, maxT, L, NH, NKV, C, Fd, theta, B, T, GB, P, NEW = PRESETS[a.preset]
    model = Llama(V, maxT, L, NH, NKV, C, Fd, theta)
    nparams = sum(p.numel() for p in model.parameters())
    g = torch.Generator().manual_seed(2)
    tokens = torch.randint(0, V, (B, T), generator=g)
    targets = torch.randint(0, V, (B, T), generator=g)

    def train_step():
        model.zero_grad(set_to_none=False)
        logits = model(tokens)
        lp = F.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1))
        (-lp.mean()).backward()

    label = f"torch.{a.label}.{a.preset}"
    report_setup(torch, label, f", oneDNN {torch.backends.mkldnn.is_available()}")
    print(f"== torch {a.label} {a.preset}: V={V} L={L} NH={NH} NKV={NKV} C={C} F={Fd}, "
          f"{nparams / 1e6:.1f}M parameters, median of {a.reps}")

    med, best = time_reps(train_step, a.reps)
    report_train(label, B, T, train_flops(V, L, NH, NKV, C, Fd, B, T), med, best)
    if a.skip_generate:
        return

    model.zero_grad(set_to_none=True)  # the gradients' memory back before generating
    prompts = torch.randint(0, V, (GB, P), generator=g)
    variants = {"eager": model}
    if torch.backends.mkldnn.is_available():
        from torch.utils import mkldnn as mkldnn_utils
        variants["mkldnn"] = mkldnn_utils.to_mkldnn(copy.deepcopy(model).eval())
    gfl = gen_flops(V, L, NH, NKV, C, Fd, GB, P, NEW)
    res = {}
    for name, m in variants.items():
        gen = make_generate(m, V, L, NKV, C // NH, prompts, P, NEW, 5)
        res[name] = time_generate(gen, a.reps)
        mg, bg, dg = res[name]
        print(f"  generate [{name}] {GB} x ({P} prompt + {NEW} new): median {mg * 1e3:.1f} ms "
              f"(min {bg * 1e3:.1f}), {GB * NEW / mg:.0f} new tokens/s, "
              f"{gfl / mg / 1e9:.1f} GFLOP/s; decode {dg / (NEW - 1) * 1e3:.2f} ms per step")
        print(f"RESULT\t{label}.gen_{name}_tok_s\t{GB * NEW / mg:.3f}\ttokens/s")
    name = min(res, key=lambda k: res[k][0])
    mg, bg, dg = res[name]
    print(f"  the faster generation: {name}")
    print(f"RESULT\t{label}.gen_variant\t{name}\tname")
    print(f"RESULT\t{label}.gen_ms\t{mg * 1e3:.3f}\tms")
    print(f"RESULT\t{label}.gen_min_ms\t{bg * 1e3:.3f}\tms")
    print(f"RESULT\t{label}.gen_tok_s\t{GB * NEW / mg:.3f}\ttokens/s")
    print(f"RESULT\t{label}.gen_gflops\t{gfl / mg / 1e9:.3f}\tGFLOP/s")
    print(f"RESULT\t{label}.decode_step_ms\t{dg / (NEW - 1) * 1e3:.3f}\tms")


if __name__ == "__main__":
    main()
