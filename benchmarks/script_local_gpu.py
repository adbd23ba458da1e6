"""Check that the local script engine puts a transformers model on the GPU when there is one.

    python -m benchmarks.script_local_gpu

Builds a small random Llama (no download) in a temp folder, loads it through the real
``TransformersClient(folder, device="auto")`` path and generates. Prints the device, dtype and
tokens/s on the GPU and on the CPU (the baseline, same run). Exits 1 when CUDA is present but
the model did not land on it.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from benchmarks.script_offline import machine


def build(folder: Path) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "<pad>": 3}
    for c in '{}[]":,. abcdefghijklmnopqrstuvwxyz0123456789你我他的了是人在有这个上们来到时大地为子中说生国年着就那和要':
        vocab.setdefault(c, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                            pad_token="<pad>").save_pretrained(folder)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                      num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=4096,
                      bos_token_id=1, eos_token_id=2, pad_token_id=3)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    return folder


def run(folder: Path, device: str) -> tuple[str, str, float]:
    from agents.script.llm.local import TransformersClient

    client = TransformersClient(folder, device=device, max_new_tokens=128)
    msgs = [{"role": "user", "content": "你我他的了是人在有这个上们来到时大地为子中说生国年着就那和要" * 8}]
    client.complete(msgs, max_tokens=8)  # warm-up
    t0 = time.perf_counter()
    c = client.complete(msgs, max_tokens=128)
    return str(client.torch_device), str(client.lm.dtype), c.tokens_out / (time.perf_counter() - t0)


def main() -> int:
    import torch

    print(f"machine: {machine()}; torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = build(Path(tmp) / "tiny-llama")
        print(f"{'device':<8} {'dtype':<15} {'tokens/s':>9}")
        cpu = run(folder, "cpu")
        print(f"{cpu[0]:<8} {cpu[1]:<15} {cpu[2]:>9.0f}   (baseline)")
        auto = run(folder, "auto")
        print(f"{auto[0]:<8} {auto[1]:<15} {auto[2]:>9.0f}   (device=auto)")
    if torch.cuda.is_available() and not auto[0].startswith("cuda"):
        print("FAIL: CUDA is present but device=auto did not use it", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
