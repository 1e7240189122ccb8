"""PyTorch + transformers CPU baseline for `npm run bench -- generate`.

Greedy decoding with transformers' generate() and its KV cache on a randomly initialised
LlamaForCausalLM of the same shape as ours (fp32, CPU, same thread count). Prints one JSON line last:
  {"framework":"transformers","version":...,"torch":...,"threads":N,"tokens_per_s":...,"seconds":...}
tokens_per_s counts generated tokens only: batch × new tokens / wall time of generate().
"""

import argparse
import json
import time

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--prompt", type=int, default=64)
    p.add_argument("--new", type=int, default=128)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--d-model", type=int, default=512)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--kv-heads", type=int, default=8)
    p.add_argument("--ffn", type=int, default=1376)
    p.add_argument("--repeats", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=a.vocab, hidden_size=a.d_model, intermediate_size=a.ffn, num_hidden_layers=a.layers,
                      num_attention_heads=a.heads, num_key_value_heads=a.kv_heads, max_position_embeddings=a.prompt + a.new + 8,
                      rms_norm_eps=1e-5, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg).eval()
    ids = torch.randint(0, a.vocab, (a.batch, a.prompt))
    mask = torch.ones_like(ids)
    kw = dict(attention_mask=mask, max_new_tokens=a.new, min_new_tokens=a.new, do_sample=False, use_cache=True, pad_token_id=0)
    with torch.inference_mode():
        model.generate(ids[:, :8], **{**kw, "attention_mask": mask[:, :8], "max_new_tokens": 4, "min_new_tokens": 4})  # warm-up
        best = float("inf")
        for _ in range(a.repeats):
            t = time.perf_counter()
            out = model.generate(ids, **kw)
            best = min(best, time.perf_counter() - t)
    assert out.shape == (a.batch, a.prompt + a.new), out.shape
    print(json.dumps({"framework": "transformers", "version": transformers.__version__, "torch": torch.__version__,
                      "threads": a.threads, "batch": a.batch, "prompt": a.prompt, "new_tokens": a.new,
                      "seconds": round(best, 3), "tokens_per_s": round(a.batch * a.new / best, 1)}))


if __name__ == "__main__":
    main()
