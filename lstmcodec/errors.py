"""The one exception type of the public API."""


class CodecError(ValueError):
    """Bad input, a corrupt or foreign .lstm file, or a model mismatch. The message is one clear line."""
