"""A tiny Qwen2-architecture causal LM and a byte-level BPE tokenizer, built with no download.

The tokenizer is trained here with the ``tokenizers`` library on text the built-in envs produce
(system prompts and observations from scripted and random episodes), plus the text of any env
passed as ``env_ids`` (the trainer passes its recipe's env), so env text is short in tokens.
Punctuation is one token per character (markup tags such as ``<answer>`` stay whole): text grids
(``#..G.``) then have one token per cell, so a cell's column is its token's offset in the row;
merged runs (``.#``, ``##.``) hid it from a tiny model. Its ChatML template follows Qwen2.5's layout, tool calls and tool
results included (:data:`CHATML_TEMPLATE`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

import agentgym
from agentgym.policies.simple import RandomPolicy, ScriptedPolicy

__all__ = ["CHATML_TEMPLATE", "env_corpus", "make_tiny_model", "tiny_corpus_envs", "train_tokenizer"]

# Qwen2.5's layout (written here, not copied): ChatML turns; ``tools=[...]`` adds a "# Tools" block
# to the system turn; an assistant message's structured ``tool_calls`` render as Hermes
# ``<tool_call>`` blocks (exactly agentgym.tools.format_tool_calls' text, so structured calls and
# the same calls as text give the same tokens); ``tool`` results are wrapped in
# ``<tool_response>`` inside a user turn (consecutive results share one).
CHATML_TEMPLATE = (
    "{%- if tools %}"
    "{{ '<|im_start|>system\n' }}"
    "{%- if messages[0]['role'] == 'system' %}{{ messages[0]['content'] + '\n\n' }}{%- endif %}"
    "{{ '# Tools\n\nYou may call one or more functions to assist with the user query.\n\n'"
    " + 'You are provided with function signatures within <tools></tools> XML tags:\n<tools>' }}"
    "{%- for tool in tools %}{{ '\n' + (tool | tojson) }}{%- endfor %}"
    "{{ '\n</tools>\n\nFor each function call, return a json object with function name and arguments '"
    " + 'within <tool_call></tool_call> XML tags:\n<tool_call>\n'"
    " + '{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'system' and loop.first and tools %}"
    "{%- elif message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' + (message['content'] or '') }}"
    "{%- for call in message['tool_calls'] or [] %}"
    "{%- if call['function'] is defined %}{%- set call = call['function'] %}{%- endif %}"
    "{%- if not loop.first or message['content'] %}{{ '\n' }}{%- endif %}"
    "{{ '<tool_call>\n{\"name\": \"' + call['name'] + '\", \"arguments\": ' }}"
    "{%- if call['arguments'] is string %}{{ call['arguments'] }}{%- else %}{{ call['arguments'] | tojson }}{%- endif %}"
    "{{ '}\n</tool_call>' }}"
    "{%- endfor %}"
    "{{ '<|im_end|>\n' }}"
    "{%- elif message['role'] == 'tool' %}"
    "{%- if loop.first or messages[loop.index0 - 1]['role'] != 'tool' %}{{ '<|im_start|>user' }}{%- endif %}"
    "{{ '\n<tool_response>\n' + message['content'] + '\n</tool_response>' }}"
    "{%- if loop.last or messages[loop.index0 + 1]['role'] != 'tool' %}{{ '<|im_end|>\n' }}{%- endif %}"
    "{%- else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{%- endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS_ENVS = ("agentgym/Bifurcation-v0", "agentgym/Sokoban-v0")
INFO_FILE = "agentgym_tiny.json"  # what a tiny model's tokenizer was trained on
# Pre-tokens, as GPT-2's byte-level split except that a markup tag stays whole (<answer>,
# </tool_call>) and punctuation is one mark per pre-token (BPE cannot merge ".#" or "##.").
_PRE_TOKENS = Regex(r"</?[A-Za-z_|]+>|'(?:s|t|re|ve|m|ll|d)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]|\s+(?!\S)|\s+")


def env_corpus(env_ids: tuple[str, ...] = CORPUS_ENVS, episodes: int = 40, seed: int = 0) -> list[str]:
    """System prompts, observations and actions of scripted and random episodes of ``env_ids`` (random
    only, for an env without a scripted expert)."""
    texts: list[str] = ["<|im_start|>" + role + "\n" for role in ("system", "user", "assistant", "tool")] * 50
    for env_id in env_ids:
        env = agentgym.make(env_id)
        expert = callable(getattr(env, "expert_action", None))
        for k in range(episodes):
            policy = ScriptedPolicy(epsilon=0.3, seed=seed + k) if k % 2 and expert else RandomPolicy(seed=seed + k)
            obs, _ = env.reset(seed=seed + k)
            texts += [env.system_prompt or "", obs]
            done = False
            while not done:
                action = policy.act_sync([], env).text
                obs, _, terminated, truncated, _ = env.step(action)
                texts += [action, f"<answer>{action}</answer>", obs]
                done = terminated or truncated
        env.close()
    return texts


def train_tokenizer(texts: list[str], vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """Byte-level BPE (any string encodes) with ChatML special tokens and template."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(_PRE_TOKENS, behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def make_tiny_model(
    out_dir: str | Path,
    *,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 4,
    vocab_size: int = 1024,
    max_positions: int = 2048,
    seed: int = 0,
    env_ids: tuple[str, ...] = (),
) -> Path:
    """Write a randomly initialised Qwen2 causal LM + tokenizer to ``out_dir``; return it.

    ``env_ids``: envs whose text the tokenizer also learns, besides :data:`CORPUS_ENVS` (a user's
    env: its prompt and observations then get tokens of their own)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    corpus_envs = tuple(dict.fromkeys((*CORPUS_ENVS, *env_ids)))
    tokenizer = train_tokenizer(env_corpus(corpus_envs, seed=seed), vocab_size=vocab_size)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads,
        num_key_value_heads=max(1, num_heads // 2), max_position_embeddings=max_positions,
        tie_word_embeddings=True, bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / INFO_FILE).write_text(json.dumps({"corpus_envs": list(corpus_envs)}))
    return out


def tiny_corpus_envs(model_dir: str | Path) -> list[str] | None:
    """The envs a tiny model's tokenizer was trained on (None: not a tiny model, or an older one)."""
    info = Path(model_dir) / INFO_FILE
    return json.loads(info.read_text())["corpus_envs"] if info.exists() else None
