"""The console's pictures, drawn on the server as inline SVG: pure functions from figures to an
SVG string (no library, no script, nothing fetched). Every text is escaped; every chart has a
<title> and an aria-label that say what it shows, and its latest value in words, so a screen
reader and a reader of the page get the same figure as the picture.

- `minute_chart`: one series per minute over the last hour, as bars (counts: calls with their
  errors stacked in another colour, errors) or as a line (a gauge: backlog; a figure: freshness).
  A minute with no value (None) is a gap; a chart without any value says so instead of drawing.
- `timeline`: a contact's events and pushes on a time axis, one lane per connector.
"""
from __future__ import annotations

import math
from datetime import datetime, timezone
from html import escape
from typing import Any, Sequence

WIDTH, HEIGHT = 280, 120
LEFT, RIGHT, TOP, BOTTOM = 34, 8, 26, 20          # the plot's margins inside the picture
EMPTY = "no data in the last hour"
COLOURS = {"calls": "#0a58ca", "errors": "#b42318", "backlog": "#9a6700", "freshness": "#067647",
           "event": "#57606a", "push": "#067647", "failed": "#b42318", "erased": "#6f42c1"}


def attr(value: Any) -> str:
    return escape(str(value), quote=True)


def nice_ceiling(value: float) -> float:
    """The axis top: the smallest of 1, 2, 5 times a power of ten at or above the value."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power + 1e-9:
            return float(step * power)
    return float(10 * power)


def number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:.0f}" if float(value).is_integer() or abs(value) >= 10 else f"{value:.1f}"
    return f"{text}{unit}"


def clock(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%H:%M")


def minute_chart(title: str, minutes: Sequence[float], values: Sequence[float | None], *, kind: str = "bars",
                 colour: str = COLOURS["calls"], unit: str = "", latest: str | None = None,
                 overlay: Sequence[float | None] | None = None, overlay_label: str = "",
                 overlay_colour: str = COLOURS["errors"], chart_id: str = "") -> str:
    """A small chart of one value per minute (oldest first; `minutes` are each minute's start in
    epoch seconds). kind "bars" draws each minute as a bar, with `overlay` (a part of the value,
    e.g. the errors among the calls) stacked at its foot in `overlay_colour`; kind "line" joins
    the minutes that have a value. `latest` is the figure written beside the title (default: the
    last value present)."""
    present = [v for v in values if v is not None]
    last = next((v for v in reversed(values) if v is not None), None)
    shown = latest if latest is not None else number(last, unit)
    empty = not present or (kind == "bars" and not any(present))
    summary = f"{title}, last hour: {EMPTY}" if empty else f"{title}, last hour: latest {shown}, highest {number(max(present), unit)}"
    if overlay is not None and not empty:
        summary += f"; {overlay_label} {number(sum(v or 0 for v in overlay))} in the hour"
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
             f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{attr(summary)}"'
             + (f' id="{attr(chart_id)}"' if chart_id else "")
             + f' data-kind="{attr(kind)}" data-empty="{"true" if empty else "false"}">',
             f"<title>{escape(summary)}</title>",
             f'<text class="chart-title" x="{LEFT}" y="14">{escape(title)}</text>',
             f'<text class="chart-latest" x="{WIDTH - RIGHT}" y="14" text-anchor="end">{escape(shown if not empty else "-")}</text>',
             f'<rect class="plot" x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#d0d7de"/>']
    count = max(len(values), 1)
    step = plot_w / count
    if minutes:
        parts.append(f'<text class="axis" x="{LEFT}" y="{HEIGHT - 6}">{escape(clock(minutes[0]))}</text>')
        parts.append(f'<text class="axis" x="{WIDTH - RIGHT}" y="{HEIGHT - 6}" text-anchor="end">'
                     f'{escape(clock(minutes[-1] + 60))}</text>')
    if empty:
        parts.append(f'<text class="chart-empty" x="{LEFT + plot_w / 2:.1f}" y="{TOP + plot_h / 2 + 4:.1f}" '
                     f'text-anchor="middle">{EMPTY}</text>')
        parts.append("</svg>")
        return "".join(parts)
    top = nice_ceiling(max(present))
    parts.append(f'<text class="axis" x="{LEFT - 4}" y="{TOP + 8}" text-anchor="end" data-axis-top="{top:g}">'
                 f'{escape(number(top, unit))}</text>')
    parts.append(f'<text class="axis" x="{LEFT - 4}" y="{TOP + plot_h}" text-anchor="end">0</text>')

    def y_of(value: float) -> float:
        return TOP + plot_h * (1 - value / top)

    if kind == "bars":
        width = max(step - 1, 1.0)
        for index, value in enumerate(values):
            if not value:
                continue
            x = LEFT + index * step + (step - width) / 2
            moment = minutes[index] if index < len(minutes) else 0
            part = (overlay[index] or 0) if overlay is not None and index < len(overlay) else 0
            label = f"{clock(moment)}: {number(value, unit)}" + (f", {overlay_label} {number(part)}" if overlay is not None else "")
            parts.append(f'<rect class="bar" x="{x:.2f}" y="{y_of(value):.2f}" width="{width:.2f}" '
                         f'height="{TOP + plot_h - y_of(value):.2f}" fill="{attr(colour)}" data-minute="{moment:.0f}" '
                         f'data-value="{value:g}"><title>{escape(label)}</title></rect>')
            if part:
                parts.append(f'<rect class="bar-part" x="{x:.2f}" y="{y_of(part):.2f}" width="{width:.2f}" '
                             f'height="{TOP + plot_h - y_of(part):.2f}" fill="{attr(overlay_colour)}" '
                             f'data-minute="{moment:.0f}" data-value="{part:g}"/>')
    else:
        run: list[str] = []
        runs: list[list[str]] = []
        dots: list[str] = []
        for index, value in enumerate(values):
            if value is None:
                if run:
                    runs.append(run)
                run = []
                continue
            x, y = LEFT + (index + 0.5) * step, y_of(value)
            run.append(f"{x:.2f},{y:.2f}")
            moment = minutes[index] if index < len(minutes) else 0
            dots.append(f'<circle class="point" cx="{x:.2f}" cy="{y:.2f}" r="2.5" fill="{attr(colour)}" '
                        f'data-minute="{moment:.0f}" data-value="{value:g}">'
                        f'<title>{escape(clock(moment))}: {escape(number(value, unit))}</title></circle>')
        if run:
            runs.append(run)
        # the lines under the points: a gap (an unsampled minute) breaks the line
        parts += [f'<polyline class="line" points="{" ".join(points)}" fill="none" stroke="{attr(colour)}" '
                  f'stroke-width="1.5"/>' for points in runs if len(points) > 1]
        parts += dots
    parts.append("</svg>")
    return "".join(parts)


# -- a contact's timeline -------------------------------------------------------------------
T_WIDTH, T_LEFT, T_RIGHT, T_TOP, LANE = 960, 110, 20, 28, 36
MARKS = {"push": "landed", "failed": "failed", "erased": "erased"}
SPAN = 10.0          # seconds: the shortest axis drawn, so marks a moment apart stay apart
NEAR = 12.0          # pixels: a mark this close to the one before it in its lane moves off the line
SHIFTS = (0.0, -12.0, 12.0)


def stamp(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def lists_text(lists: dict[str, Any] | None) -> str:
    return ", ".join(f"{i} ({kind})" for i, kind in sorted((lists or {}).items()))


def describe(entry: dict[str, Any]) -> str:
    """The tooltip of one mark: what happened, when, and for a push the lists it joined and left."""
    at = stamp(float(entry["at"]))
    kind = entry.get("kind")
    if kind == "event":
        return f"event {entry.get('type')} from {entry.get('source')} (as {entry.get('as')}) at {at}, id {entry.get('event')}"
    if kind == "push":
        text = f"pushed to {entry.get('connector')} at {at} (mapping version {entry.get('mapping_version')})"
        cause = entry.get("cause")
        if cause:
            text += f" after event {cause.get('type')}"
        if "lists" in (entry.get("not_kept") or ()):
            text += "; lists no longer known"
        else:
            text += f"; joined: {lists_text(entry.get('joined')) or 'none'}; left: {lists_text(entry.get('left')) or 'none'}"
        return text
    if kind == "failed":
        return f"push to {entry.get('connector')} failed at {at}: HTTP {entry.get('status') or '-'} {entry.get('code') or ''}".strip()
    return f"{kind} at {entry.get('connector') or ''} at {at}"


def timeline(entries: Sequence[dict[str, Any]], connectors: Sequence[str], label: str = "Timeline") -> str:
    """The contact's timeline on one time axis: a lane for the events received, one per connector
    with a mark per push (landed: a green dot, failed: a red cross, erased: a purple square)."""
    lanes = ["events", *connectors]
    for entry in entries:
        name = entry.get("connector")
        if name and name not in lanes:
            lanes.append(name)
    height = T_TOP + LANE * len(lanes) + 30
    plot_w = T_WIDTH - T_LEFT - T_RIGHT
    moments = [float(e["at"]) for e in entries if e.get("at") is not None]
    counts = {k: sum(1 for e in entries if e.get("kind") == k) for k in ("event", "push", "failed", "erased")}
    summary = (f"{label}: {counts['event']} events received, {counts['push']} pushes landed, "
               f"{counts['failed']} failed" + (f", {counts['erased']} erased" if counts["erased"] else "")
               + (f", from {stamp(min(moments))} to {stamp(max(moments))}" if moments else ""))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline-chart" viewBox="0 0 {T_WIDTH} {height}" '
             f'width="{T_WIDTH}" height="{height}" role="img" aria-label="{attr(summary)}" id="timeline-chart">',
             f"<title>{escape(summary)}</title>"]
    for index, lane in enumerate(lanes):
        y = T_TOP + LANE * index + LANE / 2
        parts.append(f'<text class="lane" x="{T_LEFT - 10}" y="{y + 4:.1f}" text-anchor="end">{escape(lane)}</text>')
        parts.append(f'<line x1="{T_LEFT}" y1="{y:.1f}" x2="{T_WIDTH - T_RIGHT}" y2="{y:.1f}" stroke="#d0d7de"/>')
    if not moments:
        parts.append(f'<text class="chart-empty" x="{T_LEFT + plot_w / 2:.1f}" y="{T_TOP - 10}" '
                     f'text-anchor="middle">nothing recorded yet</text></svg>')
        return "".join(parts)
    start, end = min(moments), max(moments)
    if end - start < SPAN:
        middle = (start + end) / 2
        start, end = middle - SPAN / 2, middle + SPAN / 2
    pad = (end - start) * 0.03
    start, end = start - pad, end + pad

    def x_of(moment: float) -> float:
        return T_LEFT + plot_w * (moment - start) / (end - start)

    axis_y = T_TOP + LANE * len(lanes)
    parts.append(f'<line x1="{T_LEFT}" y1="{axis_y}" x2="{T_WIDTH - T_RIGHT}" y2="{axis_y}" stroke="#57606a"/>')
    for fraction, anchor in ((0.0, "start"), (0.5, "middle"), (1.0, "end")):
        moment = start + (end - start) * fraction
        x = T_LEFT + plot_w * fraction
        parts.append(f'<line x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{axis_y + 4}" stroke="#57606a"/>')
        parts.append(f'<text class="axis" x="{x:.1f}" y="{axis_y + 18}" text-anchor="{anchor}">{escape(stamp(moment))}</text>')
    previous: dict[str, tuple[float, int]] = {}      # lane -> (x, shift) of its last mark
    for entry in sorted(entries, key=lambda e: float(e["at"])):
        kind = entry.get("kind")
        where = "events" if kind == "event" else str(entry.get("connector"))
        if where not in lanes:
            continue
        x = x_of(float(entry["at"]))
        # marks at (nearly) the same moment are spread across the lane's height, not drawn over each other
        last_x, shift = previous.get(where, (-NEAR * 2, len(SHIFTS) - 1))
        shift = (shift + 1) % len(SHIFTS) if x - last_x < NEAR else 0
        previous[where] = (x, shift)
        y = T_TOP + LANE * lanes.index(where) + LANE / 2 + SHIFTS[shift]
        tip = f"<title>{escape(describe(entry))}</title>"
        common = (f'class="mark" data-kind="{attr(kind)}" data-outcome="{attr(MARKS.get(str(kind), kind))}" '
                  f'data-lane="{attr(where)}" data-at="{float(entry["at"]):.3f}"')
        if kind == "failed":
            parts.append(f'<g {common} transform="translate({x:.2f},{y:.2f})"><rect x="-7" y="-7" width="14" height="14" '
                         f'fill="transparent"/><path d="M-5,-5L5,5M-5,5L5,-5" stroke="{COLOURS["failed"]}" '
                         f'stroke-width="2.5"/>{tip}</g>')
        elif kind == "erased":
            parts.append(f'<rect {common} x="{x - 5:.2f}" y="{y - 5:.2f}" width="10" height="10" '
                         f'fill="{COLOURS["erased"]}">{tip}</rect>')
        elif kind == "push":
            parts.append(f'<circle {common} cx="{x:.2f}" cy="{y:.2f}" r="6" fill="{COLOURS["push"]}" '
                         f'stroke="#fff" stroke-width="1">{tip}</circle>')
        else:
            parts.append(f'<circle {common} cx="{x:.2f}" cy="{y:.2f}" r="5" fill="#fff" stroke="{COLOURS["event"]}" '
                         f'stroke-width="2">{tip}</circle>')
    legend = [("push", "landed"), ("failed", "failed"), ("event", "event received")]
    if counts["erased"]:
        legend.append(("erased", "erased"))
    x = T_LEFT
    for kind, text in legend:
        colour = COLOURS[kind]
        mark = (f'<path d="M{x - 4},{10}L{x + 4},{18}M{x - 4},{18}L{x + 4},{10}" stroke="{colour}" stroke-width="2.5"/>'
                if kind == "failed" else
                f'<rect x="{x - 4}" y="10" width="8" height="8" fill="{colour}"/>' if kind == "erased" else
                f'<circle cx="{x}" cy="14" r="4.5" fill="{"#fff" if kind == "event" else colour}" stroke="{colour}" stroke-width="2"/>')
        parts.append(f'<g class="legend">{mark}<text x="{x + 9}" y="18">{escape(text)}</text></g>')
        x += 24 + 8 * len(text)
    parts.append("</svg>")
    return "".join(parts)
