"""Footage that needs no download: a synthetic aerial fly-over generated locally, and the demo's real clip."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vrecore._cache import cache_dir

__all__ = ["DEMO_CLIP_CREDIT", "cache_dir", "demo_clip", "make_sample_clip", "sample_clip"]

SAMPLE_VERSION = 1
DEMO_CLIP = "big_buck_bunny_640x360.mp4"
DEMO_CLIP_CREDIT = "Big Buck Bunny, (c) 2008 Blender Foundation, www.bigbuckbunny.org, CC BY 3.0 (44 frames, 640x360)"


def _landscape(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A top-down map: fields, a forest, a river, roads and houses (uint8 RGB)."""
    import cv2

    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    noise = cv2.GaussianBlur(rng.random((height, width), dtype=np.float32), (0, 0), 25)
    noise = (noise - noise.min()) / (np.ptp(noise) + 1e-6)
    img = np.empty((height, width, 3), np.float32)
    img[:] = (96, 140, 62)  # grass
    fields = (np.sin(x / 37.0) > 0.2) & (noise < 0.45)
    img[fields] = (170, 160, 90)
    forest = noise > 0.62
    img[forest] = (34, 80, 38)
    river = np.abs(y - (0.55 * height + 40 * np.sin(x / 90.0))) < 14
    img[river] = (52, 96, 150)
    for road_x in range(90, width, 260):
        img[:, road_x:road_x + 10] = (90, 90, 92)
    img[int(0.3 * height):int(0.3 * height) + 10, :] = (90, 90, 92)
    for _ in range(width // 40):
        cx, cy = int(rng.integers(20, width - 40)), int(rng.integers(20, height - 40))
        if river[cy, cx] or forest[cy, cx]:
            continue
        w, h = int(rng.integers(14, 30)), int(rng.integers(14, 30))
        color = (150 + int(rng.integers(0, 60)), 70 + int(rng.integers(0, 40)), 60)
        cv2.rectangle(img, (cx, cy), (cx + w, cy + h), color, -1)
    texture = rng.normal(0, 6, (height, width, 1)).astype(np.float32)
    return np.clip(img * (0.85 + 0.3 * noise[..., None]) + texture, 0, 255).astype(np.uint8)


def make_sample_clip(path: str | os.PathLike[str], *, width: int = 640, height: int = 360, frames: int = 60,
                     fps: int = 25, seed: int = 0) -> Path:
    """Write a deterministic H.264 clip (with B-frames) of a camera flying over a landscape."""
    import av
    import cv2

    rng = np.random.default_rng(seed)
    world = _landscape(height * 3, width * 3, rng)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "20", "preset": "veryfast", "bf": "2", "g": "30"}
        sky_rows = height // 4
        for i in range(frames):
            t = i / max(frames - 1, 1)
            # The camera flies forward and yaws a little: a perspective view of the ground plane.
            cx, cy = width * (1.0 + 0.8 * t), height * (1.6 - 0.6 * t)
            angle = np.deg2rad(10 * np.sin(2 * np.pi * t))
            ground_w, ground_h = width * 0.9, height * 0.9
            corners = np.array([[-ground_w * 0.35, -ground_h / 2], [ground_w * 0.35, -ground_h / 2],
                                [ground_w, ground_h / 2], [-ground_w, ground_h / 2]], np.float32)
            rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
            src = corners @ rot.T + np.array([cx, cy], np.float32)
            dst = np.array([[0, sky_rows], [width, sky_rows], [width, height], [0, height]], np.float32)
            frame: np.ndarray = cv2.warpPerspective(world, cv2.getPerspectiveTransform(src, dst), (width, height),
                                        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            sky = np.linspace([120, 170, 235], [200, 220, 240], sky_rows).astype(np.uint8)
            frame[:sky_rows] = sky[:, None, :]
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame.astype(np.uint8, copy=False), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)
    return path


def sample_clip() -> Path:
    """The sample clip, generated once into the vre cache folder (``VRE_CACHE`` overrides it)."""
    path = cache_dir() / f"sample_v{SAMPLE_VERSION}.mp4"
    if not path.exists():
        make_sample_clip(path)
    return path


def demo_clip() -> Path:
    """The footage of `vre demo`, shipped inside vrecore: 44 frames of Big Buck Bunny (credit: `DEMO_CLIP_CREDIT`;
    where it comes from and how it was cut: ``vrecore/data/README.md``)."""
    from importlib import resources

    resource = resources.files("vrecore.frames").joinpath("footage", DEMO_CLIP)
    path = Path(str(resource))
    if path.is_file():
        return path
    copy = cache_dir() / DEMO_CLIP  # vrecore imported from a zip: give decoders a real file
    if not copy.exists():
        copy.parent.mkdir(parents=True, exist_ok=True)
        tmp = copy.with_name(f"{copy.name}.tmp-{os.getpid()}")
        tmp.write_bytes(resource.read_bytes())
        os.replace(tmp, copy)
    return copy
