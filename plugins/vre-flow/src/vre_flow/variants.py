"""Weight variants of RAFT and RIFE as data, and where vre finds their converted safetensors.

No safetensors copy of these weights is published: each variant says where the original checkpoint is
(``meta["source"]``; the seed tool's copy in ``meta["seed_copy"]``) and the `vre convert-weights` command that
converts it once (``meta["convert"]``) into the vre weights cache, where setup finds it without a path; a
``weights_path`` parameter points anywhere else. Nothing here imports torch.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vrecore.errors import WeightsError
from vrecore.weights import WeightVariant, fetch, sha256_file

__all__ = ["RAFT_VARIANTS", "RIFE_VARIANTS", "cache_dir", "resolve", "weights_identity"]

_SEED = "https://gitlab.com/video-representations-extractor/video-representations-extractor/-/raw/master/vre_repository/"
_RAFT_ZIP = "https://www.dropbox.com/s/4j4z58wuv8o0mfz/models.zip"  # the official download (princeton-vl/RAFT)
_RAFT_META = {"status": "convert-locally", "paper": "Teed & Deng, RAFT: Recurrent All-Pairs Field Transforms "
                                                    "for Optical Flow, ECCV 2020"}


def _raft(name: str, file: str, small: bool, trained_on: str, seed_copy: str | None = None) -> WeightVariant:
    target = f"raft-{name}.safetensors"
    meta: dict[str, Any] = {**_RAFT_META, "small": small, "trained_on": trained_on,
                            "source": f"{_RAFT_ZIP} ({file} inside the zip)",
                            "convert": f"vre convert-weights {file} $VRE_CACHE/weights/flow/{target}"}
    if seed_copy is not None:
        meta["seed_copy"] = seed_copy
    return WeightVariant(name=f"raft-{name}", filenames=(target,), license="BSD-3-Clause",
                         num_params=990_162 if small else 5_257_536, meta=meta)


RAFT_VARIANTS: dict[str, WeightVariant] = {
    # raft-things is the seed tool's RAFT (its raft-things.ckpt is the official file renamed).
    "things": _raft("things", "raft-things.pth", False, "FlyingChairs + FlyingThings3D",
                    seed_copy=_SEED + "optical_flow/raft/weights/raft-things.ckpt"),
    "sintel": _raft("sintel", "raft-sintel.pth", False, "Chairs + Things, fine-tuned on Sintel + KITTI + HD1K"),
    "kitti": _raft("kitti", "raft-kitti.pth", False, "Chairs + Things + Sintel, fine-tuned on KITTI"),
    "small": _raft("small", "raft-small.pth", True, "FlyingChairs + FlyingThings3D"),
}

RIFE_VARIANTS: dict[str, WeightVariant] = {
    "hdv2": WeightVariant(
        name="rife-hdv2", filenames=("rife-hdv2-flownet.safetensors",), license="MIT", num_params=15_263_888,
        meta={"status": "convert-locally",
              "paper": "Huang et al., Real-Time Intermediate Flow Estimation for Video Frame Interpolation, ECCV 2022",
              "source": "the flownet weights of RIFE_trained_model_HDv2.zip, linked from the README of "
                        "github.com/hzwer/arXiv2020-RIFE; the seed tool's copy: "
                        + _SEED + "optical_flow/rife/weights/flownet.ckpt",
              "convert": "vre convert-weights flownet.ckpt $VRE_CACHE/weights/flow/rife-hdv2-flownet.safetensors"}),
}


def cache_dir() -> Path:
    """Where converted flow weights are looked for: ``<vre cache>/weights/flow`` (see `vrecore.sample.cache_dir`)."""
    from vrecore.sample import cache_dir as vre_cache_dir

    return vre_cache_dir() / "weights" / "flow"


def resolve(variant: WeightVariant, weights_path: str | None) -> Path:
    """The safetensors file of ``variant``: ``weights_path`` when given, else the converted file in `cache_dir`;
    a `WeightsError` in one line saying how to get it otherwise."""
    if weights_path is not None:
        return fetch(variant, local_path=weights_path)
    cached = cache_dir() / variant.filenames[0]
    if cached.is_file():
        return fetch(variant, local_path=cached)
    convert = variant.meta["convert"].replace("$VRE_CACHE/weights/flow", str(cache_dir()))
    raise WeightsError(f"weights {variant.name!r} are not published as safetensors and {cached} does not exist; "
                       f"download the original checkpoint ({variant.meta['source']}), convert it once with "
                       f"`{convert}` (or set weights_path= to a converted file)")


def weights_identity(variant: WeightVariant, weights_path: str | None) -> dict[str, Any]:
    """Variant name, file and sha256 of the weights a representation computes with (for the export's fingerprint);
    file and sha256 are None when the weights are not there (`resolve` says why when they are needed)."""
    try:
        path = resolve(variant, weights_path)
    except WeightsError:
        return {"variant": variant.name, "file": None, "sha256": None}
    return {"variant": variant.name, "file": os.fspath(path), "sha256": sha256_file(path)}
