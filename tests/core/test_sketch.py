"""The word sketch: exact below its capacity, Space-Saving's bounds above it whatever the order
of the stream, merges within the same bounds, and bit-identical after save and load."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from streamfit.core.sketch import WordSketch, encode
from streamfit.core.state import State
from streamfit.errors import ConfigError

Triple = tuple[int, str, int]


def sketch_of(batches: list[list[Triple]], buckets: int, slots: int) -> WordSketch:
    sketch = WordSketch.empty(buckets, slots, width=8)
    for batch in batches:
        if batch:
            b, w, c = zip(*batch, strict=True)
            sketch.update(list(b), list(w), list(c))
    return sketch


def truth(batches: list[list[Triple]]) -> dict[int, Counter[str]]:
    out: dict[int, Counter[str]] = {}
    for batch in batches:
        for b, w, c in batch:
            out.setdefault(b, Counter())[w] += c
    return out


def assert_bounds(sketch: WordSketch, batches: list[list[Triple]]) -> None:
    """Space-Saving's guarantees, bucket by bucket: each kept word's count brackets its true
    count, no error exceeds N/k, every word seen more than N/k times is kept, totals exact."""
    k = sketch.slots
    true = truth(batches)
    for bucket in range(sketch.buckets):
        seen = true.get(bucket, Counter())
        top = sketch.top(bucket)
        n = sum(seen.values())
        assert top.total == n
        kept = {w.word: w for w in top.words}
        assert len(kept) == len(top.words) <= k
        assert sum(w.count for w in top.words) <= n
        for w in top.words:
            assert w.count - w.error <= seen[w.word] <= w.count, (bucket, w, seen)
            assert w.error * k <= n
        for word, count in seen.items():
            if count * k > n:
                assert word in kept, (bucket, word, count, n)
        counts = [w.count for w in top.words]
        assert counts == sorted(counts, reverse=True)


WORDS = [f"w{i}" for i in range(12)]
triples = st.tuples(st.integers(0, 2), st.sampled_from(WORDS), st.integers(1, 5))
streams = st.lists(st.lists(triples, max_size=8), max_size=12)


def test_counts_are_exact_while_a_bucket_has_no_more_words_than_slots() -> None:
    rng = np.random.default_rng(0)
    batches = [
        [(int(b), f"word{b}-{int(rng.integers(3))}", int(rng.integers(1, 9))) for b in bs]
        for bs in rng.integers(0, 50, size=(20, 30))
    ]
    sketch = sketch_of(batches, buckets=50, slots=3)
    for bucket, counter in truth(batches).items():
        top = sketch.top(bucket)
        assert {w.word: w.count for w in top.words} == dict(counter)
        assert all(w.error == 0 for w in top.words)
    assert sketch.top(0).words == [] or 0 in truth(batches)


@settings(max_examples=200, deadline=None)
@given(batches=streams, slots=st.integers(1, 3))
def test_space_saving_bounds_hold_for_any_stream(batches: list[list[Triple]], slots: int) -> None:
    assert_bounds(sketch_of(batches, buckets=3, slots=slots), batches)


def test_bounds_hold_when_the_frequent_word_comes_last() -> None:
    """The classic adversary: distinct words one at a time fill and churn the slots, then the
    heavy word arrives; it is kept and its count brackets the truth."""
    batches = [[(0, f"rare{i}", 1)] for i in range(40)] + [[(0, "heavy", 1)]] * 30
    sketch = sketch_of(batches, buckets=1, slots=4)
    assert_bounds(sketch, batches)
    assert sketch.top(0).words[0].word == "heavy"


@settings(max_examples=150, deadline=None)
@given(first=streams, second=streams, slots=st.integers(1, 3))
def test_a_merge_keeps_the_bounds_of_one_pass_over_both(
    first: list[list[Triple]], second: list[list[Triple]], slots: int
) -> None:
    a, b = sketch_of(first, 3, slots), sketch_of(second, 3, slots)
    merged = a.merged(b)
    assert_bounds(merged, first + second)
    other = b.merged(a)  # the same whichever way round
    for name, tensor in merged.tensors().items():
        assert torch.equal(tensor, other.tensors()[name]), name
    assert_bounds(a, first)  # neither input changed
    merged.update([0], ["w0"], [2])  # and a merged sketch goes on counting within the bounds
    assert_bounds(merged, [*first, *second, [(0, "w0", 2)]])


def test_a_merge_below_capacity_equals_one_pass() -> None:
    first = [[(0, "gpu", 2), (1, "rust", 1)], [(0, "cuda", 1)]]
    second = [[(0, "gpu", 3), (2, "zig", 4)]]
    merged = sketch_of(first, 3, 2).merged(sketch_of(second, 3, 2))
    one_pass = sketch_of(first + second, 3, 2)
    for name, tensor in merged.tensors().items():
        assert torch.equal(tensor, one_pass.tensors()[name]), name


def test_collisions_are_a_second_word_with_a_real_share() -> None:
    sketch = WordSketch.empty(3, slots=3)
    sketch.update(
        [0, 0, 1, 1, 2], ["kernel", "colonel", "gpu", "typo", "alone"], [90, 10, 99, 1, 5]
    )
    assert sketch.top(0).collisions  # colonel: 10% of the bucket
    assert not sketch.top(1).collisions  # typo: 1%
    assert sketch.top(1, share=0.01).collisions is True
    assert not sketch.top(2).collisions
    assert [w.word for w in sketch.top(0).words] == ["kernel", "colonel"]


def test_long_words_are_cut_at_a_character_boundary() -> None:
    sketch = WordSketch.empty(1, slots=2, width=6)
    sketch.update([0, 0], ["naïveté", "naïvety"], [1, 2])  # the same first 6 bytes: one word
    top = sketch.top(0)
    assert [(w.word, w.count) for w in top.words] == [("naïve", 3)]
    assert encode(["日本語"], 4).tolist() == [[230, 151, 165, 0]]  # 日 is 3 bytes; 本 cut


def test_save_and_load_is_bit_identical(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    sketch = WordSketch.empty(20, slots=2)
    for _ in range(10):
        n = 40
        sketch.update(
            rng.integers(0, 20, n), [f"w{i}" for i in rng.integers(0, 60, n)], rng.integers(1, 4, n)
        )
    state = State("ntm", {}, 20, tensors=sketch.tensors())
    state.save(tmp_path / "state")
    loaded = WordSketch.from_tensors(State.load(tmp_path / "state").tensors)
    for name, tensor in sketch.tensors().items():
        got = loaded.tensors()[name]
        assert got.dtype == tensor.dtype and torch.equal(got, tensor), name
    more = (rng.integers(0, 20, 30), [f"w{i}" for i in rng.integers(0, 60, 30)], [1] * 30)
    sketch.update(*more)
    loaded.update(*more)
    for name, tensor in sketch.tensors().items():
        assert torch.equal(loaded.tensors()[name], tensor), name


def test_updates_write_into_the_tensors_given() -> None:
    tensors = WordSketch.empty(4).tensors("words")
    WordSketch.from_tensors(tensors, "words").update([2], ["gpu"], [3])
    assert int(tensors["words.totals"][2]) == 3 and int(tensors["words.counts"][2, 0]) == 3


def test_bad_arguments_are_config_errors() -> None:
    sketch = WordSketch.empty(4, slots=2)
    with pytest.raises(ConfigError, match="outside"):
        sketch.update([4], ["x"], [1])
    with pytest.raises(ConfigError, match="negative"):
        sketch.update([0], ["x"], [-1])
    with pytest.raises(ConfigError, match="as many"):
        sketch.update([0, 1], ["x"], [1, 1])
    with pytest.raises(ConfigError, match="cannot be merged"):
        sketch.merged(WordSketch.empty(4, slots=3))
    with pytest.raises(ConfigError, match="missing"):
        WordSketch.from_tensors({})
    sketch.update([1, 2], ["x", "y"], [0, 1])  # a zero is no occurrence
    assert sketch.top(1).total == 0 and sketch.top(2).total == 1
