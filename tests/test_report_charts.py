"""The report's memory and profile pictures: what they draw is the memory plan's and the
kernel profile's own numbers."""

import json
import re
import xml.etree.ElementTree as ET

import pytest

import kcompile as keras
from kcompile import layers
from kcompile.ir import parse_graph, print_graph
from kcompile.passes.memory import memory_report
from kcompile.report import memory_chart, roofline, svg
from kcompile.tools import inspect
from kcompile.tools.cli import stage_graph
from kcompile.tools.inspect import KernelProfile
from kcompile.tools.machine import Machine

SVG = re.compile(r"<svg\b.*?</svg>", re.S)
FAKE = Machine(ghz=2.0, cores=2, lanes=8, copy_gbs=10.0)  # FMA peak 128 GFLOP/s


def _model():
    """Flatten makes a view; Adam's updates are written in place into their inputs."""
    model = keras.Sequential(
        [
            keras.Input(shape=(4, 3)),
            layers.Flatten(),
            layers.Dense(8, activation="relu"),
            layers.Dense(3),
        ]
    )
    model.compile(loss="mse", optimizer="adam")
    return model


@pytest.fixture(scope="module")
def planned():
    return stage_graph(_model(), "train")


@pytest.fixture(scope="module")
def memory(planned):
    return memory_chart.memory_section(planned)


def _svgs(html: str) -> list[ET.Element]:
    charts = [ET.fromstring(s) for s in SVG.findall(html)]
    assert charts and all(len(c) for c in charts)
    return charts


def _tag(e: ET.Element) -> str:
    return e.tag.rsplit("}", 1)[-1]


def _printed_plan(graph) -> dict[str, dict]:
    """The plan as the graph's text prints it: value -> offset or alias, bytes, live."""
    line = re.compile(r"^\s*(%\S+) (offset=(\d+)|alias=\S+) bytes=(\d+)(\*N)? live=(\d+):(\d+)")
    plan = {}
    for m in map(line.match, print_graph(graph).splitlines()):
        if m:
            size = int(m[4]) * (graph.memory.max_batch if m[5] else 1)
            offset = int(m[3]) if m[3] is not None else None
            plan[m[1]] = {"offset": offset, "bytes": size, "start": int(m[6]), "end": int(m[7])}
    return plan


# --- the memory plan ---------------------------------------------------------------


def test_each_buffer_owning_arena_bytes_is_one_bar_at_its_plans_place(planned, memory):
    printed = _printed_plan(planned)
    owned = {v: p for v, p in printed.items() if p["offset"] is not None}
    rows = memory.data["buffers"]
    assert sorted(r["value"] for r in rows) == sorted(owned)  # every one, once
    for r in rows:
        assert {k: r[k] for k in ("offset", "bytes", "start", "end")} == owned[r["value"]]
    assert len(memory.data["unowned"]) == len(printed) - len(owned)


def test_the_bars_are_drawn_at_the_plans_live_ranges_and_offsets(planned, memory):
    timeline = _svgs(memory.html)[0]
    xs, ys = memory_chart.timeline_scales(len(planned.nodes), planned.memory.arena_bytes)
    bars = {e.get("data-value"): e for e in timeline.iter() if e.get("data-value")}
    assert len(bars) == len(memory.data["buffers"])
    for r in memory.data["buffers"]:
        bar = bars[r["value"]]
        x, y, w, h = (int(bar.get(k)) for k in ("x", "y", "width", "height"))
        assert x == xs(r["start"]) and x + w == xs(r["end"] + 1)
        assert y + h == ys(r["offset"])
        assert h == max(2, ys(r["offset"]) - ys(r["offset"] + r["bytes"]))
        title = bar.find("{http://www.w3.org/2000/svg}title").text
        assert title.startswith(r["value"] + " ") and r["kind"] in title


def test_the_peak_is_the_arena_and_every_buffer_fits_under_it(planned, memory):
    arena = planned.memory.arena_bytes
    assert memory.data["arena_bytes"] == arena
    assert max(r["offset"] + r["bytes"] for r in memory.data["buffers"]) <= arena
    _, ys = memory_chart.timeline_scales(len(planned.nodes), arena)
    dashed = [e for e in _svgs(memory.html)[0].iter() if e.get("stroke-dasharray")]
    assert [(int(e.get("y1")), int(e.get("y2"))) for e in dashed] == [(ys(arena), ys(arena))]


def test_buffers_live_at_once_do_not_share_bytes(memory):
    rows = memory.data["buffers"]
    for i, a in enumerate(rows):
        for b in rows[i + 1 :]:
            if a["start"] <= b["end"] and b["start"] <= a["end"]:
                apart = (
                    a["offset"] + a["bytes"] <= b["offset"]
                    or b["offset"] + b["bytes"] <= a["offset"]
                )
                assert apart, (a, b)


def test_kinds_are_the_ones_kcompile_memory_sums(planned, memory):
    """Per kind, bytes as ``memory_report`` counts them; views and in-place results own
    no arena bytes and are counted in their own legend line."""
    report = memory_report(planned)
    assert {k: t["bytes"] for k, t in memory.data["kinds"].items()} == report.by_category
    unowned = {r["kind"] for r in memory.data["unowned"]}
    assert unowned == {"views (reshapes, no copy)", "written in place into inputs"}
    assert not unowned & {r["kind"] for r in memory.data["buffers"]}
    legend = re.search(r"no storage of their own: (.*?)</p>", memory.html)[1]
    for kind in unowned:
        assert f"{kind}: {memory.data['kinds'][kind]['count']} (" in legend
    assert memory_report(planned).text() in memory.html.replace("&#x27;", "'")


def test_the_curve_is_the_arena_laid_out_for_each_batch(planned):
    section = memory_chart.memory_section(planned, batches=(1, 7, 64, 1000))
    plan = planned.memory
    assert section.data["curve"] == [[b, plan.layout(b)[1]] for b in (1, 7, 64, 1000)]
    curve = _svgs(section.html)[1]
    points = [e.get("data-batch") for e in curve.iter() if e.get("data-batch")]
    assert points == ["1", "7", "64", "1000"]
    json.dumps(section.data)  # the page embeds it


def test_a_graph_without_a_plan_is_refused_by_name():
    traced = parse_graph(inspect.pipeline_stages(_model(), "predict")[0][1])
    assert traced.memory is None
    with pytest.raises(ValueError, match=f"graph {traced.name} has no memory plan"):
        memory_chart.memory_section(traced)


# --- the profile -------------------------------------------------------------------


def _handmade(machine=FAKE) -> KernelProfile:
    """10 calls: a product at 10 GFLOP/s, a copy at 4 GB/s, an int8 product at 200
    GOP/s, and a loop body's kernel."""
    rows = [
        ("k0_fused", "fused matmul: matmul add -> f32[N,8]", 10, 1e-3),
        ("k1_fused", "fused elementwise: <mul> & add -> f32[N,8]", 10, 5e-4),
        ("k2_matmul", "matmul -> i32[N,8]", 10, 2e-4),
    ]
    inner = [("k3_scan_k0_fused", "fused elementwise: tanh", 50, 1e-4)]
    work = {
        "k0_fused": (1e6, 1e4, "fma"),
        "k1_fused": (0.0, 2e5, "fma"),
        "k2_matmul": (4e6, 2e4, "madd_i8"),
    }
    return KernelProfile("train", 16, 10, rows, inner, work, machine)


def test_each_kernels_numbers_come_from_the_profile():
    profile = _handmade()
    total = sum(r[3] for r in profile.rows)
    rows = roofline.kernel_rows(profile)
    assert [r["name"] for r in rows] == ["k0_fused", "k1_fused", "k2_matmul"]  # by time
    for r, (name, what, _, seconds) in zip(rows, profile.rows):
        flops, nbytes, engine = profile.work[name]
        per_call = seconds / profile.calls
        assert (r["name"], r["what"], r["engine"]) == (name, what, engine)
        assert r["us"] == pytest.approx(per_call * 1e6)
        assert r["share"] == pytest.approx(seconds / total)
        assert r["gflops"] == pytest.approx(flops / per_call / 1e9)
        assert r["gbs"] == pytest.approx(nbytes / per_call / 1e9)
        assert r["intensity"] == pytest.approx(flops / nbytes)
    # 10 GFLOP/s of the FMAs' 128; 4 GB/s of the copy's 10; 200 of int8's 256
    assert [r["peak_share"] for r in rows] == pytest.approx([10 / 128, 0.4, 200 / 256])
    assert roofline.roofs(profile) == {"fma": 128.0, "madd_i8": 256.0}


def test_kernel_times_are_what_kcompile_profile_prints():
    profile = _handmade()
    times = roofline.kernel_times(profile)
    assert set(times) == {"k0_fused", "k1_fused", "k2_matmul", "k3_scan_k0_fused"}
    printed = {line.split()[0]: " ".join(line.split()) for line in profile.text().splitlines()}
    for name, t in times.items():
        assert f"{name} {t['us']:.2f} {t['share']:.1%} {t['rate']}" in printed[name]
    assert times["k0_fused"]["rate"] == "10.0 GFLOP/s 8%"
    assert times["k3_scan_k0_fused"]["calls"] == 5 and not times["k3_scan_k0_fused"]["rate"]


def test_roofline_points_sit_at_intensity_and_rate():
    profile = _handmade()
    section = roofline.profile_section(profile)
    _, roof = _svgs(section.html)
    products = [r for r in section.data["kernels"] if r["flops"]]
    xs, ys = roofline.roofline_scales(products, section.data["roofs"], FAKE.copy_gbs)
    points = {e.get("data-kernel"): e for e in roof.iter() if _tag(e) == "circle"}
    assert set(points) == {"k0_fused", "k2_matmul"}  # the copy kernel is no point
    for name, point in points.items():
        flops, nbytes, _ = profile.work[name]
        seconds = next(r[3] for r in profile.rows if r[0] == name)
        assert int(point.get("cx")) == xs(flops / nbytes)
        assert int(point.get("cy")) == ys(flops / (seconds / profile.calls) / 1e9)
    roof_rows = {
        int(e.get("y1")) for e in roof.iter() if _tag(e) == "line" and e.get("y1") == e.get("y2")
    }
    assert {ys(128.0), ys(256.0)} <= roof_rows


def test_bars_are_the_slowest_kernels_as_long_as_their_time():
    section = roofline.profile_section(_handmade(), top=2)
    bars = [e for e in _svgs(section.html)[0].iter() if _tag(e) == "rect"]
    assert [b.get("data-kernel") for b in bars] == ["k0_fused", "k1_fused"]
    widths = [int(b.get("width")) for b in bars]
    us = [r["us"] for r in section.data["kernels"][:2]]
    assert widths[1] == pytest.approx(widths[0] * us[1] / us[0], abs=1)


def test_every_kernel_names_itself_for_the_page():
    profile = _handmade()
    section = roofline.profile_section(profile)
    names = {r[0] for r in profile.rows} | {r[0] for r in profile.inner}
    named = set(re.findall(r'data-kernel="([^"]*)"', section.html))
    assert named == names
    tables = re.findall(r"<table\b.*?</table>", section.html, re.S)
    rows = [tr.get("data-kernel") for t in tables for tr in ET.fromstring(t).iter("tr")]
    assert sorted(r for r in rows if r) == sorted(names)


def test_text_in_the_pictures_is_escaped():
    section = roofline.profile_section(_handmade())
    assert "&lt;mul&gt; &amp; add" in section.html and "<mul>" not in section.html
    table = re.search(r"<table\b.*?</table>", section.html, re.S)[0]
    assert "fused elementwise: <mul> & add -> f32[N,8]" in ET.tostring(
        ET.fromstring(table), "unicode", method="text"
    )
    chart = svg.svg(10, 10, [svg.text(0, 0, 'a<b & "c"', data_kernel='k"0')], "x")
    element = next(e for e in ET.fromstring(chart).iter() if _tag(e) == "text")
    assert (element.text, element.get("data-kernel")) == ('a<b & "c"', 'k"0')


def test_without_a_machine_there_are_points_but_no_roofs():
    section = roofline.profile_section(_handmade(machine=None))
    assert section.data["roofs"] == {} and section.data["machine"] is None
    assert all(r["peak_share"] is None for r in section.data["kernels"])
    roof = _svgs(section.html)[1]
    assert len([e for e in roof.iter() if _tag(e) == "circle"]) == 2
    amx = Machine(ghz=2.0, cores=2, lanes=16, copy_gbs=10.0, amx=True)
    assert "amx_bf16" in roofline.roofs(_handmade(machine=amx))


def test_a_profiled_models_section(monkeypatch):
    """A real step's profile (with a stated machine, so nothing is measured)."""
    monkeypatch.setattr("kcompile.tools.machine.machine", lambda: FAKE)
    model = keras.Sequential(
        [keras.Input(shape=(12,)), layers.Dense(8, activation="relu"), layers.Dense(3)]
    )
    model.compile(loss="mse", optimizer="adam")
    profile = inspect.profile_step(model, "train", batch=16, calls=5)
    section = roofline.profile_section(profile)
    json.dumps(section.data)
    names = [r[0] for r in profile.rows]
    assert sorted(r["name"] for r in section.data["kernels"]) == sorted(names)
    assert sum(
        t["share"] for n, t in roofline.kernel_times(profile).items() if n in names
    ) == pytest.approx(1)
    products = [r for r in section.data["kernels"] if r["flops"]]
    assert products  # the Dense layers' matrix products, forward and backward
    xs, ys = roofline.roofline_scales(products, section.data["roofs"], FAKE.copy_gbs)
    roof = _svgs(section.html)[1]
    points = {e.get("data-kernel"): e for e in roof.iter() if _tag(e) == "circle"}
    assert set(points) == {r["name"] for r in products}
    for name, (flops, nbytes, _) in profile.work.items():
        if flops:
            seconds = next(r[3] for r in profile.rows if r[0] == name)
            assert int(points[name].get("cy")) == ys(flops * profile.calls / seconds / 1e9)
            assert int(points[name].get("cx")) == xs(flops / nbytes)


def test_non_profiles_are_refused():
    with pytest.raises(TypeError, match="expected a KernelProfile"):
        roofline.profile_section({"rows": []})


# --- the drawing helpers -----------------------------------------------------------


def test_scales_and_ticks():
    log = svg.Scale(1, 1000, 0, 300, log=True)
    assert (log(1), log(10), log(1000)) == (0, 100, 300)
    assert svg.Scale(0, 10, 400, 0)(2.5) == 300  # a y axis grows upwards
    assert svg.log_ticks(1, 1e6) == [10.0**e for e in range(7)]
    assert svg.log_ticks(1, 100) == [1, 2, 5, 10, 20, 50, 100]
    assert svg.log_ticks(1, 4096, base=2, most=7) == [4.0**e for e in range(7)]
    assert svg.linear_ticks(0, 47, 5) == [0, 10, 20, 30, 40]
    assert svg.byte_ticks(3 << 20, 3) == [0, 1 << 20, 2 << 20, 3 << 20]
    assert svg.log_bounds(3, 300) == (1, 1000)
    with pytest.raises(ValueError, match="log scale needs 0 < lo < hi"):
        svg.Scale(0, 10, 0, 100, log=True)
