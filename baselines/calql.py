"""Cal-QL (Nakamoto et al. 2023): CQL whose policy-action Q values inside the conservative term
are lower-bounded ("calibrated") by the Monte-Carlo return-to-go of the data, with a tanh-Gaussian
SAC actor. Pretrained offline with its own objective, then fine-tuned online with the same one.

Facts from the authors' code (nakamotoo/Cal-QL: JaxCQL/conservative_sac.py, conservative_sac_main.py,
replay_buffer.py, sampler.py, scripts/run_antmaze.sh, scripts/run_adroit.sh):
- critic: 2 Q heads (plain ReLU MLPs), Adam 3e-4, Polyak 5e-3, discount 0.99. TD target: 10 policy
  samples at s', min of the two TARGET heads per sample, max over the samples (max-target backup),
  no entropy term (backup_entropy False): y = r + gamma * mask * max_j min_h Q'_h(s', a'_j);
- CQL term per head: logsumexp over 3 x 10 actions, each with its importance correction,
  [Q(s, a_rand) - log(0.5^|A|), Q(s, a'_next) - log pi(a'_next|s'), Q(s, a_cur) - log pi(a_cur|s)]
  with a_rand ~ U[-1, 1]^|A|, a_cur ~ pi(.|s), a'_next ~ pi(.|s') (evaluated at s, as the code
  does), minus Q(s, a_data); averaged over the batch. Cal-QL replaces Q(s, a_cur) and Q(s, a'_next)
  by max(Q, mc_return) BEFORE the log-pi correction (the random actions are not clamped);
- weight: antmaze Lagrange CQL: alpha' * w * (gap - target_gap), w = 5, target_gap 0.8,
  log alpha' initialised to 1.0 and trained with Adam 3e-4 on -mean_heads(alpha' w (gap - 0.8))
  (alpha' clipped to [0, 1e6]); adroit: fixed weight w = 1. Critic loss = sum over heads of
  (Bellman MSE + CQL term);
- actor: tanh-Gaussian, loss mean(alpha * log pi(a|s) - min_h Q_h(s, a)), Adam 1e-4; temperature:
  log alpha initialised to 0, loss -log alpha * mean(log pi + target_entropy), target entropy -|A|,
  Adam 1e-4. Policy, critic, temperature and Lagrange multiplier all take their gradients at the
  same (pre-step) parameters, one joint step per minibatch;
- architectures: antmaze policy 256x2, Q 256x4; adroit policy 512x2, Q 512x3. The actor is two
  layers of the critic's width in both scripts, the rule used here (actor_hidden_dims None);
- rewards: antmaze 10 r - 5 on D4RL's r in {0, 1}; adroit 10 r + 5 on r in {-1, 0}: failure -5,
  success +5 in both. Monte-Carlo return-to-go per trajectory of the scaled rewards,
  G_t = r_t + gamma * (1 - done_t) * G_{t+1}, G = 0 past the trajectory's end; a trajectory whose
  rewards are all the failure reward gets r_fail / (1 - gamma) at every step (sparse rule);
- pretraining: antmaze 1M steps, adroit 20k; online: mixing ratio 0.5, UTD 1, CQL kept online
  (online_use_cql True); evaluation with the deterministic tanh(mean), acting with a sample.
- online_cql = False is Fig. 8's "Cal-QL pretraining + SAC fine-tuning" (method calql_sac): the
  conservative term (and the Lagrange multiplier's update) is dropped in the online phase, as the
  code's online_use_cql=False does.

Suite adaptations (also in get_config()["deviations"]):
- The suite hands the learner the protocol's rewards r' (antmaze r' = r - 1, adroit r' = r in
  {-1, 0}, robomimic/mimicgen r' = r in {0, 1}); the agent applies its own affine map
  reward_scale * r' + reward_bias with reward_bias chosen per domain so that failure -> -5 and
  success -> +5, which reproduces 10 r - 5 on antmaze and 10 r + 5 on adroit exactly.
- robomimic / mimicgen: Cal-QL has no setting for them; the suite uses its Adroit (manipulation
  from demonstrations) settings: fixed CQL weight 1, Q 512x3, policy 512x2, rewards -5 / +5.
- Adroit: the code cuts each offline trajectory after its last success and ends online episodes at
  the first success; the suite keeps its protocol (no termination, whole trajectories), and the
  return-to-go runs over the whole trajectory.
- Networks: the suite's shared MLPs (xavier-uniform init, separate mean / log-std heads with
  log-std clipped to [-20, 2]); the code uses orthogonal init and a learnable affine map of the
  log-std (initial offset -1).
- One update call per environment step on a 50/50 batch (the code collects a whole trajectory,
  then takes as many steps as it has transitions); online rows hold mc_return = -inf (no bound)
  until their episode finishes.
- Pretraining length comes from the suite's protocol (TaskSpec.pretrain_steps: antmaze 500k,
  adroit 20k, robomimic/mimicgen 200k); the authors pretrain 1M steps on antmaze.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training.train_state import TrainState

from baselines import sac
from baselines.sac import eval_actions, sample_actions  # noqa: F401  (module contract)
from expo.config import ConfigError
from expo.nets.ensemble import QEnsemble
from expo.nets.temperature import Temperature, temperature_loss
from expo.agents.scan import scan_minibatches

# Batch fields besides the standard five, with the value an online row holds until its episode
# ends: mc_return = -inf is no lower bound at all (max(Q, -inf) = Q).
EXTRA_FIELDS = {"mc_returns": -np.inf}

# The success / failure values the authors' scaled rewards take (both scripts).
SCALED_FAILURE, SCALED_SUCCESS = -5.0, 5.0


def get_config() -> dict[str, Any]:
    """The authors' defaults; None entries are filled per domain by resolve_config."""
    return {
        "actor_lr": 1e-4,
        "critic_lr": 3e-4,
        "temp_lr": 1e-4,                  # the code trains log alpha with the policy's lr
        "lagrange_lr": 3e-4,              # ... and log alpha' with the critic's lr
        "hidden_dims": None,              # critic heads; None -> antmaze (256,)*4, else (512,)*3
        "actor_hidden_dims": None,        # None -> two layers of hidden_dims[0] (both scripts)
        "num_qs": 2,
        "discount": 0.99,
        "tau": 5e-3,
        "init_temperature": 1.0,
        "target_entropy": None,           # None -> -|A|
        "backup_entropy": False,
        "cql_n_actions": 10,
        "cql_importance_sample": True,
        "cql_temp": 1.0,
        "cql_max_target_backup": True,
        "cql_lagrange": None,             # None -> antmaze True, else False
        "cql_min_q_weight": None,         # None -> antmaze 5.0, else 1.0
        "cql_target_action_gap": 0.8,     # Lagrange target (antmaze script; only used with Lagrange)
        "init_log_lagrange": 1.0,         # log alpha' at the start (code: Scalar(1.0))
        "enable_calql": True,             # False = plain CQL (no Monte-Carlo lower bound)
        "online_cql": True,               # False = Cal-QL pretraining + SAC fine-tuning (Fig. 8)
        "reward_scale": 10.0,
        "reward_bias": None,              # None -> failure maps to -5 (see resolve_config)
        "failure_reward": None,           # the SCALED failure reward of the sparse rule; None -> -5
        "utd": 1,
        "batch_size": 256,
        "evaluation": "deterministic tanh(mean) (eval_actions); acting samples the policy",
        "deviations": (
            "rewards arrive as the protocol's r' and are mapped to failure -5 / success +5 "
            "(10r-5 antmaze, 10r+5 adroit); robomimic/mimicgen use Cal-QL's adroit settings (no "
            "authors' setting); adroit keeps whole trajectories without termination at success; "
            "xavier init and plain log-std heads instead of orthogonal init and the learnable "
            "log-std affine map; one update per env step on 50/50 batches; pretraining length "
            "from the suite protocol (authors: 1M on antmaze)"
        ),
    }


def learner_failure_reward(spec) -> float:
    """The failure reward r' the learner receives in the suite (the protocol's transform applied
    to the environment's failure reward: adroit-binary gives -1, the other domains 0)."""
    raw = -1.0 if spec.domain == "adroit" else 0.0
    return float(spec.transform_reward(raw))


def resolve_config(agent: dict, spec, setting: str) -> None:
    antmaze = spec.domain == "antmaze"
    for key in ("hidden_dims", "actor_hidden_dims"):  # agent.hidden_dims=512 means one layer
        if isinstance(agent[key], int):
            agent[key] = (agent[key],)
    if agent["hidden_dims"] is None:
        agent["hidden_dims"] = (256,) * 4 if antmaze else (512,) * 3
    if agent["actor_hidden_dims"] is None:
        agent["actor_hidden_dims"] = (agent["hidden_dims"][0],) * 2
    if agent["cql_lagrange"] is None:
        agent["cql_lagrange"] = antmaze
    if agent["cql_min_q_weight"] is None:
        agent["cql_min_q_weight"] = 5.0 if antmaze else 1.0
    r_fail = learner_failure_reward(spec)
    if agent["reward_bias"] is None:
        agent["reward_bias"] = SCALED_FAILURE - agent["reward_scale"] * r_fail
    if agent["failure_reward"] is None:
        agent["failure_reward"] = agent["reward_scale"] * r_fail + agent["reward_bias"]


def validate_config(agent: dict) -> None:
    required = ("hidden_dims", "actor_hidden_dims", "cql_lagrange", "cql_min_q_weight",
                "reward_bias", "failure_reward")
    for key in required:
        if agent[key] is None:
            raise ConfigError(f"agent.{key} is unset: build the config with build_config (resolve_config)")
    checks = [
        (agent["num_qs"] >= 1, f"agent.num_qs must be >= 1, got {agent['num_qs']}"),
        (agent["cql_n_actions"] >= 1, f"agent.cql_n_actions must be >= 1, got {agent['cql_n_actions']}"),
        (agent["cql_temp"] > 0, f"agent.cql_temp must be > 0, got {agent['cql_temp']}"),
        (agent["cql_min_q_weight"] >= 0,
         f"agent.cql_min_q_weight must be >= 0, got {agent['cql_min_q_weight']}"),
        (agent["utd"] >= 1, f"agent.utd must be >= 1, got {agent['utd']}"),
        (agent["batch_size"] >= 2 and agent["batch_size"] % 2 == 0,
         f"agent.batch_size must be even and >= 2 (half offline, half online), got {agent['batch_size']}"),
        (0 < agent["discount"] < 1,
         f"agent.discount must be in (0, 1) (the sparse rule divides by 1 - discount), got {agent['discount']}"),
        (0 < agent["tau"] <= 1, f"agent.tau must be in (0, 1], got {agent['tau']}"),
        (agent["init_temperature"] > 0,
         f"agent.init_temperature must be > 0, got {agent['init_temperature']}"),
        (len(agent["hidden_dims"]) >= 1 and len(agent["actor_hidden_dims"]) >= 1,
         "agent.hidden_dims and agent.actor_hidden_dims must name at least one layer"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


# ----------------------------------------------------------------------------- Monte-Carlo returns

def return_to_go(rewards, masks, discount: float, failure_reward: float) -> np.ndarray:
    """Discounted return-to-go of ONE trajectory of scaled rewards: G_t = r_t + gamma * mask_t *
    G_{t+1}, G = 0 past the end (the code's finite-horizon rule). A trajectory whose every reward is
    the failure reward gets failure_reward / (1 - gamma) everywhere (the code's sparse rule: the
    value of failing forever, not the truncated sum)."""
    rewards = np.asarray(rewards, np.float64)
    masks = np.asarray(masks, np.float64)
    if len(rewards) == 0:
        return np.zeros(0, np.float32)
    if np.all(np.isclose(rewards, failure_reward)):
        return np.full(len(rewards), failure_reward / (1.0 - discount), np.float32)
    out = np.empty(len(rewards))
    g = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        g = rewards[t] + discount * masks[t] * g
        out[t] = g
    return out.astype(np.float32)


def scale_rewards_np(rewards, agent_cfg) -> np.ndarray:
    return agent_cfg["reward_scale"] * np.asarray(rewards, np.float64) + agent_cfg["reward_bias"]


def offline_extras(data: dict, agent_cfg: dict) -> dict[str, np.ndarray]:
    """mc_returns for every offline transition: return_to_go per trajectory of the method's scaled
    rewards. A trajectory ends at a row with dones = 1 or before a row with episode_starts."""
    n = len(data["rewards"])
    ends = np.asarray(data["dones"], bool).copy()
    if "episode_starts" in data:
        ends[:-1] |= np.asarray(data["episode_starts"], bool)[1:]
    if n:
        ends[-1] = True
    bounds = np.flatnonzero(ends) + 1
    rewards = scale_rewards_np(data["rewards"], agent_cfg)
    out = np.empty(n, np.float32)
    start = 0
    for stop in bounds:
        out[start:stop] = return_to_go(rewards[start:stop], data["masks"][start:stop],
                                       agent_cfg["discount"], agent_cfg["failure_reward"])
        start = stop
    return {"mc_returns": out}


def episode_extras(episode_rewards, terminated: bool, agent_cfg: dict) -> dict[str, np.ndarray]:
    """mc_returns for a finished online episode (rewards r' as the learner saw them); mask 0 only
    at a true termination, as in the buffer."""
    rewards = scale_rewards_np(episode_rewards, agent_cfg)
    masks = np.ones(len(rewards))
    if terminated and len(masks):
        masks[-1] = 0.0
    return {"mc_returns": return_to_go(rewards, masks, agent_cfg["discount"], agent_cfg["failure_reward"])}


# ----------------------------------------------------------------------------- agent

@dataclasses.dataclass(frozen=True)
class Hyper:
    """Static hyperparameters: part of the pytree's structure, so changing one recompiles."""
    action_dim: int
    num_qs: int
    discount: float
    tau: float
    target_entropy: float
    backup_entropy: bool
    cql_n_actions: int
    cql_importance_sample: bool
    cql_temp: float
    cql_max_target_backup: bool
    cql_lagrange: bool
    cql_min_q_weight: float
    cql_target_action_gap: float
    enable_calql: bool
    online_cql: bool
    reward_scale: float
    reward_bias: float


class CalQLAgent(flax.struct.PyTreeNode):
    rng: jax.Array
    actor: TrainState
    critic: TrainState
    target_critic: Any              # target critic parameters
    temp: TrainState                # alpha = exp(log alpha)
    lagrange: TrainState            # alpha' = exp(log alpha') (trained only with cql_lagrange)
    hp: Hyper = flax.struct.field(pytree_node=False)


def create(seed: int, obs_dim: int, action_dim: int, cfg: dict) -> CalQLAgent:
    validate_config(cfg)
    rng = jax.random.PRNGKey(seed)
    rng, actor_key, critic_key, temp_key, lag_key = jax.random.split(rng, 5)
    actor = sac.create_actor(actor_key, obs_dim, action_dim, cfg["actor_hidden_dims"], cfg["actor_lr"])
    critic_def = QEnsemble(tuple(cfg["hidden_dims"]), cfg["num_qs"], use_layer_norm=False)
    critic_params = critic_def.init(critic_key, jnp.zeros((1, obs_dim)), jnp.zeros((1, action_dim)))["params"]
    critic = TrainState.create(apply_fn=critic_def.apply, params=critic_params,
                               tx=optax.adam(cfg["critic_lr"]))
    temp = sac.create_temperature(temp_key, cfg["init_temperature"], cfg["temp_lr"])
    # The same one-parameter module: exp of a learnable log, initialised at log alpha' = 1.0.
    lag_def = Temperature(math.exp(cfg["init_log_lagrange"]))
    lagrange = TrainState.create(apply_fn=lag_def.apply, params=lag_def.init(lag_key)["params"],
                                 tx=optax.adam(cfg["lagrange_lr"]))
    target_entropy = cfg["target_entropy"]
    if target_entropy is None:
        target_entropy = -float(action_dim)
    hp = Hyper(
        action_dim=action_dim, num_qs=cfg["num_qs"], discount=float(cfg["discount"]),
        tau=float(cfg["tau"]), target_entropy=float(target_entropy),
        backup_entropy=bool(cfg["backup_entropy"]), cql_n_actions=cfg["cql_n_actions"],
        cql_importance_sample=bool(cfg["cql_importance_sample"]), cql_temp=float(cfg["cql_temp"]),
        cql_max_target_backup=bool(cfg["cql_max_target_backup"]),
        cql_lagrange=bool(cfg["cql_lagrange"]), cql_min_q_weight=float(cfg["cql_min_q_weight"]),
        cql_target_action_gap=float(cfg["cql_target_action_gap"]),
        enable_calql=bool(cfg["enable_calql"]), online_cql=bool(cfg["online_cql"]),
        reward_scale=float(cfg["reward_scale"]), reward_bias=float(cfg["reward_bias"]),
    )
    agent = CalQLAgent(rng=rng, actor=actor, critic=critic, target_critic=critic_params, temp=temp,
                       lagrange=lagrange, hp=hp)
    return sac.strongly_typed(agent)


# ----------------------------------------------------------------------------- pieces of the loss

def calibrate(q_values, mc_returns):
    """Cal-QL's clamp: max(Q(s, a_pi), mc_return(s)). q_values [H, B, K], mc_returns [B]."""
    return jnp.maximum(q_values, mc_returns[None, :, None])


def cql_ood_values(q_rand, q_next, logp_next, q_cur, logp_cur, q_data, mc_returns, hp: Hyper):
    """The soft maximum of CQL's push-down term per head and state: [H, B].

    q_rand, q_next, q_cur: Q(s, .) at the random, s'-policy and s-policy actions [H, B, K];
    logp_next, logp_cur: their log-probabilities under the policy [B, K]; q_data: Q(s, a) [H, B].
    The two policy-action sets are calibrated first (if enable_calql), then importance-corrected.
    """
    if hp.enable_calql:
        q_next = calibrate(q_next, mc_returns)
        q_cur = calibrate(q_cur, mc_returns)
    if hp.cql_importance_sample:
        random_log_density = hp.action_dim * math.log(0.5)  # U[-1, 1]^|A|
        cat = jnp.concatenate([q_rand - random_log_density, q_next - logp_next[None],
                               q_cur - logp_cur[None]], axis=-1)
    else:
        cat = jnp.concatenate([q_rand, q_data[..., None], q_next, q_cur], axis=-1)
    return jax.scipy.special.logsumexp(cat / hp.cql_temp, axis=-1) * hp.cql_temp


def cql_penalty(ood, q_data, alpha_prime, hp: Hyper):
    """Per-head conservative loss and the gap it is built on: gap_h = mean_B(ood - Q(s, a_data));
    Lagrange: alpha' * w * (gap_h - target_gap); otherwise w * gap_h. Returns ([H], [H])."""
    gap = jnp.mean(ood - q_data, axis=-1)
    if hp.cql_lagrange:
        return alpha_prime * hp.cql_min_q_weight * (gap - hp.cql_target_action_gap), gap
    return hp.cql_min_q_weight * gap, gap


def lagrange_loss(log_alpha_prime_params, apply_fn, gap, hp: Hyper):
    """-mean_heads(alpha' * w * (gap_h - target_gap)): minimising it RAISES alpha' while the gap
    exceeds its target (more conservatism) and lowers it once the gap is below."""
    alpha_prime = jnp.clip(apply_fn({"params": log_alpha_prime_params}), 0.0, 1e6)
    return -jnp.mean(alpha_prime * hp.cql_min_q_weight * (gap - hp.cql_target_action_gap))


def q_at(agent: CalQLAgent, params, observations, actions):
    """Q of every head at K actions per state: observations [B, D], actions [B, K, A] -> [H, B, K]."""
    batch, k, _ = actions.shape
    obs = jnp.repeat(observations, k, axis=0)
    return agent.critic.apply_fn({"params": params}, obs, actions.reshape(batch * k, -1)).reshape(-1, batch, k)


def td_target(agent: CalQLAgent, batch, rewards, next_actions, next_log_probs, temperature):
    """y = r + gamma * mask * max_j min_h Q'_h(s', a'_j) over the K sampled next actions
    (K = 1 without the max-target backup). next_actions [B, K, A], next_log_probs [B, K]."""
    hp = agent.hp
    q = q_at(agent, agent.target_critic, batch["next_observations"], next_actions).min(axis=0)  # [B, K]
    best = jnp.argmax(q, axis=-1)[:, None]
    next_q = jnp.take_along_axis(q, best, axis=-1)[:, 0]
    if hp.backup_entropy:
        next_q = next_q - temperature * jnp.take_along_axis(next_log_probs, best, axis=-1)[:, 0]
    return rewards + hp.discount * batch["masks"] * next_q


def critic_loss_fn(critic_params, agent: CalQLAgent, batch, target, samples, alpha_prime, use_cql: bool):
    """sum over heads of (Bellman MSE + CQL term). samples: the actions (random, s-policy,
    s'-policy) and log-probabilities, fixed with respect to the critic."""
    obs = batch["observations"]
    q_data = agent.critic.apply_fn({"params": critic_params}, obs, batch["actions"])  # [H, B]
    bellman = jnp.mean((q_data - target[None]) ** 2, axis=-1)                       # [H]
    info = {"bellman_loss": bellman.mean(), "q_mean": q_data.mean(), "q_max": q_data.max(),
            "q_min": q_data.min()}
    if not use_cql:
        return jnp.sum(bellman), (info, jnp.zeros(agent.hp.num_qs))
    rand, cur, logp_cur, nxt, logp_next = samples
    q_rand = q_at(agent, critic_params, obs, rand)
    q_cur = q_at(agent, critic_params, obs, cur)
    q_next = q_at(agent, critic_params, obs, nxt)  # s'-policy actions evaluated at s (the code's)
    ood = cql_ood_values(q_rand, q_next, logp_next, q_cur, logp_cur, q_data, batch["mc_returns"],
                         agent.hp)
    penalty, gap = cql_penalty(ood, q_data, alpha_prime, agent.hp)
    bound = batch["mc_returns"][None, :, None]
    info.update(cql_gap=gap.mean(), cql_loss=penalty.mean(),
                bound_rate=0.5 * (jnp.mean(q_cur < bound) + jnp.mean(q_next < bound)))
    return jnp.sum(bellman + penalty), (info, gap)


def actor_loss_fn(actor_params, agent: CalQLAgent, observations, key, temperature):
    """mean_batch(alpha * log pi(a|s) - min_h Q_h(s, a)) with the current (online) critic."""
    actions, log_probs = sac.policy_sample(agent.actor, actor_params, key, observations)
    q = agent.critic.apply_fn({"params": agent.critic.params}, observations, actions).min(axis=0)
    loss = jnp.mean(temperature * log_probs - q)
    return loss, {"actor_loss": loss, "entropy": -log_probs.mean(), "actor_q": q.mean()}


def calql_step(agent: CalQLAgent, batch, use_cql: bool):
    """One joint step (policy, temperature, critic, Lagrange multiplier), every gradient taken at
    the parameters before the step, then Polyak averaging of the target critic."""
    hp = agent.hp
    rng, k_pi, k_target, k_rand, k_cur, k_next = jax.random.split(agent.rng, 6)
    obs, next_obs = batch["observations"], batch["next_observations"]
    batch_size = obs.shape[0]
    temperature = agent.temp.apply_fn({"params": agent.temp.params})

    # policy and temperature (log alpha * (entropy - target), the code's loss on log alpha)
    actor_grads, info = jax.grad(actor_loss_fn, has_aux=True)(agent.actor.params, agent, obs, k_pi,
                                                              temperature)
    entropy = info["entropy"]
    temp_grads = jax.grad(lambda p: temperature_loss(jnp.log(agent.temp.apply_fn({"params": p})),
                                                     entropy, hp.target_entropy))(agent.temp.params)

    # TD target
    rewards = hp.reward_scale * batch["rewards"] + hp.reward_bias
    n_next = hp.cql_n_actions if hp.cql_max_target_backup else 1
    next_actions, next_log_probs = sac.policy_samples(agent.actor, agent.actor.params, k_target,
                                                      next_obs, n_next)
    target = jax.lax.stop_gradient(td_target(agent, batch, rewards, next_actions, next_log_probs,
                                             temperature))

    # critic (+ CQL)
    samples = None
    alpha_prime = jnp.clip(agent.lagrange.apply_fn({"params": agent.lagrange.params}), 0.0, 1e6)
    if use_cql:
        rand = jax.random.uniform(k_rand, (batch_size, hp.cql_n_actions, hp.action_dim),
                                  minval=-1.0, maxval=1.0)
        cur, logp_cur = sac.policy_samples(agent.actor, agent.actor.params, k_cur, obs, hp.cql_n_actions)
        nxt, logp_next = sac.policy_samples(agent.actor, agent.actor.params, k_next, next_obs,
                                            hp.cql_n_actions)
        samples = jax.lax.stop_gradient((rand, cur, logp_cur, nxt, logp_next))
    (critic_loss, (critic_info, gap)), critic_grads = jax.value_and_grad(critic_loss_fn, has_aux=True)(
        agent.critic.params, agent, batch, target, samples, alpha_prime, use_cql)

    lagrange = agent.lagrange
    if use_cql and hp.cql_lagrange:
        lag_grads = jax.grad(lagrange_loss)(agent.lagrange.params, agent.lagrange.apply_fn,
                                            jax.lax.stop_gradient(gap), hp)
        lagrange = lagrange.apply_gradients(grads=lag_grads)

    actor = agent.actor.apply_gradients(grads=actor_grads)
    temp = agent.temp.apply_gradients(grads=temp_grads)
    critic = agent.critic.apply_gradients(grads=critic_grads)
    target_params = optax.incremental_update(critic.params, agent.target_critic, hp.tau)
    info.update(critic_info, critic_loss=critic_loss, target_mean=target.mean(),
                temperature=temperature, alpha_prime=alpha_prime)
    return agent.replace(rng=rng, actor=actor, temp=temp, critic=critic, target_critic=target_params,
                         lagrange=lagrange), info


def _scan(agent: CalQLAgent, batch, use_cql: bool):
    return scan_minibatches(functools.partial(calql_step, use_cql=use_cql), agent, batch)


@jax.jit
def update(agent: CalQLAgent, batch):
    """One environment step: utd joint steps (lax.scan over batch leaves [utd, B, ...]); the CQL
    term stays on online unless online_cql is False (calql_sac)."""
    return _scan(agent, batch, agent.hp.online_cql)


@jax.jit
def pretrain_update(agent: CalQLAgent, batch):
    """Offline Cal-QL: k joint steps with the CQL term (batch leaves [k, B, ...])."""
    return _scan(agent, batch, True)
