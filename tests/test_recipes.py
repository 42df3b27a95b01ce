"""Training recipes in files: every bundled model's recipe parses with its script, and a small recipe runs end to
end (stages, init, resize, the entropy tables) into a weights file that codes a photo."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import lstmcodec
from lstmcodec.training import recipes
from lstmcodec.models import zoo

from conftest import DATA

ROOT = Path(__file__).resolve().parent.parent


def _script(name: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *map(str, args)], capture_output=True,
                          text=True, timeout=600, cwd=ROOT)


def test_every_bundled_model_has_a_recipe_whose_stages_parse(tmp_path):
    for task, entries in zoo.registry().items():
        for name in entries:
            recipe = recipes.load(name if task == "codec" else f"{task}-{name}")
            assert recipe.name == name and recipe.task == task and recipe.stages
            r = _script(recipes.TASK_SCRIPTS[task], "--recipe", recipe.path, "--out", tmp_path / name, "--dry-run")
            assert r.returncode == 0, r.stderr
            assert "every stage's options parse" in r.stderr
            assert r.stderr.count("$ ") >= len(recipe.stages)


def test_a_recipe_runs_its_stages_resumes_and_makes_a_model(tmp_path, parrots):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(f'''
name = "tiny"
task = "codec"
data = ["{DATA}"]
[tables]
images = 2
k = 2
[tail]
start = 1
stages = 2
blocks = 60
[[stage]]
name = "first"
options = {{ width = 0.125, iterations = 2, crop = 32, batch = 2, eval-every = 0, threads = 1 }}
[[stage]]
name = "narrower"
init = "first"
options = {{ decoder-hidden = [32, 32, 16, 8], resize = true, crop = 32, batch = 2, eval-every = 0, threads = 1 }}
''')
    r = _script("train_codec.py", "--recipe", recipe, "--out", tmp_path / "run", "--steps", 2)
    assert r.returncode == 0, r.stderr
    made = tmp_path / "run" / "tiny.pt"
    assert f"recipe tiny: wrote {made}" in r.stderr and (tmp_path / "run" / "first.pt").exists()
    codec = lstmcodec.load_model(str(made))
    assert codec.name == "tiny" and codec.config.decoder_hidden == (32, 32, 16, 8) and codec.prior is not None
    assert codec.tail is not None and codec.tail.start == 1 and codec.tail.stages == 2   # the recipe's [tail]
    assert lstmcodec.decode(codec.compress(parrots[:32, :48], 3), model=str(made)).size == (48, 32)
    again = _script("train_codec.py", "--recipe", recipe, "--out", tmp_path / "run", "--steps", 2)
    assert again.returncode == 0 and "stage first is done" in again.stderr and "stage narrower is done" in again.stderr


def test_a_stage_cut_short_stops_the_recipe_with_one_line(tmp_path):
    recipe = tmp_path / "cut.toml"
    recipe.write_text(f'''
name = "cut"
task = "codec"
data = ["{DATA}"]
[[stage]]
name = "only"
options = {{ width = 0.125, iterations = 2, crop = 32, batch = 2, eval-every = 0, threads = 1, stop-at = 1 }}
''')
    r = _script("train_codec.py", "--recipe", recipe, "--out", tmp_path / "run", "--steps", 3)
    assert r.returncode == 0, r.stderr   # stop-at ends a stage on purpose: it counts as done
    recipe.write_text(recipe.read_text().replace("stop-at = 1", "time-limit = 0.001"))
    r = _script("train_codec.py", "--recipe", recipe, "--out", tmp_path / "run2", "--steps", 50)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: stage only stopped at step ")
    # a stage planned over time (its schedule ends with its time limit) is done when the time has run
    recipe.write_text(recipe.read_text().replace("time-limit = 0.001", 'time-limit = 2, schedule-over = "time"'))
    r = _script("train_codec.py", "--recipe", recipe, "--out", tmp_path / "run3", "--steps", 100000)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "run3" / "only.pt").exists()


@pytest.mark.parametrize("text, message", [
    ("name = 'x'", "malformed recipe"),
    ("name = 'x'\ntask = 'painting'\n[[stage]]\nname = 'a'", "task must be one of"),
    ("name = 'x'\ntask = 'codec'\n[[stage]]\nname = 'a'\ninit = 'b'\n[[stage]]\nname = 'b'", "which comes after it"),
    ("not toml [", "not a TOML file"),
])
def test_a_bad_recipe_is_one_error_line(tmp_path, text, message):
    (tmp_path / "bad.toml").write_text(text)
    r = _script("train_codec.py", "--recipe", tmp_path / "bad.toml", "--out", tmp_path / "run")
    assert r.returncode == 1 and message in r.stderr.strip().splitlines()[-1] and "Traceback" not in r.stderr


def test_a_stage_starts_from_another_recipes_stage(tmp_path):
    """best grows fast's network as fast's stage sign-f left it ("recipe:fast:sign-f"), not fast's later stages;
    a stage the other recipe lacks is one error line."""
    r = _script("train_codec.py", "--recipe", "recipes/best.toml", "--out", tmp_path / "b", "--dry-run")
    assert r.returncode == 0, r.stderr
    fast_stages = [s.name for s in recipes.load("fast").stages]
    ran = [s for s in fast_stages if f"{tmp_path / 'b' / 'fast' / s} " in r.stderr]
    assert ran == fast_stages[:fast_stages.index("sign-f") + 1] and ran != fast_stages
    assert f"--init {tmp_path / 'b' / 'fast' / 'sign-f.pt'}" in r.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\ntask = "codec"\ndata = ["."]\n[[stage]]\nname = "x"\ninit = "recipe:fast:nope"\n'
                   'options = { steps = 1 }\n')
    r = _script("train_codec.py", "--recipe", bad, "--out", tmp_path / "x", "--dry-run")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == "error: recipe fast has no stage 'nope' (its stages: " + ", ".join(fast_stages) + ")"
