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
one. The checkpoint is deleted when the run finishes; status.json records the finished run (and
how often it was resumed), and run_dir/policy/ keeps its final agent's parameters for `python -m expo.evaluate <run_dir>` (expo/policy_store.py).

A run whose losses, parameters or actions stop being finite stops within log_interval steps
(expo/divergence.py): no non-finite action reaches an env, no non-finite row a CSV, no non-finite
parameter a checkpoint; status.json records `diverged` and the reason, and train raises Diverged
(one line per diverged seed; the other seeds of a group finish).

seeds_per_process=k trains seeds seed, ..., seed + k - 1 in this process (expo/seed_group.py): one
vmapped update for the k agents, each seed with its own envs, buffers, CSVs and checkpoints.

The run reads as its phases (train_seeds): `prepare` (configs, data, one Lane per seed, resume),
then `pretrain`, the evaluation at step 0, `warm_start`, `begin_online`, `online` (acting, env
steps, updates, evaluations, checkpoints) and `finish`; GroupRun holds what they share and the
per-seed bookkeeping (a seed that diverges stops while its group goes on). A lane's episodes in its
environment live in expo/episodes.py.

Usage: python -m expo.train task=lift method=expo seed=0 scale=mini [key=value ...]
"""
from __future__ import annotations

import dataclasses
import functools
import json
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tqdm import tqdm

from expo import buffers, compilation, config as config_lib, device, divergence, protocol
from expo.checkpoint import (CheckpointError, LoopState, RunCheckpointer, comparable_config,
                             config_without_seed)
from expo.data import DatasetError, get_dataset, load_task_dataset
from expo.env_pool import make_eval_envs
from expo.envs import dataset_maker_kwargs, make_env
from expo.episodes import EpisodeWriter, replay_unfinished_episode, warm_start, warm_start_episode_count
from expo.evaluate import as_numpy_policy, evaluate, per_row_policy
from expo.logger import PROGRESS_FILE, RunLogger, atomic_write_text, run_dir_for, write_progress
from expo.policy_store import discard_policy, policy_fields, save_policy
from expo.seed_group import SeedGroup
from expo.seeding import episode_seed, jax_key, numpy_rng
from expo.walltime import WallClock


def train(cfg: dict, run_dir: Path | None = None) -> Path:
    """Run (or resume) one run; returns its run directory. status.json records, among others, the
    XLA compilations of this process (the online update must compile exactly once)."""
    return train_seeds([cfg], None if run_dir is None else [run_dir])[0]


def train_seeds(cfgs: list[dict], run_dirs: list[Path] | None = None) -> list[Path]:
    """Run (or resume) runs that differ only in their seed in this process, their agents updated by
    one vmapped update (expo/seed_group.py); each writes its own run directory. Returns those."""
    compilation.enable_persistent_cache()
    with compilation.counting() as compiles:
        run = prepare(cfgs, run_dirs)
        try:
            if run.loop.phase == "pretrain":  # a run resumed online skips what it has done
                run.pretrain()
                run.evaluate(0)
                run.warm_start()
                run.begin_online()
            run.online()
        except _AllDiverged:  # every seed's status.json says why
            pass
        return run.finish(compiles)


def group_configs(cfg: dict, overrides: dict) -> list[dict]:
    """The configs of the seeds_per_process seeds cfg["seed"], cfg["seed"] + 1, ... that one process
    trains together, each built from `overrides` as its own run would be."""
    return [cfg] + [config_lib.build_config({**overrides, "seed": cfg["seed"] + i})
                    for i in range(1, cfg["seeds_per_process"])]


# ---------------------------------------------------------------------------------------------------
# prepare: configs, data, one lane per seed, resume


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
    data_fingerprint: str | None = None  # sha256 of the offline transitions it trains on

    @property
    def seed(self) -> int:
        return self.cfg["seed"]


def prepare(cfgs: list[dict], run_dirs: list[Path] | None) -> GroupRun:
    """Check the group, refuse or restart runs that diverged before, load the data, build one lane
    and one agent per seed, restore them from a checkpoint when there is one, and open the CSVs."""
    clock = WallClock()  # where the wall time goes (expo/walltime.py): all of prepare is "data"
    device.require(cfgs[0]["device"])  # first, before any work: device=gpu stops here if JAX sees none
    _check_group(cfgs)
    cfg = cfgs[0]  # what the seeds share
    spec = protocol.get_task(cfg["task"])
    module = config_lib.agent_module(cfg["method"])
    run_dirs = [Path(d) for d in run_dirs] if run_dirs is not None else [run_dir_for(c) for c in cfgs]
    _handle_earlier_divergence(cfgs, run_dirs)
    for run_dir in run_dirs:  # the first run of a machine may generate the embedded dataset here
        if run_dir.is_dir():  # a launched run's (its log is there); a run that fails on its data
            write_progress(run_dir, "data")  # must not create its directory
    # Seeds saved one after the other keep 2 checkpoints each (expo/checkpoint.py).
    keep = 1 if len(cfgs) == 1 else 2
    datasets: dict = {}
    lanes = [_make_lane(c, d, spec, module, datasets, keep) for c, d in zip(cfgs, run_dirs)]
    agents = [config_lib.build_agent(module, lane.seed, spec.obs_dim, spec.act_dim, cfg["agent"])
              for lane in lanes]
    agents, positions = _resume(lanes, agents)
    group = SeedGroup(module, len(cfgs))
    agent = group.stack(agents)
    for lane, position in zip(lanes, positions):
        try:
            lane.logger = RunLogger(lane.run_dir, lane.cfg, position=position)
        except ValueError as e:  # CSV files that do not match the checkpoint
            raise lane.checkpointer.unreadable(e) from e
    # Wall time continues from the checkpoint: work lost to an interruption is not counted.
    start_time = time.perf_counter() - lanes[0].loop.wall_time_s
    clock.seconds["data"] += time.perf_counter() - clock.start
    return GroupRun(cfg=cfg, spec=spec, module=module, group=group, lanes=lanes, agent=agent,
                    start_time=start_time, clock=clock)


def _check_group(cfgs: list[dict]) -> None:
    if not 1 <= len(cfgs) <= cfgs[0]["seeds_per_process"]:  # fewer: the rest of a grid's seeds
        raise ValueError(f"{len(cfgs)} configs for seeds_per_process={cfgs[0]['seeds_per_process']}")
    if any(config_without_seed(c) != config_without_seed(cfgs[0]) for c in cfgs[1:]):
        raise ValueError("runs trained in one process must differ only in their seed")
    if len({c["seed"] for c in cfgs}) != len(cfgs):
        raise ValueError(f"runs trained in one process need distinct seeds, got {[c['seed'] for c in cfgs]}")


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
        offline = buffers.TransitionStore(data, tuple(extra))
        # Once per loaded dataset: the transitions as the buffer holds them (float32), without the
        # method's extra fields (derived from them and the config); status.json records it.
        datasets[data_key] = (data, offline, device.fingerprint({f: offline.data[f] for f in buffers.FIELDS}))
    data, offline, data_fingerprint = datasets[data_key]
    warm_start_episodes = warm_start_episode_count(cfg, data)
    maker_kwargs = dataset_maker_kwargs(spec, get_dataset(data_spec.dataset))
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
                warm_start_episodes=warm_start_episodes, data_fingerprint=data_fingerprint)


def _resume(lanes: list[Lane], agents: list) -> tuple[list, list]:
    """Restore every lane from the newest checkpoint all seeds have (seeds save one after the
    other), or clear what a first save cut short. Returns the agents and each lane's CSV positions
    (None when starting afresh)."""
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
        discard_policy(lane.run_dir)  # a policy belongs to the finished run status.json records
    return agents, positions


def _position(loop: LoopState) -> str:
    return (f"pretraining step {loop.pretrain_steps_done}" if loop.phase == "pretrain"
            else f"online step {loop.online_step}")


class _AllDiverged(Exception):
    """Every seed this process trains has diverged: nothing is left to train."""


# ---------------------------------------------------------------------------------------------------
# the phases


@dataclasses.dataclass
class GroupRun:
    """The runs of one process (one seed, or a seed group) between its phases: what the seeds share
    (config, task, agent module, the stacked agent, the clock) and one Lane per seed. Each phase is
    a method; train_seeds calls them in order."""
    cfg: dict
    spec: protocol.TaskSpec
    module: Any
    group: SeedGroup
    lanes: list[Lane]
    agent: Any          # the seeds' agents, stacked (expo/seed_group.py)
    start_time: float   # perf_counter() at the run's start, less the wall time of resumed work
    clock: WallClock    # seconds per part of this process (status.json "wall_seconds")

    def __post_init__(self):
        self.act_keys = [jax_key(lane.seed, "act") for lane in self.lanes]
        # The authors' evaluation policy where it differs from acting (e.g. RLPD's deterministic
        # mean), one key per evaluation environment.
        self.eval_policy = per_row_policy(getattr(self.module, "eval_actions", self.module.sample_actions))
        self.label = f"{self.cfg['method']} s{','.join(str(lane.seed) for lane in self.lanes)}"

    @property
    def loop(self) -> LoopState:
        """The positions every seed shares (phase, steps done, wall time)."""
        return self.lanes[0].loop

    def _progress_bar(self, total: int, initial: int, desc: str, **kwargs) -> tqdm:
        return tqdm(total=total, initial=initial, desc=desc, disable=not self.cfg["progress"],
                    file=sys.stderr, **kwargs)

    def pretrain(self) -> None:
        """Offline imitation pretraining of the base policy in jitted chunks of pretrain_chunk
        steps (offline_to_online only: pretrain_steps is 0 otherwise)."""
        cfg, lanes, total = self.cfg, self.lanes, self.cfg["pretrain_steps"]
        batch_size = cfg["agent"]["batch_size"]
        with self.clock.part("pretraining"), self._progress_bar(
                total, self.loop.pretrain_steps_done, f"{self.label} pretrain", leave=False) as bar:
            while self.loop.pretrain_steps_done < total:
                done = self.loop.pretrain_steps_done
                k = min(cfg["pretrain_chunk"], total - done)
                batches = [buffers.sample_offline(lane.rngs["sampler"], lane.offline, k, batch_size)
                           for lane in lanes]
                self.agent, info = self.group.pretrain_update(self.agent, batches)
                done += k
                bar.update(k)
                log = done % cfg["log_interval"] < k or done == total
                infos = self.group.infos(info) if log else [None] * len(lanes)
                for lane in lanes:
                    lane.loop.pretrain_steps_done = done
                if log:
                    self.check_finite(f"pretraining step {done}", infos)
                    with self.clock.part("logging"):
                        for lane in self.live():
                            write_progress(lane.run_dir, "pretrain", done, total)
                        for lane, lane_info in zip(lanes, infos):
                            if not lane.diverged:
                                lane.logger.log_train({"phase": "pretrain", "step": done, "env_step": 0,
                                                       **lane_info})
                # Between jitted chunks the agent and the sampler's state are the whole state.
                self.checkpoint(force=done == total)

    def warm_start(self) -> None:
        """keep_offline_data=false (Fig. 8): each seed's acting policy fills its online buffer with
        warm_start_episodes episodes before online step 1, without updates (train.csv: one row of
        phase "warm_start"; these env steps are not counted in env_step)."""
        with self.clock.part("simulator"):  # the warm start's acting and env steps
            for i, lane in enumerate(self.lanes):
                if lane.warm_start_episodes and not lane.diverged:
                    self._warm_start_lane(i, lane)

    def _warm_start_lane(self, i: int, lane: Lane) -> None:
        lane_agent = self.group.lane(self.agent, i)

        def act(obs, key):
            return np.asarray(self.module.sample_actions(lane_agent, obs[None], key)[0])

        try:
            env_steps, returns = warm_start(lane.env, lane.writer, act, lane.warm_start_episodes, lane.seed)
        except divergence.NonFiniteAction as e:
            self.diverge(lane, str(e), "the warm start")
            return
        lane.logger.log_train({"phase": "warm_start", "step": 0, "env_step": 0,
                               "episodes": lane.warm_start_episodes,
                               "warm_start_env_steps": env_steps,
                               "train_return": float(np.mean(returns))})

    def begin_online(self) -> None:
        """Checkpointed only once the warm start is complete: an interrupted one is redone whole."""
        for lane in self.lanes:
            lane.loop.phase = "online"
        if self.cfg["steps"]:
            self.checkpoint(force=True)

    def online(self) -> None:
        """Online steps loop.online_step + 1 ... steps: act, step each seed's env, update (from
        start_training on), log, evaluate every eval_interval steps and at the end, checkpoint."""
        cfg = self.cfg
        self._reset_training_envs()
        with self._progress_bar(cfg["steps"], self.loop.online_step, self.label) as bar:
            bar.set_postfix_str(f"success={self._successes()}")
            for step in range(self.loop.online_step + 1, cfg["steps"] + 1):
                with self.clock.part("acting"):
                    actions = self._actions(step)
                with self.clock.part("simulator"):
                    self._step_envs(step, actions)
                if step >= cfg["start_training"]:
                    with self.clock.part("updates"):
                        self._update(step)
                if step % cfg["log_interval"] == 0:  # warm-up steps included
                    with self.clock.part("logging"):
                        for lane in self.live():
                            write_progress(lane.run_dir, "online", step, cfg["steps"])
                if step % cfg["eval_interval"] == 0 or step == cfg["steps"]:
                    self.evaluate(step)
                    bar.set_postfix_str(f"success={self._successes()}")
                with self.clock.part("logging"):
                    bar.update(1)
                for lane in self.lanes:
                    lane.loop.online_step = step
                if step < cfg["steps"]:
                    self.checkpoint()

    def _reset_training_envs(self) -> None:
        """Each seed's training env at the start of its current episode, or, resumed mid-episode,
        replayed to where the checkpoint left it."""
        for lane in self.lanes:
            reset_seed = episode_seed(lane.seed, "train", lane.loop.episode)
            if lane.loop.episode_steps:
                lane.obs = replay_unfinished_episode(lane.env, lane.writer, lane.online, reset_seed,
                                                     lane.loop.episode_steps)
            else:
                lane.obs, _ = lane.env.reset(seed=reset_seed)

    def _actions(self, step: int) -> list:
        """Every seed's action at this step: uniform random during a random warm-up (until
        start_training), else one acting call for the whole group."""
        if step <= self.cfg["start_training"] and self.cfg["warmup_acts"] == "random":
            return [lane.rngs["random_actions"].uniform(-1.0, 1.0, self.spec.act_dim).astype(np.float32)
                    for lane in self.lanes]
        return self.group.act(self.agent, [lane.obs for lane in self.lanes], self.act_keys, step)

    def _step_envs(self, step: int, actions: list) -> None:
        """One env step per live seed into its online buffer; a non-finite action is never sent to
        the environment (the seed diverges instead)."""
        for lane, action in zip(self.lanes, actions):
            if lane.diverged:
                continue
            try:
                divergence.check_actions(action, "action")
            except divergence.NonFiniteAction as e:
                self.diverge(lane, str(e), f"online step {step}")
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

    def _update(self, step: int) -> None:
        """One update of the group (utd minibatches each, from the data mix of keep_offline_data);
        its info reaches the host only on logging steps."""
        utd, batch_size = self.cfg["agent"]["utd"], self.cfg["agent"]["batch_size"]
        if self.cfg["keep_offline_data"]:
            batches = [buffers.sample_symmetric(lane.rngs["sampler"], lane.offline, lane.online, utd,
                                                batch_size) for lane in self.lanes]
        else:
            batches = [buffers.sample_online(lane.rngs["sampler"], lane.online, utd, batch_size)
                       for lane in self.lanes]
        self.agent, info = self.group.update(self.agent, batches)
        # Waited for here (the next acting call would wait anyway), so that the update's compute is
        # billed to "updates" and not to the next action (expo/walltime.py); changes no number.
        jax.block_until_ready(self.agent)
        if step % self.cfg["log_interval"]:
            return
        infos = self.group.infos(info)
        self.check_finite(f"online step {step}", infos)
        with self.clock.part("logging"):
            self._log_online(step, infos)

    def _log_online(self, step: int, infos: list[dict]) -> None:
        for lane, lane_info in zip(self.lanes, infos):
            if lane.diverged:
                continue
            recent = lane.loop.ep_returns[-10:]
            lane.logger.log_train({"phase": "online", "step": step, "env_step": step,
                                   "episodes": lane.loop.episode,
                                   "train_return": float(np.mean(recent)) if recent else 0.0,
                                   **lane_info})

    def evaluate(self, env_step: int) -> None:
        """One eval.csv row per live seed: eval_episodes episodes of the evaluation policy."""
        with self.clock.part("evaluation"):
            for i, lane in enumerate(self.lanes):
                if not lane.diverged:
                    self._evaluate_lane(i, lane, env_step)

    def _evaluate_lane(self, i: int, lane: Lane, env_step: int) -> None:
        write_progress(lane.run_dir, "evaluating", env_step=env_step)
        try:
            result = evaluate(lane.eval_envs, as_numpy_policy(self.eval_policy, self.group.lane(self.agent, i)),
                              jax.random.fold_in(jax_key(lane.seed, "eval"), env_step),
                              self.cfg["eval_episodes"], lane.seed, self.spec.metric)
        except divergence.NonFiniteAction as e:
            self.diverge(lane, str(e), f"the evaluation at env step {env_step}")
            return
        row = {"env_step": env_step, **result, "wall_time_s": round(time.perf_counter() - self.start_time, 1)}
        lane.logger.log_eval(row)
        lane.loop.last_eval = row

    def _successes(self) -> str:
        return " ".join("diverged" if lane.diverged else f"{lane.loop.last_eval['success']:.2f}"
                        for lane in self.lanes)

    def checkpoint(self, force: bool = False) -> None:
        """Every live seed's state, when checkpoint_interval_s has passed (or forced); a checkpoint
        is always finite."""
        if not (force or self.lanes[0].checkpointer.due()):
            return
        with self.clock.part("checkpoints"):
            self._save_checkpoints()

    def _save_checkpoints(self) -> None:
        self.check_finite(lambda lane: _position(lane.loop))
        wall = time.perf_counter() - self.start_time
        for i, lane in enumerate(self.lanes):
            if lane.diverged:
                continue
            lane.loop.wall_time_s = wall
            lane.checkpointer.save(self.group.lane(self.agent, i), lane.loop, lane.online, lane.rngs,
                                   lane.logger.position())
            lane.last_checkpoint = _position(lane.loop)

    def finish(self, compiles: compilation.Compilations) -> list[Path]:
        """The final policy (run_dir/policy/) and status.json of every finished seed, then its
        checkpoint and progress file go; a diverged seed keeps its last (finite) checkpoint for a
        retry, and Diverged names each one."""
        wall = round(time.perf_counter() - self.start_time, 1)
        finished = list(self.live())
        # The agent of the run's last evaluation, before status.json calls the run finished (a run
        # killed in between resumes from its checkpoint and saves it again); adds files only.
        for i, lane in enumerate(self.lanes):
            if not lane.diverged:
                save_policy(lane.run_dir, self.group.lane(self.agent, i),
                            {"method": self.cfg["method"], "task": self.cfg["task"], "seed": lane.seed,
                             "env_step": (lane.loop.last_eval or {}).get("env_step")},
                            policy_fields(self.module))
        # Where the run finished and on what data: in status.json, never in config.json, whose
        # settings a relaunch compares (a resumed run may finish on another machine, with the
        # same results up to that machine's rounding); the loader and REPORT.md read it.
        where = device.describe()
        wall_seconds = self.clock.breakdown()  # this process's (expo/walltime.py)
        for lane in finished:  # every seed's record first, then the checkpoints go
            atomic_write_text(lane.run_dir / "status.json",
                              json.dumps({"finished": True, "env_steps": self.cfg["steps"], "wall_time_s": wall,
                                          "resumes": lane.loop.resumes, "seeds_in_process": len(self.lanes),
                                          "compilations": compiles.summary(), "device": where,
                                          "dataset_sha256": lane.data_fingerprint,
                                          "wall_seconds": wall_seconds}) + "\n")
        for lane in finished:
            lane.checkpointer.discard()  # status.json is the record of a finished run; results stay small
            (lane.run_dir / PROGRESS_FILE).unlink(missing_ok=True)
        for lane in self.lanes:
            lane.eval_envs.close()
        if len(finished) < len(self.lanes):
            raise divergence.Diverged([f"{lane.run_dir} {lane.diverged}" for lane in self.lanes if lane.diverged])
        return [lane.run_dir for lane in self.lanes]

    # ---- per-seed bookkeeping: a seed that diverges stops; the others of its group go on

    def live(self):
        """The seeds that have not diverged."""
        return (lane for lane in self.lanes if not lane.diverged)

    def diverge(self, lane: Lane, what: str, where: str) -> None:
        """Stop this seed: status.json says why; its checkpoint, finite by construction, stays for a
        retry. Raises _AllDiverged when no seed is left."""
        lane.diverged = f"diverged at {where}: {what}"
        record = {**divergence.status_record(lane.diverged, where, comparable_config(lane.cfg),
                                             lane.last_checkpoint),
                  "device": device.describe(), "dataset_sha256": lane.data_fingerprint}
        atomic_write_text(lane.run_dir / "status.json", json.dumps(record) + "\n")
        if len(self.lanes) > 1:  # the other seeds go on; a single run says it once, when it stops
            print(f"{lane.run_dir}: {lane.diverged}", file=sys.stderr)
        if all(other.diverged for other in self.lanes):
            raise _AllDiverged

    def check_finite(self, where, infos: list[dict] | None = None) -> None:
        """The first non-finite value of each live seed's train.csv row (infos), else of its
        parameters: a seed with one diverges here, before anything of it is written. `where` is a
        position, or a function of the lane giving one."""
        params = divergence.first_non_finite_parameters(self.agent, len(self.lanes))
        for i, lane in enumerate(self.lanes):
            what = (infos and divergence.first_non_finite(infos[i])) or params[i]
            if what and not lane.diverged:
                self.diverge(lane, what, where(lane) if callable(where) else where)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    from expo import config_help
    from expo.logger import resolve_results_dir

    try:
        if config_help.wants_help(argv):  # every key, its default, type and description
            print(config_help.train_help(config_help.method_of(argv)))
            return
        overrides = config_lib.parse_overrides(argv)
        # the default is the checkout's results/, a relative results_dir= the working directory's
        overrides["results_dir"] = resolve_results_dir(overrides)
        cfg = config_lib.build_config(overrides)
    except (config_lib.ConfigError, KeyError) as e:
        sys.exit(f"error: {e.args[0] if e.args else e}")
    from expo.envs.mimicgen import MimicGenUnavailable

    try:
        run_dirs = train_seeds(group_configs(cfg, overrides))
    # One line naming the fix (a diverged run: one line per seed that diverged).
    except (DatasetError, MimicGenUnavailable, CheckpointError, divergence.Diverged,
            device.DeviceUnavailable) as e:
        sys.exit(f"error: {' '.join(str(e).split())}")
    for run_dir in run_dirs:
        print(f"wrote {run_dir}")


if __name__ == "__main__":
    main()
