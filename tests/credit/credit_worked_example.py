"""docs/credit.md#worked-example: one prompt ("capital of France", gold "Paris"), G = 4, as trajectory dicts."""

from __future__ import annotations

TURNS = {
    "t1": [("S0", 'search("capital of France")', False), ("D_paris", "answer Paris", False)],
    "t2": [("S0", 'search("France")', False), ("D_france", 'search("capital of France")', False),
           ("D_paris", "answer Paris", False)],
    "t3": [("S0", 'search("France")', False), ("D_france", 'search("largest French city")', False),
           ("D_lyon", "answer Lyon", False)],
    "t4": [("S0", 'search("capital of France")', False), ("D_paris", "hmm, let me think more about", True)],
}
OUTCOME = {"t1": 1.0, "t2": 1.0, "t3": 0.0, "t4": 0.0}
GOLD_LOGP = {"t1": [-2.0, -0.3], "t2": [-2.0, -1.6, -0.25], "t3": [-2.0, -1.6, -2.5], "t4": [-2.0, -0.3]}


def trajectories(order=("t1", "t2", "t3", "t4"), group_id="france"):
    out = []
    for tid in order:
        turns = TURNS[tid]
        out.append({
            "traj_id": tid, "group_id": group_id, "task_id": "capital-of-france",
            "turns": [
                {"index": k, "observation": s, "action": a, "state_key": s, "void": v, "parse_error": None,
                 # env reward only at the end: the outcome lands on the last turn
                 "reward": OUTCOME[tid] if k == len(turns) - 1 else 0.0}
                for k, (s, a, v) in enumerate(turns)
            ],
            "outcome": OUTCOME[tid], "failure": None, "info": {"gold_answers": ["Paris"]},
        })
    return out


def gold_logp(order=("t1", "t2", "t3", "t4")):
    return [GOLD_LOGP[t] for t in order]


# Expected per-turn values, docs/credit.md#worked-example (4 decimals).
GIGPO = {"t1": [0.9869, 0.8333], "t2": [0.9394, 0.975, 0.8333], "t3": [-0.9631, -0.975, -0.5],
         "t4": [-0.9631, -1.1667]}
GIGPO_STEP = {"t1": [0.4869, 0.3333], "t2": [0.4394, 0.475, 0.3333], "t3": [-0.4631, -0.475, 0.0],
              "t4": [-0.4631, -0.6667]}
GIGPO_STD = {"t1": [1.7759, 1.4434], "t2": [1.6871, 1.5731, 1.4434], "t3": [-1.7315, -1.5731, -0.866],
             "t4": [-1.7315, -2.0207]}
IGPO_V2 = {"t1": [2.0005, 1.0], "t2": [1.2163, 1.6219, 1.0], "t3": [-3.2173, -2.8117, -1.0], "t4": [0.0005, -1.0]}
IGPO_V2_RTILDE = {"t1": [1.0005, 1.0], "t2": [-0.4056, 0.6219, 1.0], "t3": [-0.4056, -1.8117, -1.0],
                  "t4": [1.0005, -1.0]}
IG_PROB = {"t1": [0.6055], "t2": [0.0666, 0.5769], "t3": [0.0666, -0.1198], "t4": [0.6055]}
IGPO_V1 = {"t1": [2.0844, 1.5287], "t2": [1.2407, 2.0139, 1.5287], "t3": [-2.9435, -2.1702, -0.9374],
           "t4": [-0.3816, -0.9374]}
A2TGPO = {"t1": [1.3, 1.0], "t2": [1.0, 1.3, 1.0], "t3": [-1.4243, -1.3, -1.0], "t4": [-0.7, -1.0]}
A2TGPO_CLIP = {"t1": [1.1386, 1.0], "t2": [0.8614, 1.1386, 1.0], "t3": [0.8614, 0.8614, 1.0], "t4": [1.1386, 1.0]}
# §9.4 void_in_group_stats=False (τ4 dropped before statistics)
GIGPO_NOVOID = {"t1": [0.6658, 0.3333], "t2": [0.6183, 0.8083, 0.3333], "t3": [-1.2842, -1.1417, -0.6667]}
IGPO_NOVOID = {"t1": [1.9326, 0.7071], "t2": [1.3364, 1.5462, 0.7071], "t3": [-3.269, -3.0592, -1.4142]}
A2TGPO_NOVOID = {"t1": [1.1314, 0.7071], "t2": [0.7692, 1.0071, 0.7071], "t3": [-1.7763, -1.7142, -1.4142]}
