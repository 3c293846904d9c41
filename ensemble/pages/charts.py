"""Server-rendered SVG charts: no JavaScript, no CDN, readable offline and at any width.

Every piece of text goes through `format_html`, so a model name or status can never inject markup.
Each chart is an `<svg role="img">` with a `<title>` per mark for hover and screen readers; the
numbers themselves are also in the tables next to the charts.
"""
from __future__ import annotations

from datetime import datetime

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

# Okabe–Ito colours: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#999999")
WIDTH = 640
STATUS_FILL = {"ok": "#2f7fc1", "timeout": "#b42318", "error": "#b42318", "too_large": "#b42318"}  # anything else: amber


def colours(models: list[str]) -> dict[str, str]:
    """Return a stable colour per model (by sorted name), shared by every chart on a page."""
    return {model: PALETTE[i % len(PALETTE)] for i, model in enumerate(sorted(models))}


def _svg(height: int, label: str, body: SafeString) -> SafeString:
    return format_html(
        '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}" '
        'xmlns="http://www.w3.org/2000/svg" font-size="12">{}</svg>',
        WIDTH, height, label, body,
    )


def _percent_axis(left: int, right: int, top: int, bottom: int, *, vertical: bool) -> SafeString:
    """Return gridlines and labels at 0, 25, 50, 75, 100 %."""
    parts = []
    for tick in (0, 25, 50, 75, 100):
        if vertical:  # ticks along x
            x = left + (right - left) * tick / 100
            parts.append(format_html(
                '<line x1="{0}" y1="{1}" x2="{0}" y2="{2}" class="grid" stroke="#e3e6ec"/>'
                '<text x="{0}" y="{3}" text-anchor="middle" class="axis" fill="#5d6677">{4}%</text>',
                _f(x), top, bottom, bottom + 14, tick))
        else:  # ticks along y
            y = bottom - (bottom - top) * tick / 100
            parts.append(format_html(
                '<line x1="{0}" y1="{2}" x2="{1}" y2="{2}" class="grid" stroke="#e3e6ec"/>'
                '<text x="{3}" y="{4}" text-anchor="end" class="axis" fill="#5d6677">{5}%</text>',
                left, right, _f(y), left - 4, _f(y + 4), tick))
    return mark_safe("".join(parts))


def win_rate_intervals(standings, palette: dict[str, str]) -> SafeString:
    """Return a dot-and-whisker chart: each model's win rate and its 95% Wilson interval."""
    rows = [s for s in standings if s.win_interval is not None]
    left, right, top, row_height = 170, WIDTH - 20, 10, 26
    bottom = top + row_height * max(len(rows), 1)
    marks = []
    for i, s in enumerate(rows):
        y = top + row_height * i + row_height / 2
        low, high = s.win_interval
        x = lambda rate: left + (right - left) * rate  # noqa: E731
        marks.append(format_html(
            '<g><title>{0}: {1} ({2} of {3}), 95% interval {4}–{5}</title>'
            '<text x="{6}" y="{7}" text-anchor="end" class="label">{8}</text>'
            '<line x1="{9}" y1="{7}" x2="{10}" y2="{7}" stroke="{11}" stroke-width="3"/>'
            '<circle cx="{12}" cy="{7}" r="5" fill="{11}"/></g>',
            s.model, _pct(s.win_rate), s.wins, s.participated, _pct(low), _pct(high),
            left - 8, _f(y + 4), _fit(s.model, left - 8), _f(x(low)), _f(x(high)), palette.get(s.model, "#333"),
            _f(x(s.win_rate)),
        ))
    body = mark_safe(_percent_axis(left, right, top, bottom, vertical=True) + "".join(marks))
    return _svg(bottom + 22, "Win rate per model with 95% interval", body)


def win_rate_over_time(series: list[tuple[datetime, str, int, int]], palette: dict[str, str]) -> SafeString:
    """Return a line chart of each model's win rate per time bucket (a point's size is not weighted)."""
    buckets = sorted({bucket for bucket, *_ in series})
    left, right, top, bottom = 44, WIDTH - 28, 10, 190  # room for the last time label, centred on `right`
    models = sorted({model for _, model, *_ in series})
    step = (right - left) / max(len(buckets) - 1, 1)
    x_of = {b: left + (step * i if len(buckets) > 1 else (right - left) / 2) for i, b in enumerate(buckets)}
    y_of = lambda rate: bottom - (bottom - top) * rate  # noqa: E731
    lines = []
    for model in models:
        points = [(x_of[b], y_of(w / n), b, n, w) for b, m, n, w in series if m == model and n]
        colour = palette.get(model, "#333")
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y, *_ in points)
        dots = format_html_join("", '<circle cx="{}" cy="{}" r="3" fill="{}"><title>{}, {}: {} of {} won</title></circle>',
                                ((_f(x), _f(y), colour, model, _when(b), w, n) for x, y, b, n, w in points))
        lines.append(format_html('<g><polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>{}</g>',
                                 path, colour, dots))
    labels = _time_labels(buckets, x_of, bottom)
    legend = format_html_join("", '<g><rect x="{}" y="{}" width="10" height="10" fill="{}"/>'
                                  '<text x="{}" y="{}" class="label">{}</text></g>',
                              ((left + 150 * (i % 4), bottom + 32 + 16 * (i // 4), palette.get(m, "#333"),
                                left + 150 * (i % 4) + 14, bottom + 41 + 16 * (i // 4), _fit(m, 150 - 14 - 6))
                               for i, m in enumerate(models)))
    body = mark_safe(_percent_axis(left, right, top, bottom, vertical=False) + labels + "".join(lines) + legend)
    return _svg(bottom + 40 + 16 * ((len(models) + 3) // 4), "Win rate over time per model", body)


def _time_labels(buckets, x_of, bottom) -> str:
    if not buckets:
        return ""
    every = max(1, len(buckets) // 6)  # at most ~7 labels, so they never overlap
    chosen = buckets[::every]
    return format_html_join("", '<text x="{}" y="{}" text-anchor="middle" class="axis" fill="#5d6677">{}</text>',
                            ((_f(x_of[b]), bottom + 18, _when(b)) for b in chosen))


def _when(moment: datetime) -> str:
    return moment.strftime("%H:%M" if moment.hour or moment.minute else "%d %b")


def call_timeline(detail) -> SafeString:
    """Return a Gantt chart of one request: generation calls from 0, ballots after generation."""
    request = detail.request
    calls = [(f"{c.model} answer", 0, c.latency_ms, c.status) for c in detail.candidates]
    calls += [(f"{row.ballot.voter_model} ballot", request.generation_ms, row.ballot.latency_ms, row.ballot.status)
              for row in detail.ballots]
    end = max([request.latency_ms] + [start + length for _, start, length, _ in calls] + [1])
    left, right, top, row_height = 190, WIDTH - 60, 6, 22
    x = lambda ms: left + (right - left) * ms / end  # noqa: E731
    bars = format_html_join("", (
        '<g><title>{0}: {1} ms from {2} ms ({3})</title>'
        '<text x="{4}" y="{5}" text-anchor="end" class="label">{6}</text>'
        '<rect x="{7}" y="{8}" width="{9}" height="14" class="bar status-{3}" fill="{11}"/>'
        '<text x="{10}" y="{5}" class="axis" fill="#5d6677">{1} ms</text></g>'),
        ((name, length, start, status, left - 8, top + row_height * i + 11, _fit(name, left - 8),
          _f(x(start)), top + row_height * i, _f(max(x(start + length) - x(start), 1.5)), _f(x(start + length) + 4),
          STATUS_FILL.get(status, "#d39c00"))
         for i, (name, start, length, status) in enumerate(calls)))
    bottom = top + row_height * len(calls)
    axis = format_html('<line x1="{0}" y1="{1}" x2="{2}" y2="{1}" class="grid" stroke="#e3e6ec"/>'
                       '<text x="{0}" y="{3}" class="axis" fill="#5d6677">0 ms</text>'
                       '<text x="{2}" y="{3}" text-anchor="end" class="axis" fill="#5d6677">{4} ms</text>',
                       left, bottom + 2, right, bottom + 16, end)
    return _svg(bottom + 22, "Timeline of the backend calls", mark_safe(bars + axis))


def _f(number: float) -> str:
    return f"{number:.1f}"


def _pct(rate: float) -> str:
    return f"{rate:.1%}"


# Wider than the average glyph of the 12px labels ('@', 'm' and 'w' included), so that a label
# cut to fit a margin of N pixels stays inside it.
LABEL_CHAR_PX = 8


def _fit(text: str, pixels: float) -> str:
    """Return `text`, shortened with an ellipsis to fit in `pixels` of a chart's labels."""
    return _short(text, int(pixels // LABEL_CHAR_PX))


def _short(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
