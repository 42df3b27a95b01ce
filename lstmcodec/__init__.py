"""lstmcodec: a learned image codec after Toderici et al. 2017 (recurrent ConvLSTM networks).

    >>> import lstmcodec
    >>> codec = lstmcodec.load_model("default")              # a Codec: compress / decompress, and forward for training
    >>> data = codec.compress("photo.png", iterations=8)     # bytes of a .lstm file
    >>> image = codec.decompress(data, iterations=2)         # PIL.Image.Image, from any prefix of iterations
    >>> data = lstmcodec.encode("photo.png", iterations=8)   # the same in one call
    >>> image = lstmcodec.decode(data)                       # the model named in the file's header
    >>> clean = lstmcodec.denoise("noisy.png")               # PIL.Image.Image
    >>> lstmcodec.classify("digit.png", model="mnist")[0]    # Prediction(label, index, probability)
    >>> lstmcodec.compare("photo.png", "photo.html")         # a page: lstmcodec beside WebP, JPEG, AVIF at equal bytes

The names are loaded on first use, so that `import lstmcodec` (and the command line's --help, --version and
info) do not import torch.
"""
from __future__ import annotations

import importlib

from lstmcodec.errors import CodecError
from lstmcodec.pillow_plugin import register as _register_pillow_plugin

__version__ = "0.5.0"
__all__ = ["load_model", "Codec", "encode", "decode", "decode_progressive", "info", "denoise", "classify", "compare",
           "CodecError", "__version__"]

_LAZY = {"load_model": ("models.zoo", "load_codec"), "Codec": ("coding.codec", "Codec"), "encode": ("api", "encode"),
         "decode": ("api", "decode"), "decode_progressive": ("api", "decode_progressive"), "info": ("format.fileinfo", "info"),
         "denoise": ("tasks.denoiser", "denoise"), "classify": ("tasks.classifier", "classify"),
         "compare": ("evaluation.comparison", "compare")}


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lstmcodec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


_register_pillow_plugin()
