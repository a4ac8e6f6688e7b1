"""vLLM generation backends: in process (colocated) and an OpenAI-compatible server.

Every vLLM-specific call of the trainer is in this module. **Untested here** (no GPU in this
session or in CI, and vLLM does not install CPU-only): it is written against vLLM's documented
API and its tests are marked ``gpu``.

Supported vLLM range: **>= 0.10.2, < 0.12** (V1 engine). Used APIs:

* ``vllm.LLM(model, enable_sleep_mode=True, enable_lora=..., ...)``; ``LLM.generate`` with
  ``{"prompt_token_ids": ids}`` prompts and ``SamplingParams(logprobs=0)`` (the sampled token's
  log-prob; ``stop`` with ``include_stop_str_in_output=True`` for the env's stop strings);
  ``LLM.sleep(level=1)`` / ``LLM.wake_up()``; ``LLM.reset_prefix_cache()``.
* Weight sync (full fine-tuning): ``model.load_weights(iterable of (name, tensor))`` on the
  engine's model, reached as ``llm.llm_engine.model_executor.driver_worker.worker.model_runner
  .model``, which needs ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` (the engine in this process; set
  here before vLLM is imported). This is the path TRL's colocate mode uses.
* LoRA: the adapter is saved after each update and passed as a fresh ``LoRARequest`` (a new
  integer id, so vLLM cannot serve a cached older adapter).
* Server (``vllm serve MODEL --enable-lora --max-lora-rank R`` with
  ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``): ``POST /v1/load_lora_adapter`` and
  ``/v1/unload_lora_adapter`` hot-swap the adapter; ``POST /v1/completions`` with a token-id
  prompt, ``logprobs=0`` and ``return_tokens_as_token_ids=true`` returns sampled ids
  (``"token_id:N"``) with their log-probs; ``POST /reset_prefix_cache`` drops stale KV blocks.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import httpx

from agentgym.retry import HTTPRetry

from .generation import Sample, SamplingParams

__all__ = ["SUPPORTED_VLLM", "VLLMColocated", "VLLMServer"]

SUPPORTED_VLLM = ">=0.10.2,<0.12"


def _vllm_params(params: SamplingParams) -> dict[str, Any]:
    """vLLM's sampling fields; stop strings stay in the output (vLLM's token ids always hold them)."""
    out = {"max_tokens": params.max_new_tokens, "temperature": params.temperature,
           "top_p": params.top_p, "top_k": params.top_k if params.top_k > 0 else -1, "logprobs": 0}
    if params.stop:
        out.update(stop=list(params.stop), include_stop_str_in_output=True)
    return out


class VLLMColocated:
    """vLLM in this process, sharing the GPU with training (sleeps during the update)."""

    def __init__(self, model_path: str, *, lora: bool = False, gpu_memory_utilization: float = 0.3,
                 max_lora_rank: int = 64, **llm_kwargs: Any):
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        import vllm

        self.vllm, self.lora = vllm, lora
        self.llm = vllm.LLM(model=model_path, enable_sleep_mode=True, enable_lora=lora,
                            max_lora_rank=max_lora_rank, gpu_memory_utilization=gpu_memory_utilization,
                            **llm_kwargs)
        self._adapter_dir = Path(tempfile.mkdtemp(prefix="agentgym-lora-"))
        self._lora_request: Any = None
        self._version = 0

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Sample]:
        outputs = self.llm.generate(
            [{"prompt_token_ids": p} for p in prompts], self.vllm.SamplingParams(**_vllm_params(params)),
            lora_request=self._lora_request, use_tqdm=False,
        )
        samples = []
        for out in outputs:
            c = out.outputs[0]
            ids = list(c.token_ids)
            logps = [step[t].logprob for step, t in zip(c.logprobs, ids, strict=True)]
            samples.append(Sample(ids, logps, "length" if c.finish_reason == "length" else "stop"))
        return samples

    def sync_weights(self, model: Any) -> None:
        """Full model: copy weights into the engine. LoRA: save the adapter, serve it next."""
        self._version += 1
        if self.lora:
            path = self._adapter_dir / f"v{self._version}"
            model.save_pretrained(path)
            from vllm.lora.request import LoRARequest

            self._lora_request = LoRARequest(f"policy-v{self._version}", self._version, str(path))
        else:
            engine_model = self.llm.llm_engine.model_executor.driver_worker.worker.model_runner.model
            engine_model.load_weights((name, p.detach()) for name, p in model.state_dict().items())
        self.llm.reset_prefix_cache()  # cached KV blocks were computed with the old weights

    def sleep(self) -> None:
        self.llm.sleep(level=1)

    def wake(self) -> None:
        self.llm.wake_up()


class VLLMServer:
    """A running ``vllm serve`` (OpenAI-compatible); LoRA adapters are hot-loaded after updates.

    ``adapter_dir`` must be a path the server can read (shared disk). Without LoRA the server's
    weights are fixed, so only off-policy use (e.g. evaluation) makes sense. Every request goes
    through ``retry`` (:class:`agentgym.retry.HTTPRetry`: 429, 5xx and dropped connections are
    retried; then :class:`~agentgym.errors.InfraError`); other 4xx raise ``httpx.HTTPStatusError``.
    """

    def __init__(self, base_url: str = "http://localhost:8000", *, model: str | None = None,
                 lora: bool = True, adapter_dir: str | None = None, timeout: float = 600.0,
                 api_key: str | None = None, transport: httpx.BaseTransport | None = None,
                 retry: HTTPRetry | None = None):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(base_url=base_url, timeout=timeout, headers=headers, transport=transport)
        self.retry = retry or HTTPRetry()
        self.model = model or self._request("GET", "/v1/models").json()["data"][0]["id"]
        self.lora = lora
        self.adapter_dir = Path(adapter_dir or tempfile.mkdtemp(prefix="agentgym-lora-"))
        self._served = self.model
        self._version = 0

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Sample]:
        body = {"model": self._served, "prompt": prompts, "return_tokens_as_token_ids": True,
                "skip_special_tokens": False, **_vllm_params(params)}
        response = self._request("POST", "/v1/completions", json=body)
        choices = sorted(response.json()["choices"], key=lambda c: c["index"])
        samples = []
        for c in choices:
            ids = [int(tok.removeprefix("token_id:")) for tok in c["logprobs"]["tokens"]]
            samples.append(Sample(ids, [float(x) for x in c["logprobs"]["token_logprobs"]],
                                  "length" if c["finish_reason"] == "length" else "stop"))
        return samples

    def sync_weights(self, model: Any) -> None:
        if not self.lora:
            raise RuntimeError("a vllm serve backend without LoRA cannot receive weight updates")
        previous = self._served
        self._version += 1
        name, path = f"policy-v{self._version}", self.adapter_dir / f"v{self._version}"
        model.save_pretrained(path)
        self._request("POST", "/v1/load_lora_adapter", json={"lora_name": name, "lora_path": str(path)})
        self._served = name
        if previous != self.model:
            self._request("POST", "/v1/unload_lora_adapter", json={"lora_name": previous}, check=False)
        self._request("POST", "/reset_prefix_cache", check=False)

    def _request(self, method: str, path: str, *, check: bool = True, **kwargs: Any) -> httpx.Response:
        """One request under the retry policy; ``check``: a 4xx raises (else it is returned)."""
        response = self.retry.call(lambda: self.client.request(method, path, **kwargs), f"{self.client.base_url}{path}")
        if check:
            response.raise_for_status()
        return response

    def sleep(self) -> None:
        """The server runs elsewhere: nothing to free here."""

    def wake(self) -> None:
        """See :meth:`sleep`."""
