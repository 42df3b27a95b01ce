"""The source documents' networks and protocols (results/seeds): their shapes and parameter counts as the texts
give them, the MNIST noise protocol, the recipes, a short run of each training procedure on the shipped digits,
and the two small defects (--device cuda without CUDA, the read-only array warning of denoise)."""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DATA, run_cli
from PIL import Image

from lstmcodec.training import data, recipes
from lstmcodec.nets import classify, denoise

ROOT = Path(__file__).resolve().parent.parent
SEEDS = sorted((ROOT / "recipes" / "seeds").glob("*.toml"))


def _script(name: str, *args, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_the_networks_have_the_documents_shapes():
    plain = classify.build("mnist-cnn-plain", {"in_channels": 1, "size": 28, "classes": list("0123456789")})
    assert sum(p.numel() for p in plain.parameters()) == 83_322  # flatten 32 x 4 x 4 = 512 -> 128 -> 10
    assert plain.head[1].in_features == 512
    out = plain(torch.rand(3, 1, 28, 28))
    assert out.shape == (3, 10) and bool(((out > 0) & (out < 1)).all())  # sigmoid outputs
    w = torch.cat([m.weight.flatten() for m in plain.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))])
    assert float(w.detach().abs().max()) <= 0.1

    assert sum(p.numel() for p in denoise.build("cifar-ae", {"in_channels": 3}).parameters()) == 1_495
    dense = denoise.build("dense-ae", {"in_channels": 1, "size": 28, "hidden": 64})
    assert sum(p.numel() for p in dense.parameters()) == 784 * 64 + 64 + 64 * 784 + 784
    with pytest.raises(ValueError, match="takes 28x28"):
        dense(torch.rand(1, 1, 32, 32))
    pool = denoise.build("pool-ae", {"in_channels": 1})
    sizes = []
    x = torch.rand(2, 1, 28, 28)
    for layer in pool.enc:  # 28 -> 14 -> 7 -> 4, as the text's 4 x 4 x 32 code
        x = torch.nn.functional.max_pool2d(layer(x), 2, ceil_mode=True)
        sizes.append(tuple(x.shape[1:]))
    assert sizes == [(64, 14, 14), (64, 7, 7), (32, 4, 4)]
    assert pool(torch.rand(2, 1, 28, 28)).shape == (2, 1, 28, 28)


def test_the_halves_protocol_noises_the_first_half_gaussian_and_the_second_speckle():
    x = torch.full((6, 1, 4, 4), 0.5)
    x[:, :, 0, 0] = 0.0  # speckle leaves black pixels black; gaussian noise does not
    y = data.Noise(kind="halves", mean=-20, var=600, clip=False)(x, torch.Generator().manual_seed(0))
    assert bool((y[:3, :, 0, 0] != 0).all()) and bool((y[3:, :, 0, 0] == 0).all())
    assert abs(float((y[:3] - x[:3]).mean()) * 255 + 20) < 10  # the gaussian half has mean -20 on 0-255
    assert float(y.max()) > 1 or float(y.min()) < 0  # not clipped, as the text does not clip
    assert torch.equal(data.Noise(kind="none")(x, torch.Generator()), x)


def test_every_source_recipe_parses_and_has_an_experiment(tmp_path):
    spec = importlib.util.spec_from_file_location("reproduce", ROOT / "scripts" / "reproduce.py")
    reproduce = importlib.util.module_from_spec(spec)
    sys.modules["reproduce"] = reproduce  # its dataclasses look their module up
    spec.loader.exec_module(reproduce)
    assert {f.stem for f in SEEDS} == set(reproduce.EXPERIMENTS)
    for f in SEEDS:
        recipe = recipes.load(f)
        r = _script(recipes.TASK_SCRIPTS[recipe.task], "--recipe", f, "--out", tmp_path / f.stem, "--dry-run")
        assert r.returncode == 0, r.stderr
        assert "every stage's options parse" in r.stderr


def test_the_mnist_cnn_procedure_learns_by_per_image_sgd(tmp_path, mnist_dir):
    """The document's procedure (first 100 images, batch 1, SGD 0.4 without momentum, MSE/2 on one-hot labels,
    in order) through the shared runtime: the epoch error starts near the document's 49 and falls."""
    r = _script("train_classifier.py", "--recipe", ROOT / "recipes" / "seeds" / "mnist-cnn-100.toml", "mnist", mnist_dir,
                "--out", tmp_path / "run", "--epochs", 3)
    assert r.returncode == 0, r.stderr
    errors = [float(line.split("epoch_error ")[1].split()[0]) for line in r.stderr.splitlines() if "epoch_error" in line]
    assert len(errors) == 3
    assert 40 < errors[0] < 60 and errors[-1] < errors[0]
    blob = torch.load(tmp_path / "run" / "mnist-cnn-100.pt", weights_only=True)
    assert blob["arch"] == "mnist-cnn-plain" and blob["config"]["mean"] == [0.0] and blob["config"]["std"] == [1.0]


@pytest.mark.parametrize("arch", ["dense-ae", "pool-ae"])
def test_the_dense_and_pooling_denoisers_train_with_bce_and_fixed_noise(tmp_path, mnist_dir, arch):
    weights = tmp_path / "dn.pt"
    r = _script("train_denoiser.py", "mnist", mnist_dir, "--arch", arch, "--noise", "halves", "--mean", -20, "--var", 600,
                "--fixed-noise", "--no-clip", "--loss", "bce", "--epochs", 1, "--batch", 16, "--lr", 1e-3, "--threads", 1,
                "--out", tmp_path / "run", "--export", weights)
    assert r.returncode == 0, r.stderr
    blob = torch.load(weights, weights_only=True)
    assert blob["arch"] == arch
    m = blob["meta"]["metrics"]
    assert 0 < m["test_bce"] < 0.75 and 0 < m["test_mse"] < 0.3
    digit = tmp_path / "digit.png"
    Image.fromarray(np.load(DATA / "mnist-test-200.npz")["images"][0]).save(digit)
    r = run_cli("denoise", digit, "--model", weights, "-o", tmp_path / "clean.png")
    assert r.returncode == 0 and b"Warning" not in r.stderr, r.stderr
    if arch == "dense-ae":  # a network of one input size refuses others in one line
        r = run_cli("denoise", DATA / "parrots.png", "--model", weights, "-o", tmp_path / "parrots.png")
        assert r.returncode == 1 and r.stderr.decode().strip().splitlines() == [
            "error: the denoiser 'run' takes only 28x28 images, not 256x192"]  # named after its run
        assert not (tmp_path / "parrots.png").exists()


def test_a_recipe_that_reaches_its_target_counts_as_finished(tmp_path, mnist_dir):
    """A stage stopped by --target-loss is done (exported), not an interrupted run to continue."""
    recipe = tmp_path / "target.toml"
    shutil.copy(ROOT / "recipes" / "seeds" / "mnist-denoise-mix-a.toml", recipe)
    text = recipe.read_text().replace("target-loss = 0.0063", "target-loss = 1.0").replace("batch = 32", "batch = 16")
    recipe.write_text(text)
    r = _script("train_denoiser.py", "--recipe", recipe, "mnist", mnist_dir, "--out", tmp_path / "run")
    assert r.returncode == 0, r.stderr
    assert "target reached" in r.stderr and (tmp_path / "run" / "mnist-denoise-mix-a.pt").exists()


def test_training_scripts_refuse_an_absent_device_in_one_line(tmp_path, mnist_dir):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    for script, args in (("train_classifier.py", ["mnist", mnist_dir]), ("train_denoiser.py", ["mnist", mnist_dir]),
                         ("train_codec.py", [DATA])):
        for device, says in (("cuda", "no CUDA device is available"), ("bogus", "--device bogus")):
            r = _script(script, *args, "--device", device, "--out", tmp_path / "run")
            assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
            lines = r.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith(f"error: --device {device}") and says in lines[0]


def test_denoise_with_the_mnist_model_prints_no_warning(tmp_path):
    digit = tmp_path / "digit.png"
    Image.fromarray(np.load(DATA / "mnist-test-200.npz")["images"][3]).save(digit)
    r = run_cli("denoise", digit, "--model", "mnist", "-o", tmp_path / "out.png")
    assert r.returncode == 0
    lines = r.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{digit} -> {tmp_path / 'out.png'}: 28x28 L, denoised in "), lines
