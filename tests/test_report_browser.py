"""``kcompile report``'s pages in a real browser (headless Chromium, driven over the
DevTools protocol by tests/browser.py): the example models' reports load without an
error, every section draws, the final stage shows the IR's nodes, and a click on a
kernel leads to its node and its time.

    python -m tests.test_report_browser docs/report.png   # docs/report.md's screenshot
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from kcompile.ir import parse_graph
from kcompile.report import write_report
from kcompile.report.page import render_page
from kcompile.report.section import Section
from kcompile.tools.cli import load_model_file
from tests.browser import Browser, chromium_path
from tests.test_report_page import external_urls

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"
# Every example, each at the step that keeps the test within its minute: the train step
# (autodiff, the optimizer's kernels) of the small ones, predict of the larger ones.
EXAMPLES = {
    "mnist_mlp": "train",
    "fashion_cnn": "train",
    "text_classifier": "train",
    "fashion_lstm": "train",
    "denoising_autoencoder": "predict",
    "encoder_block": "predict",
    "small_resnet": "predict",
    "subclassed_model": "predict",
    "timeseries_conv1d": "predict",
    "transformer_classifier": "predict",
    "transformer_mha": "predict",
}

pytestmark = pytest.mark.skipif(
    chromium_path() is None,
    reason="no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)",
)


@pytest.fixture(scope="module")
def browser():
    with Browser() as b:
        yield b


@pytest.fixture(scope="module")
def page(browser):
    return browser.page()


def embedded_data(path: Path) -> dict:
    page = path.read_text()
    start = page.index('id="kc-data">') + len('id="kc-data">')
    return json.loads(page[start : page.index("</script>", start)])


def final_graph(model, step: str):
    """The planned graph of ``step`` as the compiler makes it, apart from the report."""
    from kcompile.tools import inspect

    return parse_graph(inspect.pipeline_stages(model, step)[-1][1])


# The centre of the first element matching ``selector`` under ``root`` that a click at its
# centre reaches (dot draws a fused kernel as a box its ops sit in, so the centre of a box
# may be one of its ops), scrolled into view: [x, y, its data-kernel], or null.
CLICKABLE = """
((root, selector) => {
  for (const el of root.querySelectorAll(selector)) {
    if (!el.getClientRects().length) continue;
    el.scrollIntoView({block: "center", inline: "center"});
    const r = el.getBoundingClientRect();
    const x = r.left + r.width / 2, y = r.top + r.height / 2;
    const hit = document.elementFromPoint(x, y);
    if (hit && hit.closest("[data-kernel]") === el) return [x, y, el.dataset.kernel];
  }
  return null;
})
"""

DRAWN = """
Array.from(document.getElementById(%r).querySelectorAll("svg"))
  .filter((s) => s.getClientRects().length > 0)
  .map((s) => { const r = s.getBoundingClientRect(), b = s.getBBox();
                return [r.width, r.height, b.width, b.height]; })
"""


def open_report(page, path: Path) -> None:
    page.open(path.as_uri())
    page.evaluate("KC.hide()")


def click_kernel(page, root: str, selector: str = "[data-kernel]") -> str:
    """Click, at its centre, the first kernel element under ``root`` a click reaches; its
    kernel's name."""
    found = page.evaluate(f"({CLICKABLE})({root}, {json.dumps(selector)})")
    assert found, f"no {selector} under {root} that a click at its centre reaches"
    x, y, name = found
    page.click(x, y)
    return name


def panel_text(page) -> str:
    return page.evaluate(
        "document.getElementById('kc-detail').hidden ? '' : "
        "document.querySelector('#kc-detail .kc-detail-body').innerText"
    )


# The quick tier (-m "not slow") opens one example's report; the full suite all of them.
@pytest.mark.parametrize(
    "name", [n if n == "mnist_mlp" else pytest.param(n, marks=pytest.mark.slow) for n in EXAMPLES]
)
def test_example_report_in_the_browser(name, page, tmp_path):
    step = EXAMPLES[name]
    model = load_model_file(str(ROOT / "examples" / f"{name}.py"))
    path = Path(write_report(model, tmp_path / f"{name}.html", step=step, batch=4, calls=1))
    data = embedded_data(path)
    open_report(page, path)
    assert page.errors() == []
    assert external_urls(path.read_text()) == []
    assert page.requests() == [path.as_uri()]  # the file itself, nothing else

    keys = page.evaluate("Array.from(document.querySelectorAll('.kc-nav a')).map(a => a.hash)")
    assert keys == ["#graphs", "#passes", "#memory", "#profile", "#model"]
    for key in (k[1:] for k in keys):
        page.evaluate(f"KC.select({key!r})")
        shown = page.evaluate(
            "Array.from(document.querySelectorAll('main > section'))"
            ".filter(s => !s.hidden).map(s => s.id)"
        )
        assert shown == [key]
        shot = page.screenshot()
        assert shot.startswith(PNG) and len(shot) > 5000, key
        (tmp_path / f"{name}-{key}.png").write_bytes(shot)
        for width, height, drawn_w, drawn_h in page.evaluate(DRAWN % key):
            assert min(width, height, drawn_w, drawn_h) > 0, f"{key}: an SVG drew nothing"
        if key in ("graphs", "memory", "profile"):
            assert page.evaluate(DRAWN % key), f"{key} shows no picture"

    # The last stage: the nodes it says it has, and the nodes it draws, are the IR's.
    nodes = len(final_graph(model, step).nodes)
    last = data["sections"]["graphs"]["last"]
    stage = f"document.querySelector('#graphs .kc-g-stage[data-stage=\"{last}\"]')"
    page.evaluate("KC.select('graphs')")
    heading = page.evaluate(f"{stage}.querySelector('h3').textContent")
    assert f": {nodes} nodes," in heading
    drawn = page.evaluate(
        f"new Set(Array.from({stage}.querySelectorAll('[data-node]')).map(e => e.dataset.node)).size"
    )
    assert drawn == nodes

    # A kernel's node, clicked: outlined, its time in the panel.
    kernel = click_kernel(page, stage, "[data-node][data-kernel]")
    us = data["kernels"][kernel]["us"]
    assert f"{us:.2f} µs" in panel_text(page)
    assert page.evaluate(f"{stage}.querySelector('.kc-hl').dataset.kernel") == kernel
    assert page.errors() == []
    assert page.requests() == [path.as_uri()]


def test_a_profile_bar_leads_to_its_kernel_in_the_graph(page, tmp_path):
    model = load_model_file(str(ROOT / "examples" / "mnist_mlp.py"))
    path = Path(write_report(model, tmp_path / "mlp.html", step="train", batch=4, calls=1))
    data = embedded_data(path)
    open_report(page, path)
    for chart in ("#profile svg", "#profile table"):
        page.evaluate("KC.hide(); KC.select('profile')")
        kernel = click_kernel(page, f"document.querySelector({chart!r})")
        assert page.evaluate("document.getElementById('graphs').hidden") is False
        lit = page.evaluate(
            "Array.from(document.querySelectorAll('.kc-hl')).filter(e => e.getClientRects().length)"
            ".map(e => [e.dataset.kernel, !!e.closest('#graphs')])"
        )
        assert lit and all(k == kernel and inside for k, inside in lit), lit
        assert f"{data['kernels'][kernel]['us']:.2f} µs" in panel_text(page)
    assert page.errors() == []


def test_a_failing_section_script_leaves_the_others_working(page, tmp_path):
    sections = [
        Section("graphs", "Graphs", "<p>graphs</p>", {}, "section.dataset.ran = 'yes';"),
        Section("memory", "Memory", "<p>memory</p>", {}, "this does not parse ("),
        Section("profile", "Profile", "<p>profile</p>", {}, "null.x;"),
        Section("model", "Model", "<p>m</p>", {"n": 3}, "section.dataset.ran = KC.data.model.n;"),
    ]
    path = tmp_path / "broken.html"
    path.write_text(render_page("broken", sections, {}))
    open_report(page, path)
    errors = page.errors()
    assert len(errors) == 2 and "section memory: SyntaxError" in errors[0]
    assert "section profile: TypeError" in errors[1]
    ran = "document.getElementById(%r).dataset.ran"
    assert page.evaluate(ran % "graphs") == "yes" and page.evaluate(ran % "model") == "3"
    for key, failed in (("memory", True), ("profile", True), ("graphs", False)):
        box = page.evaluate(f"document.querySelector('#{key} .kc-error').hidden")
        assert box is not failed
        tab = page.evaluate(f"document.querySelector('a[data-section={key}]').className")
        assert ("kc-failed" in tab) is failed


def screenshot_for_docs(out: str, example: str = "fashion_cnn") -> None:
    """The picture of docs/report.md: the example's train step, a kernel clicked."""
    import tempfile

    model = load_model_file(str(ROOT / "examples" / f"{example}.py"))
    with tempfile.TemporaryDirectory() as folder, Browser(1400, 900) as browser:
        path = Path(write_report(model, Path(folder) / "report.html", "train", 32, 20))
        page = browser.page(1400, 900)
        open_report(page, path)
        page.evaluate("KC.select('profile')")
        click_kernel(page, "document.querySelector('#profile svg')")
        time.sleep(0.3)  # the scroll to the node
        Path(out).write_bytes(page.screenshot())


if __name__ == "__main__":
    screenshot_for_docs(*sys.argv[1:])
