"""YOLOv8-seg in plain torch: the instance-segmentation network FastSAM is, with the checkpoints' tensor names.

Written from the architecture's description (Jocher, Chaurasia & Qiu, "Ultralytics YOLOv8", 2023: the layer table
of ``yolov8-seg.yaml`` and its width/depth scales; Zhao et al., "Fast Segment Anything", 2023, section 3: FastSAM is
YOLOv8-seg trained on 2% of SA-1B with one class, "object"). No Ultralytics code is used or needed.

The 23 layers ``model.0`` .. ``model.22`` are those of Ultralytics' ``SegmentationModel.model``, so that the
``state_dict`` names are the checkpoints' ones (``model.4.m.1.cv2.conv.weight``, ``model.22.proto.upsample.bias``...)
and a converted checkpoint loads strictly:

* backbone: Conv(64, 3, s2), Conv(128, 3, s2), C2f(128) x3, Conv(256, 3, s2), C2f(256) x6, Conv(512, 3, s2),
  C2f(512) x6, Conv(1024, 3, s2), C2f(1024) x3, SPPF(1024, 5) -- the C2f bottlenecks with a shortcut;
* neck: upsample x2 + concat layer 6, C2f(512) x3 (layer 12); upsample + concat 4, C2f(256) x3 (15, stride 8);
  Conv(256, s2) + concat 12, C2f(512) x3 (18, stride 16); Conv(512, s2) + concat 9, C2f(1024) x3 (21, stride 32) --
  no shortcuts; layers 10, 13 (upsampling) and 11, 14, 17, 20 (concatenation) hold no tensors;
* head (layer 22, "Segment"): per level a box branch ``cv2`` (2 Conv 3x3 + 1x1 conv to 4 x ``reg_max`` bins), a
  class branch ``cv3`` (to ``nc`` logits) and a mask-coefficient branch ``cv4`` (to ``nm``); ``dfl`` turns the bins
  into distances (softmax expectation); ``proto`` makes ``nm`` prototype masks at stride 4 from layer 15.

Channel counts are the yaml's times the scale's width (capped at its max channels, rounded up to a multiple of 8),
repeats its times the depth: ``SCALES``. Every Conv is conv (no bias) + BatchNorm (eps 1e-3, the value Ultralytics
sets on every model it builds) + SiLU.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import attrs
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SCALES", "STRIDES", "YoloArch", "YoloV8Seg", "arch_of", "decode_boxes"]

#: (depth multiple, width multiple, max channels) of each model scale in yolov8-seg.yaml.
SCALES: dict[str, tuple[float, float, int]] = {
    "n": (0.33, 0.25, 1024), "s": (0.33, 0.50, 1024), "m": (0.67, 0.75, 768), "l": (1.00, 1.00, 512),
    "x": (1.00, 1.25, 512),
}
#: Downsampling of the three detection levels (layers 15, 18, 21).
STRIDES = (8, 16, 32)
BN_EPS = 1e-3


@attrs.frozen
class YoloArch:
    """What varies between YOLOv8-seg networks: the scale, the number of DFL bins, classes and mask prototypes."""

    scale: str = attrs.field(validator=attrs.validators.in_(SCALES))
    reg_max: int = 16
    nc: int = 1
    nm: int = 32

    def channels(self, c: int) -> int:
        """The yaml's channel count ``c`` at this scale."""
        _, width, max_channels = SCALES[self.scale]
        return math.ceil(min(c, max_channels) * width / 8) * 8

    def repeats(self, n: int) -> int:
        """The yaml's repeat count ``n`` at this scale."""
        return max(round(n * SCALES[self.scale][0]), 1)


class Conv(nn.Module):
    """conv k x k (stride s, "same" padding, no bias) + BatchNorm + SiLU; names ``conv``, ``bn``."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    """Two 3x3 Convs, plus the input when ``shortcut``."""

    def __init__(self, c: int, shortcut: bool) -> None:
        super().__init__()
        self.shortcut = shortcut
        self.cv1 = Conv(c, c, 3)
        self.cv2 = Conv(c, c, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.shortcut else y


class C2f(nn.Module):
    """CSP block with 2 convs: split a 1x1 Conv in two halves, chain ``n`` bottlenecks on the second, concatenate
    every intermediate result and mix them with a 1x1 Conv."""

    def __init__(self, c1: int, c2: int, n: int, shortcut: bool) -> None:
        super().__init__()
        c = c2 // 2
        self.cv1 = Conv(c1, 2 * c)
        self.cv2 = Conv((2 + n) * c, c2)
        self.m = nn.ModuleList(Bottleneck(c, shortcut) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = list(self.cv1(x).chunk(2, 1))
        for block in self.m:
            y.append(block(y[-1]))
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: three chained 5x5 max-pools of a halved 1x1 Conv, all four concatenated."""

    def __init__(self, c1: int, c2: int, k: int = 5) -> None:
        super().__init__()
        c = c1 // 2
        self.cv1 = Conv(c1, c)
        self.cv2 = Conv(4 * c, c2)
        self.m = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class Proto(nn.Module):
    """Mask prototypes at twice the input's resolution: Conv 3x3, transposed conv x2, Conv 3x3, 1x1 Conv to ``nm``."""

    def __init__(self, c1: int, npr: int, nm: int) -> None:
        super().__init__()
        self.cv1 = Conv(c1, npr, 3)
        self.upsample = nn.ConvTranspose2d(npr, npr, 2, 2, 0, bias=True)
        self.cv2 = Conv(npr, npr, 3)
        self.cv3 = Conv(npr, nm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(self.cv2(self.upsample(self.cv1(x))))


class DFL(nn.Module):
    """Distribution focal loss integral: each side's distance is the expectation of a softmax over ``reg_max`` bins,
    weighted by the 1x1 conv's weights (0, 1, ..., reg_max - 1, as made here and in every checkpoint; a tensor of the
    state dict, so that a checkpoint's own values are used)."""

    def __init__(self, reg_max: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(reg_max, 1, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.arange(reg_max, dtype=torch.float32).view(1, reg_max, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 4 * reg_max, A) bin logits -> (B, 4, A) distances in strides."""
        b, _, a = x.shape
        p = x.view(b, 4, -1, a).softmax(2)
        return (p * self.conv.weight.view(1, 1, -1, 1)).sum(2)


def _branch(c_in: int, c_mid: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(Conv(c_in, c_mid, 3), Conv(c_mid, c_mid, 3), nn.Conv2d(c_mid, c_out, 1))


def make_anchors(shapes: list[tuple[int, int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell centres (A, 2) in cells of their level, (x, y), and each cell's stride (A, 1), over the three levels."""
    points, strides = [], []
    for (h, w), stride in zip(shapes, STRIDES, strict=True):
        ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32) + 0.5,
                                torch.arange(w, device=device, dtype=torch.float32) + 0.5, indexing="ij")
        points.append(torch.stack((xs, ys), -1).view(-1, 2))
        strides.append(torch.full((h * w, 1), float(stride), device=device))
    return torch.cat(points), torch.cat(strides)


def decode_boxes(distances: torch.Tensor, anchors: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    """(B, 4, A) left/top/right/bottom distances in strides -> (B, 4, A) boxes (centre x, centre y, w, h) in pixels."""
    lt, rb = distances.chunk(2, 1)
    a = anchors.t().unsqueeze(0)
    x1y1, x2y2 = a - lt, a + rb
    return torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1) * strides.t().unsqueeze(0)


class Segment(nn.Module):
    """The head: boxes, class probabilities and mask coefficients for every cell of the three levels, and the
    prototype masks."""

    def __init__(self, arch: YoloArch, ch: tuple[int, int, int]) -> None:
        super().__init__()
        self.arch = arch
        c2 = max(16, ch[0] // 4, 4 * arch.reg_max)
        c3 = max(ch[0], min(arch.nc, 100))
        c4 = max(ch[0] // 4, arch.nm)
        self.cv2 = nn.ModuleList(_branch(c, c2, 4 * arch.reg_max) for c in ch)
        self.cv3 = nn.ModuleList(_branch(c, c3, arch.nc) for c in ch)
        self.cv4 = nn.ModuleList(_branch(c, c4, arch.nm) for c in ch)
        self.dfl = DFL(arch.reg_max)
        self.proto = Proto(ch[0], arch.channels(256), arch.nm)

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        b = feats[0].shape[0]
        box = torch.cat([m(f).view(b, 4 * self.arch.reg_max, -1) for m, f in zip(self.cv2, feats, strict=True)], 2)
        cls = torch.cat([m(f).view(b, self.arch.nc, -1) for m, f in zip(self.cv3, feats, strict=True)], 2)
        coef = torch.cat([m(f).view(b, self.arch.nm, -1) for m, f in zip(self.cv4, feats, strict=True)], 2)
        anchors, strides = make_anchors([(f.shape[2], f.shape[3]) for f in feats], feats[0].device)
        boxes = decode_boxes(self.dfl(box), anchors, strides)
        return torch.cat((boxes, cls.sigmoid(), coef), 1), self.proto(feats[0])


def _upsample(x: torch.Tensor) -> torch.Tensor:
    """Layers 10 and 13: nearest-neighbour upsampling x2."""
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


class _NoTensors(nn.Module):
    """Layers 10, 11, 13, 14, 17 and 20 (upsampling, concatenation): placeholders keeping the layer numbers."""


class YoloV8Seg(nn.Module):
    """YOLOv8-seg at one scale. Input: (B, 3, H, W) RGB in [0, 1], H and W multiples of 32. Output: predictions
    (B, 4 + nc + nm, A) -- box centre x, y, width, height in input pixels, class probabilities, mask coefficients --
    for the A = H W (1/64 + 1/256 + 1/1024) cells of strides 8, 16, 32; and prototypes (B, nm, H / 4, W / 4)."""

    def __init__(self, arch: YoloArch) -> None:
        super().__init__()
        self.arch = arch
        c = arch.channels
        n = arch.repeats
        c64, c128, c256, c512, c1024 = c(64), c(128), c(256), c(512), c(1024)
        self.model = nn.ModuleList([
            Conv(3, c64, 3, 2), Conv(c64, c128, 3, 2), C2f(c128, c128, n(3), True),
            Conv(c128, c256, 3, 2), C2f(c256, c256, n(6), True),
            Conv(c256, c512, 3, 2), C2f(c512, c512, n(6), True),
            Conv(c512, c1024, 3, 2), C2f(c1024, c1024, n(3), True), SPPF(c1024, c1024),
            _NoTensors(), _NoTensors(), C2f(c1024 + c512, c512, n(3), False),
            _NoTensors(), _NoTensors(), C2f(c512 + c256, c256, n(3), False),
            Conv(c256, c256, 3, 2), _NoTensors(), C2f(c256 + c512, c512, n(3), False),
            Conv(c512, c512, 3, 2), _NoTensors(), C2f(c512 + c1024, c1024, n(3), False),
            Segment(arch, (c256, c512, c1024)),
        ])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        if x.shape[2] % 32 or x.shape[3] % 32:
            raise ValueError(f"YOLOv8-seg needs a height and width that are multiples of 32, got {tuple(x.shape[2:])}")
        p3 = m[4](m[3](m[2](m[1](m[0](x)))))
        p4 = m[6](m[5](p3))
        p5 = m[9](m[8](m[7](p4)))
        h12 = m[12](torch.cat((_upsample(p5), p4), 1))
        h15 = m[15](torch.cat((_upsample(h12), p3), 1))
        h18 = m[18](torch.cat((m[16](h15), h12), 1))
        h21 = m[21](torch.cat((m[19](h18), p5), 1))
        head = m[22]
        assert isinstance(head, Segment)
        return head([h15, h18, h21])


def arch_of(state: Mapping[str, torch.Tensor]) -> YoloArch:
    """The architecture a YOLOv8-seg state dict was made for, read from its tensor shapes (ValueError when the
    tensors are not those of a YOLOv8-seg network); `YoloV8Seg` loads it strictly, which checks every other shape."""
    needed = ("model.0.conv.weight", "model.22.dfl.conv.weight", "model.22.cv3.0.2.weight",
              "model.22.proto.cv3.conv.weight")
    missing = [k for k in needed if k not in state]
    if missing:
        raise ValueError(f"not a YOLOv8-seg state dict: it lacks {', '.join(missing)}")
    first = int(state["model.0.conv.weight"].shape[0])
    scales = [s for s in SCALES if YoloArch(s).channels(64) == first]
    if not scales:
        raise ValueError(f"not a YOLOv8-seg state dict: its first conv has {first} channels, which no scale has "
                         f"({', '.join(f'{s}: {YoloArch(s).channels(64)}' for s in SCALES)})")
    return YoloArch(scales[0], reg_max=int(state["model.22.dfl.conv.weight"].shape[1]),
                    nc=int(state["model.22.cv3.0.2.weight"].shape[0]),
                    nm=int(state["model.22.proto.cv3.conv.weight"].shape[0]))
