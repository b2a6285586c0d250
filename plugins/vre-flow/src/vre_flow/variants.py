"""Weight variants of RAFT and RIFE, as data (`vrecore.weights.variants`).

No safetensors copy of these weights is published: each variant is ``convert-locally`` from the
original checkpoint (its URL and file name in `ConvertRecipe`): ``vre convert-weights CHECKPOINT
OUT --variant NAME`` converts it (safely: weights only) and ``vre weights import NAME OUT`` places it
in vre's cache, where setup finds it; a ``weights_path`` parameter points anywhere else. Nothing here
imports torch.
"""
from __future__ import annotations

from vrecore.plugin import ConvertRecipe, WeightVariant

__all__ = ["RAFT_VARIANTS", "RIFE_VARIANTS"]

# The seed tool (VRE 1.18.6) downloads its checkpoints from this folder; its RAFT file is the official
# raft-things.pth renamed, and its RIFE flownet.ckpt the flownet of RIFE's HDv2 release.
_SEED = "https://gitlab.com/video-representations-extractor/video-representations-extractor/-/raw/master/vre_repository/"
# The official download of princeton-vl/RAFT (its README's download_models.sh): a zip holding the four .pth files.
_RAFT_ZIP = "https://www.dropbox.com/s/4j4z58wuv8o0mfz/models.zip"
_RAFT_PAPER = "Teed & Deng, RAFT: Recurrent All-Pairs Field Transforms for Optical Flow, ECCV 2020"


def _raft(name: str, checkpoint: str, url: str, small: bool, trained_on: str) -> WeightVariant:
    # The official files are DataParallel state dicts ("module." keys), which conversion strips.
    return WeightVariant(
        name=f"raft-{name}", filenames=(f"raft-{name}.safetensors",), license="BSD-3-Clause",
        num_params=990_162 if small else 5_257_536, size=4_000_000 if small else 21_100_000,
        convert=ConvertRecipe(url=url, checkpoint=checkpoint),
        meta={"small": small, "trained_on": trained_on, "paper": _RAFT_PAPER,
              "official": f"{_RAFT_ZIP} ({checkpoint.replace('.ckpt', '.pth')} inside the zip)"})


RAFT_VARIANTS: dict[str, WeightVariant] = {
    "things": _raft("things", "raft-things.ckpt", _SEED + "optical_flow/raft/weights/raft-things.ckpt", False,
                    "FlyingChairs + FlyingThings3D"),
    "sintel": _raft("sintel", "raft-sintel.pth", _RAFT_ZIP, False,
                    "Chairs + Things, fine-tuned on Sintel + KITTI + HD1K"),
    "kitti": _raft("kitti", "raft-kitti.pth", _RAFT_ZIP, False, "Chairs + Things + Sintel, fine-tuned on KITTI"),
    "small": _raft("small", "raft-small.pth", _RAFT_ZIP, True, "FlyingChairs + FlyingThings3D"),
}

RIFE_VARIANTS: dict[str, WeightVariant] = {
    "hdv2": WeightVariant(
        name="rife-hdv2", filenames=("rife-hdv2.safetensors",), license="MIT", num_params=15_263_888,
        size=61_100_000,
        convert=ConvertRecipe(url=_SEED + "optical_flow/rife/weights/flownet.ckpt", checkpoint="flownet.ckpt"),
        meta={"paper": "Huang et al., Real-Time Intermediate Flow Estimation for Video Frame Interpolation, ECCV 2022",
              "official": "the flownet weights of RIFE_trained_model_HDv2.zip, linked from the README of "
                          "github.com/hzwer/arXiv2020-RIFE"}),
}
