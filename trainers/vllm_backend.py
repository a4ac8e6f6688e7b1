"""vLLM generation backends: in process (colocated) and an OpenAI-compatible server.

Every vLLM-specific call of the trainer is in this module. The in-process engine has **never
run** (no GPU in this project's sessions or CI; vLLM does not install CPU-only): it is written
from a reading of vLLM's source (0.10.2 and 0.33.0) and its tests are marked ``gpu``. The
server client is tested against a fake server that answers as ``vllm serve`` 0.33.0 does.

Supported vLLM range: :data:`SUPPORTED_VLLM` (checked when the in-process engine is built and
against the server's ``GET /version``). Used APIs, the same across that range:

* ``vllm.LLM(model, enable_sleep_mode=True, logprobs_mode="processed_logprobs", ...)``: an engine
  argument (not a sampling parameter) since 0.10.2; without it vLLM returns log-probs *before*
  temperature/top-p/top-k, which are not the probabilities the tokens were sampled from, and the
  trainer's importance-sampling metrics compare the update's log-probs with the sampler's.
* ``LLM.generate`` with ``{"prompt_token_ids": ids}`` prompts and one ``SamplingParams`` per
  prompt (``logprobs=0``: the sampled token's log-prob; ``stop`` with
  ``include_stop_str_in_output=True``); ``LLM.sleep(level=1)`` / ``wake_up()``;
  ``reset_prefix_cache()``.
* Weight sync (full fine-tuning): ``LLM.apply_model(fn)`` runs ``fn(model)`` on the engine's
  model; ``fn`` calls ``model.load_weights(iterable of (name, tensor))``. With
  ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` (set here before vLLM is imported) the engine lives in
  this process, so ``fn`` is called directly: no pickling, tensors are not copied between
  processes. (The older route through ``llm_engine.model_executor.driver_worker...`` is private
  and gone in 0.33.)
* LoRA: the adapter is saved after each update and passed as a fresh ``LoRARequest`` (a new
  integer id, so vLLM cannot serve a cached older adapter; prefix-cache keys include it).
* Server (``vllm serve MODEL --enable-lora --max-lora-rank R --logprobs-mode processed_logprobs``
  with ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``): ``GET /v1/models`` (its ``max_model_len``),
  ``POST /v1/load_lora_adapter`` / ``/v1/unload_lora_adapter``, ``POST /v1/completions`` with
  token-id prompts and ``return_tokens_as_token_ids=true``; ``POST /reset_prefix_cache`` exists
  only with ``VLLM_SERVER_DEV_MODE=1`` (a 404 otherwise, reported once).

The context limit is handled here, the same on every version: vLLM < 0.33 rejects a request whose
prompt + ``max_tokens`` is over ``max_model_len`` (a 400 / ``ValueError``), vLLM 0.33 clamps
``max_tokens`` to the room left (the sample finishes ``"length"``) and rejects a prompt of exactly
``max_model_len`` (the server: a 400 "max_tokens must be at least 1, got 0"; the engine: "... plus
the number of requested output tokens (at least 1) is longer than the maximum model length").
So each prompt's ``max_tokens`` is clamped to its room here (a clamped sample finishes
``"length"``), and a prompt with no room at all gets a :data:`~agentgym.trainers.generation.CONTEXT_LENGTH` sample, on which the policy raises
:class:`~agentgym.errors.ContextLengthExceeded` and the rollout engine truncates that episode only.
"""

from __future__ import annotations

import logging
import os
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

from agentgym.errors import ConfigError, PromptTooLongError
from agentgym.policies.openai_chat import says_context_length
from agentgym.retry import HTTPRetry

from .generation import CONTEXT_LENGTH, Sample, SamplingParams

__all__ = ["MAX_STOP_STRINGS", "SUPPORTED_VLLM", "VLLMColocated", "VLLMServer", "check_vllm_version"]

logger = logging.getLogger(__name__)

SUPPORTED_VLLM = ">=0.10.2,<0.34"  # keep in step with the ``vllm`` extra in pyproject.toml
MAX_STOP_STRINGS = 4  # vllm serve's default VLLM_MAX_STOP_STRINGS (the in-process engine has no limit)


def check_vllm_version(version: str, where: str = "installed") -> None:
    """Raise :class:`ImportError` naming the supported range if ``version`` is outside it."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    try:
        ok = Version(version) in SpecifierSet(SUPPORTED_VLLM)
    except InvalidVersion:
        ok = False
    if not ok:
        raise ImportError(f"agentgym's vLLM backends support vllm{SUPPORTED_VLLM}; the {where} vLLM is "
                          f"{version!r}. Install a supported one: pip install 'agentgym-rl[vllm]'")


def _import_vllm() -> Any:
    try:
        version = metadata.version("vllm")
    except metadata.PackageNotFoundError:
        raise ImportError("the in-process vLLM backend needs vLLM: pip install 'agentgym-rl[vllm]' "
                          "(Linux with a CUDA GPU)") from None
    check_vllm_version(version)
    import vllm

    return vllm


def _vllm_params(params: SamplingParams, max_tokens: int) -> dict[str, Any]:
    """vLLM's sampling fields; stop strings stay in the output (vLLM's token ids always hold them)."""
    out = {"max_tokens": max_tokens, "temperature": params.temperature,
           "top_p": params.top_p, "top_k": params.top_k if params.top_k > 0 else -1, "logprobs": 0}
    if params.stop:
        out.update(stop=list(params.stop), include_stop_str_in_output=True)
    return out


def _room(prompt: list[int], params: SamplingParams, max_model_len: int | None) -> int:
    """How many tokens ``prompt`` may get: ``max_new_tokens`` clamped to the context left (<= 0: none)."""
    if max_model_len is None:
        return params.max_new_tokens
    return min(params.max_new_tokens, max_model_len - len(prompt))


def _no_room() -> Sample:
    return Sample([], [], CONTEXT_LENGTH)


def _finish(reason: str | None) -> str:
    return "length" if reason == "length" else "stop"


class VLLMColocated:
    """vLLM in this process, sharing the GPU with training (sleeps during the update)."""

    def __init__(self, model_path: str, *, lora: bool = False, gpu_memory_utilization: float = 0.3,
                 max_lora_rank: int = 64, **llm_kwargs: Any):
        if os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0") != "0" and not lora:
            raise ConfigError("full-weight sync needs vLLM's engine in this process: unset "
                              "VLLM_ENABLE_V1_MULTIPROCESSING (or set it to 0)")
        vllm = _import_vllm()
        llm_kwargs.setdefault("logprobs_mode", "processed_logprobs")
        self.vllm, self.lora = vllm, lora
        self.llm = vllm.LLM(model=model_path, enable_sleep_mode=True, enable_lora=lora,
                            max_lora_rank=max_lora_rank, gpu_memory_utilization=gpu_memory_utilization,
                            **llm_kwargs)
        self.max_model_len: int = self.llm.llm_engine.model_config.max_model_len
        self._adapter_dir = Path(tempfile.mkdtemp(prefix="agentgym-lora-"))
        self._lora_request: Any = None
        self._version = 0

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Sample]:
        rooms = [_room(p, params, self.max_model_len) for p in prompts]
        todo = [i for i, room in enumerate(rooms) if room > 0]
        samples = [_no_room() for _ in prompts]
        if not todo:
            return samples
        outputs = self.llm.generate(
            [{"prompt_token_ids": prompts[i]} for i in todo],
            [self.vllm.SamplingParams(**_vllm_params(params, rooms[i])) for i in todo],
            lora_request=self._lora_request, use_tqdm=False,
        )
        for i, out in zip(todo, outputs, strict=True):
            c = out.outputs[0]
            ids = list(c.token_ids)
            logps = [step[t].logprob for step, t in zip(c.logprobs, ids, strict=True)]
            samples[i] = Sample(ids, logps, _finish(c.finish_reason))
        return samples

    def sync_weights(self, model: Any) -> None:
        """Full model: copy weights into the engine. LoRA: save the adapter, serve it next."""
        self._version += 1
        if self.lora:
            path = self._adapter_dir / f"v{self._version}"
            model.save_pretrained(path)
            from vllm.lora.request import LoRARequest

            self._lora_request = LoRARequest(f"policy-v{self._version}", self._version, str(path))
            return  # prefix-cache keys include the adapter, so no stale block can be hit
        weights = [(name, p.detach()) for name, p in model.state_dict().items()]
        self.llm.apply_model(lambda engine_model: engine_model.load_weights(weights))
        if self.llm.reset_prefix_cache() is False:  # cached KV blocks were computed with the old weights
            raise RuntimeError("vLLM refused to reset its prefix cache after a weight sync "
                               "(requests still running?); its cached KV blocks are stale")

    def sleep(self) -> None:
        self.llm.sleep(level=1)

    def wake(self) -> None:
        self.llm.wake_up()


class VLLMServer:
    """A running ``vllm serve`` (OpenAI-compatible); LoRA adapters are hot-loaded after updates.

    ``adapter_dir`` must be a path the server can read (shared disk). Without LoRA the server's
    weights are fixed, so only off-policy use (e.g. evaluation) makes sense. Every request goes
    through ``retry`` (:class:`agentgym.retry.HTTPRetry`: 429, 5xx and dropped connections are
    retried; then :class:`~agentgym.errors.InfraError`); a 400 saying the prompt is too long is a
    :class:`~agentgym.errors.PromptTooLongError`, other 4xx raise ``httpx.HTTPStatusError``.
    ``max_stop_strings``: the server's ``VLLM_MAX_STOP_STRINGS`` (checked here, before sending).
    """

    def __init__(self, base_url: str = "http://localhost:8000", *, model: str | None = None,
                 lora: bool = True, adapter_dir: str | None = None, timeout: float = 600.0,
                 api_key: str | None = None, transport: httpx.BaseTransport | None = None,
                 retry: HTTPRetry | None = None, max_stop_strings: int = MAX_STOP_STRINGS):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(base_url=base_url, timeout=timeout, headers=headers, transport=transport)
        self.retry = retry or HTTPRetry()
        self.max_stop_strings = max_stop_strings
        version = self._request("GET", "/version", check=False)
        if version.status_code == 200:
            check_vllm_version(str(version.json().get("version")), f"server's ({base_url})")
        else:
            logger.warning("%s has no /version (HTTP %s): cannot check it is a supported vLLM (%s)",
                           base_url, version.status_code, SUPPORTED_VLLM)
        cards = self._request("GET", "/v1/models").json()["data"]
        card = next((c for c in cards if c["id"] == model), None) if model else cards[0]
        if card is None:
            raise ConfigError(f"{base_url} does not serve {model!r}; it serves {[c['id'] for c in cards]}")
        self.model: str = card["id"]
        self.max_model_len: int | None = card.get("max_model_len")
        self.lora = lora
        self.adapter_dir = Path(adapter_dir or tempfile.mkdtemp(prefix="agentgym-lora-"))
        self._served = self.model
        self._version = 0
        self._warned_prefix_cache = False

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Sample]:
        """One request per distinct ``max_tokens``: all prompts share one unless near the limit."""
        if len(params.stop) > self.max_stop_strings:
            raise ConfigError(
                f"vllm serve accepts at most {self.max_stop_strings} stop strings per request "
                f"(VLLM_MAX_STOP_STRINGS), got {len(params.stop)}: {list(params.stop)}. Start the server "
                f"with a larger VLLM_MAX_STOP_STRINGS and pass max_stop_strings, or use fewer")
        samples = [_no_room() for _ in prompts]
        by_room: dict[int, list[int]] = {}
        for i, prompt in enumerate(prompts):
            room = _room(prompt, params, self.max_model_len)
            if room > 0:
                by_room.setdefault(room, []).append(i)
        for room, rows in by_room.items():
            body = {"model": self._served, "prompt": [prompts[i] for i in rows],
                    "return_tokens_as_token_ids": True, "skip_special_tokens": False,
                    **_vllm_params(params, room)}
            response = self._request("POST", "/v1/completions", json=body)
            for c in response.json()["choices"]:
                ids = [int(tok.removeprefix("token_id:")) for tok in c["logprobs"]["tokens"]]
                logps = [float(x) for x in c["logprobs"]["token_logprobs"]]
                samples[rows[c["index"]]] = Sample(ids, logps, _finish(c["finish_reason"]))
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
            self._request("POST", "/v1/unload_lora_adapter", json={"lora_name": previous})
        self._reset_prefix_cache()

    def _reset_prefix_cache(self) -> None:
        """Drop cached KV blocks. Only a dev-mode server has the route; without it nothing stale
        is served here (prefix-cache keys include the adapter, and each update is a new one)."""
        response = self._request("POST", "/reset_prefix_cache", check=False)
        if response.status_code == 404:
            if not self._warned_prefix_cache:
                logger.warning("%s has no /reset_prefix_cache (it needs VLLM_SERVER_DEV_MODE=1); the "
                               "prefix cache is not reset after weight syncs (harmless with a new LoRA "
                               "adapter per update)", self.client.base_url)
                self._warned_prefix_cache = True
            return
        response.raise_for_status()
        # 0.33 answers {"success": bool} (false while blocks are held); before, an empty 200
        if response.content and response.json().get("success") is False:
            logger.warning("%s did not reset its prefix cache (blocks still in use)", self.client.base_url)

    def _request(self, method: str, path: str, *, check: bool = True, **kwargs: Any) -> httpx.Response:
        """One request under the retry policy; ``check``: a 4xx raises (else it is returned)."""
        response = self.retry.call(lambda: self.client.request(method, path, **kwargs), f"{self.client.base_url}{path}")
        if check and response.status_code == 400 and says_context_length(response.text):
            raise PromptTooLongError(400, response.text)
        if check:
            response.raise_for_status()
        return response

    def sleep(self) -> None:
        """The server runs elsewhere: nothing to free here."""

    def wake(self) -> None:
        """See :meth:`sleep`."""
