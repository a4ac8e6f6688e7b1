"""Search-R1-style retrieval QA (agentgym/Search-v0)."""
