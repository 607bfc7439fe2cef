"""Models: every registered model builds, runs forward/backward, is deterministic; FOP and SBNet
match independent re-statements of their public code layer by layer."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import modalink
from modalink.models import SBNet, SingleBranch, TwoBranch, create_model, list_models
from model_cases import SMALL as SMALL_CASES
from model_cases import model_inputs

SMALL = {"face_dim": 64, "voice_dim": 32, "embed_dim": 16, "num_classes": 5}


def _build(name: str) -> nn.Module:
    if name.startswith("fop"):
        return create_model(name, **SMALL)
    if name == "sbnet":
        return create_model(name, input_dims={"face": 64, "voice": 32}, embed_dim=16, num_classes=5)
    if name in ("sbnet_stems", "single_branch", "srmm"):
        dims = {"sbnet_stems": {"face": 64, "voice": 32}, "srmm": {"image": 48, "text": 24},
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
    for n in ("sbnet", "sbnet_stems", "fop", "fop_linear", "fop_enhanced", "single_branch", "srmm"):
        assert n in names
    assert list_models("fop*") == [n for n in names if n.startswith("fop")]


def test_unknown_model_lists_known_ones() -> None:
    with pytest.raises(KeyError, match="known models: .*sbnet"):
        create_model("no_such_model")


def _outputs(name: str, n: int, seed: int = 0) -> tuple[nn.Module, dict]:
    torch.manual_seed(123)
    model = create_model(name, **SMALL_CASES[name])
    args, kwargs = model_inputs(name, n, seed)
    return model, (args, kwargs)


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_trains_is_seeded_and_batch_invariant(name: str) -> None:
    """Every registered model: its outputs give gradients to its parameters, the same seed gives
    the same model and outputs, and in eval mode a row's output does not depend on its batch."""
    model, (args, kwargs) = _outputs(name, 6)
    model.train()
    torch.manual_seed(7)
    out = model(*args, **kwargs)
    target = out["logits"] if "logits" in out else out["embedding"]
    target.square().mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    again, _ = _outputs(name, 6)
    torch.manual_seed(7)
    torch.testing.assert_close(again.train()(*args, **kwargs)[next(iter(out))], out[next(iter(out))], rtol=0, atol=0)
    model.eval()
    with torch.no_grad():
        full = model(*args, **kwargs)
        _, (one_args, one_kwargs) = _outputs(name, 6)
        key = "logits" if "logits" in full else "embedding"
        rows = full[key]
        first = model(*_first_row(one_args), **one_kwargs)[key]
    torch.testing.assert_close(first[0], rows[0], rtol=1e-5, atol=1e-6)


def _first_row(args: tuple) -> tuple:
    """The inputs of the first row alone."""
    def cut(x):
        if isinstance(x, torch.Tensor):
            return x[:1]
        if isinstance(x, dict):
            return {k: cut(v) for k, v in x.items()}
        from modalink.recsys.data import BagBatch, ItemBatch
        if isinstance(x, ItemBatch):
            return ItemBatch(x.ids[:1], cut(x.dense), {m: cut(b) for m, b in x.bags.items()}, cut(x.present))
        if isinstance(x, BagBatch):
            end = int(x.offsets[1]) if len(x.offsets) > 1 else len(x.indices)
            return BagBatch(x.indices[:end], x.offsets[:1], x.weights[:end], x.nonempty[:1])
        return x
    return tuple(cut(a) for a in args)


@pytest.mark.parametrize("name", ["fop", "fop_linear", "fop_enhanced", "sbnet", "sbnet_stems",
                                  "single_branch", "srmm"])
def test_forward_backward_and_embed(name: str) -> None:
    torch.manual_seed(0)
    model = _build(name)
    model.train()
    out = model(*_inputs(model))
    rows = 8 * len(model.modalities) if isinstance(model, SBNet) else 8  # SBNet: one row per (sample, modality)
    assert "logits" in out and out["logits"].shape == (rows, 5)
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


@pytest.mark.parametrize("name", ["fop", "fop_enhanced", "sbnet", "sbnet_stems"])
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


def test_single_branch_normalized_combination_gives_each_modality_an_equal_vote() -> None:
    torch.manual_seed(0)
    model = SingleBranch({"a": 6, "b": 6}, embed_dim=4, stem_dim=8, trunk_hidden=(), norm="none",
                         dropout=0.0, combine="normalized").eval()
    x = {"a": torch.randn(5, 6), "b": torch.randn(5, 6)}
    with torch.no_grad():
        model.stems["b"][0].weight.mul_(100.0)  # modality b's trunk outputs are ~100x larger
    ea, eb = model.embed(x["a"], "a"), model.embed(x["b"], "b")
    torch.testing.assert_close(model.embed(x), nn.functional.normalize(ea + eb, dim=1))
    model.combine = "raw"  # the raw mean is dominated by b
    assert (model.embed(x) * eb).sum(1).min() > 0.95
    with pytest.raises(ValueError, match="combine"):
        SingleBranch({"a": 4}, combine="max")


def test_modality_switching_frequencies() -> None:
    torch.manual_seed(0)
    model = SingleBranch({"a": 4, "b": 4}, embed_dim=4, stem_dim=4, trunk_hidden=(),
                         modality_subsets={"a": 1.0, "b": 1.0, "a+b": 2.0}).train()
    keep = model.sampler(torch.ones(20000, 2, dtype=torch.bool))
    frac_a_only = (keep[:, 0] & ~keep[:, 1]).float().mean().item()
    frac_both = keep.all(1).float().mean().item()
    assert abs(frac_a_only - 0.25) < 0.02 and abs(frac_both - 0.5) < 0.02
    # a sample whose sampled subset is unavailable falls back to what it has
    avail = torch.tensor([[True, False]] * 1000)
    keep = model.sampler(avail)
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


class _PublicSBNetBranch(nn.Module):
    """Independent re-statement of SBNet's public ``EmbedBranch`` (msaadsaeed/SBNet,
    ssnet_fop/retrieval_model.py): fc1 feat→128 and fc2 128→128, each Linear → BatchNorm1d →
    ReLU → Dropout(0.5), then L2 normalisation."""

    def __init__(self, feat_dim: int, d: int) -> None:
        super().__init__()
        self.fc1 = nn.Sequential(nn.Linear(feat_dim, d), nn.BatchNorm1d(d), nn.ReLU(), nn.Dropout(p=0.5))
        self.fc2 = nn.Sequential(nn.Linear(d, d), nn.BatchNorm1d(d), nn.ReLU(), nn.Dropout(p=0.5))

    def forward(self, x):
        return nn.functional.normalize(self.fc2(self.fc1(x)))


class _PublicSBNet(nn.Module):
    """The public main module (one branch for every row, classifier on the normalised embedding)."""

    def __init__(self, feat_dim: int, n_class: int, d: int = 128) -> None:
        super().__init__()
        self.embed_branch = _PublicSBNetBranch(feat_dim, d)
        self.logits_layer = nn.Linear(d, n_class)

    def forward(self, feats):
        feats = self.embed_branch(feats)
        return feats, self.logits_layer(feats)


def _public_init(m: nn.Module) -> None:
    if type(m) is nn.Linear:
        nn.init.xavier_uniform_(m.weight)
        m.bias.data.fill_(0.01)


def test_sbnet_matches_public_layout_layer_by_layer() -> None:
    torch.manual_seed(0)
    ref = _PublicSBNet(512, n_class=40)
    ref.apply(_public_init)
    model = create_model("sbnet", input_dims={"face": 512, "voice": 512}, num_classes=40)
    assert isinstance(model, SBNet)
    # same parameter and buffer names and shapes, in the same order: the public state dict loads strictly
    ours, theirs = model.state_dict(), ref.state_dict()
    assert [(k, tuple(v.shape)) for k, v in ours.items()] == [(k, tuple(v.shape)) for k, v in theirs.items()]
    model.load_state_dict(theirs, strict=True)
    # layer by layer: the same module types in the same order
    kinds = lambda net: [type(m).__name__ for m in net.embed_branch.modules() if not list(m.children())]  # noqa: E731
    assert kinds(model) == kinds(ref) == ["Linear", "BatchNorm1d", "ReLU", "Dropout"] * 2
    drops = [m.p for m in model.modules() if isinstance(m, nn.Dropout)]
    assert drops == [0.5, 0.5]
    # ≤ 10 % modality-specific weights (here none: every weight is shared)
    total = sum(p.numel() for p in model.parameters())
    assert model.modality_specific_parameters() == 0 <= 0.10 * total
    # same outputs for a mixed batch of faces and voices (train-mode BatchNorm statistics too)
    f, v = torch.randn(16, 512), torch.randn(16, 512)
    rows = torch.stack([f, v], 1).reshape(32, 512)  # the public fvfv layout
    ref.train(), model.train()
    with torch.no_grad():
        for _ in range(3):  # non-trivial running statistics, identical on both sides
            torch.manual_seed(5)
            ref(rows)
            torch.manual_seed(5)
            model({"face": f, "voice": v}, interleave=True)
    ref.eval(), model.eval()
    emb, logits = ref(rows)
    out = model({"face": f, "voice": v}, interleave=True)
    torch.testing.assert_close(out["embedding"], emb)
    torch.testing.assert_close(out["logits"], logits)
    torch.testing.assert_close(out["face"], emb[0::2])
    torch.testing.assert_close(out["voice"], emb[1::2])
    torch.testing.assert_close(model.embed(v, "voice"), emb[1::2])
    assert bool((emb >= 0).all())  # ReLU before the normalisation: non-negative embeddings
    # the public initialisation
    model.reset_parameters_public()
    assert all(torch.all(m.bias == 0.01) for m in model.modules() if isinstance(m, nn.Linear))


def test_sbnet_projects_only_where_widths_differ() -> None:
    learned = create_model("sbnet", num_classes=10, projection="linear")  # 4096-D faces, 512-D voices
    assert list(learned.proj) == ["face"] and learned.proj["face"].bias is None
    assert tuple(learned.proj["face"].weight.shape) == (512, 4096)
    assert learned.modality_specific_parameters() == 512 * 4096
    model = create_model("sbnet", num_classes=10)  # default: a fixed random projection, nothing face-only trains
    assert model.modality_specific_parameters() == 0 and tuple(model.proj["face"].weight.shape) == (512, 4096)
    assert "proj.face.weight" in model.state_dict()  # saved with the model, so scores reproduce
    torch.testing.assert_close(create_model("sbnet").proj["face"].weight, model.proj["face"].weight)
    model.reset_parameters_public()  # the public init touches Linear layers only
    torch.testing.assert_close(create_model("sbnet").proj["face"].weight, model.proj["face"].weight)
    shared = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("proj."))
    assert shared == 512 * 128 + 128 + 2 * 128 + 128 * 128 + 128 + 2 * 128 + 128 * 10 + 10
    model.eval()
    out = model({"face": torch.randn(3, 4096), "voice": torch.randn(5, 512)})
    assert out["embedding"].shape == (8, 128) and out["modality"].tolist() == [0, 0, 0, 1, 1, 1, 1, 1]
    with pytest.raises(ValueError, match="width 400, expected 512"):
        model.embed(torch.randn(2, 400), "voice")
    with pytest.raises(KeyError, match="unknown modality"):
        model.embed(torch.randn(2, 512), "image")
    with pytest.raises(ValueError, match="same number of rows"):
        model({"face": torch.randn(3, 4096), "voice": torch.randn(5, 512)}, interleave=True)


def test_sbnet_stems_is_the_old_variant_and_mostly_modality_specific() -> None:
    model = create_model("sbnet_stems", input_dims={"face": 512, "voice": 512}, num_classes=5)
    assert isinstance(model, SingleBranch)
    specific = sum(p.numel() for n, p in model.named_parameters() if n.startswith("stems."))
    assert specific / sum(p.numel() for p in model.parameters()) > 0.5
