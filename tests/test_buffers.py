"""Offline store, online replay buffer and the symmetric 50/50 sampler (expo/buffers.py)."""
import numpy as np
import pytest

from expo import buffers

OBS, ACT = 3, 2


def offline_store(n=10):
    """Offline rows marked by reward -1; observations[:, 0] is the row id."""
    obs = np.zeros((n, OBS), np.float32)
    obs[:, 0] = np.arange(n)
    return buffers.TransitionStore({
        "observations": obs, "actions": np.zeros((n, ACT)), "rewards": -np.ones(n),
        "next_observations": obs + 100, "masks": np.ones(n)})


def online_buffer(n_added=7, capacity=20):
    """Online rows marked by reward +1; observations[:, 0] = 1000 + insertion index."""
    buf = buffers.ReplayBuffer(OBS, ACT, capacity)
    for i in range(n_added):
        o = np.array([1000.0 + i, 0, 0])
        buf.add(o, np.full(ACT, 0.5), 1.0, o + 1, 0.0 if i % 2 else 1.0)
    return buf


def test_every_minibatch_is_exactly_half_offline_half_online():
    off, on = offline_store(), online_buffer()
    rng = np.random.default_rng(0)
    for batch_size in (4, 8, 256):
        b = buffers.sample_symmetric(rng, off, on, num_batches=5, batch_size=batch_size)
        h = batch_size // 2
        assert b["rewards"].shape == (5, batch_size)
        assert b["observations"].shape == (5, batch_size, OBS)
        assert b["actions"].shape == (5, batch_size, ACT)
        assert b["next_observations"].shape == (5, batch_size, OBS)
        assert b["masks"].shape == (5, batch_size)
        np.testing.assert_array_equal(b["rewards"][:, :h], -1.0)  # first half offline
        np.testing.assert_array_equal(b["rewards"][:, h:], 1.0)   # second half online
        assert np.all(b["observations"][:, :h, 0] < 10)
        assert np.all(b["observations"][:, h:, 0] >= 1000)
        # fields of one transition stay together
        shift = np.where(b["rewards"] < 0, 100.0, 1.0)[..., None]  # offline +100, online +1
        np.testing.assert_array_equal(b["next_observations"], b["observations"] + shift)
        assert b["observations"].dtype == np.float32


def test_sampler_covers_both_stores_uniformly():
    off, on = offline_store(10), online_buffer(7)
    b = buffers.sample_symmetric(np.random.default_rng(1), off, on, num_batches=400, batch_size=50)
    off_ids = b["observations"][:, :25, 0].ravel()
    on_ids = b["observations"][:, 25:, 0].ravel() - 1000
    np.testing.assert_array_equal(np.unique(off_ids), np.arange(10))
    np.testing.assert_array_equal(np.unique(on_ids), np.arange(7))  # never an unfilled slot
    counts = np.bincount(off_ids.astype(int), minlength=10) / off_ids.size
    assert np.all(np.abs(counts - 0.1) < 0.02)


def test_sampler_is_seeded():
    off, on = offline_store(), online_buffer()
    a = buffers.sample_symmetric(np.random.default_rng(42), off, on, 3, 8)
    b = buffers.sample_symmetric(np.random.default_rng(42), off, on, 3, 8)
    c = buffers.sample_symmetric(np.random.default_rng(43), off, on, 3, 8)
    for f in buffers.FIELDS:
        np.testing.assert_array_equal(a[f], b[f])
    assert not np.array_equal(a["observations"], c["observations"])


def test_sample_offline_only():
    b = buffers.sample_offline(np.random.default_rng(0), offline_store(), 2, 6)
    assert b["rewards"].shape == (2, 6)
    np.testing.assert_array_equal(b["rewards"], -1.0)


def test_replay_buffer_add_and_wrap_around():
    buf = buffers.ReplayBuffer(OBS, ACT, capacity=3)
    assert buf.size == 0
    for i in range(5):
        buf.add(np.full(OBS, i), np.full(ACT, -i / 10), float(i), np.full(OBS, i + 0.5), i % 2)
        assert buf.size == min(i + 1, 3)
    # slots: 0 <- item 3, 1 <- item 4, 2 <- item 2
    np.testing.assert_array_equal(buf.data["observations"][:, 0], [3.0, 4.0, 2.0])
    np.testing.assert_array_equal(buf.data["rewards"], [3.0, 4.0, 2.0])
    np.testing.assert_allclose(buf.data["actions"][:, 0], [-0.3, -0.4, -0.2])
    np.testing.assert_array_equal(buf.data["next_observations"][:, 0], [3.5, 4.5, 2.5])
    np.testing.assert_array_equal(buf.data["masks"], [1.0, 0.0, 0.0])
    b = buffers.sample_symmetric(np.random.default_rng(0), offline_store(), buf, 50, 8)
    assert set(np.unique(b["rewards"][:, 4:])) == {2.0, 3.0, 4.0}  # items 0 and 1 were overwritten


def test_empty_online_buffer_cannot_be_sampled():
    with pytest.raises(ValueError):
        buffers.sample_symmetric(np.random.default_rng(0), offline_store(),
                                 buffers.ReplayBuffer(OBS, ACT, 5), 1, 4)


def test_transition_store_validates_fields():
    good = {"observations": np.zeros((3, OBS)), "actions": np.zeros((3, ACT)),
            "rewards": np.zeros(3), "next_observations": np.zeros((3, OBS)), "masks": np.ones(3)}
    with pytest.raises(ValueError, match="masks"):
        buffers.TransitionStore({k: v for k, v in good.items() if k != "masks"})
    with pytest.raises(ValueError, match="rewards"):
        buffers.TransitionStore({**good, "rewards": np.zeros(2)})
    store = buffers.TransitionStore(good)
    assert store.size == 3 and store.data["rewards"].dtype == np.float32


def test_extra_fields_are_stored_filled_and_sampled():
    buf = buffers.ReplayBuffer(OBS, ACT, capacity=4, extra={"mc_returns": -np.inf})
    for i in range(6):  # wraps around: rows 2..5 remain, in slots 2, 3, 0, 1
        buf.add(np.full(OBS, i), np.zeros(ACT), 0.0, np.zeros(OBS), 1.0)
    assert np.all(buf.data["mc_returns"] == -np.inf)  # not yet known: a vacuous bound
    buf.write_recent("mc_returns", [3.0, 4.0, 5.0])  # the last three added: rows 3, 4, 5
    by_row = dict(zip(buf.data["observations"][:, 0], buf.data["mc_returns"]))
    assert by_row == {2.0: -np.inf, 3.0: 3.0, 4.0: 4.0, 5.0: 5.0}
    with pytest.raises(ValueError, match="cannot write 5 rows"):
        buf.write_recent("mc_returns", np.zeros(5))
    n = 5
    off = buffers.TransitionStore({"observations": np.zeros((n, OBS)), "actions": np.zeros((n, ACT)),
                                   "rewards": np.zeros(n), "next_observations": np.zeros((n, OBS)),
                                   "masks": np.ones(n), "mc_returns": np.arange(n)}, extra=("mc_returns",))
    batch = buffers.sample_symmetric(np.random.default_rng(0), off, buf, 3, 4)
    assert batch["mc_returns"].shape == (3, 4)
    assert set(batch["mc_returns"][:, :2].ravel()) <= set(range(n))
    with pytest.raises(ValueError, match="lack fields"):
        buffers.TransitionStore({k: v for k, v in off.data.items() if k != "mc_returns"}, extra=("mc_returns",))


def test_sample_online_only_has_the_symmetric_layout_and_no_offline_row():
    on = online_buffer(7)
    b = buffers.sample_online(np.random.default_rng(0), on, num_batches=5, batch_size=8)
    s = buffers.sample_symmetric(np.random.default_rng(0), offline_store(), on, 5, 8)
    assert {f: v.shape for f, v in b.items()} == {f: v.shape for f, v in s.items()}
    np.testing.assert_array_equal(b["rewards"], 1.0)  # offline rows carry reward -1
    assert np.all(b["observations"][..., 0] >= 1000)
    np.testing.assert_array_equal(b["next_observations"], b["observations"] + 1)
    with pytest.raises(ValueError, match="empty"):
        buffers.sample_online(np.random.default_rng(0), buffers.ReplayBuffer(OBS, ACT, 5), 1, 4)


def test_contents_restore_an_identical_buffer_after_wrap_around():
    buf = buffers.ReplayBuffer(OBS, ACT, capacity=4, extra={"mc_returns": -np.inf})
    for i in range(6):
        buf.add(np.full(OBS, i), np.full(ACT, i / 10), float(i), np.full(OBS, i + 0.5), 1.0)
    buf.write_recent("mc_returns", [4.0, 5.0])
    rows, position = buf.contents()
    assert position == {"size": 4, "next": 2}
    copy = buffers.ReplayBuffer(OBS, ACT, capacity=4, extra={"mc_returns": -np.inf})
    copy.restore(rows, position["size"], position["next"])
    for f in buf.fields:
        np.testing.assert_array_equal(copy.data[f], buf.data[f])
    # both continue identically: same next slot, same samples
    for b in (buf, copy):
        b.add(np.full(OBS, 9), np.zeros(ACT), 9.0, np.zeros(OBS), 0.0)
    np.testing.assert_array_equal(copy.data["rewards"], buf.data["rewards"])
    a = buffers.sample_online(np.random.default_rng(3), buf, 2, 4)
    c = buffers.sample_online(np.random.default_rng(3), copy, 2, 4)
    for f in buf.fields:
        np.testing.assert_array_equal(a[f], c[f])


def test_partial_contents_restore_and_mismatches_are_refused():
    buf = online_buffer(3, capacity=10)
    rows, position = buf.contents()
    assert position == {"size": 3, "next": 3} and rows["observations"].shape == (3, OBS)
    rows["observations"][0, 0] = -5.0  # contents are copies: the buffer is unchanged
    assert buf.data["observations"][0, 0] == 1000.0
    fresh = online_buffer(6, capacity=10)  # holds more rows than the restored one: they go
    fresh.restore(buf.contents()[0], 3, 3)
    assert fresh.size == 3 and np.all(fresh.data["rewards"][3:] == 0.0)
    with pytest.raises(ValueError, match="capacity 10"):
        fresh.restore(buf.contents()[0], 3, 11)
    with pytest.raises(ValueError, match="cannot restore fields"):
        fresh.restore({**buf.contents()[0], "mc_returns": np.zeros(3)}, 3, 3)
    with pytest.raises(ValueError, match="field observations"):
        fresh.restore({**buf.contents()[0], "observations": np.zeros((2, OBS))}, 3, 3)
