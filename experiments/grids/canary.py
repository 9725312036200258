"""The canary: every method of the suite on Pendulum-v1, a task on which each one is known to learn.

Not a paper figure. A method that scores near zero on the embedded tasks may do so because the task
is hard at CPU scale or because its loop is broken (a wrong mask sign, a batch that never reaches
the critic, a target network never updated); the golden tests cannot tell, since they check the
method's functions, not the loop around them. Here every method must beat THRESHOLD within its
step budget (tests/test_canary.py runs this grid's runs in `make test-heavy`).

The task: expo/protocol.py CANARY (its reward transform, horizon and metric) and expo/envs/classic.py.
The data (expo/data/experts/pendulum.py): 50 episodes of a controller that swings the pendulum up
by pumping energy and never balances it, with action noise 1.0 (so the upright region is seen with
many actions). Measured on its 50 episodes: mean return -862, best episode -671; uniform random
actions: -1239 (30 episodes). THRESHOLD = -600 lies above every episode of the data, so neither
imitating them nor acting at random reaches it: a method has to learn from the rewards to hold the
pendulum up for part of the episode (tested: tests/test_canary.py).

Setting: offline-to-online, as the CPU grids run every method (RLPD never pretrains, METHODS in
expo/config.py), at mini sizes (the sizes of the claims' grids) except:
- pretrain_steps 1000 instead of 5000 (IDQL: 5000, the EMA of its acting policy, tau 0.001, needs
  more than 1000 steps to forget its random initialisation; PA-RL: 300, its pretraining step costs
  about 130 ms on a 2-core CPU and its update about 150 ms);
- online steps per method (STEPS): what each needed on this task in single-seed trials (noise-1.0
  data, 500-step evaluations), within CI's time; PA-RL gets what CI's time allows (KNOWN_FAILURES).
"""
from expo.protocol import CANARY

THRESHOLD = -600.0
# Per-method online steps: the cheaper updates get more steps, so that the grid fits in CI's budget.
STEPS = {
    "expo": 2_000, "expo_no_edit": 2_000, "expo_no_otf_backup": 2_500, "expo_entropy_backup": 2_000,
    "rlpd": 4_000, "idql": 3_000, "calql": 3_000, "calql_sac": 3_000, "dac": 3_000, "dipo": 10_000,
    "qsm": 2_000, "parl": 1_500,
}
METHOD_OVERRIDES = {
    "idql": {"pretrain_steps": 5_000},
    "parl": {"pretrain_steps": 300},
}
EVAL_INTERVAL = 500
# The test's order (costliest first; tests/test_canary.py): measured seconds per seed on a 2-core CPU.
COST_ORDER = ["parl", "dipo", "dac", "expo_entropy_backup", "expo", "expo_no_otf_backup", "expo_no_edit", "rlpd",
              "calql", "idql", "calql_sac", "qsm"]
# Methods that do not reach THRESHOLD, with the measured reason (tests/test_canary.py expects them to
# fail, strictly: a pass is reported, so the entry is removed once the cause is gone).
KNOWN_FAILURES = {
    "idql": (
        "IDQL fine-tunes only its critic and acts by argmax-Q over 128 samples of its frozen imitation "
        "policy; its IQL critic values the data's own behaviour (expectile 0.7 of Q over the buffer's "
        "actions), and the data never balance the pendulum. Measured, 1 seed: return -934 at step 0, "
        "-830 to -890 from 1k to 10k online steps (expectile 0.9: -970 at 10k; the online setting, "
        "actor trained by BC on the mixed batches: -964 at 6k). The T = 5 DDPM sampler also shrinks "
        "the data's actions: none of its samples exceed |a| = 0.95, where 35% of the data's actions are "
        "at the bounds."
    ),
    "parl": (
        "PA-RL learns, more slowly than CI's time allows: its update costs 150-250 ms on a 2-core CPU "
        "(the action optimization over N = 32 diffusion samples, 10 Q heads, at every critic step and "
        "action), so 1.5k online steps per seed are what fits, where its committed runs end below the "
        "threshold (results/canary). Seed 0 run on to 4k steps (single run, measured): -675 at 2k, -287 at 2.5k, -371 at 3k, -198 at "
        "3.5k, -221 at 4k, so it crosses the threshold between 2k and 2.5k steps; 3 seeds at 3k steps "
        "would cost about 30 minutes of a CI core."
    ),
}


def arm(method: str) -> dict:
    return {"method": method, "overrides": {"steps": STEPS[method], **METHOD_OVERRIDES.get(method, {})}}


GRID = {
    "description": "The canary: every method on Pendulum-v1, each must beat a return of -600 (not a paper figure)",
    "tasks": ["pendulum"],
    "arms": [arm(m) for m in STEPS],
    "seeds": 3,
    "setting": "offline_to_online",
    "scale": "mini",
    # eval_episodes: the protocol's (mini scale would set 20)
    "overrides": {"pretrain_steps": 1_000, "eval_interval": EVAL_INTERVAL, "eval_episodes": CANARY.eval_episodes},
}
