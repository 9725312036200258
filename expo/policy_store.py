"""The trained policy a finished run keeps: run_dir/policy/, read by `python -m expo.evaluate`.

A run's checkpoint (expo/checkpoint.py) holds everything a resume needs, the online buffer included,
and is deleted when the run finishes. What stays is this small copy of the final agent:

    policy/params.msgpack   the agent pytree as flax's state dict (flax.serialization, msgpack)
                            without optimizer states: the parameters the evaluation policy reads
    policy/policy.json      what it is: method, task, seed, the env step of the evaluation that
                            scored it (the run's last eval.csv row), the fields kept, the file's size

Which fields: an agent module that names the fields its evaluation policy reads (POLICY_FIELDS:
EXPO's EMA base policy, edit policy, target critic and diffusion schedule) keeps only those; any
other module keeps every field (online, EMA and target parameters, temperature, its key). Optimizer
states (Adam's two moments per parameter, PA-RL's distillation optimizer) and the replay buffer are
never kept. Restoring fills a freshly built agent of the run's config (expo.config.build_agent) with
the saved leaves, bit for bit; what was not kept stays as built, which evaluation never reads (a
restored policy evaluates exactly as the run's last evaluation did; it is not a state to train on).

The folder is written whole into a temporary folder beside it and renamed, so a reader sees a
complete policy or none. A run that starts (or starts again) deletes any policy/ left from before
(expo/train.py), so a policy always belongs to the finished run that status.json records.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

POLICY_DIR = "policy"
PARAMS_FILE = "params.msgpack"
INFO_FILE = "policy.json"
FORMAT = 1


class PolicyError(RuntimeError):
    """A saved policy that cannot be used: the message is one line naming the path and the fix."""


def _is_optimizer_state(key: str) -> bool:
    """flax TrainState's `opt_state`, and a method's own optimizer states (PA-RL's
    `distill_opt_state`)."""
    return key == "opt_state" or key.endswith("_opt_state")


def _without_optimizer_states(state: Any) -> Any:
    if isinstance(state, dict):
        return {k: _without_optimizer_states(v) for k, v in state.items() if not _is_optimizer_state(k)}
    return np.asarray(state)


def policy_fields(module) -> tuple[str, ...] | None:
    """The agent fields `module`'s evaluation policy reads (its POLICY_FIELDS), None for all."""
    fields = getattr(module, "POLICY_FIELDS", None)
    return None if fields is None else tuple(fields)


def policy_state(agent, fields: tuple[str, ...] | None = None) -> dict:
    """The agent's state dict (flax.serialization) without optimizer states, as numpy arrays: the
    top-level `fields` only, or every field (None)."""
    import flax.serialization
    import jax

    state = flax.serialization.to_state_dict(jax.device_get(agent))
    if fields is not None:
        unknown = sorted(set(fields) - set(state))
        if unknown:
            raise ValueError(f"POLICY_FIELDS {unknown} are not fields of the agent ({', '.join(state)})")
        state = {k: v for k, v in state.items() if k in fields}
    return _without_optimizer_states(state)


def save_policy(run_dir: Path, agent, info: dict, fields: tuple[str, ...] | None = None) -> Path:
    """Write run_dir/policy/ for `agent` (one seed's, unstacked; `fields` as policy_state takes
    them), atomically; returns the folder."""
    import flax.serialization

    run_dir = Path(run_dir)
    final = run_dir / POLICY_DIR
    tmp = run_dir / f".{POLICY_DIR}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = policy_state(agent, fields)
    data = flax.serialization.msgpack_serialize(state)
    _write(tmp / PARAMS_FILE, data)
    record = {"format": FORMAT, **info, "fields": sorted(state), "params_bytes": len(data)}
    _write(tmp / INFO_FILE, (json.dumps(record, indent=2) + "\n").encode())
    old = run_dir / f".{POLICY_DIR}.old{os.getpid()}"
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def discard_policy(run_dir: Path) -> None:
    """Delete run_dir/policy/ (a run that starts again replaces it only when it finishes)."""
    shutil.rmtree(Path(run_dir) / POLICY_DIR, ignore_errors=True)


def has_policy(run_dir: Path) -> bool:
    return (Path(run_dir) / POLICY_DIR / PARAMS_FILE).is_file()


def read_info(run_dir: Path) -> dict:
    path = Path(run_dir) / POLICY_DIR / INFO_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise PolicyError(f"{path} is unreadable ({type(e).__name__}: {' '.join(str(e).split())})") from e


def load_policy(run_dir: Path, template, fields: tuple[str, ...] | None = None):
    """The saved agent: `template` (a freshly built agent of the run's config) with every saved leaf
    restored, bit for bit; `fields` as the run saved them (policy_fields of its module). Raises
    PolicyError when the file does not fit the template."""
    import flax.serialization
    import jax.numpy as jnp

    path = Path(run_dir) / POLICY_DIR / PARAMS_FILE
    try:
        saved = flax.serialization.msgpack_restore(path.read_bytes())
    except Exception as e:  # noqa: BLE001 - whatever msgpack raises, the message names the file
        raise PolicyError(f"{path} is unreadable ({type(e).__name__}: {' '.join(str(e).split())})") from e
    problems: list[str] = []

    def merge(template_state, saved_state, where: str):
        if isinstance(template_state, dict):
            if not isinstance(saved_state, dict):
                problems.append(f"{where or 'the agent'} is not a tree in the file")
                return template_state
            for key in set(saved_state) - set(template_state):
                problems.append(f"{where}{key} is not in the agent")
            out = {}
            for key, value in template_state.items():
                if key in saved_state:
                    out[key] = merge(value, saved_state[key], f"{where}{key}/")
                elif _is_optimizer_state(key) or (not where and fields is not None and key not in fields):
                    out[key] = value  # never saved; evaluation does not read it
                else:
                    problems.append(f"{where}{key} is missing from the file")
                    out[key] = value
            return out
        want = np.asarray(template_state)
        got = np.asarray(saved_state)
        if got.shape != want.shape or got.dtype != want.dtype:
            problems.append(f"{where.rstrip('/')} is {got.dtype}{list(got.shape)} in the file, "
                            f"{want.dtype}{list(want.shape)} in the agent")
            return template_state
        return jnp.asarray(got)

    template_state = flax.serialization.to_state_dict(template)
    merged = merge(template_state, saved, "")
    if problems:
        raise PolicyError(f"{path} does not fit the agent of the run's config.json ("
                          f"{'; '.join(sorted(problems)[:4])}{'; ...' if len(problems) > 4 else ''})")
    return flax.serialization.from_state_dict(template, merged)
