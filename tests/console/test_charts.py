"""The console's charts as pictures: the SVG parsed with xml.etree and its geometry checked
against the figures, computed here (the tallest bar is the largest value, points run in time
order, a gap stays a gap, an empty hour says so), plus escaping and the accessible names."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from hub.console import charts

NS = {"s": "http://www.w3.org/2000/svg"}
T0 = 1_800_000_000.0 - 1_800_000_000.0 % 60
MINUTES = [T0 - 60 * (59 - i) for i in range(60)]


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def floats(elements: list[ET.Element], name: str) -> list[float]:
    return [float(e.get(name) or "nan") for e in elements]


def test_bars_are_as_tall_as_their_values_in_time_order_and_the_tallest_is_the_largest() -> None:
    values = [0] * 60
    for index, value in ((3, 4), (10, 17), (11, 2), (40, 9), (59, 1)):
        values[index] = value
    errors = [0] * 60
    errors[10] = 5
    root = parse(charts.minute_chart("Calls per minute", MINUTES, values, overlay=errors, overlay_label="errors"))
    bars = root.findall("s:rect[@class='bar']", NS)
    drawn = [(i, v) for i, v in enumerate(values) if v]
    assert [float(b.get("data-minute") or 0) for b in bars] == [MINUTES[i] for i, _ in drawn]
    xs = floats(bars, "x")
    assert xs == sorted(xs) and len(set(xs)) == len(xs)                # left to right is earlier to later
    heights = floats(bars, "height")
    tallest = max(range(len(bars)), key=lambda i: heights[i])
    assert drawn[tallest][1] == max(values)
    for (_, value), height in zip(drawn, heights):                   # proportional to the value
        assert abs(height / heights[tallest] - value / max(values)) < 0.01
    bottoms = {round(float(b.get("y") or 0) + float(b.get("height") or 0), 1) for b in bars}
    assert len(bottoms) == 1                                         # every bar stands on the axis
    # the errors sit at the foot of their minute's bar, in proportion
    (part,) = root.findall("s:rect[@class='bar-part']", NS)
    assert float(part.get("data-minute") or 0) == MINUTES[10]
    assert abs(float(part.get("height") or 0) / heights[tallest] - 5 / 17) < 0.01
    # the axis top is a round number at or above the largest value
    top = float(root.find("s:text[@data-axis-top]", NS).get("data-axis-top"))  # type: ignore[union-attr]
    assert 17 <= top <= 20
    assert "highest 17" in (root.get("aria-label") or "") and "errors 5" in (root.get("aria-label") or "")


def test_a_line_joins_points_in_time_order_with_the_highest_point_the_largest_and_gaps_kept() -> None:
    values: list[float | None] = [None] * 60
    for index, value in ((5, 3.0), (6, 8.0), (7, 2.0), (30, 12.5), (31, 4.0), (59, 6.0)):
        values[index] = value
    root = parse(charts.minute_chart("Backlog", MINUTES, values, kind="line", latest="now 6"))
    points = root.findall("s:circle[@class='point']", NS)
    present = [(i, v) for i, v in enumerate(values) if v is not None]
    assert [float(p.get("data-minute") or 0) for p in points] == [MINUTES[i] for i, _ in present]
    xs, ys = floats(points, "cx"), floats(points, "cy")
    assert xs == sorted(xs)
    highest = min(range(len(points)), key=lambda i: ys[i])           # SVG's y grows downwards
    assert present[highest][1] == 12.5
    lowest = max(range(len(points)), key=lambda i: ys[i])
    assert present[lowest][1] == 2.0
    # three runs of minutes with values: two lines (a lone point has none), broken at the gaps
    lines = root.findall("s:polyline", NS)
    assert [len((line.get("points") or "").split()) for line in lines] == [3, 2]
    # the latest value is written as text, and in the accessible name
    assert root.find("s:text[@class='chart-latest']", NS).text == "now 6"  # type: ignore[union-attr]
    assert "latest now 6" in (root.get("aria-label") or "")
    assert root.find("s:title", NS).text == root.get("aria-label")  # type: ignore[union-attr]


def test_an_empty_hour_draws_an_empty_chart_that_says_so() -> None:
    for kind, values in (("line", [None] * 60), ("bars", [0] * 60), ("bars", [])):
        root = parse(charts.minute_chart("Errors per minute", MINUTES, values, kind=kind))
        assert root.get("data-empty") == "true"
        texts = [t.text for t in root.iter(f"{{{NS['s']}}}text")]
        assert charts.EMPTY in texts
        assert not root.findall("s:rect[@class='bar']", NS) and not root.findall("s:circle", NS)
        assert charts.EMPTY in (root.get("aria-label") or "")


def test_text_is_escaped() -> None:
    root = parse(charts.minute_chart('<b>"x" & y</b>', MINUTES, [1] * 60, chart_id='a"b'))
    assert root.find("s:text[@class='chart-title']", NS).text == '<b>"x" & y</b>'  # type: ignore[union-attr]
    assert root.get("id") == 'a"b'


def entry(kind: str, at: float, **more: object) -> dict[str, object]:
    return {"kind": kind, "at": at, **more}


def test_the_timeline_puts_each_push_in_its_connectors_lane_in_time_order() -> None:
    entries = [  # newest first, as hub.core.timeline.read gives them
        entry("push", T0 + 300, connector="ometria", mapping_version=2, joined={}, left={"L9": "list"}),
        entry("failed", T0 + 200, connector="ometria", status=500, code=None),
        entry("push", T0 + 100, connector="klaviyo", mapping_version=0, joined={"RfMkt1": "list"}, left={},
              cause={"type": "friend.converted", "event": "e2"}),
        entry("event", T0, type="friend.converted", source="api", event="e2", **{"as": "friend"}),
        entry("event", T0 - 50, type="referral.created", source="<api>", event="e1", **{"as": "friend"}),
    ]
    root = parse(charts.timeline(entries, ["klaviyo", "ometria", "splio"]))
    lanes = [t.text for t in root.findall("s:text[@class='lane']", NS)]
    assert lanes == ["events", "klaviyo", "ometria", "splio"]
    lane_y = {t.text: float(t.get("y") or 0) for t in root.findall("s:text[@class='lane']", NS)}
    marks = root.findall("s:*[@class='mark']", NS)
    assert len(marks) == len(entries)
    ats = [float(m.get("data-at") or 0) for m in marks]
    assert ats == sorted(float(e["at"]) for e in entries)  # type: ignore[arg-type]

    def position(mark: ET.Element) -> tuple[float, float]:
        if mark.tag.endswith("g"):
            x, y = (mark.get("transform") or "")[len("translate("):-1].split(",")
            return float(x), float(y)
        return float(mark.get("cx") or 0), float(mark.get("cy") or 0)
    xs = [position(m)[0] for m in marks]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)
    # x is proportional to time
    span = (xs[-1] - xs[0]) / (ats[-1] - ats[0])
    for x, at in zip(xs, ats):
        assert abs((x - xs[0]) - span * (at - ats[0])) < 0.05
    for mark in marks:
        lane = mark.get("data-lane") or ""
        assert abs(position(mark)[1] + 4 - lane_y[lane]) < charts.LANE / 2    # in its lane
    outcomes = {(m.get("data-lane"), m.get("data-outcome")) for m in marks}
    assert outcomes == {("events", "event"), ("klaviyo", "landed"), ("ometria", "failed"), ("ometria", "landed")}
    tips = {m.get("data-at"): m.find("s:title", NS).text for m in marks}  # type: ignore[union-attr]
    klaviyo = tips[f"{T0 + 100:.3f}"] or ""
    assert klaviyo.startswith("pushed to klaviyo")
    assert "joined: RfMkt1 (list)" in klaviyo and "left: none" in klaviyo and "friend.converted" in klaviyo
    assert charts.stamp(T0 + 100) in klaviyo
    assert "left: L9 (list)" in (tips[f"{T0 + 300:.3f}"] or "")
    assert "from <api>" in (tips[f"{T0 - 50:.3f}"] or "")            # escaped in the SVG, read back as written
    assert "2 events received, 2 pushes landed, 1 failed" in (root.get("aria-label") or "")


def test_an_empty_timeline_says_nothing_was_recorded() -> None:
    root = parse(charts.timeline([], ["klaviyo"]))
    assert not root.findall("s:*[@class='mark']", NS)
    assert "nothing recorded yet" in [t.text for t in root.iter(f"{{{NS['s']}}}text")]


def test_marks_at_the_same_moment_are_all_drawn_apart_at_that_moment() -> None:
    entries = [entry("event", T0, type=f"t{n}", source="api", event=f"e{n}", **{"as": "friend"}) for n in range(3)]
    entries.append(entry("push", T0 + 1, connector="klaviyo", joined={}, left={}))
    root = parse(charts.timeline(entries, ["klaviyo"]))
    events = [m for m in root.findall("s:circle[@class='mark']", NS) if m.get("data-lane") == "events"]
    assert len(events) == 3
    assert len({m.get("cx") for m in events}) == 1                    # one moment
    assert len({m.get("cy") for m in events}) == 3                    # three marks to see


def test_landed_failed_and_erased_marks_differ_in_shape_and_the_legend_names_each() -> None:
    entries = [entry("push", T0, connector="splio", joined={}, left={}),
               entry("failed", T0 + 5, connector="splio", status=503, code="busy"),
               entry("erased", T0 + 9, connector="splio")]
    root = parse(charts.timeline(entries, ["splio"]))
    shapes = {m.get("data-outcome"): m.tag.split("}")[1] for m in root.findall("s:*[@class='mark']", NS)}
    assert shapes == {"landed": "circle", "failed": "g", "erased": "rect"}
    legend = [t.text for g in root.findall("s:g[@class='legend']", NS) for t in g.findall("s:text", NS)]
    assert legend == ["landed", "failed", "event received", "erased"]


def test_a_push_whose_lists_are_no_longer_known_says_so_rather_than_none() -> None:
    entry = {"at": 1796014824.254, "kind": "push", "connector": "splio", "mapping_version": 1, "fields": {},
             "lists": {}, "joined": {}, "left": {}, "not_kept": ["fields", "lists"]}
    text = charts.describe(entry)
    assert text.endswith("; lists no longer known") and "joined" not in text
    assert "joined: L1 (marketing); left: none" in charts.describe({**entry, "joined": {"L1": "marketing"}, "not_kept": []})
