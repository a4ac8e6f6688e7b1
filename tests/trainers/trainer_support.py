"""Helpers shared by the trainer tests."""


def outcome_credit(trajs, config, scorer=None):
    """Test double for the credit library: group-normalised outcome on every turn (GRPO)."""
    from collections import defaultdict

    import numpy as np
    from agentgym.trainers.credit_bridge import TurnCredit

    groups = defaultdict(list)
    for t in trajs:
        groups[t.group_id].append(t.outcome)
    adv = [[(t.outcome - np.mean(groups[t.group_id])) / (np.std(groups[t.group_id]) + 1e-6)] * t.num_turns
           for t in trajs]
    ones = [[1.0] * t.num_turns for t in trajs]
    return TurnCredit(adv, ones, ones)

