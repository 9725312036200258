"""Fingerprints of what the training loop writes, to show that a change to expo/train.py leaves every
run's CSVs byte-identical on one machine (wall-time columns aside).

    python tools/loop_equivalence.py --write tools/loop_equivalence.json   # before the change
    python tools/loop_equivalence.py --check tools/loop_equivalence.json   # after it: exit 1 on a diff

The cases run in a tiny world (4 scripted Lift demonstrations, horizon 15, the sizes of
tests/test_train.py): a run of every method, the online setting with random warm-up actions,
keep_offline_data=false (warm start), a 2-seed group, runs interrupted in pretraining and mid-episode
online and then resumed, a diverging run, and a 2-seed group with one seed made to diverge. Floating
point differs between machines, so a fingerprint file compares runs made on the same machine only.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from expo import config as config_lib, divergence  # noqa: E402
from expo.seed_group import SeedGroup  # noqa: E402
from expo.train import group_configs, train, train_seeds  # noqa: E402
from tests.conftest import use_tiny_dataset  # noqa: E402
from tests.test_checkpoint import Interrupted, fail_on_call  # noqa: E402
from tests.test_divergence import poison_seed_after_update  # noqa: E402
from tests.test_train import TINY  # noqa: E402

WALL_CLOCK = {"wall_time_s"}


def tiny_keys(method: str, **changes) -> dict:
    known = config_lib.agent_module(method).get_config()
    keys = {k: v for k, v in TINY.items() if not k.startswith("agent.") or k[6:] in known}
    return {**keys, "method": method, "start_training": 8, **changes}


def fingerprint(run_dir: Path) -> dict:
    """sha256 of each CSV with its wall-clock columns removed, and the run's end state."""
    out = {}
    for name in ("eval.csv", "train.csv"):
        path = run_dir / name
        if not path.exists():
            continue
        rows = list(csv.DictReader(path.open()))
        fields = [f for f in (rows[0].keys() if rows else []) if f not in WALL_CLOCK]
        text = io.StringIO()
        writer = csv.DictWriter(text, fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        out[name] = hashlib.sha256(text.getvalue().encode()).hexdigest()[:16] + f" ({len(rows)} rows)"
    status = json.loads((run_dir / "status.json").read_text())
    out["status"] = {k: status[k] for k in ("finished", "diverged", "reason", "resumes", "env_steps")
                     if k in status}
    out["checkpoint_kept"] = (run_dir / "checkpoint").is_dir()
    return out


def run_group(results_dir: Path, keys: dict) -> list[Path]:
    keys = {**keys, "results_dir": str(results_dir)}
    return train_seeds(group_configs(config_lib.build_config(keys), keys))


def cases(tmp: Path, only: str = "") -> dict[str, dict]:
    """Run every case whose label starts with `only`; returns each run's fingerprint by label."""
    from expo.agents import expo as expo_agent

    def build(label, keys):
        return config_lib.build_config({**keys, "results_dir": str(tmp / label)})

    def interrupted_then_resumed(label, keys, interruptions, launch):
        for owner, name, call in interruptions:
            with pytest.MonkeyPatch.context() as mp:
                fail_on_call(mp, owner, name, call)
                try:
                    launch()
                except Interrupted:
                    pass
                else:
                    raise AssertionError(f"{label}: {name} call {call} never came")
        return launch()

    def diverged(launch, run_dirs):
        try:
            launch()
        except divergence.Diverged:
            return run_dirs
        raise AssertionError("the run did not diverge")

    def poisoned_group():  # seed 1's parameters become NaN after update 10
        with pytest.MonkeyPatch.context() as mp:
            poison_seed_after_update(mp, seed_index=1, update=10)
            return diverged(lambda: run_group(tmp / "group_diverged", tiny_keys("expo", seeds_per_process=2)),
                            [tmp / "group_diverged" / "adhoc" / "lift" / "expo" / f"seed_{s}" for s in (0, 1)])

    resumed = tiny_keys("expo", seed=5, checkpoint_interval_s=0)
    group_resumed = tiny_keys("expo", seed=3, seeds_per_process=2, checkpoint_interval_s=0)
    runs = {f"method/{m}": (lambda m=m: [train(build(f"method_{m}", tiny_keys(m)))])
            for m in sorted(config_lib.METHODS)}
    runs.update({
        "online_random_warmup": lambda: [train(build("online", tiny_keys(
            "expo", setting="online", warmup_acts="random")))],
        "no_offline_data_warm_start": lambda: [train(build("warm", tiny_keys(
            "expo", keep_offline_data=False, warm_start_episodes=2)))],
        "group_of_2": lambda: run_group(tmp / "group", tiny_keys("expo", seed=3, seeds_per_process=2)),
        # Interrupted in pretraining, then (resumed) at online step 17, 2 steps into the second
        # episode (updates from step 8); the third launch resumes there and finishes.
        "interrupted_and_resumed": lambda: [interrupted_then_resumed(
            "interrupted_and_resumed", resumed,
            [(expo_agent, "pretrain_update", 2), (SeedGroup, "update", 10)],
            lambda: train(build("resumed", resumed)))],
        # Interrupted at online step 14, 13 steps into the first episode.
        "group_of_2_interrupted_and_resumed": lambda: interrupted_then_resumed(
            "group_of_2_interrupted_and_resumed", group_resumed, [(SeedGroup, "update", 7)],
            lambda: run_group(tmp / "group_resumed", group_resumed)),
        "diverging_run": lambda: diverged(
            lambda: train(build("diverged", tiny_keys("rlpd", **{"agent.actor_lr": 1e15,
                                                                 "agent.critic_lr": 1e15}))),
            [tmp / "diverged" / "adhoc" / "lift" / "rlpd" / "seed_0"]),
        "group_with_one_diverging_seed": poisoned_group,
    })
    results = {}
    for label, launch in runs.items():
        if not label.startswith(only):
            continue
        for run_dir in launch():
            seed = json.loads((run_dir / "config.json").read_text())["seed"]
            results[f"{label}/seed_{seed}"] = fingerprint(run_dir)
        print(f"{label}: done", file=sys.stderr)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", type=Path, help="write the fingerprints to this JSON file")
    mode.add_argument("--check", type=Path, help="compare with this JSON file; exit 1 on a difference")
    parser.add_argument("--only", default="", help="only the cases whose label starts with this")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="expo-loop-equivalence-") as tmp, \
            pytest.MonkeyPatch.context() as mp:
        tmp = Path(tmp)
        use_tiny_dataset(mp, tmp / "data_root", "lift_scripted", "lift", horizon=15, num_demos=4)
        got = cases(tmp, args.only)
    if args.write:
        args.write.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        print(f"wrote {len(got)} runs' fingerprints to {args.write}")
        return
    want = {k: v for k, v in json.loads(args.check.read_text()).items() if k.startswith(args.only)}
    differ = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
    for key in differ:
        print(f"differs: {key}\n  before {want.get(key)}\n  now    {got.get(key)}")
    print(f"{len(got) - len(differ)} of {len(got)} runs identical")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
