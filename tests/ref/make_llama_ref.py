#!/usr/bin/env python3
"""Dev-time generator of tests/ref/llama_tiny.bin: an independent Llama-family transformer
(PyTorch, float64), written from Hugging Face transformers' modeling code
(models/llama/modeling_llama.py: LlamaRMSNorm, rotate_half / apply_rotary_pos_emb,
repeat_kv, eager_attention_forward, LlamaMLP, LlamaDecoderLayer, LlamaModel;
modeling_qwen2.py: bias on q/k/v; modeling_qwen3.py: q_norm / k_norm on each head before
the rotation, explicit head_dim; modeling_rope_utils.py: _compute_default_rope_parameters
and _compute_llama3_parameters), evaluated on random weights for tests/test_llama.c.
Never run by the tests.

Usage: python3 tests/ref/make_llama_ref.py tests/ref/llama_tiny.bin

File layout (little endian): int32 magic 0x4C4C4D31, int32 number of cases; per case:
  int32 x 15: V, maxT, L, NH, NKV, C, head_dim (0 = C/NH), F, qkv_bias, qk_norm,
              tie_embeddings, B, T, number of tensors, name bytes of the case (n)
  char[n] case name
  float32 x 7: temperature, rope_theta, rms_norm_eps, rope factor (0 = no scaling),
               low_freq_factor, high_freq_factor, original_max_position_embeddings
  per tensor: int32 name length, name bytes, int32 numel, float32[numel] value
  int32[B*T] tokens, int32[B*T] targets (-1: none), float32[B*T] dlogprobs,
  float32[B*T] dentropy, float32[B*T*V] logits, float32[B*T] logprobs, float32[B*T] entropy
  per tensor (same order): float32[numel] gradient of
      sum(dlogprobs * logprobs + dentropy * entropy)
  with logprobs = log_softmax(logits / temperature)[target], entropy of the same
  distribution (0 where target is -1), as tests/ref/make_gpt_ref.py.
"""
import math
import struct
import sys

import torch

V, MAXT, L, C, F = 32, 16, 2, 16, 24
B, T = 2, 7
TEMP = 0.9

# one case per switch of the family (name, NH, NKV, head_dim, qkv_bias, qk_norm, tie,
# rope_theta, eps, llama3 scaling (factor, low, high, original context) or None)
CASES = [
    ("gqa", 4, 2, 0, 0, 0, 1, 10000.0, 1e-5, None),
    ("mqa_qkv_bias", 4, 1, 0, 1, 0, 1, 1000000.0, 1e-6, None),
    ("qk_norm_head_dim", 4, 2, 6, 0, 1, 1, 1000000.0, 1e-6, None),
    ("untied_llama3", 2, 2, 0, 0, 0, 0, 10000.0, 1e-5, (8.0, 1.0, 4.0, 64)),
]


def table(nh, nkv, hd, qkv_bias, qk_norm, tie):
    t = [("model.embed_tokens.weight", (V, C))]
    for l in range(L):
        p = f"model.layers.{l}."
        t += [(p + "input_layernorm.weight", (C,)),
              (p + "self_attn.q_proj.weight", (nh * hd, C)),
              (p + "self_attn.k_proj.weight", (nkv * hd, C)),
              (p + "self_attn.v_proj.weight", (nkv * hd, C))]
        if qkv_bias:
            t += [(p + "self_attn.q_proj.bias", (nh * hd,)),
                  (p + "self_attn.k_proj.bias", (nkv * hd,)),
                  (p + "self_attn.v_proj.bias", (nkv * hd,))]
        if qk_norm:
            t += [(p + "self_attn.q_norm.weight", (hd,)), (p + "self_attn.k_norm.weight", (hd,))]
        t += [(p + "self_attn.o_proj.weight", (C, nh * hd)),
              (p + "post_attention_layernorm.weight", (C,)),
              (p + "mlp.gate_proj.weight", (F, C)),
              (p + "mlp.up_proj.weight", (F, C)),
              (p + "mlp.down_proj.weight", (C, F))]
    t += [("model.norm.weight", (C,))]
    if not tie:
        t += [("lm_head.weight", (V, C))]
    return t


def rms_norm(x, w, eps):
    # LlamaRMSNorm: x * rsqrt(mean(x^2) + eps), then weight *
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def inv_freq_of(hd, theta, scaling):
    # _compute_default_rope_parameters: 1 / base^(arange(0, dim, 2) / dim)
    inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    if scaling is None:
        return inv
    # _compute_llama3_parameters
    factor, low, high, old_ctx = scaling
    low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
    wavelen = 2 * math.pi / inv
    inv_l = torch.where(wavelen > low_wavelen, inv / factor, inv)
    smooth = (old_ctx / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
    medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
    return torch.where(medium, smoothed, inv_l)


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def forward(P, tokens, case):
    name, nh, nkv, hd0, qkv_bias, qk_norm, tie, theta, eps, scaling = case
    hd = hd0 or C // nh
    x = P["model.embed_tokens.weight"][tokens]
    # LlamaRotaryEmbedding: freqs = inv_freq x positions, emb = cat(freqs, freqs)
    pos = torch.arange(T, dtype=torch.float64)
    freqs = pos[:, None] * inv_freq_of(hd, theta, scaling)[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[None, None], emb.sin()[None, None]
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for l in range(L):
        g = lambda n: P[f"model.layers.{l}.{n}"]
        h = rms_norm(x, g("input_layernorm.weight"), eps)
        lin = lambda t, n: t @ g(n + ".weight").T + (g(n + ".bias") if qkv_bias else 0.0)
        q = lin(h, "self_attn.q_proj").view(B, T, nh, hd)
        k = lin(h, "self_attn.k_proj").view(B, T, nkv, hd)
        v = lin(h, "self_attn.v_proj").view(B, T, nkv, hd)
        if qk_norm:
            q = rms_norm(q, g("self_attn.q_norm.weight"), eps)
            k = rms_norm(k, g("self_attn.k_norm.weight"), eps)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        # repeat_kv: kv head j serves query heads j*rep .. j*rep+rep-1
        rep = nh // nkv
        k = k[:, :, None].expand(B, nkv, rep, T, hd).reshape(B, nh, T, hd)
        v = v[:, :, None].expand(B, nkv, rep, T, hd).reshape(B, nh, T, hd)
        s = (q @ k.transpose(-1, -2)) * hd ** -0.5
        s = s.masked_fill(~mask, float("-inf"))
        y = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, nh * hd)
        x = x + y @ g("self_attn.o_proj.weight").T
        h = rms_norm(x, g("post_attention_layernorm.weight"), eps)
        gate = h @ g("mlp.gate_proj.weight").T
        up = h @ g("mlp.up_proj.weight").T
        x = x + (torch.nn.functional.silu(gate) * up) @ g("mlp.down_proj.weight").T
    x = rms_norm(x, P["model.norm.weight"], eps)
    head = P["model.embed_tokens.weight"] if tie else P["lm_head.weight"]
    return x @ head.T


def write_case(f, case, seed):
    name, nh, nkv, hd0, qkv_bias, qk_norm, tie, theta, eps, scaling = case
    hd = hd0 or C // nh
    torch.manual_seed(seed)
    P, order = {}, table(nh, nkv, hd, qkv_bias, qk_norm, tie)
    for n, shape in order:
        if "norm" in n:
            w = 1.0 + 0.1 * torch.randn(shape)
        elif n.endswith(".bias"):
            w = 0.1 * torch.randn(shape)
        else:
            w = 0.3 * torch.randn(shape)
        P[n] = w.float().double().requires_grad_(True)
    tokens = torch.randint(0, V, (B, T))
    targets = torch.randint(0, V, (B, T))
    targets[0, 1] = -1
    targets[1, 4] = -1
    dlp = torch.randn(B, T).float().double()
    dent = torch.randn(B, T).float().double()
    valid = targets >= 0
    logits = forward(P, tokens, case)
    logp = torch.log_softmax(logits / TEMP, dim=-1)
    lp = logp.gather(-1, targets.clamp(min=0)[..., None])[..., 0] * valid
    ent = -(logp.exp() * logp).sum(-1) * valid
    (dlp * lp + dent * ent).sum().backward()
    sc = scaling or (0.0, 0.0, 0.0, 0)
    nb = name.encode()
    f.write(struct.pack("<15i", V, MAXT, L, nh, nkv, C, hd0, F, qkv_bias, qk_norm, tie, B, T,
                        len(order), len(nb)))
    f.write(nb)
    f.write(struct.pack("<7f", TEMP, theta, eps, sc[0], sc[1], sc[2], float(sc[3])))
    f32 = lambda t: f.write(t.detach().reshape(-1).float().numpy().astype("<f4").tobytes())
    i32 = lambda t: f.write(t.reshape(-1).int().numpy().astype("<i4").tobytes())
    for n, _ in order:
        f.write(struct.pack("<i", len(n)) + n.encode() + struct.pack("<i", P[n].numel()))
        f32(P[n])
    i32(tokens)
    i32(targets)
    f32(dlp)
    f32(dent)
    f32(logits)
    f32(lp)
    f32(ent)
    for n, _ in order:
        f32(P[n].grad)


def main():
    with open(sys.argv[1], "wb") as f:
        f.write(struct.pack("<2i", 0x4C4C4D31, len(CASES)))
        for i, case in enumerate(CASES):
            write_case(f, case, 4321 + i)


if __name__ == "__main__":
    main()
