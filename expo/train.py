"""The one training loop, for both settings of the paper.

- online (Fig. 3): no pretraining; the offline data sits in its own buffer and every minibatch is
  half offline, half online; random actions for the first start_training steps.
- offline_to_online (Fig. 4): the base policy is first trained by imitation for pretrain_steps on
  the offline data (Q and the edit policy start from scratch), then the online phase above.

Usage: python -m expo.train task=lift method=expo seed=0 scale=mini [key=value ...]
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np
from tqdm import tqdm

from expo import buffers, config as config_lib, protocol
from expo.data import DatasetError, load_task_dataset
from expo.envs import dataset_maker_kwargs, make_env
from expo.evaluate import evaluate
from expo.logger import RunLogger, atomic_write_text, run_dir_for
from expo.seeding import episode_seed, jax_key, numpy_rng


def _scalars(info: dict) -> dict[str, float]:
    return {k: float(v) for k, v in jax.device_get(info).items()}


def train(cfg: dict, run_dir: Path | None = None) -> Path:
    spec = protocol.get_task(cfg["task"])
    module = config_lib.agent_module(cfg["method"])
    agent_cfg = cfg["agent"]
    seed = cfg["seed"]
    run_dir = Path(run_dir) if run_dir is not None else run_dir_for(cfg)
    start_time = time.perf_counter()

    data_spec = dataclasses.replace(spec, dataset=cfg["dataset"]["name"])
    data = load_task_dataset(data_spec, cfg["dataset"]["num_demos"], seed=cfg["dataset"]["seed"])
    # Optional per-method batch fields (e.g. Cal-QL's Monte-Carlo returns): the module names them in
    # EXTRA_FIELDS {name: value until known}, computes them for the offline data (offline_extras)
    # and for each finished online episode (episode_extras).
    extra = dict(getattr(module, "EXTRA_FIELDS", {}))
    if extra:
        data = {**data, **module.offline_extras(data, agent_cfg)}
    offline = buffers.TransitionStore(data, tuple(extra))
    maker_kwargs = dataset_maker_kwargs(spec, data_spec.dataset)
    env = make_env(spec, seed=seed, **maker_kwargs)
    eval_env = make_env(spec, seed=seed + 1, **maker_kwargs)
    agent = module.create(seed, spec.obs_dim, spec.act_dim, agent_cfg)
    logger = RunLogger(run_dir, cfg)

    sample_rng = numpy_rng(seed, "sampler")
    action_rng = numpy_rng(seed, "random_actions")
    act_key = jax_key(seed, "act")
    eval_key = jax_key(seed, "eval")
    show = cfg["progress"]

    # The authors' evaluation policy where it differs from acting (e.g. RLPD's deterministic mean).
    eval_policy = getattr(module, "eval_actions", module.sample_actions)

    def eval_row(env_step: int) -> dict:
        key = jax.random.fold_in(eval_key, env_step)

        def act(obs, i):
            return np.asarray(eval_policy(agent, obs[None], jax.random.fold_in(key, i))[0])

        result = evaluate(eval_env, act, cfg["eval_episodes"], seed, spec.metric)
        row = {"env_step": env_step, **result,
               "wall_time_s": round(time.perf_counter() - start_time, 1)}
        logger.log_eval(row)
        return row

    # ---- offline imitation pretraining of the base policy (offline_to_online only)
    batch_size, chunk = agent_cfg["batch_size"], cfg["pretrain_chunk"]
    done = 0
    with tqdm(total=cfg["pretrain_steps"], desc=f"{cfg['method']} s{seed} pretrain", disable=not show,
              leave=False, file=sys.stderr) as bar:
        while done < cfg["pretrain_steps"]:
            k = min(chunk, cfg["pretrain_steps"] - done)
            batch = buffers.sample_offline(sample_rng, offline, k, batch_size)
            agent, info = module.pretrain_update(agent, batch)
            done += k
            bar.update(k)
            if done % cfg["log_interval"] < k or done == cfg["pretrain_steps"]:
                logger.log_train({"phase": "pretrain", "step": done, "env_step": 0,
                                  **_scalars(info)})

    last = eval_row(0)

    # ---- online phase
    online = buffers.ReplayBuffer(spec.obs_dim, spec.act_dim, capacity=max(cfg["steps"], 1), extra=extra)
    ep_rewards: list[float] = []  # the learner's (transformed) rewards of the current episode
    episode = 0
    obs, _ = env.reset(seed=episode_seed(seed, "train", episode))
    ep_return, ep_returns = 0.0, []
    with tqdm(total=cfg["steps"], desc=f"{cfg['method']} s{seed}", disable=not show,
              file=sys.stderr) as bar:
        bar.set_postfix(success=f"{last['success']:.2f}")
        for step in range(1, cfg["steps"] + 1):
            if step <= cfg["start_training"]:
                action = action_rng.uniform(-1.0, 1.0, spec.act_dim).astype(np.float32)
            else:
                key = jax.random.fold_in(act_key, step)
                action = np.asarray(module.sample_actions(agent, obs[None], key)[0])
            next_obs, reward, terminated, truncated, _ = env.step(action)
            # Truncation (time limit) keeps mask 1: only true termination cuts the bootstrap.
            online.add(obs, action, spec.transform_reward(reward), next_obs, 0.0 if terminated else 1.0)
            ep_rewards.append(float(spec.transform_reward(reward)))
            ep_return += float(reward)
            if terminated or truncated:
                if extra:
                    for name, values in module.episode_extras(np.asarray(ep_rewards), bool(terminated),
                                                              agent_cfg).items():
                        online.write_recent(name, values)
                ep_rewards = []
                ep_returns.append(ep_return)
                episode, ep_return = episode + 1, 0.0
                obs, _ = env.reset(seed=episode_seed(seed, "train", episode))
            else:
                obs = next_obs

            if step >= cfg["start_training"]:
                batch = buffers.sample_symmetric(sample_rng, offline, online, agent_cfg["utd"],
                                                 batch_size)
                agent, info = module.update(agent, batch)
                if step % cfg["log_interval"] == 0:
                    logger.log_train({"phase": "online", "step": step, "env_step": step,
                                      "episodes": episode,
                                      "train_return": float(np.mean(ep_returns[-10:])) if ep_returns else 0.0,
                                      **_scalars(info)})
            if step % cfg["eval_interval"] == 0 or step == cfg["steps"]:
                last = eval_row(step)
                bar.set_postfix(success=f"{last['success']:.2f}")
            bar.update(1)
    atomic_write_text(run_dir / "status.json",
                      json.dumps({"finished": True, "env_steps": cfg["steps"],
                                  "wall_time_s": round(time.perf_counter() - start_time, 1)}) + "\n")
    return run_dir


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    try:
        cfg = config_lib.build_config(config_lib.parse_overrides(argv))
    except (config_lib.ConfigError, KeyError) as e:
        sys.exit(f"error: {e.args[0] if e.args else e}")
    from expo.envs.mimicgen import MimicGenUnavailable

    try:
        run_dir = train(cfg)
    except (DatasetError, MimicGenUnavailable) as e:  # one line naming what is missing and the fix
        sys.exit(f"error: {' '.join(str(e).split())}")
    print(f"wrote {run_dir}")


if __name__ == "__main__":
    main()
