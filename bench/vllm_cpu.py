"""Generation tokens/s of vLLM in process (``VLLMColocated``) vs the HF backend (``HFGenerator``)
on the same prompts and sampling, and the seconds a full-weight sync into the engine takes, side
by side in one run. Needs vLLM (on a CPU machine its CPU build: ``bash scripts/setup_vllm_cpu.sh``):

    VLLM_CPU_KVCACHE_SPACE=1 VLLM_CPU_OMP_THREADS_BIND=nobind .venv-vllm/bin/python bench/vllm_cpu.py
    .venv-vllm/bin/python bench/vllm_cpu.py --hidden-size 512 --layers 8 --batch 32 --new-tokens 64

The model is the trainer's tiny Qwen2 (random weights, built here; ``--hidden-size``/``--layers``
make it larger), float32 on CPU for both backends. Each backend generates ``--batch`` completions
of up to ``--new-tokens`` tokens (temperature 1, EOS ends a row early) ``--repeats`` times after
one warm-up; tokens/s counts the tokens actually generated. The load average is printed before
and after: on a shared machine compare the two backends only within one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden-size", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    for key, value in {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "nobind"}.items():
        os.environ.setdefault(key, value)
    print(f"load average before: {os.getloadavg()}  cores: {os.cpu_count()}")

    import torch

    from agentgym.trainers.generation import HFGenerator, SamplingParams
    from agentgym.trainers.models import load_policy
    from agentgym.trainers.tiny import make_tiny_model
    from agentgym.trainers.vllm_backend import VLLMColocated, installed_vllm

    torch.manual_seed(0)
    model_dir = make_tiny_model(tempfile.mkdtemp(prefix="bench-vllm-"), hidden_size=args.hidden_size,
                                num_layers=args.layers, num_heads=max(2, args.hidden_size // 64))
    pm = load_policy(model_dir, device="cpu", dtype="fp32")
    n_params = sum(p.numel() for p in pm.model.parameters())
    prompts = [pm.chat.prompt_ids([{"role": "user", "content": f"Stage {i % 5 + 1} of 5. Options: A, B, C."}])
               for i in range(args.batch)]
    params = SamplingParams(max_new_tokens=args.new_tokens, temperature=1.0)
    t0 = time.perf_counter()
    import vllm  # noqa: F401

    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    engine = VLLMColocated(str(model_dir), dtype="float32", enforce_eager=True, max_model_len=512)
    start_s = time.perf_counter() - t0
    hf = HFGenerator(pm.model, pm.chat.eos_id, pm.chat.pad_id, batch_size=args.batch, tokenizer=pm.tokenizer)

    def tokens_per_s(backend: object) -> float:
        backend.generate(prompts, params)  # warm-up
        rates = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            samples = backend.generate(prompts, params)
            rates.append(sum(len(s.token_ids) for s in samples) / (time.perf_counter() - t))
        return statistics.median(rates)

    vllm_rate, hf_rate = tokens_per_s(engine), tokens_per_s(hf)
    engine.sync_weights(pm.model)  # warm-up
    syncs = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        engine.sync_weights(pm.model)
        syncs.append(time.perf_counter() - t)
    dist, version = installed_vllm() or ("?", "?")
    print(f"{dist} {version}, torch {torch.__version__}; model: {n_params / 1e6:.2f}M params "
          f"(hidden {args.hidden_size}, {args.layers} layers), float32, CPU")
    print(f"batch {args.batch} x up to {args.new_tokens} new tokens, temperature 1, median of {args.repeats}")
    print(f"  vLLM in process : {vllm_rate:8.0f} tokens/s   (import {import_s:.0f} s, engine start {start_s:.1f} s)")
    print(f"  HF generate     : {hf_rate:8.0f} tokens/s")
    print(f"  ratio vLLM / HF : {vllm_rate / hf_rate:8.2f}")
    print(f"  weight sync     : {statistics.median(syncs):8.3f} s (median; {', '.join(f'{s:.3f}' for s in syncs)})")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
