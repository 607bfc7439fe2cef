"""Models: every registered model builds, runs forward/backward, is deterministic; FOP interop."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import modalink
from modalink.models import SingleBranch, TwoBranch, create_model, list_models

SMALL = {"face_dim": 64, "voice_dim": 32, "embed_dim": 16, "num_classes": 5}


def _build(name: str) -> nn.Module:
    if name.startswith("fop"):
        return create_model(name, **SMALL)
    if name in ("sbnet", "single_branch", "srmm"):
        dims = {"sbnet": {"face": 64, "voice": 32}, "srmm": {"image": 48, "text": 24},
                "single_branch": {"a": 20, "b": 12, "c": 8}}[name]
        return create_model(name, input_dims=dims, embed_dim=16, stem_dim=32, trunk_hidden=(32,),
                            num_classes=5, modality_subsets={m: 1.0 for m in dims})
    return None  # models registered by recipes are tested in their own test files


def _inputs(model: nn.Module, batch: int = 8) -> tuple:
    g = torch.Generator().manual_seed(0)
    if isinstance(model, TwoBranch):
        return (torch.randn(batch, model.input_dims["face"], generator=g),
                torch.randn(batch, model.input_dims["voice"], generator=g))
    return ({m: torch.randn(batch, d, generator=g) for m, d in model.input_dims.items()},)


def test_list_models_has_the_core_set() -> None:
    names = modalink.list_models()
    for n in ("sbnet", "fop", "fop_gated", "fop_linear", "fop_enhanced", "single_branch", "srmm"):
        assert n in names
    assert list_models("fop*") == [n for n in names if n.startswith("fop")]


def test_unknown_model_lists_known_ones() -> None:
    with pytest.raises(KeyError, match="known models: .*sbnet"):
        create_model("no_such_model")


@pytest.mark.parametrize("name", ["fop", "fop_gated", "fop_linear", "fop_enhanced", "sbnet", "single_branch", "srmm"])
def test_forward_backward_and_embed(name: str) -> None:
    torch.manual_seed(0)
    model = _build(name)
    model.train()
    out = model(*_inputs(model))
    assert "logits" in out and out["logits"].shape == (8, 5)
    loss = out["logits"].logsumexp(1).mean()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    model.eval()
    for m, x in zip(("face", "voice"), _inputs(model)) if isinstance(model, TwoBranch) else \
            _inputs(model)[0].items():
        e = model.embed(x, m)
        assert e.shape == (8, 16)
        torch.testing.assert_close(e.norm(dim=1), torch.ones(8))


@pytest.mark.parametrize("name", ["fop", "fop_enhanced", "sbnet"])
def test_deterministic_under_seed(name: str) -> None:
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = _build(name).train()
        torch.manual_seed(7)
        outs.append(model(*_inputs(model))["logits"])
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


def test_single_branch_missing_modalities_and_mean() -> None:
    torch.manual_seed(0)
    model = SingleBranch({"face": 10, "voice": 6}, embed_dim=8, stem_dim=12, trunk_hidden=(12,), norm="layer",
                         dropout=0.0, num_classes=3).eval()
    f, v = torch.randn(4, 10), torch.randn(4, 6)
    present = {"face": torch.tensor([True, True, False, True]), "voice": torch.tensor([True, False, True, False])}
    out = model({"face": f, "voice": v}, present)
    # row 0: mean of both trunk outputs; row 1: face only; row 2: voice only
    hf, hv = model.encode(f, "face"), model.encode(v, "voice")
    torch.testing.assert_close(out["embedding"][0], nn.functional.normalize((hf[0] + hv[0]) / 2, dim=0))
    torch.testing.assert_close(out["embedding"][1], nn.functional.normalize(hf[1], dim=0))
    torch.testing.assert_close(out["embedding"][2], nn.functional.normalize(hv[2], dim=0))
    assert torch.all(out["voice"][1] == 0)  # absent modality gives a zero embedding
    # None input = modality absent for every sample
    e = model.embed({"face": f, "voice": None})
    torch.testing.assert_close(e, nn.functional.normalize(hf, dim=1))
    with pytest.raises(ValueError, match=r"sample\(s\) \[1\] have no modality"):
        model({"face": f, "voice": v}, {"face": torch.tensor([1, 0, 1, 1]).bool(),
                                         "voice": torch.tensor([1, 0, 1, 1]).bool()})
    with pytest.raises(ValueError, match="no modality given"):
        model.embed({"face": None, "voice": None})
    with pytest.raises(KeyError, match="unknown modality"):
        model.embed(f, "image")
    with pytest.raises(ValueError, match="width 7, expected 10"):
        model({"face": torch.randn(4, 7)})


def test_modality_switching_frequencies() -> None:
    torch.manual_seed(0)
    model = SingleBranch({"a": 4, "b": 4}, embed_dim=4, stem_dim=4, trunk_hidden=(),
                         modality_subsets={"a": 1.0, "b": 1.0, "a+b": 2.0}).train()
    keep = model.sample_modalities(torch.ones(20000, 2, dtype=torch.bool))
    frac_a_only = (keep[:, 0] & ~keep[:, 1]).float().mean().item()
    frac_both = keep.all(1).float().mean().item()
    assert abs(frac_a_only - 0.25) < 0.02 and abs(frac_both - 0.5) < 0.02
    # a sample whose sampled subset is unavailable falls back to what it has
    avail = torch.tensor([[True, False]] * 1000)
    keep = model.sample_modalities(avail)
    assert torch.equal(keep, avail)
    with pytest.raises(ValueError, match="unknown modality"):
        SingleBranch({"a": 4}, modality_subsets={"z": 1.0})


class _OfficialBranch(nn.Module):
    """Reference re-statement of the official FOP branch from its documented layout."""

    def __init__(self, d_in: int, d: int) -> None:
        super().__init__()
        self.fc1 = nn.Sequential(nn.Linear(d_in, d), nn.BatchNorm1d(d), nn.ReLU(), nn.Dropout(0.5))

    def forward(self, x):
        return nn.functional.normalize(self.fc1(x))


class _OfficialFOP(nn.Module):
    def __init__(self, n_class: int, d_face: int = 4096, d_voice: int = 512, d: int = 128) -> None:
        super().__init__()
        self.voice_branch = _OfficialBranch(d_voice, d)
        self.face_branch = _OfficialBranch(d_face, d)
        blk = nn.Module()
        blk.block = nn.Sequential(nn.Linear(2 * d, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(0.0))
        self.fusion_layer = nn.Module()
        self.fusion_layer.attention = nn.ModuleList([blk, nn.Linear(128, d)])
        self.logits_layer = nn.Linear(d, n_class)

    def forward(self, faces, voices):
        v, f = self.voice_branch(voices), self.face_branch(faces)
        a = torch.sigmoid(self.fusion_layer.attention[1](self.fusion_layer.attention[0].block(torch.cat([f, v], 1))))
        ft, vt = torch.tanh(f), torch.tanh(v)
        fused = ft * a + (1 - a) * vt
        return [fused, self.logits_layer(fused)], ft, vt


def test_loads_official_fop_checkpoint_and_matches(tmp_path) -> None:
    torch.manual_seed(0)
    ref = _OfficialFOP(n_class=50)
    # give BatchNorm non-trivial running statistics
    ref.train()
    with torch.no_grad():
        for _ in range(3):
            ref(torch.rand(32, 4096) * 3, torch.randn(32, 512))
    ref.eval()
    path = tmp_path / "checkpoint.pth.tar"
    torch.save({"epoch": 7, "state_dict": ref.state_dict()}, path)
    keys = set(ref.state_dict())
    assert {"face_branch.fc1.0.weight", "fusion_layer.attention.0.block.0.weight",
            "fusion_layer.attention.0.block.1.running_mean", "fusion_layer.attention.1.weight",
            "logits_layer.weight"} <= keys
    model = create_model("fop", face_dim=4096, voice_dim=512, embed_dim=128, num_classes=0)
    meta = model.load_official_checkpoint(path)
    assert meta["epoch"] == 7
    model.eval()
    f, v = torch.rand(16, 4096), torch.randn(16, 512)
    (fused, logits), ft, vt = ref(f, v)
    out = model(f, v)
    torch.testing.assert_close(out["fused"], fused)
    torch.testing.assert_close(out["logits"], logits)
    torch.testing.assert_close(out["face"], ft)
    torch.testing.assert_close(out["voice"], vt)
    # scores the official way: L2 distance of tanh(branch) outputs
    official = torch.linalg.norm(ft - vt, dim=1)
    ours = torch.linalg.norm(model.scoring_embedding(f, "face") - model.scoring_embedding(v, "voice"), dim=1)
    torch.testing.assert_close(ours, official)
    wrong = create_model("fop", face_dim=4096, voice_dim=256, embed_dim=128)
    with pytest.raises(ValueError, match="voice_branch.fc1.0.weight"):
        wrong.load_official_checkpoint(path)


@pytest.mark.parametrize("name", ["fop", "sbnet"])
def test_torch_compile_graph_capture(name: str) -> None:
    """Models trace under torch.compile (aot_eager backend: checks capture without a C++ build)."""
    torch.manual_seed(0)
    model = _build(name).eval()
    compiled = torch.compile(model, backend="aot_eager")
    x = _inputs(model)
    torch.testing.assert_close(compiled(*x)["logits"], model(*x)["logits"])
