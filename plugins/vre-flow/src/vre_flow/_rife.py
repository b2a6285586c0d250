"""RIFE HDv2's flow network (IFNet; Huang et al., ECCV 2022) in plain torch, named as its ``flownet`` checkpoint.

IFNet estimates, coarse to fine in four blocks, the flows from the middle instant of two frames to each of them
(4 channels: middle -> frame 0, middle -> frame 1), at half the input's resolution in half-resolution pixels.
The seed tool keeps the middle -> frame 1 part doubled: under constant motion, the flow from frame 0 to frame 1.
Input: the two RGB frames in [0, 1], concatenated (B, 6, H, W), H and W multiples of 32 (64 with ``uhd``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["IFNet", "backward_warp"]


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.PReLU(cout))


def backward_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``image`` sampled at p + flow(p) (bilinear, zeros outside), flow in pixels of ``image``."""
    b, _, h, w = flow.shape
    ys = torch.linspace(-1.0, 1.0, h, device=flow.device, dtype=flow.dtype)
    xs = torch.linspace(-1.0, 1.0, w, device=flow.device, dtype=flow.dtype)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    # Pixels to the [-1, 1] range of grid_sample with align_corners=True.
    gx = grid_x + flow[:, 0] / ((image.shape[3] - 1.0) / 2.0)
    gy = grid_y + flow[:, 1] / ((image.shape[2] - 1.0) / 2.0)
    grid = torch.stack([gx, gy], dim=-1).clamp(-1, 1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


class _Block(nn.Module):
    """Works at 1/``scale`` of its input: two stride-2 convolutions, six more, and a x2 transposed convolution."""

    def __init__(self, cin: int, scale: int, c: int) -> None:
        super().__init__()
        self.scale = scale
        self.conv0 = nn.Sequential(_conv(cin, c, 2), _conv(c, 2 * c, 2))
        self.convblock = nn.Sequential(*(_conv(2 * c, 2 * c) for _ in range(6)))
        self.conv1 = nn.ConvTranspose2d(2 * c, 4, 4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale != 1:
            x = F.interpolate(x, scale_factor=1.0 / self.scale, mode="bilinear", align_corners=False)
        flow = self.conv1(self.convblock(self.conv0(x)))
        if self.scale != 1:  # back to half the input's size; the values are already half-resolution pixels
            flow = F.interpolate(flow, scale_factor=float(self.scale), mode="bilinear", align_corners=False)
        return flow


class IFNet(nn.Module):
    """The four blocks of RIFE HDv2 (scales 8, 4, 2, 1), each refining the sum of the flows before it."""

    def __init__(self) -> None:
        super().__init__()
        self.block0 = _Block(6, 8, 192)
        self.block1 = _Block(10, 4, 128)
        self.block2 = _Block(10, 2, 96)
        self.block3 = _Block(10, 1, 48)

    def forward(self, frames: torch.Tensor, uhd: bool = False) -> torch.Tensor:
        """(B, 4, H/2, W/2) flows middle -> frame 0 and middle -> frame 1 (H/4, W/4 with ``uhd``)."""
        if uhd:
            frames = F.interpolate(frames, scale_factor=0.5, mode="bilinear", align_corners=False)
        flow = self.block0(frames)
        for block in (self.block1, self.block2, self.block3):
            full = F.interpolate(flow, scale_factor=2.0, mode="bilinear", align_corners=False) * 2.0
            warped0 = backward_warp(frames[:, :3], full[:, :2])
            warped1 = backward_warp(frames[:, 3:], full[:, 2:4])
            flow = flow + block(torch.cat([warped0, warped1, full], dim=1))
        return flow
