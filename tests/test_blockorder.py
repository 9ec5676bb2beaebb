"""The block order (``training.blockorder``): runs of consecutive notes, read in random order
and shuffled within a buffer, balanced in expectation; and its reads through
``SpectraReader.rows``."""
import re

import numpy as np
import pytest

from featurestore.reader import SpectraReader
from training.blockorder import block_plan, memory_for_cache


def _balanced(labels: np.ndarray) -> np.ndarray:
    """Families equally likely (the sampler's weights without instruments)."""
    counts = np.bincount(labels)
    weights = 1.0 / counts[labels]
    return weights / weights.sum()


def test_blocks_are_runs_read_in_file_order_and_slots_name_their_notes():
    rng = np.random.default_rng(0)
    plan = block_plan(np.full(100, 0.01), 250, block=8, window=3, rng=rng)
    assert len(plan.notes) == len(plan.window) == len(plan.slot) == 250
    for w, starts in enumerate(plan.blocks):
        assert len(starts) <= 3 and (np.diff(starts) > 0).all() and (starts % 8 == 0).all()
        members = np.concatenate([np.arange(s, min(s + 8, 100)) for s in starts])
        here = plan.window == w
        np.testing.assert_array_equal(plan.notes[here], members[plan.slot[here]])
    assert (np.diff(plan.window) >= 0).all()  # buffer after buffer


def test_uniform_sampling_takes_every_note_once_per_pass():
    n = 103  # a short last block
    plan = block_plan(np.full(n, 1 / n), n, block=10, window=4, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(np.sort(plan.notes), np.arange(n))
    plan = block_plan(np.full(n, 1 / n), 3 * n, block=10, window=4,
                      rng=np.random.default_rng(1))
    assert (np.bincount(plan.notes, minlength=n) == 3).all()


def test_balance_holds_in_expectation_with_families_in_runs():
    # the store's order groups families (as a build of sorted names does): 700 notes of
    # family 0, 200 of family 1, 100 of family 2
    labels = np.repeat([0, 1, 2], [700, 200, 100])
    plan = block_plan(_balanced(labels), 30_000, block=16, window=8,
                      rng=np.random.default_rng(2))
    shares = np.bincount(labels[plan.notes], minlength=3) / len(plan.notes)
    np.testing.assert_allclose(shares, 1 / 3, atol=0.02)
    takes = np.bincount(plan.notes, minlength=len(labels))
    assert takes[700:].mean() > 2.5 * takes[:700].mean()  # the rare family repeated


def test_buffers_mix_notes_and_the_seed_decides():
    weights = np.full(512, 1 / 512)
    a = block_plan(weights, 512, block=8, window=8, rng=np.random.default_rng(3))
    b = block_plan(weights, 512, block=8, window=8, rng=np.random.default_rng(3))
    c = block_plan(weights, 512, block=8, window=8, rng=np.random.default_rng(4))
    np.testing.assert_array_equal(a.notes, b.notes)
    assert not np.array_equal(a.notes, c.notes)
    first = a.notes[:64]  # the first buffer, shuffled: not one run after another
    assert len(np.unique(first // 8)) == 8 and (np.abs(np.diff(first)) != 1).mean() > 0.8


@pytest.mark.parametrize("bad", [dict(total=0), dict(block=0), dict(window=0)])
def test_bad_plans_are_refused_with_what_was_asked(bad):
    args = {"total": 10, "block": 4, "window": 2, **bad}
    with pytest.raises(ValueError, match="block_plan needs"):
        block_plan(np.full(10, 0.1), rng=np.random.default_rng(0), **args)


def test_memory_for_cache_is_half_the_memory_at_most():
    import os
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < memory_for_cache() <= ram // 2


def test_rows_are_one_read_equal_to_the_notes(tone_store):
    with SpectraReader(tone_store / "train.h5") as reader:
        assert reader.in_order and reader.method == "mmap"
        np.testing.assert_array_equal(reader.rows(3, 11), reader.batch(np.arange(3, 11))[0])
        assert reader.rows(5, 5).shape == (0,) + reader.shape
        reader.will_need(0, len(reader))  # a hint: nothing to see but that it is accepted
        with pytest.raises(IndexError, match=r"rows must lie in \[0, 22\], got 20:23"):
            reader.rows(20, 23)
        both = np.empty((5,) + reader.shape, np.float16)
        reader.runs([(3, 5), (10, 13)], both)
        np.testing.assert_array_equal(both, reader.batch([3, 4, 10, 11, 12])[0])
        with pytest.raises(ValueError, match="C-contiguous float16"):
            reader.runs([(0, 2)], np.empty((4,) + reader.shape, np.float16)[::2])
    frames, bins = reader.shape
    for method in ("mmap", "h5py"):  # each refuses an out of another shape up front
        with SpectraReader(tone_store / "train.h5", method=method) as reader:
            for out in (np.empty((2, bins, frames), np.float16), np.empty(20, np.float16),
                        np.empty((1, frames, bins), np.float16)):
                with pytest.raises(ValueError, match=rf"out must be .* of shape \(2, {frames}, "
                                                     rf"{bins}\) .*got float16 "
                                                     + re.escape(str(out.shape))):
                    reader.rows(0, 2, out=out)
            with pytest.raises(IndexError, match=r"indices must be in \[0, 22\), got "
                                                 r"18446744073709551615"):
                reader.batch(np.array([2 ** 64 - 1], np.uint64))  # not -1, the last note
    with SpectraReader(tone_store / "train.h5", method="h5py") as reader:
        assert not reader.in_order  # read note by note
        with SpectraReader(tone_store / "train.h5") as mapped:
            np.testing.assert_array_equal(reader.rows(0, 22), mapped.rows(0, 22))


def test_buffers_are_read_once_held_while_used_and_their_memory_reused():
    from concurrent.futures import ThreadPoolExecutor

    from training.blockorder import Buffers
    fills = []

    def fill(key):
        def run(array):
            fills.append(key)
            array[:] = key
        return run
    buffers = Buffers(kept=2)
    with ThreadPoolExecutor(4) as pool:  # four threads ask for buffer 0 at once: one read
        list(pool.map(lambda _: buffers.use(0, (4, 3), np.float32, fill(0)).__enter__(),
                      range(4)))
    assert fills == [0]
    with buffers.use(1, (4, 3), np.float32, fill(1)) as one:
        assert (one == 1).all()
    with buffers.use(2, (3, 3), np.float32, fill(2)) as two:  # 0 dropped, but still in use
        assert (two == 2).all() and two.shape == (3, 3)
    assert fills == [0, 1, 2]
    with buffers.use(3, (4, 3), np.float32, fill(3)) as three:  # 1 dropped, its memory reused
        assert three.base is one.base or three is one
        assert (three == 3).all()
    buffers.clear()
    with buffers.use(0, (4, 3), np.float32, fill(0)) as again:  # a new epoch reads again
        assert (again == 0).all()
    assert fills == [0, 1, 2, 3, 0]


def test_a_note_drawn_often_is_drawn_in_different_buffers():
    # family 1's 40 notes are drawn about 12 times a pass each, in a pass of about 62 buffers:
    # spread over them, not 12 times in one
    labels = np.repeat([0, 1], [960, 40])
    plan = block_plan(_balanced(labels), 4000, block=4, window=4,
                      rng=np.random.default_rng(5))
    for w in range(len(plan.blocks)):
        _, counts = np.unique(plan.notes[plan.window == w], return_counts=True)
        assert counts.max() <= 3
    rare = np.isin(plan.notes, np.arange(960, 1000))
    assert len(np.unique(plan.window[rare])) > 0.8 * len(plan.blocks)
