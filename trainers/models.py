"""Loading the policy (any local causal LM with a chat template), optional LoRA, the KL reference.

With LoRA the reference model is the same module with its adapters disabled, so KL costs no
second copy of the weights; without LoRA a frozen copy is made only when KL is on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

from .chat import ChatTokenizer

__all__ = ["LoraConfig", "PolicyModel", "load_policy", "select_device"]

hf_logging.disable_progress_bar()  # per-shard bars would drown the trainer's own progress display


def select_device(device: str = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class LoraConfig:
    """The subset of peft's LoraConfig recipes set (``target_modules`` "all-linear" by default)."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: list[str] | str = "all-linear"


@dataclass
class PolicyModel:
    """The trainable model, its tokenizer and chat tokenizer, and how to get reference log-probs."""

    model: Any
    tokenizer: Any
    chat: ChatTokenizer
    device: torch.device
    lora: bool = False
    ref_model: Any = field(default=None, repr=False)
    autocast_dtype: torch.dtype | None = None

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bf16 autocast on CUDA when loaded with ``dtype="auto"``, else a no-op."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    @contextlib.contextmanager
    def reference(self) -> Iterator[Any]:
        """Yield the reference model (adapters disabled under LoRA, else the frozen copy)."""
        if self.lora:
            with self.model.disable_adapter():
                yield self.model
        elif self.ref_model is not None:
            yield self.ref_model
        else:
            raise RuntimeError("no reference model: load_policy(..., reference=True) or use LoRA")

    def save(self, path: str | Path) -> None:
        """Adapter only under LoRA, else the full model; the tokenizer always."""
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)


def load_policy(
    path: str | Path,
    *,
    device: str = "auto",
    dtype: str = "auto",
    lora: LoraConfig | None = None,
    adapter_path: str | Path | None = None,
    weights_path: str | Path | None = None,
    gradient_checkpointing: bool = False,
    reference: bool = False,
    chat_template: str | None = None,
) -> PolicyModel:
    """Load a causal LM and its tokenizer from a local directory (no network).

    ``dtype="auto"`` on CUDA is bf16 compute with fp32 trainable weights (an lr of 1e-6 is below
    bf16's resolution): LoRA keeps the frozen base in bf16 (peft upcasts the adapters), full
    fine-tuning keeps fp32 weights under bf16 autocast; on CPU it is fp32. ``adapter_path`` resumes a saved LoRA
    adapter, ``weights_path`` a saved full model (the KL reference stays ``path``'s weights).
    ``reference`` asks for a KL reference (free under LoRA).
    """
    dev = select_device(device)
    use_lora = lora is not None or adapter_path is not None
    autocast = dtype == "auto" and dev.type == "cuda"
    torch_dtype = {"auto": torch.bfloat16 if autocast and use_lora else torch.float32,
                   "bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    chat = ChatTokenizer(tokenizer)  # fails fast on a template that cannot continue a completion
    ref_model = None
    if reference and not use_lora:
        ref_model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, local_files_only=True)
        ref_model = ref_model.to(dev).eval().requires_grad_(False)
    model = AutoModelForCausalLM.from_pretrained(
        weights_path or path, dtype=torch_dtype, local_files_only=True
    ).to(dev)
    if gradient_checkpointing:
        enable = getattr(model, "activation_checkpointing_enable", None)  # transformers >= 5
        if enable is not None:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if use_lora:
        import peft

        if gradient_checkpointing:
            model.enable_input_require_grads()
        if adapter_path is not None:
            model = peft.PeftModel.from_pretrained(model, adapter_path, is_trainable=True)
        else:
            assert lora is not None
            model = peft.get_peft_model(model, peft.LoraConfig(
                r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                target_modules=lora.target_modules, task_type="CAUSAL_LM",
            ))
    return PolicyModel(model, tokenizer, chat, dev, lora=use_lora, ref_model=ref_model,
                       autocast_dtype=torch.bfloat16 if autocast else None)
