"""lstmcodec: a learned image codec after Toderici et al. 2017 (recurrent ConvLSTM networks).

    >>> import lstmcodec
    >>> data = lstmcodec.encode("photo.png", iterations=8)   # bytes of a .lstm file
    >>> image = lstmcodec.decode(data)                       # PIL.Image.Image
    >>> coarse = lstmcodec.decode(data, iterations=2)        # any prefix of iterations
    >>> clean = lstmcodec.denoise("noisy.png")                # PIL.Image.Image
    >>> lstmcodec.classify("digit.png", model="mnist")[0]    # Prediction(label, index, probability)
"""
from .classifier import classify
from .codec import decode, encode, get_model as load_model, info
from .denoiser import denoise
from .errors import CodecError
from .pillow_plugin import register as _register_pillow_plugin

__version__ = "0.1.0"
__all__ = ["encode", "decode", "info", "load_model", "denoise", "classify", "CodecError", "__version__"]

_register_pillow_plugin()
