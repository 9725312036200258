"""The CPU-scale reproduction of the paper's offline-to-online claims (Fig. 4, 5, 6, 7, 9, 10) on
the embedded Lift task: every arm shares one EXPO run set, so each claim compares against the same
EXPO seeds. Mini scale (expo/config.py SCALES["mini"]: 5k imitation steps, 10k online steps, UTD 2,
N = 4, 20 evaluation episodes every 2.5k steps), 3 seeds; sized to run on a 2-core CPU.

Arms and the paper figure each one tests (the suite's choices at this scale):
- Fig. 4: EXPO against IDQL, Cal-QL, DAC and RLPD; `bc` is the imitation-only base policy (EXPO's
  step-0 policy with one sample and no edits), the reference every claim's step 0 starts from;
- Fig. 5: `expo_no_otf_backup` (the backup takes one base-policy sample);
- Fig. 6: `expo_no_edit` (argmax over base samples only);
- Fig. 7: 3 demonstrations instead of the protocol's 10 (Table 2; dataset.num_demos, drawn from
  the 50 embedded ones with the run's seed): EXPO, EXPO + entropy backup and the imitation policy on
  that subsample; with the 10 demos the entropy backup arm is `expo_entropy_backup`;
- Fig. 9: N in {2, 8} next to `expo` (mini's N), every sample edited (n_edit = N);
- Fig. 10: beta in {0.05, 0.3} next to `expo` (the protocol's offline-to-online beta for Lift).
Run directories: results/cpu4/lift/<arm>/seed_<s>.
"""
DEMOS = 3

GRID = {
    "description": "CPU-scale offline-to-online claims on embedded Lift (Fig. 4-7, 9, 10; mini scale)",
    "tasks": ["lift"],
    "arms": [
        {"method": "expo"}, {"method": "bc"},
        *({"method": m, "variant": f"demos{DEMOS}", "overrides": {"dataset.num_demos": DEMOS}}
          for m in ("expo", "bc", "expo_entropy_backup")),
        *({"method": m} for m in ("idql", "calql", "dac", "rlpd",
                                  "expo_no_otf_backup", "expo_no_edit", "expo_entropy_backup")),
        *({"method": "expo", "variant": f"N{n}", "overrides": {"agent.N": n, "agent.n_edit": n}}
          for n in (2, 8)),
        *({"method": "expo", "variant": f"beta{b:g}", "overrides": {"agent.beta": b}}
          for b in (0.05, 0.3)),
    ],
    "seeds": 3,
    "setting": "offline_to_online",
    "scale": "mini",
    "overrides": {},
}
