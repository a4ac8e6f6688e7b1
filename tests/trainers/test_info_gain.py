"""The IGPO gold-answer probe: gold span by offsets, teacher-forced mean log-prob, batching."""

import torch

from agentgym.trainers.chat import annotate_tokens, to_sequence
from agentgym.trainers.info_gain import TransformersGoldScorer, gold_token_span
from agentgym.trainers.losses import sequence_logprobs
from agentgym.trainers.models import load_policy
from agentgym.trajectory import Trajectory, Turn


def test_gold_span_excludes_prefix_and_suffix_but_keeps_merged_tokens(tiny_model_dir):
    tok = load_policy(tiny_model_dir, device="cpu").tokenizer
    template = "<answer> {gold} </answer>"
    ids, start, end = gold_token_span(tok, template, "the red gate")
    pieces = tok.convert_ids_to_tokens(ids)
    gold = tok.convert_tokens_to_string(pieces[start:end])
    assert gold.strip() == "the red gate"  # " the" merged with the template's space still counts
    assert "answer" in tok.convert_tokens_to_string(pieces[:start])
    assert tok.convert_tokens_to_string(pieces[end:]).strip() == "</answer>"
    ids, start, end = gold_token_span(tok, "\n{gold}\n", "Paris")
    assert tok.decode(ids[:start]) == "\n" and tok.decode(ids[end:]) == "\n"


def _traj(n_turns: int, tag: str) -> Trajectory:
    turns = [Turn(index=k, observation=f"{tag} observation {k}", action="", action_token_ids=[100 + k, 200, 2])
             for k in range(n_turns)]
    return Trajectory(tag, "g", "task", "env", 0, "p", turns=turns, info={"gold_answers": ["the bronze key", "x"]})


def test_scores_are_teacher_forced_means_over_gold_tokens_per_context(tiny_model_dir):
    pm = load_policy(tiny_model_dir, device="cpu")
    scorer = TransformersGoldScorer(pm, system_prompt="sys", batch_size=2)
    trajs = [_traj(3, "a"), _traj(1, "b"), _traj(2, "c")]
    ell = scorer.trajectory_gold_logprobs(trajs)
    assert [len(x) for x in ell] == [3, 1, 2]  # k = 0 (prompt only) … T−1
    traj = trajs[0]
    annotate_tokens(traj, pm.chat, "sys")
    seq = to_sequence(traj).input_ids
    response, s, e = gold_token_span(pm.tokenizer, scorer.template, "the bronze key")
    for k, turn in enumerate(traj.turns):
        ctx = seq[: turn.action_span[0]]
        assert ctx[-1] != 2 or k == 0  # the context ends with the generation prompt
        ids = torch.tensor([ctx + response + [pm.chat.eos_id]])
        with torch.no_grad():
            logp, _ = sequence_logprobs(pm.model, ids, torch.ones_like(ids))
        expected = logp[0, len(ctx) + s : len(ctx) + e].mean().item()
        assert abs(ell[0][k] - expected) < 1e-4
    assert len({round(v, 6) for v in ell[0]}) == 3  # contexts differ, so do the scores


def test_siop_contexts_and_the_siop_stage_with_the_trainer_scorer(tiny_model_dir):
    from agentgym.credit import build_pipeline

    pm = load_policy(tiny_model_dir, device="cpu")
    scorer = TransformersGoldScorer(pm, system_prompt="sys", batch_size=4)
    trajs = [_traj(3, "a"), _traj(2, "b"), _traj(2, "c")]
    for t, answer in zip(trajs, ["the bronze key", "The bronze key.", "a lamp"], strict=True):
        t.turns[-1].answer = answer
    after_action = scorer.siop_contexts(trajs[0])
    after_obs = scorer.siop_contexts(trajs[0], "after_observation")
    seq = to_sequence(trajs[0]).input_ids
    spans = [t.action_span for t in trajs[0].turns]
    assert after_action == [seq[: spans[0][0]], seq[: spans[0][1]], seq[: spans[1][1]], seq[: spans[2][1]]]
    assert after_obs == [seq[: spans[0][0]], seq[: spans[1][0]], seq[: spans[2][0]], seq[: spans[2][1]]]
    out = build_pipeline({"method": "siop"})(trajs, scorer=scorer)
    assert out.advantages.shape == (7,) and torch.isfinite(torch.tensor(out.advantages)).all()
    assert out.metrics["credit/siop_clusters"] == 2.0  # one prompt group: "the bronze key" ×2, "a lamp"
    assert len(set(out.advantages.round(6).tolist())) > 2  # the probe's log-probs differ per turn
