"""Policy loading (LoRA reference, checkpointing) and the transformers generation backend."""

import pytest
import torch

from agentgym.trainers.generation import HFGenerator, SamplingParams, StopOnStrings
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
    return pm, HFGenerator(pm.model, pm.chat.eos_id, pm.chat.pad_id, batch_size=3, tokenizer=pm.tokenizer)


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


# -- stop strings -------------------------------------------------------------------------------
def first_stop_end(tokenizer, ids: list[int], stop: tuple[str, ...]) -> int | None:
    """The reference cut: the fewest leading tokens whose text contains a stop string."""
    for k in range(1, len(ids) + 1):
        if any(s in tokenizer.decode(ids[:k], skip_special_tokens=False) for s in stop):
            return k
    return None


def test_stop_criterion_cuts_at_the_token_that_completes_the_string(generator):
    pm, _ = generator
    tok = pm.tokenizer
    prompt = tok.encode("Solve it.")
    new = tok.encode("Run:\n```python\nprint(1)\n```\nThe output is 1.\n```python\nprint(2)\n```\n")
    stop = ("\n```\n",)
    stopper = StopOnStrings(stop, lambda ids: tok.decode(ids, skip_special_tokens=False), len(prompt), 2)
    for step in range(1, len(new) + 1):  # what generate() does: one call per new token
        row = prompt + new[:step]
        done = stopper(torch.tensor([row, prompt + tok.encode("no fence")[:1] * step]), None)
    expected = first_stop_end(tok, new, stop)
    assert expected is not None and stopper.ends == [expected, None] and done.tolist() == [True, False]
    assert tok.decode(new[:expected]).startswith("Run:\n```python\nprint(1)\n```\n")
    assert "print(2)" not in tok.decode(new[:expected])


def test_stop_criterion_sees_a_leading_space_that_a_sentencepiece_decoder_strips():
    pieces = {0: "q", 1: "\u2581", 2: "a", 3: "bc", 4: "x"}

    def decode(ids: list[int]) -> str:  # Llama-2/Mistral: \u2581 is a space; one leading space is stripped
        return "".join(pieces[i] for i in ids).replace("\u2581", " ").removeprefix(" ")

    new = [4, 1, 2, 3, 4]  # "x abcx": " ab" ends inside the token "bc"
    stopper = StopOnStrings((" ab",), decode, 1, 1)
    for step in range(1, len(new) + 1):
        stopper(torch.tensor([[0, *new[:step]]]), None)
    assert stopper.ends == [4]


def test_generate_stops_at_a_stop_string_and_drops_what_follows(generator):
    pm, gen = generator
    decode = pm.tokenizer.decode
    prompts = [pm.chat.prompt_ids([{"role": "user", "content": text}]) for text in ("Stage 1 of 3.", "x y z w")]
    torch.manual_seed(0)
    free = gen.generate(prompts, SamplingParams(max_new_tokens=16, temperature=1.0))
    # A string the first row writes early and the second row never writes.
    stop = next((piece,) for k in range(2, 10) if "\ufffd" not in (piece := decode(free[0].token_ids[k : k + 2]))
                and piece not in decode(free[1].token_ids))
    torch.manual_seed(0)  # the same draws: rows match the free run up to their stop
    stopped = gen.generate(prompts, SamplingParams(max_new_tokens=16, temperature=1.0, stop=stop))
    end = first_stop_end(pm.tokenizer, free[0].token_ids, stop)
    assert end < len(free[0].token_ids) and stop[0] in decode(stopped[0].token_ids)
    assert (stopped[0].token_ids, stopped[0].finish_reason) == (free[0].token_ids[:end], "stop")
    torch.testing.assert_close(stopped[0].logprobs, free[0].logprobs[:end])
    assert stopped[1] == free[1]  # the padding after the first row's stop does not touch it
    with pytest.raises(ValueError, match="tokenizer"):
        HFGenerator(pm.model, pm.chat.eos_id, pm.chat.pad_id).generate(prompts, SamplingParams(stop=stop))
