"""A small verifiers v1 environment for the adapter's tests: a taskset of sums (its module is the
taskset id ``vf1_arith``) and its own harness, an in-process chat loop that offers an ``add`` tool
(``tools=False``: none, one reply; ``api="responses"``: it asks through the Responses API) and runs the calls the model makes until it answers in text.
``kind="raising"``: the reward function raises (a bug in the env)."""

from __future__ import annotations

import contextlib
import json
import re

import verifiers.v1 as vf
from openai import APIStatusError, AsyncOpenAI

__all__ = ["ArithTaskset", "ChatHarness"]


class ArithData(vf.TaskData):
    answer: int


class ArithTaskConfig(vf.TaskConfig):
    mcp: bool = False


class ArithTask(vf.Task[ArithData, vf.State, ArithTaskConfig]):
    @vf.reward(weight=1.0)
    async def correct(self, trace: vf.Trace) -> float:
        if self.data.name == "raising":
            return 1 / 0
        found = re.search(r"<answer>\s*(-?\d+)\s*</answer>", trace.last_reply)
        return float(found is not None and int(found.group(1)) == self.data.answer)

    @classmethod
    def toolsets(cls, config: ArithTaskConfig) -> list[vf.Toolset]:
        from vf1_tools import AddToolset

        return [AddToolset(vf.ToolsetConfig())] if config.mcp else []

    @vf.metric
    async def turns(self, trace: vf.Trace) -> float:
        return float(trace.num_turns)


class ArithConfig(vf.TasksetConfig):
    num_tasks: int = 4
    kind: str = "plain"


class ArithTaskset(vf.Taskset[ArithTask, ArithConfig]):
    def load(self) -> list[ArithTask]:
        return [ArithTask(ArithData(prompt=f"What is {i + 2} + {3 * i}?", answer=4 * i + 2, name=self.config.kind,
                                    system_prompt="Answer with <answer>NUMBER</answer>."),
                          ArithTaskConfig(mcp=self.config.kind == "mcp"))
                for i in range(self.config.num_tasks)]


ADD = {"type": "function", "function": {"name": "add", "description": "Add two integers.", "parameters": {
    "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}}


class ChatHarnessConfig(vf.HarnessConfig):
    tools: bool = True
    api: str = "chat"  # "responses": ask once through OpenAI's Responses API instead


class ChatHarness(vf.Harness[ChatHarnessConfig]):
    """Its loop runs in process (verifiers' contract: every model call goes through ``endpoint``)."""

    APPENDS_SYSTEM_PROMPT = True
    EXECUTES_CODE = False
    NEEDS_CONTAINER = False

    async def launch(self, ctx, trace, runtime, endpoint, secret, mcp_urls, data, tool_interception_url=None):
        system, prompt = self.resolve_text_prompt(data)
        messages = [*([{"role": "system", "content": system}] if system else []), {"role": "user", "content": prompt}]
        client = AsyncOpenAI(base_url=endpoint, api_key=secret, max_retries=0)
        try:
            if self.config.api == "responses":
                with contextlib.suppress(APIStatusError):  # the refusal of a dialect it does not serve
                    await client.responses.create(model=ctx.model, input=prompt)
            while self.config.api == "chat":
                kwargs = {"tools": [ADD]} if self.config.tools else {}
                try:
                    reply = (await client.chat.completions.create(model=ctx.model, messages=messages, **kwargs))
                except APIStatusError:
                    break  # a refused turn (a limit, a @stop): the rollout is over
                message = reply.choices[0].message
                messages.append(message.model_dump(exclude_none=True))
                if not message.tool_calls:
                    break
                for call in message.tool_calls:
                    args = json.loads(call.function.arguments or "{}")
                    content = str(args["a"] + args["b"]) if call.function.name == "add" else "error: unknown tool"
                    messages.append({"role": "tool", "tool_call_id": call.id, "content": content})
        finally:
            await client.close()
        return vf.ProgramResult(exit_code=0, stdout="", stderr="")
