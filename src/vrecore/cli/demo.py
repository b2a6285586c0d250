"""`vre demo [KEY=VALUE ...]`: export the demo footage with every installed expert, then its collages, preview video
and report."""
from __future__ import annotations

import sys

from vrecore.cli._visual_args import printer
from vrecore.cli.export import main as export_main

__all__ = ["demo_presets", "main"]


def main(args: list[str]) -> int:
    """Export the demo footage with every installed plugin's ``*_demo`` pipeline preset, then write its collages,
    preview video and report and say where they are."""
    from vrecore.frames.sample import DEMO_CLIP_CREDIT, demo_clip

    presets = ["rgb_hsv", *demo_presets()]
    given = {a.partition("=")[0].lstrip("+~") for a in args if "=" in a}
    output_dir = next((a.partition("=")[2] for a in args if a.startswith("output_dir=")), "vre_demo")
    defaults = [f"{key}={value}" for key, value in (("video", demo_clip()), ("output_dir", output_dir),
                                                      ("image_format", "jpg")) if key not in given]
    footage = "the demo footage" if "video" in given else f"the demo footage ({DEMO_CLIP_CREDIT})"
    print(f"vre demo: pipelines {', '.join(presets)} on {footage} -> {output_dir}", file=sys.stderr)
    code = export_main([f"pipeline=[{','.join(presets)}]", *defaults, *args])
    if code != 0:
        return code
    from vrecore.visual.showcase import write_pictures

    pictures = write_pictures(output_dir, warn=printer("demo"))
    collages, video = pictures.collages, pictures.video
    paths = collages.paths()
    print(f"vre demo: collages      {paths[0]} .. {paths[-1].name} ({len(paths)} frames, "
          f"{collages.layout.rows}x{collages.layout.cols} tiles)", file=sys.stderr)
    print(f"vre demo: preview video {video.path} ({video.frames} frames, {float(video.fps):.3g} frames/s)",
          file=sys.stderr)
    print(f"vre demo: report        {pictures.report} (open it in a browser)", file=sys.stderr)
    return 0


def demo_presets() -> list[str]:
    """Names of the ``pipeline/*_demo.yaml`` presets that installed plugins ship."""
    from importlib import resources

    from vrecore.graph.registry import CORE_DISTRIBUTION, get_registry

    names: list[str] = []
    for provider, path in get_registry().config_paths:
        if provider == CORE_DISTRIBUTION or not path.startswith("pkg://"):
            continue
        try:
            folder = resources.files(path[len("pkg://"):]).joinpath("pipeline")
            names.extend(sorted(f.name[:-5] for f in folder.iterdir() if f.name.endswith("_demo.yaml")))
        except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):
            continue
    return names

