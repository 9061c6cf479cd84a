"""Loss values against hand-computed cases; the Matryoshka wrapper equals the sum of its per-dim losses."""

import math

import pytest
import torch

from mrl_dna.errors import ConfigError
from mrl_dna.train.losses import MatryoshkaLoss, cosent_loss, infonce_loss, matryoshka_loss, truncate_normalize


def test_truncate_normalize_slices_then_normalizes():
    x = torch.tensor([[3.0, 4.0, 12.0]])
    assert torch.allclose(truncate_normalize(x, 2), torch.tensor([[0.6, 0.8]]))
    assert torch.allclose(truncate_normalize(x, 3), x / 13.0)


def test_truncate_normalize_rejects_too_wide():
    with pytest.raises(ConfigError, match="matryoshka dim 4 exceeds the embedding width 3"):
        truncate_normalize(torch.ones(1, 3), 4)


def test_cosent_hand_computed():
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    b = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # pair cosines (1, 0)
    # right order: score_1 < score_0 and cos_1 - cos_0 = -1 -> log(1 + e^-20)
    got = cosent_loss(a, b, torch.tensor([1.0, 0.0]))
    assert got.item() == pytest.approx(math.log1p(math.exp(-20.0)), abs=1e-7)
    # wrong order: score_0 < score_1 and cos_0 - cos_1 = 1 -> log(1 + e^20)
    got = cosent_loss(a, b, torch.tensor([0.0, 1.0]), scale=20.0)
    assert got.item() == pytest.approx(math.log1p(math.exp(20.0)), rel=1e-6)
    # equal scores: no ordered pair -> log(1) = 0
    assert cosent_loss(a, b, torch.tensor([0.5, 0.5])).item() == 0.0


def test_cosent_uses_cosine_not_dot():
    a = torch.tensor([[2.0, 0.0], [5.0, 0.0]])
    b = torch.tensor([[3.0, 0.0], [0.0, 7.0]])
    want = math.log1p(math.exp(-20.0 * 1.0))
    assert cosent_loss(a, b, torch.tensor([1.0, 0.0])).item() == pytest.approx(want, abs=1e-7)


def test_infonce_hand_computed():
    eye = torch.eye(2)
    # sim = I at scale 1: each row CE = -log(e / (e + 1)) = log(1 + e^-1)
    got = infonce_loss(eye, eye, scale=1.0)
    assert got.item() == pytest.approx(math.log1p(math.exp(-1.0)), rel=1e-6)


def test_infonce_symmetric_hand_computed():
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    b = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # sim = [[1, 0], [1, 0]]
    fwd = (math.log1p(math.exp(-1.0)) + math.log1p(math.e)) / 2  # rows
    bwd = math.log(2.0)  # columns: [[1, 1], [0, 0]] -> both rows CE = log 2
    assert infonce_loss(a, b, scale=1.0).item() == pytest.approx(fwd, rel=1e-6)
    assert infonce_loss(a, b, scale=1.0, symmetric=True).item() == pytest.approx((fwd + bwd) / 2, rel=1e-6)


def test_infonce_labels_mask_same_group_negatives():
    eye = torch.eye(3)
    # items 0 and 1 share a group: row 0 keeps only negative 2 -> CE = log(1 + e^-1) (scale 1),
    # item 2 keeps both negatives -> CE = log(1 + 2 e^-1)
    want = (2 * math.log1p(math.exp(-1.0)) + math.log1p(2 * math.exp(-1.0))) / 3
    got = infonce_loss(eye, eye, labels=torch.tensor([5, 5, 9]), scale=1.0)
    assert got.item() == pytest.approx(want, rel=1e-6)
    sym = infonce_loss(eye, eye, labels=torch.tensor([5, 5, 9]), scale=1.0, symmetric=True)
    assert sym.item() == pytest.approx(want, rel=1e-6)  # sim is symmetric here
    # every item in one group: only the positive is left -> loss 0
    assert infonce_loss(eye, eye, labels=torch.zeros(3, dtype=torch.long)).item() == pytest.approx(0.0, abs=1e-7)


def test_matryoshka_equals_weighted_sum_of_per_dim_losses():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 16, generator=g), torch.randn(6, 16, generator=g)
    dims, weights = (4, 8, 16), (1.0, 0.5, 2.0)
    total, per_dim = matryoshka_loss(infonce_loss, a, b, dims, weights, symmetric=True)
    assert list(per_dim) == [4, 8, 16]
    for k in dims:
        want = infonce_loss(truncate_normalize(a, k), truncate_normalize(b, k), symmetric=True)
        assert torch.allclose(per_dim[k], want)
    assert torch.allclose(total, sum(w * per_dim[k] for k, w in zip(dims, weights)))
    scores = torch.rand(6, generator=g)
    total, per_dim = MatryoshkaLoss(dims)(cosent_loss, a, b, scores=scores)
    assert torch.allclose(total, sum(per_dim.values()))


def test_matryoshka_gradients_flow_to_all_dims():
    a = torch.randn(4, 8, requires_grad=True)
    b = torch.randn(4, 8)
    total, _ = MatryoshkaLoss((2, 8))(infonce_loss, a, b)
    total.backward()
    assert a.grad is not None and a.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(dims=()), "matryoshka dims are empty; give at least one dim, e.g. 8,16,32,64"),
        (dict(dims=(0, 8)), "matryoshka dim 0 is not positive; give dims >= 1"),
        (dict(dims=(16, 8)), "matryoshka dims [16, 8] are not strictly increasing; give e.g. 8,16,32,64"),
        (dict(dims=(8, 8)), "matryoshka dims [8, 8] are not strictly increasing; give e.g. 8,16,32,64"),
        (dict(dims=(8, 256), model_dim=128), "matryoshka dim 256 exceeds the model's width 128; pick dims <= 128"),
        (dict(dims=(8, 16), weights=(1.0,)), "matryoshka weights has 1 values for 2 dims; give one weight per dim"),
        (dict(dims=(8, 16), weights=(1.0, -0.5)), "matryoshka weight -0.5 is not >= 0; give weights >= 0"),
        (dict(dims=(8, 16), weights=(0, 0)), "matryoshka weights are all zero; give at least one positive weight"),
    ],
)
def test_matryoshka_validation_messages(kw, message):
    with pytest.raises(ConfigError) as e:
        MatryoshkaLoss(**kw)
    assert str(e.value) == message


def test_matryoshka_defaults():
    m = MatryoshkaLoss([8, 16, 32], model_dim=32)
    assert m.dims == (8, 16, 32) and m.weights == (1.0, 1.0, 1.0)


def test_infonce_with_queued_negatives_equals_those_rows_as_batch_negatives():
    """infonce_loss(extra=E): a_i picks b_i among the b_j AND E's rows, exactly as if E's rows were more b_j of
    the batch (the rows of the in-batch loss that belong to real anchors); symmetric: b_i among the a_j and E."""
    g = torch.Generator().manual_seed(0)
    a, b, e = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g), torch.randn(7, 8, generator=g)
    n, F_ = 5, torch.nn.functional
    norm = lambda x: F_.normalize(x, dim=-1)  # noqa: E731
    target = torch.arange(n)
    in_batch_ab = (norm(a) @ norm(torch.cat([b, e])).T * 20.0)  # (5, 12): the queued rows as batch columns
    in_batch_ba = (norm(b) @ norm(torch.cat([a, e])).T * 20.0)
    want = F_.cross_entropy(in_batch_ab, target)
    torch.testing.assert_close(infonce_loss(a, b, extra=e), want, rtol=0, atol=1e-6)
    want_sym = (want + F_.cross_entropy(in_batch_ba, target)) / 2
    torch.testing.assert_close(infonce_loss(a, b, extra=e, symmetric=True), want_sym, rtol=0, atol=1e-6)
    # through the Matryoshka wrapper: the queued rows are truncated and normalised per dim like a and b
    total, per = matryoshka_loss(infonce_loss, a, b, (4, 8), (1.0, 1.0), extra=e, symmetric=True)
    torch.testing.assert_close(per[4], infonce_loss(a[:, :4], b[:, :4], extra=e[:, :4], symmetric=True), rtol=0, atol=1e-6)
    torch.testing.assert_close(total, per[4] + per[8])
    assert infonce_loss(a, b, extra=e) > infonce_loss(a, b)  # more negatives, harder


def test_negative_queue_is_a_ring_of_the_newest_rows_and_round_trips():
    from mrl_dna.train.queue import NegativeQueue

    q = NegativeQueue(5, 2, torch.device("cpu"))
    assert q.negatives() is None
    rows = torch.arange(16.0).reshape(8, 2)
    q.push(rows[:3])
    assert torch.equal(q.negatives(), rows[:3])
    q.push(rows[3:7])  # wraps: 5 rows kept, the oldest two overwritten
    assert q.filled == 5 and sorted(q.negatives()[:, 0].tolist()) == [4.0, 6.0, 8.0, 10.0, 12.0]
    r = NegativeQueue(5, 2, torch.device("cpu"))
    r.load_state_dict(q.state_dict())
    q.push(rows[7:]), r.push(rows[7:])
    assert torch.equal(q.negatives(), r.negatives()) and (q.pos, q.filled) == (r.pos, r.filled)
    q.push(torch.arange(14.0).reshape(7, 2))  # more rows than it holds: the newest 5
    assert sorted(q.negatives()[:, 0].tolist()) == [4.0, 6.0, 8.0, 10.0, 12.0]


def test_variance_loss_is_one_for_identical_rows_and_zero_for_spread_features():
    """VICReg's variance term: the penalty an encoder pays for giving every window the same features."""
    from mrl_dna.train.losses import variance_loss

    same = torch.randn(1, 6).repeat(10, 1)
    assert abs(variance_loss(same).item() - (1 - 1e-2)) < 1e-6  # std = sqrt(0 + eps) = 0.01
    spread = torch.randn(4000, 6, generator=torch.Generator().manual_seed(0)) * 2
    assert variance_loss(spread).item() == 0.0
    x = torch.zeros(8, 3, requires_grad=True)
    with torch.no_grad():
        x[::2] = 0.1  # every feature has std ~0.05: penalised, and the gradient spreads the rows apart
    variance_loss(x).backward()
    assert (x.grad[::2] < 0).all() and (x.grad[1::2] > 0).all()
