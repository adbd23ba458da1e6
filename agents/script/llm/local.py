"""Local chat models: a transformers folder (GPU when present, CPU otherwise), or a GGUF file
through llama-cpp-python in a worker process (:mod:`agents.script.llm.llamacpp`). Nothing is
downloaded: the model must already be on disk.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from agents.script.llm.client import ChatClient, Completion, Message
from core.errors import ConfigError, MissingDependencyError, ModelError
from models.modelcard import model_card_licence

log = logging.getLogger(__name__)


def open_local_client(path: str | Path, *, device: str = "auto", context_tokens: int | None = None,
                      max_new_tokens: int = 2048) -> ChatClient:
    """A :class:`TransformersClient` for a folder, a :class:`~agents.script.llm.llamacpp.LlamaCppClient`
    for a ``.gguf`` file."""
    if not str(path):
        raise ConfigError("no local model configured",
                          hint="set [llm] local_model_path to a transformers folder or a .gguf file")
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(f"local model {str(p)!r} does not exist",
                          hint="set [llm] local_model_path to a transformers folder or a .gguf file on this machine")
    if p.is_file() and p.suffix.lower() == ".gguf":
        from agents.script.llm.llamacpp import LlamaCppClient

        return LlamaCppClient(p, context_tokens=context_tokens)
    if p.is_dir():
        return TransformersClient(p, device=device, context_tokens=context_tokens, max_new_tokens=max_new_tokens)
    raise ConfigError(f"local model {str(p)!r} is neither a folder nor a .gguf file",
                      hint="point [llm] local_model_path at a transformers folder (config.json inside) or a .gguf")


class TransformersClient(ChatClient):
    """A causal LM loaded with ``from_pretrained(folder, local_files_only=True)``."""

    engine = "local"

    def __init__(self, folder: str | Path, *, device: str = "auto", dtype: str = "auto",
                 context_tokens: int | None = None, max_new_tokens: int = 2048, seed: int = 0) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as e:
            raise MissingDependencyError("transformers", "gpu") from e
        from core.device import describe_device, dtype_from_name, resolve_device

        folder = Path(folder).expanduser()
        if not (folder / "config.json").exists():
            raise ConfigError(f"{str(folder)!r} has no config.json: not a transformers model folder",
                              hint="save the model with save_pretrained(), or give a .gguf file")
        self.torch_device = resolve_device(device)
        self.device = self.torch_device.type
        self.model = folder.name
        self.vendor = ""
        self.licence = model_card_licence(folder)
        self.concurrency = 1  # one generate() at a time; a local model has one device
        self.max_new_tokens = max_new_tokens
        self._lock = threading.Lock()
        self._seed = seed
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            self.lm = AutoModelForCausalLM.from_pretrained(
                str(folder), local_files_only=True, dtype=dtype_from_name(dtype, self.torch_device))
        except (OSError, ValueError) as e:
            raise ModelError(f"could not load the model in {str(folder)!r}: {e}",
                             hint="check that the folder holds config.json, weights and a tokenizer") from e
        self.lm.to(self.torch_device)  # type: ignore[arg-type]
        self.lm.eval()
        self.parameters = int(sum(p.numel() for p in self.lm.parameters()))
        limit = getattr(self.lm.config, "max_position_embeddings", None) or 4096
        self.context_tokens = int(context_tokens or limit)
        info = describe_device(self.torch_device)
        log.info("local model %s on %s (%s), context %d tokens", self.model, info, self.lm.dtype, self.context_tokens)
        self._torch = torch

    def _prompt_ids(self, messages: list[Message]) -> Any:
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
            if hasattr(ids, "input_ids"):  # newer tokenizers return a BatchEncoding
                ids = ids["input_ids"]  # type: ignore[index,call-overload]
            return ids
        text = "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages) + "<|assistant|>\n"
        return tok(text, return_tensors="pt").input_ids

    def complete(self, messages: list[Message], *, schema: dict[str, Any] | None = None,
                 schema_name: str = "output", max_tokens: int = 2048, temperature: float = 0.3) -> Completion:
        torch = self._torch
        start = time.perf_counter()
        cpu0 = time.process_time()
        with self._lock:
            ids = self._prompt_ids(messages)
            room = self.context_tokens - ids.shape[-1]
            if room <= 8:
                raise ModelError(f"the prompt ({ids.shape[-1]} tokens) fills the model's context "
                                 f"({self.context_tokens} tokens)", hint="use a model with a longer context")
            new = max(1, min(max_tokens, self.max_new_tokens, room))
            ids = ids.to(self.torch_device)
            torch.manual_seed(self._seed)
            pad = self.tokenizer.pad_token_id
            if pad is None:
                pad = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
            with torch.inference_mode():
                out = self.lm.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new,
                                       do_sample=False, pad_token_id=pad)
            gen = out[0, ids.shape[-1]:]
            text = str(self.tokenizer.decode(gen, skip_special_tokens=True))
        return Completion(text=text, model=self.model, tokens_in=int(ids.shape[-1]), tokens_out=int(gen.shape[-1]),
                          seconds=time.perf_counter() - start, cpu_seconds=time.process_time() - cpu0,
                          finish_reason="length" if gen.shape[-1] >= new else "stop")
