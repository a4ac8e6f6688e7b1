"""Update throughput of the agentgym trainer (tokens/s, peak memory), and TRL's GRPO loss on
the same batch when TRL is installed.

The model is built from a Qwen2-0.5B-sized config (random weights, nothing downloaded); on CPU
use ``--small`` for a config that finishes in seconds. One update = PPO-clip loss over the
batch in micro-batches with gradient accumulation, backward, clip, AdamW step. agentgym's update
is the trainer's on-policy one: log-probs only at loss positions, no separate old-log-prob pass.

``--ragged`` draws each row's length uniformly from [seq_len/8, seq_len] (multi-turn batches are
ragged) and runs the same update three times side by side: micro-batches cut in batch order (how
the trainer cut them before), grouped by length (``Batch.micro_batches``, the default), and the
same groups packed into one row without padding (``optim.packing``); it prints the tokens each
computes on (padding included) and real (unpadded) tokens/s. Without ``--ragged`` every row is
``seq_len`` long: nothing to save on padding, so the packed run shows what packing costs there (one
sequence of micro × seq_len tokens whose attention is masked to the rows' blocks: sdpa computes the
whole square unless the attention implementation is varlen, e.g. flash attention).

On CUDA the bench prints MFU: model FLOPs (6 × non-embedding parameters + 12 × layers × hidden ×
sequence length, per token, forward and backward) over ``--peak-tflops`` (default 989, an H100's
dense bf16 peak).

``--memory-proxy`` is the CPU stand-in for the GPU memory comparison: one micro-batch of
1×1024 tokens at Qwen2's vocabulary (151,936) on a 2-layer body, forward + backward, each
variant in a fresh process; it prints the peak resident memory the update added, for
agentgym, for the full-vocabulary fp32 log-softmax it replaced, and for TRL, as ratios.

    python bench/trainer_throughput.py --small               # CPU
    python bench/trainer_throughput.py --small --ragged --batch 32 --micro 4   # CPU, grouping and packing
    python bench/trainer_throughput.py --memory-proxy        # CPU, peak memory vs TRL
    python bench/trainer_throughput.py --device cuda --batch 16 --seq-len 2048   # GPU
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from agentgym.trainers.losses import LossConfig, aggregate, loss_denominator, policy_loss, sequence_logprobs

QWEN2_05B = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True)
SMALL = dict(hidden_size=256, intermediate_size=704, num_hidden_layers=4, num_attention_heads=4,
             num_key_value_heads=2, vocab_size=8192, tie_word_embeddings=True)


def make_batch(batch: int, seq_len: int, vocab: int, device: torch.device,
               ragged: bool = False) -> dict[str, torch.Tensor]:
    """Right-padded rows: the first half of each row is prompt, the second half carries loss."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (batch, seq_len), generator=g)
    lengths = (torch.randint(seq_len // 8, seq_len + 1, (batch,), generator=g) if ragged
               else torch.full((batch,), seq_len))
    positions = torch.arange(seq_len)
    attn = (positions < lengths[:, None]).long()
    mask = ((positions >= lengths[:, None] // 2) & (attn > 0)).float()
    adv = torch.randn(batch, 1, generator=g).expand(batch, seq_len) * mask
    return {k: v.to(device) for k, v in dict(input_ids=ids * attn, attention_mask=attn, loss_mask=mask,
                                                 advantages=adv.contiguous()).items()}


def in_order(b: dict[str, torch.Tensor], micro: int) -> list[slice]:
    return [slice(i, i + micro) for i in range(0, len(b["input_ids"]), micro)]


def by_length(b: dict[str, torch.Tensor], micro: int) -> list[torch.Tensor]:
    """The trainer's micro-batches (grouped by length; with no token budget packing cuts the same)."""
    from agentgym.trainers.batch import Batch

    zeros = torch.zeros_like(b["loss_mask"])
    batch = Batch(b["input_ids"], b["attention_mask"], b["loss_mask"], b["attention_mask"], b["advantages"],
                  zeros, zeros, zeros, zeros)
    return [rows for rows, _ in batch.micro_batches(micro)]


def computed_tokens(b: dict[str, torch.Tensor], micro_rows: list, packed: bool = False) -> int:
    """Positions the forward runs on: rows × the longest row per micro-batch, or the real tokens packed."""
    if packed:
        return int(b["attention_mask"].sum())
    return sum(len(b["input_ids"][rows]) * int(b["attention_mask"][rows].sum(1).max()) for rows in micro_rows)


def peak_memory(device: torch.device) -> str:
    """CUDA: peak allocated since the last reset; CPU: the process's peak RSS so far (cumulative)."""
    if device.type == "cuda":
        return f"peak {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB"
    return f"process peak RSS so far {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB"


def agentgym_update(model: torch.nn.Module, opt: torch.optim.Optimizer, b: dict[str, torch.Tensor],
                    micro_rows: list, packed: bool = False) -> None:
    """The trainer's on-policy update: log-probs at loss positions, θ_old = the same forward,
    detached; each micro-batch is cut to its longest row (or packed into one row)."""
    cfg = LossConfig()
    denom = loss_denominator(b["loss_mask"], cfg)
    opt.zero_grad(set_to_none=True)
    for rows in micro_rows:
        width = int(b["attention_mask"][rows].sum(1).max())
        mb = {k: v[rows, :width] for k, v in b.items()}
        mask = mb["loss_mask"]
        logp, _ = sequence_logprobs(model, mb["input_ids"], mb["attention_mask"], positions=mask > 0, packed=packed)
        turns = torch.where(mask > 0, 0, -1)
        pg, _ = policy_loss(logp, logp.detach(), mb["advantages"], turns, torch.ones_like(logp), cfg)
        aggregate(pg, mask, denom).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


def full_vocab_loss(model: torch.nn.Module, b: dict[str, torch.Tensor]) -> None:
    """The loss as agentgym computed it before: fp32 log-softmax over the whole vocabulary at
    every position (the baseline of the memory proxy)."""
    logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits[:, :-1].float()
    logp = torch.log_softmax(logits, -1).gather(-1, b["input_ids"][:, 1:, None]).squeeze(-1)
    mask = b["loss_mask"][:, 1:]
    (-(logp - logp.detach()).exp() * b["advantages"][:, 1:] * mask).sum().div(mask.sum()).backward()


def trl_update(model: torch.nn.Module, opt: torch.optim.Optimizer, b: dict[str, torch.Tensor], micro: int):
    """TRL's GRPOTrainer loss on the same batch (its ``compute_loss`` on prepared inputs)."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from agentgym.trainers.tiny import train_tokenizer

    half = b["input_ids"].shape[1] // 2
    model.config._name_or_path = "bench/qwen2"  # TRL names the run after the model
    trainer = GRPOTrainer(
        model=model, reward_funcs=lambda completions, **_: [0.0] * len(completions),
        args=GRPOConfig(output_dir="/tmp/trl-bench", per_device_train_batch_size=max(micro, 2), num_generations=2,
                        report_to=[], use_cpu=b["input_ids"].device.type == "cpu",
                        bf16=b["input_ids"].device.type == "cuda"),
        train_dataset=Dataset.from_dict({"prompt": ["x"] * 4}),
        processing_class=train_tokenizer(["a tokenizer only to satisfy TRL's constructor"] * 4, vocab_size=300),
    )

    trainer.current_gradient_accumulation_steps = trainer.args.steps_per_generation  # normaliser = loss tokens

    def run() -> None:
        opt.zero_grad(set_to_none=True)
        for i in range(0, len(b["input_ids"]), micro):
            rows = slice(i, i + micro)
            inputs = {"prompt_ids": b["input_ids"][rows, :half], "prompt_mask": b["attention_mask"][rows, :half],
                      "completion_ids": b["input_ids"][rows, half:], "completion_mask": b["attention_mask"][rows, half:],
                      "advantages": b["advantages"][rows, half],
                      "old_per_token_logps": None,
                      "num_items_in_batch": b["loss_mask"].sum()}  # TRL normalises by the whole batch
            trainer.compute_loss(model, inputs).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    return run


def timed(fn, steps: int, device: torch.device) -> float:
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


PROXY = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True)


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def measure_proxy(variant: str) -> None:
    """In this (fresh) process: peak RSS added by one forward + backward of ``variant``."""
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(**PROXY))
    model.config.use_cache = False
    b = make_batch(1, 1024, PROXY["vocab_size"], torch.device("cpu"))
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # no optimiser state: the loss's memory only
    if variant == "agentgym":
        run = lambda: agentgym_update(model, opt, b, in_order(b, 1))  # noqa: E731
    elif variant == "full-vocab":
        run = lambda: full_vocab_loss(model, b)  # noqa: E731
    else:
        run = trl_update(model, opt, b, 1)
    before = rss_gib()
    run()
    print(f"{(rss_gib() - before) * 1024:.1f}")


def memory_proxy() -> None:
    print(f"memory proxy: 1×1024 tokens, vocabulary {PROXY['vocab_size']:,}, 2-layer body, one micro-batch, "
          "forward + backward; peak RSS added (fresh process each)")
    results = {}
    for variant in ("agentgym", "full-vocab", "trl"):
        proc = subprocess.run([sys.executable, __file__, "--measure", variant], capture_output=True, text=True)
        lines = proc.stdout.strip().splitlines()
        if proc.returncode or not lines:
            tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
            print(f"  {variant:10s}  skipped ({tail[:120]})")
            continue
        results[variant] = float(lines[-1])
        print(f"  {variant:10s}  {results[variant]:8.1f} MiB")
    base = results.get("agentgym")
    for other in ("full-vocab", "trl"):
        if base and results.get(other):
            print(f"  agentgym / {other}: {base / results[other]:.2f}×")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", action="store_true", help="small config for CPU")
    p.add_argument("--memory-proxy", action="store_true", help="CPU peak-memory comparison at Qwen2's vocabulary")
    p.add_argument("--measure", help=argparse.SUPPRESS)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--micro", type=int, default=4)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--no-trl", action="store_true")
    p.add_argument("--ragged", action="store_true", help="rows of varied length: in-order vs length-grouped")
    p.add_argument("--peak-tflops", type=float, default=989.0, help="the device's peak, for MFU (CUDA only)")
    a = p.parse_args()
    if a.measure:
        return measure_proxy(a.measure)
    if a.memory_proxy:
        return memory_proxy()
    device = torch.device(a.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    config = Qwen2Config(**(SMALL if a.small else QWEN2_05B))
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).to(device=device, dtype=dtype)
    model.config.use_cache = False
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    b = make_batch(a.batch, a.seq_len, config.vocab_size, device, ragged=a.ragged)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    tokens = int(b["attention_mask"].sum())
    body = sum(p.numel() for name, p in model.named_parameters() if "embed" not in name)
    flops_per_token = 6 * body + 12 * config.num_hidden_layers * config.hidden_size * a.seq_len
    print(f"model {n_params:.1f}M params ({'small' if a.small else 'Qwen2-0.5B-sized'}), {device}, {dtype}; "
          f"batch {a.batch}×{a.seq_len} ({tokens:,} real tokens), micro-batch {a.micro}; load {os.getloadavg()[0]:.1f}")
    ordered, grouped = in_order(b, a.micro), by_length(b, a.micro)
    cuts = {"in batch order": (ordered, False), "grouped by length": (grouped, False), "packed": (grouped, True)
            } if a.ragged else {"padded": (ordered, False), "packed": (ordered, True)}
    results, computed = {}, {}
    for label, (micro_rows, packed) in cuts.items():
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        seconds = timed(lambda rows=micro_rows, p=packed: agentgym_update(model, opt, b, rows, p), a.steps, device)
        results[label], computed[label] = seconds, computed_tokens(b, micro_rows, packed)
        mfu = (f", MFU {tokens * flops_per_token / seconds / (a.peak_tflops * 1e12):.1%}"
               if device.type == "cuda" else "")
        print(f"agentgym update {label}: {seconds:.3f} s/step, {tokens / seconds:,.0f} tokens/s{mfu}, "
              f"{computed[label]:,} tokens computed ({computed[label] / tokens:.2f}× real), {peak_memory(device)}; "
              f"load {os.getloadavg()[0]:.1f}")
    if a.ragged:
        base = "in batch order"
        for label in ("grouped by length", "packed"):
            print(f"{label} / {base}: {results[base] / results[label]:.2f}× tokens/s, "
                  f"{computed[label] / computed[base]:.2f}× tokens computed")
        print(f"packed / grouped by length: {results['grouped by length'] / results['packed']:.2f}× tokens/s")
    else:
        print(f"packed / padded: {results['padded'] / results['packed']:.2f}× tokens/s")
    if a.no_trl or a.ragged:  # TRL's inputs are split at one prompt length for every row
        return
    try:
        run = trl_update(model, opt, b, a.micro)
    except Exception as e:  # noqa: BLE001 — TRL is optional and its API moves between releases
        print(f"TRL GRPOTrainer: skipped ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")
        return
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = timed(run, a.steps, device)
    print(f"TRL GRPO loss:   {seconds:.3f} s/step, {tokens / seconds:,.0f} tokens/s, {peak_memory(device)}")


if __name__ == "__main__":
    main()
