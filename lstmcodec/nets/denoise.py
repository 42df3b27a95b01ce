"""Denoisers. Every network maps a noisy float image in [0, 1] (N x C x H x W) to a clean estimate.

(a) ConvAutoencoder(decoder="transpose"): the MNIST experiment's autoencoder.
(b) ConvAutoencoder(decoder="upsample"): the same with resize + convolution in the decoder (no checkerboard).
(c) CifarAutoencoder: the small 32x32 colour autoencoder (trained with binary cross-entropy).
(e) DenseAutoencoder: the fully connected 784 -> 64 -> 784 autoencoder of the MNIST denoising comparison.
(f) PoolAutoencoder: the convolutional denoiser with a three-level conv + max-pool encoder and a nearest-upsample
    + convolution decoder (against the checkerboard artefacts of transposed convolutions).
(d) ResidualDenoiser: DnCNN-style, predicts the noise and subtracts it; `down` = 2 runs the convolution
    stack at half resolution on pixel-unshuffled channels (FFDNet's trick: 4x cheaper, 2x the field of view).
(d') UNetDenoiser: also predicts the noise, with a three-scale U-Net (full, 1/2, 1/4 resolution; additive
    skips, as in DRUNet): more field of view for fewer operations per pixel than a plain stack.
Residual networks say how much context each output pixel needs (`radius`) and on what grid their
input must be cut (`align`), so that tiles with that margin stitch exactly.
`build(arch, config)` rebuilds one from its weights file's configuration.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ConvAutoencoder(nn.Module):
    """conv 7x7 stride 3 -> 32, ReLU, BN, dropout; conv 3x3 -> 64, ReLU, BN, dropout; mirrored decoder; sigmoid."""

    def __init__(self, in_channels: int = 1, decoder: str = "transpose", dropout: float = 0.2):
        super().__init__()
        if decoder not in ("transpose", "upsample"):
            raise ValueError("decoder is 'transpose' or 'upsample'")
        self.decoder = decoder

        def block(layer, c):
            return nn.Sequential(layer, nn.ReLU(inplace=True), nn.BatchNorm2d(c), nn.Dropout(dropout))

        self.enc1 = block(nn.Conv2d(in_channels, 32, 7, stride=3), 32)
        self.enc2 = block(nn.Conv2d(32, 64, 3), 64)
        if decoder == "transpose":
            self.dec2 = block(nn.ConvTranspose2d(64, 32, 3), 32)
            self.dec1 = nn.ConvTranspose2d(32, in_channels, 7, stride=3)
        else:
            self.dec2 = block(nn.Conv2d(64, 32, 3, padding=1), 32)
            self.dec1 = nn.Conv2d(32, in_channels, 7, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        h1 = self.enc1(x)
        h2 = self.enc2(h1)
        if self.decoder == "transpose":
            y = self.dec1(self.dec2(h2))
            y = F.pad(y, (0, size[1] - y.shape[-1], 0, size[0] - y.shape[-2]))  # sizes that are not 3k+7
        else:
            y = self.dec2(F.interpolate(h2, size=h1.shape[-2:], mode="nearest"))
            y = self.dec1(F.interpolate(y, size=size, mode="bilinear", align_corners=False))
        return torch.sigmoid(y)


class CifarAutoencoder(nn.Module):
    """conv 3x3 -> 16, max-pool, conv 3x3 -> 4, max-pool; two stride-2 transposed convolutions back; sigmoid."""

    def __init__(self, in_channels: int = 3):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                                     nn.Conv2d(16, 4, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self.decoder = nn.Sequential(nn.ConvTranspose2d(4, 16, 2, stride=2), nn.ReLU(inplace=True),
                                     nn.ConvTranspose2d(16, in_channels, 2, stride=2))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        xp = F.pad(x, (0, -w % 4, 0, -h % 4), mode="replicate")
        return torch.sigmoid(self.logits(xp))[..., :h, :w]


class DenseAutoencoder(nn.Module):
    """Flatten, dense `hidden` + ReLU, dense back to every pixel, sigmoid: for images of one fixed size."""

    def __init__(self, in_channels: int = 1, size: int = 28, hidden: int = 64):
        super().__init__()
        self.shape = (in_channels, size, size)
        n = in_channels * size * size
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(n, hidden), nn.ReLU(inplace=True))
        self.decoder = nn.Linear(hidden, n)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"this dense autoencoder takes {self.shape[1]}x{self.shape[2]} images with "
                             f"{self.shape[0]} channel(s), not {x.shape[-1]}x{x.shape[-2]}")
        return self.decoder(self.encoder(x)).view(-1, *self.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))


class PoolAutoencoder(nn.Module):
    """Encoder: three times conv 3x3 (64, 64, 32) + ReLU and a 2x2 max-pool with 'same' padding (28 -> 14 -> 7 -> 4);
    decoder: three times nearest upsampling to the encoder's sizes and conv 3x3 (32, 64, 64) + ReLU, then a 3x3
    convolution to the image's channels and a sigmoid."""

    def __init__(self, in_channels: int = 1):
        super().__init__()

        def conv(ci: int, co: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(ci, co, 3, padding=1), nn.ReLU(inplace=True))

        self.enc = nn.ModuleList([conv(in_channels, 64), conv(64, 64), conv(64, 32)])
        self.dec = nn.ModuleList([conv(32, 32), conv(32, 64), conv(64, 64)])
        self.out = nn.Conv2d(64, in_channels, 3, padding=1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        sizes = []
        for layer in self.enc:
            sizes.append(x.shape[-2:])
            x = F.max_pool2d(layer(x), 2, ceil_mode=True)
        for layer, size in zip(self.dec, reversed(sizes)):
            x = layer(F.interpolate(x, size=size, mode="nearest"))
        return self.out(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))


class ResidualDenoiser(nn.Module):
    """conv+ReLU, (depth-2) x (conv+ReLU), conv: the noise estimate, subtracted from the input (DnCNN)."""

    def __init__(self, in_channels: int = 3, width: int = 64, depth: int = 17, down: int = 1):
        super().__init__()
        self.down = down
        c = in_channels * down * down
        layers: list[nn.Module] = [nn.Conv2d(c, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(width, c, 3, padding=1))
        self.body = nn.Sequential(*layers)
        # without batch norm the signal must keep its scale through the stack (He init), and the last
        # layer starts small so that the untrained network is close to the identity
        for conv in self.body:
            if isinstance(conv, nn.Conv2d):
                nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
                nn.init.zeros_(conv.bias)
        self.body[-1].weight.data.mul_(0.1)
        self.radius = (depth + 2) * down  # one pixel per 3x3 layer at the stack's resolution, and room to spare
        self.align = down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        d = self.down
        xp = F.pad(x, (0, -w % d, 0, -h % d), mode="replicate") if (h % d or w % d) else x
        noise = self.body(F.pixel_unshuffle(xp, d) if d > 1 else xp)
        noise = F.pixel_shuffle(noise, d) if d > 1 else noise
        return x - noise[..., :h, :w]


class UNetDenoiser(nn.Module):
    """head; `blocks` convs at each of 3 scales (width, 2 width, 4 width) down, 2x2 stride-2 convolutions
    between scales, transposed ones back with additive skips; tail: the noise estimate, subtracted from x."""

    def __init__(self, in_channels: int = 3, width: int = 32, blocks: int = 2):
        super().__init__()
        c1, c2, c3 = width, 2 * width, 4 * width

        def convs(c: int, n: int) -> nn.Sequential:
            return nn.Sequential(*[m for _ in range(n) for m in (nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True))])

        self.head = nn.Sequential(nn.Conv2d(in_channels, c1, 3, padding=1), nn.ReLU(inplace=True))
        self.enc1, self.down1 = convs(c1, blocks), nn.Conv2d(c1, c2, 2, stride=2)
        self.enc2, self.down2 = convs(c2, blocks), nn.Conv2d(c2, c3, 2, stride=2)
        self.mid = convs(c3, blocks + 1)
        self.up2, self.dec2 = nn.ConvTranspose2d(c3, c2, 2, stride=2), convs(c2, blocks)
        self.up1, self.dec1 = nn.ConvTranspose2d(c2, c1, 2, stride=2), convs(c1, blocks)
        self.tail = nn.Conv2d(c1, in_channels, 3, padding=1)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        self.tail.weight.data.mul_(0.1)
        # 3x3 layers: 2 + 2 blocks at full resolution, 2 blocks x 2 px at 1/2, (blocks + 1) x 4 px at 1/4,
        # plus the 2x2 (de)convolutions; rounded up to the 4-pixel grid with room to spare
        self.radius = 4 * ((2 + 2 * blocks + 4 * blocks + 4 * (blocks + 1) + 8) // 4 + 1)
        self.align = 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        xp = F.pad(x, (0, -w % 4, 0, -h % 4), mode="replicate") if (h % 4 or w % 4) else x
        s1 = self.enc1(self.head(xp))
        s2 = self.enc2(self.down1(s1))
        y = self.mid(self.down2(s2))
        y = self.dec2(self.up2(y) + s2)
        noise = self.tail(self.dec1(self.up1(y) + s1))
        return x - noise[..., :h, :w]


ARCHS = {"conv-ae": ConvAutoencoder, "cifar-ae": CifarAutoencoder, "dense-ae": DenseAutoencoder,
         "pool-ae": PoolAutoencoder, "residual": ResidualDenoiser, "unet": UNetDenoiser}


def build(arch: str, config: dict) -> nn.Module:
    if arch not in ARCHS:
        raise ValueError(f"unknown denoiser architecture '{arch}' (one of {', '.join(ARCHS)})")
    return ARCHS[arch](**{k: v for k, v in config.items() if k not in ("noise", "receptive_field")})
