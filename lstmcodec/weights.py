"""Bundled weights: names -> files in weights/, each carrying its model configuration.

A weights file is a plain dict saved with torch.save and loaded with weights_only=True:
    {"format": "lstmcodec-weights/1", "name": str, "config": dict, "state_dict": {str: tensor}, "meta": dict}
and, for codecs with learned entropy coding, "entropy_prior" (the context table: int16, or uint8 indexing the
256 int16 "entropy_prior_levels") and "entropy_mixer" (a dict of int16 tensors); for denoisers and
classifiers, "task" ("denoise" | "classify") and "arch" (see nets/). The registry
weights/index.json has one section per task: {"codec": {name: entry}, "denoise": {...}, "classify": {...}}.
Its identity is `fingerprint`: the first 8 bytes of a SHA-256 over the tensors (names, shapes, dtypes,
bytes), which the .lstm header records so that a file made with other weights is refused.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import entropy
from .nets.recurrent import CodecConfig, RecurrentCodec

FORMAT = "lstmcodec-weights/1"
DEFAULT_CODEC = "lstm-w25-sign3"
DEFAULT_DENOISER = "photo"


def weights_dir() -> Path:
    """weights/ beside the package in a source checkout, or lstmcodec/weights/ in an installed wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "weights", here / "weights"):
        if (candidate / "index.json").is_file():
            return candidate
    raise FileNotFoundError("the bundled weights folder is missing (weights/index.json)")


def registry() -> dict:
    with open(weights_dir() / "index.json") as f:
        return json.load(f)


def _plain(t: torch.Tensor) -> torch.Tensor:
    """A CPU copy in the standard (row-major) layout, whatever the model's layout (it runs channels-last)."""
    return t.detach().cpu().clone(memory_format=torch.contiguous_format)


def fingerprint(state_dict: dict[str, torch.Tensor]) -> bytes:
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = _plain(state_dict[name])
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.digest()[:8]


@dataclass
class LoadedCodec:
    name: str
    model: RecurrentCodec
    fingerprint: bytes
    meta: dict
    entropy_prior: np.ndarray | None = None   # the learned context table (entropy.learn_prior), if the file has one
    entropy_mixer: entropy.Mixer | None = None  # the learned mixer of entropy coding method 3, if the file has one
    base_fingerprint: bytes | None = None       # with a mixer: the fingerprint of the same weights without it

    def without_mixer(self) -> LoadedCodec:
        """These weights as they were before their mixer was added, to decode the files coded then (methods 0-2)."""
        return dataclasses.replace(self, fingerprint=self.base_fingerprint, entropy_mixer=None, base_fingerprint=None)

    def plane_coder(self) -> entropy.PlaneCoder:
        """A fresh entropy coder for the bit planes of one image coded with these weights."""
        return entropy.PlaneCoder(self.entropy_prior, self.model.config.bits, self.entropy_mixer)


def export_codec(model: RecurrentCodec, path: str | os.PathLike, name: str, meta: dict | None = None,
                 entropy_prior: np.ndarray | None = None, entropy_mixer: entropy.Mixer | None = None,
                 table_bytes: int = 2) -> bytes:
    """Write a weights file (fp16 tensors, and the learned entropy table and mixer if given) atomically; returns its fingerprint.
    table_bytes: 2 stores the table as int16; 1 stores a byte per entry and its 256 levels
    (entropy.pack_prior)."""
    from .runtime import atomic_save

    sd = {k: _plain(v).half() if v.is_floating_point() else _plain(v) for k, v in model.state_dict().items()}
    blob = {"format": FORMAT, "name": name, "config": model.config.to_dict(), "state_dict": sd, "meta": meta or {}}
    if entropy_prior is not None and table_bytes == 1:
        levels = entropy.prior_levels()
        blob["entropy_prior"] = torch.from_numpy(entropy.pack_prior(np.asarray(entropy_prior), levels))
        blob["entropy_prior_levels"] = torch.from_numpy(levels)
    elif entropy_prior is not None:
        blob["entropy_prior"] = torch.from_numpy(np.ascontiguousarray(entropy_prior, dtype=np.int16))
    if entropy_mixer is not None:
        blob["entropy_mixer"] = {k: torch.from_numpy(v) for k, v in entropy_mixer.arrays().items()}
    atomic_save(blob, path)
    return _codec_fingerprint(blob)


def _codec_fingerprint(blob: dict) -> bytes:
    """The tensors, the entropy table and mixer and hidden-state priming all decide what a file's bits mean, so all
    are in the fingerprint (each only when present, which keeps the fingerprints of older weights as they were)."""
    extra = {}
    for key in ("entropy_prior", "entropy_prior_levels"):
        if blob.get(key) is not None:
            extra[key] = blob[key]
    mixer = blob.get("entropy_mixer")
    if isinstance(mixer, dict):
        extra.update({f"entropy_mixer.{k}": v for k, v in mixer.items()})
    priming = blob.get("config", {}).get("priming", 0)
    if priming:
        extra["priming"] = torch.tensor([int(priming)])
    return fingerprint({**blob["state_dict"], **extra})


def _read_weights(kind: str, name_or_path: str) -> tuple[Path, dict]:
    """The weights dict of a bundled name (SHA-256 checked) or of a file path. Raises ValueError with a clear message."""
    path = Path(name_or_path)
    expected_sha = None
    if not path.suffix or not path.exists():
        reg = registry().get(kind, {})
        if name_or_path not in reg:
            raise ValueError(f"unknown model '{name_or_path}' (bundled: {', '.join(sorted(reg))}; or give a path to a .pt file)")
        path = weights_dir() / reg[name_or_path]["file"]
        expected_sha = reg[name_or_path].get("sha256")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read weights file {path}: {e.strerror or e}") from None
    if expected_sha and hashlib.sha256(raw).hexdigest() != expected_sha:
        raise ValueError(f"weights file {path} does not match its recorded SHA-256 (tampered or damaged)")
    try:
        blob = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for foreign files
        raise ValueError(f"{path} is not a loadable weights file ({type(e).__name__})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT or not isinstance(blob.get("state_dict"), dict):
        raise ValueError(f"{path} is not an lstmcodec weights file")
    if blob.get("task", "codec") != kind:
        raise ValueError(f"{path} holds a {blob.get('task')} model, not a {kind} model")
    return path, blob


def _load_state(model: torch.nn.Module, path: Path, sd: dict) -> None:
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()})
    except RuntimeError:
        raise ValueError(f"{path}: its tensors do not fit its own configuration") from None


def load_codec(name_or_path: str = DEFAULT_CODEC, device: str | torch.device = "cpu") -> LoadedCodec:
    """Load bundled codec weights by name, or any codec weights file by path."""
    path, blob = _read_weights("codec", name_or_path)
    try:
        model = RecurrentCodec(CodecConfig.from_dict(blob["config"]))
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"{path}: bad model configuration ({e})") from None
    _load_state(model, path, blob["state_dict"])
    prior = blob.get("entropy_prior")
    if prior is not None:
        prior = prior.numpy() if isinstance(prior, torch.Tensor) else None
        try:
            if prior is None:
                raise ValueError("not a tensor")
            if prior.dtype == np.uint8:  # the one-byte form: entries index the stored levels
                levels = blob.get("entropy_prior_levels")
                if not isinstance(levels, torch.Tensor):
                    raise ValueError("one-byte entries without their levels")
                prior = entropy.unpack_prior(prior, levels.numpy())
            entropy.check_prior(prior, model.config.bits)
        except ValueError as e:
            raise ValueError(f"{path}: bad entropy table ({e})") from None
    mixer = blob.get("entropy_mixer")
    if mixer is not None:
        try:
            if prior is None or not isinstance(mixer, dict) or not all(isinstance(v, torch.Tensor) for v in mixer.values()):
                raise ValueError("it needs a table and tensors")
            mixer = entropy.Mixer.from_arrays({k: v.numpy() for k, v in mixer.items()}, model.config.bits)
        except ValueError as e:
            raise ValueError(f"{path}: bad entropy mixer ({e})") from None
    # Channels-last (NHWC): the layout oneDNN's and cuDNN's convolutions are fastest in, and the one in
    # which the cells add their 1x1 hidden-state products in place (1.5x faster encode and decode on CPU).
    model.eval().requires_grad_(False).to(device, memory_format=torch.channels_last)
    base = _codec_fingerprint({k: v for k, v in blob.items() if k != "entropy_mixer"}) if mixer is not None else None
    return LoadedCodec(blob["name"], model, _codec_fingerprint(blob), blob.get("meta", {}), prior, mixer, base)


@dataclass
class LoadedNet:
    """A denoiser or classifier: its name, network (eval mode), architecture, configuration and provenance."""

    name: str
    task: str
    arch: str
    model: torch.nn.Module
    config: dict
    meta: dict


def export_net(model: torch.nn.Module, path: str | os.PathLike, name: str, task: str, arch: str,
               config: dict, meta: dict | None = None) -> None:
    """Write a denoiser (task "denoise") or classifier ("classify") weights file, fp16, atomically."""
    from .runtime import atomic_save

    sd = {k: _plain(v).half() if v.is_floating_point() else _plain(v) for k, v in model.state_dict().items()}
    atomic_save({"format": FORMAT, "task": task, "name": name, "arch": arch, "config": config,
                 "state_dict": sd, "meta": meta or {}}, path)


def export_checkpoint(ckpt_path: str | os.PathLike, path: str | os.PathLike, name: str, task: str) -> None:
    """Export a training checkpoint of a denoiser / classifier run (its EMA weights when it has them)."""
    from .nets import classify, denoise
    from .runtime import load_checkpoint

    ck = load_checkpoint(ckpt_path)
    arch, config = ck["meta"].get("arch") or ck["fit"]["extra"]["arch"], ck["meta"]["config"]
    model = {"denoise": denoise.build, "classify": classify.build}[task](arch, config)
    model.load_state_dict(ck["ema"] if ck.get("ema") is not None else ck["model"])
    train = {k: v for k, v in ck["fit"]["extra"].items() if k not in ("export", "export_only")}
    export_net(model, path, name, task, arch, config, {"steps": ck["step"], "elapsed_s": ck["elapsed"], "train": train})


def load_net(task: str, name_or_path: str, device: str | torch.device = "cpu") -> LoadedNet:
    """Load a bundled denoiser / classifier by name, or a weights file by path."""
    from .nets import classify, denoise

    path, blob = _read_weights(task, name_or_path)
    builder = {"denoise": denoise.build, "classify": classify.build}[task]
    try:
        model = builder(blob["arch"], blob["config"])
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"{path}: bad model configuration ({e})") from None
    _load_state(model, path, blob["state_dict"])
    model.eval().requires_grad_(False).to(device)
    return LoadedNet(blob["name"], task, blob["arch"], model, blob["config"], blob.get("meta", {}))
