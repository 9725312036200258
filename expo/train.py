"""The one training loop, for both settings of the paper.

- online (Fig. 3): no pretraining; the offline data sits in its own buffer and every minibatch is
  half offline, half online; no update before online step start_training, and random actions
  until then (warmup_acts=random; "policy": the policy acts, only the updates wait).
- offline_to_online (Fig. 4): the base policy is first trained by imitation for pretrain_steps on
  the offline data (Q and the edit policy start from scratch), then the online phase above, in
  which the pretrained policy acts from step 1 (expo/config.py: no random steps after pretraining).
- keep_offline_data=false (Fig. 8): after pretraining, minibatches come from the online buffer
  only. Before online step 1, warm_start_episodes episodes of the acting policy (default: as many
  as the dataset has) fill the online buffer, without updates; their env steps are not counted in
  `steps` or `env_step` (train.csv logs them in one row of phase "warm_start").

Checkpoints (expo/checkpoint.py) are taken every checkpoint_interval_s seconds, between pretraining
chunks or after an online step (a resumed run replays its unfinished episode); `train` resumes from
run_dir/checkpoint/ when it holds one, and the resumed run writes the same CSVs as an uninterrupted
one. The checkpoint is deleted when the run
finishes; status.json records the finished run (and how often it was resumed).

A run whose losses, parameters or actions stop being finite stops within log_interval steps
(expo/divergence.py): no non-finite action reaches an env, no non-finite row a CSV, no non-finite
parameter a checkpoint; status.json records `diverged` and the reason, and train raises Diverged
(one line per diverged seed; the other seeds of a group finish).

seeds_per_process=k trains seeds seed, ..., seed + k - 1 in this process (expo/seed_group.py): one
vmapped update for the k agents, each seed with its own envs, buffers, CSVs and checkpoints.

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

from expo import buffers, compilation, config as config_lib, divergence, protocol
from expo.checkpoint import (CheckpointError, LoopState, RunCheckpointer, comparable_config,
                             config_without_seed)
from expo.data import DatasetError, load_task_dataset
from expo.env_pool import make_eval_envs
from expo.envs import dataset_maker_kwargs, make_env
from expo.evaluate import as_numpy_policy, evaluate, per_row_policy
from expo.logger import PROGRESS_FILE, RunLogger, atomic_write_text, run_dir_for, write_progress
from expo.seed_group import SeedGroup
from expo.seeding import episode_seed, jax_key, numpy_rng


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
            action = divergence.check_actions(act(obs, jax.random.fold_in(episode_key, t)),
                                              f"warm-start action (episode {i}, step {t})")
            next_obs, reward, terminated, truncated, _ = env.step(action)
            writer.add(obs, action, reward, next_obs, terminated)
            env_steps += 1
            if terminated or truncated:
                returns.append(writer.end(terminated))
                break
            obs = next_obs
    return env_steps, returns


def replay_unfinished_episode(env, writer: EpisodeWriter, online: buffers.ReplayBuffer,
                              reset_seed: int, steps: int) -> np.ndarray:
    """Bring a fresh env back to where a checkpointed run left its training episode: reset with the
    episode's seed, step it with the episode's `steps` actions from the online buffer (its last rows)
    and restore the writer's per-episode sums. Returns the current observation. Raises
    CheckpointError when a replayed observation differs from the stored one (a simulator that is
    not deterministic here), rather than continue a run that would differ from an uninterrupted one."""
    obs, _ = env.reset(seed=reset_seed)
    for i in online.recent_rows(steps):
        stored = online.data["observations"][i]
        if not np.array_equal(np.asarray(obs, np.float32), stored):
            raise CheckpointError(
                f"replaying the unfinished training episode (seed {reset_seed}, {steps} steps) did not "
                f"reproduce its observations: this simulator is not deterministic on this machine; "
                f"resume with checkpoint_interval_s large enough to end the run, or start it again")
        obs, reward, _, _, _ = env.step(online.data["actions"][i])
        writer.rewards.append(float(online.data["rewards"][i]))
        writer.env_return += float(reward)
    return obs


@dataclasses.dataclass
class Lane:
    """One seed of the runs this process trains: its run directory, envs, buffers, samplers, logger
    and checkpoints. Only the agent is shared, as the seed group's stacked pytree."""
    cfg: dict
    run_dir: Path
    offline: buffers.TransitionStore
    env: object
    eval_envs: object
    online: buffers.ReplayBuffer
    writer: EpisodeWriter
    rngs: dict
    checkpointer: RunCheckpointer
    warm_start_episodes: int
    loop: LoopState = dataclasses.field(default_factory=LoopState)
    logger: RunLogger | None = None
    obs: np.ndarray | None = None
    diverged: str | None = None         # why this seed stopped (expo/divergence.py), once it has
    last_checkpoint: str | None = None  # where its newest (always finite) checkpoint was taken

    @property
    def seed(self) -> int:
        return self.cfg["seed"]


def train(cfg: dict, run_dir: Path | None = None) -> Path:
    """Run (or resume) one run; returns its run directory. status.json records, among others, the
    XLA compilations of this process (the online update must compile exactly once)."""
    return train_seeds([cfg], None if run_dir is None else [run_dir])[0]


def train_seeds(cfgs: list[dict], run_dirs: list[Path] | None = None) -> list[Path]:
    """Run (or resume) runs that differ only in their seed in this process, their agents updated by
    one vmapped update (expo/seed_group.py); each writes its own run directory. Returns those."""
    compilation.enable_persistent_cache()
    with compilation.counting() as compiles:
        return _train(cfgs, run_dirs, compiles)


def group_configs(cfg: dict, overrides: dict) -> list[dict]:
    """The configs of the seeds_per_process seeds cfg["seed"], cfg["seed"] + 1, ... that one process
    trains together, each built from `overrides` as its own run would be."""
    return [cfg] + [config_lib.build_config({**overrides, "seed": cfg["seed"] + i})
                    for i in range(1, cfg["seeds_per_process"])]


def _check_group(cfgs: list[dict]) -> None:
    if not 1 <= len(cfgs) <= cfgs[0]["seeds_per_process"]:  # fewer: the rest of a grid's seeds
        raise ValueError(f"{len(cfgs)} configs for seeds_per_process={cfgs[0]['seeds_per_process']}")
    if any(config_without_seed(c) != config_without_seed(cfgs[0]) for c in cfgs[1:]):
        raise ValueError("runs trained in one process must differ only in their seed")
    if len({c["seed"] for c in cfgs}) != len(cfgs):
        raise ValueError(f"runs trained in one process need distinct seeds, got {[c['seed'] for c in cfgs]}")


def _make_lane(cfg: dict, run_dir: Path, spec, module, datasets: dict, keep: int) -> Lane:
    data_spec = dataclasses.replace(spec, dataset=cfg["dataset"]["name"])
    # Optional per-method batch fields (e.g. Cal-QL's Monte-Carlo returns): the module names them in
    # EXTRA_FIELDS {name: value until known}, computes them for the offline data (offline_extras)
    # and for each finished online episode (episode_extras).
    extra = dict(getattr(module, "EXTRA_FIELDS", {}))
    data_key = cfg["dataset"]["seed"]  # seeds of a group share the data when they share this
    if data_key not in datasets:
        data = load_task_dataset(data_spec, cfg["dataset"]["num_demos"], seed=cfg["dataset"]["seed"])
        if extra:
            data = {**data, **module.offline_extras(data, cfg["agent"])}
        datasets[data_key] = (data, buffers.TransitionStore(data, tuple(extra)))
    data, offline = datasets[data_key]
    warm_start_episodes = warm_start_episode_count(cfg, data)
    maker_kwargs = dataset_maker_kwargs(spec, data_spec.dataset)
    seed = cfg["seed"]
    # At most one environment per evaluation episode; in eval_workers processes when > 1.
    eval_envs = make_eval_envs(functools.partial(make_env, spec, seed + 1, **maker_kwargs),
                               min(cfg["eval_envs"], cfg["eval_episodes"]), cfg["eval_workers"])
    capacity = max(cfg["steps"] + warm_start_episodes * spec.horizon, 1)
    online = buffers.ReplayBuffer(spec.obs_dim, spec.act_dim, capacity=capacity, extra=extra)
    return Lane(cfg=cfg, run_dir=run_dir, offline=offline, env=make_env(spec, seed=seed, **maker_kwargs),
                eval_envs=eval_envs, online=online,
                writer=EpisodeWriter(online, spec, module, cfg["agent"]),
                rngs={"sampler": numpy_rng(seed, "sampler"),
                      "random_actions": numpy_rng(seed, "random_actions")},
                checkpointer=RunCheckpointer(run_dir, cfg, keep=keep),
                warm_start_episodes=warm_start_episodes)


class _AllDiverged(Exception):
    """Every seed this process trains has diverged: nothing is left to train."""


def _handle_earlier_divergence(cfgs: list[dict], run_dirs: list[Path]) -> None:
    """Runs whose status.json records a divergence: with the same settings they are refused unless
    retry_diverged=true (which resumes from the last checkpoint, always a finite one); with other
    settings (e.g. a corrected learning rate) they start again from the beginning."""
    refused = []
    for cfg, run_dir in zip(cfgs, run_dirs):
        previous = divergence.previous_divergence(run_dir, comparable_config(cfg))
        if previous is None:
            continue
        reason, same_settings = previous
        if not same_settings:
            print(f"{run_dir} diverged before with other settings ({reason}); starting it again from "
                  f"the beginning with these", file=sys.stderr)
            RunCheckpointer(run_dir, cfg).discard()
            (run_dir / "status.json").unlink(missing_ok=True)
        elif cfg["retry_diverged"]:
            print(f"retrying {run_dir}, which {reason}", file=sys.stderr)
        else:
            refused.append(f"{run_dir} {reason} before and is not run again with the same settings: "
                           f"change them, or pass retry_diverged=true to restart it from its last "
                           f"finite checkpoint")
    if refused:
        raise divergence.Diverged(refused)


def _position(loop: LoopState) -> str:
    return (f"pretraining step {loop.pretrain_steps_done}" if loop.phase == "pretrain"
            else f"online step {loop.online_step}")


def _train(cfgs: list[dict], run_dirs: list[Path] | None,
           compiles: compilation.Compilations) -> list[Path]:
    _check_group(cfgs)
    cfg = cfgs[0]  # what the seeds share
    spec = protocol.get_task(cfg["task"])
    module = config_lib.agent_module(cfg["method"])
    agent_cfg = cfg["agent"]
    group = SeedGroup(module, len(cfgs))
    run_dirs = [Path(d) for d in run_dirs] if run_dirs is not None else [run_dir_for(c) for c in cfgs]
    _handle_earlier_divergence(cfgs, run_dirs)
    datasets: dict = {}
    for run_dir in run_dirs:  # the first run of a machine may generate the embedded dataset here
        if run_dir.is_dir():  # a launched run's (its log is there); a run that fails on its data
            write_progress(run_dir, "data")  # must not create its directory
    # Seeds saved one after the other keep 2 checkpoints each (expo/checkpoint.py).
    keep = 1 if len(cfgs) == 1 else 2
    lanes = [_make_lane(c, d, spec, module, datasets, keep) for c, d in zip(cfgs, run_dirs)]
    agents = [config_lib.build_agent(module, lane.seed, spec.obs_dim, spec.act_dim, agent_cfg)
              for lane in lanes]

    # The group resumes from the newest checkpoint every seed has (seeds save one after the other).
    saved = [lane.checkpointer.steps() for lane in lanes]
    resume_step = min(s[-1] for s in saved) if all(saved) else None
    if resume_step is not None and not all(resume_step in s for s in saved):
        # Saves in order always leave a common step; never mix states or drop work silently.
        raise CheckpointError(
            f"the checkpoints of seeds {', '.join(str(lane.seed) for lane in lanes)} share no step "
            f"(steps {saved}); delete {', '.join(str(lane.checkpointer.directory) for lane in lanes)} "
            f"to restart these runs from the beginning")
    positions = [None] * len(lanes)
    for i, lane in enumerate(lanes):
        if resume_step is not None:
            agents[i], lane.loop, positions[i] = lane.checkpointer.restore(agents[i], lane.online,
                                                                          lane.rngs, resume_step)
            lane.loop.resumes += 1
            lane.last_checkpoint = _position(lane.loop)
            print(f"resuming {lane.run_dir} from its checkpoint at {lane.last_checkpoint}",
                  file=sys.stderr)
        else:
            lane.checkpointer.discard()  # what a first save cut short left behind
        (lane.run_dir / "status.json").unlink(missing_ok=True)  # the run is under way again
    agent = group.stack(agents)
    for lane, position in zip(lanes, positions):
        try:
            lane.logger = RunLogger(lane.run_dir, lane.cfg, position=position)
        except ValueError as e:  # CSV files that do not match the checkpoint
            raise lane.checkpointer.unreadable(e) from e
    loop = lanes[0].loop  # the positions every seed shares (phase, steps done, wall time)
    # Wall time continues from the checkpoint: work lost to an interruption is not counted.
    start_time = time.perf_counter() - loop.wall_time_s

    act_keys = [jax_key(lane.seed, "act") for lane in lanes]
    show = cfg["progress"]
    label = f"{cfg['method']} s{','.join(str(lane.seed) for lane in lanes)}"

    # The authors' evaluation policy where it differs from acting (e.g. RLPD's deterministic mean),
    # one key per evaluation environment.
    eval_policy = per_row_policy(getattr(module, "eval_actions", module.sample_actions))

    def diverge(lane: Lane, what: str, where: str) -> None:
        """Stop this seed (the others of its group go on): status.json says why; its checkpoint,
        finite by construction, stays for a retry. Raises _AllDiverged when no seed is left."""
        lane.diverged = f"diverged at {where}: {what}"
        record = divergence.status_record(lane.diverged, where, comparable_config(lane.cfg),
                                          lane.last_checkpoint)
        atomic_write_text(lane.run_dir / "status.json", json.dumps(record) + "\n")
        if len(lanes) > 1:  # the other seeds go on; a single run says it once, when it stops
            print(f"{lane.run_dir}: {lane.diverged}", file=sys.stderr)
        if all(other.diverged for other in lanes):
            raise _AllDiverged

    def check_finite(where: str, infos: list[dict] | None = None) -> None:
        """The first non-finite value of each live seed's train.csv row (infos), else of its
        parameters: a seed with one diverges here, before anything of it is written."""
        params = divergence.first_non_finite_parameters(agent, len(lanes))
        for i, lane in enumerate(lanes):
            what = (infos and divergence.first_non_finite(infos[i])) or params[i]
            if what and not lane.diverged:
                diverge(lane, what, where(lane) if callable(where) else where)

    def eval_rows(env_step: int) -> None:
        for i, lane in enumerate(lanes):
            if lane.diverged:
                continue
            write_progress(lane.run_dir, "evaluating", env_step=env_step)
            try:
                result = evaluate(lane.eval_envs, as_numpy_policy(eval_policy, group.lane(agent, i)),
                                  jax.random.fold_in(jax_key(lane.seed, "eval"), env_step),
                                  cfg["eval_episodes"], lane.seed, spec.metric)
            except divergence.NonFiniteAction as e:
                diverge(lane, str(e), f"the evaluation at env step {env_step}")
                continue
            row = {"env_step": env_step, **result,
                   "wall_time_s": round(time.perf_counter() - start_time, 1)}
            lane.logger.log_eval(row)
            lane.loop.last_eval = row

    def postfix() -> str:
        return " ".join("diverged" if lane.diverged else f"{lane.loop.last_eval['success']:.2f}"
                        for lane in lanes)

    def checkpoint(force: bool = False) -> None:
        if force or lanes[0].checkpointer.due():
            check_finite(lambda lane: _position(lane.loop))  # a checkpoint is always finite
            wall = time.perf_counter() - start_time
            for i, lane in enumerate(lanes):
                if lane.diverged:
                    continue
                lane.loop.wall_time_s = wall
                lane.checkpointer.save(group.lane(agent, i), lane.loop, lane.online, lane.rngs,
                                       lane.logger.position())
                lane.last_checkpoint = _position(lane.loop)

    try:
        # ---- offline imitation pretraining of the base policy (offline_to_online only)
        batch_size, chunk = agent_cfg["batch_size"], cfg["pretrain_chunk"]
        if loop.phase == "pretrain":
            with tqdm(total=cfg["pretrain_steps"], initial=loop.pretrain_steps_done, leave=False,
                      desc=f"{label} pretrain", disable=not show, file=sys.stderr) as bar:
                while loop.pretrain_steps_done < cfg["pretrain_steps"]:
                    done = loop.pretrain_steps_done
                    k = min(chunk, cfg["pretrain_steps"] - done)
                    batches = [buffers.sample_offline(lane.rngs["sampler"], lane.offline, k, batch_size)
                               for lane in lanes]
                    agent, info = group.pretrain_update(agent, batches)
                    done += k
                    bar.update(k)
                    log = done % cfg["log_interval"] < k or done == cfg["pretrain_steps"]
                    infos = group.infos(info) if log else [None] * len(lanes)
                    for lane in lanes:
                        lane.loop.pretrain_steps_done = done
                    if log:
                        check_finite(f"pretraining step {done}", infos)
                        for lane in lanes:
                            if not lane.diverged:
                                write_progress(lane.run_dir, "pretrain", done, cfg["pretrain_steps"])
                    for lane, lane_info in zip(lanes, infos):
                        if log and not lane.diverged:
                            lane.logger.log_train({"phase": "pretrain", "step": done, "env_step": 0,
                                                   **lane_info})
                    # Between jitted chunks the agent and the sampler's state are the whole state.
                    checkpoint(force=done == cfg["pretrain_steps"])

            eval_rows(0)
            for i, lane in enumerate(lanes):
                if lane.warm_start_episodes and not lane.diverged:
                    lane_agent = group.lane(agent, i)

                    def act(obs, key):
                        return np.asarray(module.sample_actions(lane_agent, obs[None], key)[0])

                    try:
                        env_steps, returns = warm_start(lane.env, lane.writer, act,
                                                        lane.warm_start_episodes, lane.seed)
                    except divergence.NonFiniteAction as e:
                        diverge(lane, str(e), "the warm start")
                        continue
                    lane.logger.log_train({"phase": "warm_start", "step": 0, "env_step": 0,
                                           "episodes": lane.warm_start_episodes,
                                           "warm_start_env_steps": env_steps,
                                           "train_return": float(np.mean(returns))})
            # Checkpointed only once the warm start is complete: an interrupted one is redone whole.
            for lane in lanes:
                lane.loop.phase = "online"
            if cfg["steps"]:
                checkpoint(force=True)

        # ---- online phase
        for lane in lanes:
            reset_seed = episode_seed(lane.seed, "train", lane.loop.episode)
            if lane.loop.episode_steps:  # resumed mid-episode
                lane.obs = replay_unfinished_episode(lane.env, lane.writer, lane.online, reset_seed,
                                                     lane.loop.episode_steps)
            else:
                lane.obs, _ = lane.env.reset(seed=reset_seed)
        with tqdm(total=cfg["steps"], initial=loop.online_step, desc=label,
                  disable=not show, file=sys.stderr) as bar:
            bar.set_postfix_str(f"success={postfix()}")
            for step in range(loop.online_step + 1, cfg["steps"] + 1):
                if step <= cfg["start_training"] and cfg["warmup_acts"] == "random":
                    actions = [lane.rngs["random_actions"].uniform(-1.0, 1.0, spec.act_dim).astype(np.float32)
                               for lane in lanes]
                else:
                    actions = group.act(agent, [lane.obs for lane in lanes], act_keys, step)
                for lane, action in zip(lanes, actions):
                    if lane.diverged:
                        continue
                    try:  # a non-finite action is never sent to the environment
                        divergence.check_actions(action, "action")
                    except divergence.NonFiniteAction as e:
                        diverge(lane, str(e), f"online step {step}")
                        continue
                    next_obs, reward, terminated, truncated, _ = lane.env.step(action)
                    lane.writer.add(lane.obs, action, reward, next_obs, terminated)
                    lane.loop.episode_steps += 1
                    if terminated or truncated:
                        lane.loop.ep_returns.append(lane.writer.end(terminated))
                        lane.loop.episode += 1
                        lane.loop.episode_steps = 0
                        lane.obs, _ = lane.env.reset(seed=episode_seed(lane.seed, "train", lane.loop.episode))
                    else:
                        lane.obs = next_obs

                if step >= cfg["start_training"]:
                    if cfg["keep_offline_data"]:
                        batches = [buffers.sample_symmetric(lane.rngs["sampler"], lane.offline, lane.online,
                                                            agent_cfg["utd"], batch_size) for lane in lanes]
                    else:
                        batches = [buffers.sample_online(lane.rngs["sampler"], lane.online, agent_cfg["utd"],
                                                         batch_size) for lane in lanes]
                    agent, info = group.update(agent, batches)
                    if step % cfg["log_interval"] == 0:
                        infos = group.infos(info)
                        check_finite(f"online step {step}", infos)
                        for lane, lane_info in zip(lanes, infos):
                            if lane.diverged:
                                continue
                            recent = lane.loop.ep_returns[-10:]
                            lane.logger.log_train({"phase": "online", "step": step, "env_step": step,
                                                   "episodes": lane.loop.episode,
                                                   "train_return": float(np.mean(recent)) if recent else 0.0,
                                                   **lane_info})
                if step % cfg["log_interval"] == 0:  # warm-up steps included
                    for lane in lanes:
                        if not lane.diverged:
                            write_progress(lane.run_dir, "online", step, cfg["steps"])
                if step % cfg["eval_interval"] == 0 or step == cfg["steps"]:
                    eval_rows(step)
                    bar.set_postfix_str(f"success={postfix()}")
                bar.update(1)
                for lane in lanes:
                    lane.loop.online_step = step
                if step < cfg["steps"]:
                    checkpoint()
    except _AllDiverged:  # every seed's status.json says why
        pass
    wall = round(time.perf_counter() - start_time, 1)
    finished = [lane for lane in lanes if not lane.diverged]
    for lane in finished:  # every seed's record first, then the checkpoints go
        atomic_write_text(lane.run_dir / "status.json",
                          json.dumps({"finished": True, "env_steps": cfg["steps"], "wall_time_s": wall,
                                      "resumes": lane.loop.resumes, "seeds_in_process": len(lanes),
                                      "compilations": compiles.summary()}) + "\n")
    for lane in finished:
        lane.checkpointer.discard()  # status.json is the record of a finished run; results stay small
        (lane.run_dir / PROGRESS_FILE).unlink(missing_ok=True)
    for lane in lanes:
        lane.eval_envs.close()
    if len(finished) < len(lanes):  # a diverged seed keeps its last (finite) checkpoint for a retry
        raise divergence.Diverged([f"{lane.run_dir} {lane.diverged}" for lane in lanes if lane.diverged])
    return [lane.run_dir for lane in lanes]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    try:
        overrides = config_lib.parse_overrides(argv)
        cfg = config_lib.build_config(overrides)
    except (config_lib.ConfigError, KeyError) as e:
        sys.exit(f"error: {e.args[0] if e.args else e}")
    from expo.envs.mimicgen import MimicGenUnavailable

    try:
        run_dirs = train_seeds(group_configs(cfg, overrides))
    # One line naming the fix (a diverged run: one line per seed that diverged).
    except (DatasetError, MimicGenUnavailable, CheckpointError, divergence.Diverged) as e:
        sys.exit(f"error: {' '.join(str(e).split())}")
    for run_dir in run_dirs:
        print(f"wrote {run_dir}")


if __name__ == "__main__":
    main()
