"""The networks: the recurrent codec (its configuration, the reference recurrence and the fast decoder, the cells,
the linear tail), the denoisers and the classifiers. Modules here import only torch (and geometry)."""
from __future__ import annotations


def build(task: str, arch: str, config: dict):
    """The denoiser ("denoise") or classifier ("classify") network of architecture `arch` a weights file or checkpoint
    describes; ValueError for an unknown one (the codec's network is built from its CodecConfig)."""
    from lstmcodec.nets import classify, denoise

    builders = {"denoise": denoise.build, "classify": classify.build}
    if task not in builders:
        raise ValueError(f"no network for the task {task!r} (one of {', '.join(builders)})")
    return builders[task](arch, config)
