"""The pluggable modality-sampling strategies (modalink.models.modality_sampling) and their users."""
from __future__ import annotations

import pytest
import torch

from modalink.classification.trainer_module import MissingModalityModule
from modalink.models import SingleBranch, create_model
from modalink.models.image_classifier import MultiBranchClassifier, drop_sampler
from modalink.models.modality_sampling import (SAMPLERS, CountSampler, DropSampler, KeepAll, ModalitySampler,
                                               SubsetSampler, build_sampler, list_samplers, parse_subsets)
from modalink.recsys.towers import SampledBranch

MODS = ("image", "text")


def _available(n: int, m: int, seed: int = 0, p: float = 0.6) -> torch.Tensor:
    """Random availability with at least one modality per row."""
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(n, m, generator=g) < p
    a[:, 0] |= ~a.any(1)
    return a


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


SAMPLERS_UNDER_TEST = [
    SubsetSampler({"a": 1, "b+c": 1, "a+b+c": 1}, ("a", "b", "c")),
    SubsetSampler({"a": 1, "b": 1}, ("a", "b", "c"), mode="per_batch"),
    SubsetSampler({"c": 1, "a+b": 2}, ("a", "b", "c"), mode="alternate"),
    CountSampler(sample_sizes=(1, 2), keep_all_prob=0.2),
    CountSampler(("a", "b", "c"), sample_sizes=(2,)),
    DropSampler({"a": 0.3, "c": 0.5}, ("a", "b", "c")),
    KeepAll(),
]


# ----------------------------------------------------------------------------- the contract
@pytest.mark.parametrize("sampler", SAMPLERS_UNDER_TEST, ids=lambda s: type(s).__name__)
def test_kept_is_a_nonempty_subset_of_available(sampler: ModalitySampler) -> None:
    avail = _available(500, 3)
    for step in range(4):
        kept = sampler(avail, step, generator=_gen(step))
        assert kept.dtype == torch.bool and kept.shape == avail.shape
        assert not bool((kept & ~avail).any()), "kept a modality that is not available"
        assert bool(kept.any(1).all()), "a row lost every modality"
    assert sampler.state_dict() == {}  # nothing persistent: checkpoints are unchanged
    with pytest.raises(ValueError, match="bool"):
        sampler(avail.float())


def test_subset_sampler_probabilities_and_fallback() -> None:
    sw = SubsetSampler({"image": 1, "text": 1, "image+text": 2}, MODS)
    keep = sw(torch.ones(40000, 2, dtype=torch.bool), generator=_gen(0))
    freq = {"image": (keep[:, 0] & ~keep[:, 1]).float().mean().item(),
            "text": (~keep[:, 0] & keep[:, 1]).float().mean().item(),
            "image+text": keep.all(1).float().mean().item()}
    for name, p in {"image": 0.25, "text": 0.25, "image+text": 0.5}.items():
        assert abs(freq[name] - p) < 0.015, (name, freq)
    # samples without text keep their image, whatever subset they drew
    avail = torch.tensor([[True, False]] * 1000)
    assert torch.equal(sw(avail, generator=_gen(1)), avail)
    assert sw.probs.tolist() == [0.25, 0.25, 0.5] and sw.names == ["image", "text", "image+text"]


def test_subset_sampler_per_batch_and_alternate() -> None:
    avail = torch.ones(6, 2, dtype=torch.bool)
    alt = SubsetSampler({"image": 1, "text": 1, "image+text": 1}, MODS, mode="alternate")
    seq = [tuple(alt(avail, step)[0].tolist()) for step in range(6)]
    assert seq == [(True, False), (False, True), (True, True)] * 2
    assert all(bool((alt(avail, s) == alt(avail, s)[0]).all()) for s in range(3))  # whole batch alike
    # subsets of probability 0 are skipped by the schedule
    alt0 = SubsetSampler({"image": 1, "text": 0, "image+text": 1}, MODS, mode="alternate")
    assert [tuple(alt0(avail, s)[0].tolist()) for s in range(4)] == [(True, False), (True, True)] * 2
    per_batch = SubsetSampler({"image": 1, "text": 1}, MODS, mode="per_batch")
    seen = set()
    for s in range(20):
        k = per_batch(avail, s, generator=_gen(s))
        assert bool((k == k[0]).all()) and int(k[0].sum()) == 1
        seen.add(tuple(k[0].tolist()))
    assert seen == {(True, False), (False, True)}


def test_subset_sampler_draw_on_cpu_matches_default_on_cpu() -> None:
    avail = _available(64, 2)
    a = SubsetSampler({"image": 1, "text": 2}, MODS)(avail, generator=_gen(3))
    b = SubsetSampler({"image": 1, "text": 2}, MODS, draw_on_cpu=True)(avail, generator=_gen(3))
    assert torch.equal(a, b)


def test_subset_sampler_errors() -> None:
    with pytest.raises(ValueError, match="mode"):
        SubsetSampler({"image": 1}, MODS, mode="sometimes")
    with pytest.raises(ValueError, match="unknown modality"):
        SubsetSampler({"audio": 1}, MODS)
    with pytest.raises(ValueError, match="negative"):
        SubsetSampler({"image": -1, "text": 2}, MODS)
    with pytest.raises(ValueError, match="positive probability"):
        SubsetSampler({"image": 0}, MODS)
    with pytest.raises(ValueError, match="columns"):
        SubsetSampler({"image": 1}, MODS)(torch.ones(3, 3, dtype=torch.bool))
    rows, probs = parse_subsets({"b": 1, "a+b": 3}, ("a", "b"))
    assert rows.tolist() == [[False, True], [True, True]] and probs.tolist() == [0.25, 0.75]


def test_count_sampler_sizes_and_keep_all() -> None:
    avail = torch.ones(20000, 4, dtype=torch.bool)
    avail[:5000, 1:] = False  # a quarter of the rows has one modality only
    kept = CountSampler(sample_sizes=(1, 2))(avail, generator=_gen(0)).sum(1)
    assert bool((kept[:5000] == 1).all())
    assert abs((kept[5000:] == 1).float().mean().item() - 0.5) < 0.02 and int(kept[5000:].max()) == 2
    # every available modality equally likely to be kept
    single = CountSampler(sample_sizes=(1,))(avail[5000:], generator=_gen(1)).float().mean(0)
    assert torch.allclose(single, torch.full((4,), 0.25), atol=0.02)
    kept = CountSampler(sample_sizes=(1,), keep_all_prob=0.3)(avail[5000:], generator=_gen(2)).sum(1)
    assert abs((kept == 4).float().mean().item() - 0.3) < 0.02 and set(kept.tolist()) == {1, 4}
    # no sizes: keep everything, without a draw
    state = torch.get_rng_state()
    assert torch.equal(CountSampler(sample_sizes=())(avail), avail)
    assert torch.equal(torch.get_rng_state(), state)
    with pytest.raises(ValueError, match="sample_sizes"):
        CountSampler(sample_sizes=(0, 1))
    with pytest.raises(ValueError, match="keep_all_prob"):
        CountSampler(keep_all_prob=1.0)


def test_drop_sampler_exclusive_rates_and_incomplete_rows() -> None:
    n = 20000
    ones = torch.ones(n, 2, dtype=torch.bool)
    kept = drop_sampler(0.3, 0.2)(ones, generator=_gen(0))
    assert bool(kept.any(1).all()), "a sample lost both inputs"
    assert abs((~kept[:, 1]).float().mean().item() - 0.3) < 0.02
    assert abs((~kept[:, 0]).float().mean().item() - 0.2) < 0.02
    part = ones.clone()
    part[:10, 0] = False  # samples already missing their image keep their text
    kept = drop_sampler(0.9, 0.0)(part, generator=_gen(1))
    assert bool(kept[:10, 1].all())
    # three modalities: exclusive events, one modality hidden at most
    kept = DropSampler({"a": 0.2, "b": 0.2, "c": 0.2}, ("a", "b", "c"))(torch.ones(n, 3, dtype=torch.bool),
                                                                      generator=_gen(2))
    assert int((~kept).sum(1).max()) == 1
    assert torch.allclose((~kept).float().mean(0), torch.full((3,), 0.2), atol=0.02)
    state = torch.get_rng_state()
    assert torch.equal(drop_sampler(0.0, 0.0)(ones), ones)  # nothing to drop: no draw
    assert torch.equal(torch.get_rng_state(), state)


def test_drop_sampler_validation_messages() -> None:
    msg = r"need drop_text, drop_image >= 0 and drop_text \+ drop_image <= 1, got 0.7, 0.5"
    with pytest.raises(ValueError, match=msg):
        drop_sampler(0.7, 0.5)
    with pytest.raises(ValueError, match=msg.replace("0.7, 0.5", "-0.1, 0.0")):
        drop_sampler(-0.1, 0.0)
    with pytest.raises(ValueError, match=msg):  # the classifiers validate the same way
        MultiBranchClassifier(4, 12, "test_resnet", drop_text=0.7, drop_image=0.5)
    with pytest.raises(ValueError, match="unknown modality"):
        DropSampler({"audio": 0.1}, MODS)
    with pytest.raises(ValueError, match="two modalities"):
        DropSampler({"a": 0.1}, ("a",))


# ----------------------------------------------------------------------------- registry
def test_build_sampler_from_specs() -> None:
    assert {"subsets", "count", "drop", "keep_all"} <= set(list_samplers()) and "count" in SAMPLERS
    s = build_sampler({"name": "subsets", "kwargs": {"subsets": {"text": 1}, "mode": "per_batch"}}, MODS)
    assert isinstance(s, SubsetSampler) and s.mode == "per_batch" and s.modalities == MODS
    s = build_sampler({"name": "count", "kwargs": {"sample_sizes": [2], "modalities": ["x", "y"]}}, MODS)
    assert s.modalities == ("x", "y") and s.sample_sizes.tolist() == [2]  # the spec's own names win
    assert isinstance(build_sampler("keep_all"), KeepAll) and isinstance(build_sampler(None), KeepAll)
    d = DropSampler({"text": 0.1}, MODS)
    assert build_sampler(d) is d
    with pytest.raises(KeyError, match="unknown modality sampler 'bogus'.*count"):
        build_sampler({"name": "bogus"})
    with pytest.raises(ValueError, match="spec"):
        build_sampler({"kind": "count"})
    with pytest.raises(ValueError, match="unknown modality"):
        build_sampler({"name": "drop", "kwargs": {"drop": {"audio": 0.5}}}, MODS)


# ----------------------------------------------------------------------------- users
def _single_branch(**kw) -> SingleBranch:
    return SingleBranch({"image": 4, "text": 3}, embed_dim=4, stem_dim=4, trunk_hidden=(), **kw)


def test_single_branch_holds_its_sampler_and_replacing_it_works() -> None:
    torch.manual_seed(0)
    x = {"image": torch.randn(8, 4), "text": torch.randn(8, 3)}
    model = _single_branch(modality_subsets={"image": 1, "text": 1}).train()
    assert isinstance(model.sampler, SubsetSampler) and "sampler" not in str(list(model.state_dict()))
    assert bool((model(x)["mask"].sum(1) == 1).all())
    assert isinstance(_single_branch().sampler, KeepAll)
    # a trainer installs another strategy: the model uses it, in training mode only
    model.sampler = SubsetSampler({"text": 1, "image+text": 1}, model.modalities, mode="alternate")
    step = model.sampling_step
    masks = [model(x)["mask"][0].tolist() for _ in range(2)]
    assert masks == ([[False, True], [True, True]] if step % 2 == 0 else [[True, True], [False, True]])
    assert model.eval()(x)["mask"].all()
    model.train()
    assert model(x, sample=False)["mask"].all()
    model.sampler = SubsetSampler({"text": 1}, ("text", "image"))
    with pytest.raises(ValueError, match="same order"):
        model(x)


def test_single_branch_sampler_argument_and_export_spec() -> None:
    spec = {"name": "count", "kwargs": {"sample_sizes": [1]}}
    model = create_model("srmm", input_dims={"image": 4, "text": 3}, embed_dim=4, stem_dim=4, trunk_hidden=(),
                         sampler=spec).train()
    assert isinstance(model.sampler, CountSampler) and model.model_spec["kwargs"]["sampler"] == spec
    out = model({"image": torch.randn(16, 4), "text": torch.randn(16, 3)})
    assert bool((out["mask"].sum(1) == 1).all())
    with pytest.raises(ValueError, match="not both"):
        _single_branch(modality_subsets={"image": 1}, sampler="keep_all")


def test_sampled_branch_installs_a_count_sampler() -> None:
    branch = SampledBranch({"a": 3, "b": 3, "c": 3}, sample_sizes=(2,), embed_dim=4, stem_dim=4,
                           trunk_hidden=()).train()
    assert isinstance(branch.sampler, CountSampler) and branch.sampler.sample_sizes.tolist() == [2]
    out = branch({m: torch.randn(10, 3) for m in "abc"})
    assert bool((out["mask"].sum(1) == 2).all())
    branch.sampler = KeepAll()
    assert branch({m: torch.randn(10, 3) for m in "abc"})["mask"].all()


def test_missing_modality_module_takes_any_sampler() -> None:
    torch.manual_seed(0)
    net = create_model("srmm", input_dims={"image": 4, "text": 3}, embed_dim=8, stem_dim=8, trunk_hidden=(8,),
                       num_classes=3, modality_subsets=None)
    mod = MissingModalityModule(net, "embeddings", sampler=SubsetSampler({"image": 1, "text": 1}, MODS,
                                                                         mode="alternate"))
    batch = {"image": torch.randn(5, 4), "text": torch.randn(5, 3), "label": torch.tensor([0, 1, 2, 0, 1]),
             "has_image": torch.ones(5, dtype=torch.bool), "has_text": torch.ones(5, dtype=torch.bool)}
    mod.train()
    assert mod.run(batch)["mask"].tolist() == [[True, False]] * 5
    assert mod.run(batch)["mask"].tolist() == [[False, True]] * 5
    assert int(mod.switch_step) == 2 and "switch_step" in mod.state_dict()
    assert not any(k.startswith("sampler") for k in mod.state_dict())
    mod.eval()
    assert mod.run(batch)["mask"].all()
    out = mod(batch)
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
    mod.train()
    mod.sampler = drop_sampler(1.0, 0.0)  # replaced: every complete sample loses its text
    assert mod.run(batch)["mask"].tolist() == [[True, False]] * 5
    with pytest.raises(ValueError, match="embeddings"):
        MissingModalityModule(net, "text_vector", sampler=KeepAll())


def test_image_classifier_uses_its_replaceable_sampler() -> None:
    torch.manual_seed(0)
    m = MultiBranchClassifier(3, 5, "test_resnet", embed_dim=8, hidden=(8,), drop_text=0.5).train()
    assert isinstance(m.sampler, DropSampler) and m.sampler.drop == {"text": 0.5, "image": 0.0}
    photos = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    m.sampler = DropSampler({"image": 1.0}, MODS)
    out = m(photos, torch.randn(6, 5))
    assert not out["has_image"].any() and out["has_text"].all()
