"""`vre stream [KEY=VALUE ...]`: run representations live on a camera, pipe, socket or file; nothing is stored."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from vrecore.cli._hydra import check_keys, resolve_config
from vrecore.cli._hydra import run_hydra as _run_hydra
from vrecore.cli._logging import cli_logging as _cli_logging
from vrecore.cli._messages import print_error
from vrecore.errors import VreError

__all__ = ["main", "run_stream_config"]


def main(args: list[str]) -> int:
    """`vre stream [KEY=VALUE ...]`."""
    from vrecore._malloc import tune_malloc_for_frames

    tune_malloc_for_frames()
    return _stream(args)


def run_stream_config(cfg: Any, outcome: dict[str, Any]) -> int:
    """The Hydra job of `vre stream`: one stream from a composed config (a stream reports no ``outcome``)."""
    return _run_stream_config(cfg)


def _stream(args: list[str]) -> int:
    if any(a in ("-m", "--multirun") for a in args):
        print("vre stream: error: -m (multirun) does not apply to a live stream; run one vre stream per source",
              file=sys.stderr)
        return 2

    return _run_hydra("stream", args)


def _say(message: str) -> None:
    print(f"vre stream: {message}", file=sys.stderr, flush=True)



def _output_specs(value: Any) -> list[str]:
    from vrecore.errors import ConfigError

    specs = value if isinstance(value, (list, tuple)) else [value]
    specs = [str(v).strip() for v in specs if v is not None and str(v).strip()]
    if not specs:
        raise ConfigError("no output given: output=- (raw rgb24 on stdout), output=web, output=tcp://HOST:PORT, "
                          "output=jsonl://HOST:PORT, or a list like output=[web,-]")
    if sum(s in ("-", "jsonl:-") for s in specs) > 1:
        raise ConfigError("only one output may write to stdout (- or jsonl:-); send the other to a port, "
                          "e.g. jsonl://127.0.0.1:7000")
    if len(set(specs)) != len(specs):
        raise ConfigError(f"output lists the same target twice: {specs}")
    return specs


def _describe_source(source: Any) -> str:
    from vrecore.streaming import CaptureDeviceSource, RawPipeSource, TcpSource, VideoFileSource

    size = source.frame_size
    fmt = f"raw rgb24 {size[0]}x{size[1]}" if size else "frames"
    if isinstance(source, RawPipeSource):
        return f"{fmt} from stdin"
    if isinstance(source, TcpSource):
        host, port = source.address
        if source._mode == "client":
            return f"{fmt} from tcp://{host}:{port} (client)"
        return f"waiting for {fmt} on tcp://{host}:{port}"
    if isinstance(source, VideoFileSource):
        how = "at its frame rate" if source.realtime else "as fast as it decodes"
        return f"video {source.path} {how}{', looping' if source.loop else ''}"
    if isinstance(source, CaptureDeviceSource):
        return f"camera {source.device}"
    return type(source).__name__


def _describe_target(target: Any, what: str) -> str:
    from vrecore.streaming import JsonLinesTarget, RawStdoutTarget, TcpTarget, WebViewerTarget

    if isinstance(target, RawStdoutTarget):
        return f"raw rgb24 ({what}) to stdout"
    if isinstance(target, TcpTarget):
        return f"raw rgb24 ({what}) on tcp://{target.address[0]}:{target.port}"
    if isinstance(target, WebViewerTarget):
        return f"web viewer on {target.url}"
    if isinstance(target, JsonLinesTarget):
        address = target.address
        return f"JSON lines on tcp://{address[0]}:{address[1]}" if address is not None else "JSON lines to stdout"
    return type(target).__name__


def _run_stream_config(cfg: Any) -> int:
    """Run one stream from a composed config; user mistakes become one line and exit code 2."""
    import signal

    from vrecore.errors import ConfigError
    from vrecore.graph.build import build_graph
    from vrecore.streaming import (
        GraphProcessor,
        RepresentationFailed,
        VideoFileSource,
        open_stream_source,
        open_stream_target,
        run_graph_stream,
    )

    try:
        config = resolve_config("stream", cfg)
    except VreError as e:
        print_error("stream", e)
        return e.exit_code
    undo_logging = _cli_logging("stream", verbose=bool(config.get("verbose")))
    try:
        check_keys("stream", config)
        metrics = config.get("metrics_csv")
        if metrics and not Path(str(metrics)).expanduser().parent.is_dir():
            raise ConfigError(f"metrics_csv={metrics}: the folder {Path(str(metrics)).expanduser().parent} does not "
                              f"exist; create it or choose another path")
    except VreError as e:
        undo_logging()
        print_error("stream", e)
        return e.exit_code

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old_term = signal.signal(signal.SIGTERM, on_term)  # `kill`/`timeout` stop as cleanly as Ctrl-C
    targets: list[Any] = []
    source = None
    try:
        spec = config.get("source")
        if spec is None or not str(spec).strip():
            raise ConfigError("no source given: source=- (raw rgb24 on stdin, with width= and height=), "
                              "source=tcp://127.0.0.1:5000, source=/dev/video0 or source=clip.mp4")
        specs = _output_specs(config.get("output"))
        graph = build_graph(config)
        processor = GraphProcessor(graph, str(config.get("device") or "cpu"),
                                   exception_mode=str(config.get("exception_mode") or "stop"))
        names = processor.output_names
        chosen = config.get("output_representation")
        mosaic = chosen == "mosaic"
        if chosen is None:
            chosen = names[-1]
        elif not mosaic and chosen not in (*names, "input"):
            raise ConfigError(f"output_representation={chosen} is not an exported representation; choose one of "
                              f"{', '.join(names)}, input or mosaic")
        if "-" in specs and sys.stdout.isatty():
            raise ConfigError("output=- writes raw rgb24 frames to stdout, which is a terminal: pipe it into a "
                              "player (| ffplay -f rawvideo -pixel_format rgb24 -video_size WxH -) or use output=web")
        width, height, max_frames = config.get("width"), config.get("height"), config.get("max_frames")
        if max_frames is not None and max_frames < 0:
            raise ConfigError(f"max_frames must be 0 or more, got {max_frames}")
        source = open_stream_source(str(spec), width=width, height=height, host=str(config.get("host")),
                                    realtime=bool(config.get("realtime", True)), fps=config.get("fps"),
                                    loop=bool(config.get("loop")))
        drop = config.get("drop_frames")
        if drop is None:
            drop = not (isinstance(source, VideoFileSource) and not source.realtime)
        has_rgb = any(n.type_name == "color/rgb" for n in processor.exported)
        for target_spec in specs:
            # The viewer shows the input frame unless the graph already shows it as an rgb representation.
            targets.append(open_stream_target(
                target_spec, representation=None if mosaic else chosen, mosaic=mosaic, host=str(config.get("host")),
                include_input=(not has_rgb) if target_spec.startswith("web") else None))
        source.open()  # now, so that a busy port or a missing camera is reported before anything runs
        _say(f"source: {_describe_source(source)}")
        _say(f"representations: {', '.join(n.name for n in processor.nodes)} on {processor.device}; "
             + ("newest frame each time, dropping what arrives meanwhile" if drop else "every frame (no drops)"))
        what = "mosaic" if mosaic else chosen
        for target in targets:
            _say(f"output: {_describe_target(target, what)}")
        summary = run_graph_stream(source, processor, targets, drop_frames=bool(drop),
                                   max_frames=max_frames, metrics_csv=config.get("metrics_csv"))
    except RepresentationFailed as e:
        _say(f"error: {e}")
        if config.get("verbose") and e.__cause__ is not None:
            import traceback

            print("".join(traceback.format_exception(e.__cause__)).rstrip(), file=sys.stderr)
        return e.exit_code
    except VreError as e:
        print_error("stream", e)
        return e.exit_code
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    finally:
        if source is not None:  # closing twice is harmless: the runner closed it unless we failed before
            source.close()
        for target in targets:
            try:
                target.close()
            except Exception:  # noqa: BLE001
                pass
        signal.signal(signal.SIGTERM, old_term)
        undo_logging()
    if summary.stop_reason == "target_closed":
        # The reader of stdout went away: keep Python's exit-time flush of stdout from complaining.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    headline, _, table = str(summary).partition("\n")
    _say(headline)
    print(table, file=sys.stderr)
    return 0

