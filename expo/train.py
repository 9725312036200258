"""The one training loop, for both settings of the paper.

- online (Fig. 3): no pretraining; the offline data sits in its own buffer and every minibatch is
  half offline, half online; random actions for the first start_training steps.
- offline_to_online (Fig. 4): the base policy is first trained by imitation for pretrain_steps on
  the offline data (Q and the edit policy start from scratch), then the online phase above.
- keep_offline_data=false (Fig. 8): after pretraining, minibatches come from the online buffer
  only. Before online step 1, warm_start_episodes episodes of the acting policy (default: as many
  as the dataset has) fill the online buffer, without updates; their env steps are not counted in
  `steps` or `env_step` (train.csv logs them in one row of phase "warm_start").

Checkpoints (expo/checkpoint.py) are taken every checkpoint_interval_s seconds at the points where
the loop state is the whole state; `train` resumes from run_dir/checkpoint/ when it holds one, and
the resumed run writes the same CSVs as an uninterrupted one. The checkpoint is deleted when the run
finishes; status.json records the finished run (and how often it was resumed).

Usage: python -m expo.train task=lift method=expo seed=0 scale=mini [key=value ...]
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np
from tqdm import tqdm

from expo import buffers, compilation, config as config_lib, protocol
from expo.checkpoint import CheckpointError, LoopState, RunCheckpointer
from expo.data import DatasetError, load_task_dataset
from expo.env_pool import make_eval_envs
from expo.envs import dataset_maker_kwargs, make_env
from expo.evaluate import as_numpy_policy, evaluate, per_row_policy
from expo.logger import RunLogger, atomic_write_text, run_dir_for
from expo.seeding import episode_seed, jax_key, numpy_rng


def _scalars(info: dict) -> dict[str, float]:
    return {k: float(v) for k, v in jax.device_get(info).items()}


class EpisodeWriter:
    """Writes an episode's transitions into the online buffer as the learner sees them (reward
    transform; mask 0 only on true termination, so time-limit truncation still bootstraps) and,
    when it ends, the method's per-episode extra fields (e.g. Cal-QL's Monte-Carlo returns)."""

    def __init__(self, online: buffers.ReplayBuffer, spec, module, agent_cfg: dict):
        self.online, self.spec, self.module, self.agent_cfg = online, spec, module, agent_cfg
        self.extra_fields = online.fields[len(buffers.FIELDS):]
        self.rewards: list[float] = []  # the learner's (transformed) rewards of the episode
        self.env_return = 0.0

    def add(self, obs, action, reward, next_obs, terminated: bool) -> None:
        learner_reward = self.spec.transform_reward(reward)
        self.online.add(obs, action, learner_reward, next_obs, 0.0 if terminated else 1.0)
        self.rewards.append(float(learner_reward))
        self.env_return += float(reward)

    def end(self, terminated: bool) -> float:
        """Close the episode; returns its environment return."""
        if self.extra_fields:
            for name, values in self.module.episode_extras(np.asarray(self.rewards), bool(terminated),
                                                           self.agent_cfg).items():
                self.online.write_recent(name, values)
        env_return = self.env_return
        self.rewards, self.env_return = [], 0.0
        return env_return


def warm_start_episode_count(cfg: dict, data: dict) -> int:
    """warm_start_episodes, with None resolved: 0 when the offline data are kept, else as many
    episodes as the offline dataset holds (Fig. 8)."""
    if cfg["warm_start_episodes"] is not None:
        return cfg["warm_start_episodes"]
    return 0 if cfg["keep_offline_data"] else int(np.count_nonzero(data["episode_starts"]))


def warm_start(env, writer: EpisodeWriter, act, num_episodes: int, seed: int) -> tuple[int, list[float]]:
    """num_episodes episodes of `act(obs, key)` into the online buffer; episode i starts from
    episode_seed(seed, "warm_start", i) and its action keys derive from the run seed.
    Returns (env steps taken, episode returns)."""
    base_key = jax_key(seed, "warm_start")
    env_steps, returns = 0, []
    for i in range(num_episodes):
        obs, _ = env.reset(seed=episode_seed(seed, "warm_start", i))
        episode_key = jax.random.fold_in(base_key, i)
        for t in itertools.count():
            action = act(obs, jax.random.fold_in(episode_key, t))
            next_obs, reward, terminated, truncated, _ = env.step(action)
            writer.add(obs, action, reward, next_obs, terminated)
            env_steps += 1
            if terminated or truncated:
                returns.append(writer.end(terminated))
                break
            obs = next_obs
    return env_steps, returns


def train(cfg: dict, run_dir: Path | None = None) -> Path:
    """Run (or resume) one run; returns its run directory. status.json records, among others, the
    XLA compilations of this process (the online update must compile exactly once)."""
    compilation.enable_persistent_cache()
    with compilation.counting() as compiles:
        return _train(cfg, run_dir, compiles)


def _train(cfg: dict, run_dir: Path | None, compiles: compilation.Compilations) -> Path:
    spec = protocol.get_task(cfg["task"])
    module = config_lib.agent_module(cfg["method"])
    agent_cfg = cfg["agent"]
    seed = cfg["seed"]
    run_dir = Path(run_dir) if run_dir is not None else run_dir_for(cfg)

    data_spec = dataclasses.replace(spec, dataset=cfg["dataset"]["name"])
    data = load_task_dataset(data_spec, cfg["dataset"]["num_demos"], seed=cfg["dataset"]["seed"])
    # Optional per-method batch fields (e.g. Cal-QL's Monte-Carlo returns): the module names them in
    # EXTRA_FIELDS {name: value until known}, computes them for the offline data (offline_extras)
    # and for each finished online episode (episode_extras).
    extra = dict(getattr(module, "EXTRA_FIELDS", {}))
    if extra:
        data = {**data, **module.offline_extras(data, agent_cfg)}
    offline = buffers.TransitionStore(data, tuple(extra))
    warm_start_episodes = warm_start_episode_count(cfg, data)
    maker_kwargs = dataset_maker_kwargs(spec, data_spec.dataset)
    env = make_env(spec, seed=seed, **maker_kwargs)
    # At most one environment per evaluation episode; in eval_workers processes when > 1.
    eval_envs = make_eval_envs(functools.partial(make_env, spec, seed + 1, **maker_kwargs),
                               min(cfg["eval_envs"], cfg["eval_episodes"]), cfg["eval_workers"])
    agent = config_lib.build_agent(module, seed, spec.obs_dim, spec.act_dim, agent_cfg)
    capacity = max(cfg["steps"] + warm_start_episodes * spec.horizon, 1)
    online = buffers.ReplayBuffer(spec.obs_dim, spec.act_dim, capacity=capacity, extra=extra)
    writer = EpisodeWriter(online, spec, module, agent_cfg)
    rngs = {"sampler": numpy_rng(seed, "sampler"), "random_actions": numpy_rng(seed, "random_actions")}

    checkpointer = RunCheckpointer(run_dir, cfg)
    if checkpointer.complete():
        agent, loop, log_position = checkpointer.restore(agent, online, rngs)
        loop.resumes += 1
        where = (f"online step {loop.online_step}" if loop.phase == "online"
                 else f"pretraining step {loop.pretrain_steps_done}")
        print(f"resuming {run_dir} from its checkpoint at {where}", file=sys.stderr)
    else:
        checkpointer.discard()  # what a first save cut short left behind
        loop, log_position = LoopState(), None
    (run_dir / "status.json").unlink(missing_ok=True)  # the run is under way again
    try:
        logger = RunLogger(run_dir, cfg, position=log_position)
    except ValueError as e:  # CSV files that do not match the checkpoint
        raise checkpointer.unreadable(e) from e
    # Wall time continues from the checkpoint: work lost to an interruption is not counted.
    start_time = time.perf_counter() - loop.wall_time_s

    act_key = jax_key(seed, "act")
    eval_key = jax_key(seed, "eval")
    show = cfg["progress"]

    def act(obs, key) -> np.ndarray:
        return np.asarray(module.sample_actions(agent, obs[None], key)[0])

    # The authors' evaluation policy where it differs from acting (e.g. RLPD's deterministic mean),
    # one key per evaluation environment.
    eval_policy = per_row_policy(getattr(module, "eval_actions", module.sample_actions))

    def eval_row(env_step: int) -> dict:
        result = evaluate(eval_envs, as_numpy_policy(eval_policy, agent),
                          jax.random.fold_in(eval_key, env_step), cfg["eval_episodes"], seed,
                          spec.metric)
        row = {"env_step": env_step, **result,
               "wall_time_s": round(time.perf_counter() - start_time, 1)}
        logger.log_eval(row)
        return row

    def checkpoint(force: bool = False) -> None:
        if force or checkpointer.due():
            loop.wall_time_s = time.perf_counter() - start_time
            checkpointer.save(agent, loop, online, rngs, logger.position())

    # ---- offline imitation pretraining of the base policy (offline_to_online only)
    batch_size, chunk = agent_cfg["batch_size"], cfg["pretrain_chunk"]
    if loop.phase == "pretrain":
        with tqdm(total=cfg["pretrain_steps"], initial=loop.pretrain_steps_done, leave=False,
                  desc=f"{cfg['method']} s{seed} pretrain", disable=not show, file=sys.stderr) as bar:
            while loop.pretrain_steps_done < cfg["pretrain_steps"]:
                done = loop.pretrain_steps_done
                k = min(chunk, cfg["pretrain_steps"] - done)
                batch = buffers.sample_offline(rngs["sampler"], offline, k, batch_size)
                agent, info = module.pretrain_update(agent, batch)
                done = loop.pretrain_steps_done = done + k
                bar.update(k)
                if done % cfg["log_interval"] < k or done == cfg["pretrain_steps"]:
                    logger.log_train({"phase": "pretrain", "step": done, "env_step": 0,
                                      **_scalars(info)})
                # Between jitted chunks the agent and the sampler's state are the whole state.
                checkpoint(force=done == cfg["pretrain_steps"])

        loop.last_eval = eval_row(0)
        if warm_start_episodes:
            env_steps, returns = warm_start(env, writer, act, warm_start_episodes, seed)
            logger.log_train({"phase": "warm_start", "step": 0, "env_step": 0,
                              "episodes": warm_start_episodes, "warm_start_env_steps": env_steps,
                              "train_return": float(np.mean(returns))})
        # Checkpointed only once the warm start is complete: an interrupted one is redone whole.
        loop.phase = "online"
        if cfg["steps"]:
            checkpoint(force=True)

    # ---- online phase
    # Checkpoints fall right after an episode ended and the env was reset with the next episode's
    # seed: the simulator's mid-episode state is never saved, a resumed run resets it the same way.
    obs, _ = env.reset(seed=episode_seed(seed, "train", loop.episode))
    with tqdm(total=cfg["steps"], initial=loop.online_step, desc=f"{cfg['method']} s{seed}",
              disable=not show, file=sys.stderr) as bar:
        bar.set_postfix(success=f"{loop.last_eval['success']:.2f}")
        for step in range(loop.online_step + 1, cfg["steps"] + 1):
            if step <= cfg["start_training"]:
                action = rngs["random_actions"].uniform(-1.0, 1.0, spec.act_dim).astype(np.float32)
            else:
                action = act(obs, jax.random.fold_in(act_key, step))
            next_obs, reward, terminated, truncated, _ = env.step(action)
            writer.add(obs, action, reward, next_obs, terminated)
            episode_ended = terminated or truncated
            if episode_ended:
                loop.ep_returns.append(writer.end(terminated))
                loop.episode += 1
                obs, _ = env.reset(seed=episode_seed(seed, "train", loop.episode))
            else:
                obs = next_obs

            if step >= cfg["start_training"]:
                if cfg["keep_offline_data"]:
                    batch = buffers.sample_symmetric(rngs["sampler"], offline, online, agent_cfg["utd"],
                                                     batch_size)
                else:
                    batch = buffers.sample_online(rngs["sampler"], online, agent_cfg["utd"], batch_size)
                agent, info = module.update(agent, batch)
                if step % cfg["log_interval"] == 0:
                    recent = loop.ep_returns[-10:]
                    logger.log_train({"phase": "online", "step": step, "env_step": step,
                                      "episodes": loop.episode,
                                      "train_return": float(np.mean(recent)) if recent else 0.0,
                                      **_scalars(info)})
            if step % cfg["eval_interval"] == 0 or step == cfg["steps"]:
                loop.last_eval = eval_row(step)
                bar.set_postfix(success=f"{loop.last_eval['success']:.2f}")
            bar.update(1)
            loop.online_step = step
            if episode_ended and step < cfg["steps"]:
                checkpoint()
    atomic_write_text(run_dir / "status.json",
                      json.dumps({"finished": True, "env_steps": cfg["steps"],
                                  "wall_time_s": round(time.perf_counter() - start_time, 1),
                                  "resumes": loop.resumes,
                                  "compilations": compiles.summary()}) + "\n")
    checkpointer.discard()  # status.json is the record of a finished run; results stay small
    eval_envs.close()
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
    except (DatasetError, MimicGenUnavailable, CheckpointError) as e:  # one line naming the fix
        sys.exit(f"error: {' '.join(str(e).split())}")
    print(f"wrote {run_dir}")


if __name__ == "__main__":
    main()
