#!/usr/bin/env python3
"""tests/ref/hf_llama/make_fixture.py — dev-time generator of the Hugging Face Llama-family
fixtures that tests/t_hf_llama.sh checks `rlhf-hf` and `rlhf-logprobs` against. Run once
with Debian's /usr/bin/python3 (torch + numpy; no `safetensors` or `transformers` package:
safetensors files are written by hand below); never at test time. The outputs are
committed.

Folders, each in the on-disk layout transformers' save_pretrained writes:
  llama/         LlamaForCausalLM, F32, untied lm_head.weight, GQA (4 heads, 2 KV heads),
                 rope_scaling {"rope_type": "llama3"} (both scaled and smoothed bands are
                 hit), tokenizer.json (a tiny byte-level BPE) + tokenizer_config.json
                 (chat_template, bos/eos tokens)
  qwen2/         Qwen2ForCausalLM, F16, q/k/v biases, tied, a tied lm_head.weight equal
                 to the embedding still shipped, sliding window configured but off
  qwen3/         Qwen3ForCausalLM, F32, q/k norms, head_dim 6 != hidden/heads, tied,
                 transformers 5's rope_parameters with rope_theta inside
  llama_sharded/ LlamaForCausalLM, BF16, two shards + model.safetensors.index.json, keys
                 without the "model." prefix (as LlamaModel writes them), tied, MQA,
                 rope_parameters {"rope_type": "llama3", ...}
  score/         LlamaForSequenceClassification, one label, F32, score.weight (1, C)
plus tokens.jsonl (token sequences, one JSON array per line) and, per folder,
<name>_ref.txt: for an LM, per line the T-1 values log p(x_t | x_<t); for the score model
the score at the last token — from an independent float64 PyTorch forward written from
transformers' modeling_llama.py / modeling_qwen2.py / modeling_qwen3.py and
modeling_rope_utils.py (the same formulas as tests/ref/make_llama_ref.py), evaluated on
the weights exactly as stored (F16/BF16 values widened, not the float32 originals).

`make_fixture.py --check DIR NAME` (dev time) reads a folder written by `rlhf-hf export`
with the independent reader below (config.json fields, safetensors F32/BF16, transformers'
key names) and prints the largest difference of its outputs from NAME_ref.txt, i.e.
checks the export is the layout transformers would load.
"""
import json
import math
import os
import struct

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
MAXT = 32
SEQS = [[1], [5, 9], [3, 0, 7], [12, 40, 33, 8, 2], [63, 1, 17, 17, 17, 5, 30, 41],
        list(range(20, 36)), [7, 3, 50, 61, 2, 9, 11, 44, 23, 6, 13, 31]]

# name: (arch, model_type, dtype, V, C, L, NH, NKV, head_dim (None = C/NH), F, qkv_bias,
#        qk_norm, tie, rope_theta, eps, llama3 scaling (factor, low, high, orig) or None)
VARIANTS = {
    "llama": ("LlamaForCausalLM", "llama", "F32", 260, 24, 2, 4, 2, None, 32, 0, 0, 0,
              500000.0, 1e-5, (8.0, 1.0, 4.0, 16)),
    "qwen2": ("Qwen2ForCausalLM", "qwen2", "F16", 64, 16, 2, 4, 2, None, 24, 1, 0, 1,
              1000000.0, 1e-6, None),
    "qwen3": ("Qwen3ForCausalLM", "qwen3", "F32", 64, 16, 2, 4, 2, 6, 24, 0, 1, 1,
              1000000.0, 1e-6, None),
    "llama_sharded": ("LlamaForCausalLM", "llama", "BF16", 64, 16, 2, 4, 1, None, 24, 0, 0,
                      1, 10000.0, 1e-5, (4.0, 1.0, 2.0, 8)),
    "score": ("LlamaForSequenceClassification", "llama", "F32", 64, 16, 2, 2, 2, None, 24,
              0, 0, 0, 10000.0, 1e-5, None),
}


def table(v):
    arch, mt, dt, V, C, L, NH, NKV, hd, F, qkv_bias, qk_norm, tie = v[:13]
    hd = hd or C // NH
    t = [("model.embed_tokens.weight", (V, C))]
    for l in range(L):
        p = f"model.layers.{l}."
        t += [(p + "input_layernorm.weight", (C,)),
              (p + "self_attn.q_proj.weight", (NH * hd, C)),
              (p + "self_attn.k_proj.weight", (NKV * hd, C)),
              (p + "self_attn.v_proj.weight", (NKV * hd, C))]
        if qkv_bias:
            t += [(p + "self_attn.q_proj.bias", (NH * hd,)),
                  (p + "self_attn.k_proj.bias", (NKV * hd,)),
                  (p + "self_attn.v_proj.bias", (NKV * hd,))]
        if qk_norm:
            t += [(p + "self_attn.q_norm.weight", (hd,)), (p + "self_attn.k_norm.weight", (hd,))]
        t += [(p + "self_attn.o_proj.weight", (C, NH * hd)),
              (p + "post_attention_layernorm.weight", (C,)),
              (p + "mlp.gate_proj.weight", (F, C)),
              (p + "mlp.up_proj.weight", (F, C)),
              (p + "mlp.down_proj.weight", (C, F))]
    t += [("model.norm.weight", (C,))]
    if arch.endswith("ForSequenceClassification"):
        t += [("score.weight", (1, C))]
    elif not tie:
        t += [("lm_head.weight", (V, C))]
    return t


def stored(a, dt):
    """The values as the file holds them (float64 of the F32/F16/BF16 numbers)."""
    t = torch.from_numpy(a.astype(np.float32))
    if dt == "F16":
        t = t.half()
    elif dt == "BF16":
        t = t.bfloat16()
    return t


def random_weights(v, seed):
    g = np.random.default_rng(seed)
    w = {}
    for name, shape in table(v):
        if "norm" in name:
            a = 1.0 + 0.1 * g.standard_normal(shape)
        elif name.endswith(".bias"):
            a = 0.1 * g.standard_normal(shape)
        elif name == "score.weight":
            a = g.standard_normal(shape) / math.sqrt(shape[1])
        else:
            a = 0.3 * g.standard_normal(shape)
        w[name] = stored(a, v[2])
    return w


# ---- an independent Llama-family forward in float64 ------------------------------------

def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def inv_freq_of(hd, theta, scaling):
    inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    if scaling is None:
        return inv
    factor, low, high, old_ctx = scaling  # _compute_llama3_parameters
    low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
    wavelen = 2 * math.pi / inv
    inv_l = torch.where(wavelen > low_wavelen, inv / factor, inv)
    smooth = (old_ctx / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
    medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
    return torch.where(medium, smoothed, inv_l)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def final_hidden(v, P, tokens):
    arch, mt, dt, V, C, L, NH, NKV, hd, F, qkv_bias, qk_norm, tie, theta, eps, sc = v
    hd = hd or C // NH
    T = len(tokens)
    x = P["model.embed_tokens.weight"][torch.tensor(tokens)]
    freqs = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq_of(hd, theta, sc)[None]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[None], emb.sin()[None]
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for l in range(L):
        g = lambda n: P[f"model.layers.{l}.{n}"]
        h = rms_norm(x, g("input_layernorm.weight"), eps)
        lin = lambda n: h @ g(n + ".weight").T + (g(n + ".bias") if qkv_bias else 0.0)
        q = lin("self_attn.q_proj").view(T, NH, hd)
        k = lin("self_attn.k_proj").view(T, NKV, hd)
        vv = lin("self_attn.v_proj").view(T, NKV, hd)
        if qk_norm:
            q = rms_norm(q, g("self_attn.q_norm.weight"), eps)
            k = rms_norm(k, g("self_attn.k_norm.weight"), eps)
        q, k, vv = q.transpose(0, 1), k.transpose(0, 1), vv.transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = NH // NKV
        k = k.repeat_interleave(rep, dim=0)
        vv = vv.repeat_interleave(rep, dim=0)
        s = (q @ k.transpose(-1, -2)) * hd ** -0.5
        s = s.masked_fill(~mask, float("-inf"))
        y = (torch.softmax(s, dim=-1) @ vv).transpose(0, 1).reshape(T, NH * hd)
        x = x + y @ g("self_attn.o_proj.weight").T
        h = rms_norm(x, g("post_attention_layernorm.weight"), eps)
        act = torch.nn.functional.silu(h @ g("mlp.gate_proj.weight").T) * (h @ g("mlp.up_proj.weight").T)
        x = x + act @ g("mlp.down_proj.weight").T
    return rms_norm(x, P["model.norm.weight"], eps)


def reference_line(v, P, tokens):
    x = final_hidden(v, P, tokens)
    if v[0].endswith("ForSequenceClassification"):
        return "%.9g" % float((x[-1] @ P["score.weight"].T)[0])
    head = P["model.embed_tokens.weight"] if v[12] else P["lm_head.weight"]
    logp = torch.log_softmax(x @ head.T, dim=-1)
    return " ".join("%.9g" % float(logp[t, tokens[t + 1]]) for t in range(len(tokens) - 1))


# ---- files -------------------------------------------------------------------------------

def raw_bytes(t):
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    if t.dtype == torch.float16:
        return t.numpy().astype("<f2").tobytes()
    return t.numpy().astype("<f4").tobytes()


def write_safetensors(path, items, dt):
    """items: (name, tensor); like the safetensors package: keys sorted, data in order."""
    header, blobs, off = {}, [], 0
    for name, t in sorted(items):
        raw = raw_bytes(t)
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = {"format": "pt"}
    js = json.dumps(header, separators=(",", ":")).encode()
    js += b" " * ((8 - len(js) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(js)) + js + b"".join(blobs))
    return off


def tokenizer_json():
    """A byte-level BPE as the tokenizers library writes it (GPT-2's byte alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    vocab = {chr(c): i for i, c in enumerate(cs)}
    merges = ["Ġ t", "h e"]
    for m in merges:
        vocab[m.replace(" ", "")] = len(vocab)
    added = [{"id": len(vocab) + i, "content": c, "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": True}
             for i, c in enumerate(["<|begin_of_text|>", "<|eot_id|>"])]
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
            "normalizer": None,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                              "use_regex": True},
            "post_processor": None,
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                        "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None,
                      "continuing_subword_prefix": None, "end_of_word_suffix": None,
                      "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                      "vocab": vocab, "merges": merges}}


CHAT_TEMPLATE = ("{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}"
                 "<|eot_id|>{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")


def config_json(v):
    arch, mt, dt, V, C, L, NH, NKV, hd, F, qkv_bias, qk_norm, tie, theta, eps, sc = v
    c = {"architectures": [arch], "model_type": mt, "vocab_size": V, "hidden_size": C,
         "num_hidden_layers": L, "num_attention_heads": NH, "num_key_value_heads": NKV,
         "intermediate_size": F, "max_position_embeddings": MAXT, "rms_norm_eps": eps,
         "hidden_act": "silu", "initializer_range": 0.02, "tie_word_embeddings": bool(tie),
         "torch_dtype": {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[dt],
         "transformers_version": "4.51.0", "use_cache": True, "attention_dropout": 0.0,
         "bos_token_id": V - 2, "eos_token_id": V - 1}
    if mt == "llama":
        c.update({"attention_bias": False, "mlp_bias": False, "pretraining_tp": 1,
                  "head_dim": hd or C // NH})
    if mt in ("qwen2", "qwen3"):
        c.update({"use_sliding_window": False, "sliding_window": 4096, "max_window_layers": L})
    if mt == "qwen3":
        c.update({"head_dim": hd, "attention_bias": False})
    rope = None
    if sc:
        rope = {"rope_type": "llama3", "factor": sc[0], "low_freq_factor": sc[1],
                "high_freq_factor": sc[2], "original_max_position_embeddings": sc[3]}
    if mt == "qwen3" or arch == "LlamaForCausalLM" and dt == "BF16":
        # transformers 5: rope_parameters, rope_theta inside it
        c["rope_parameters"] = dict(rope or {"rope_type": "default"}, rope_theta=theta)
    else:
        c["rope_theta"] = theta
        c["rope_scaling"] = rope
    if arch.endswith("ForSequenceClassification"):
        c.update({"id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}, "pad_token_id": V - 1})
    return json.dumps(c, indent=2) + "\n"


def main():
    with open(os.path.join(HERE, "tokens.jsonl"), "w") as f:
        for s in SEQS:
            f.write(json.dumps(s) + "\n")
    for i, (name, v) in enumerate(VARIANTS.items()):
        d = os.path.join(HERE, name)
        os.makedirs(d, exist_ok=True)
        for old in os.listdir(d):
            os.remove(os.path.join(d, old))
        P = random_weights(v, 100 + i)
        with open(os.path.join(d, "config.json"), "w") as f:
            f.write(config_json(v))
        items = list(P.items())
        if name == "qwen2":  # tied, but the file still carries the head
            items.append(("lm_head.weight", P["model.embed_tokens.weight"].clone()))
        if name == "llama_sharded":
            items = [(n[len("model."):] if n.startswith("model.") else n, t) for n, t in items]
            shards = [[it for it in items if ".layers.0." not in "." + it[0]],
                      [it for it in items if ".layers.0." in "." + it[0]]]
            wmap, total = {}, 0
            for k, sh in enumerate(shards):
                fn = "model-%05d-of-%05d.safetensors" % (k + 1, len(shards))
                total += write_safetensors(os.path.join(d, fn), sh, v[2])
                wmap.update({n: fn for n, _ in sh})
            with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
                json.dump({"metadata": {"total_size": total},
                           "weight_map": dict(sorted(wmap.items()))}, f, indent=2)
                f.write("\n")
        else:
            write_safetensors(os.path.join(d, "model.safetensors"), items, v[2])
        if name == "llama":
            with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
                json.dump(tokenizer_json(), f, ensure_ascii=False)
            with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
                json.dump({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
                           "chat_template": CHAT_TEMPLATE, "model_max_length": MAXT,
                           "tokenizer_class": "PreTrainedTokenizerFast",
                           "clean_up_tokenization_spaces": True}, f, indent=2)
                f.write("\n")
        P64 = {n: t.double() for n, t in P.items()}
        with open(os.path.join(HERE, name + "_ref.txt"), "w") as f:
            for s in SEQS:
                f.write(reference_line(v, P64, s) + "\n")


def read_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header, data = json.loads(raw[8:8 + n]), raw[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b = data[e["data_offsets"][0]:e["data_offsets"][1]]
        if e["dtype"] == "BF16":
            a = (np.frombuffer(b, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            assert e["dtype"] == "F32", e["dtype"]
            a = np.frombuffer(b, "<f4")
        out[name] = torch.from_numpy(a.astype(np.float64).reshape(e["shape"]))
    return out


def check(d, name):
    c = json.load(open(os.path.join(d, "config.json")))
    rs = c.get("rope_scaling")
    sc = (rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"],
          rs["original_max_position_embeddings"]) if rs else None
    v = (c["architectures"][0], c["model_type"], None, c["vocab_size"], c["hidden_size"],
         c["num_hidden_layers"], c["num_attention_heads"], c["num_key_value_heads"],
         c["head_dim"], c["intermediate_size"], int(c["model_type"] == "qwen2"),
         int(c["model_type"] == "qwen3"), int(c["tie_word_embeddings"]), c["rope_theta"],
         c["rms_norm_eps"], sc)
    P = read_safetensors(os.path.join(d, "model.safetensors"))
    assert sorted(P) == sorted(n for n, _ in table(v)), "tensor names differ from HF's"
    worst = 0.0
    for s, line in zip(SEQS, open(os.path.join(HERE, name + "_ref.txt"))):
        got = [float(x) for x in reference_line(v, P, s).split()]
        want = [float(x) for x in line.split()]
        assert len(got) == len(want)
        worst = max([worst] + [abs(a - b) for a, b in zip(got, want)])
    print(f"{d}: {v[0]} max |difference| from {name}_ref.txt {worst:.3g}")


if __name__ == "__main__":
    import sys
    if len(sys.argv) == 4 and sys.argv[1] == "--check":
        check(sys.argv[2], sys.argv[3])
    else:
        main()
