"""PyTorch CPU baseline for the training-step benchmark.

Times full training steps of a small Llama-style LM written by hand in plain torch.nn (no
transformers), the same model and step that our engine's `npm run bench -- train-cpu` runs.
Prints one JSON line last:
  {"framework":"torch","version":...,"threads":N,"tokens_per_s":...,"step_ms_median":...,"steps":...}

Model (fp32, no biases anywhere): token embedding [V, C]; n_layers × (RMSNorm → attention with
RoPE → residual, RMSNorm → SwiGLU MLP → residual); final RMSNorm; untied LM head [C, V].
  - RMSNorm: x · rsqrt(mean(x²) + eps) · w, weight only, eps 1e-5.
  - RoPE: theta 10000, Hugging Face "rotate_half" convention, on q and k.
  - Attention: n_heads query heads, n_kv_heads key/value heads (GQA by repeating kv heads),
    torch.nn.functional.scaled_dot_product_attention(is_causal=True).
  - MLP: down(silu(gate(x)) · up(x)).
  - Init: every Linear and Embedding weight ~ normal(0, 0.02); norm weights = 1.
Data: one seeded batch of random ids [B, T+1]; the model reads ids[:, :T] and predicts
ids[:, 1:], so a step processes B·T tokens (8 × 128 = 1024 by default).
Loss: mean cross-entropy over all B·T positions.
Step: zero_grad, forward, backward, clip_grad_norm_(1.0), AdamW(lr 1e-3, betas (0.9, 0.95),
eps 1e-8, weight_decay 0.1 on every parameter).
tokens_per_s = B·T / median step time; warm-up steps are not timed.

Run: .tools/bench-venv/bin/python bench/python/train_step.py --threads 2 --steps 20
(bash bench/python/setup-venv.sh creates that venv).
"""

import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch intra-op threads (default: all cores)")
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before timing")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--ffn", type=int, default=768, help="SwiGLU hidden size")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--rope-theta", type=float, default=10000.0)
    p.add_argument("--eps", type=float, default=1e-5, help="RMSNorm eps")
    a = p.parse_args(argv)
    if a.heads % a.kv_heads != 0:
        p.error(f"--heads ({a.heads}) must be a multiple of --kv-heads ({a.kv_heads})")
    if a.head_dim % 2 != 0:
        p.error(f"--head-dim ({a.head_dim}) must be even for RoPE")
    if a.steps < 1 or a.warmup < 0 or a.threads < 1:
        p.error("need --steps >= 1, --warmup >= 0, --threads >= 1")
    return a


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):  # x [..., C]
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(T, D, theta):
    """cos, sin [T, D]: the D/2 frequencies repeated twice, as Hugging Face Llama builds them."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.float32) / D))  # [D/2]
    freqs = torch.outer(torch.arange(T, dtype=torch.float32), inv_freq)  # [T, D/2]
    emb = torch.cat((freqs, freqs), dim=-1)  # [T, D]
    return emb.cos(), emb.sin()


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Attention(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.h, self.hkv, self.d = a.heads, a.kv_heads, a.head_dim
        self.wq = nn.Linear(a.d_model, a.heads * a.head_dim, bias=False)
        self.wk = nn.Linear(a.d_model, a.kv_heads * a.head_dim, bias=False)
        self.wv = nn.Linear(a.d_model, a.kv_heads * a.head_dim, bias=False)
        self.wo = nn.Linear(a.heads * a.head_dim, a.d_model, bias=False)

    def forward(self, x, cos, sin):  # x [B, T, C]; cos, sin [T, D]
        B, T, _ = x.shape
        q = self.wq(x).view(B, T, self.h, self.d).transpose(1, 2)  # [B, H, T, D]
        k = self.wk(x).view(B, T, self.hkv, self.d).transpose(1, 2)  # [B, Hkv, T, D]
        v = self.wv(x).view(B, T, self.hkv, self.d).transpose(1, 2)  # [B, Hkv, T, D]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if self.hkv != self.h:  # GQA: query head h reads kv head h // (H / Hkv)
            k = k.repeat_interleave(self.h // self.hkv, dim=1)
            v = v.repeat_interleave(self.h // self.hkv, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # [B, H, T, D]
        return self.wo(y.transpose(1, 2).reshape(B, T, self.h * self.d))  # [B, T, C]


class MLP(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.gate = nn.Linear(a.d_model, a.ffn, bias=False)
        self.up = nn.Linear(a.d_model, a.ffn, bias=False)
        self.down = nn.Linear(a.ffn, a.d_model, bias=False)

    def forward(self, x):
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.attn_norm = RMSNorm(a.d_model, a.eps)
        self.attn = Attention(a)
        self.mlp_norm = RMSNorm(a.d_model, a.eps)
        self.mlp = MLP(a)

    def forward(self, x, cos, sin):
        x = x + self.attn(self.attn_norm(x), cos, sin)
        return x + self.mlp(self.mlp_norm(x))


class LlamaLM(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embed = nn.Embedding(a.vocab, a.d_model)
        self.blocks = nn.ModuleList(Block(a) for _ in range(a.layers))
        self.norm = RMSNorm(a.d_model, a.eps)
        self.lm_head = nn.Linear(a.d_model, a.vocab, bias=False)  # untied
        cos, sin = rope_tables(a.seq, a.head_dim, a.rope_theta)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, mean=0.0, std=0.02)

    def forward(self, ids):  # ids [B, T] → logits [B, T, V]
        T = ids.shape[1]
        cos, sin = self.cos[:T], self.sin[:T]
        x = self.embed(ids)  # [B, T, C]
        for block in self.blocks:
            x = block(x, cos, sin)
        return self.lm_head(self.norm(x))


def current_rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main(argv):
    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rss_before_mb = current_rss_mb()
    model = LlamaLM(a)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    gen = torch.Generator().manual_seed(a.seed)
    ids = torch.randint(0, a.vocab, (a.batch, a.seq + 1), generator=gen)
    inputs, targets = ids[:, :-1].contiguous(), ids[:, 1:].contiguous()  # [B, T] each

    def step():
        opt.zero_grad(set_to_none=True)
        logits = model(inputs)  # [B, T, V]
        loss = F.cross_entropy(logits.reshape(-1, a.vocab), targets.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    losses, times_ms = [], []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        loss = step()
        dt = (time.perf_counter() - t0) * 1e3
        losses.append(loss)
        if i >= a.warmup:
            times_ms.append(dt)
        print(f"step {i + 1}/{a.warmup + a.steps}{' (warm-up)' if i < a.warmup else ''}: loss {loss:.4f}, {dt:.1f} ms", file=sys.stderr)
    if not all(math.isfinite(x) for x in losses):
        sys.exit(f"train_step.py: non-finite loss {losses}")

    median = statistics.median(times_ms)
    # Peak resident memory of this whole process (ru_maxrss is in KiB on Linux), and how far it
    # rose above what the process held before the model was built.
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "framework": "torch",
        "version": torch.__version__,
        "threads": torch.get_num_threads(),
        "tokens_per_s": round(a.batch * a.seq / (median / 1e3), 1),
        "step_ms_median": round(median, 3),
        "step_ms_min": round(min(times_ms), 3),
        "steps": a.steps,
        "warmup": a.warmup,
        "batch": a.batch,
        "seq": a.seq,
        "params": sum(p.numel() for p in model.parameters()),
        "loss_first": round(losses[0], 5),
        "loss_last": round(losses[-1], 5),
        "seed": a.seed,
        "peak_rss_mb": round(peak_rss_mb, 1),
        "train_rss_mb": round(peak_rss_mb - rss_before_mb, 1),
    }
    print(json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main(sys.argv[1:])
