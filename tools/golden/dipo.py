"""Golden cases for DIPO from the authors' PyTorch code (BellmanTimeHut/DIPO).

Run with a Python that has torch and numpy (NOT the suite's venv; this script imports neither jax
nor the suite), e.g.

    python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch numpy
    /tmp/torchvenv/bin/python tools/golden/dipo.py --repo /tmp/ref/DIPO

Cases (tests/test_golden_dipo.py runs the suite's functions on the same inputs):
- cosine_schedule: agent/helpers.py cosine_beta_schedule and the alphas_cumprod Diffusion builds
  from it, for T = 100 (the paper's) and T = 5.
- action_gradient: DiPo.action_gradient (Adam lr 0.03, eps 1e-5, grad-norm clip 0.1 * |A| on
  sum_b -min(Q1, Q2), clamp to [-1, 1]) for 6 steps with the authors' Critic (hidden 16) at fixed
  weights, from stored actions some of which sit near the box edge; the clip is active.
- noise_network: agent/model.py Model (sinusoidal time features -> MLP, trunk over [x, t, s])
  at hidden 16, time_dim 8, on fixed inputs.
- posterior_sampler: Diffusion.sample (p_sample_loop: Diffusion-QL's posterior sampler with the
  clipped a_0 prediction) with that Model, T = 5, noise ratio 1 and eval (ratio 0); every Gaussian
  draw (torch.randn / randn_like) is recorded so the suite can replay the same noise.
"""
from __future__ import annotations

import argparse
import importlib.util
import inspect
import sys
import types
from pathlib import Path

import numpy as np
import torch

_spec = importlib.util.spec_from_file_location(
    "goldens", Path(__file__).resolve().parent / "goldens.py")
goldens = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(goldens)

REPOSITORY = "https://github.com/BellmanTimeHut/DIPO"
PINNED = "c6d8d1b"
OBS, ACT, B = 4, 2, 5


def where(obj, repo: Path) -> str:
    """file:line of an object of the checkout (line numbers at the checked-out commit)."""
    obj = inspect.unwrap(obj)  # through @torch.no_grad()
    path = Path(inspect.getsourcefile(obj)).resolve().relative_to(repo.resolve())
    return f"{path}:{inspect.getsourcelines(obj)[1]}"


def np32(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


def linear_params(seq: torch.nn.Sequential, prefix: str) -> dict:
    """weights [out, in] and biases of every nn.Linear of a Sequential, named prefix<index>_w/_b."""
    out = {}
    for i, m in enumerate(seq):
        if isinstance(m, torch.nn.Linear):
            out[f"{prefix}{i}_w"] = np32(m.weight)
            out[f"{prefix}{i}_b"] = np32(m.bias)
    return out


def case_cosine_schedule(repo, commit):
    from agent.helpers import cosine_beta_schedule
    from agent.diffusion import Diffusion
    arrays = {}
    for T in (100, 5):
        betas = cosine_beta_schedule(T)
        arrays[f"betas_T{T}"] = np32(betas)
        # what Diffusion.__init__ stores (cumprod of 1 - betas in float32)
        d = Diffusion(OBS, ACT, noise_ratio=1.0, beta_schedule="cosine", n_timesteps=T)
        arrays[f"alpha_bars_T{T}"] = np32(d.alphas_cumprod)
    goldens.write_case(
        "dipo", "cosine_schedule", arrays, repository=REPOSITORY, commit=commit,
        functions=[where(cosine_beta_schedule, repo), where(Diffusion.__init__, repo)],
        source=goldens.FROM_CHECKOUT + ": agent.helpers.cosine_beta_schedule, Diffusion buffers",
        rtol=1e-5, atol=1e-7,
        notes="float32 tensors; alpha_bars accumulate 100 float32 products, hence rtol 1e-5")


def case_action_gradient(repo, commit):
    from agent.DiPo import DiPo
    from agent.model import Critic
    from agent.replay_memory import DiffusionMemory

    steps = 6
    args = types.SimpleNamespace(
        policy_type="Diffusion", noise_ratio=1.0, beta_schedule="cosine", n_timesteps=5,
        diffusion_lr=3e-4, critic_lr=3e-4, action_lr=0.03, action_gradient_steps=steps, ratio=0.1,
        ac_grad_norm=2.0, tau=0.005, update_actor_target_every=1)
    space = types.SimpleNamespace(shape=(ACT,), low=-np.ones(ACT), high=np.ones(ACT))
    torch.manual_seed(0)
    memory = DiffusionMemory(OBS, ACT, 2 * B, "cpu")
    agent = DiPo(args, OBS, space, None, memory, "cpu")
    agent.critic = Critic(OBS, ACT, hidden_dim=16)  # the authors' init (truncated normal)
    with torch.no_grad():  # larger final weights: the 0.1 * |A| clip binds on every step
        for head in (agent.critic.q1_model, agent.critic.q2_model):
            head[-1].weight.mul_(100.0)

    rng = np.random.default_rng(0)
    states = rng.uniform(-1, 1, (2 * B, OBS)).astype(np.float32)
    actions = rng.uniform(-0.9, 0.9, (2 * B, ACT)).astype(np.float32)
    actions[:, 0] = np.where(np.arange(2 * B) % 3 == 0, 0.97, actions[:, 0])  # the clamp to
    actions[:, 1] = np.where(np.arange(2 * B) % 4 == 1, -0.99, actions[:, 1])  # [-1, 1] can bind
    for s, a in zip(states, actions):
        memory.append(s, a)

    drawn, norms = {}, []
    sample = memory.sample

    def recording_sample(n):   # which rows action_gradient draws, and their starting actions
        s, a, idxs = sample(n)
        drawn.update(states=s.numpy().copy(), actions=a.detach().numpy().copy(), idxs=idxs)
        return s, a, idxs

    clip = torch.nn.utils.clip_grad_norm_

    def recording_clip(params, **kw):  # the total gradient norm before each step's clip
        norms.append(float(clip(params, **kw)))
        return torch.tensor(norms[-1])

    memory.sample = recording_sample
    torch.nn.utils.clip_grad_norm_ = recording_clip
    seed = next(k for k in range(100)  # a seed whose B draws (np.random.randint) are distinct
                if len(set(np.random.RandomState(k).randint(0, 2 * B, B))) == B)
    np.random.seed(seed)
    try:
        out_states, improved = agent.action_gradient(B, None)
    finally:
        torch.nn.utils.clip_grad_norm_ = clip
    assert len(norms) == steps and min(norms) > agent.action_grad_norm, norms  # the clip is active
    arrays = {"observations": drawn["states"], "actions": drawn["actions"],
              "improved": np32(improved), "grad_norms": np.asarray(norms, np.float32),
              **linear_params(agent.critic.q1_model, "q1_"),
              **linear_params(agent.critic.q2_model, "q2_")}
    assert np.allclose(arrays["observations"], np32(out_states))
    goldens.write_case(
        "dipo", "action_gradient", arrays, repository=REPOSITORY, commit=commit,
        functions=[where(DiPo.action_gradient, repo), where(Critic, repo)],
        source=goldens.FROM_CHECKOUT + ": DiPo.action_gradient with agent.model.Critic(hidden 16)",
        rtol=1e-5, atol=5e-6,
        notes=(f"atol 5e-6: Adam's m / sqrt(v) turns float32 rounding of the gradient (torch vs "
               "XLA summation order, ~1e-7 relative) into ~1e-6 moves over 6 steps of lr 0.03; "
               f"{steps} steps, action_lr 0.03, ratio 0.1 (max norm 0.2), Adam eps 1e-5; critic "
               "weights q{1,2}_<layer>_w are torch [out, in]; final layers scaled x100 so the clip "
               "binds; grad_norms = clip_grad_norm_'s return (norm before clipping) per step"))


def tiny_model():
    from agent.model import Model
    return Model(OBS, ACT, hidden_size=16, time_dim=8)


def case_noise_network(repo, commit):
    from agent.model import Model
    torch.manual_seed(1)
    model = tiny_model()
    with torch.no_grad():  # outputs of order 1 (the authors' init gives ~1e-3), so rtol bites
        model.layer[-1].weight.mul_(300.0)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(B, ACT)).astype(np.float32)
    s = rng.uniform(-1, 1, (B, OBS)).astype(np.float32)
    t = np.array([0, 1, 4, 37, 99])
    with torch.no_grad():
        eps = model(torch.tensor(x), torch.tensor(t), torch.tensor(s))
    arrays = {"noisy_actions": x, "observations": s, "t": t, "eps": np32(eps),
              **linear_params(model.time_mlp, "time_"), **linear_params(model.layer, "layer_")}
    goldens.write_case(
        "dipo", "noise_network", arrays, repository=REPOSITORY, commit=commit,
        functions=[where(Model, repo), where(sys.modules["agent.helpers"].SinusoidalPosEmb, repo)],
        source=goldens.FROM_CHECKOUT + ": agent.model.Model(hidden_size=16, time_dim=8)",
        rtol=1e-5, atol=1e-6,
        notes=("Model.forward(x, time, state) concatenates [x, t_emb, state]; weights torch "
               "[out, in]; final layer x300 after the authors' init"))


def case_posterior_sampler(repo, commit):
    from agent.diffusion import Diffusion
    T = 5
    torch.manual_seed(2)
    diff = Diffusion(OBS, ACT, noise_ratio=1.0, beta_schedule="cosine", n_timesteps=T)
    diff.model = tiny_model()
    with torch.no_grad():  # larger outputs: the a_0 prediction's clip binds at some steps
        diff.model.layer[-1].weight.mul_(20.0)
    s = np.random.default_rng(2).uniform(-1, 1, (B, OBS)).astype(np.float32)
    arrays = {"observations": s, **linear_params(diff.model.time_mlp, "time_"),
              **linear_params(diff.model.layer, "layer_")}
    randn, randn_like = torch.randn, torch.randn_like
    for name, is_eval in (("sample", False), ("eval", True)):
        draws = []

        def rec(f):
            def g(*a, **kw):
                draws.append(f(*a, **kw))
                return draws[-1]
            return g

        torch.randn, torch.randn_like = rec(randn), rec(randn_like)
        try:
            out = diff.sample(torch.tensor(s), eval=is_eval)
        finally:
            torch.randn, torch.randn_like = randn, randn_like
        assert len(draws) == T + 1, len(draws)  # a_T, then one z per step (t = T-1 .. 0)
        arrays[f"{name}_a_T"] = np32(draws[0])
        arrays[f"{name}_z"] = np.stack([np32(z) for z in draws[1:]])  # z[i] used at t = T-1-i
        arrays[f"{name}_actions"] = np32(out)
    goldens.write_case(
        "dipo", "posterior_sampler", arrays, repository=REPOSITORY, commit=commit,
        functions=[where(Diffusion.p_sample_loop, repo), where(Diffusion.p_sample, repo),
                   where(Diffusion.p_mean_variance, repo)],
        source=goldens.FROM_CHECKOUT + ": Diffusion.sample with Model(hidden 16, time_dim 8), T 5",
        rtol=1e-5, atol=1e-5,
        notes=("cosine schedule T 5; noise ratio 1 ('sample', acting) and 0 ('eval'); the recorded "
               "torch Gaussian draws: a_T [B, A] and z [T, B, A] in the order drawn; final layer x20 "
               "so the a_0 clip binds; atol 1e-5: five chained steps with 1/sqrt(abar) ~ 30"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", required=True, help="checkout of BellmanTimeHut/DIPO")
    repo = Path(parser.parse_args().repo)
    commit = goldens.require_commit(repo, PINNED)
    sys.path.insert(0, str(repo))
    torch.set_num_threads(1)
    case_cosine_schedule(repo, commit)
    case_action_gradient(repo, commit)
    case_noise_network(repo, commit)
    case_posterior_sampler(repo, commit)
    print("wrote", sorted(p.name for p in (goldens.GOLDEN_ROOT / "dipo").glob("*.json")))


if __name__ == "__main__":
    main()
