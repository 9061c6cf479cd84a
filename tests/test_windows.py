"""Windows: every base covered, all in bounds and full size, mostly-N windows skipped and counted."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mrl_dna import dna
from mrl_dna.errors import ConfigError
from mrl_dna.windows import WindowConfig, Windows, n_counts, split_windows, window_spans

FUZZ = settings(max_examples=150, deadline=None)


@st.composite
def length_size_stride(draw: st.DrawFn) -> tuple[int, int, int]:
    size = draw(st.integers(1, 300))
    stride = draw(st.integers(1, size))
    length = draw(st.integers(0, 3000))
    return length, size, stride


def assert_valid_tiling(spans: np.ndarray, length: int, size: int, stride: int) -> None:
    assert spans.dtype == np.int64 and spans.ndim == 2 and spans.shape[1] == 2
    if length == 0:
        assert spans.shape == (0, 2)
        return
    starts, ends = spans[:, 0], spans[:, 1]
    assert starts.min() >= 0 and ends.max() == length  # within bounds, the last ends at the record end
    assert (ends - starts == min(size, length)).all()  # every window full size (or the whole short record)
    assert (np.diff(starts) > 0).all()  # sorted, no duplicates
    assert starts[0] == 0
    # every base covered: no gap between consecutive windows
    assert (starts[1:] <= ends[:-1]).all()
    # consecutive starts at most one stride apart, and the layout is its own mirror image (so a record and
    # its reverse complement are cut into the same windows)
    assert (np.diff(starts) <= stride).all()
    mirrored = np.sort(length - spans[:, ::-1], axis=0)
    assert np.array_equal(spans, mirrored)


@FUZZ
@given(length_size_stride())
def test_window_spans_cover_every_base(lss: tuple[int, int, int]) -> None:
    length, size, stride = lss
    spans = window_spans(length, size, stride)
    assert_valid_tiling(spans, length, size, stride)
    covered = np.zeros(length, dtype=bool)
    for start, end in spans:
        covered[start:end] = True
    assert covered.all()


@FUZZ
@given(length_size_stride(), st.data())
def test_split_windows_properties(lss: tuple[int, int, int], data: st.DataObject) -> None:
    length, size, stride = lss
    frac = data.draw(st.sampled_from([0.0, 0.25, 0.5, 0.999, 1.0]))
    n_prob = data.draw(st.sampled_from([0.0, 0.1, 0.6, 1.0]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    tokens = rng.choice(np.array(dna.BASES, dtype=np.uint8), size=length)
    tokens[rng.random(length) < n_prob] = dna.N
    all_spans = window_spans(length, size, stride)
    win = split_windows(tokens, WindowConfig(size=size, stride=stride, max_n_fraction=frac))
    assert len(win) + win.n_skipped == len(all_spans)
    # the kept windows are exactly those within the N limit, in order (checked window by window)
    expected = [s for s in all_spans if np.count_nonzero(tokens[s[0] : s[1]] == dna.N) <= frac * (s[1] - s[0])]
    assert win.spans.tolist() == [list(map(int, s)) for s in expected]
    assert win.spans.dtype == np.int64 and win.spans.shape[1:] == (2,)
    if frac == 1.0:
        assert win.n_skipped == 0 and np.array_equal(win.spans, all_spans)


def test_examples() -> None:
    assert window_spans(10, 4, 4).tolist() == [[0, 4], [3, 7], [6, 10]]  # spread evenly, mirror-symmetric
    assert window_spans(8, 4, 4).tolist() == [[0, 4], [4, 8]]  # exact fit: no extra window
    assert window_spans(3, 4, 4).tolist() == [[0, 3]]  # short record: one short window
    assert window_spans(4, 4, 4).tolist() == [[0, 4]]
    assert window_spans(11, 8, 2).tolist() == [[0, 8], [1, 9], [2, 10], [3, 11]]  # one more window for symmetry
    assert window_spans(0, 4, 4).shape == (0, 2)


def test_empty_and_all_n_records() -> None:
    cfg = WindowConfig(size=4, stride=4)
    empty = split_windows(np.zeros(0, dtype=np.uint8), cfg)
    assert empty.spans.shape == (0, 2) and empty.n_skipped == 0
    all_n = split_windows(np.full(10, dna.N, dtype=np.uint8), cfg)
    assert all_n.spans.shape == (0, 2) and all_n.n_skipped == 3


def test_n_fraction_threshold_is_inclusive() -> None:
    tokens = dna.encode("NNAA" + "NNNA")
    win = split_windows(tokens, WindowConfig(size=4, stride=4, max_n_fraction=0.5))
    assert win.spans.tolist() == [[0, 4]] and win.n_skipped == 1  # 2/4 N kept, 3/4 N skipped


def test_n_counts_across_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    import mrl_dna.windows as windows

    monkeypatch.setattr(windows, "_N_COUNT_BLOCK", 7)  # many small blocks, boundaries inside and between them
    rng = np.random.default_rng(0)
    tokens = rng.choice(np.array([dna.A, dna.N], dtype=np.uint8), size=1000)
    spans = window_spans(1000, 33, 5)
    expected = [np.count_nonzero(tokens[s:e] == dna.N) for s, e in spans]
    assert n_counts(tokens, spans).tolist() == expected
    any_spans = np.sort(rng.integers(0, 1001, size=(200, 2)), axis=1)  # unsorted, overlapping, empty ones
    expected = [np.count_nonzero(tokens[s:e] == dna.N) for s, e in any_spans]
    assert n_counts(tokens, any_spans).tolist() == expected
    assert n_counts(tokens, np.zeros((0, 2), np.int64)).shape == (0,)


def test_large_record_is_fast_and_vectorised() -> None:
    import time

    tokens = np.full(20_000_000, dna.A, dtype=np.uint8)
    tokens[1_000_000:3_000_000] = dna.N
    t0 = time.perf_counter()
    win = split_windows(tokens, WindowConfig())
    assert time.perf_counter() - t0 < 2.0
    assert win.n_skipped == len(window_spans(len(tokens), 2048, 2048)) - len(win)
    assert 970 <= win.n_skipped <= 978  # ~2 Mbp of N in 2048-bp windows


def test_many_overlapping_windows_are_fast() -> None:
    import time

    t0 = time.perf_counter()
    spans = window_spans(5_000_000, 2048, 7)  # ~714k windows (np.unique took 2 s here)
    assert time.perf_counter() - t0 < 1.0
    assert (np.diff(spans[:, 0]) > 0).all() and spans[-1, 1] == 5_000_000


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"size": 0}, "window size 0 must be >= 1"),
        ({"size": 100, "stride": 0}, "window stride 0 must be >= 1"),
        ({"size": 100, "stride": 101}, "stride 101 exceeds window size 100"),
        ({"max_n_fraction": 1.5}, "max_n_fraction 1.5 must be between 0 and 1"),
        ({"max_n_fraction": -0.1}, "must be between 0 and 1"),
        ({"max_n_fraction": float("nan")}, "must be between 0 and 1"),
        ({"size": 2.5}, "is not an integer"),
        ({"size": True}, "is not an integer"),
    ],
)
def test_config_errors(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(")):
        WindowConfig(**kwargs)


def test_window_spans_validates_like_the_config() -> None:
    with pytest.raises(ConfigError, match="exceeds window size"):
        window_spans(100, 10, 20)
    with pytest.raises(ConfigError, match="negative"):
        window_spans(-1, 10, 10)


def test_config_is_frozen_and_accepts_numpy_ints() -> None:
    cfg = WindowConfig(size=np.int64(64), stride=np.int32(32), max_n_fraction=np.float32(0.25))
    assert (cfg.size, cfg.stride, cfg.max_n_fraction) == (64, 32, 0.25)
    assert type(cfg.size) is int and type(cfg.max_n_fraction) is float
    with pytest.raises(AttributeError):
        cfg.size = 1  # type: ignore[misc]
    assert isinstance(split_windows(np.zeros(0, np.uint8), cfg), Windows)


def test_split_windows_of_a_short_record_is_one_window_or_none(rng=np.random.default_rng(4)):
    """Records up to one window long take a shortcut (one numpy count, no tiling): the same windows and skips
    as the tiling path, at the N threshold too."""
    cfg = WindowConfig(size=100, stride=100, max_n_fraction=0.5)
    for n, n_n in [(0, 0), (1, 0), (1, 1), (10, 5), (10, 6), (100, 50), (100, 51), (99, 0)]:
        tok = dna.encode("".join(rng.choice(list("ACGT"), size=n - n_n)) + "N" * n_n)
        w = split_windows(tok, cfg)
        spans = window_spans(n, 100, 100)
        keep = n_counts(tok, spans) <= 0.5 * (spans[:, 1] - spans[:, 0])
        assert w.spans.tolist() == spans[keep].tolist() and w.n_skipped == int((~keep).sum()), (n, n_n)
        assert w.spans.dtype == np.int64 and w.spans.shape[1] == 2
