"""modalink.losses against naive Python loops, plus gradients, registry and a 2-process gather."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from modalink.losses import (AAMSoftmax, AlignmentMSE, InfoNCE, ModalinkLoss, OrthogonalProjectionLoss,
                             create_loss, list_losses)
from modalink.losses.base import LOSSES


def _cos(u: list[float], v: list[float]) -> float:
    dot = sum(a * b for a, b in zip(u, v))
    return dot / (math.sqrt(sum(a * a for a in u)) * math.sqrt(sum(b * b for b in v)))


def _rows(x: torch.Tensor) -> list[list[float]]:
    return x.detach().double().tolist()


# --------------------------------------------------------------------------------- OPL
def _naive_opl(feats, labels, gamma):
    f, y = _rows(feats), labels.tolist()
    pos, n_pos, neg, n_neg = 0.0, 0, 0.0, 0
    for i in range(len(f)):
        for j in range(len(f)):
            c = _cos(f[i], f[j])
            if y[i] == y[j] and i != j:
                pos, n_pos = pos + c, n_pos + 1
            elif y[i] != y[j]:
                neg, n_neg = neg + abs(c), n_neg + 1
    return (1 - pos / (n_pos + 1e-6)) + gamma * neg / (n_neg + 1e-6)


@pytest.mark.parametrize("gamma", [0.7, 0.0, 2.0])
def test_opl_matches_naive_loop_and_has_gradients(gamma):
    torch.manual_seed(0)
    feats = torch.randn(12, 7, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3, 0, 2, 4, 4])
    loss = OrthogonalProjectionLoss(gamma=gamma)(feats, labels)
    assert loss.ndim == 0
    assert loss.item() == pytest.approx(_naive_opl(feats, labels, gamma), abs=1e-9)
    loss.backward()
    assert torch.isfinite(feats.grad).all() and feats.grad.abs().sum() > 0


def test_opl_default_gamma_and_extremes():
    assert OrthogonalProjectionLoss().gamma == 0.7
    # identical same-label features and orthogonal classes: the minimum, 0
    e = torch.eye(3)
    feats = torch.cat([e, 2 * e])
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    assert OrthogonalProjectionLoss()(feats, labels).item() == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ValueError, match="labels"):
        OrthogonalProjectionLoss()(feats, labels[:4])


# --------------------------------------------------------------------------------- InfoNCE
def _naive_infonce(a, b, temperature, labels=None):
    A = [[x / math.sqrt(sum(v * v for v in r)) for x in r] for r in _rows(a)]
    B = [[x / math.sqrt(sum(v * v for v in r)) for x in r] for r in _rows(b)]
    y = labels.tolist() if labels is not None else None
    n = len(A)

    def direction(P, Q):
        total = 0.0
        for i in range(n):
            logits = []
            for j in range(n):
                if y is not None and j != i and y[i] == y[j]:
                    continue
                logits.append(sum(p * q for p, q in zip(P[i], Q[j])) / temperature)
            pos = sum(p * q for p, q in zip(P[i], Q[i])) / temperature
            total += -(pos - math.log(sum(math.exp(z) for z in logits)))
        return total / n

    return 0.5 * (direction(A, B) + direction(B, A))


@pytest.mark.parametrize("use_labels", [False, True])
def test_infonce_matches_naive_loop(use_labels):
    torch.manual_seed(1)
    a = torch.randn(10, 6, dtype=torch.float64, requires_grad=True)
    b = torch.randn(10, 6, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 1, 2, 3, 3, 3, 4, 5, 6]) if use_labels else None
    loss_fn = InfoNCE(temperature=0.1, learnable=False).double()
    loss = loss_fn(a, b, labels)
    assert loss.ndim == 0
    assert loss.item() == pytest.approx(_naive_infonce(a, b, 0.1, labels), abs=1e-9)
    loss.backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0


def test_infonce_labels_change_the_loss_only_with_duplicates():
    torch.manual_seed(2)
    a, b = torch.randn(6, 4), torch.randn(6, 4)
    fn = InfoNCE(learnable=False)
    assert fn(a, b, torch.arange(6)).item() == pytest.approx(fn(a, b).item(), abs=1e-6)
    assert fn(a, b, torch.tensor([0, 0, 1, 1, 2, 2])).item() != pytest.approx(fn(a, b).item(), abs=1e-4)


def test_infonce_learnable_vs_fixed_temperature():
    torch.manual_seed(3)
    a = torch.randn(8, 5, requires_grad=True)
    b = torch.randn(8, 5)
    learn, fixed = InfoNCE(temperature=0.07), InfoNCE(temperature=0.07, learnable=False)
    assert learn.temperature == pytest.approx(0.07, rel=1e-5)
    assert [n for n, _ in learn.named_parameters()] == ["logit_scale"]
    assert list(fixed.parameters()) == [] and fixed.temperature == 0.07
    l1, l2 = learn(a, b), fixed(a, b)
    assert l1.item() == pytest.approx(l2.item(), rel=1e-6)
    l1.backward()
    assert learn.logit_scale.grad is not None and learn.logit_scale.grad.abs() > 0
    # a step on the temperature changes the loss; the fixed one has nothing to step
    opt = torch.optim.SGD(learn.parameters(), lr=0.5)
    opt.step()
    assert learn.temperature != pytest.approx(0.07, rel=1e-4)
    # clamping: a runaway scale is pulled back to the bounds at the next forward
    with torch.no_grad():
        learn.logit_scale.fill_(math.log(1e6))
    learn(a, b)
    assert learn.temperature == pytest.approx(learn.min_temperature, rel=1e-5)
    with pytest.raises(ValueError, match="temperature"):
        InfoNCE(temperature=0.001)


def test_infonce_input_errors():
    fn = InfoNCE()
    with pytest.raises(ValueError, match="same shape"):
        fn(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match="labels"):
        fn(torch.randn(4, 3), torch.randn(4, 3), torch.zeros(3, dtype=torch.long))


# --------------------------------------------------------------------------------- AAM softmax
def _naive_aam(emb, weight, labels, m, s, easy):
    E, W, y = _rows(emb), _rows(weight), labels.tolist()
    total = 0.0
    for i in range(len(E)):
        logits = []
        for c in range(len(W)):
            cos = _cos(E[i], W[c])
            if c == y[i]:
                theta = math.acos(max(-1.0, min(1.0, cos)))
                if easy:
                    cos = math.cos(theta + m) if cos > 0 else cos
                else:
                    cos = math.cos(theta + m) if theta < math.pi - m else cos - m * math.sin(m)
            logits.append(s * cos)
        mx = max(logits)
        total += -(logits[y[i]] - mx - math.log(sum(math.exp(z - mx) for z in logits)))
    return total / len(E)


@pytest.mark.parametrize("easy", [False, True])
def test_aam_matches_naive_loop(easy):
    torch.manual_seed(4)
    loss_fn = AAMSoftmax(6, 5, margin=0.3, scale=16.0, easy_margin=easy).double()
    emb = torch.randn(9, 6, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2, 3])
    with torch.no_grad():  # make one sample nearly opposite its class: exercises θ + m > π
        emb[0] = -loss_fn.weight[0] + 1e-3
    loss = loss_fn(emb, labels)
    assert loss.item() == pytest.approx(_naive_aam(emb, loss_fn.weight, labels, 0.3, 16.0, easy), abs=1e-8)
    loss.backward()
    assert torch.isfinite(emb.grad).all() and emb.grad.abs().sum() > 0
    assert torch.isfinite(loss_fn.weight.grad).all() and loss_fn.weight.grad.abs().sum() > 0


def test_aam_margin_on_target_logit_only():
    torch.manual_seed(5)
    fn = AAMSoftmax(4, 3, margin=0.2, scale=30.0).double()
    emb = torch.randn(5, 4, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 0, 1])
    plain, marg = fn.logits(emb), fn.logits(emb, labels)
    theta = torch.acos((plain / 30.0).gather(1, labels[:, None]))
    expected = torch.where(theta < math.pi - 0.2, torch.cos(theta + 0.2),
                           torch.cos(theta) - 0.2 * math.sin(0.2)) * 30.0
    torch.testing.assert_close(marg.gather(1, labels[:, None]), expected)
    off = torch.ones_like(plain, dtype=torch.bool).scatter(1, labels[:, None], False)
    torch.testing.assert_close(marg[off], plain[off])
    # the margin makes the target harder: the loss goes up; margin 0 is plain normalised softmax
    assert fn(emb, labels) > F.cross_entropy(plain, labels)
    fn0 = AAMSoftmax(4, 3, margin=0.0, scale=30.0).double()
    fn0.weight.data.copy_(fn.weight.data)
    torch.testing.assert_close(fn0(emb, labels), F.cross_entropy(plain, labels))


def test_aam_gradient_finite_at_exact_alignment_and_errors():
    fn = AAMSoftmax(4, 3)
    emb = fn.weight.detach()[[0, 1]].clone().requires_grad_(True)  # cos θ = 1 exactly
    fn(emb, torch.tensor([0, 1])).backward()
    assert torch.isfinite(emb.grad).all()
    with pytest.raises(ValueError, match="labels must be in"):
        fn(torch.randn(2, 4), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="dim"):
        fn(torch.randn(2, 5), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="radians"):
        AAMSoftmax(4, 3, margin=20.0)


# --------------------------------------------------------------------------------- alignment
@pytest.mark.parametrize("normalize", [True, False])
def test_alignment_mse_matches_naive_loop(normalize):
    torch.manual_seed(6)
    a = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, 3, dtype=torch.float64)
    A, B = _rows(a), _rows(b)
    if normalize:
        A = [[x / math.sqrt(sum(v * v for v in r)) for x in r] for r in A]
        B = [[x / math.sqrt(sum(v * v for v in r)) for x in r] for r in B]
    mask = torch.tensor([True, False, True, True, False])
    fn = AlignmentMSE(normalize=normalize)
    naive_all = sum((x - y) ** 2 for ra, rb in zip(A, B) for x, y in zip(ra, rb)) / 15
    naive_mask = sum((x - y) ** 2 for i, (ra, rb) in enumerate(zip(A, B)) if mask[i]
                     for x, y in zip(ra, rb)) / 9
    assert fn(a, b).item() == pytest.approx(naive_all, abs=1e-12)
    loss = fn(a, b, mask)
    assert loss.item() == pytest.approx(naive_mask, abs=1e-12)
    loss.backward()
    assert a.grad[~mask].abs().sum() == 0 and a.grad[mask].abs().sum() > 0
    zero = fn(a, b, torch.zeros(5, dtype=torch.bool))
    assert zero.item() == 0.0 and zero.requires_grad


# --------------------------------------------------------------------------------- registry
def test_registry():
    assert {"opl", "infonce", "aam_softmax", "alignment_mse"} <= set(list_losses())
    assert list_losses("a*") == [n for n in list_losses() if n.startswith("a")]
    assert isinstance(create_loss("opl", gamma=0.5), OrthogonalProjectionLoss)
    aam = create_loss("aam_softmax", embed_dim=8, num_classes=4)
    assert isinstance(aam, AAMSoftmax) and isinstance(aam, ModalinkLoss)
    with pytest.raises(KeyError, match="known losss|opl"):
        create_loss("nope")
    with pytest.raises(ValueError, match="twice"):
        LOSSES.register("opl")(OrthogonalProjectionLoss)
