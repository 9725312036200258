"""DDPM pieces of the base policy (expo/nets/diffusion.py) against hand-computed numbers.

Expected values below were computed by hand (plain float64 arithmetic) from the IDQL/EXPO VP
schedule alpha_t = exp(-b_min/T - (b_max - b_min)(2t - 1) / (2 T^2)), t = 1..T, b_min 0.1, b_max 10,
and from the DDPM posterior mean (a_t - beta_t / sqrt(1 - abar_t) * eps) / sqrt(alpha_t).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from expo.nets import diffusion

# ------------------------------------------------------------------ the variance-preserving schedule

# T = 2: exponents -0.05 - 4.95 * (1, 3) / 4 = -1.2875, -3.7625
T2_ALPHAS = [0.2759598209859731, 0.023225603725051565]
T2_ALPHA_BARS = [0.2759598209859731, 0.00640933344625638]
# T = 3: exponents -1/30 - 4.95 * (1, 3, 5) / 9 = -0.58333, -1.68333, -2.78333
T3_ALPHAS = [0.5580351457700471, 0.18575376371409133, 0.061832056628506604]
T3_BETAS = [0.4419648542299529, 0.8142462362859086, 0.9381679433714933]
T3_ALPHA_BARS = [0.5580351457700471, 0.10365712861152784, 0.006409333446256381]


def test_vp_schedule_T2_hand_values():
    s = diffusion.vp_schedule(2)
    np.testing.assert_allclose(s.alphas, T2_ALPHAS, rtol=1e-5)
    np.testing.assert_allclose(s.betas, [1 - a for a in T2_ALPHAS], rtol=1e-5)
    np.testing.assert_allclose(s.alpha_bars, T2_ALPHA_BARS, rtol=1e-5)


def test_vp_schedule_T3_hand_values():
    s = diffusion.vp_schedule(3)
    assert s.betas.shape == (3,)
    np.testing.assert_allclose(s.alphas, T3_ALPHAS, rtol=1e-5)
    np.testing.assert_allclose(s.betas, T3_BETAS, rtol=1e-5)
    np.testing.assert_allclose(s.alpha_bars, T3_ALPHA_BARS, rtol=1e-5)


@pytest.mark.parametrize("T", [1, 2, 5, 10])
def test_vp_schedule_final_alpha_bar_is_independent_of_T(T):
    # sum_t (2t - 1) = T^2, so abar_T = exp(-b_min - (b_max - b_min) / 2) = exp(-5.05) for every T.
    s = diffusion.vp_schedule(T)
    np.testing.assert_allclose(s.alpha_bars[-1], 0.006409333446256383, rtol=1e-5)
    assert np.all(np.diff(np.asarray(s.betas)) > 0)  # noise grows with t
    assert np.all((np.asarray(s.betas) > 0) & (np.asarray(s.betas) < 1))


# ------------------------------------------------------------------ forward process and loss

def test_noisy_actions_at_hand_values():
    s = diffusion.vp_schedule(2)
    actions = jnp.array([[0.5, -0.5], [0.5, -0.5]])
    noise = jnp.array([[1.0, 2.0], [1.0, 2.0]])
    out = diffusion.noisy_actions_at(s, actions, jnp.array([1, 0]), noise)
    # row 0 at t index 1 (abar = exp(-5.05)), row 1 at t index 0 (abar = exp(-1.2875))
    np.testing.assert_allclose(out[0], [1.036819338203827, 1.9535512072275734], rtol=1e-5)
    np.testing.assert_allclose(out[1], [1.1135648955115514, 1.4391516205015842], rtol=1e-5)


def _oracle_apply_fn(schedule, actions, offset, record=None):
    """A stub eps-network that knows the clean actions: it recovers the true noise exactly from
    (a_t, t) with the hand-written T=3 alpha-bars, then adds `offset`. Its loss is then a known
    number that does not depend on which t and noise the loss function drew."""
    abar = jnp.asarray(T3_ALPHA_BARS)

    def apply_fn(variables, observations, a_t, t, training=False, rngs=None):
        if record is not None:
            record.append(dict(t=np.asarray(t), training=training, rngs=rngs, obs=observations))
        ab = abar[t[:, 0]][:, None]
        true_noise = (a_t - jnp.sqrt(ab) * actions) / jnp.sqrt(1.0 - ab)
        return true_noise + offset

    return apply_fn


def test_ddpm_loss_is_sum_over_dims_mean_over_batch():
    s = diffusion.vp_schedule(3)
    B, A = 4, 3
    actions = jax.random.uniform(jax.random.PRNGKey(1), (B, A), minval=-1, maxval=1)
    obs = jnp.arange(B * 2, dtype=jnp.float32).reshape(B, 2)
    # offset (b + 1) in every one of the A dims of row b: loss = mean_b A (b + 1)^2 = 3 * 30 / 4
    row_offset = (jnp.arange(B, dtype=jnp.float32) + 1.0)[:, None] * jnp.ones((1, A))
    # a per-dimension offset d: loss = sum(d^2) = 5.25 (not the mean over dims)
    dim_offset = jnp.array([0.5, 1.0, 2.0])

    @jax.jit
    def losses(key):
        return [diffusion.ddpm_loss(_oracle_apply_fn(s, actions, off), {}, s, key, obs, actions)
                for off in (0.0, row_offset, dim_offset)]

    perfect, by_row, by_dim = losses(jax.random.PRNGKey(0))
    assert abs(float(perfect)) < 1e-8
    np.testing.assert_allclose(by_row, 22.5, rtol=1e-5)
    np.testing.assert_allclose(by_dim, 5.25, rtol=1e-5)


def test_ddpm_loss_calls_network_with_step_column():
    s = diffusion.vp_schedule(3)
    rec = []
    actions = jnp.zeros((4, 2))
    obs = jnp.ones((4, 5))
    diffusion.ddpm_loss(_oracle_apply_fn(s, actions, 0.0, rec), {}, s, jax.random.PRNGKey(0),
                        obs, actions)
    assert rec[0]["t"].shape == (4, 1)
    assert rec[0]["t"].min() >= 0 and rec[0]["t"].max() <= 2  # t in [0, T)
    assert rec[0]["training"] is False
    np.testing.assert_array_equal(rec[0]["obs"], obs)


def test_ddpm_loss_draws_all_steps_and_standard_noise():
    s = diffusion.vp_schedule(3)
    B, A = 2000, 2
    actions = jnp.zeros((B, A))
    rec = []

    def zero_apply(variables, observations, a_t, t, training=False, rngs=None):
        rec.append((np.asarray(t[:, 0]), np.asarray(a_t)))
        return jnp.zeros_like(a_t)

    loss = diffusion.ddpm_loss(zero_apply, {}, s, jax.random.PRNGKey(0), jnp.zeros((B, 1)), actions)
    t, a_t = rec[0]
    assert set(np.unique(t)) == {0, 1, 2}
    # with a_0 = 0, a_t = sqrt(1 - abar_t) * noise, and the loss is mean_b ||noise_b||^2
    noise = a_t / np.sqrt(1.0 - np.asarray(T3_ALPHA_BARS)[t])[:, None]
    np.testing.assert_allclose(loss, np.mean(np.sum(noise ** 2, -1)), rtol=1e-4)
    assert abs(noise.mean()) < 0.05 and abs(noise.std() - 1.0) < 0.05


def test_ddpm_loss_dropout_key_turns_training_on():
    s = diffusion.vp_schedule(3)
    rec = []
    actions = jnp.zeros((2, 2))
    diffusion.ddpm_loss(_oracle_apply_fn(s, actions, 0.0, rec), {}, s, jax.random.PRNGKey(0),
                        jnp.zeros((2, 1)), actions, dropout_key=jax.random.PRNGKey(5))
    assert rec[0]["training"] is True and "dropout" in rec[0]["rngs"]


# ------------------------------------------------------------------ sampler

def test_ddpm_step_with_noise_at_t1():
    s = diffusion.vp_schedule(3)
    out = diffusion.ddpm_step(s, jnp.array([0.2, -0.1]), jnp.array([0.3, -0.2]), 1,
                              jnp.array([0.5, -1.0]))
    np.testing.assert_allclose(out, [0.3165767044710562, -0.7352807337900056], rtol=1e-5)


def test_ddpm_step_adds_no_noise_at_t0():
    s = diffusion.vp_schedule(3)
    out = diffusion.ddpm_step(s, jnp.array([0.2, -0.1]), jnp.array([0.1, -0.4]), 0,
                              jnp.array([5.0, 5.0]))
    np.testing.assert_allclose(out, [0.178736860454125, 0.22211226523066574], rtol=1e-5)


def test_ddpm_step_clips_to_action_box():
    s = diffusion.vp_schedule(3)
    # unclipped values would be +-2.0947
    out = diffusion.ddpm_step(s, jnp.array([0.9, -0.9]), jnp.array([-1.0, 1.0]), 0, jnp.zeros(2))
    np.testing.assert_array_equal(out, [1.0, -1.0])
    out = diffusion.ddpm_step(s, jnp.zeros(2), jnp.zeros(2), 2, jnp.array([10.0, -10.0]))
    np.testing.assert_array_equal(out, [1.0, -1.0])


def test_ddpm_sample_ends_with_noise_free_t0_step():
    """A stub network that is silent except at t = 0, where it pushes hard: the last step of the
    sampler must be t = 0 and noise-free, so every output is exactly +1 (after clipping)."""
    s = diffusion.vp_schedule(3)
    seen_t_shapes = []

    def stub(variables, observations, a_t, t, training=False, rngs=None):
        seen_t_shapes.append(t.shape)
        return jnp.where(t == 0, -100.0, 0.0) * jnp.ones_like(a_t)

    out = diffusion.ddpm_sample(stub, {}, s, jax.random.PRNGKey(0), jnp.zeros((5, 4)), 3)
    assert out.shape == (5, 3)
    np.testing.assert_array_equal(out, np.ones((5, 3)))
    assert seen_t_shapes[0] == (5, 1)


def test_ddpm_sample_real_network_shape_range_determinism():
    s = diffusion.vp_schedule(3)
    net = diffusion.NoisePredictor(action_dim=2, width=8, num_blocks=1, time_dim=4)
    obs = jax.random.normal(jax.random.PRNGKey(0), (16, 3))
    params = jax.jit(net.init)(jax.random.PRNGKey(1), obs[:1], jnp.zeros((1, 2)),
                               jnp.zeros((1, 1)))["params"]
    sample = jax.jit(lambda k: diffusion.ddpm_sample(net.apply, params, s, k, obs, 2))
    a = sample(jax.random.PRNGKey(2))
    assert a.shape == (16, 2)
    assert np.all(np.isfinite(a)) and np.all(np.abs(a) <= 1.0)
    np.testing.assert_array_equal(a, sample(jax.random.PRNGKey(2)))
    assert not np.allclose(a, sample(jax.random.PRNGKey(3)))
    # rows are independent draws, not one draw broadcast
    assert not np.allclose(a[0], a[1])
