#!/usr/bin/env python3
"""tests/ref/gen_ref.py — writes the reference fixtures adamw.txt, loss.txt, rl.txt.

Dev-time only (the fixtures are committed; no test runs Python). It is an independent
implementation of what common/adamw.c, loss.c and rl.c compute: PyTorch's own
torch.optim.AdamW, and the losses written the way TRL writes them (torch.maximum of the
two surrogate terms, F.logsigmoid, ...) with gradients from autograd in float64. Inputs are
drawn as float32 so the C tests load them exactly.

    /usr/bin/python3 tests/ref/gen_ref.py        # from the repo root; rewrites tests/ref/*.txt
"""
import os

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
rs = np.random.RandomState(20240601)


def f32(a):
    """float32 values, returned as float64 (so they are exact in C floats)"""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


class Out:
    def __init__(self, name):
        self.path = os.path.join(HERE, name)
        self.lines = []

    def put(self, name, arr):
        a = np.asarray(arr, dtype=np.float64).reshape(-1)
        self.lines.append("%s %d" % (name, a.size))
        self.lines.append(" ".join("%.17g" % x for x in a))

    def write(self):
        with open(self.path, "w") as f:
            f.write("\n".join(self.lines) + "\n")


def t64(a, grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), dtype=torch.float64, requires_grad=grad)


# ------------------------------------------------------------------------------------------
# AdamW: torch.optim.AdamW, float32, two groups (decay, no decay), a varying lr

def gen_adamw():
    o = Out("adamw.txt")
    nd, nn_ = 12, 5
    steps = 6
    p0 = f32(rs.randn(nd + nn_))
    grads = f32(rs.randn(steps, nd + nn_) * 0.5)
    grads[2, 3] = 0.0  # a zero gradient on a decayed parameter
    lrs = f32([1e-2, 2e-2, 3e-2, 3e-2, 2e-2, 5e-3])
    pd = torch.nn.Parameter(torch.tensor(p0[:nd], dtype=torch.float32))
    pn = torch.nn.Parameter(torch.tensor(p0[nd:], dtype=torch.float32))
    opt = torch.optim.AdamW([{"params": [pd], "weight_decay": 0.1},
                             {"params": [pn], "weight_decay": 0.0}],
                            lr=1e-2, betas=(0.9, 0.95), eps=1e-8, foreach=False)
    for s in range(steps):
        for g in opt.param_groups:
            g["lr"] = float(lrs[s])
        pd.grad = torch.tensor(grads[s, :nd], dtype=torch.float32)
        pn.grad = torch.tensor(grads[s, nd:], dtype=torch.float32)
        opt.step()
    o.put("n_decay", [nd])
    o.put("n_nodecay", [nn_])
    o.put("steps", [steps])
    o.put("params0", p0)
    o.put("grads", grads)
    o.put("lrs", lrs)
    o.put("params", np.concatenate([pd.detach().numpy(), pn.detach().numpy()]))
    st_d, st_n = opt.state[pd], opt.state[pn]
    o.put("m", np.concatenate([st_d["exp_avg"].numpy(), st_n["exp_avg"].numpy()]))
    o.put("v", np.concatenate([st_d["exp_avg_sq"].numpy(), st_n["exp_avg_sq"].numpy()]))
    o.write()


# ------------------------------------------------------------------------------------------
# losses

B, T = 4, 6
MASK = np.array([[1, 1, 1, 1, 1, 1],
                 [1, 1, 1, 0, 0, 0],
                 [0, 0, 0, 0, 0, 0],
                 [1, 1, 0, 1, 1, 0]], dtype=np.float64)


def agg(x, mask, mode):
    m = torch.tensor(mask)
    if mode == "token":
        return (x * m).sum() / m.sum()
    rows = m.sum(1)
    keep = rows > 0
    per = (x * m).sum(1)[keep] / rows[keep]
    return per.mean()


def gen_losses():
    o = Out("loss.txt")
    o.put("mask", MASK)
    o.put("B", [B])
    o.put("T", [T])

    # masked token cross-entropy
    lp = f32(-np.abs(rs.randn(B, T)) * 2.0)
    o.put("ce.lp", lp)
    for mode in ("token", "seq"):
        x = t64(lp, True)
        loss = -agg(x, MASK, mode)
        loss.backward()
        o.put("ce.%s.loss" % mode, [loss.item()])
        o.put("ce.%s.dlp" % mode, x.grad.numpy())

    # Bradley–Terry
    P = 5
    rw, rl, mg = f32(rs.randn(P)), f32(rs.randn(P)), f32(np.abs(rs.randn(P)) * 0.5)
    o.put("bt.rw", rw)
    o.put("bt.rl", rl)
    o.put("bt.margin", mg)
    for name, marg in (("nomargin", 0.0 * mg), ("margin", mg)):
        a, b = t64(rw, True), t64(rl, True)
        loss = -F.logsigmoid(a - b - t64(marg)).mean()
        loss.backward()
        o.put("bt.%s.loss" % name, [loss.item()])
        o.put("bt.%s.drw" % name, a.grad.numpy())
        o.put("bt.%s.drl" % name, b.grad.numpy())
    o.put("bt.accuracy", [np.mean(rw > rl)])

    # PPO policy loss with entropy bonus; clip-higher (0.2, 0.28)
    lo, hi, c_ent = 0.2, 0.28, 0.01
    lp_old = f32(-np.abs(rs.randn(B, T)))
    lp_new = f32(lp_old + rs.randn(B, T) * 0.3)
    adv = f32(rs.randn(B, T))
    ent = f32(np.abs(rs.randn(B, T)) + 0.5)
    for k, v in (("lp_new", lp_new), ("lp_old", lp_old), ("adv", adv), ("ent", ent)):
        o.put("ppo." + k, v)
    o.put("ppo.cfg", [lo, hi, c_ent])
    m = torch.tensor(MASK)
    for mode in ("token", "seq"):
        x, h = t64(lp_new, True), t64(ent, True)
        ratio = torch.exp(x - t64(lp_old))
        A = t64(adv)
        pg1 = -A * ratio
        pg2 = -A * torch.clamp(ratio, 1 - lo, 1 + hi)
        pg = torch.maximum(pg1, pg2)
        loss = agg(pg, MASK, mode) - c_ent * agg(h, MASK, mode)
        loss.backward()
        o.put("ppo.%s.loss" % mode, [loss.item()])
        o.put("ppo.%s.dlp" % mode, x.grad.numpy())
        o.put("ppo.%s.dent" % mode, h.grad.numpy())
        with torch.no_grad():
            lr_ = x - t64(lp_old)
            o.put("ppo.clipfrac", [((pg2 > pg1).double() * m).sum().item() / m.sum().item()])
            o.put("ppo.approx_kl", [(((ratio - 1) - lr_) * m).sum().item() / m.sum().item()])
            o.put("ppo.approx_kl_k2", [((0.5 * lr_ ** 2) * m).sum().item() / m.sum().item()])

    # value loss, clip 0.2
    clip = 0.2
    vold = f32(rs.randn(B, T))
    vnew = f32(vold + rs.randn(B, T) * 0.3)
    ret = f32(rs.randn(B, T))
    o.put("value.v", vnew)
    o.put("value.vold", vold)
    o.put("value.ret", ret)
    o.put("value.clip", [clip])
    for mode in ("token", "seq"):
        v = t64(vnew, True)
        vc = t64(vold) + torch.clamp(v - t64(vold), -clip, clip)
        l1 = (v - t64(ret)) ** 2
        l2 = (vc - t64(ret)) ** 2
        loss = 0.5 * agg(torch.maximum(l1, l2), MASK, mode)
        loss.backward()
        o.put("value.%s.loss" % mode, [loss.item()])
        o.put("value.%s.dv" % mode, v.grad.numpy())
        with torch.no_grad():
            o.put("value.clipfrac", [((l2 > l1).double() * m).sum().item() / m.sum().item()])
    sel = MASK > 0
    o.put("value.ev", [1.0 - np.var(ret[sel] - vnew[sel]) / np.var(ret[sel])])

    # DPO family
    P = 5
    pw, pl = f32(-rs.rand(P) * 20 - 5), f32(-rs.rand(P) * 20 - 5)
    rw_, rl_ = f32(pw + rs.randn(P) * 2), f32(pl + rs.randn(P) * 2)
    for k, v in (("pi_w", pw), ("pi_l", pl), ("ref_w", rw_), ("ref_l", rl_)):
        o.put("dpo." + k, v)
    for name, beta, eps, ipo in (("sigmoid", 0.1, 0.0, False), ("cdpo", 0.1, 0.1, False),
                                 ("ipo", 0.5, 0.0, True)):
        a, b = t64(pw, True), t64(pl, True)
        h = (a - t64(rw_)) - (b - t64(rl_))
        if ipo:
            loss = ((h - 1 / (2 * beta)) ** 2).mean()
        else:
            loss = (-(1 - eps) * F.logsigmoid(beta * h) - eps * F.logsigmoid(-beta * h)).mean()
        loss.backward()
        o.put("dpo.%s.cfg" % name, [beta, eps])
        o.put("dpo.%s.loss" % name, [loss.item()])
        o.put("dpo.%s.dpi_w" % name, a.grad.numpy())
        o.put("dpo.%s.dpi_l" % name, b.grad.numpy())
        with torch.no_grad():
            o.put("dpo.%s.chosen" % name, [(beta * (a - t64(rw_))).mean().item()])
            o.put("dpo.%s.rejected" % name, [(beta * (b - t64(rl_))).mean().item()])
            o.put("dpo.%s.accuracy" % name, [(h > 0).double().mean().item()])

    # GRPO, kl 0.04
    lo, hi, kl = 0.2, 0.2, 0.04
    g_old = f32(-np.abs(rs.randn(B, T)))
    g_new = f32(g_old + rs.randn(B, T) * 0.3)
    g_ref = f32(g_old + rs.randn(B, T) * 0.2)
    g_adv = f32(rs.randn(B))
    for k, v in (("lp_new", g_new), ("lp_old", g_old), ("lp_ref", g_ref), ("adv", g_adv)):
        o.put("grpo." + k, v)
    o.put("grpo.cfg", [lo, hi, kl])
    for mode in ("token", "seq"):
        x = t64(g_new, True)
        ratio = torch.exp(x - t64(g_old))
        A = t64(g_adv)[:, None]
        pg = torch.maximum(-A * ratio, -A * torch.clamp(ratio, 1 - lo, 1 + hi))
        d = t64(g_ref) - x
        k3 = torch.exp(d) - d - 1
        loss = agg(pg + kl * k3, MASK, mode)
        loss.backward()
        o.put("grpo.%s.loss" % mode, [loss.item()])
        o.put("grpo.%s.dlp" % mode, x.grad.numpy())
        with torch.no_grad():
            o.put("grpo.kl", [(k3 * m).sum().item() / m.sum().item()])
    o.write()


# ------------------------------------------------------------------------------------------
# RL estimators

def gen_rl():
    o = Out("rl.txt")
    Bg, Tg = 3, 7
    lengths = [7, 4, 0]
    mask = np.zeros((Bg, Tg))
    for b, n in enumerate(lengths):
        mask[b, :n] = 1
    rew = f32(rs.randn(Bg, Tg))
    val = f32(rs.randn(Bg, Tg))
    gamma, lam = 0.99, 0.95
    # TRL's loop: zero the padding, run over the whole padded length
    r, v = rew * mask, val * mask
    adv = np.zeros((Bg, Tg))
    last = np.zeros(Bg)
    for t in reversed(range(Tg)):
        nextv = v[:, t + 1] if t < Tg - 1 else 0.0
        delta = r[:, t] + gamma * nextv - v[:, t]
        last = delta + gamma * lam * last
        adv[:, t] = last
    ret = (adv + v) * mask
    adv = adv * mask
    o.put("gae.mask", mask)
    o.put("gae.rewards", rew)
    o.put("gae.values", val)
    o.put("gae.cfg", [gamma, lam])
    o.put("gae.adv", adv)
    o.put("gae.returns", ret)

    # masked whitening (TRL masked_whiten: unbiased masked variance, rsqrt(var + 1e-8))
    x = f32(rs.randn(Bg, Tg) * 3 + 1)
    sel = mask > 0
    mean = x[sel].mean()
    var = x[sel].var(ddof=1)
    w = (x - mean) / np.sqrt(var + 1e-8)
    o.put("whiten.x", x)
    o.put("whiten.out", w * mask)
    o.put("whiten.out_keep", (w + mean) * mask)

    # group advantages: 3 groups of 4
    sc = f32(rs.randn(3, 4))
    sc[2, :] = 0.5  # a group where every sample scored the same
    ts = torch.tensor(sc)
    grpo = (ts - ts.mean(1, keepdim=True)) / (ts.std(1, keepdim=True) + 1e-4)
    o.put("group.scores", sc)
    o.put("group.grpo", grpo.numpy())
    o.put("group.drgrpo", (ts - ts.mean(1, keepdim=True)).numpy())
    rloo = ts - (ts.sum(1, keepdim=True) - ts) / 3.0
    o.put("group.rloo", rloo.numpy())

    # running statistics over uneven chunks
    xs = f32(rs.randn(37) * 2 + 3)
    o.put("running.x", xs)
    o.put("running.mean", [xs.mean()])
    o.put("running.var", [xs.var(ddof=1)])
    o.write()


if __name__ == "__main__":
    torch.set_default_dtype(torch.float64)
    gen_adamw()
    gen_losses()
    gen_rl()
    print("wrote", ", ".join(os.path.join(HERE, n) for n in ("adamw.txt", "loss.txt", "rl.txt")))
