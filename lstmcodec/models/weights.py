"""The weights file format: reading with validation, writing (fp16), and the fingerprint.

A weights file is a plain dict saved with torch.save and loaded with weights_only=True:
    {"format": "lstmcodec-weights/1", "name": str, "config": dict, "state_dict": {str: tensor}, "meta": dict}
and, for codecs with learned entropy coding, "entropy_prior" (the context table: int16, or uint8 indexing the
256 int16 "entropy_prior_levels") and "entropy_mixer" (a dict of int16 tensors), and for codecs whose late
iterations are linear stages, "tail" (a dict of tensors, nets/tail.py); for denoisers and
classifiers, "task" ("denoise" | "classify") and "arch" (see nets/). Everything is checked before anything is
built: the envelope's types, the configuration's fields and ranges, a budget on the network's size (computed on
the meta device, which allocates nothing), and the tensors' names, shapes and types against that network.
A codec's identity is its `fingerprint`: the first 8 bytes of a SHA-256 over the tensors (names, shapes, dtypes,
bytes), which the .lstm header records so that a file made with other weights is refused.
"""
from __future__ import annotations

import hashlib
import math
import io
import os
import threading
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from lstmcodec.format import tables
from lstmcodec.format.mixer import Mixer
from lstmcodec.io.files import atomic_save
from lstmcodec.nets.tail import LinearTail

FORMAT = "lstmcodec-weights/1"
MAX_FILE_BYTES = 256 << 20       # a weights file larger than this is refused before it is read
MAX_PARAMETERS = 64_000_000      # the most parameters a weights file's network may declare
TASKS = ("codec", "denoise", "classify")


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


def codec_fingerprint(blob: dict, tail: bool = True) -> bytes:
    """The tensors, the entropy table and mixer, hidden-state priming and the linear tail all decide what a file's
    bits mean, so all are in the fingerprint (each only when present). tail=False: the fingerprint of the same
    weights without their linear tail, which files written before the tail was fitted record."""
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
    if tail and isinstance(blob.get("tail"), dict):
        extra.update({f"linear_tail.{k}": v for k, v in blob["tail"].items()})
    return fingerprint({**blob["state_dict"], **extra})


def half_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A model's state dict as stored: floating tensors in fp16, plain layout, on the CPU."""
    return {k: _plain(v).half() if v.is_floating_point() else _plain(v) for k, v in model.state_dict().items()}


def save(blob: dict, path: str | os.PathLike) -> None:
    atomic_save(blob, path)


def codec_blob(model: torch.nn.Module, name: str, config: dict, meta: dict | None = None,
               entropy_prior: np.ndarray | None = None, entropy_mixer: Mixer | None = None, table_bytes: int = 1,
               tail: LinearTail | None = None) -> dict:
    """The weights dict of a codec: fp16 tensors, the entropy table (one byte per entry, or int16), mixer and linear
    tail if given."""
    blob = {"format": FORMAT, "name": name, "config": config, "state_dict": half_state(model), "meta": meta or {}}
    if entropy_prior is not None and table_bytes == 1:
        levels = tables.prior_levels()
        blob["entropy_prior"] = torch.from_numpy(tables.pack_prior(np.asarray(entropy_prior), levels))
        blob["entropy_prior_levels"] = torch.from_numpy(levels)
    elif entropy_prior is not None:
        blob["entropy_prior"] = torch.from_numpy(np.ascontiguousarray(entropy_prior, dtype=np.int16))
    if entropy_mixer is not None:
        blob["entropy_mixer"] = {k: torch.from_numpy(v) for k, v in entropy_mixer.arrays().items()}
    if tail is not None:
        blob["tail"] = tail.arrays()
    return blob


def net_blob(model: torch.nn.Module, name: str, task: str, arch: str, config: dict, meta: dict | None = None) -> dict:
    """The weights dict of a denoiser (task "denoise") or classifier ("classify"), fp16."""
    return {"format": FORMAT, "task": task, "name": name, "arch": arch, "config": config,
            "state_dict": half_state(model), "meta": meta or {}}


_QUIET = threading.Lock()


def read(path: str | os.PathLike, task: str, expected_sha: str | None = None) -> dict:
    """The validated envelope of a weights file of `task`. Raises ValueError with a one-line message."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ValueError(f"{path}: {size} bytes, larger than any weights file ({MAX_FILE_BYTES >> 20} MiB)")
        raw = path.read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read weights file {path}: {e.strerror or e}") from None
    if expected_sha and hashlib.sha256(raw).hexdigest() != expected_sha:
        raise ValueError(f"weights file {path} does not match its recorded SHA-256 (tampered or damaged)")
    try:
        with _QUIET, warnings.catch_warnings():  # torch warns about files it then refuses; the error line says it
            warnings.simplefilter("ignore")          # all (one thread at a time: the filters are process-wide)
            blob = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for foreign files
        raise ValueError(f"{path} is not a loadable weights file ({type(e).__name__})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"{path} is not an lstmcodec weights file")
    if blob.get("task", "codec") != task:
        raise ValueError(f"{path} holds a {blob.get('task')} model, not a {task} model"
                         if blob.get("task") in TASKS else f"{path} is not an lstmcodec weights file")
    name = blob.get("name")
    if not isinstance(name, str) or not name or len(name.encode()) > 255 or not name.isprintable():
        raise ValueError(f"{path}: the model name must be printable text of 1 to 255 bytes")
    if not isinstance(blob.get("config"), dict) or not isinstance(blob.get("meta", {}), dict):
        raise ValueError(f"{path}: its configuration and meta data must be dicts")
    sd = blob.get("state_dict")
    if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()):
        raise ValueError(f"{path}: its state_dict must map names to tensors")
    if task != "codec" and not isinstance(blob.get("arch"), str):
        raise ValueError(f"{path}: a {task} model needs an architecture name")
    return blob


def check_net_config(path: Path, task: str, config) -> None:
    """What a denoiser's or classifier's configuration tells the code that runs it (channels, input size, classes,
    normalisation), checked before anything is built or run; ValueError with a one-line reason. (The codec's is
    CodecConfig's own check.)"""
    def whole(v, lo: int, hi: int) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi

    def bad(what: str) -> ValueError:
        return ValueError(f"{path}: bad model configuration ({what})")

    if not isinstance(config, dict):
        raise bad("not a mapping")
    channels = config.get("in_channels", 3)
    if channels not in (1, 3) or not whole(channels, 1, 3):
        raise bad(f"in_channels must be 1 or 3, not {channels!r}")
    size = config.get("size")
    if task == "classify" or size is not None:
        if not whole(size, 8, 512 if task == "classify" else 4096):
            raise bad(f"size must be a whole number of pixels in 8..{512 if task == 'classify' else 4096}, not {size!r}")
    if task == "classify":
        classes = config.get("classes")
        if not isinstance(classes, list) or not 1 <= len(classes) <= 10000 or \
                not all(isinstance(c, str) and c.isprintable() and len(c) <= 100 for c in classes):
            raise bad("classes must be a list of 1 to 10,000 printable names")
    for key in ("mean", "std"):
        if key in config:
            v = config[key]
            if not isinstance(v, list) or len(v) != channels or not all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and (key == "mean" or x > 0)
                    for x in v):
                raise bad(f"{key} must be {channels} finite number{'s' * (channels > 1)}" + (" above 0" if key == "std" else ""))


def build(path: Path, blob: dict, builder: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """The network of a weights file: `builder` runs first on the meta device (nothing allocated), so that a
    configuration beyond MAX_PARAMETERS or tensors that do not fit it are refused before anything real is built."""
    try:
        with torch.device("meta"):
            shape = builder()
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError, RuntimeError) as e:
        raise ValueError(f"{path}: bad model configuration ({e})") from None
    expected = shape.state_dict()
    count = sum(t.numel() for t in expected.values())
    if count > MAX_PARAMETERS:
        raise ValueError(f"{path}: its configuration declares {count:,} parameters, over the limit of {MAX_PARAMETERS:,}")
    sd = blob["state_dict"]
    for key, t in expected.items():
        v = sd.get(key)
        if v is None or v.shape != t.shape or v.is_floating_point() != t.is_floating_point():
            raise ValueError(f"{path}: its tensors do not fit its own configuration ({key})")
    if set(sd) - set(expected):
        raise ValueError(f"{path}: its tensors do not fit its own configuration ({sorted(set(sd) - set(expected))[0]})")
    model = builder()
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()})
    return model


def entropy_model(path: Path, blob: dict, channels: int) -> tuple[np.ndarray | None, Mixer | None]:
    """The learned table (int16) and mixer of a codec weights file, checked; (None, None) for a file without them."""
    prior = blob.get("entropy_prior")
    if prior is not None:
        try:
            if not isinstance(prior, torch.Tensor) or prior.dim() != 4:
                raise ValueError("not a 4-d tensor")
            prior = prior.numpy()
            if prior.dtype == np.uint8:  # the one-byte form: entries index the stored levels
                levels = blob.get("entropy_prior_levels")
                if not isinstance(levels, torch.Tensor):
                    raise ValueError("one-byte entries without their levels")
                prior = tables.unpack_prior(prior, levels.numpy())
            tables.check_prior(prior, channels)
        except ValueError as e:
            raise ValueError(f"{path}: bad entropy table ({e})") from None
    mixer = blob.get("entropy_mixer")
    if mixer is not None:
        try:
            if prior is None or not isinstance(mixer, dict) or not all(isinstance(v, torch.Tensor) for v in mixer.values()):
                raise ValueError("it needs a table and tensors")
            mixer = Mixer.from_arrays({k: v.numpy() for k, v in mixer.items()}, channels)
        except ValueError as e:
            raise ValueError(f"{path}: bad entropy mixer ({e})") from None
    return prior, mixer


def tail_model(path: Path, blob: dict, channels: int) -> LinearTail | None:
    """The linear tail of a codec weights file, checked; None for a file without one."""
    arrays = blob.get("tail")
    if arrays is None:
        return None
    try:
        return LinearTail.from_arrays(arrays, channels)
    except ValueError as e:
        raise ValueError(f"{path}: bad linear tail ({e})") from None
