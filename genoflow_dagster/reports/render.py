"""Self-contained HTML reports (inline CSS and SVG; no scripts, no external assets).

`render_sample_report(ctx)` takes the dict `reports.context.report_context` builds:
sample_id, run_id, generated_at, qc (status, profile, files[].verdict.modules,
failing, warnings), file_metrics ([{name, format, metrics}]), alignment
(samtools-like metrics or None), variant_summary, variants (rows), gates,
validation (per-file results), validation_warnings ({file, reason, line, message, count}) and
validation_mode, provenance, narrative (an ai.Narrative).
Every section degrades to a short note when its stage did not run.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from typing import Any

import jinja2

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("genoflow_dagster.reports", "templates"),
    autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{int(value):,}" if value.is_integer() and abs(value) >= 1000 else f"{value:,.{digits}f}"
    return str(value)


_ENV.filters["num"] = _fmt


def _text(value: Any) -> str:
    """A text cell: empty for a missing value (pandas hands a missing string over as NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


_ENV.filters["text"] = _text


def _tick_step(labels: Sequence[Any], plot_width: float) -> int:
    """Label every n-th tick so that the labels (about 8 px a character, 12 px apart) do not overlap."""
    widest = max((len(str(label)) for label in labels), default=1) * 8 + 12
    return max(1, math.ceil(len(labels) * widest / plot_width))


def svg_line_plot(series: Sequence[tuple[str, Sequence[float | None]]], *, width: int = 640, height: int = 220,
                  y_min: float | None = None, y_max: float | None = None, band: tuple[Sequence[float | None],
                  Sequence[float | None]] | None = None, x_label: str = "", y_label: str = "",
                  x_ticks: Sequence[str] | None = None) -> str:
    """Lines (and an optional shaded band) as inline SVG; None values break the line."""
    values = [v for _, ys in series for v in ys if v is not None]
    if band:
        values += [v for v in (*band[0], *band[1]) if v is not None]
    if not values:
        return ""
    lo = min(values) if y_min is None else y_min
    hi = max(values) if y_max is None else y_max
    hi = hi if hi > lo else lo + 1
    n = max(len(ys) for _, ys in series)
    left, bottom, top, right = 48, 30, 10, 10
    plot_w, plot_h = width - left - right, height - top - bottom

    def xy(i: int, v: float) -> tuple[float, float]:
        x = left + (plot_w * i / max(1, n - 1))
        y = top + plot_h * (1 - (v - lo) / (hi - lo))
        return round(x, 1), round(y, 1)

    parts = [f'<svg viewBox="0 0 {width} {height}" class="plot" role="img">',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ccc"/>']
    for frac in (0, 0.5, 1):
        v = lo + (hi - lo) * frac
        _, y = xy(0, v)
        parts.append(f'<text x="{left - 4}" y="{y + 4}" text-anchor="end" class="tick">{v:.0f}</text>')
    if band:
        upper = [xy(i, v) for i, v in enumerate(band[1]) if v is not None]
        lower = [xy(i, v) for i, v in enumerate(band[0]) if v is not None]
        if upper and lower:
            points = " ".join(f"{x},{y}" for x, y in upper + lower[::-1])
            parts.append(f'<polygon points="{points}" fill="#9ecae1" opacity="0.5"/>')
    colours = ["#08519c", "#e6550d", "#31a354", "#756bb1", "#636363"]
    for index, (name, ys) in enumerate(series):
        points = " ".join(f"{x},{y}" for x, y in (xy(i, v) for i, v in enumerate(ys) if v is not None))
        colour = colours[index % len(colours)]
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.8"/>')
        parts.append(f'<text x="{left + 8 + 110 * index}" y="{top + 14}" fill="{colour}" class="legend">'
                     f'{html.escape(name)}</text>')
    if x_ticks:
        for i in range(0, len(x_ticks), _tick_step(x_ticks, plot_w)):
            x, _ = xy(i, lo)
            parts.append(f'<text x="{x}" y="{height - 14}" text-anchor="middle" class="tick">'
                         f'{html.escape(str(x_ticks[i]))}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 2}" text-anchor="middle" class="axis">'
                 f'{html.escape(x_label)}</text>')
    parts.append(f'<text x="12" y="{top + plot_h / 2}" text-anchor="middle" class="axis" '
                 f'transform="rotate(-90 12 {top + plot_h / 2})">{html.escape(y_label)}</text></svg>')
    return "".join(parts)


def _count_tick(value: float) -> str:
    """A y-axis tick of a count: 950, 12k, 3.4M (the axis label says what is counted)."""
    if value >= 1e6:
        return f"{value / 1e6:.3g}M"
    if value >= 1e4:
        return f"{value / 1e3:.3g}k"
    return f"{value:.3g}" if value < 10 else f"{value:.0f}"


def svg_histogram(counts: Sequence[float], *, width: int = 640, height: int = 200, x_label: str = "",
                  y_label: str = "", labels: Sequence[str] | None = None, y_max: float | None = None) -> str:
    """Bars as inline SVG, the y axis from 0 to `y_max` (100 for a percentage) or the tallest bar, with ticks
    at 0, half and the top."""
    if not counts or max(counts) <= 0:
        return ""
    left, bottom, top = 48, 30, 10
    plot_w, plot_h = width - left - 10, height - top - bottom
    peak = max(y_max or 0, max(counts))
    bar_w = plot_w / len(counts)
    parts = [f'<svg viewBox="0 0 {width} {height}" class="plot" role="img">',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ccc"/>']
    for frac in (0, 0.5, 1):
        y = top + plot_h * (1 - frac)
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" class="tick">'
                     f'{_count_tick(peak * frac)}</text>')
    for i, count in enumerate(counts):
        h = plot_h * count / peak
        parts.append(f'<rect x="{left + i * bar_w:.1f}" y="{top + plot_h - h:.1f}" width="{max(bar_w - 0.5, 0.5):.1f}"'
                     f' height="{h:.1f}" fill="#3182bd"/>')
    if labels:
        for i in range(0, len(labels), _tick_step(labels, plot_w)):
            parts.append(f'<text x="{left + (i + 0.5) * bar_w:.1f}" y="{height - 14}" text-anchor="middle" '
                         f'class="tick">{html.escape(str(labels[i]))}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 2}" text-anchor="middle" class="axis">'
                 f'{html.escape(x_label)}</text>')
    parts.append(f'<text x="12" y="{top + plot_h / 2}" text-anchor="middle" class="axis" '
                 f'transform="rotate(-90 12 {top + plot_h / 2})">{html.escape(y_label)}</text></svg>')
    return "".join(parts)


PAGE_PLOT = (640, 220)  # the report page's plots (CSS scales them to the column)
# The Dagster UI shows a metadata image about 360 px wide: drawn for about that size, its text stays readable
METADATA_PLOT = (420, 250)


def _read_plots(metrics: dict[str, Any], size: tuple[int, int] = PAGE_PLOT) -> dict[str, str]:
    plots: dict[str, str] = {}
    rows = metrics.get("per_position_quality") or []
    if rows:
        ticks = [str(r.get("position", r.get("base", i + 1))) for i, r in enumerate(rows)]
        plots["per_position_quality"] = svg_line_plot(
            [("mean", [r.get("mean") for r in rows]), ("median", [r.get("median") for r in rows])],
            band=([r.get("lower_quartile") for r in rows], [r.get("upper_quartile") for r in rows]),
            y_min=0, y_max=max(41, max((r.get("p90") or 0) for r in rows)), x_label="position in read (bp)",
            y_label="base quality (Phred)", x_ticks=ticks, width=size[0], height=size[1])
    gc = metrics.get("per_sequence_gc") or []
    if gc:
        plots["per_sequence_gc"] = svg_histogram(gc, x_label="read GC content (%)", y_label="reads",
                                                 labels=[str(i) for i in range(len(gc))], width=size[0], height=size[1])
    lengths = metrics.get("length_distribution") or {}
    if len(lengths) > 1:
        keys = sorted(lengths, key=lambda k: int(str(k).split("-")[0]))
        plots["length_distribution"] = svg_histogram([lengths[k] for k in keys], x_label="read length (bp)",
                                                     y_label="reads", labels=keys, width=size[0], height=size[1])
    return plots


def _mapq_plot(metrics: dict[str, Any], size: tuple[int, int] = PAGE_PLOT) -> str:
    dist = metrics.get("mapq_distribution") or {}
    keys = sorted(dist, key=int)
    return svg_histogram([dist[k] for k in keys], x_label="mapping quality (MAPQ, Phred)",
                         y_label="reads", labels=keys, width=size[0], height=size[1]) if keys else ""


def _alignment_plots(metrics: dict[str, Any], size: tuple[int, int] = PAGE_PLOT) -> dict[str, str]:
    plots: dict[str, str] = {}
    breadth = [(k, metrics.get(f"breadth_{k}")) for k in ("1x", "10x", "30x")]
    if all(isinstance(v, int | float) for _, v in breadth):
        plots["breadth_of_coverage"] = svg_histogram([float(v) for _, v in breadth],  # type: ignore[arg-type]
                                                     x_label="minimum depth",
                                                     y_label="reference covered (%)", y_max=100,
                                                     labels=[f">= {k}" for k, _ in breadth],
                                                     width=size[0], height=size[1])
    plots["mapq_distribution"] = _mapq_plot(metrics, size)
    return plots


def svg_image_markdown(title: str, svg: str) -> str:
    """An inline SVG as a markdown image (a data URI), which the Dagster UI shows in metadata.

    Standalone, the SVG gets no page CSS: it carries its namespace and font itself.
    """
    standalone = svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" '
                             'font-size="12" ', 1)
    data = base64.b64encode(standalone.encode()).decode("ascii")
    return f"![{html.escape(title)}](data:image/svg+xml;base64,{data})"


def metadata_plots(fmt: str, metrics: dict[str, Any]) -> str:
    """The plots of one file's metrics (per-position quality, GC, lengths; breadth of coverage and MAPQ for
    alignments) as markdown for asset metadata; empty when the format has none."""
    if fmt == "fastq":
        plots = _read_plots(metrics, METADATA_PLOT)
    elif fmt in ("bam", "cram", "sam"):
        plots = _alignment_plots(metrics, METADATA_PLOT)
    else:
        return ""
    return "\n\n".join(f"**{name.replace('_', ' ')}**\n\n{svg_image_markdown(name, svg)}"
                         for name, svg in plots.items() if svg)


def render_sample_report(ctx: dict[str, Any]) -> str:
    reads = [dict(entry, plots=_read_plots(entry.get("metrics") or {}))
             for entry in ctx.get("file_metrics", []) if entry.get("format") == "fastq"]
    alignment = ctx.get("alignment") or None
    mapq_plot = _mapq_plot(alignment) if alignment else ""
    return _ENV.get_template("sample_report.html.j2").render(
        {**ctx, "reads": reads, "alignment": alignment, "mapq_plot": mapq_plot})


def render_cohort_report(rows: list[dict[str, Any]], *, title: str = "GenoFlow cohort QC summary",
                         generated_at: str | None = None, multiqc_report: str | None = None) -> str:
    """The cohort page: one row per sample, linked to its report (`../<sample>/report.html`, the reports zone's
    layout), its problems folded after the first; `multiqc_report` links the MultiQC report beside it."""
    shown = [{**row, "failing_items": [item for item in _text(row.get("failing")).split("; ") if item]}
             for row in rows]
    return _ENV.get_template("cohort_report.html.j2").render(rows=shown, title=title, generated_at=generated_at,
                                                             multiqc_report=multiqc_report)
