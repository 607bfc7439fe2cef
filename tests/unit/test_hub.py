"""The one export format: save_pretrained / from_pretrained round trips, strictness, no pickle."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from modalink.hub import from_pretrained, save_pretrained
from modalink.io import DamagedFileError
from modalink.models import create_model
from model_cases import SMALL, model_inputs

CASES = {name: SMALL[name] for name in ("fop_enhanced", "fop", "single_branch")}


@pytest.mark.parametrize("name", sorted(CASES))
def test_round_trip_gives_identical_outputs(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model(name, **CASES[name]).eval()
    folder = save_pretrained(model, tmp_path / "m", contract={"face_dim": 24}, results={"eer": 21.5},
                             config={"engine": {"lr": 0.001}})
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    body = json.loads((folder / "config.json").read_text())
    assert body["name"] == name and body["contract"] == {"face_dim": 24} and body["config_fingerprint"]
    assert "21.5" in (folder / "README.md").read_text()
    loaded = from_pretrained(folder)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)
    assert not loaded.training and loaded.export_config["results"] == {"eer": 21.5}


def test_refuses_models_not_built_by_the_registry_and_mismatched_weights(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="create_model"):
        save_pretrained(torch.nn.Linear(2, 2), tmp_path / "x")
    folder = save_pretrained(create_model("fop", **CASES["fop"]), tmp_path / "m")
    body = json.loads((folder / "config.json").read_text())
    body["kwargs"]["embed_dim"] = 16
    (folder / "config.json").write_text(json.dumps(body))
    with pytest.raises(DamagedFileError):
        from_pretrained(folder)
    with pytest.raises(FileNotFoundError, match="config.json"):
        from_pretrained(tmp_path / "nothing")


def _edit_config(folder: Path, **changes) -> None:
    body = json.loads((folder / "config.json").read_text())
    for key, value in changes.items():
        if key == "kwargs":
            body["kwargs"].update(value)
        else:
            body[key] = value
    (folder / "config.json").write_text(json.dumps(body))


@pytest.mark.parametrize("changes, match", [
    (dict(name="fop2"), r"config.json: 'name' is 'fop2', which is not a registered model \(known: .*fop"),
    (dict(kwargs={"__class__": "os.system"}), r"config.json: 'kwargs' key '__class__' is not an argument of model 'fop'"),
    (dict(kwargs={"activation": "relu"}), r"'kwargs' key 'activation' is not an argument"),
    (dict(kwargs={"embed_dim": "wide"}), r"config.json: 'kwargs' do not build model 'fop'"),
    (dict(kwargs={"face_dim": 48}), r"config.json: the dimensions in config.json do not match the shapes in "
                                    r"model.safetensors"),
    (dict(kwargs={"embed_dim": 16}), r"dimensions in config.json do not match the shapes"),
])
def test_edited_config_json_is_one_user_error_naming_the_key(changes: dict, match: str, tmp_path: Path,
                                                             capsys) -> None:
    from modalink.errors import is_user_error, run_cli
    from modalink.hub import ModelConfigError

    folder = save_pretrained(create_model("fop", **CASES["fop"]), tmp_path / "m")
    _edit_config(folder, **changes)
    with pytest.raises(ModelConfigError, match=match) as err:
        from_pretrained(folder)
    assert is_user_error(err.value)
    assert run_cli(lambda argv: from_pretrained(folder), []) == 2
    out = capsys.readouterr().err
    assert out.count("\n") == 1 and str(folder / "config.json") in out


def test_every_registered_model_is_covered() -> None:
    from modalink.models import list_models

    assert sorted(SMALL) == list_models()


@pytest.mark.parametrize("name", sorted(SMALL))
def test_every_registered_model_exports_and_reloads(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model(name, **SMALL[name])
    loaded = from_pretrained(save_pretrained(model, tmp_path / name))
    assert type(loaded) is type(model)
    want, got = model.state_dict(), loaded.state_dict()
    assert sorted(want) == sorted(got)
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=0)
    args, kwargs = model_inputs(name, 3)
    with torch.no_grad():
        a, b = model.eval()(*args, **kwargs), loaded(*args, **kwargs)
    for key in a:
        if isinstance(a[key], torch.Tensor):
            torch.testing.assert_close(b[key], a[key], rtol=0, atol=0)


@pytest.mark.parametrize("name, text_key, text", [("chameleon", "text_image", (2, 3, 32, 32)),
                                                 ("multi_branch_classifier", "text", (2, 8))])
def test_classifiers_take_the_one_model_call(name: str, text_key: str, text: tuple) -> None:
    """net({modality: tensor}, {modality: availability}) equals the positional call."""
    torch.manual_seed(0)
    model = create_model(name, **SMALL[name]).eval()
    image, t = torch.rand(2, 3, 32, 32), torch.rand(*text)
    has_image, has_text = torch.tensor([True, True]), torch.tensor([True, False])
    a = model(image, t, has_image, has_text)["logits"]
    b = model({"image": image, text_key: t}, {"image": has_image, text_key: has_text})["logits"]
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def _card_lines(folder: Path) -> str:
    """The model card's loading snippet (the two lines between the python fences), with this folder's path."""
    card = (folder / "README.md").read_text(encoding="utf-8")
    code = card.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(code.strip().splitlines()) == 2, code
    return code.replace('"path/to/this/folder"', repr(str(folder)))
