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


def _oracle_apply_fn(schedule, actions, offset):
    """A stub eps-network that knows the clean actions: it recovers the true noise exactly from
    (a_t, t) with the hand-written T=3 alpha-bars, then adds `offset`. Its loss is then a known
    number that does not depend on which t and noise the loss function drew."""
    abar = jnp.asarray(T3_ALPHA_BARS)

    def apply_fn(variables, observations, a_t, t, training=False, rngs=None):
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


def test_ddpm_loss_draws_all_steps_and_standard_noise():
    s = diffusion.vp_schedule(3)
    B, A = 2000, 2
    actions = jnp.zeros((B, A))
    obs = jnp.arange(B, dtype=jnp.float32)[:, None]
    rec = []

    def zero_apply(variables, observations, a_t, t, training=False, rngs=None):
        rec.append(dict(t=np.asarray(t), a_t=np.asarray(a_t), obs=np.asarray(observations),
                        training=training, rngs=rngs))
        return jnp.zeros_like(a_t)

    loss = diffusion.ddpm_loss(zero_apply, {}, s, jax.random.PRNGKey(0), obs, actions)
    r = rec[0]
    assert r["t"].shape == (B, 1)  # the step is passed as a [B, 1] column
    assert set(np.unique(r["t"])) == {0, 1, 2}  # t uniform over [0, T)
    assert r["training"] is False
    np.testing.assert_array_equal(r["obs"], obs)
    # with a_0 = 0, a_t = sqrt(1 - abar_t) * noise, and the loss is mean_b ||noise_b||^2
    noise = r["a_t"] / np.sqrt(1.0 - np.asarray(T3_ALPHA_BARS)[r["t"][:, 0]])[:, None]
    np.testing.assert_allclose(loss, np.mean(np.sum(noise ** 2, -1)), rtol=1e-4)
    assert abs(noise.mean()) < 0.05 and abs(noise.std() - 1.0) < 0.05
    # a dropout key switches the network to training mode and hands it the key
    diffusion.ddpm_loss(zero_apply, {}, s, jax.random.PRNGKey(0), obs, actions,
                        dropout_key=jax.random.PRNGKey(5))
    assert rec[1]["training"] is True and "dropout" in rec[1]["rngs"]


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


def test_ddpm_sample_runs_steps_T_minus_1_down_to_noise_free_0():
    """The stub records the steps it is called at, and at t = 0 predicts the eps that puts the
    posterior mean at 0.25 (for t = 0, beta / sqrt(1 - abar) = sqrt(beta) = sqrt(1 - alpha_0)).
    The last step must be t = 0 and add no noise, so every output is exactly 0.25."""
    s = diffusion.vp_schedule(3)
    steps, t_shapes = [], []
    a0 = T3_ALPHAS[0]

    def stub(variables, observations, a_t, t, training=False, rngs=None):
        t_shapes.append(t.shape)
        jax.debug.callback(lambda tt: steps.append(np.asarray(tt).copy()), t, ordered=True)
        eps0 = (a_t - np.sqrt(a0) * 0.25) / np.sqrt(1.0 - a0)
        return jnp.where(t == 0, eps0, 0.0)

    out = diffusion.ddpm_sample(stub, {}, s, jax.random.PRNGKey(0), jnp.zeros((5, 4)), 3)
    jax.effects_barrier()
    assert out.shape == (5, 3)
    np.testing.assert_allclose(out, np.full((5, 3), 0.25), atol=1e-5)
    assert t_shapes[0] == (1, 1)  # one step for the whole batch: the network broadcasts it
    assert [int(t[0, 0]) for t in steps] == [2, 1, 0]


def test_one_step_for_the_batch_equals_the_step_on_every_row():
    """NoisePredictor (and the plain-MLP one) given t [1, 1] give exactly what t [B, 1] gives."""
    obs = jax.random.normal(jax.random.PRNGKey(0), (6, 4))
    a_t = jax.random.normal(jax.random.PRNGKey(1), (6, 3))
    for net in (diffusion.NoisePredictor(3, width=16, num_blocks=2, time_dim=8),
                diffusion.MLPNoisePredictor(3, (16, 16), 8, (16, 8))):
        params = net.init(jax.random.PRNGKey(2), obs, a_t, jnp.zeros((6, 1), jnp.int32))
        for t in (0, 4):
            per_row = net.apply(params, obs, a_t, jnp.full((6, 1), t))
            once = net.apply(params, obs, a_t, jnp.full((1, 1), t))
            np.testing.assert_allclose(once, per_row, rtol=1e-5, atol=1e-6)  # float rounding


def test_concat_dense_is_dense_on_the_concatenation_with_its_parameters():
    """ConcatDense(parts) = nn.Dense(concat(parts)) with the same kernel and bias, a one-row part
    broadcast to every row; inside MLP and the noise networks it keeps nn.Dense's parameter tree
    and initial weights (checkpoints and seeds mean what they meant before)."""
    import flax.linen as nn
    from expo.nets.mlp import MLP, ConcatDense, default_init

    a = jax.random.normal(jax.random.PRNGKey(0), (5, 3))
    s = jax.random.normal(jax.random.PRNGKey(1), (5, 4))
    t_row = jax.random.normal(jax.random.PRNGKey(2), (1, 6))
    whole = jnp.concatenate([a, s, jnp.broadcast_to(t_row, (5, 6))], -1)
    dense, split = nn.Dense(8, kernel_init=default_init()), ConcatDense(8)
    p_dense = dense.init(jax.random.PRNGKey(3), whole)
    p_split = split.init(jax.random.PRNGKey(3), a, s, t_row)
    jax.tree_util.tree_map(np.testing.assert_array_equal, p_split, p_dense)
    # bias 0 at init: give it a value so that it is checked too
    p_dense = jax.tree_util.tree_map(lambda x: x + 0.5, p_dense)
    kernel = np.asarray(p_dense["params"]["kernel"], np.float64)
    expected = np.asarray(whole, np.float64) @ kernel + 0.5
    np.testing.assert_allclose(split.apply(p_dense, a, s, t_row), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dense.apply(p_dense, whole), expected, rtol=1e-5, atol=1e-5)

    mlp = MLP((8, 8, 2), use_layer_norm=True)
    p_parts = mlp.init(jax.random.PRNGKey(4), (a, s, t_row))
    p_whole = mlp.init(jax.random.PRNGKey(4), whole)
    jax.tree_util.tree_map(np.testing.assert_array_equal, p_parts, p_whole)
    np.testing.assert_allclose(mlp.apply(p_parts, (a, s, t_row)), mlp.apply(p_whole, whole),
                               rtol=1e-5, atol=1e-6)
    assert set(p_parts["params"]) == {"Dense_0", "Dense_1", "Dense_2", "LayerNorm_0", "LayerNorm_1"}
    net = diffusion.NoisePredictor(3, width=16, num_blocks=2, time_dim=8)
    params = net.init(jax.random.PRNGKey(5), s, a, jnp.zeros((5, 1)))["params"]
    assert {"Dense_0", "Dense_1", "FourierFeatures_0", "MLP_0", "ResidualBlock_0",
            "ResidualBlock_1"} == set(params)
    assert params["Dense_0"]["kernel"].shape == (3 + 4 + 16, 16)


def test_ddpm_sample_shape_range_and_seeding():
    s = diffusion.vp_schedule(3)

    def zero_eps(variables, observations, a_t, t, training=False, rngs=None):
        return jnp.zeros_like(a_t)

    obs = jnp.zeros((64, 4))
    sample = jax.jit(lambda k: diffusion.ddpm_sample(zero_eps, {}, s, k, obs, 2))
    a = np.asarray(sample(jax.random.PRNGKey(2)))
    assert a.shape == (64, 2)
    assert np.all(np.isfinite(a)) and np.all(np.abs(a) <= 1.0)
    assert 0 < np.mean(np.abs(a) == 1.0) < 1  # clipping is active but not everywhere
    np.testing.assert_array_equal(a, sample(jax.random.PRNGKey(2)))
    assert not np.allclose(a, sample(jax.random.PRNGKey(3)))
    assert len(np.unique(a[:, 0])) > 3  # independent draws per row, not one broadcast draw
