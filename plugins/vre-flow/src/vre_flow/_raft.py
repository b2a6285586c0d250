"""RAFT (Teed & Deng, ECCV 2020) in plain torch, with the parameter names of the official checkpoints.

Both sizes: ``large`` (raft-things / raft-sintel / raft-kitti: 256-d features, convex upsampling) and ``small``
(raft-small: 128-d features, bilinear upsampling). Input: RGB in [0, 255], (B, 3, H, W) with H and W multiples
of 8; output: the flow from image1 to image2 in pixels, (B, 2, H, W), after ``iters`` refinements.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["RAFT"]


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Sequential()  # "none": an empty Sequential, as in the checkpoints (no parameters)


class _Residual(nn.Module):
    """Two 3x3 convolutions (large encoder) or a 1x1-3x3-1x1 bottleneck (small encoder), with a shortcut."""

    def __init__(self, cin: int, cout: int, norm: str, stride: int, bottleneck: bool) -> None:
        super().__init__()
        if bottleneck:
            mid = cout // 4
            self.conv1 = nn.Conv2d(cin, mid, 1)
            self.conv2 = nn.Conv2d(mid, mid, 3, padding=1, stride=stride)
            self.conv3 = nn.Conv2d(mid, cout, 1)
            self.norm1, self.norm2, self.norm3 = _norm(norm, mid), _norm(norm, mid), _norm(norm, cout)
            convs = [(self.conv1, self.norm1), (self.conv2, self.norm2), (self.conv3, self.norm3)]
            shortcut_norm = "norm4"
        else:
            self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, stride=stride)
            self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
            self.norm1, self.norm2 = _norm(norm, cout), _norm(norm, cout)
            convs = [(self.conv1, self.norm1), (self.conv2, self.norm2)]
            shortcut_norm = "norm3"
        self._convs = convs
        self.downsample: nn.Module | None = None
        if stride != 1:
            # The checkpoints hold this norm twice: under its own name and inside the shortcut.
            norm_module = _norm(norm, cout)
            setattr(self, shortcut_norm, norm_module)
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride), norm_module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for conv, norm in self._convs:
            y = F.relu(norm(conv(y)))
        return F.relu((x if self.downsample is None else self.downsample(x)) + y)


class _Encoder(nn.Module):
    """A 7x7 stem and three stages of two residual blocks each; 1/8 of the input's resolution."""

    def __init__(self, out_dim: int, norm: str, small: bool) -> None:
        super().__init__()
        widths = (32, 64, 96) if small else (64, 96, 128)
        self.conv1 = nn.Conv2d(3, widths[0], 7, stride=2, padding=3)
        self.norm1 = _norm(norm, widths[0])
        ins = (widths[0], *widths[:2])
        self.layer1, self.layer2, self.layer3 = (
            nn.Sequential(_Residual(cin, width, norm, stride, small), _Residual(width, width, norm, 1, small))
            for cin, width, stride in zip(ins, widths, (1, 2, 2), strict=True))
        self.conv2 = nn.Conv2d(widths[2], out_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.norm1(self.conv1(x)))
        return self.conv2(self.layer3(self.layer2(self.layer1(x))))


class _MotionEncoder(nn.Module):
    def __init__(self, corr_channels: int, small: bool) -> None:
        super().__init__()
        self.small = small
        if small:
            self.convc1 = nn.Conv2d(corr_channels, 96, 1)
            self.convf1 = nn.Conv2d(2, 64, 7, padding=3)
            self.convf2 = nn.Conv2d(64, 32, 3, padding=1)
            self.conv = nn.Conv2d(128, 80, 3, padding=1)
        else:
            self.convc1 = nn.Conv2d(corr_channels, 256, 1)
            self.convc2 = nn.Conv2d(256, 192, 3, padding=1)
            self.convf1 = nn.Conv2d(2, 128, 7, padding=3)
            self.convf2 = nn.Conv2d(128, 64, 3, padding=1)
            self.conv = nn.Conv2d(64 + 192, 128 - 2, 3, padding=1)

    def forward(self, flow: torch.Tensor, corr: torch.Tensor) -> torch.Tensor:
        c = F.relu(self.convc1(corr))
        if not self.small:
            c = F.relu(self.convc2(c))
        f = F.relu(self.convf2(F.relu(self.convf1(flow))))
        return torch.cat([F.relu(self.conv(torch.cat([c, f], dim=1))), flow], dim=1)


class _GRU(nn.Module):
    """A convolutional GRU: one 3x3 pass (small), or a 1x5 then a 5x1 pass (large, "separable")."""

    def __init__(self, hidden: int, inputs: int, separable: bool) -> None:
        super().__init__()
        shapes = (("1", (1, 5), (0, 2)), ("2", (5, 1), (2, 0))) if separable else (("", 3, 1),)
        self._passes = [suffix for suffix, _, _ in shapes]
        for suffix, kernel, pad in shapes:
            for gate in "zrq":
                setattr(self, f"conv{gate}{suffix}", nn.Conv2d(hidden + inputs, hidden, kernel, padding=pad))

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        for suffix in self._passes:
            hx = torch.cat([h, x], dim=1)
            z = torch.sigmoid(getattr(self, f"convz{suffix}")(hx))
            r = torch.sigmoid(getattr(self, f"convr{suffix}")(hx))
            q = torch.tanh(getattr(self, f"convq{suffix}")(torch.cat([r * h, x], dim=1)))
            h = (1 - z) * h + z * q
        return h


class _FlowHead(nn.Module):
    def __init__(self, cin: int, hidden: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(x)))


class _UpdateBlock(nn.Module):
    def __init__(self, corr_channels: int, hidden: int, context: int, small: bool) -> None:
        super().__init__()
        motion = 82 if small else 128
        self.encoder = _MotionEncoder(corr_channels, small)
        self.gru = _GRU(hidden, context + motion, separable=not small)
        self.flow_head = _FlowHead(hidden, 128 if small else 256)
        if not small:  # weights of the convex combination that upsamples the flow x8
            self.mask = nn.Sequential(nn.Conv2d(128, 256, 3, padding=1), nn.ReLU(inplace=True),
                                      nn.Conv2d(256, 64 * 9, 1))

    def forward(self, h: torch.Tensor, context: torch.Tensor, corr: torch.Tensor,
                flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        h = self.gru(h, torch.cat([context, self.encoder(flow, corr)], dim=1))
        mask = 0.25 * self.mask(h) if hasattr(self, "mask") else None
        return h, mask, self.flow_head(h)


class _Correlation:
    """All-pairs correlation of two 1/8 feature maps, pooled into a pyramid, looked up around coordinates."""

    def __init__(self, f1: torch.Tensor, f2: torch.Tensor, levels: int, radius: int) -> None:
        b, c, h, w = f1.shape
        corr = torch.einsum("bci,bcj->bij", f1.flatten(2), f2.flatten(2)) / c ** 0.5
        corr = corr.reshape(b * h * w, 1, h, w)
        self.pyramid = [corr]
        for _ in range(levels - 1):
            corr = F.avg_pool2d(corr, 2, stride=2)
            self.pyramid.append(corr)
        self.radius = radius
        r = torch.linspace(-radius, radius, 2 * radius + 1, device=f1.device)
        # The checkpoints were trained with the window's first axis added to x and the second to y.
        first, second = torch.meshgrid(r, r, indexing="ij")
        self.window = torch.stack([first, second], dim=-1).view(1, 2 * radius + 1, 2 * radius + 1, 2)

    def __call__(self, coords: torch.Tensor) -> torch.Tensor:
        b, _, h, w = coords.shape
        centre = coords.permute(0, 2, 3, 1).reshape(b * h * w, 1, 1, 2)
        out = []
        for level, corr in enumerate(self.pyramid):
            xy = centre / 2 ** level + self.window
            # A one-pixel level (tiny inputs) is scaled by 1 instead of 0: its only pixel is at -1.
            size = torch.tensor([max(corr.shape[-1] - 1, 1), max(corr.shape[-2] - 1, 1)], device=xy.device,
                                dtype=xy.dtype)
            sampled = F.grid_sample(corr, 2 * xy / size - 1, align_corners=True)
            out.append(sampled.view(b, h, w, -1))
        return torch.cat(out, dim=-1).permute(0, 3, 1, 2)


class RAFT(nn.Module):
    """RAFT; ``small`` picks the small model. Parameter names follow the official checkpoints."""

    def __init__(self, small: bool = False) -> None:
        super().__init__()
        self.small = small
        self.hidden, self.context = (96, 64) if small else (128, 128)
        self.levels, self.radius = 4, (3 if small else 4)
        self.fnet = _Encoder(128 if small else 256, "instance", small)
        self.cnet = _Encoder(self.hidden + self.context, "none" if small else "batch", small)
        corr_channels = self.levels * (2 * self.radius + 1) ** 2
        self.update_block = _UpdateBlock(corr_channels, self.hidden, self.context, small)

    def forward(self, image1: torch.Tensor, image2: torch.Tensor, iters: int = 12) -> torch.Tensor:
        image1, image2 = 2 * (image1 / 255.0) - 1, 2 * (image2 / 255.0) - 1
        features = self.fnet(torch.cat([image1, image2], dim=0)).float()
        f1, f2 = features.chunk(2, dim=0)
        corr = _Correlation(f1, f2, self.levels, self.radius)
        h, context = torch.split(self.cnet(image1), [self.hidden, self.context], dim=1)
        h, context = torch.tanh(h), torch.relu(context)
        b, _, fh, fw = f1.shape
        ys, xs = torch.meshgrid(torch.arange(fh, device=f1.device), torch.arange(fw, device=f1.device), indexing="ij")
        coords0 = torch.stack([xs, ys]).float()[None].expand(b, -1, -1, -1)
        coords1 = coords0.clone()
        mask = None
        for _ in range(iters):
            h, mask, delta = self.update_block(h, context, corr(coords1), coords1 - coords0)
            coords1 = coords1 + delta
        return _upsample(coords1 - coords0, mask)


def _upsample(flow: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """x8 flow: a learned convex combination of each 3x3 neighbourhood (large), or bilinear (small)."""
    b, _, h, w = flow.shape
    if mask is None:
        return 8 * F.interpolate(flow, size=(8 * h, 8 * w), mode="bilinear", align_corners=True)
    weights = torch.softmax(mask.view(b, 1, 9, 8, 8, h, w), dim=2)
    patches = F.unfold(8 * flow, (3, 3), padding=1).view(b, 2, 9, 1, 1, h, w)
    up = (weights * patches).sum(dim=2)  # (b, 2, 8, 8, h, w)
    return up.permute(0, 1, 4, 2, 5, 3).reshape(b, 2, 8 * h, 8 * w)
