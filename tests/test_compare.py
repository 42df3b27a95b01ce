"""lstmcodec compare: the page's numbers against bench's, its command line, and the page driven in a real browser
(headless Chromium through Selenium and chromium-driver; skipped with the reason where they are not installed)."""
from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lstmcodec.evaluation import bench, comparison
from lstmcodec.models import zoo
from lstmcodec.evaluation.comparison import page_data

from conftest import run_cli

ITERATIONS = [1, 2, 4]


def pixels(uri: str) -> np.ndarray:
    head, b64 = uri.split(",", 1)
    with Image.open(io.BytesIO(base64.b64decode(b64))) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="module")
def page(parrots_path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("compare") / "parrots.html"
    comparison.compare(parrots_path, out, ITERATIONS, ["webp", "jpeg"], "fast")
    return out


def test_the_numbers_are_benchs(page, parrots):
    data = page_data(page.read_text())
    (p,) = data["photos"]
    assert p["iterations"] == ITERATIONS and (p["width"], p["height"]) == (parrots.shape[1], parrots.shape[0])
    ours = bench.run_lstmcodec([("parrots", parrots)], ITERATIONS, "fast", "cpu", lambda _m: None)
    for point, shot in zip(ours, p["lstmcodec"]):
        assert shot["setting"] == f"-i {point.setting}"
        assert shot["bpp"] == round(point.bpp[0], 4)
        assert shot["psnr"] == round(point.psnr[0], 3) and shot["ms_ssim"] == round(point.ms_ssim[0], 5)
    for name in ("webp", "jpeg"):
        for ref, shot in zip(p["lstmcodec"], p["codecs"][name]):
            q = int(shot["setting"].split()[1])
            (point,) = bench.run_classic(name, [("parrots", parrots)], lambda _m: None, qualities=[q])
            assert shot["bpp"] == round(point.bpp[0], 4)
            assert shot["psnr"] == round(point.psnr[0], 3) and shot["ms_ssim"] == round(point.ms_ssim[0], 5)
            if shot["larger"]:   # even the lowest quality is larger than lstmcodec's file: that one is shown
                assert q == comparison.CODECS[name][2][0] and shot["bytes"] > ref["bytes"]
                continue
            # equal bytes: not larger than lstmcodec's file, and the next quality up would be
            assert shot["bytes"] <= ref["bytes"]
            if q < 100:
                (up,) = bench.run_classic(name, [("parrots", parrots)], lambda _m: None, qualities=[q + 1])
                assert up.bpp[0] > ref["bpp"] - 1e-9


def test_the_images_are_what_was_measured(page, parrots):
    p = page_data(page.read_text())["photos"][0]
    assert np.array_equal(pixels(p["original"]), parrots)
    codec = zoo.load_codec("fast")
    decoded = {k: out for k, _, _, out, _ in bench.prefixes(codec, parrots, max(ITERATIONS))}
    for k, shot in zip(ITERATIONS, p["lstmcodec"]):
        assert np.array_equal(pixels(shot["src"]), decoded[k])
    assert p["codecs"]["webp"][0]["src"].startswith("data:image/webp;base64,")
    assert p["codecs"]["jpeg"][0]["src"].startswith("data:image/jpeg;base64,")


def test_the_page_fetches_nothing(page):
    html = page.read_text()
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in html


def test_command_line_progress_and_page(parrots_path, tmp_path):
    out = tmp_path / "p.html"
    r = run_cli("compare", parrots_path, "-o", out, "-i", "1,3", "--codecs", "webp")
    assert r.returncode == 0, r.stderr
    assert b"[1/3]" in r.stderr and b"page written to" in r.stderr
    p = page_data(out.read_text())["photos"][0]
    assert [s["setting"] for s in p["lstmcodec"]] == ["-i 1", "-i 3"] and list(p["codecs"]) == ["webp"]
    r = run_cli("compare", parrots_path, "-o", out, "-i", "1", "--codecs", "webp")
    assert r.returncode == 1 and r.stderr.decode().startswith("error: ") and b"--force" in r.stderr


@pytest.mark.parametrize("args, code, message", [
    (["missing.png"], 1, "no such file"),
    (["{bad}", "-i", "0"], 2, "iteration counts start at 1"),
    (["{bad}", "--codecs", "gif"], 1, "unknown codec"),
    (["{bad}"], 1, "not an image file"),
])
def test_bad_input_is_one_line_and_no_page(tmp_path, args, code, message):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    out = tmp_path / "page.html"
    r = run_cli("compare", *[a.replace("{bad}", str(bad)) for a in args], "-o", out, cwd=tmp_path)
    err = r.stderr.decode()
    assert r.returncode == code, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert message in err.lower(), err
    assert not out.exists() and not list(tmp_path.glob("*.part"))


# ----------------------------------------------------------------------------- a real browser

def _browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("no headless Chromium here (apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--force-device-scale-factor=1", "--window-size=1200,1000", "--force-color-profile=srgb"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=opts)


@pytest.fixture(scope="module")
def browser():
    b = _browser()
    yield b
    b.quit()


def _screenshot(browser, name: str) -> None:
    folder = os.environ.get("LSTMCODEC_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(Path(folder) / name))


def test_split_slider_zoom_in_a_real_browser(browser, page, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    data = page_data(page.read_text())["photos"][0]
    browser.get(page.as_uri())
    view = browser.find_element(By.ID, "view")
    w, h = view.size["width"], view.size["height"]
    assert (w, h) == (data["width"], data["height"])

    # drag the split line from the middle to a quarter of the way across
    handle = browser.find_element(By.ID, "handle")
    ActionChains(browser).click_and_hold(handle).move_by_offset(-w // 4, 0).release().perform()
    split = w // 4

    def layer_at(x: int) -> str:
        return browser.execute_script(
            "const r = document.getElementById('view').getBoundingClientRect();"
            "return document.elementFromPoint(r.left + arguments[0], r.top + arguments[1]).id;", x, h // 2)

    assert layer_at(split - 20) == "left-layer" and layer_at(split + 20) == "right-layer"
    left_src = browser.find_element(By.ID, "left-img").get_attribute("src")
    right_src = browser.find_element(By.ID, "right-img").get_attribute("src")
    assert left_src == data["lstmcodec"][0]["src"] and right_src == data["codecs"]["webp"][0]["src"]

    # the pixels on screen: lstmcodec's left of the line, WebP's right of it
    shot = np.asarray(Image.open(io.BytesIO(view.screenshot_as_png)).convert("RGB")).astype(int)
    ours, webp = pixels(data["lstmcodec"][0]["src"]).astype(int), pixels(data["codecs"]["webp"][0]["src"]).astype(int)
    band, left, right = slice(40, h - 4), slice(4, split - 20), slice(split + 20, w - 4)   # clear of labels, handle
    assert np.abs(shot[band, left] - ours[band, left]).mean() < 1.0
    assert np.abs(shot[band, right] - webp[band, right]).mean() < 1.0
    assert np.abs(shot[band, right] - ours[band, right]).mean() > 2.0

    # the iteration slider, moved by the keyboard: both sides and the numbers follow
    slider = browser.find_element(By.ID, "iteration")
    slider.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
    step = data["lstmcodec"][2]
    assert browser.find_element(By.ID, "step-label").text == "-i 4"
    left = browser.find_element(By.ID, "left-stats")
    assert left.get_attribute("data-bytes") == str(step["bytes"])
    assert f"PSNR {step['psnr']:.2f} dB" in left.text and f"MS-SSIM {step['ms_ssim']:.4f}" in left.text
    right = browser.find_element(By.ID, "right-stats")
    assert right.get_attribute("data-bytes") == str(data["codecs"]["webp"][2]["bytes"])
    assert browser.find_element(By.ID, "left-img").get_attribute("src") == step["src"]
    assert browser.find_element(By.ID, "right-img").get_attribute("src") == data["codecs"]["webp"][2]["src"]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chart-psnr .mark-ours")) == 1

    # another codec on the right, zoom 2x: both sides scaled in step
    from selenium.webdriver.support.ui import Select
    Select(browser.find_element(By.ID, "codec")).select_by_value("jpeg")
    assert browser.find_element(By.ID, "right-img").get_attribute("src") == data["codecs"]["jpeg"][2]["src"]
    browser.find_element(By.CSS_SELECTOR, "[data-zoom='2']").click()
    transforms = [browser.find_element(By.ID, i).value_of_css_property("transform") for i in ("left-img", "right-img")]
    assert transforms[0] == transforms[1] and transforms[0].startswith("matrix(2, 0, 0, 2")
    ActionChains(browser).move_to_element_with_offset(view, w // 4, 0).click_and_hold().move_by_offset(-40, -30) \
        .release().perform()
    moved = [browser.find_element(By.ID, i).value_of_css_property("transform") for i in ("left-img", "right-img")]
    assert moved[0] == moved[1] != transforms[0]
    _screenshot(browser, "compare.png")
    browser.save_screenshot(str(tmp_path / "compare.png"))

    # nothing fetched from the network, no console errors
    urls = [json.loads(e["message"])["message"].get("params", {}).get("request", {}).get("url", "")
            for e in browser.get_log("performance")]
    assert all(u.startswith(("data:", "file:")) for u in urls if u), [u[:80] for u in urls]
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
