"""Denoiser and classifier weights: their configurations are checked before anything is built or run, and the
networks take images of any size."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import lstmcodec
from lstmcodec import CodecError

from conftest import run_cli

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"


def _with_config(tmp_path, name: str, **changes) -> Path:
    blob = torch.load(WEIGHTS / f"{name}.pt", weights_only=True)
    for key, value in changes.items():
        if value is None:
            blob["config"].pop(key, None)
        else:
            blob["config"][key] = value
    path = tmp_path / f"{name}-changed.pt"
    torch.save(blob, path)
    return path


@pytest.mark.parametrize("changes, words", [
    ({"size": None}, "size"), ({"size": 0}, "size"), ({"size": "32"}, "size"), ({"size": 8000}, "size"),
    ({"in_channels": 2}, "in_channels"), ({"classes": []}, "classes"), ({"mean": [0.1, 0.2]}, "mean"),
    ({"std": [0.0]}, "std"),
])
def test_bad_classifier_configs_are_one_line(tmp_path, changes, words):
    path = _with_config(tmp_path, "classify-mnist", **changes)
    with pytest.raises(CodecError, match=words):
        lstmcodec.classify(np.zeros((1, 1), np.uint8), model=str(path))


def test_a_bad_classifier_config_is_one_line_on_the_command_line(tmp_path):
    path = _with_config(tmp_path, "classify-mnist", size=8000)
    r = run_cli("classify", Path(__file__).parent / "data" / "parrots.png", "--model", path)
    err = r.stderr.decode()
    assert r.returncode == 1 and err.startswith("error: ") and err.count("\n") == 1 and "size" in err, err


def test_bad_denoiser_size_is_one_line(tmp_path):
    path = _with_config(tmp_path, "denoise-mnist", size="28")
    with pytest.raises(CodecError, match="size"):
        lstmcodec.denoise(np.zeros((28, 28), np.uint8), model=str(path))


@pytest.mark.parametrize("model", ["mnist", "photo"])
@pytest.mark.parametrize("shape", [(1, 1), (5, 12), (12, 3)])
def test_tiny_images_are_denoised(model, shape):
    out = lstmcodec.denoise(np.full(shape, 120, np.uint8), model=model)
    assert out.size == (shape[1], shape[0])
