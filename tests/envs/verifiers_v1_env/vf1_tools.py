"""A verifiers v1 tool server (MCP) for vf1_arith's ``kind="mcp"`` tasks: verifiers starts it per
rollout as ``python -m vf1_tools``."""

import verifiers.v1 as vf


class AddToolset(vf.Toolset[vf.ToolsetConfig]):
    TOOL_PREFIX = None

    @vf.tool
    def add(self, a: int, b: int) -> str:
        """Add two integers."""
        return str(a + b)


if __name__ == "__main__":
    AddToolset.run()
