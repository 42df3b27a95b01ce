"""The model zoo: the bundled models by name (weights/index.json), the retired ones (weights/retired.json), and
loading either by name or by path, once per process.

No torch at import: `lstmcodec --help` and `lstmcodec info` read names from here without loading a network.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lstmcodec.errors import CodecError

if TYPE_CHECKING:
    import torch

    from lstmcodec.coding.codec import Codec
    from lstmcodec.format.container import Header

DEFAULT_CODEC = "fast"       # the best codec that meets the speed targets (weights/README.md)
DEFAULT_DENOISER = "photo"
DEFAULT_CLASSIFIER = "cifar10"
DEFAULTS = {"codec": DEFAULT_CODEC, "denoise": DEFAULT_DENOISER, "classify": DEFAULT_CLASSIFIER}


def weights_dir() -> Path:
    """weights/ beside the package in a source checkout, or lstmcodec/weights/ in an installed wheel."""
    package = Path(__file__).resolve().parents[1]   # lstmcodec/
    for candidate in (package.parent / "weights", package / "weights"):
        if (candidate / "index.json").is_file():
            return candidate
    raise CodecError("the bundled weights folder is missing (weights/index.json)")


@functools.lru_cache(maxsize=1)
def registry() -> dict:
    """weights/index.json: {task: {name: {"file", "sha256", "config", ...}}}."""
    with open(weights_dir() / "index.json") as f:
        return json.load(f)


@functools.lru_cache(maxsize=1)
def retired() -> dict:
    """weights/retired.json: {task: {name: {"fingerprints": [hex, ...], "last_version": "X.Y.Z"}}}, the models that
    earlier versions shipped and this one does not."""
    path = weights_dir() / "retired.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def names(task: str) -> list[str]:
    return sorted(registry().get(task, {}))


def resolve(task: str, name_or_path: str) -> tuple[Path, str | None]:
    """The weights file of a bundled name ("default" is the task's default) with its recorded SHA-256, or a path
    (SHA-256 None). Raises CodecError for a name that is neither."""
    name = canonical(task, name_or_path)
    path = Path(name)
    entry = registry().get(task, {}).get(name)
    if (path.suffix or entry is None) and path.is_file():   # a bundled name wins over a file of that name
        return path, None
    if entry is None:
        if name in retired().get(task, {}):
            raise CodecError(f"the model '{name}' is retired: lstmcodec {retired()[task][name]['last_version']} "
                             "was the last version that shipped it (give its weights file as a path)")
        raise CodecError(f"unknown model '{name}' (bundled: {', '.join(names(task))}; or give a path to a .pt file)")
    return weights_dir() / entry["file"], entry.get("sha256")


def canonical(task: str, name_or_path: str) -> str:
    """The bundled name that "default" stands for, or the name or path itself."""
    return DEFAULTS[task] if name_or_path == "default" else str(name_or_path)


PRECISIONS = ("auto", "fp32", "bf16")
BF16_LIMIT = 0.5   # %: the most Kodak BD-rate a bundled model's bf16 inference may cost for auto to choose it
_precision = {"default": None}   # set by the command line's --precision; else LSTMCODEC_PRECISION; else auto


def set_default_precision(precision: str | None) -> None:
    """The precision load_codec uses when none is given (None: LSTMCODEC_PRECISION, else "auto")."""
    if precision is not None and precision not in PRECISIONS:
        raise CodecError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    _precision["default"] = precision


@functools.lru_cache(maxsize=1)
def native_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AMX or AVX512-BF16; read from /proc/cpuinfo, so Linux only)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"amx_bf16", "avx512_bf16"})
    except OSError:
        pass
    return False


def resolve_precision(precision: str | None, device: "torch.device", model: str = "default") -> str:
    """fp32 or bf16. "auto" is bf16 for a bundled codec whose measured cost of bf16 (its index entry's bf16_cost,
    the Kodak BD-rate against fp32) is at most BF16_LIMIT, on a CPU with native bf16; fp32 elsewhere: for other
    models (unmeasured), on other CPUs (which emulate bf16 slowly), on CUDA (not measured there)."""
    import os

    p = precision or _precision["default"] or os.environ.get("LSTMCODEC_PRECISION") or "auto"
    if p not in PRECISIONS:
        raise CodecError(f"precision must be one of {', '.join(PRECISIONS)}, not {p!r} (LSTMCODEC_PRECISION)")
    if p == "auto":
        cost = registry().get("codec", {}).get(canonical("codec", model), {}).get("bf16_cost")
        fits = cost is not None and cost <= BF16_LIMIT
        return "bf16" if fits and device.type == "cpu" and native_bf16() else "fp32"
    return p


def load_codec(name_or_path: str = "default", device: str = "cpu", precision: str | None = None) -> "Codec":
    """A codec by bundled name (or "default") or weights path, ready for inference on `device` in `precision`
    ("auto", "fp32" or "bf16"; see resolve_precision); loaded once."""
    dev = select(device)
    name = canonical("codec", name_or_path)
    return _load_codec(name, str(dev), resolve_precision(precision, dev, name))


@functools.lru_cache(maxsize=4)
def _load_codec(name_or_path: str, device: str, precision: str) -> "Codec":
    from lstmcodec.models import weights
    from lstmcodec.coding.codec import Codec

    path, sha = resolve("codec", name_or_path)
    dev = select(device)
    try:
        return Codec.from_weights(path, weights.read(path, "codec", sha)).for_inference(dev, precision)
    except ValueError as e:
        raise CodecError(str(e)) from None


def clear_cache() -> None:
    """Forget the models loaded so far (a weights file given by path may have changed on disk)."""
    _load_codec.cache_clear()
    _load_net.cache_clear()


def codec_for(header: "Header", model: str | None = None, device: str = "cpu") -> "Codec":
    """The codec that decodes a file: `model` (a name or path) if given, else the bundled model its header names.
    A file of a retired or unknown model is refused with one line that says what decodes it."""
    if model is None:
        reason = not_bundled(header.model, header.fingerprint.hex())   # from the index: nothing loaded to refuse
        if reason:
            raise CodecError(reason)
        codec = load_codec(header.model, device)
        if header.fingerprint not in (codec.fingerprint, codec.network_fingerprint):   # an entry without fingerprints
            raise CodecError(f"the file was made with model '{header.model}' ({header.fingerprint.hex()}), not with "
                             f"the bundled weights of that name ({codec.fingerprint.hex()}); pass its weights file "
                             "with --model PATH")
        return codec
    from lstmcodec.coding.framing import check_file

    codec = load_codec(model, device)
    check_file(codec, header)
    return codec


def not_bundled(model: str, fingerprint: str) -> str | None:
    """None where this version's bundled codec `model` has that fingerprint (hex; it decodes the file), else the
    reason in one line and what decodes it: a retired model's last release, or its weights file. Reads only the
    two JSON files (no torch: `lstmcodec info` says it too)."""
    from lstmcodec import __version__

    bundled = registry().get("codec", {}).get(model)
    if bundled is not None and (bundled.get("fingerprint") in (None, fingerprint)
                                or bundled.get("network_fingerprint") == fingerprint):   # a file without the tail
        return None
    made = f"the file was made with model '{model}' ({fingerprint})"
    for entry in retired().get("codec", {}).values():
        if fingerprint in entry["fingerprints"]:
            return (f"{made}, which lstmcodec {__version__} no longer ships: lstmcodec {entry['last_version']} "
                    f"decodes it (pip install lstmcodec=={entry['last_version']}), or pass that model's weights "
                    "file with --model PATH")
    if bundled is not None:
        return (f"{made}, not with the bundled weights of that name ({bundled['fingerprint']}); pass its weights "
                "file with --model PATH")
    return f"{made}, which is not bundled; pass its weights file with --model PATH"


def select(device: str) -> "torch.device":
    from lstmcodec.devices import select_device

    if not isinstance(device, str):
        raise CodecError(f"device must be a name such as cpu, cuda or cuda:0, not {device!r}")
    try:
        return select_device(device)
    except (ValueError, RuntimeError) as e:   # torch.device("bogus") is a RuntimeError
        raise CodecError(f"device {device!r}: {' '.join(str(e).split())[:160]}") from None


@dataclass
class LoadedNet:
    """A denoiser or classifier: its name, network (eval mode), architecture, configuration and provenance."""

    name: str
    task: str
    arch: str
    model: "torch.nn.Module"
    config: dict
    meta: dict


def load_net(task: str, name_or_path: str = "default", device: str = "cpu") -> LoadedNet:
    """A bundled denoiser / classifier by name (or "default"), or a weights file by path; loaded once."""
    return _load_net(task, canonical(task, name_or_path), str(select(device)))


@functools.lru_cache(maxsize=4)
def _load_net(task: str, name_or_path: str, device: str) -> LoadedNet:
    from lstmcodec import nets
    from lstmcodec.models import weights

    path, sha = resolve(task, name_or_path)
    dev = select(device)
    try:
        blob = weights.read(path, task, sha)
        weights.check_net_config(path, task, blob.get("config"))
        model = weights.build(path, blob, lambda: nets.build(task, blob["arch"], blob["config"]))
    except ValueError as e:
        raise CodecError(str(e)) from None
    model.eval().requires_grad_(False).to(dev)
    return LoadedNet(blob["name"], task, blob["arch"], model, blob["config"], blob.get("meta", {}))
