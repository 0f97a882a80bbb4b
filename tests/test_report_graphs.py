"""kcompile report's graphs at each stage and what each pass changed, read against the
compiler's own structures: the parsed stages, the code generator's kernels, the profile's
names and inspect's diff."""

import html
import itertools
import re
import xml.etree.ElementTree as ET

import pytest

import kcompile as keras
from kcompile import layers
from kcompile.codegen.lowering.step import kernel_nodes
from kcompile.ir import parse_graph
from kcompile.ir.buffers import plan_buffers
from kcompile.passes import default_passes
from kcompile.passes.manager import Pass
from kcompile.report import graph_svg
from kcompile.report.pass_diffs import pass_section
from kcompile.report.stages import stage_section
from kcompile.tools import inspect


def _mlp(activation: str = "relu"):
    model = keras.Sequential(
        [
            keras.Input(shape=(12,)),
            layers.Dense(8),
            layers.Activation("relu", name=activation),
            layers.Dense(3),
        ]
    )
    model.compile(loss="mse", optimizer="adam")
    return model


def _conv():
    model = keras.Sequential(
        [
            keras.Input(shape=(8, 8, 2)),
            layers.Conv2D(4, 3, activation="relu"),
            layers.Flatten(),
            layers.Dense(3),
        ]
    )
    model.compile(loss="mse", optimizer="sgd")
    return model


@pytest.fixture(scope="module")
def mlp():
    return _mlp()


@pytest.fixture(scope="module")
def mlp_stages(mlp):
    return inspect.pipeline_stages(mlp, "train")


@pytest.fixture(scope="module")
def mlp_profile(mlp):
    """The profile's rows as the page hands them to the section: name -> us, rate, share."""
    result = inspect.profile_step(mlp, "train", batch=4, calls=2)
    total = sum(seconds for *_, seconds in result.rows)
    return {
        name: {"us": s / result.calls * 1e6, "rate": result.rate(name, s), "share": s / total}
        for name, _, _, s in result.rows
    }


@pytest.fixture(scope="module")
def mlp_section(mlp_stages, mlp_profile):
    return stage_section(mlp_stages, mlp_profile)


def _pictures(section) -> dict[int, ET.Element]:
    """Each stage's SVG in the section's HTML, parsed, by the stage's index."""
    out = {}
    for part in section.html.split('<div class="kc-g-stage" data-stage="')[1:]:
        svg = re.search(r"<svg.*?</svg>", part, re.S)
        if svg is not None:
            out[int(part[: part.index('"')])] = ET.fromstring(svg.group())
    return out


def _with(root: ET.Element, attribute: str) -> list[ET.Element]:
    return [e for e in root.iter() if attribute in e.attrib]


def test_each_stage_counts_its_nodes_kernels_and_fused_nodes(mlp_stages, mlp_section):
    entries = mlp_section.data["stages"]
    assert [e["name"] for e in entries] == [name for name, _ in mlp_stages]
    for entry, (name, text) in zip(entries, mlp_stages, strict=True):
        graph = parse_graph(text)
        assert entry["nodes"] == len(graph.nodes), name
        assert entry["kernels"] == len(kernel_nodes(graph, plan_buffers(graph))), name
        assert entry["fused"] == sum(1 for n in graph.nodes if n.traits.kernel_body), name
        assert f"{entry['nodes']} nodes, {entry['kernels']} kernels" in mlp_section.html
    # The planned stage: views of their operands' buffers get no kernel.
    assert entries[-1]["kernels"] < entries[-1]["nodes"]
    assert entries[-1]["fused"] > 0 and entries[0]["fused"] == 0


def test_every_node_of_the_last_stage_has_its_ir_line_and_layer(mlp_stages, mlp_section):
    text = mlp_stages[-1][1]
    graph = parse_graph(text)
    records = mlp_section.data["stages"][-1]["records"]
    # The text's node lines, at the graph's own indentation (the memory plan's lines
    # name values too, but assign none).
    heads = [line.strip() for line in text.splitlines() if re.match(r"  %\S.* = ", line)]
    assert len(heads) == len(graph.nodes)
    for i, node in enumerate(graph.nodes):
        record = records[f"n{i}"]
        assert record["layer"] == node.layer and record["op"] == node.op
        assert record["types"] == [str(v.type) for v in node.outputs]
        if "body" not in node.attrs:
            assert record["ir"] == heads[i]
        else:
            assert heads[i] == record["ir"][: record["ir"].index("{body=") + 6]
            assert record["kind"] == node.attrs["kind"]
            assert len(record["body"]) == len(node.attrs["body"].nodes)
            assert all(line in text for line in record["body"])
    assert {f"in{k}" for k in range(len(graph.inputs))} <= set(records)
    assert {f"out{j}" for j in range(len(graph.outputs))} <= set(records)


def test_each_picture_has_one_element_per_node_input_and_output(mlp_stages, mlp_section):
    pictures = _pictures(mlp_section)
    entries = mlp_section.data["stages"]
    for k, (name, text) in enumerate(mlp_stages):
        graph = parse_graph(text)
        drawn = entries[k].get("same_as", k)
        root = pictures[drawn]
        nodes = [e.get("data-node") for e in _with(root, "data-node")]
        assert sorted(nodes) == sorted(f"n{i}" for i in range(len(graph.nodes))), name
        assert len(_with(root, "data-input")) == len(graph.inputs)
        assert len(_with(root, "data-output")) == len(graph.outputs)
        assert entries[drawn]["svg_bytes"] > 0 and root.find(".//{*}text") is not None
    assert "<?xml" not in mlp_section.html and "<!DOCTYPE" not in mlp_section.html


def test_fused_nodes_are_boxes_holding_their_body_ops(mlp_stages, mlp_section):
    graph = parse_graph(mlp_stages[-1][1])
    root = _pictures(mlp_section)[len(mlp_stages) - 1]
    for i, node in enumerate(graph.nodes):
        if "body" not in node.attrs:
            continue
        drawn = graph_svg.drawn_ops(node.attrs["body"])
        inside = [e for e in _with(root, "data-in") if e.get("data-in") == f"n{i}"]
        if len(drawn) <= graph_svg.BODY_LIMIT:
            assert len(inside) == len(drawn)
        else:  # summarised: one box naming how many ops it holds
            assert not inside
            (box,) = [e for e in _with(root, "data-node") if e.get("data-node") == f"n{i}"]
            assert f"{len(drawn)} ops" in "".join(box.itertext())


def test_kernel_names_are_the_code_generators_and_the_profiles(
    mlp_stages, mlp_section, mlp_profile
):
    graph = parse_graph(mlp_stages[-1][1])
    named = {node: name for name, node in kernel_nodes(graph, plan_buffers(graph))}
    root = _pictures(mlp_section)[len(mlp_stages) - 1]
    drawn = {e.get("data-node"): e.get("data-kernel") for e in _with(root, "data-node")}
    assert drawn == {f"n{i}": named.get(node) for i, node in enumerate(graph.nodes)}
    assert {k for k in drawn.values() if k} == set(mlp_profile)
    # only the last stage names kernels
    for k, picture in _pictures(mlp_section).items():
        if k != len(mlp_stages) - 1:
            assert not _with(picture, "data-kernel")


def test_kernel_times_merge_into_the_last_stages_records(mlp_section, mlp_profile):
    records = mlp_section.data["stages"][-1]["records"]
    timed = {r["kernel"]: r["profile"] for r in records.values() if "profile" in r}
    assert timed == mlp_profile
    assert mlp_section.data["unplaced"] == []
    lone = stage_section(inspect.pipeline_stages(_mlp(), "predict"), {"k99_nothing": {"us": 1}})
    assert lone.data["unplaced"] == ["k99_nothing"]


def test_a_loops_body_kernels_are_named_as_the_profile_names_them():
    model = keras.Sequential([keras.Input(shape=(5, 3)), layers.SimpleRNN(4), layers.Dense(2)])
    model.compile(loss="mse", optimizer="sgd")
    result = inspect.profile_step(model, "predict", batch=2, calls=1)
    section = stage_section(inspect.pipeline_stages(model, "predict"))
    root = _pictures(section)[len(section.data["stages"]) - 1]
    drawn = {e.get("data-kernel") for e in _with(root, "data-kernel")}
    assert {name for name, *_ in result.rows} <= drawn
    assert {name for name, *_ in result.inner} <= drawn
    records = section.data["stages"][-1]["records"].values()
    inside = {e["kernel"] for r in records for e in r.get("inside", [])}
    assert inside == {name for name, *_ in result.inner}


def test_a_conv_models_stages_are_drawn():
    stages = inspect.pipeline_stages(_conv(), "train")
    section = stage_section(stages)
    pictures = _pictures(section)
    for k, entry in enumerate(section.data["stages"]):
        graph = parse_graph(stages[k][1])
        assert entry["nodes"] == len(graph.nodes)
        if "same_as" not in entry:
            assert len(_with(pictures[k], "data-node")) == len(graph.nodes)
    ops = {r["op"] for r in section.data["stages"][0]["records"].values()}
    assert "conv2d" in ops


def test_the_diff_of_each_pass_is_inspects(mlp_stages):
    section = pass_section(mlp_stages)
    assert [e["name"] for e in section.data["passes"]] == [n for n, _ in mlp_stages[1:]]
    for k, ((_, before), (_, after)) in enumerate(itertools.pairwise(mlp_stages), 1):
        changes = inspect.ir_diff(before, after)
        entry = section.data["passes"][k - 1]
        assert entry["removed"] == sum(len(c.removed) for c in changes)
        assert entry["added"] == sum(len(c.added) for c in changes)
        assert entry["changed"] == bool(changes)
        block = re.search(rf'data-pass="{k}">(.*?)</(details|p)>', section.html, re.S).group(1)
        shown = [
            ("- " if kind == "del" else "+ ") + html.unescape(line).strip()
            for kind, line in re.findall(r'<span class="kc-p-(del|add)">. (.*?)</span>', block)
        ]
        assert shown == inspect.ir_diff_lines(changes)
    # check's own report of a pass is the same lines
    before, after = mlp_stages[1][1], mlp_stages[2][1]
    lines = inspect.ir_diff_lines(inspect.ir_diff(before, after))
    assert inspect._ir_diff(before, after, limit=10**6) == ["    " + x for x in lines]


def test_a_pass_that_changes_nothing_says_so(mlp):
    passes = default_passes()
    passes.insert(2, Pass("leave_alone", lambda graph: graph))
    stages = inspect.pipeline_stages(mlp, "train", passes)
    k = [name for name, _ in stages].index("leave_alone")
    passes_data = pass_section(stages).data
    assert "leave_alone" in passes_data["unchanged"]
    assert not passes_data["passes"][k - 1]["changed"]
    assert passes_data["passes"][k - 1]["removed"] == passes_data["passes"][k - 1]["added"] == 0
    graphs = stage_section(stages[: k + 1])
    assert graphs.data["stages"][k - 1].get("same_as") is None
    # the last stage is always drawn, with its own records
    assert "records" in graphs.data["stages"][k]
    graphs = stage_section(stages[: k + 2])
    assert graphs.data["stages"][k]["same_as"] == k - 1


def test_a_stage_too_big_to_lay_out_says_so_in_its_place(mlp_stages):
    section = stage_section(mlp_stages, max_nodes=20)
    pictures = _pictures(section)
    for k, entry in enumerate(section.data["stages"]):
        if "same_as" in entry:
            continue
        if entry["nodes"] > 20:
            assert k not in pictures and entry["svg_bytes"] == 0
            assert entry["message"].startswith(f"Stage {entry['name']} has {entry['nodes']} nodes")
            assert html.escape(entry["message"]) in section.html
        else:
            assert k in pictures and "message" not in entry


def test_a_stage_dot_cannot_lay_out_in_time_says_so(mlp_stages):
    section = stage_section(mlp_stages[:1], timeout=1e-6)
    (entry,) = section.data["stages"]
    assert "did not lay out stage traced" in entry["message"]
    assert f"({entry['nodes']} nodes)" in entry["message"] and "<svg" not in section.html


def test_without_dot_the_error_names_it(mlp_stages, monkeypatch):
    monkeypatch.setattr(graph_svg.shutil, "which", lambda name: None)
    with pytest.raises(graph_svg.GraphvizError, match="`dot`"):
        stage_section(mlp_stages[:1])


def test_names_are_escaped():
    name = 'odd<&>"name'
    stages = inspect.pipeline_stages(_mlp(name), "predict")
    section = stage_section(stages)
    assert f'<i style="background:{section.data["layers"][name]}"></i>{html.escape(name)}<' in (
        section.html
    )
    assert html.escape(name) in section.html and name not in section.html
    assert any(r["layer"] == name for r in section.data["stages"][0]["records"].values())
    assert name in section.data["layers"]
    assert len(_pictures(section)) >= 2  # each SVG parsed: well-formed XML
    diffs = pass_section(stages)
    assert name not in diffs.html and html.escape(name) in diffs.html


def test_inputs_and_outputs_named_oddly_are_said_as_the_text_says_them():
    """A weight of a layer named with quotes and brackets is written ``%"..."`` in the
    text; its record's line is the text's own, and so is each output's."""
    name = 'odd<&>"name'
    model = keras.Sequential([keras.Input(shape=(4,)), layers.Dense(3, name=name)])
    model.compile(loss="mse")
    stages = inspect.pipeline_stages(model, "predict")
    text = stages[-1][1]
    graph = parse_graph(text)
    records = stage_section(stages).data["stages"][-1]["records"]
    lines = {line.strip().rstrip(",") for line in text.splitlines()}
    for k, v in enumerate(graph.inputs):
        assert records[f"in{k}"]["ir"] in lines, v.name
    # (the graph's own return, not a fused body's, which is indented further)
    returns = next(line.strip() for line in text.splitlines() if line.startswith("  return "))
    for j in range(len(graph.outputs)):
        assert records[f"out{j}"]["ir"].removeprefix("return ") in returns
    assert any(records[f"in{k}"]["ir"].startswith('%"odd<&>\\"name/kernel": ') for k in range(3))


def test_bad_stages_are_refused():
    for bad in ([], "graph text", [("traced",)], [("traced", 3)]):
        with pytest.raises(ValueError, match=r"list of \(stage name, graph text\) pairs"):
            stage_section(bad)
        with pytest.raises(ValueError, match="pass_section expects"):
            pass_section(bad)


def test_big_graphs_get_the_fast_layout_and_still_every_node(mlp_stages):
    graph = parse_graph(mlp_stages[1][1])
    colours = graph_svg.layer_colours(n.layer for n in graph.nodes)
    fast = graph_svg.graph_dot(graph, colours, fast_from=10)
    assert fast.fast and "splines=line" in fast.dot
    assert not graph_svg.graph_dot(graph, colours).fast
    root = ET.fromstring(graph_svg.inline_svg(graph_svg.run_dot(fast.dot), fast.attrs))
    assert len(_with(root, "data-node")) == len(graph.nodes)


def test_edges_are_written_relative_to_each_piece():
    absolute = "M10,20C11,22 13,24 15,26 17,28 19,30 21,32"
    assert graph_svg.relative_path(absolute) == "M10,20c1 2 3 4 5 6 2 2 4 4 6 6"
    assert graph_svg.relative_path("M1,2L3,4") == "M1,2L3,4"  # not dot's curve: as it was
