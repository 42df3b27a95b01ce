"""The shape of the code, held where it can regrow unnoticed: no module of the package or the scripts over
MAX_MODULE lines, no function over MAX_FUNCTION lines (argument parsers aside: a list of options is long, not
complicated), and every subpackage saying its job in its docstring."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE = 400
MAX_FUNCTION = 80
SOURCES = sorted([*(ROOT / "lstmcodec").rglob("*.py"), *(ROOT / "scripts").glob("*.py")])


def _parser(name: str) -> bool:
    return name == "build_parser" or (name.startswith("add_") and name.endswith("_arguments"))


def test_the_sources_are_found():
    assert len(SOURCES) > 40 and ROOT / "lstmcodec" / "coding" / "codec.py" in SOURCES


def oversized(text: str) -> list[str]:
    """What breaks the limits in a module's text: the module's length, each function over MAX_FUNCTION lines."""
    found = [f"the module: {len(text.splitlines())} lines"] if len(text.splitlines()) > MAX_MODULE else []
    return found + [f"{node.name}: {node.end_lineno - node.lineno + 1} lines" for node in ast.walk(ast.parse(text))
                    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not _parser(node.name)
                    and node.end_lineno - node.lineno + 1 > MAX_FUNCTION]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_and_functions_stay_small(path):
    found = oversized(path.read_text(encoding="utf-8"))
    assert not found, f"{path.name} over the limits ({MAX_MODULE} lines a module, {MAX_FUNCTION} a function): {found}"


def test_every_subpackage_says_its_job():
    packages = [p for p in (ROOT / "lstmcodec").iterdir() if (p / "__init__.py").is_file()]
    assert len(packages) >= 8
    for package in packages:
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text(encoding="utf-8")))
        assert doc and len(doc) > 30, f"{package.name}/__init__.py has no docstring saying what the package does"


def test_the_check_finds_a_long_function_and_a_long_module_but_not_a_long_parser():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION))
    assert oversized(f"def long():\n{body}\n") == [f"long: {MAX_FUNCTION + 1} lines"]
    assert oversized(f"def build_parser():\n{body}\n") == []
    assert oversized(f"def short():\n{body[:40]}\n" + "\n" * MAX_MODULE)[0].startswith("the module")
