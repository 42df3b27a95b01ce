"""scripts/register_weights.py on a copy of the package and its weights: an entry is replaced only with --force,
and a shipped model's weights are replaced under their name only once the old fingerprint is retired (so that its
files still get a message that says what decodes them)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_register_refuses_to_overwrite_or_to_orphan_files_of_the_old_weights(tmp_path):
    shutil.copytree(ROOT / "lstmcodec", tmp_path / "lstmcodec", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "register_weights.py", tmp_path / "scripts")
    (tmp_path / "weights").mkdir()
    for f in ("index.json", "retired.json", "fast.pt"):
        shutil.copy(ROOT / "weights" / f, tmp_path / "weights")
    index_path, retired_path = tmp_path / "weights" / "index.json", tmp_path / "weights" / "retired.json"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}

    def register(*args):
        return subprocess.run([sys.executable, str(tmp_path / "scripts" / "register_weights.py"),
                               str(tmp_path / "weights" / "fast.pt"), *args], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=300)

    r = register()
    assert r.returncode == 1 and "already has a codec model 'fast' (pass --force" in r.stderr
    index = json.loads(index_path.read_text())
    index["codec"]["fast"]["fingerprint"] = "0123456789abcdef"   # as if other weights shipped as fast now
    index_path.write_text(json.dumps(index))
    r = register("--force")
    assert r.returncode == 1 and "(0123456789abcdef) are not in weights/retired.json" in r.stderr
    retired = json.loads(retired_path.read_text())
    retired["codec"].setdefault("fast", {"fingerprints": [], "last_version": "0.0.1"})["fingerprints"].append("0123456789abcdef")
    retired_path.write_text(json.dumps(retired))
    r = register("--force", "--bf16-cost", "0.7")
    assert r.returncode == 0, r.stderr
    entry = json.loads(index_path.read_text())["codec"]["fast"]
    assert entry["fingerprint"] == json.loads((ROOT / "weights" / "index.json").read_text())["codec"]["fast"]["fingerprint"]
    assert entry["bf16_cost"] == 0.7
