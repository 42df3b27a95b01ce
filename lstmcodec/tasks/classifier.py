"""Classifying images with a bundled or given classifier: resized as the model expects, top-K labels."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from lstmcodec.io.imageio import open_image, prepare
from lstmcodec.nets.classify import logits, normalize
from lstmcodec.models.zoo import DEFAULT_CLASSIFIER, LoadedNet, load_net


@dataclass
class Prediction:
    label: str
    index: int
    probability: float


def get_classifier(name_or_path: str = DEFAULT_CLASSIFIER, device: str = "cpu") -> LoadedNet:
    """A bundled classifier by name, or a weights file by path (loaded once per process)."""
    return load_net("classify", name_or_path, device)


def model_input(source, net: LoadedNet) -> torch.Tensor:
    """An image as the 1 x C x S x S tensor of 0-255 values the model was trained on (alpha dropped)."""
    src = prepare(open_image(source))
    size, channels = net.config["size"], net.config["in_channels"]
    im = Image.fromarray(src.rgb).convert("L" if channels == 1 else "RGB")
    if im.size != (size, size):
        im = im.resize((size, size), Image.Resampling.BICUBIC if min(im.size) < size else Image.Resampling.LANCZOS)
    a = np.asarray(im, dtype=np.float32)
    a = a[None] if channels == 1 else a.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(a))[None]


@torch.inference_mode()
def classify(source, model: str = DEFAULT_CLASSIFIER, top: int = 5, device: str = "cpu") -> list[Prediction]:
    """The `top` most probable classes of an image, most probable first."""
    net = get_classifier(model, device)
    x = model_input(source, net).to(next(net.model.parameters()).device)
    p = torch.softmax(logits(net.model, normalize(x, net.config), net.config).float(), dim=1)[0].cpu()
    k = max(1, min(top, len(p)))
    values, idx = p.topk(k)
    return [Prediction(net.config["classes"][i], int(i), float(v)) for v, i in zip(values, idx.tolist())]
