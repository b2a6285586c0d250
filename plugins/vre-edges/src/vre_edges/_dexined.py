"""DexiNed (Soria, Riba & Sappa, "Dense Extreme Inception Network for Edge Detection") in plain torch.

The parameter and buffer names are those of the official PyTorch checkpoints (``model.py`` of the
``xavysp/DexiNed`` repository, class ``DexiNed``): ``block_1``/``block_2`` (double conv blocks),
``dblock_3``..``dblock_6`` (dense blocks of ``denselayer{i}``), ``side_1``..``side_5`` and
``pre_dense_2``..``pre_dense_6`` (1x1 conv + BN), ``up_block_1``..``up_block_6`` (``features.{3i}`` 1x1
conv, ``features.{3i+2}`` transposed conv) and ``block_cat`` (1x1 conv over the 6 side maps; its BN
exists in the checkpoint but is not applied). ``side_5`` is in the checkpoint but unused by the forward
pass, as in the original. A checkpoint therefore loads with ``load_state_dict(strict=True)``.

Input (``preprocess``): as the original test pipeline, pixels in BGR order, 0..255 (no scaling), minus the
mean (B, G, R) = (103.939, 116.779, 123.68) (``--mean_pixel_values``, the 4th value is for NIR only).

Output: ``forward`` returns the 7 logit maps of the original, each (B, 1, H, W): the 6 side outputs then
the fused one. ``dexined_edge_map`` turns them into an edge probability in [0, 1]: "fused" = sigmoid of
the fused logits, "average" = mean of the sigmoids of the 7 maps (the original's "avg" output; with
``minmax=True`` each map is first min-max normalised per image as the original ``image_normalization``).

Sizes: the network only maps H x W back onto itself when H and W are multiples of 16. The original resizes
images to a multiple of 16 and the edge maps back; here the input is instead padded at the bottom/right
to the next multiple of 16 (reflection, replication when the image is too small to reflect) and the
outputs are cropped back, which keeps pixels aligned and works for any size (e.g. 270 x 481).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "DEXINED_MEAN_BGR",
    "DexiNed",
    "dexined_edge_map",
    "preprocess",
]

#: Mean subtracted from 0..255 pixel values, in B, G, R order (DexiNed main.py --mean_pixel_values[:3]).
DEXINED_MEAN_BGR: tuple[float, float, float] = (103.939, 116.779, 123.68)
_MULTIPLE = 16


class _ConvBN(nn.Module):
    """1x1 conv (optionally strided) + BatchNorm; names ``conv``/``bn`` (original ``SingleConvBlock``)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, use_bn: bool = True) -> None:
        super().__init__()
        self.use_bn = use_bn
        self.conv = nn.Conv2d(c_in, c_out, 1, stride=stride)
        self.bn = nn.BatchNorm2d(c_out)  # always created, so that checkpoints load strictly

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return self.bn(x) if self.use_bn else x


class _DoubleConv(nn.Module):
    """conv3x3(stride) - BN - ReLU - conv3x3 - BN [- ReLU]; names conv1/bn1/conv2/bn2."""

    def __init__(self, c_in: int, c_mid: int, c_out: int, stride: int = 1, last_relu: bool = True) -> None:
        super().__init__()
        self.last_relu = last_relu
        self.conv1 = nn.Conv2d(c_in, c_mid, 3, padding=1, stride=stride)
        self.bn1 = nn.BatchNorm2d(c_mid)
        self.conv2 = nn.Conv2d(c_mid, c_out, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(x))
        return F.relu(x) if self.last_relu else x


class _DenseLayer(nn.Module):
    """ReLU - conv3x3(pad 2) - BN - ReLU - conv3x3(pad 0) - BN, averaged with the skip input."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=2)
        self.norm1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3)
        self.norm2 = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        y = self.norm2(self.conv2(F.relu(self.norm1(self.conv1(F.relu(x))))))
        return 0.5 * (y + skip)


class _DenseBlock(nn.Module):
    def __init__(self, n_layers: int, c_in: int, c_out: int) -> None:
        super().__init__()
        self.n_layers = n_layers
        for i in range(n_layers):
            self.add_module(f"denselayer{i + 1}", _DenseLayer(c_in if i == 0 else c_out, c_out))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        for i in range(self.n_layers):
            x = getattr(self, f"denselayer{i + 1}")(x, skip)
        return x


class _UpBlock(nn.Module):
    """``n`` x (1x1 conv - ReLU - transposed conv k=2**n, stride 2): upsamples by 2**n; 16 channels, then 1."""

    _PADS = (0, 0, 1, 3, 7)  # transposed-conv padding per n, so that each step exactly doubles the size

    def __init__(self, c_in: int, n: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(n):
            c_out = 1 if i == n - 1 else 16
            layers += [nn.Conv2d(c_in, c_out, 1), nn.ReLU(inplace=True),
                       nn.ConvTranspose2d(c_out, c_out, 2 ** n, stride=2, padding=self._PADS[n])]
            c_in = c_out
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class DexiNed(nn.Module):
    """DexiNed edge network; ``forward(x)``: float (B, 3, H, W) preprocessed (see ``preprocess``) -> list of
    7 logit maps (B, 1, H, W): side outputs 1..6, then the fused map. ``edges(x)`` gives [0, 1] maps."""

    def __init__(self, pad_mode: str = "reflect") -> None:
        super().__init__()
        if pad_mode not in ("reflect", "replicate"):
            raise ValueError(f"pad_mode must be 'reflect' or 'replicate', got {pad_mode!r}")
        self.pad_mode = pad_mode
        self.block_1 = _DoubleConv(3, 32, 64, stride=2)
        self.block_2 = _DoubleConv(64, 128, 128, last_relu=False)
        self.dblock_3 = _DenseBlock(2, 128, 256)
        self.dblock_4 = _DenseBlock(3, 256, 512)
        self.dblock_5 = _DenseBlock(3, 512, 512)
        self.dblock_6 = _DenseBlock(3, 512, 256)
        self.side_1 = _ConvBN(64, 128, 2)
        self.side_2 = _ConvBN(128, 256, 2)
        self.side_3 = _ConvBN(256, 512, 2)
        self.side_4 = _ConvBN(512, 512, 1)
        self.side_5 = _ConvBN(512, 256, 1)  # in the checkpoint, unused by the original forward
        self.pre_dense_2 = _ConvBN(128, 256, 2)
        self.pre_dense_3 = _ConvBN(128, 256, 1)
        self.pre_dense_4 = _ConvBN(256, 512, 1)
        self.pre_dense_5 = _ConvBN(512, 512, 1)
        self.pre_dense_6 = _ConvBN(512, 256, 1)
        for k, (c, n) in enumerate(((64, 1), (128, 1), (256, 2), (512, 3), (512, 4), (256, 4)), start=1):
            self.add_module(f"up_block_{k}", _UpBlock(c, n))
        self.block_cat = _ConvBN(6, 1, 1, use_bn=False)

    @staticmethod
    def _pool(x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % _MULTIPLE, (-w) % _MULTIPLE
        if ph == 0 and pw == 0:
            return x
        mode = self.pad_mode if (self.pad_mode == "replicate" or (ph < h and pw < w)) else "replicate"
        return F.pad(x, (0, pw, 0, ph), mode=mode)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"DexiNed expects a (B, 3, H, W) tensor, got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        x = self._pad(x)
        b1 = self.block_1(x)                                  # /2, 64
        b1_side = self.side_1(b1)                             # /4, 128
        b2 = self.block_2(b1)                                 # /2, 128
        b2_down = self._pool(b2)                              # /4, 128
        b2_add = b2_down + b1_side
        b2_side = self.side_2(b2_add)                         # /8, 256
        b3 = self.dblock_3(b2_add, self.pre_dense_3(b2_down))  # /4, 256
        b3_down = self._pool(b3)                              # /8, 256
        b3_add = b3_down + b2_side
        b3_side = self.side_3(b3_add)                         # /16, 512
        b2_half = self.pre_dense_2(b2_down)                   # /8, 256
        b4 = self.dblock_4(b3_add, self.pre_dense_4(b3_down + b2_half))  # /8, 512
        b4_down = self._pool(b4)                              # /16, 512
        b4_add = b4_down + b3_side
        b4_side = self.side_4(b4_add)                         # /16, 512
        b5 = self.dblock_5(b4_add, self.pre_dense_5(b4_down))  # /16, 512
        b5_add = b5 + b4_side
        b6 = self.dblock_6(b5_add, self.pre_dense_6(b5))      # /16, 256
        outs = [self.up_block_1(b1), self.up_block_2(b2), self.up_block_3(b3),
                self.up_block_4(b4), self.up_block_5(b5), self.up_block_6(b6)]
        outs.append(self.block_cat(torch.cat(outs, dim=1)))
        return [o[..., :h, :w] for o in outs]

    def edges(self, x: torch.Tensor, mode: str = "fused", minmax: bool = False) -> torch.Tensor:
        """Edge probability (B, 1, H, W) in [0, 1]; see ``dexined_edge_map``."""
        return dexined_edge_map(self(x), mode=mode, minmax=minmax)


def dexined_edge_map(outputs: list[torch.Tensor], mode: str = "fused", minmax: bool = False) -> torch.Tensor:
    """Combine DexiNed's 7 logit maps into one (B, 1, H, W) edge map in [0, 1] (edges high).

    mode="fused": sigmoid of the fused (last) map. mode="average": mean of the sigmoids of all 7 maps.
    minmax=True min-max normalises each map per image first (the original test code does so before saving).
    """
    if mode == "fused":
        maps = [outputs[-1]]
    elif mode == "average":
        maps = list(outputs)
    else:
        raise ValueError(f"mode must be 'fused' or 'average', got {mode!r}")
    probs = torch.stack([torch.sigmoid(m) for m in maps], dim=0)  # (K, B, 1, H, W)
    if minmax:
        lo = probs.amin(dim=(-2, -1), keepdim=True)
        hi = probs.amax(dim=(-2, -1), keepdim=True)
        probs = (probs - lo) / (hi - lo).clamp_min(1e-12)
    return probs.mean(dim=0)


def preprocess(frames_uint8_rgb: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 RGB frames -> float32 (B, 3, H, W) for ``DexiNed``: reordered to BGR, kept in
    0..255, DEXINED_MEAN_BGR subtracted (as the original, which reads images with cv2 in BGR)."""
    frames = np.asarray(frames_uint8_rgb)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected (B, H, W, 3) RGB frames, got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames (0..255), got dtype {frames.dtype}")
    bgr = frames[..., ::-1].astype(np.float32) - np.asarray(DEXINED_MEAN_BGR, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(bgr.transpose(0, 3, 1, 2)))
