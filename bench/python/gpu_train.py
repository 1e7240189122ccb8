"""PyTorch baseline for the GPU training benchmark of bench/device-main.ts.

transformers' LlamaForCausalLM from random init (sdpa attention, untied head), fp32 master
weights, bf16 autocast, fused AdamW (lr 1e-4, betas (0.9, 0.95), weight decay 0.1), gradient
clipping at 1.0; one seeded batch of random ids. A step is zero_grad, forward with labels (mean
next-token cross-entropy), backward, clip, optimizer step. tokens_per_s = batch·seq / median
step time (warm-up steps untimed); MFU = 6·params·tokens_per_s / the GPU's dense bf16 peak.
Prints one JSON line last.

Presets (the shapes bench/device-model.ts uses):
  llama-124m      d 768, 12 layers, 12 heads, FFN 2048, vocab 32000, batch 16 × 1024
  tinyllama-1.1b  d 2048, 22 layers, 32 heads / 4 KV heads, FFN 5632, vocab 32000, batch 8 × 2048

Run: python3 bench/python/gpu_train.py --preset llama-124m --steps 10
"""

import argparse
import json
import statistics
import time

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

PRESETS = {
    "llama-124m": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=12,
                       intermediate_size=2048, batch=16, seq=1024),
    "tinyllama-1.1b": dict(hidden_size=2048, num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4,
                           intermediate_size=5632, batch=8, seq=2048),
}


def bf16_peak(name):
    if "H100" in name or "H200" in name:
        return 756e12 if "PCIe" in name else 989.4e12
    if "A100" in name:
        return 312e12
    return float("nan")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="llama-124m")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    a = p.parse_args()
    shape = dict(PRESETS[a.preset])
    batch, seq = shape.pop("batch"), shape.pop("seq")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=32000, max_position_embeddings=seq, rms_norm_eps=1e-5, tie_word_embeddings=False,
                      attn_implementation="sdpa", **shape)
    model = LlamaForCausalLM(cfg).cuda().train()
    params = sum(t.numel() for t in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    ids = torch.randint(0, 32000, (batch, seq), device="cuda")
    times, first_loss = [], None
    for i in range(a.warmup + a.steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        value = loss.item()  # the step is done when its loss is on the host, as in ours
        if first_loss is None:
            first_loss = value
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    tokens_per_s = batch * seq / step_s
    name = torch.cuda.get_device_name(0)
    print(json.dumps({"framework": "torch", "version": torch.__version__, "transformers": transformers.__version__,
                      "gpu": name, "preset": a.preset, "params": params, "batch": batch, "seq": seq, "steps": a.steps,
                      "step_ms_median": round(step_s * 1000, 1), "tokens_per_s": round(tokens_per_s),
                      "mfu": round(6 * params * tokens_per_s / bf16_peak(name), 4), "first_loss": round(first_loss, 4),
                      "max_memory_gb": round(torch.cuda.max_memory_allocated() / 2 ** 30, 1)}))


if __name__ == "__main__":
    main()
