"""Policy loading (LoRA reference, checkpointing) and the transformers generation backend."""

import pytest
import torch

from agentgym.trainers.generation import HFGenerator, SamplingParams
from agentgym.trainers.losses import sequence_logprobs
from agentgym.trainers.models import LoraConfig, load_policy, select_device


def test_select_device():
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_lora_reference_is_the_base_model_with_adapters_disabled(tiny_model_dir):
    base = load_policy(tiny_model_dir, device="cpu")
    pm = load_policy(tiny_model_dir, device="cpu", lora=LoraConfig(r=4, alpha=8))
    assert pm.ref_model is None  # no second copy of the weights
    for name, p in pm.model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)  # make the adapter change the output
    ids = torch.randint(3, 500, (2, 12))
    with torch.no_grad():
        expected = base.model(ids).logits
        with pm.reference() as ref:
            torch.testing.assert_close(ref(ids).logits, expected)
        assert not torch.allclose(pm.model(ids).logits, expected)
    trainable = {n for n, p in pm.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora" in n for n in trainable)


def test_full_model_reference_is_a_frozen_copy(tiny_model_dir):
    pm = load_policy(tiny_model_dir, device="cpu", reference=True)
    with pm.reference() as ref:
        assert ref is not pm.model and not any(p.requires_grad for p in ref.parameters())
    with pytest.raises(RuntimeError, match="no reference"):
        with load_policy(tiny_model_dir, device="cpu").reference():
            pass


def test_adapter_save_and_reload(tiny_model_dir, tmp_path):
    pm = load_policy(tiny_model_dir, device="cpu", lora=LoraConfig(r=4))
    for name, p in pm.model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p)
    pm.save(tmp_path / "adapter")
    again = load_policy(tiny_model_dir, device="cpu", adapter_path=tmp_path / "adapter")
    ids = torch.randint(3, 500, (1, 8))
    with torch.no_grad():
        torch.testing.assert_close(again.model(ids).logits, pm.model(ids).logits)
    assert any(p.requires_grad for p in again.model.parameters())


def test_gradient_checkpointing_gives_the_same_gradients(tiny_model_dir):
    ids = torch.randint(3, 500, (2, 10))
    grads = []
    for checkpointing in (False, True):
        pm = load_policy(tiny_model_dir, device="cpu", gradient_checkpointing=checkpointing)
        pm.model.train()
        logp, _ = sequence_logprobs(pm.model, ids, torch.ones_like(ids))
        logp.sum().backward()
        grads.append([p.grad.clone() for p in pm.model.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)


@pytest.fixture(scope="module")
def generator(tiny_model_dir):
    pm = load_policy(tiny_model_dir, device="cpu")
    return pm, HFGenerator(pm.model, pm.chat.eos_id, pm.chat.pad_id, batch_size=3)


def test_generation_logprobs_match_the_trainers_recomputation(generator):
    pm, gen = generator
    torch.manual_seed(0)
    prompts = [pm.chat.prompt_ids([{"role": "user", "content": text}]) for text in ("hi", "Stage 1 of 3.", "x y z w")]
    params = SamplingParams(max_new_tokens=12, temperature=0.8)
    for prompt, sample in zip(prompts, gen.generate(prompts, params), strict=True):
        assert 1 <= len(sample.token_ids) <= 12 and len(sample.logprobs) == len(sample.token_ids)
        assert (sample.finish_reason == "stop") == (sample.token_ids[-1] == pm.chat.eos_id)
        assert pm.chat.eos_id not in sample.token_ids[:-1]
        ids = torch.tensor([prompt + sample.token_ids])
        logp, _ = sequence_logprobs(pm.model, ids, torch.ones_like(ids), temperature=0.8)
        torch.testing.assert_close(logp[0, len(prompt):], torch.tensor(sample.logprobs), atol=1e-4, rtol=1e-4)


def test_greedy_generation_does_not_depend_on_batch_padding(generator):
    pm, gen = generator
    prompts = [pm.chat.prompt_ids([{"role": "user", "content": "a" * n}]) for n in (1, 9, 30, 4)]
    params = SamplingParams(max_new_tokens=6, temperature=0)
    together = gen.generate(prompts, params)
    alone = [gen.generate([p], params)[0] for p in prompts]
    assert [s.token_ids for s in together] == [s.token_ids for s in alone]
