"""PHG-MAE-Distil: the small Dronescapes semantic-segmentation network the seed calls "safeuav".

A plain-torch re-implementation of the seed's ``SafeUAV`` model
(meehai/video-representations-extractor, ``vre_repository/semantic_segmentation/safeuav/model.py``;
used by ``safeuav.py`` there and by the author's ``phg_mae_semantic_data_producer.py``). It is a
SafeUAV-style UNet: three stride-2 stages, a stack of six dilated 3x3 convolutions whose outputs
are summed, three transposed-convolution up-stages with skip connections, then a 1x1 head. Every
3x3 layer is Conv(+bias) -> BatchNorm2d -> ReLU (the seed adds a Dropout(0), a no-op without
parameters). The width is one number, ``num_filters`` (n below); the seed's four published
checkpoints are:

=======  ===============  ===========  ===============================================
size     seed variant     num_filters  parameters (11 in / 11 out channels)
=======  ===============  ===========  ===============================================
150k     ``model_150k``   6            158,639
430k     ``model_430k``   10           438,271
1.1M     ``model_1M``     16           1,118,539
4.4M     ``model_4M``     32           4,462,731
=======  ===============  ===========  ===============================================

(num_filters is not written in the seed's code, only in each checkpoint's
``hyper_parameters.cfg.model.parameters``; it is inferred from the variant names and checked
against the checkpoint sizes published with the seed: ``model_4M.ckpt`` is 17,928,904 bytes, which
is exactly a n=32 state dict; ``model_150k.ckpt`` is 2,088,378 bytes, a n=6 state dict plus Adam
moments.) `vre_semantic.testing.infer_phg_mae_config` reads n and the channel counts from any state dict.

Channels and the seed's pre/post-processing
-------------------------------------------
The network is a distilled PHG-MAE multi-task model: its input is the concatenation of all the
tasks it was trained on (``cfg.model.hparams.data_shape``) and so is its output. At inference the
seed builds a zero tensor with ``in_channels`` channels, writes the normalised RGB into the rgb
slot, runs the net and reads the 8 semantic logits from the ``semantic_output`` slot; the slot
offsets are the cumulative sum of the data_shape channel counts (dict order), indexed by
``cfg.data.parameters.task_names.index(name)`` (see `vre_semantic.testing.phg_mae_layout_from_seed_hparams`). The
author's producer documents the distilled checkpoints as ``[rgb (3), semantic (8)]``, i.e. 11
input channels, rgb at 0 and semantic at 3: those are this module's defaults. `PHGMAEDistil`
hides this: its ``forward`` takes RGB (B, 3, H, W) and returns logits (B, 8, H, W).

Preprocessing (seed): uint8 RGB frames (B, H, W, 3) -> (B, 3, H, W) float ->
``F.interpolate(size=train_hw)`` (mode "nearest") -> ``(x - mean) / std`` per channel, with mean
and std on the 0-255 scale from the checkpoint's ``hyper_parameters.statistics["rgb"][2]`` and
``[3]`` (statistics are [min, max, mean, std]). The seed's "testing" variant uses mean
(95.498, 103.013, 85.048), std (55.569, 58.133, 61.126): `SEED_RGB_MEAN` / `SEED_RGB_STD`.
No 0-1 scaling, no ImageNet statistics. Output: logits; the seed argmaxes them for the disk/image
form and resizes to the video size afterwards. The network itself is fully convolutional and
accepts any H, W (odd sizes included: each up-stage pads its output right/bottom to the skip's
size before concatenating, as the seed does).

State-dict names (identical to the seed's, so its checkpoints convert and load unchanged)
------------------------------------------------------------------------------------------
For every block B below, ``B.0`` is the convolution (``weight``, ``bias``) and ``B.1`` the
BatchNorm2d (``weight``, ``bias``, ``running_mean``, ``running_var``, ``num_batches_tracked``);
Conv2d weights are [out, in, 3, 3], ConvTranspose2d weights are [in, out, 3, 3]::

    encoder.conv1     Conv C_in -> n            encoder.dilate1   Conv 4n -> 8n
    encoder.conv2     Conv n  -> n              encoder.dilate2   Conv 8n -> 8n, dilation 2
    encoder.conv3     Conv n  -> n, stride 2    encoder.dilate3   Conv 8n -> 8n, dilation 4
    encoder.conv4     Conv n  -> 2n             encoder.dilate4   Conv 8n -> 8n, dilation 8
    encoder.conv5     Conv 2n -> 2n             encoder.dilate5   Conv 8n -> 8n, dilation 16
    encoder.conv6     Conv 2n -> 2n, stride 2   encoder.dilate6   Conv 8n -> 8n, dilation 32
    encoder.conv7     Conv 2n -> 4n             encoder.conv10_t  ConvT 8n -> 4n, stride 2
    encoder.conv8     Conv 4n -> 4n             encoder.conv11    Conv 8n -> 4n  (cat[up, conv7 out])
    encoder.conv9     Conv 4n -> 4n, stride 2   encoder.conv12_t  ConvT 4n -> 2n, stride 2
                                                encoder.conv13    Conv 4n -> n   (cat[up, conv4 out])
                                                encoder.conv14_t  ConvT n -> n, stride 2
                                                encoder.conv15    Conv 2n -> n   (cat[up, conv1 out])
    decoder.weight [C_out, n, 1, 1], decoder.bias [C_out]   (1x1 Conv2d head)

The dilated sum is dilate1 + ... + dilate6 (each applied to the previous one's output). The seed's
``.ckpt`` files are PyTorch-Lightning checkpoints whose ``state_dict`` already uses these names;
the variants (`vre_semantic.variants`) convert them with ``vre convert-weights model_4M.ckpt
phg-mae-distil-4.4M.safetensors --variant phg-mae-distil-4.4M`` and keep their ``hyper_parameters``
(layout, mean/std) in the WeightVariant's ``meta``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# Class names and the seed's RGB statistics are plain data shared with the torch-free modules.
from vre_semantic.labels import DRONESCAPES_CLASSES
from vre_semantic.variants import SEED_RGB_MEAN, SEED_RGB_STD

__all__ = [
    "DEFAULT_IN_CHANNELS",
    "DEFAULT_OUT_CHANNELS",
    "DEFAULT_RGB_OFFSET",
    "DEFAULT_SEMANTIC_OFFSET",
    "PHGMAEDistil",
    "preprocess_rgb",
]

DEFAULT_IN_CHANNELS = 3 + len(DRONESCAPES_CLASSES)
DEFAULT_OUT_CHANNELS = 3 + len(DRONESCAPES_CLASSES)
DEFAULT_RGB_OFFSET = 0
DEFAULT_SEMANTIC_OFFSET = 3

# (name, kind, in_mult, out_mult, stride, dilation); in_mult None = the network's input channels.
_ENCODER_SPEC: tuple[tuple[str, str, int | None, int, int, int], ...] = (
    ("conv1", "conv", None, 1, 1, 1),
    ("conv2", "conv", 1, 1, 1, 1),
    ("conv3", "conv", 1, 1, 2, 1),
    ("conv4", "conv", 1, 2, 1, 1),
    ("conv5", "conv", 2, 2, 1, 1),
    ("conv6", "conv", 2, 2, 2, 1),
    ("conv7", "conv", 2, 4, 1, 1),
    ("conv8", "conv", 4, 4, 1, 1),
    ("conv9", "conv", 4, 4, 2, 1),
    ("dilate1", "conv", 4, 8, 1, 1),
    ("dilate2", "conv", 8, 8, 1, 2),
    ("dilate3", "conv", 8, 8, 1, 4),
    ("dilate4", "conv", 8, 8, 1, 8),
    ("dilate5", "conv", 8, 8, 1, 16),
    ("dilate6", "conv", 8, 8, 1, 32),
    ("conv10_t", "up", 8, 4, 2, 1),
    ("conv11", "conv", 8, 4, 1, 1),
    ("conv12_t", "up", 4, 2, 2, 1),
    ("conv13", "conv", 4, 1, 1, 1),
    ("conv14_t", "up", 1, 1, 2, 1),
    ("conv15", "conv", 2, 1, 1, 1),
)


class _ConvBNReLU(nn.Sequential):
    """3x3 Conv2d (padding = dilation, keeps H, W at stride 1) -> BatchNorm2d -> ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, dilation: int = 1):
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=dilation, dilation=dilation),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
        )


class _UpBNReLU(nn.Sequential):
    """3x3 ConvTranspose2d, stride 2, padding 1 (H -> 2H - 1) -> BatchNorm2d -> ReLU."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(
            nn.ConvTranspose2d(c_in, c_out, kernel_size=3, stride=2, padding=1),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
        )


def _pad_cat(up: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """Zero-pad ``up`` at the bottom/right to ``skip``'s H, W, then concatenate [up, skip] on C."""
    dh, dw = skip.shape[-2] - up.shape[-2], skip.shape[-1] - up.shape[-1]
    if dh or dw:
        up = F.pad(up, (0, dw, 0, dh))
    return torch.cat((up, skip), dim=1)


class PHGMAEEncoder(nn.Module):
    """The UNet body (everything but the 1x1 head); outputs ``num_filters`` channels at full size."""

    def __init__(self, in_channels: int, num_filters: int):
        super().__init__()
        self.d_in = in_channels
        self.n_filters = num_filters
        for name, kind, in_mult, out_mult, stride, dilation in _ENCODER_SPEC:
            c_in = in_channels if in_mult is None else in_mult * num_filters
            c_out = out_mult * num_filters
            block = _UpBNReLU(c_in, c_out) if kind == "up" else _ConvBNReLU(c_in, c_out, stride, dilation)
            self.add_module(name, block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip1 = self.conv1(x)
        y = self.conv3(self.conv2(skip1))
        skip2 = self.conv4(y)
        y = self.conv6(self.conv5(skip2))
        skip3 = self.conv7(y)
        y = self.conv9(self.conv8(skip3))

        d = self.dilate1(y)
        acc = d
        for block in (self.dilate2, self.dilate3, self.dilate4, self.dilate5, self.dilate6):
            d = block(d)
            acc = acc + d

        y = self.conv11(_pad_cat(self.conv10_t(acc), skip3))
        y = self.conv13(_pad_cat(self.conv12_t(y), skip2))
        return self.conv15(_pad_cat(self.conv14_t(y), skip1))


class PHGMAEDistil(nn.Module):
    """PHG-MAE-Distil: normalised RGB (B, 3, H, W) -> Dronescapes logits (B, 8, H, W).

    ``encoder`` / ``decoder`` hold all parameters (the seed's names). The channel layout
    (``in_channels``, ``out_channels``, ``rgb_offset``, ``semantic_offset``) is plain attributes,
    not part of the state dict. `forward_all` runs the raw multi-task network.
    """

    def __init__(
        self,
        num_filters: int,
        *,
        in_channels: int = DEFAULT_IN_CHANNELS,
        out_channels: int = DEFAULT_OUT_CHANNELS,
        rgb_offset: int = DEFAULT_RGB_OFFSET,
        semantic_offset: int = DEFAULT_SEMANTIC_OFFSET,
        num_classes: int = len(DRONESCAPES_CLASSES),
    ):
        super().__init__()
        if num_filters < 1:
            raise ValueError(f"num_filters must be >= 1, got {num_filters}")
        if not 0 <= rgb_offset <= in_channels - 3:
            raise ValueError(f"rgb slot [{rgb_offset}, {rgb_offset + 3}) does not fit in {in_channels} input channels")
        if not 0 <= semantic_offset <= out_channels - num_classes:
            raise ValueError(
                f"semantic slot [{semantic_offset}, {semantic_offset + num_classes}) does not fit in "
                f"{out_channels} output channels"
            )
        self.num_filters = num_filters
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.rgb_offset = rgb_offset
        self.semantic_offset = semantic_offset
        self.num_classes = num_classes
        self.encoder = PHGMAEEncoder(in_channels, num_filters)
        self.decoder = nn.Conv2d(num_filters, out_channels, kernel_size=1)

    def forward_all(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> (B, out_channels, H, W): the seed's ``SafeUAV.forward``."""
        return self.decoder(self.encoder(x))

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        """Normalised RGB (B, 3, H, W) (see `preprocess_rgb`) -> semantic logits (B, num_classes, H, W)."""
        if rgb.ndim != 4 or rgb.shape[1] != 3:
            raise ValueError(f"expected RGB of shape (B, 3, H, W), got {tuple(rgb.shape)}")
        if self.in_channels == 3 and self.rgb_offset == 0:
            x = rgb
        else:  # the other tasks' input slots are zero, as in the seed
            x = rgb.new_zeros((rgb.shape[0], self.in_channels, rgb.shape[2], rgb.shape[3]))
            x[:, self.rgb_offset:self.rgb_offset + 3] = rgb
        y = self.forward_all(x)
        return y[:, self.semantic_offset:self.semantic_offset + self.num_classes]


def preprocess_rgb(
    frames: Any,
    *,
    mean: Sequence[float] = SEED_RGB_MEAN,
    std: Sequence[float] = SEED_RGB_STD,
    size: tuple[int, int] | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """uint8 RGB frames (B, H, W, 3) (numpy or torch) -> normalised float (B, 3, h, w), as the seed does.

    ``size`` (h, w) resizes with nearest interpolation first (the seed resizes to the training size);
    then ``(x - mean) / std`` on the 0-255 scale.
    """
    x = torch.as_tensor(frames, device=device)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected frames of shape (B, H, W, 3), got {tuple(x.shape)}")
    x = x.permute(0, 3, 1, 2).to(torch.float32)
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=tuple(size), mode="nearest")
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).reshape(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=x.device).reshape(1, 3, 1, 1)
    return (x - m) / s
