"""The bundled denoisers and classifiers, through the Python API and the command line."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from lstmcodec.training import data
from lstmcodec import metrics
from lstmcodec.tasks.classifier import classify
from lstmcodec.tasks.denoiser import denoise, denoise_tensor, get_denoiser
from lstmcodec.nets import denoise as denoise_nets
from lstmcodec.models.zoo import LoadedNet

from conftest import DATA, run_cli


def _noisy(rgb: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    g = np.random.default_rng(seed)
    return np.clip(np.round(rgb + g.normal(0, sigma, rgb.shape)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def digits():
    z = np.load(DATA / "mnist-test-200.npz")
    return z["images"], z["labels"]


# ----------------------------------------------------------------------------- denoising


def test_photo_denoiser_removes_gaussian_noise(parrots):
    noisy = _noisy(parrots, 25)
    out = np.asarray(denoise(noisy))
    before, after = metrics.psnr(noisy, parrots), metrics.psnr(out, parrots)
    assert before < 21.0
    assert after > before + 10.0, (before, after)  # measured: 20.4 -> 34.0 dB (bundled U-Net)


def test_tiles_are_seamless(parrots):
    """Tiled denoising equals one pass over the whole image: tiles carry a margin of the receptive field."""
    net = get_denoiser("photo")
    x = torch.from_numpy(_noisy(parrots, 25)).permute(2, 0, 1)[None].float() / 255
    whole = denoise_tensor(x, net, tile=4096)
    tiled = denoise_tensor(x, net, tile=64)
    assert float((whole - tiled).abs().max()) < 1e-4


@pytest.mark.parametrize("arch, config", [("unet", {"width": 8, "blocks": 2}), ("residual", {"width": 8, "depth": 5, "down": 2})])
def test_tiles_are_seamless_for_every_residual_architecture(arch, config):
    """The margin each network declares covers its receptive field, also for odd sizes and tile sizes
    off the U-Net's 4-pixel grid (an untrained network: the check is about geometry, not weights)."""
    torch.manual_seed(0)
    model = denoise_nets.build(arch, {"in_channels": 3, **config}).eval()
    net = LoadedNet("random", "denoise", arch, model, config, {})
    x = torch.rand(1, 3, 157, 203)
    whole = denoise_tensor(x, net, tile=4096)
    tiled = denoise_tensor(x, net, tile=50)
    assert float((whole - x).abs().max()) > 1e-3  # the network does change the image
    assert float((whole - tiled).abs().max()) < 1e-5


def test_self_ensemble_keeps_the_shape_and_removes_more_noise(parrots):
    noisy = _noisy(parrots[:90, :130], 25)
    plain, ensemble = np.asarray(denoise(noisy)), np.asarray(denoise(noisy, ensemble=True))
    assert ensemble.shape == plain.shape == noisy.shape
    assert metrics.psnr(ensemble, parrots[:90, :130]) > metrics.psnr(plain, parrots[:90, :130]) + 0.05  # measured: +0.29 dB


def test_denoise_keeps_mode_alpha_and_size(parrots):
    h, w = 45, 67
    gray = Image.fromarray(_noisy(parrots[:h, :w], 15)).convert("L")
    assert denoise(gray).mode == "L" and denoise(gray).size == (w, h)
    rgba = Image.fromarray(_noisy(parrots[:h, :w], 15)).convert("RGBA")
    alpha = np.tile(np.arange(w, dtype=np.uint8), (h, 1))
    rgba.putalpha(Image.fromarray(alpha))
    out = denoise(rgba)
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out.getchannel("A")), alpha)


def test_mnist_denoiser_meets_the_experiment_target(digits):
    images, _ = digits
    clean = torch.from_numpy(images).float()[:, None] / 255
    noisy = data.Noise("mix", mean=-20, var=600)(clean, torch.Generator().manual_seed(0))
    net = get_denoiser("mnist")
    with torch.no_grad():
        out = net.model(noisy)
    mse = float(((out - clean) ** 2).mean())
    assert float(((noisy - clean) ** 2).mean()) > 0.012
    assert mse < 0.0063, mse


def test_cli_denoise_names_outputs_and_refuses_to_overwrite(tmp_path, parrots):
    src = tmp_path / "noisy.png"
    Image.fromarray(_noisy(parrots, 25)).save(src)
    r = run_cli("denoise", src)
    assert r.returncode == 0, r.stderr
    assert re.search(rb"256x192 RGB, denoised in \d+\.\d\d s \(\d+\.\d\d s per megapixel\)", r.stderr), r.stderr
    out = tmp_path / "noisy-denoised.png"
    assert metrics.psnr(np.asarray(Image.open(out)), parrots) > metrics.psnr(_noisy(parrots, 25), parrots) + 10
    before = out.read_bytes()
    r = run_cli("denoise", src)
    assert r.returncode == 1 and b"already exists" in r.stderr and out.read_bytes() == before
    r = run_cli("denoise", src, "-o", tmp_path / "x.webp")
    assert r.returncode == 0 and Image.open(tmp_path / "x.webp").format == "WEBP"


def test_cli_denoise_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    for args in (["denoise", bad, "-o", tmp_path / "o.png"], ["denoise", tmp_path / "missing.png"],
                 ["denoise", DATA / "parrots.png", "--model", "nonesuch", "-o", tmp_path / "o.png"],
                 ["classify", bad], ["classify", DATA / "parrots.png", "--model", "photo"]):
        r = run_cli(*args)
        assert r.returncode == 1, args
        lines = r.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and b"Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "o.png").exists()


def test_encode_denoise_saves_bits_on_a_noisy_photo(tmp_path, parrots):
    src = tmp_path / "noisy.png"
    Image.fromarray(_noisy(parrots, 15)).save(src)
    r1 = run_cli("encode", src, "-i", "4", "-o", tmp_path / "plain.lstm")
    r2 = run_cli("encode", src, "-i", "4", "--denoise", "-o", tmp_path / "clean.lstm")
    assert r1.returncode == 0 and r2.returncode == 0, r2.stderr
    plain, clean = (tmp_path / "plain.lstm").stat().st_size, (tmp_path / "clean.lstm").stat().st_size
    assert clean < plain
    r = run_cli("decode", tmp_path / "clean.lstm", "-o", tmp_path / "clean.png")
    assert r.returncode == 0, r.stderr
    dec = np.asarray(Image.open(tmp_path / "clean.png").convert("RGB"))
    assert metrics.ms_ssim(dec, parrots) > 0.85  # against the clean original


# ----------------------------------------------------------------------------- classification


def test_mnist_classifier_reads_digits(digits):
    images, labels = digits
    preds = [classify(Image.fromarray(im), "mnist", top=1)[0].index for im in images]
    assert np.mean(np.array(preds) == labels) >= 0.99


def test_cifar10_classifier_beats_chance_by_far():
    z = np.load(DATA / "cifar10-test-100.npz")
    preds = [classify(Image.fromarray(im.transpose(1, 2, 0)), "cifar10", top=1)[0].index for im in z["images"]]
    assert np.mean(np.array(preds) == z["labels"]) >= 0.85  # measured: 0.91 on these 100 with the 87.5 % and 93.0 % weights, 0.94 with the 94.6 % ones


def test_classify_resizes_any_image_and_ranks(parrots):
    preds = classify(parrots, "cifar10", top=10)
    assert len(preds) == 10 and sorted(p.label for p in preds) == sorted(data.CIFAR10_CLASSES)
    probs = [p.probability for p in preds]
    assert probs == sorted(probs, reverse=True) and abs(sum(probs) - 1) < 1e-4


def test_cli_classify_text_and_json(tmp_path, digits):
    images, labels = digits
    files = []
    for k in range(3):
        files.append(tmp_path / f"d{k}.png")
        Image.fromarray(images[k]).save(files[-1])
    r = run_cli("classify", *files, "--model", "mnist", "--json", "--top", "2")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.decode().splitlines()]
    assert [int(row["predictions"][0]["label"]) for row in rows] == labels[:3].tolist()
    assert all(len(row["predictions"]) == 2 for row in rows)
    r = run_cli("classify", files[0], "--model", "mnist")
    assert r.returncode == 0 and r.stdout.decode().startswith(f"{files[0]}: {labels[0]} ")


def test_whitening_stem_decorrelates_patches():
    from lstmcodec.nets.classify import FastResNet
    z = np.load(DATA / "cifar10-test-100.npz")
    x = torch.from_numpy(z["images"]).float() / 255
    x = (x - x.mean((0, 2, 3), keepdim=True)) / x.std((0, 2, 3), keepdim=True)
    net = FastResNet(widths=(64, 64, 64))
    net.init_whitening(x)
    with torch.no_grad():
        y = torch.nn.functional.conv2d(x, net.stem[0].weight[:16])  # the 16 leading components (valid patches)
    cov = torch.cov(y.permute(1, 0, 2, 3).reshape(16, -1))
    assert torch.allclose(cov, torch.eye(16), atol=0.05)  # unit variance, uncorrelated
    assert torch.equal(net.stem[0].weight[16:32], -net.stem[0].weight[:16])


def test_shift_tta_averages_six_views():
    from lstmcodec.nets.classify import FastResNet, logits
    torch.manual_seed(0)
    net = FastResNet(widths=(8, 8, 8)).eval()
    x = torch.randn(2, 3, 32, 32)
    flip = logits(net, x, {"flip_tta": True})
    both = logits(net, x, {"flip_tta": True, "shift_tta": True})
    p = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    views = [p[..., :32, :32], p[..., 2:, 2:]]
    shifted = sum((net(v) + net(v.flip(-1))) / 2 for v in views) / 2
    assert torch.allclose(both, (flip + shifted) / 2, atol=1e-5)
    assert not torch.allclose(both, flip, atol=1e-4)
