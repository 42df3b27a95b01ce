"""Image classifiers: the 8-layer CNN of the MNIST experiment (as written, and a regularised variant) and a fast
residual CNN for CIFAR-10.

Every network takes standardised float images (`normalize`, N x C x H x W) and returns logits. `build(arch, config)`
rebuilds one from the configuration stored in its weights file.
"""
from __future__ import annotations

import torch
from torch import nn


class MnistCNN(nn.Module):
    """conv 16, conv 16, max-pool, conv 32, conv 32, max-pool, dense 128, dense classes (3x3 kernels).

    Batch norm after each convolution and dropout before the dense layers regularise it.
    """

    def __init__(self, in_channels: int = 1, classes: int = 10, size: int = 28, dropout: float = 0.25):
        super().__init__()

        def conv(ci, co):
            return nn.Sequential(nn.Conv2d(ci, co, 3, padding=1, bias=False), nn.BatchNorm2d(co), nn.ReLU(inplace=True))

        self.features = nn.Sequential(conv(in_channels, 16), conv(16, 16), nn.MaxPool2d(2),
                                      conv(16, 32), conv(32, 32), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(32 * (size // 4) ** 2, 128),
                                  nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(128, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class MnistPlainCNN(nn.Module):
    """The MNIST experiment's network as its text writes it (83,322 parameters at 28x28): valid 3x3 convolutions
    conv 16, conv 16, max-pool, conv 32, conv 32, max-pool (ReLU after each convolution), dense 128 and dense
    `classes`, each followed by a sigmoid; weights uniform in +-0.1, dense biases 0.1. The text does not give the
    convolutions' bias start: 0 here. Its outputs are sigmoid probabilities, trained against one-hot labels."""

    def __init__(self, in_channels: int = 1, classes: int = 10, size: int = 28):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(in_channels, 16, 3), nn.ReLU(), nn.Conv2d(16, 16, 3), nn.ReLU(),
                                      nn.MaxPool2d(2), nn.Conv2d(16, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3), nn.ReLU(),
                                      nn.MaxPool2d(2))
        side = ((size - 4) // 2 - 4) // 2
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * side * side, 128), nn.Sigmoid(), nn.Linear(128, classes),
                                  nn.Sigmoid())
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.uniform_(m.weight, -0.1, 0.1)
                nn.init.constant_(m.bias, 0.1 if isinstance(m, nn.Linear) else 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ConvGroup(nn.Module):
    """conv -> max-pool -> BN -> GELU -> conv -> BN -> GELU: halves the resolution, changes the width."""

    def __init__(self, ci: int, co: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ci, co, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(co)
        self.conv2 = nn.Conv2d(co, co, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(co)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn1(nn.functional.max_pool2d(self.conv1(x), 2)))
        return x + self.act(self.bn2(self.conv2(x)))  # a residual second convolution


class FastResNet(nn.Module):
    """A small, fast CIFAR-10 network in the style of the speed-record nets: a stem convolution, three
    groups that each halve the resolution (32 -> 16 -> 8 -> 4), global max-pool, one linear layer."""

    def __init__(self, in_channels: int = 3, classes: int = 10, widths: tuple[int, ...] = (64, 128, 256), scale: float = 1 / 9):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0] // 2, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0] // 2), nn.GELU())
        groups, ci = [], widths[0] // 2
        for co in widths:
            groups.append(ConvGroup(ci, co))
            ci = co
        self.groups = nn.Sequential(*groups)
        self.fc = nn.Linear(ci, classes, bias=False)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.groups(self.stem(x))
        return self.fc(torch.amax(x, dim=(2, 3))) * self.scale

    @torch.no_grad()
    def init_whitening(self, x: torch.Tensor, eps: float = 5e-4) -> None:
        """Start the stem as a patch-whitening filter bank (as in the airbench speed records): its filters
        become the leading principal components of the 3x3 patches of `x` (normalised training images),
        each scaled by 1/sqrt(its variance) and used with both signs, so no information is lost to the
        activation. Filters beyond twice the patch dimension keep their random start."""
        conv = self.stem[0]
        k = conv.kernel_size[0]
        patches = nn.functional.unfold(x.float(), k).transpose(1, 2).reshape(-1, conv.in_channels * k * k)
        patches = patches - patches.mean(0)
        eigval, eigvec = torch.linalg.eigh(patches.T @ patches / len(patches))  # ascending
        n = min(conv.out_channels // 2, len(eigval))
        filters = (eigvec[:, -n:].flip(1) / (eigval[-n:].flip(0) + eps).sqrt()).T  # n x (C k k), leading first
        conv.weight[:2 * n] = torch.cat([filters, -filters]).view(2 * n, conv.in_channels, k, k)


def normalize(x: torch.Tensor, config: dict) -> torch.Tensor:
    """uint8-valued images (any float or int dtype, 0-255) -> the network's input: per-channel standardised."""
    mean = torch.tensor(config["mean"], device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(config["std"], device=x.device).view(1, -1, 1, 1)
    return (x.float() / 255 - mean) / std


def logits(model: nn.Module, x: torch.Tensor, config: dict) -> torch.Tensor:
    """The model's logits for normalised images with the test-time augmentation its configuration names:
    "flip_tta" averages the image's and its mirror's; "shift_tta" then also averages, at half weight,
    the views moved one pixel up-left and down-right (reflected edges), each with its mirror too."""
    def with_mirror(v: torch.Tensor) -> torch.Tensor:
        return (model(v) + model(v.flip(-1))) / 2 if config.get("flip_tta") else model(v)

    out = with_mirror(x)
    if config.get("shift_tta"):
        h, w = x.shape[-2:]
        padded = nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
        out = out / 2 + (with_mirror(padded[..., :h, :w]) + with_mirror(padded[..., 2:, 2:])) / 4
    return out


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, config: dict, batch: int = 1000) -> torch.Tensor:
    """Top-1 class of each uint8-valued N x C x H x W image, with the test-time augmentation the
    configuration names (as `lstmcodec classify`)."""
    return torch.cat([logits(model, normalize(images[i:i + batch], config).contiguous(memory_format=torch.channels_last),
                             config).argmax(1) for i in range(0, len(images), batch)])


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, config: dict, batch: int = 1000) -> float:
    """Top-1 accuracy of `predict` against `labels`."""
    return int((predict(model, images, config, batch) == labels).sum()) / len(images)


ARCHS = {"mnist-cnn": MnistCNN, "mnist-cnn-plain": MnistPlainCNN, "fast-resnet": FastResNet}


def build(arch: str, config: dict) -> nn.Module:
    """config: in_channels, classes (a list of names), and the architecture's own keys."""
    if arch not in ARCHS:
        raise ValueError(f"unknown classifier architecture '{arch}' (one of {', '.join(ARCHS)})")
    kw = {k: v for k, v in config.items() if k not in ("classes", "size", "mean", "std", "flip_tta", "shift_tta")}
    if arch in ("mnist-cnn", "mnist-cnn-plain"):
        kw["size"] = config.get("size", 28)
    if "widths" in kw:
        kw["widths"] = tuple(kw["widths"])
    return ARCHS[arch](classes=len(config["classes"]), **kw)
