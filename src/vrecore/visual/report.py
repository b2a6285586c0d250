"""The run report: one self-contained HTML page about an export, regenerated from its metadata and files.

The page has the representation graph, per representation the frames stored / missing / failed and
the time per frame (mean, p50, p95 over every stored record, a bar chart like the paper's Figure 9
and a line over the frame index), every run (start, end, config, device, outcome), sample collages
(first, middle and last frame), each student that `vre distill` trained beside its teacher (held-out frames, with
the held-out metric its file records) and statistics of sampled stored values. Plots are inline SVG
(`vrecore.visual.svg`) and pictures inline JPEG: the file opens offline, with no server or CDN.
"""
from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from vrecore.errors import ConfigError, StorageError
from vrecore.frames.video import ranges
from vrecore.store.base import required_folders
from vrecore.store.safe_paths import atomic_write
from vrecore.visual import svg
from vrecore.visual.stored import ExportView, StoredRepresentation, parse_ranges, run_frames

if TYPE_CHECKING:
    from vrecore.graph.representation import Representation

__all__ = ["REPORT_FILE", "RepresentationSummary", "TimeStats", "ValueStats", "summarise",
           "write_report"]

REPORT_FILE = "report.html"
VALUE_SAMPLES = 6
"""Stored frames per representation read for value statistics (evenly spread)."""
SAMPLE_WIDTH = 1100
"""Width of the sample collages in the page (pixels)."""
LINE_POINTS = 1500
"""Points per line of the time-over-frames chart at most."""


@attrs.frozen
class TimeStats:
    """Milliseconds per frame of one representation over every stored record (each record is one frame's share of
    its batch's compute time)."""

    mean: float
    p50: float
    p95: float
    records: int
    by_frame: Mapping[int, float]
    """Frame → milliseconds of its newest record."""


@attrs.frozen(eq=False)
class ValueStats:
    """Statistics of the stored values of a sample of frames."""

    dtype: str
    shape: tuple[int, ...]
    frames: tuple[int, ...]
    minimum: float | None
    maximum: float | None
    mean: float | None
    nonfinite: float
    """Fraction of NaN or infinite values."""
    counts: tuple[float, ...]
    labels: tuple[str, ...]


@attrs.frozen(eq=False)
class RepresentationSummary:
    """What the report says about one representation."""

    name: str
    type_name: str
    dependencies: tuple[str, ...]
    learned: bool | None
    """None: unknown (the type's plugin is not installed here)."""
    uses_frames: bool
    stored: bool
    formats: tuple[str, ...]
    done: tuple[int, ...]
    missing: tuple[int, ...]
    failed: tuple[int, ...]
    time: TimeStats | None
    values: ValueStats | None


def _type_class(view: ExportView, name: str, type_name: str) -> type[Representation] | None:
    rep = view.representations.get(name)
    if rep is not None and rep.representation is not None:
        return type(rep.representation)
    from vrecore.graph.registry import get_registry

    try:
        cls = get_registry().get(type_name).load()
    except Exception:  # noqa: BLE001 - the plugin is not installed or does not load: unknown
        return None
    return cls if isinstance(cls, type) else None


def _time_stats(records: Iterable[dict[str, Any]]) -> TimeStats | None:
    seconds: list[float] = []
    by_frame: dict[int, float] = {}
    for record in records:
        value = record.get("seconds")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds.append(float(value) * 1000)
            by_frame[int(record["frame"])] = float(value) * 1000
    if not seconds:
        return None
    ms = np.asarray(seconds)
    return TimeStats(float(ms.mean()), float(np.percentile(ms, 50)), float(np.percentile(ms, 95)), len(seconds),
                     dict(sorted(by_frame.items())))


def _value_stats(view: ExportView, rep: StoredRepresentation) -> ValueStats | None:
    frames = sorted(rep.files.get("npz", ()))
    if not frames:
        return None
    picks = sorted({frames[int(k)] for k in np.linspace(0, len(frames) - 1, min(VALUE_SAMPLES, len(frames)))})
    arrays = [a for a in (view.stored(rep.name, i) for i in picks) if a is not None]
    if not arrays:
        return None
    values = np.concatenate([a[::2, ::2].reshape(-1) for a in arrays])
    dtype, shape = str(arrays[0].dtype), tuple(arrays[0].shape)
    if values.dtype == np.bool_:
        share = float(values.mean())
        return ValueStats(dtype, shape, tuple(picks), 0.0, 1.0, share, 0.0, (1 - share, share), ("false", "true"))
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    nonfinite = 1 - finite.size / values.size if values.size else 0.0
    if finite.size == 0:
        return ValueStats(dtype, shape, tuple(picks), None, None, None, nonfinite, (), ())
    lo, hi, mean = float(finite.min()), float(finite.max()), float(finite.astype(np.float64).mean())
    classes = ((rep.metadata.get("metadata") or {}).get("classes") or [])
    if finite.dtype.kind in "ui" and hi - lo < 64 and lo >= 0:
        counts = np.bincount(finite.astype(np.int64), minlength=int(hi) + 1)[int(lo):]
        labels = [str(classes[v]) if v < len(classes) else str(v) for v in range(int(lo), int(hi) + 1)]
        return ValueStats(dtype, shape, tuple(picks), lo, hi, mean, nonfinite, tuple(float(c) for c in counts),
                          tuple(labels))
    counts, edges = np.histogram(finite, bins=32, range=(lo, hi if hi > lo else lo + 1))
    labels = [f"{edges[k]:.3g}..{edges[k + 1]:.3g}" for k in range(len(counts))]
    return ValueStats(dtype, shape, tuple(picks), lo, hi, mean, nonfinite, tuple(float(c) for c in counts),
                      tuple(labels))


def summarise(view: ExportView) -> list[RepresentationSummary]:
    """Every representation of the export's graph (stored ones first, in graph order), with frames, times and values."""
    specs = view.specs()
    latest = [n for run in reversed(view.runs) for n in (run.get("graph") or {}).get("representations") or {}]
    names = list(dict.fromkeys([*view.names, *latest, *specs]))
    out = []
    for name in names:
        spec = specs.get(name) or {}
        type_name = str(spec.get("type") or "unknown")
        deps = tuple(d for d in _dependency_list(spec.get("dependencies")))
        rep = view.representations.get(name)
        cls = _type_class(view, name, type_name)
        learned, uses_frames = (bool(cls.learned), bool(cls.uses_frames)) if cls is not None else (None, False)
        if rep is None:
            out.append(RepresentationSummary(name, type_name, deps, learned, uses_frames, False, (), (), (), (), None,
                                             None))
            continue
        meta = rep.metadata
        subs = required_folders(str(meta.get("binary_format", "npz")), str(meta.get("image_format", "none")))
        subs = [s for s in subs if s in rep.files] or [s for s, f in rep.files.items() if f]
        done = set.intersection(*(rep.files[s] for s in subs)) if subs else set()
        expected: set[int] = set()
        failed: set[int] = set()
        for run in view.runs:
            graph_spec = ((run.get("graph") or {}).get("representations") or {}).get(name)
            if not graph_spec or graph_spec.get("export") is False:
                continue
            expected |= run_frames(run)
            stats = (run.get("representations") or {}).get(name) or {}
            failed |= {int(i) for i in stats.get("failed_frames") or []}
        failed -= done
        missing = (expected - done - failed) if expected else set()
        out.append(RepresentationSummary(
            name, type_name, deps, learned, uses_frames, True, tuple(subs), tuple(sorted(done)),
            tuple(sorted(missing)), tuple(sorted(failed)), _time_stats(view.records(name)), _value_stats(view, rep)))
    return out


def _dependency_list(value: Any) -> list[str]:
    values = value.values() if isinstance(value, Mapping) else value if isinstance(value, (list, tuple)) else []
    names: list[str] = []
    for v in values:
        names.extend(str(x) for x in (v if isinstance(v, (list, tuple)) else [v]))
    return names


# -- the page ------------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px auto;max-width:1180px;padding:0 16px;
color:#222;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#555;margin:0 0 12px}table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f4f4f4}
td.num{text-align:right;font-variant-numeric:tabular-nums}tr:nth-child(even) td{background:#fafafa}
.ok{color:#1b7f3b;font-weight:600}.failed{color:#b00020;font-weight:600}.interrupted,.running{color:#a05a00;font-weight:600}
.strip{display:flex;flex-wrap:wrap;gap:10px}.strip figure{margin:0;flex:1 1 340px}.strip img{width:100%;height:auto;
border:1px solid #ccc}figcaption{font-size:12px;color:#555}.values{display:flex;flex-wrap:wrap;gap:12px}
.value{border:1px solid #ddd;padding:8px;border-radius:6px;font-size:12px;width:320px}.value b{font-size:13px}
details{margin:2px 0}pre{font-size:11px;background:#f6f6f6;padding:8px;overflow:auto;max-height:320px}
.note{font-size:12px;color:#666}svg{max-width:100%;height:auto}
"""


def _ms(value: float | None) -> str:
    """Milliseconds as the report writes them: one decimal from 1 ms up, three below."""
    if value is None:
        return "-"
    return f"{value:.1f}" if value >= 1 else f"{value:.3f}"


def _short_ranges(frames: Sequence[int], limit: int = 60) -> str:
    text = ranges(list(frames))
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _table(table_id: str, headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f'<td class="num">{c}</td>' if k in numeric else f"<td>{c}</td>"
                                    for k, c in enumerate(row)) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _graph_section(summaries: Sequence[RepresentationSummary]) -> str:
    nodes = [svg.GraphNode(s.name, s.type_name, s.dependencies, s.learned, s.stored, s.uses_frames) for s in summaries]
    return ("<h2>Graph</h2>" + svg.graph_diagram(nodes, id="graph") +
            '<p class="note">Arrows go from a dependency to the representations computed from it (and from the decoded '
            'video frames to the types that read them). Fill: the type\'s family; thick border: learned (a model with '
            'weights); dashed: not stored in this folder.</p>')


def _representations_section(summaries: Sequence[RepresentationSummary]) -> str:
    rows = []
    for s in summaries:
        if not s.stored:
            continue
        kind = {True: "learned", False: "procedural", None: "type not installed"}[s.learned]
        t = s.time
        rows.append([
            f"<b>{escape(s.name)}</b>", escape(s.type_name), kind, str(len(s.done)),
            f'<span title="{escape(ranges(list(s.missing)))}">{len(s.missing)}</span>' if s.missing else "0",
            f'<span title="{escape(ranges(list(s.failed)))}">{len(s.failed)}</span>' if s.failed else "0",
            escape("+".join(s.formats)), _ms(t.mean if t else None), _ms(t.p50 if t else None),
            _ms(t.p95 if t else None), str(t.records if t else 0)])
    table = _table("representations", ["name", "type", "kind", "frames stored", "missing", "failed", "files",
                                       "ms/frame mean", "p50", "p95", "records"], rows, numeric=(3, 4, 5, 7, 8, 9, 10))
    notes = []
    for s in summaries:
        if s.missing:
            notes.append(f"<li>{escape(s.name)}: missing frames {escape(_short_ranges(s.missing))}</li>")
        if s.failed:
            notes.append(f"<li>{escape(s.name)}: failed frames {escape(_short_ranges(s.failed))} (the run's log says "
                         f"why)</li>")
    return ("<h2>Representations</h2>" + table +
            '<p class="note">Missing: selected by a run but not stored; failed: the run recorded an error for them. '
            'Times are each frame\'s share of its batch\'s compute time, over every record of every run.</p>' +
            (f"<ul>{''.join(notes)}</ul>" if notes else ""))


def _timing_section(summaries: Sequence[RepresentationSummary]) -> str:
    timed = [s for s in summaries if s.time is not None]
    if not timed:
        return "<h2>Time</h2><p>No stored record has a compute time.</p>"
    bars = sorted(((s.name, s.time.mean, svg.family_colour(s.type_name.split("/", 1)[0]))
                   for s in timed if s.time is not None), key=lambda r: -r[1])
    total = sum(r[1] for r in bars)
    bar = svg.bar_chart(bars, unit="milliseconds per frame (mean)", id="time-per-representation",
                        title="mean time per frame of each representation")
    series = [svg.Series(s.name, *_thin(s.time.by_frame), svg.series_colour(k))
              for k, s in enumerate(timed) if s.time is not None]
    line = svg.line_chart(series, id="time-per-frame", title="time per frame over the frame index", x_label="frame",
                          y_label="ms per frame (log scale)", log_y=True)
    return (f"<h2>Time</h2><p>Mean time per frame of each representation (sum {_ms(total)} ms per frame):</p>{bar}"
            f"<p>Time per frame over the frame index (newest record of each frame; frames of one batch share its "
            f"time):</p>{line}")


def _thin(by_frame: Mapping[int, float], limit: int = LINE_POINTS) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """At most ``limit`` points of a time line: beyond that, the slowest frame of each run of frames (slowdowns stay
    visible, and the page stays small for long videos)."""
    xs = np.fromiter(by_frame.keys(), float, len(by_frame))
    ys = np.fromiter(by_frame.values(), float, len(by_frame))
    if len(xs) > limit:
        edges = np.linspace(0, len(xs), limit + 1).astype(int)
        xs = xs[edges[:-1]]
        ys = np.maximum.reduceat(ys, edges[:-1])
    return tuple(xs.tolist()), tuple(ys.tolist())


def _samples_section(view: ExportView) -> str:
    from vrecore.visual.collage import CollageMaker, encode_jpeg

    frames = view.frames()
    if not frames:
        return ""
    picks = list(dict.fromkeys([frames[0], frames[len(frames) // 2], frames[-1]]))
    maker = CollageMaker(view, max_width=SAMPLE_WIDTH)
    figures = []
    for frame in picks:
        data = base64.b64encode(encode_jpeg(maker.render(frame), 82)).decode()
        figures.append(f'<figure><img class="sample" data-frame="{frame}" alt="collage of frame {frame}" '
                       f'src="data:image/jpeg;base64,{data}"><figcaption>frame {frame}</figcaption></figure>')
    return f'<h2>Sample collages</h2><div class="strip" id="samples">{"".join(figures)}</div>'


def _distilled_section(view: ExportView) -> str:
    """Each student (a representation whose metadata says ``distilled_from``) beside its teacher, on frames it was
    not trained on where the export holds them, with its held-out metric against the teacher."""
    from vrecore.visual.collage import CollageMaker, encode_jpeg

    figures = []
    for name, rep in view.representations.items():
        meta = (rep.metadata.get("metadata") or {}).get("distilled_from")
        if not isinstance(meta, dict) or meta.get("teacher") not in view.representations:
            continue
        teacher = str(meta["teacher"])
        frames = view.frames([teacher, name])
        shared = [f for f in frames if f in rep.frames and f in view.representations[teacher].frames]
        held = str(meta.get("held_out") or "")
        held_out = [f for f in shared if f in parse_ranges(held.removeprefix("frames "))]
        picks = (held_out or shared)[-3:]
        if not picks:
            continue
        maker = CollageMaker(view, [teacher, name], cols=2, max_width=SAMPLE_WIDTH // 2)
        value, baseline = meta.get("student_vs_teacher"), meta.get("trivial_baseline")
        score = (f"held-out {meta.get('metric')} against the teacher {value:.3f} (trivial baseline {baseline:.3f}; "
                 f"held out: {held})" if isinstance(value, (int, float)) and isinstance(baseline, (int, float))
                 else "no recorded metric")
        which = "held-out" if held_out else "stored (not held-out)"
        for frame in picks:
            data = base64.b64encode(encode_jpeg(maker.render(frame), 82)).decode()
            figures.append(f'<figure><img class="sample" alt="{escape(teacher)} | {escape(name)}, frame {frame}" '
                           f'src="data:image/jpeg;base64,{data}"><figcaption>{escape(teacher)} | {escape(name)}, '
                           f'{which} frame {frame}</figcaption></figure>')
        figures.append(f'<p class="note"><b>{escape(name)}</b> ({escape(str(meta.get("head")))} student of '
                       f'<b>{escape(teacher)}</b>, {escape(str(meta.get("teacher_type")))}): {escape(score)}</p>')
    if not figures:
        return ""
    return f'<h2>Teacher and student</h2><div class="strip" id="distilled">{"".join(figures)}</div>'


def _values_section(summaries: Sequence[RepresentationSummary]) -> str:
    cards = []
    for s in summaries:
        v = s.values
        if v is None:
            continue
        rng = "no finite value" if v.minimum is None else f"range {v.minimum:.4g} .. {v.maximum:.4g}, mean {v.mean:.4g}"
        bad = f", {v.nonfinite:.1%} NaN/inf" if v.nonfinite else ""
        hist = svg.histogram(v.counts, v.labels, colour=svg.family_colour(s.type_name.split("/", 1)[0]),
                             id=f"values-{s.name}", title=f"values of {s.name}") if v.counts else ""
        cards.append(f'<div class="value" data-name="{escape(s.name)}"><b>{escape(s.name)}</b> {escape(v.dtype)} '
                     f'{escape("x".join(map(str, v.shape)))}<br>{escape(rng + bad)}<br>'
                     f'<span class="note">frames {escape(_short_ranges(v.frames))}, every 2nd pixel</span>{hist}</div>')
    if not cards:
        return ""
    return f'<h2>Stored values</h2><div class="values">{"".join(cards)}</div>'


def _status(status: Any) -> str:
    text = escape(str(status or "unknown"))
    return f'<span class="{text}">{text}</span>'


def _runs_section(view: ExportView) -> str:
    blocks = []
    rows = []
    for run in reversed(view.runs):
        config = run.get("config") or {}
        reps = run.get("representations") or {}
        work = ", ".join(f"{escape(n)} {s.get('computed', 0)}/{s.get('skipped', 0)}/{s.get('failed', 0)}"
                         for n, s in reps.items() if isinstance(s, dict))
        seconds = run.get("seconds")
        rows.append([
            f"<code>{escape(str(run.get('run_id')))}</code>", _status(run.get("status")), escape(str(run.get("started"))),
            escape(str(run.get("ended"))), f"{seconds:.1f}" if isinstance(seconds, (int, float)) else "-",
            escape(ranges(sorted(run_frames(run))) or str(run.get("frames"))), escape(str(run.get("device"))),
            escape(str(config.get("writers", "-"))), escape(str(config.get("threads") or "-")),
            escape(f"{run.get('host')} / {run.get('pid')}"), work])
        error = f"<p class=\"failed\">{escape(str(run['error']))}</p>" if run.get("error") else ""
        blocks.append(f"<details><summary>run {escape(str(run.get('run_id')))}: config and video</summary>{error}"
                      f"<p>video {escape(str(run.get('video')))} ({escape(str(run.get('video_frames')))} frames, "
                      f"{escape(str(run.get('fps')))} frames/s)</p>"
                      f"<pre>{escape(json.dumps(config or run.get('graph'), indent=1, default=str))}</pre></details>")
    if not rows:
        return "<h2>Runs</h2><p>No run metadata in .logs/ (the folder was copied without it, or made by another tool).</p>"
    table = _table("runs", ["run", "outcome", "started", "ended", "seconds", "frames", "device", "writers", "threads",
                            "host / pid", "computed/skipped/failed"], rows, numeric=(4, 7, 8))
    logs = str(view.root / ".logs") if view.local else f"{view.location}/.logs (its log on the machine that ran it)"
    return (f"<h2>Runs</h2>{table}<p class=\"note\">Newest first. Each run's full config (the composed `vre export` "
            f"config) and log are in {escape(logs)}.</p>{''.join(blocks)}")


def _header(view: ExportView, summaries: Sequence[RepresentationSummary], output: Path) -> str:
    from vrecore import __version__

    video = view.video()
    stored = [s for s in summaries if s.stored]
    frames = view.frames()
    size = f"{video.get('width')}x{video.get('height')}" if video.get("width") else "size unknown"
    fps = f"{view.fps:.4g}" if view.fps else "?"
    latest = view.latest_run or {}
    links = []
    for target, label in ((view.root / "preview.mp4", "preview video"), (view.root / ".collage", "collages")):
        if view.local and target.exists():
            rel = os.path.relpath(target, output.parent)
            links.append(f'<a href="{escape(rel)}">{label}</a>')
    return (f"<h1>vre report: {escape(view.label)}</h1>"
            f'<p class="sub">{len(stored)} representations, {len(frames)} frames stored '
            f"({escape(_short_ranges(frames))}) of a {escape(str(video.get('frames', '?')))}-frame video "
            f"{escape(str(video.get('path', '')))} ({escape(size)}, {fps} frames/s); "
            f"{len(view.runs)} run(s), the latest {_status(latest.get('status')) if latest else 'unknown'}. "
            f"Written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by vre {escape(__version__)}"
            f"{'; ' + ', '.join(links) if links else ''}.</p>")


def render_report(view: ExportView, output: Path) -> str:
    """The report page of ``view`` as HTML text (links are relative to ``output``)."""
    summaries = summarise(view)
    parts = [_header(view, summaries, output), _graph_section(summaries), _representations_section(summaries),
             _timing_section(summaries), _samples_section(view), _distilled_section(view),
             _values_section(summaries), _runs_section(view),
             f'<p class="note">Regenerate with <code>vre report {escape(view.location)}</code>.</p>']
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>vre report: '
            f'{escape(view.label.rstrip("/").rpartition("/")[2])}</title><meta name="viewport" content="width=device-width">'
            f'<style>{_CSS}</style></head><body>{"".join(parts)}</body></html>\n')


def write_report(export: str | os.PathLike[str] | ExportView, output: str | os.PathLike[str] | None = None, *,
                 warn: Callable[[str], None] | None = None) -> Path:
    """Write the report of an export (default ``<export>/report.html``); returns its path."""
    view = export if isinstance(export, ExportView) else ExportView(export, warn=warn)
    path = Path(output) if output is not None else view.output_path(REPORT_FILE, "--output FILE.html")
    if not path.parent.is_dir():
        raise ConfigError(f"--output {path}: the folder {path.parent} does not exist; create it or choose another")
    html = render_report(view, path)
    try:  # a link at ``path`` is refused, not followed or replaced
        atomic_write(path.parent, path.name, lambda f: f.write(html.encode("utf-8")), f".{path.name}.tmp-{os.getpid()}")
    except OSError as e:
        from vrecore.store.files import describe_os_error

        raise StorageError(describe_os_error(e, f"report '{path}'")) from e
    return path
