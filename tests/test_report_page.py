"""``kcompile report``'s page and the writing of it: every section embedded, the data
escaped, no URL leaving the file, the CLI and ``model.report``, atomic writes, clear
errors. (The page in a browser: tests/test_report_browser.py.)"""

from __future__ import annotations

import contextlib
import html
import io
import json
import os
import re
from pathlib import Path

import pytest

from kcompile.codegen.building.target import host
from kcompile.ir import parse_graph
from kcompile.report import build as report_build
from kcompile.report.model_section import features_of, model_section, summary_of
from kcompile.report.page import render_page
from kcompile.report.section import Section
from kcompile.tools import cli
from tests.test_dynamic_shapes import UNKNOWN_LENGTH_MODEL

ROOT = Path(__file__).resolve().parents[1]
MLP = str(ROOT / "examples" / "mnist_mlp.py")
SECTION_KEYS = ["graphs", "passes", "memory", "profile", "model"]
# The namespaces an inline SVG may name: identifiers, never fetched.
NAMESPACES = ("http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink")


def embedded_data(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="kc-data">(.*?)</script>', page, re.S)
    assert found, "the page holds no kc-data script"
    return json.loads(found.group(1))


def external_urls(page: str) -> list[str]:
    """Every URL the page could fetch or link to outside itself."""
    text = page
    for namespace in NAMESPACES:
        text = text.replace(f'"{namespace}"', '""')
    found = re.findall(r"https?://[^\s\"'<>)]*", text)
    found += re.findall(r"""(?:src|href|action|poster)\s*=\s*["']?\s*(//[^\s"'>]*)""", text)
    found += re.findall(r"url\(\s*['\"]?\s*((?:https?:)?//[^)]*)\)", text)
    found += re.findall(r"@import[^;]*", text)
    return found


def small_sections() -> list[Section]:
    return [
        Section("graphs", "Graphs", "<svg><g data-kernel='k0_fused'></g></svg>", {"n": 1}),
        Section("memory", "Memory <plan>", "<p>arena</p>", {"bytes": [1, 2, 3]}, "KC.x = 1;"),
    ]


# --- the page --------------------------------------------------------------------------


def test_page_embeds_every_section_its_data_and_its_script():
    sections = small_sections()
    page = render_page("a <title>", sections, {"model": "m", "step": "train"})
    assert page.startswith("<!doctype html>")
    for s in sections:
        assert f'<section id="{s.key}" class="kc-section">' in page
        assert f'href="#{s.key}" data-section="{s.key}"' in page
        assert s.html in page
    assert "Memory &lt;plan&gt;" in page and "<title>a &lt;title&gt;</title>" in page
    data = embedded_data(page)
    assert data["sections"] == {s.key: s.data for s in sections}
    assert data["meta"] == {"model": "m", "step": "train"}
    assert list(data["scripts"]) == ["memory"]  # a section without a script gets none
    assert data["scripts"]["memory"].startswith("KC.x = 1;")


def test_data_cannot_close_its_script_element():
    hostile = "</script><script>alert(1)</script><!-- & \u2028 \u2029 </SCRIPT >"
    sections = [Section("graphs", "g", "", {"text": hostile}, f"var s = {json.dumps(hostile)};")]
    page = render_page("t", sections, {"note": hostile}, {"k0": {"us": 1.0, "what": hostile}})
    # The only script ends are those of the page's own two script elements.
    assert len(re.findall(r"</script", page, re.I)) == 2
    assert "<!--" not in page.split('id="kc-data">')[1]
    data = embedded_data(page)
    assert data["sections"]["graphs"]["text"] == hostile
    assert data["kernels"]["k0"]["what"] == hostile
    assert data["scripts"]["graphs"].startswith(f"var s = {json.dumps(hostile)};")
    assert html.escape(hostile) in page  # the meta line, escaped as text


def test_data_that_is_not_json_is_refused_naming_the_section():
    with pytest.raises(ValueError, match="section 'memory'.*not JSON"):
        render_page("t", [Section("memory", "m", "", {"peak": float("nan")})], {})
    with pytest.raises(ValueError, match="section 'memory'.*not JSON"):
        render_page("t", [Section("memory", "m", "", {"plan": object()})], {})


@pytest.mark.parametrize("key", ["1graphs", "graph s", 'x"y', "kc-detail", ""])
def test_section_keys_must_be_free_html_ids(key):
    with pytest.raises(ValueError, match="section key"):
        render_page("t", [Section(key, "t", "")], {})


def test_two_sections_with_one_key_are_refused():
    with pytest.raises(ValueError, match="used twice"):
        render_page("t", [Section("memory", "a", ""), Section("memory", "b", "")], {})
    with pytest.raises(TypeError, match="Section objects"):
        render_page("t", [{"key": "memory"}], {})


def test_the_url_check_finds_what_it_looks_for():
    # The check the reports are held to: it must see each way a page could fetch.
    for bad in (
        '<img src="https://x.org/a.png">',
        "<script src=//cdn.x/y.js></script>",
        "<style>a{background:url(//x.org/b)}</style>",
        '<a href="http://x.org">',
        "<style>@import 'x.css';</style>",
    ):
        assert external_urls(bad), bad
    assert not external_urls(f'<svg xmlns="{NAMESPACES[0]}"></svg><a href="#memory">')


def test_the_page_itself_names_no_url():
    assert external_urls(render_page("t", small_sections(), {"m": 1})) == []


# --- the model section -----------------------------------------------------------------


@pytest.fixture(scope="module")
def mlp():
    return cli.load_model_file(MLP)


def test_model_section_shows_the_compilers_own_facts(mlp):
    import llvmlite.binding as llvm

    stages = [("traced", 0.002, 7), ("autodiff", 0.01, 30), ("fuse", 0.004, 12)]
    section = model_section(mlp, stages, {"llvm optimize (O2)": 0.2}, False, "2 cores")
    data = section.data
    assert data["passes"] == [list(s) for s in stages]
    assert data["codegen"] == [["llvm optimize (O2)", 0.2]]
    assert data["summary"] == summary_of(mlp) and "Total params" in data["summary"]
    assert data["params"] == mlp.count_params()
    info = host()
    assert data["cpu"]["name"] == info.cpu
    assert {f"+{f}" for f in data["cpu"]["features"]} == {
        f for f in info.features.split(",") if f.startswith("+")
    }
    assert data["versions"]["LLVM"] == ".".join(map(str, llvm.llvm_version_info))
    assert html.escape(data["summary"]) in section.html
    for name, _, nodes in stages:
        assert f'<td>{name}</td><td class="kc-num">' in section.html
        assert f'<td class="kc-num">{nodes}</td>' in section.html
    assert "2 cores" in section.html


def test_features_are_those_llvm_enables():
    from kcompile.codegen.building.target import HostInfo

    cpu = HostInfo("x86_64-unknown-linux-gnu", "znver3", "+avx2,-avx512f,+fma,+sse2")
    assert features_of(cpu) == ["avx2", "fma", "sse2"]


# --- writing the report ----------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_report(tmp_path_factory, mlp):
    """The CLI's report of the MLP's train step, its exit status and what it printed."""
    path = tmp_path_factory.mktemp("report") / "mlp.html"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = cli.main(["report", MLP, "-o", str(path), "--batch", "8", "--calls", "2"])
    return path, status, printed.getvalue()


def test_cli_writes_the_page_with_every_section(cli_report):
    path, status, printed = cli_report
    assert status == 0
    assert printed == f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB): open it in a browser\n"
    page = path.read_text()
    data = embedded_data(page)
    assert list(data["sections"]) == SECTION_KEYS
    for key in SECTION_KEYS:
        assert f'<section id="{key}" class="kc-section">' in page
    assert data["meta"]["step"] == "train" and data["meta"]["batch"] == 8
    assert data["sections"]["profile"]["batch"] == 8
    assert data["sections"]["profile"]["calls"] == 2


def test_the_report_shows_the_compilers_graph(cli_report, mlp):
    from kcompile.tools import inspect

    data = embedded_data(cli_report[0].read_text())
    stages = inspect.pipeline_stages(mlp, "train")
    final = parse_graph(stages[-1][1])
    assert data["meta"]["nodes"] == len(final.nodes)
    assert data["meta"]["graph"] == final.name == "train_step"
    # the model section's stages are the pipeline's, in order
    assert [row[0] for row in data["sections"]["model"]["passes"]] == [n for n, _ in stages]
    assert data["sections"]["memory"]["arena_bytes"] == final.memory.arena_bytes
    # every profiled kernel has its time for the detail panel
    profiled = {k["name"] for k in data["sections"]["profile"]["kernels"]}
    assert profiled and profiled <= set(data["kernels"])


def test_a_report_names_no_url(cli_report):
    assert external_urls(cli_report[0].read_text()) == []


def test_model_report_writes_the_predict_step(mlp, tmp_path):
    path = mlp.report(tmp_path / "predict.html", step="predict", batch=3, calls=1)
    assert path == str(tmp_path / "predict.html")
    data = embedded_data(Path(path).read_text())
    assert data["meta"]["step"] == "predict" and data["meta"]["graph"] == "predict"
    assert data["sections"]["profile"]["batch"] == 3


def test_a_failure_while_building_leaves_the_old_report(mlp, tmp_path, monkeypatch):
    path = tmp_path / "report.html"
    path.write_text("the report of yesterday")

    def broken(*args, **kwargs):
        raise RuntimeError("a section failed")

    monkeypatch.setattr(report_build, "build_sections", broken)
    with pytest.raises(RuntimeError, match="a section failed"):
        mlp.report(path, calls=1, batch=2)
    assert path.read_text() == "the report of yesterday"
    assert os.listdir(tmp_path) == ["report.html"]


def test_a_failure_while_writing_leaves_no_partial_file(tmp_path):
    path = tmp_path / "report.html"
    path.write_text("old")
    # The first half encodes, then a lone surrogate cannot: the write stops midway.
    with pytest.raises(UnicodeEncodeError):
        report_build.write_atomically(str(path), "x" * 100_000 + "\ud800")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["report.html"]
    report_build.write_atomically(str(tmp_path / "new.html"), "<p>new</p>")
    assert (tmp_path / "new.html").read_text() == "<p>new</p>"
    assert sorted(os.listdir(tmp_path)) == ["new.html", "report.html"]


def test_the_report_file_gets_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        report_build.write_atomically(str(tmp_path / "r.html"), "x")
    finally:
        os.umask(old)
    assert (tmp_path / "r.html").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"step": "training"}, "unknown step 'training': expected one of train, eval, predict"),
        ({"batch": 0}, "batch must be a positive integer, got 0"),
        ({"batch": 2.5}, "batch must be a positive integer, got 2.5"),
        ({"calls": -1}, "calls must be a positive integer, got -1"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(mlp, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        mlp.report(tmp_path / "r.html", **kwargs)
    assert os.listdir(tmp_path) == []


def test_a_missing_folder_is_named(mlp, tmp_path):
    with pytest.raises(ValueError, match="no folder .*nowhere"):
        mlp.report(tmp_path / "nowhere" / "r.html")


def test_without_graphviz_the_cli_says_what_to_install(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from kcompile.report import graph_svg

    monkeypatch.setattr(graph_svg, "shutil", SimpleNamespace(which=lambda name: None))
    out = tmp_path / "r.html"
    with pytest.raises(SystemExit, match="kcompile: .*Graphviz's `dot`.*apt-get install graphviz"):
        cli.main(["report", MLP, "-o", str(out), "--calls", "1", "--batch", "2"])
    assert not out.exists()


def test_cli_errors_are_clear(tmp_path, capsys):
    out = str(tmp_path / "r.html")
    with pytest.raises(SystemExit, match="kcompile: batch must be a positive integer, got 0"):
        cli.main(["report", MLP, "-o", out, "--batch", "0"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["report", MLP, "-o", out, "--step", "training"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'training'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["report", MLP])
    assert "-o/--output" in capsys.readouterr().err
    assert not os.path.exists(out)


def test_input_shapes_size_what_the_model_leaves_unknown(tmp_path):
    source = tmp_path / "model.py"
    source.write_text(UNKNOWN_LENGTH_MODEL)
    out = tmp_path / "r.html"
    with pytest.raises(SystemExit, match="kcompile: .*unknown dimension.*--input-shape"):
        cli.main(["report", str(source), "-o", str(out), "--step", "predict"])
    assert not out.exists()
    args = ["report", str(source), "-o", str(out), "--step", "predict", "--calls", "1"]
    assert cli.main([*args, "--input-shape", "7"]) == 0
    data = embedded_data(out.read_text())
    assert data["sections"]["graphs"]["stages"][-1]["records"]["in0"]["types"] == ["i32[N,7]"]
