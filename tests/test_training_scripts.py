"""The denoiser and classifier training scripts, end to end on tiny data: train, resume, export, load, use."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from conftest import DATA, run_cli

ROOT = Path(__file__).resolve().parent.parent


def _script(name: str, *args, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def test_classifier_trains_resumes_exports_and_classifies(tmp_path, mnist_dir):
    out, weights = tmp_path / "run", tmp_path / "digits.pt"
    r = _script("train_classifier.py", "mnist", mnist_dir, "--out", out, "--epochs", 2, "--batch", 16, "--threads", 1)
    assert r.returncode == 0, r.stderr
    assert "test_acc" in r.stderr and (out / "log.csv").exists()
    log = (out / "log.csv").read_text()
    assert "val_test_acc" in log and "elapsed_s" in log
    # a longer run resumes from the checkpoint instead of starting again, then exports
    r = _script("train_classifier.py", "mnist", mnist_dir, "--out", out, "--epochs", 3, "--batch", 16, "--threads", 1,
                "--export", weights, "--name", "tiny-digits")
    assert r.returncode == 0, r.stderr
    assert "resumed from" in r.stderr and weights.exists()
    blob = torch.load(weights, weights_only=True)
    assert blob["task"] == "classify" and blob["arch"] == "mnist-cnn" and blob["config"]["size"] == 28
    assert all(v.dtype == torch.float16 for v in blob["state_dict"].values() if v.is_floating_point())

    digit = tmp_path / "digit.png"
    Image.fromarray(np.load(DATA / "mnist-test-200.npz")["images"][0]).save(digit)
    r = run_cli("classify", digit, "--model", weights, "--top", 2, "--json")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count(b'"label"') == 2


def test_classifier_reads_class_folders(tmp_path):
    z = np.load(DATA / "cifar10-test-100.npz")
    for k, (im, lab) in enumerate(zip(z["images"], z["labels"])):
        folder = tmp_path / "data" / ("test" if k % 5 == 0 else "train") / f"class{lab}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(im.transpose(1, 2, 0)).save(folder / f"{k}.png")
    (tmp_path / "data" / "test" / "zebra").mkdir()
    r = _script("train_classifier.py", "folder", tmp_path / "data", "--out", tmp_path / "run")
    assert r.returncode == 1 and "classes that" in r.stderr and "zebra" in r.stderr
    (tmp_path / "data" / "test" / "zebra").rmdir()
    r = _script("train_classifier.py", "folder", tmp_path / "data", "--out", tmp_path / "run", "--epochs", 1,
                "--batch", 16, "--widths", 8, 16, 16, "--threads", 1, "--tta", "--export", tmp_path / "f.pt")
    assert r.returncode == 0, r.stderr
    assert torch.load(tmp_path / "f.pt", weights_only=True)["config"]["widths"] == [8, 16, 16]
    # --init inherits the network (no --widths given); a --widths that differs is one error line
    r = _script("train_classifier.py", "folder", tmp_path / "data", "--out", tmp_path / "ft", "--epochs", 1, "--batch", 16,
                "--init", tmp_path / "f.pt", "--threads", 1, "--export", tmp_path / "g.pt")
    assert r.returncode == 0, r.stderr
    assert torch.load(tmp_path / "g.pt", weights_only=True)["config"]["widths"] == [8, 16, 16]
    r = _script("train_classifier.py", "folder", tmp_path / "data", "--out", tmp_path / "ft2", "--init", tmp_path / "f.pt",
                "--widths", 8, 8, 8)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "--widths [8, 8, 8] does not fit its network" in r.stderr.strip().splitlines()[-1]


def test_denoiser_trains_with_target_loss_and_exports(tmp_path, mnist_dir):
    weights = tmp_path / "dn.pt"
    r = _script("train_denoiser.py", "mnist", mnist_dir, "--arch", "conv-ae", "--decoder", "upsample", "--noise", "mix",
                "--mean", -20, "--var", 600, "--epochs", 3, "--batch", 16, "--target-loss", 1.0, "--threads", 1,
                "--out", tmp_path / "run", "--export", weights)
    assert r.returncode == 0, r.stderr
    assert "target reached at step 9" in r.stderr  # 150 // 16 = 9 steps per epoch: the first epoch meets loss 1.0
    blob = torch.load(weights, weights_only=True)
    assert blob["task"] == "denoise" and blob["config"]["decoder"] == "upsample"
    m = blob["meta"]["metrics"]
    assert m["train_mse"] <= 1.0 and 0 < m["test_mse"] < 0.3 and 0 < m["noisy_mse"] < 0.05


def test_photo_denoiser_trains_on_a_folder(tmp_path):
    r = _script("train_denoiser.py", "folder", DATA, "--arch", "residual", "--width", 8, "--depth", 3, "--down", 2,
                "--sigma-max", 50, "--no-clip", "--steps", 4, "--crop", 32, "--batch", 4, "--eval-every", 2,
                "--threads", 1, "--out", tmp_path / "run", "--export", tmp_path / "p.pt")
    assert r.returncode == 0, r.stderr
    assert "val_psnr_s25" in r.stderr
    first = torch.load(tmp_path / "p.pt", weights_only=True)
    assert first["config"] == {"in_channels": 3, "width": 8, "depth": 3, "down": 2}
    # --init fine-tunes that file with its architecture: at lr 0 its weights come out unchanged
    r = _script("train_denoiser.py", "folder", DATA, "--init", tmp_path / "p.pt", "--lr", 0, "--steps", 1,
                "--crop", 32, "--batch", 2, "--eval-every", 1, "--threads", 1, "--out", tmp_path / "ft", "--export", tmp_path / "q.pt")
    assert r.returncode == 0, r.stderr
    again = torch.load(tmp_path / "q.pt", weights_only=True)
    assert again["arch"] == "residual" and again["config"] == first["config"]
    assert all(torch.equal(again["state_dict"][k], v) for k, v in first["state_dict"].items())
    r = _script("train_denoiser.py", "folder", DATA, "--init", "mnist", "--steps", 1, "--out", tmp_path / "bad")
    assert r.returncode != 0 and r.stderr.strip().splitlines()[-1] == "error: --init mnist: a 1-channel denoiser, the data has 3"
    assert "Traceback" not in r.stderr
    # a named shape option that differs from the file's network is refused, not silently ignored
    r = _script("train_denoiser.py", "folder", DATA, "--init", tmp_path / "p.pt", "--width", 16, "--steps", 1,
                "--out", tmp_path / "bad2")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(f"error: --init {tmp_path / 'p.pt'}: --width 16 does not fit its network")
    # and a resumed run keeps its own network
    r = _script("train_denoiser.py", "folder", DATA, "--arch", "unet", "--steps", 2, "--out", tmp_path / "run")
    assert r.returncode == 1 and "--arch unet does not fit the resumed run" in r.stderr.strip().splitlines()[-1]


def test_scripts_refuse_missing_data_with_one_line(tmp_path):
    for script, args in (("train_classifier.py", ["mnist", tmp_path / "nothing"]),
                         ("train_denoiser.py", ["cifar10", tmp_path / "nothing"])):
        r = _script(script, *args, "--out", tmp_path / "run")
        assert r.returncode != 0
        assert r.stderr.strip().startswith("error:") and "Traceback" not in r.stderr


def test_learn_entropy_tables_refuses_a_mixer_without_images_to_count_against(tmp_path):
    """The mixer is fitted against a table counted on the images it is not fitted on: asking for as many mixer
    images as images leaves none, and is refused with one line before any image is coded (not a traceback)."""
    r = _script("learn_entropy_tables.py", DATA, "--model", "fast", "--images", 4, "--mixer-images", 4,
                "--out", tmp_path / "t.pt")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip() == ("error: --mixer-images must be from 0 to --images - 1 (3): the mixer is fitted against "
                                "a table counted on the other images")
    assert not (tmp_path / "t.pt").exists()
