"""vLLM backends. The server client is checked here against a fake server speaking vLLM's
documented HTTP schema; the in-process engine needs a GPU and vLLM (``-m gpu``)."""

import json

import httpx
import pytest
import torch

from agentgym.trainers.generation import SamplingParams
from agentgym.trainers.models import LoraConfig, load_policy
from agentgym.trainers.vllm_backend import VLLMServer


def test_server_client_speaks_token_ids_and_hot_loads_adapters(tiny_model_dir, tmp_path):
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        calls.append((request.url.path, body))
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "base"}]})
        if request.url.path == "/v1/completions":
            choices = [{"index": i, "finish_reason": "stop" if i == 0 else "length",
                        "logprobs": {"tokens": ["token_id:7", f"token_id:{len(p)}"], "token_logprobs": [-0.5, -1.0]}}
                       for i, p in enumerate(body["prompt"])]
            return httpx.Response(200, json={"choices": choices[::-1]})  # order comes from "index"
        return httpx.Response(200, json={})

    server = VLLMServer(adapter_dir=str(tmp_path), transport=httpx.MockTransport(handler))
    samples = server.generate([[1, 2, 3], [4, 5]], SamplingParams(max_new_tokens=9, temperature=0.7, top_k=0))
    assert [s.token_ids for s in samples] == [[7, 3], [7, 2]] and samples[0].logprobs == [-0.5, -1.0]
    assert [s.finish_reason for s in samples] == ["stop", "length"]
    request = calls[1][1]
    assert request["prompt"] == [[1, 2, 3], [4, 5]] and request["model"] == "base" and request["top_k"] == -1
    assert request["return_tokens_as_token_ids"] and request["logprobs"] == 0 and request["max_tokens"] == 9

    pm = load_policy(tiny_model_dir, device="cpu", lora=LoraConfig(r=2))
    calls.clear()
    server.sync_weights(pm.model)
    server.sync_weights(pm.model)
    paths = [(p, b) for p, b in calls]
    assert paths[0] == ("/v1/load_lora_adapter", {"lora_name": "policy-v1", "lora_path": str(tmp_path / "v1")})
    assert ("/v1/unload_lora_adapter", {"lora_name": "policy-v1"}) in paths  # the old adapter is dropped
    assert paths[-1][0] == "/reset_prefix_cache" and (tmp_path / "v2" / "adapter_config.json").exists()
    server.generate([[1]], SamplingParams())
    assert calls[-1][1]["model"] == "policy-v2" and "stop" not in calls[-1][1]
    server.generate([[1]], SamplingParams(stop=("\n```\n",)))  # the env's stop strings, kept in the output
    assert calls[-1][1]["stop"] == ["\n```\n"] and calls[-1][1]["include_stop_str_in_output"] is True


@pytest.mark.gpu
def test_colocated_vllm_generates_syncs_and_sleeps(tiny_model_dir):
    pytest.importorskip("vllm")
    from agentgym.trainers.vllm_backend import VLLMColocated

    pm = load_policy(tiny_model_dir, device="cuda", dtype="fp32")
    engine = VLLMColocated(str(tiny_model_dir), dtype="float32", gpu_memory_utilization=0.2)
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
    ids = torch.tensor([prompt + after.token_ids], device="cuda")
    logp = torch.log_softmax(pm.model(ids).logits[0, len(prompt) - 1 : -1].float(), -1)
    expected = logp.gather(-1, ids[0, len(prompt):, None]).squeeze(-1).tolist()
    assert after.token_ids != before.token_ids
    assert max(abs(a - b) for a, b in zip(after.logprobs, expected, strict=True)) < 1e-2


def test_server_client_retries_transient_failures_then_raises_infra_error():
    """The shared retry policy (agentgym.retry): 503 and 429 are retried, a dead server is an InfraError."""
    from agentgym.errors import InfraError
    from agentgym.retry import HTTPRetry

    answers = [httpx.Response(503, text="loading"), httpx.Response(429, headers={"Retry-After": "0"}),
               httpx.Response(200, json={"data": [{"id": "base"}]})]
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return answers.pop(0) if answers else httpx.Response(500, text="gone")

    fast = HTTPRetry(max_retries=2, wait_min=0.001, wait_max=0.01)
    server = VLLMServer(transport=httpx.MockTransport(handler), retry=fast)
    assert server.model == "base" and seen == ["/v1/models"] * 3
    with pytest.raises(InfraError, match="3 attempts.*HTTP 500"):
        server.generate([[1]], SamplingParams())
    assert seen.count("/v1/completions") == 3
