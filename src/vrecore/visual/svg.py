"""Plots as plain SVG text for the HTML report: bar and line charts, histograms, and the representation graph.

Written by code rather than with a plotting library: the report needs four simple kinds of plot,
inline SVG keeps the page one self-contained file whose parts a browser (and a test) can find by
id, and vre gains no dependency. Text widths are estimated (0.6 em a character), which is enough
for labels of names and numbers.
"""
from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from html import escape

import attrs

__all__ = ["GraphNode", "Series", "bar_chart", "family_colour", "graph_diagram", "histogram", "line_chart",
           "series_colour"]

FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif"
_FAMILY_COLOURS = {
    "color": "#4e79a7", "depth": "#f28e2b", "normals": "#e15759", "semantic": "#76b7b2", "edges": "#59a14f",
    "optical-flow": "#edc948", "descriptor": "#b07aa1", "soft-segmentation": "#ff9da7", "mask": "#9c755f",
}
_EXTRA = ("#bab0ac", "#86bcb6", "#d37295", "#8cd17d", "#b6992d", "#499894", "#e49444", "#79706e")
_SERIES = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#17becf")


def family_colour(family: str) -> str:
    """The colour of a type family (the part of a type name before '/'), the same in every report."""
    return _FAMILY_COLOURS.get(family) or _EXTRA[zlib.crc32(family.encode()) % len(_EXTRA)]


def series_colour(k: int) -> str:
    """The k-th colour of line charts."""
    return _SERIES[k % len(_SERIES)]


def _text_width(text: str, size: float) -> float:
    return 0.6 * size * len(text)


def _fmt(value: float) -> str:
    """A number as a short label: 3 significant digits, no exponent for everyday sizes."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 1:
        return f"{value:.3g}" if magnitude < 100 else f"{value:.0f}"
    return f"{value:.2g}" if magnitude >= 0.01 else f"{value:.1e}"


def _svg(width: float, height: float, body: list[str], *, id: str, title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" id="{escape(id)}" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" style="{FONT};font-size:12px">'
            f'<title>{escape(title)}</title>{"".join(body)}</svg>')


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of ten)."""
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < hi:
        ticks.append(ticks[-1] + step)
    return ticks


def bar_chart(rows: Sequence[tuple[str, float, str]], *, unit: str, id: str, title: str, width: int = 760) -> str:
    """Horizontal bars: one (label, value, colour) a row, the value written after each bar."""
    label_w = max((_text_width(r[0], 12) for r in rows), default=40) + 16
    bar_h, gap, top, bottom = 20, 6, 8, 38
    height = top + len(rows) * (bar_h + gap) + bottom
    plot_w = width - label_w - 90
    hi = max((r[1] for r in rows), default=1.0) or 1.0
    ticks = nice_ticks(0, hi)
    scale = plot_w / ticks[-1]
    body = []
    axis_y = top + len(rows) * (bar_h + gap)
    for t in ticks:
        x = label_w + t * scale
        body.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{axis_y}" stroke="#e3e3e3"/>'
                    f'<text x="{x:.1f}" y="{axis_y + 16}" text-anchor="middle" fill="#555">{_fmt(t)}</text>')
    body.append(f'<text x="{label_w + plot_w / 2:.1f}" y="{axis_y + 29}" text-anchor="middle" fill="#333">'
                f'{escape(unit)}</text>')
    for k, (label, value, colour) in enumerate(rows):
        y = top + k * (bar_h + gap)
        w = max(0.0, value * scale)
        body.append(f'<g class="bar" data-name="{escape(label)}" data-value="{value:.6g}">'
                    f'<text x="{label_w - 8:.1f}" y="{y + bar_h * 0.7:.1f}" text-anchor="end">{escape(label)}</text>'
                    f'<rect x="{label_w:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colour}"/>'
                    f'<text x="{label_w + w + 5:.1f}" y="{y + bar_h * 0.7:.1f}" fill="#333">{_fmt(value)}</text></g>')
    body.append(f'<line x1="{label_w:.1f}" y1="{top}" x2="{label_w:.1f}" y2="{axis_y}" stroke="#333"/>')
    return _svg(width, height, body, id=id, title=title)


@attrs.frozen
class Series:
    """One line of a line chart."""

    name: str
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    colour: str


def line_chart(series: Sequence[Series], *, id: str, title: str, x_label: str, y_label: str, log_y: bool = False,
               width: int = 760, height: int = 300) -> str:
    """Lines over a shared x axis with a legend on the right; ``log_y`` for values spanning decades."""
    legend_w = max((_text_width(s.name, 12) for s in series), default=40) + 40
    left, right, top, bottom = 64, legend_w, 10, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    xs = [x for s in series for x in s.xs] or [0.0, 1.0]
    ys = [y for s in series for y in s.ys] or [1.0]
    x_lo, x_hi = min(xs), max(xs)
    if x_hi == x_lo:
        x_hi = x_lo + 1
    if log_y:
        floor = 1e-3
        ys = [max(y, floor) for y in ys]
        d_lo, d_hi = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
        if d_hi == d_lo:
            d_hi += 1
        y_ticks = [10.0 ** d for d in range(d_lo, d_hi + 1)]
        y_lo, y_hi = math.log10(y_ticks[0]), math.log10(y_ticks[-1])

        def ty(v: float) -> float:
            return top + plot_h - (math.log10(max(v, floor)) - y_lo) / (y_hi - y_lo) * plot_h
    else:
        y_ticks = nice_ticks(0, max(ys) or 1.0)
        y_lo, y_hi = y_ticks[0], y_ticks[-1]

        def ty(v: float) -> float:
            return top + plot_h - (v - y_lo) / (y_hi - y_lo) * plot_h

    def tx(v: float) -> float:
        return left + (v - x_lo) / (x_hi - x_lo) * plot_w

    body = []
    for t in y_ticks:
        y = ty(t)
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#e3e3e3"/>'
                    f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#555">{_fmt(t)}</text>')
    for t in nice_ticks(x_lo, x_hi, 8):
        if x_lo <= t <= x_hi:
            x = tx(t)
            body.append(f'<line x1="{x:.1f}" y1="{top + plot_h}" x2="{x:.1f}" y2="{top + plot_h + 4}" stroke="#333"/>'
                        f'<text x="{x:.1f}" y="{top + plot_h + 17}" text-anchor="middle" fill="#555">{_fmt(t)}</text>')
    body.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>'
                f'<text x="{left + plot_w / 2:.1f}" y="{height - 8}" text-anchor="middle">{escape(x_label)}</text>'
                f'<text transform="translate(14 {top + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle">'
                f'{escape(y_label)}</text>')
    for k, s in enumerate(series):
        points = " ".join(f"{tx(x):.1f},{ty(y):.1f}" for x, y in zip(s.xs, s.ys, strict=True))
        shape = (f'<polyline points="{points}" fill="none" stroke="{s.colour}" stroke-width="1.6"/>' if len(s.xs) > 1
                 else f'<circle cx="{tx(s.xs[0]):.1f}" cy="{ty(s.ys[0]):.1f}" r="3" fill="{s.colour}"/>' if s.xs else "")
        ly = top + 8 + k * 18
        body.append(f'<g class="series" data-name="{escape(s.name)}">{shape}'
                    f'<line x1="{left + plot_w + 12}" y1="{ly}" x2="{left + plot_w + 30}" y2="{ly}" stroke="{s.colour}" '
                    f'stroke-width="3"/><text x="{left + plot_w + 35}" y="{ly + 4}">{escape(s.name)}</text></g>')
    return _svg(width, height, body, id=id, title=title)


def histogram(counts: Sequence[float], labels: Sequence[str], *, colour: str, id: str, title: str, width: int = 300,
              height: int = 96) -> str:
    """Small vertical bars of ``counts``; the first and last labels (all of them when few) under the axis."""
    n = max(1, len(counts))
    top, bottom, side = 6, 30, 4
    plot_w, plot_h = width - 2 * side, height - top - bottom
    hi = max(counts, default=0) or 1
    w = plot_w / n
    body = []
    for k, c in enumerate(counts):
        h = c / hi * plot_h
        body.append(f'<rect x="{side + k * w:.1f}" y="{top + plot_h - h:.1f}" width="{max(w - 1, 0.5):.1f}" '
                    f'height="{h:.1f}" fill="{colour}"><title>{escape(labels[k])}: {_fmt(c)}</title></rect>')
    body.append(f'<line x1="{side}" y1="{top + plot_h}" x2="{side + plot_w}" y2="{top + plot_h}" stroke="#333"/>')
    shown = range(n) if n <= 8 else (0, n - 1)
    for k in shown:
        anchor = "start" if k == 0 and n > 8 else "end" if k == n - 1 and n > 8 else "middle"
        x = side + (k + 0.5) * w if anchor == "middle" else side if anchor == "start" else side + plot_w
        text = labels[k] if len(labels[k]) <= 14 else labels[k][:13] + "…"
        body.append(f'<text x="{x:.1f}" y="{top + plot_h + 14}" text-anchor="{anchor}" font-size="10" fill="#555">'
                    f'{escape(text)}</text>')
    return _svg(width, height, body, id=id, title=title)


@attrs.frozen
class GraphNode:
    """A representation in the graph picture."""

    name: str
    type_name: str
    dependencies: tuple[str, ...]
    learned: bool | None
    """None: unknown (its type's plugin is not installed here)."""
    stored: bool
    """Whether the export has its folder (False: computed only as a dependency, or not yet)."""
    uses_frames: bool = False
    """Whether it reads the decoded video frames (an arrow from the frames box)."""

    @property
    def family(self) -> str:
        return self.type_name.split("/", 1)[0]


def _layers(nodes: Sequence[GraphNode]) -> list[list[GraphNode]]:
    """Nodes in columns by their longest path from a source; in each column ordered near their dependencies."""
    by_name = {n.name: n for n in nodes}
    depth: dict[str, int] = {}

    def level(name: str, seen: tuple[str, ...] = ()) -> int:
        if name not in depth:
            deps = [d for d in by_name[name].dependencies if d in by_name and d not in seen]
            depth[name] = 1 + max((level(d, (*seen, name)) for d in deps), default=-1)
        return depth[name]

    columns: list[list[GraphNode]] = [[] for _ in range(1 + max((level(n.name) for n in nodes), default=0))]
    for n in nodes:
        columns[depth[n.name]].append(n)
    position: dict[str, float] = {n.name: float(k) for k, n in enumerate(columns[0])}
    for column in columns[1:]:
        def centre(n: GraphNode) -> float:
            places = [position[d] for d in n.dependencies if d in position]
            return sum(places) / len(places) if places else 0.0
        column.sort(key=centre)
        position.update({n.name: float(k) for k, n in enumerate(column)})
    return columns


FRAMES = "video frames"


def graph_diagram(nodes: Sequence[GraphNode], *, id: str = "graph", title: str = "representation graph") -> str:
    """Boxes for representations (filled by family; thick border: learned; dashed: not stored), arrows from each
    dependency to its dependents and from a "video frames" box to those reading frames, and a legend."""
    source = [GraphNode(FRAMES, "decoded by the engine", (), False, True)] if any(n.uses_frames for n in nodes) else []
    nodes = [*source, *(attrs.evolve(n, dependencies=(*n.dependencies, FRAMES)) if n.uses_frames else n for n in nodes)]
    columns = _layers(nodes)
    box_h, v_gap, h_gap, pad = 50, 14, 56, 10
    widths = [max((max(_text_width(n.name, 13), _text_width(n.type_name, 11)) + 22 for n in col), default=80)
              for col in columns]
    rows = max((len(c) for c in columns), default=1)
    grid_h = rows * box_h + (rows - 1) * v_gap
    families = sorted({n.family for n in nodes if n.name != FRAMES})
    legend_h = 24 + 18 * math.ceil((len(families) + 3) / 4)
    width = max(sum(widths) + h_gap * (len(columns) - 1) + 2 * pad, 560)
    height = grid_h + 2 * pad + legend_h
    place: dict[str, tuple[float, float, float]] = {}
    x = float(pad)
    for col, w in zip(columns, widths, strict=True):
        col_h = len(col) * box_h + (len(col) - 1) * v_gap
        y0 = pad + (grid_h - col_h) / 2
        for k, n in enumerate(col):
            place[n.name] = (x, y0 + k * (box_h + v_gap), w)
        x += w + h_gap
    body = ['<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
            'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#666"/></marker></defs>']
    for n in nodes:
        for d in n.dependencies:
            if d not in place:
                continue
            x1, y1, w1 = place[d]
            x2, y2, _ = place[n.name]
            sx, sy, ex, ey = x1 + w1, y1 + box_h / 2, x2, y2 + box_h / 2
            c = max(20.0, (ex - sx) / 2)
            body.append(f'<path class="edge" data-from="{escape(d)}" data-to="{escape(n.name)}" '
                        f'd="M {sx:.1f} {sy:.1f} C {sx + c:.1f} {sy:.1f}, {ex - c:.1f} {ey:.1f}, {ex:.1f} {ey:.1f}" '
                        f'fill="none" stroke="#666" stroke-width="1.4" marker-end="url(#arrow)"/>')
    for n in nodes:
        x0, y0, w = place[n.name]
        if n.name == FRAMES:
            body.append(f'<g class="source"><rect x="{x0:.1f}" y="{y0:.1f}" width="{w:.1f}" height="{box_h}" rx="7" '
                        f'fill="#f2f2f2" stroke="#888"/><text x="{x0 + 11:.1f}" y="{y0 + 20:.1f}" font-size="13" '
                        f'font-weight="600">{FRAMES}</text><text x="{x0 + 11:.1f}" y="{y0 + 38:.1f}" font-size="11" '
                        f'fill="#444">{escape(n.type_name)}</text></g>')
            continue
        colour = family_colour(n.family)
        kind = {True: "learned", False: "procedural", None: "type not installed"}[n.learned]
        stroke = ' stroke-width="3.5"' if n.learned else ' stroke-width="1.5"'
        dash = "" if n.stored else ' stroke-dasharray="5 3"'
        fill = f'{colour}33' if n.stored else "#ffffff"
        body.append(f'<g class="node" data-name="{escape(n.name)}" data-type="{escape(n.type_name)}" '
                    f'data-kind="{kind}"><title>{escape(n.name)}: {escape(n.type_name)} ({kind}'
                    f'{"" if n.stored else ", not stored"})</title>'
                    f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{w:.1f}" height="{box_h}" rx="7" fill="{fill}" '
                    f'stroke="{colour}"{stroke}{dash}/>'
                    f'<text x="{x0 + 11:.1f}" y="{y0 + 20:.1f}" font-size="13" font-weight="600">{escape(n.name)}</text>'
                    f'<text x="{x0 + 11:.1f}" y="{y0 + 38:.1f}" font-size="11" fill="#444">{escape(n.type_name)}</text>'
                    '</g>')
    ly = pad + grid_h + 22
    items = [(f, family_colour(f), "1.5", "") for f in families]
    items += [("learned", "#555", "3.5", ""), ("procedural", "#555", "1.5", ""), ("not stored", "#555", "1.5", "5 3")]
    for k, (label, colour, stroke_w, dash_spec) in enumerate(items):
        lx, row_y = pad + (k % 4) * 150, ly + (k // 4) * 18
        dash_attr = f' stroke-dasharray="{dash_spec}"' if dash_spec else ""
        fill = f"{colour}33" if k < len(families) else "#ffffff"
        body.append(f'<rect x="{lx}" y="{row_y - 10}" width="22" height="13" rx="3" fill="{fill}" stroke="{colour}" '
                    f'stroke-width="{stroke_w}"{dash_attr}/><text x="{lx + 28}" y="{row_y + 1}">{escape(label)}</text>')
    return _svg(width, height, body, id=id, title=title)
