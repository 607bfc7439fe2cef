"""The recsys config is checked when it is loaded: bad choices, ranges and registry names are
refused in one line naming the key, with exit code 2, before any data is read or the run folder
is created."""
from __future__ import annotations

import typing
from pathlib import Path

import pytest

from conftest import load_script
from modalink.config import ConfigError, load_config
from modalink.errors import run_cli
from modalink.recsys.config import DataConfig, MediaConfig, RecsysConfig, TowerConfig

ROOT = Path(__file__).resolve().parents[2]

BAD = [
    ("media.image_encoder=no-such-encoder", "media.image_encoder: 'no-such-encoder' is not a registered encoder; "
                                            "known encoders: ecapa_voxceleb, "),
    ("media.image_encoder=timm/no_such_arch", "media.image_encoder: 'timm/no_such_arch': timm has no architecture"),
    ("media.audio_encoder=wav2vec9", "media.audio_encoder: 'wav2vec9' is not a registered encoder; known encoders: "),
    ("media.text_encoder=bert-ish", "media.text_encoder: 'bert-ish' is not a registered text encoder; known text "
                                    "encoders: hashed-bow, "),
    ("tower.loss=hinge", "tower.loss: 'hinge' is not one of ['bpr', 'softmax']"),
    ("tower.norm=group", "tower.norm: 'group' is not one of"),
    ("tower.combine=sum", "tower.combine: 'sum' is not one of ['normalized', 'raw']"),
    ("tower.input_norm=zscore", "tower.input_norm: 'zscore' is not one of"),
    ("tower.user_mode=mean", "tower.user_mode: 'mean' is not one of ['item_mean', 'profile', 'id']"),
    ("data.unknown_items=drop", "data.unknown_items: 'drop' is not one of ['skip', 'error']"),
    ("media.modalities=[text, video]", "media.modalities[1]: 'video' is not one of ['text', 'image', 'audio']"),
    ("tower.dropout=1.5", "tower.dropout: 1.5 is out of range"),
    ("eval.k=0", "eval.k: 0 is out of range; it must be >= 1"),
    ("data.synthetic.interactions_min=90", "data.synthetic.interactions_min: 90 is above "
                                           "data.synthetic.interactions_max=60"),
    ("tower.sample_sizes=[0, 2]", "tower.sample_sizes: [0, 2]: every size must be >= 1"),
]


@pytest.fixture(scope="module")
def recipe():
    return load_script(ROOT / "recipes" / "recsys" / "train.py")


@pytest.mark.parametrize("override,message", BAD, ids=[b[0].split("=")[0] for b in BAD])
def test_bad_setting_is_refused_at_load_without_a_run_folder(recipe, tmp_path, capsys, override, message):
    out = tmp_path / "run"
    assert run_cli(recipe.main, ["--output-dir", str(out), "--cpu", override]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not out.exists()


def test_two_settings_that_leave_no_training_data_are_refused(recipe, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(recipe.main, ["--output-dir", str(out), "data.val_frac=0.5", "data.test_frac=0.5"]) == 2
    assert "data.val_frac: 0.5 + data.test_frac=0.5 leaves no training interactions" in capsys.readouterr().err
    assert not out.exists()
    assert run_cli(recipe.main, ["--output-dir", str(out), "tower.infonce_weight=0.5", "tower.infonce_pair=[text]"]) == 2
    assert "tower.infonce_pair: ['text']: name two item modalities" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("override", ["media.image_encoder=timm/resnet18", "media.image_encoder=pixel-stats",
                                      "media.image_encoder=timm/resnet18.a1_in1k",
                                      "media.text_encoder=sentence-transformers/all-MiniLM-L6-v2",
                                      "media.text_encoder=st:/models/mine", "media.text_encoder=word-vectors",
                                      "tower.loss=softmax", "tower.norm=none", "tower.input_norm=none"])
def test_names_the_encoders_take_are_accepted(override):
    load_config(RecsysConfig, ROOT / "recipes" / "recsys" / "hparams" / "default.yaml", [override])


def test_choice_fields_are_literals():
    """Every setting with a fixed set of values is typed as its choices (the loader checks them)."""
    fields = {TowerConfig: ("norm", "combine", "input_norm", "user_mode", "loss"), DataConfig: ("unknown_items",)}
    for cls, names in fields.items():
        hints = typing.get_type_hints(cls)
        for name in names:
            assert typing.get_origin(hints[name]) is typing.Literal, f"{cls.__name__}.{name}"
    (modality,) = typing.get_args(typing.get_type_hints(MediaConfig)["modalities"])
    assert typing.get_args(modality) == ("text", "image", "audio")


def test_config_errors_name_the_section_key():
    with pytest.raises(ConfigError, match=r"^command-line overrides: media\.audio_encoder: 'x' is not a registered"):
        load_config(RecsysConfig, None, ["media.audio_encoder=x"])
