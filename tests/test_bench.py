"""The benchmark: CompressAI-layout results, small-image MS-SSIM fallback, BD-rate, anchors."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from lstmcodec import metrics
from lstmcodec.cli import main

DATA = Path(__file__).parent / "data"
SHARED = Path(__file__).resolve().parents[2] / "shared"


def test_bench_writes_compressai_json(tmp_path, capsys):
    # houses.png is 160 px on a side: below MS-SSIM's five scales, so it exercises the fallback
    assert main(["bench", str(DATA), "--iterations", "1,2", "--codecs", "jpeg", "-o", str(tmp_path), "-q"]) == 0
    table = capsys.readouterr().out
    assert "Bjøntegaard" in table and "vs jpeg" in table
    ours = json.loads((tmp_path / "lstmcodec.json").read_text())
    jpeg = json.loads((tmp_path / "jpeg.json").read_text())
    for r in (ours, jpeg):
        assert {"name", "description", "results"} <= set(r)
        assert {"bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time"} <= set(r["results"])
        assert all(0 < v <= 1 for v in r["results"]["ms-ssim-rgb"])
    assert ours["results"]["setting"] == [1, 2]
    assert ours["results"]["bpp"][0] < ours["results"]["bpp"][1]
    assert ours["precision"] in ("fp32", "bf16") and ours["description"] in table   # which arithmetic was measured
    assert main(["bench", str(DATA / "houses.png"), "--iterations", "1", "--codecs", "jpeg", "--precision", "fp32",
                 "-o", str(tmp_path / "fp32"), "-q"]) == 0
    fp32 = json.loads((tmp_path / "fp32" / "lstmcodec.json").read_text())
    assert fp32["precision"] == "fp32" and ", fp32), 1 image of " in fp32["description"]


def test_shift_measures_one_pixel_off_the_block_grid(tmp_path, parrots):
    """--shift measures every codec on the images less their first row and column, cut to even sides: MS-SSIM's
    first halving then straddles the 2x2 cells along the grid. The decoder's error mostly cancels inside those cells
    (docs/experiments.md), so lstmcodec's MS-SSIM falls off the grid while its PSNR and WebP's MS-SSIM do not."""
    from lstmcodec.evaluation import bench

    assert bench.shifted(np.zeros((321, 481, 3))).shape == (320, 480, 3)
    assert bench.shifted(np.zeros((512, 768, 3))).shape == (510, 766, 3)
    assert np.array_equal(bench.shifted(parrots)[0, :4], parrots[1, 1:5])
    results = {}
    for flag in ([], ["--shift"]):
        out = tmp_path / f"r{len(flag)}.json"
        assert main(["bench", str(DATA / "parrots.png"), "--iterations", "8", "--codecs", "webp", "--precision", "fp32",
                     "-o", str(out), "-q", *flag]) == 0
        results[bool(flag)] = json.loads(out.read_text())
    ours, shifted = results[False][0], results[True][0]
    assert "shifted by one pixel" in shifted["description"] and "shifted" not in ours["description"]
    assert ours["results"]["bpp"] == shifted["results"]["bpp"]
    assert shifted["results"]["ms-ssim-rgb"][0] < ours["results"]["ms-ssim-rgb"][0] - 0.002   # 0.9809 -> 0.9782
    assert abs(shifted["results"]["psnr-rgb"][0] - ours["results"]["psnr-rgb"][0]) < 0.5
    webp, webp_shifted = results[False][1]["results"]["ms-ssim-rgb"], results[True][1]["results"]["ms-ssim-rgb"]
    assert min(b - a for a, b in zip(webp, webp_shifted)) > -0.0005   # WebP does not care where the halving falls


def test_bench_single_json_file_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "all.json"
    assert main(["bench", str(DATA), "--iterations", "1", "--codecs", "jpeg", "-o", str(out), "-q"]) == 0
    results = json.loads(out.read_text())
    assert [r["name"].split()[0] for r in results] == ["lstmcodec", "JPEG"]
    assert main(["plot", str(out), "-o", str(tmp_path / "rd.png")]) == 0
    assert (tmp_path / "rd.png").read_bytes()[:4] == b"\x89PNG"


def test_ms_ssim_fallback_for_small_images():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    assert metrics.ms_ssim(a, a) == pytest.approx(1.0)
    noisy = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    assert 0 < metrics.ms_ssim(noisy, a) < 0.99
    tiny = a[:5, :5]
    assert metrics.ms_ssim(tiny, tiny) == pytest.approx(1.0)


def test_ms_ssim_scales_multiply_to_ms_ssim_and_place_blur_and_noise(parrots):
    """Blur loses MS-SSIM at the fine scales, a coarse brightness change at the coarsest."""
    rng = np.random.default_rng(1)
    a = parrots[:192, :256]
    blurred = ((a[:-1, :-1].astype(float) + a[1:, :-1] + a[:-1, 1:] + a[1:, 1:]) / 4).round().astype(np.uint8)
    a = a[:-1, :-1]
    noisy = np.clip(a + rng.normal(0, 8, a.shape), 0, 255).astype(np.uint8)
    w = np.array(metrics._MS_WEIGHTS)
    for b in (blurred, noisy):
        factors = np.array(metrics.ms_ssim_scales(a, b))
        assert np.prod(factors ** w) == pytest.approx(metrics.ms_ssim(a, b), abs=2e-3)
    assert metrics.ms_ssim_scales(a, a) == pytest.approx([1.0] * 5)
    blur = 1 - np.array(metrics.ms_ssim_scales(a, blurred))
    assert blur[0] > blur[2] > blur[4]
    darker = np.clip(a.astype(int) - 30, 0, 255).astype(np.uint8)
    dark = 1 - np.array(metrics.ms_ssim_scales(a, darker))
    assert dark[4] > dark[0]


def test_bd_rate():
    r = np.array([0.25, 0.5, 1.0, 2.0])
    d = np.array([30.0, 33.0, 36.0, 39.0])
    assert metrics.bd_rate(r, d, r, d) == pytest.approx(0.0, abs=1e-9)
    assert metrics.bd_rate(r, d, r / 2, d) == pytest.approx(-50.0, abs=1e-6)
    assert math.isnan(metrics.bd_rate(r, d, r, d + 100))


@pytest.mark.kodak
def test_jpeg_matches_the_anchor_on_kodak():
    """Opt-in (pytest -m kodak): our JPEG measurement equals ../shared/anchors/classic-kodak.json within 0.002."""
    from lstmcodec.evaluation import bench

    kodak = SHARED / "data" / "kodak"
    if not kodak.is_dir():
        pytest.skip("../shared/data/kodak is not here")
    anchor = {e["q"]: e for e in json.loads((SHARED / "anchors" / "classic-kodak.json").read_text())["jpeg"]}
    images = bench.load_images(kodak)
    for p in bench.run_classic("jpeg", images, lambda m: None, qualities=[5, 20, 50]):
        assert abs(p.mean("ms_ssim") - anchor[p.setting]["ms_ssim"]) < 0.002, p.setting
        assert abs(p.mean("bpp") - anchor[p.setting]["bpp"]) < 0.01, p.setting


def test_quality_targets_reports_each_target_met_or_not(tmp_path):
    """scripts/quality_targets.py on a made-up bench folder: a curve that stops rising at -i 3 and falls below
    JPEG at -i 3 is reported as short exactly there; the BD-rates come from the same JSON files."""
    import subprocess
    import sys

    def write(name, bpp, psnr, ms):
        (tmp_path / f"{name}.json").write_text(json.dumps({"name": name, "results": {
            "bpp": bpp, "psnr-rgb": psnr, "ms-ssim-rgb": ms, "ms-ssim-rgb-db": [metrics.ms_ssim_db(m) for m in ms],
            "setting": list(range(1, len(bpp) + 1))}}))

    write("lstmcodec", [0.2, 0.4, 0.6], [26.0, 29.0, 29.1], [0.90, 0.95, 0.9502])
    write("jpeg", [0.3, 0.5, 0.8], [25.0, 28.0, 31.0], [0.85, 0.94, 0.97])
    write("webp", [0.1, 0.3, 0.7], [25.0, 28.5, 31.5], [0.88, 0.94, 0.97])
    script = Path(__file__).resolve().parents[1] / "scripts" / "quality_targets.py"
    run = lambda *a: subprocess.run([sys.executable, str(script), str(tmp_path), *a], capture_output=True,  # noqa: E731
                                    text=True, check=True).stdout
    out = run()
    assert "short at -i 3 -> NOT met" in out
    assert "PSNR at -i 3: 29.10 dB (>= 31.0) -> NOT met" in out
    assert "MS-SSIM below JPEG's at -i: 3 -> NOT met" in out
    jpeg = json.loads((tmp_path / "jpeg.json").read_text())["results"]
    ours = json.loads((tmp_path / "lstmcodec.json").read_text())["results"]
    bd = metrics.bd_rate(jpeg["bpp"], jpeg["psnr-rgb"], ours["bpp"], ours["psnr-rgb"])
    assert f"PSNR BD-rate against JPEG: {bd:+.1f} %" in out
    held = run("--held-back")
    assert "MS-SSIM below JPEG's at -i: 3; PSNR below JPEG's at -i: 3 -> NOT met" in held
