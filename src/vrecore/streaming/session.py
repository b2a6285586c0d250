"""`vre stream` set up from its config keys: source, graph processor and targets, run and reported."""
from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vrecore.errors import ConfigError, VreError
from vrecore.graph.build import build_graph
from vrecore.graph.executor import RepresentationFailed

from .graph import run_graph_stream
from .processor import GraphProcessor
from .result import GraphStreamSummary
from .sources import CaptureDeviceSource, RawPipeSource, StreamSource, TcpSource, VideoFileSource, open_stream_source
from .targets import JsonLinesTarget, RawStdoutTarget, StreamTarget, TcpTarget, WebViewerTarget, open_stream_target

__all__ = ["StreamSession", "describe_source", "describe_target", "open_stream_session", "output_specs",
           "run_stream_command"]


def output_specs(value: Any) -> list[str]:
    """The ``output`` key as a list of target specs; a missing, clashing or repeated one is an error."""
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


def describe_source(source: StreamSource) -> str:
    """One line saying where the frames come from."""
    size = source.frame_size
    fmt = f"raw rgb24 {size[0]}x{size[1]}" if size else "frames"
    if isinstance(source, RawPipeSource):
        return f"{fmt} from stdin"
    if isinstance(source, TcpSource):
        host, port = source.address
        if source.mode == "client":
            return f"{fmt} from tcp://{host}:{port} (client)"
        return f"waiting for {fmt} on tcp://{host}:{port}"
    if isinstance(source, VideoFileSource):
        how = "at its frame rate" if source.realtime else "as fast as it decodes"
        return f"video {source.path} {how}{', looping' if source.loop else ''}"
    if isinstance(source, CaptureDeviceSource):
        return f"camera {source.device}"
    return type(source).__name__


def describe_target(target: StreamTarget, what: str) -> str:
    """One line saying where the results go; ``what`` names what raw outputs write."""
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


class StreamSession:
    """A stream ready to run: its source (open), graph processor and targets; `run` once, then it is closed."""

    def __init__(self, source: StreamSource, processor: GraphProcessor, targets: list[StreamTarget], *,
                 drop_frames: bool, max_frames: int | None, metrics_csv: str | None, what: str) -> None:
        self.source, self.processor, self.targets = source, processor, targets
        self.drop_frames, self.max_frames, self.metrics_csv = drop_frames, max_frames, metrics_csv
        self.what = what
        """What raw outputs write: a representation, input or mosaic."""

    def describe(self) -> list[str]:
        """Lines saying what runs: the source, the representations and each output."""
        how = ("newest frame each time, dropping what arrives meanwhile" if self.drop_frames
               else "every frame (no drops)")
        return [f"source: {describe_source(self.source)}",
                f"representations: {', '.join(n.name for n in self.processor.nodes)} on {self.processor.device}; "
                + how,
                *(f"output: {describe_target(t, self.what)}" for t in self.targets)]

    def run(self) -> GraphStreamSummary:
        """Stream until the source ends, ``max_frames``, Ctrl-C or a target's reader leaves; closes everything."""
        return run_graph_stream(self.source, self.processor, self.targets, drop_frames=self.drop_frames,
                                max_frames=self.max_frames, metrics_csv=self.metrics_csv)

    def close(self) -> None:
        """Close the source and the targets (idempotent; `run` does it too)."""
        self.source.close()
        for target in self.targets:
            try:
                target.close()
            except Exception:  # noqa: BLE001 - one failing close must not hide the others
                pass


def open_stream_session(config: Mapping[str, Any]) -> StreamSession:
    """Build and open what the ``vre stream`` keys ask for (source, width, height, realtime, loop, fps, output,
    output_representation, drop_frames, max_frames, metrics_csv, device, exception_mode, host and the graph's keys).

    The source is opened here, so that a busy port or a missing camera is reported before anything runs.
    """
    metrics = config.get("metrics_csv")
    if metrics and not Path(str(metrics)).expanduser().parent.is_dir():
        raise ConfigError(f"metrics_csv={metrics}: the folder {Path(str(metrics)).expanduser().parent} does not "
                          f"exist; create it or choose another path")
    spec = config.get("source")
    if spec is None or not str(spec).strip():
        raise ConfigError("no source given: source=- (raw rgb24 on stdin, with width= and height=), "
                          "source=tcp://127.0.0.1:5000, source=/dev/video0 or source=clip.mp4")
    specs = output_specs(config.get("output"))
    processor = GraphProcessor(build_graph(dict(config)), str(config.get("device") or "cpu"),
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
    max_frames = config.get("max_frames")
    if max_frames is not None and max_frames < 0:
        raise ConfigError(f"max_frames must be 0 or more, got {max_frames}")
    host = str(config.get("host") or "127.0.0.1")
    source = open_stream_source(str(spec), width=config.get("width"), height=config.get("height"), host=host,
                                realtime=bool(config.get("realtime", True)), fps=config.get("fps"),
                                loop=bool(config.get("loop")))
    drop = config.get("drop_frames")
    if drop is None:
        drop = not (isinstance(source, VideoFileSource) and not source.realtime)
    has_rgb = any(n.type_name == "color/rgb" for n in processor.exported)
    session = StreamSession(source, processor, [], drop_frames=bool(drop), max_frames=max_frames,
                            metrics_csv=str(metrics) if metrics else None, what="mosaic" if mosaic else str(chosen))
    try:
        for target_spec in specs:
            # The viewer shows the input frame unless the graph already shows it as an rgb representation.
            session.targets.append(open_stream_target(
                target_spec, representation=None if mosaic else str(chosen), mosaic=mosaic, host=host,
                include_input=(not has_rgb) if target_spec.startswith("web") else None))
        source.open()
    except BaseException:
        session.close()
        raise
    return session


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """`kill`/`timeout` stop a stream as cleanly as Ctrl-C (main thread only: where Python handles signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _say(message: str) -> None:
    print(f"vre stream: {message}", file=sys.stderr, flush=True)


def run_stream_command(config: Mapping[str, Any], *, say: Callable[[str], None] = _say) -> int:
    """`vre stream`: set up, run and report one stream; returns the exit code (user mistakes: one line, 2)."""
    session = None
    try:
        with _sigterm_as_interrupt():
            try:
                session = open_stream_session(config)
                for line in session.describe():
                    say(line)
                summary = session.run()
            finally:
                if session is not None:  # closing twice is harmless: the loop closed them unless set-up failed
                    session.close()
    except RepresentationFailed as e:
        say(f"error: {e}")
        if config.get("verbose") and e.__cause__ is not None:
            import traceback

            print("".join(traceback.format_exception(e.__cause__)).rstrip(), file=sys.stderr)
        return e.exit_code
    except VreError as e:
        for line in str(e).splitlines() or [""]:
            say(f"error: {line}")
        return e.exit_code
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    if summary.stop_reason == "target_closed":
        # The reader of stdout went away: keep Python's exit-time flush of stdout from complaining.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    headline, _, table = str(summary).partition("\n")
    say(headline)
    print(table, file=sys.stderr)
    return 0
