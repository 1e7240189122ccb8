"""transformers baseline for the GPU generation benchmark of bench/device-main.ts: generate() with
sampling (temperature 1, no top-k/top-p) and the KV cache on a randomly initialised bf16
TinyLlama-shaped LlamaForCausalLM (d 2048, 22 layers, 32/4 heads, FFN 5632, vocab 32000).
tokens_per_s = batch × new tokens / wall time of generate() (prefill included).
Prints one JSON line last.

Run: python3 bench/python/gpu_generate.py --batch 64 --prompt 128 --new 256
"""

import argparse
import json
import time

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--prompt", type=int, default=128)
    p.add_argument("--new", type=int, default=256)
    a = p.parse_args()
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=32000, hidden_size=2048, num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4,
                      intermediate_size=5632, max_position_embeddings=a.prompt + a.new + 8, rms_norm_eps=1e-5,
                      tie_word_embeddings=False, attn_implementation="sdpa")
    model = LlamaForCausalLM(cfg).to(device="cuda", dtype=torch.bfloat16).eval()
    ids = torch.randint(0, 32000, (a.batch, a.prompt), device="cuda")
    mask = torch.ones_like(ids)
    kw = dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, use_cache=True, pad_token_id=0)
    with torch.inference_mode():
        model.generate(ids[:, :8], attention_mask=mask[:, :8], max_new_tokens=4, min_new_tokens=4, **kw)  # warm-up
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = model.generate(ids, attention_mask=mask, max_new_tokens=a.new, min_new_tokens=a.new, **kw)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
    assert out.shape == (a.batch, a.prompt + a.new), out.shape
    print(json.dumps({"framework": "transformers", "version": transformers.__version__, "torch": torch.__version__,
                      "gpu": torch.cuda.get_device_name(0), "dtype": "bf16", "batch": a.batch, "prompt": a.prompt,
                      "new_tokens": a.new, "seconds": round(seconds, 3), "tokens_per_s": round(a.batch * a.new / seconds, 1)}))


if __name__ == "__main__":
    main()
