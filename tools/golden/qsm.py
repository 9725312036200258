"""Golden cases for QSM from the authors' JAX code (Alescontrela/score_matching_rl, jaxrl5).

    .venv/bin/python tools/golden/qsm.py --repo /tmp/ref/score_matching_rl

Runs on the suite's venv (jax/flax as pinned there). Two import shims, neither touching the
authors' functions: `gym` is aliased to gymnasium (jaxrl5 uses gym.spaces.Box and
gym.utils.seeding only at import or create time), and the packages jaxrl5.agents / jaxrl5.data are
registered without running their __init__ files (those import every other learner and the replay
buffers, with dependencies this task does not need).

Cases (tests/test_golden_qsm.py runs the suite's functions on the same inputs):
- schedules: jaxrl5.networks.diffusion vp_beta_schedule (QSM's default) and cosine_beta_schedule
  for T = 5, with ScoreMatchingLearner.create's alphas and alpha_hats.
- actor_loss: ScoreMatchingLearner.update_actor with M_q = 50 at fixed parameters (critic hidden
  16x2, actor hidden 16x2, time_dim 8): the sampled t and a_t are recorded from the score model's
  call, the noise is recovered from a_t; outputs are the metrics update_actor returns (the loss,
  and mean/std/min/max/|max| of eps_theta and of the mean critic action gradient).
- td_target: ScoreMatchingLearner.update_q: the next actions (diffusion sample + 0.1 noise) and
  both target heads' outputs are recorded from the target critics' calls; y = r + gamma * mask *
  min(Q1', Q2') is checked against the target_q metrics; also the critics after the one Adam
  step and the Polyak-averaged targets.
"""
from __future__ import annotations

import argparse
import inspect
import sys
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import goldens  # noqa: E402

REPOSITORY = "https://github.com/Alescontrela/score_matching_rl"
PINNED = "2e77893"
OBS, ACT, B, T = 4, 2, 5, 5


def import_authors(repo: Path):
    import gymnasium
    import gymnasium.spaces
    import gymnasium.utils.seeding
    sys.modules.update({"gym": gymnasium, "gym.spaces": gymnasium.spaces,
                        "gym.utils": gymnasium.utils, "gym.utils.seeding": gymnasium.utils.seeding})
    sys.path.insert(0, str(repo))
    for sub in ("agents", "data"):
        pkg = types.ModuleType(f"jaxrl5.{sub}")
        pkg.__path__ = [str(repo / "jaxrl5" / sub)]
        sys.modules[f"jaxrl5.{sub}"] = pkg
    from jaxrl5.agents.score_matching.score_matching_learner import ScoreMatchingLearner
    return ScoreMatchingLearner


def where(obj, repo: Path) -> str:
    obj = inspect.unwrap(obj)
    path = Path(inspect.getsourcefile(obj)).resolve().relative_to(repo.resolve())
    return f"{path}:{inspect.getsourcelines(obj)[1]}"


def make_agent(Learner):
    import gymnasium
    obs_space = gymnasium.spaces.Box(-1, 1, (OBS,), np.float32)
    act_space = gymnasium.spaces.Box(-1, 1, (ACT,), np.float32)
    return Learner.create(0, obs_space, act_space, critic_hidden_dims=(16, 16),
                          actor_hidden_dims=(16, 16), time_dim=8, T=T, M_q=50.0)


def make_batch():
    rng = np.random.default_rng(0)
    return {"observations": rng.uniform(-1, 1, (B, OBS)).astype(np.float32),
            "actions": rng.uniform(-0.9, 0.9, (B, ACT)).astype(np.float32),
            "rewards": rng.normal(size=B).astype(np.float32),
            "masks": np.array([1, 1, 0, 1, 1], np.float32),
            "next_observations": rng.uniform(-1, 1, (B, OBS)).astype(np.float32)}


def case_schedules(Learner, repo, commit):
    import jax.numpy as jnp
    from jaxrl5.networks import diffusion as d
    agent = make_agent(Learner)  # vp (create's default beta_schedule)
    arrays = {"vp_betas": np.asarray(d.vp_beta_schedule(T), np.float32),
              "vp_alphas": np.asarray(agent.alphas), "vp_alpha_hats": np.asarray(agent.alpha_hats),
              "cosine_betas": np.asarray(d.cosine_beta_schedule(T))}
    arrays["cosine_alpha_hats"] = np.asarray(  # create()'s alpha_hat rule on the cosine betas
        jnp.array([jnp.prod((1 - arrays["cosine_betas"])[:i + 1]) for i in range(T)]))
    goldens.write_case(
        "qsm", "schedules", arrays, repository=REPOSITORY, commit=commit,
        functions=[where(d.vp_beta_schedule, repo), where(d.cosine_beta_schedule, repo),
                   where(Learner.create, repo)],
        source=goldens.FROM_CHECKOUT + ": jaxrl5.networks.diffusion schedules, "
               "ScoreMatchingLearner.create alphas / alpha_hats",
        rtol=1e-5, atol=1e-7, notes="T = 5")


def case_actor_loss(Learner, repo, commit):
    import jax
    agent = make_agent(Learner)
    batch = make_batch()
    seen = []
    apply = agent.score_model.apply_fn

    def recording_apply(variables, observations, actions, time, **kw):
        seen.append((np.asarray(observations), np.asarray(actions), np.asarray(time)))
        return apply(variables, observations, actions, time, **kw)

    agent = agent.replace(score_model=agent.score_model.replace(apply_fn=recording_apply),
                          rng=jax.random.PRNGKey(7))
    _, metrics = agent.update_actor(batch)
    assert len(seen) == 1
    _, a_t, t = seen[0]
    abar = np.asarray(agent.alpha_hats)[t[:, 0]][:, None]
    noise = (a_t - np.sqrt(abar) * batch["actions"]) / np.sqrt(1 - abar)
    assert len(set(t[:, 0])) > 2, t  # several diffusion steps in the batch
    arrays = {**batch, "t": t[:, 0], "noisy_actions": a_t, "noise": noise.astype(np.float32),
              **{k: np.asarray(v) for k, v in metrics.items()},
              **goldens.flatten(agent.score_model.params, "actor"),
              **goldens.flatten(agent.critic_1.params, "critic_1"), **goldens.flatten(agent.critic_2.params, "critic_2")}
    goldens.write_case(
        "qsm", "actor_loss", arrays, repository=REPOSITORY, commit=commit,
        functions=[where(Learner.update_actor, repo), where(Learner.create, repo)],
        source=goldens.FROM_CHECKOUT + ": ScoreMatchingLearner.update_actor (M_q 50), metrics",
        rtol=2e-5, atol=1e-5,
        notes=("the loss is ~ (M |grad Q|)^2 with M = 50: rtol 2e-5; noise recovered from the "
               "recorded a_t as (a_t - sqrt(abar_t) a) / sqrt(1 - abar_t), so a_t is rebuilt to "
               "~1e-7; parameters flattened as <net>/<module path>/<leaf>"))


def case_td_target(Learner, repo, commit):
    import jax
    agent = make_agent(Learner)
    batch = make_batch()
    # targets that differ from the online critics, so the test sees which ones are used
    shift = lambda p, c: jax.tree_util.tree_map(lambda x: x + c, p)  # noqa: E731
    seen = {}

    def recording(name, apply):
        def f(variables, observations, actions, *args, **kw):
            out = apply(variables, observations, actions, *args, **kw)
            seen[name] = (np.asarray(observations), np.asarray(actions), np.asarray(out))
            return out
        return f

    agent = agent.replace(
        rng=jax.random.PRNGKey(3),
        target_critic_1=agent.target_critic_1.replace(
            apply_fn=recording("q1", agent.target_critic_1.apply_fn),
            params=shift(agent.target_critic_1.params, 0.05)),
        target_critic_2=agent.target_critic_2.replace(
            apply_fn=recording("q2", agent.target_critic_2.apply_fn),
            params=shift(agent.target_critic_2.params, -0.05)))
    new, metrics = agent.update_q(batch)
    next_actions = seen["q1"][1]
    assert np.array_equal(next_actions, seen["q2"][1])
    y = batch["rewards"] + 0.99 * batch["masks"] * np.minimum(seen["q1"][2], seen["q2"][2])
    for stat in ("mean", "min", "max"):
        assert np.isclose(getattr(y, stat)(), float(metrics[f"target_q_{stat}"]), rtol=1e-6), stat
    arrays = {**batch, "next_actions": next_actions, "target_q": y.astype(np.float32),
              "next_q_1": seen["q1"][2], "next_q_2": seen["q2"][2],
              **{k: np.asarray(v) for k, v in metrics.items()}}
    for name, state in (("critic_1", agent.critic_1), ("critic_2", agent.critic_2),
                        ("target_1", agent.target_critic_1), ("target_2", agent.target_critic_2),
                        ("new_critic_1", new.critic_1), ("new_critic_2", new.critic_2),
                        ("new_target_1", new.target_critic_1), ("new_target_2", new.target_critic_2)):
        arrays.update(goldens.flatten(state.params, name))
    goldens.write_case(
        "qsm", "td_target", arrays, repository=REPOSITORY, commit=commit,
        functions=[where(Learner.update_q, repo)],
        source=goldens.FROM_CHECKOUT + ": ScoreMatchingLearner.update_q; next actions and target "
               "heads recorded from the target critics' calls",
        rtol=1e-5, atol=1e-6,
        notes=("target_q = r + 0.99 mask min(next_q_1, next_q_2) from the recorded head outputs, "
               "checked against update_q's target_q metrics; target params = online + 0.05 (head 1) "
               "and - 0.05 (head 2); new_* = after the one Adam(3e-4) step and Polyak 0.005"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", required=True, help="checkout of Alescontrela/score_matching_rl")
    repo = Path(parser.parse_args().repo)
    commit = goldens.require_commit(repo, PINNED)
    Learner = import_authors(repo)
    case_schedules(Learner, repo, commit)
    case_actor_loss(Learner, repo, commit)
    case_td_target(Learner, repo, commit)
    print("wrote", sorted(p.name for p in (goldens.GOLDEN_ROOT / "qsm").glob("*.json")))


if __name__ == "__main__":
    main()
