"""The report's HTML page: one file that needs nothing but a browser.

Every section (``Section``) becomes a ``<section id=KEY>`` behind a tab of the side
navigation; all CSS and JavaScript is inline, and nothing is fetched (no URL leaves the
file), so the page opens from disk and can be attached to a bug report.

The sections' ``data`` travel as one JSON document in ``<script type="application/json"
id="kc-data">`` (``<``, ``>`` and ``&`` written as ``\\u003c`` and so on, so no string in the
data can close the script element). The page's script defines the global ``KC`` before
any section's script runs:

- ``KC.data[key]``: a section's data; ``KC.meta``: the page's facts (model, step, batch);
  ``KC.kernels[name]``: a kernel's time (``us``, ``share``, ``rate``) where it was profiled.
- ``KC.show(html)`` opens the detail panel with ``html``; ``KC.hide()`` closes it;
  ``KC.esc(text)`` escapes text for it.
- ``KC.select(key)`` shows a section (the element ``kc-show`` is dispatched on it).
- ``KC.kernel(name)``: what a click on any ``[data-kernel]`` element does (a profile bar,
  a roofline point, a graph node): it shows the graphs section and dispatches
  ``kc-kernel`` on it (``detail.kernel``: the name; ``detail.html``: a list the section
  may append HTML to, what its node says), so that the section shows the stage whose
  nodes are kernels; then it outlines the elements of that section carrying the same
  ``data-kernel`` and shows the kernel's time, and the HTML appended, in the detail panel.

Each section's script runs in its own function (``new Function``: a syntax error is
caught too) with ``KC`` and its section element as arguments; one that throws writes its
error into its section, marks its tab and logs it to the console, and the other sections'
scripts still run.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from typing import Any

from kcompile.report.section import Section

KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
# What a JSON text inside a <script> element must not hold as such: "</script>" (or
# "<!--") would end or confuse the element; "&" only for symmetry with HTML escaping.
# U+2028/2029 are valid JSON but were line ends for older JavaScript parsers.
_JSON_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def render_page(
    title: str,
    sections: list[Section],
    meta: Mapping[str, Any],
    kernels: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """The whole page. ``meta``: facts shown under the title (scalars: the model, the
    step, the batch, when it was written) and given to scripts as ``KC.meta``;
    ``kernels``: kernel name → its profiled time (``us``, ``share``, ``rate``), for the
    detail a click on a kernel shows."""
    _check_sections(sections)
    document = {
        "meta": dict(meta),
        "kernels": dict(kernels or {}),
        "sections": {s.key: s.data for s in sections},
        "scripts": {s.key: _named_script(s) for s in sections if s.script.strip()},
    }
    return "".join(
        [
            '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
            '<meta name="viewport" content="width=device-width,initial-scale=1">\n',
            f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
            _header(title, meta),
            '<div class="kc-body">\n',
            _nav(sections),
            "<main>\n",
            *(_section(s) for s in sections),
            "</main>\n",
            _DETAIL_PANEL,
            "</div>\n",
            f'<script type="application/json" id="kc-data">{json_for_script(document)}</script>\n',
            f"<script>{SCRIPT}</script>\n</body>\n</html>\n",
        ]
    )


def json_for_script(value: Any) -> str:
    """``value`` as JSON that can sit inside a ``<script>`` element: nothing in it can end
    the element; NaN and infinities are refused (JSON has none, ``JSON.parse`` fails)."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return re.sub("[<>&\u2028\u2029]", lambda m: _JSON_ESCAPES[m.group()], text)


def _check_sections(sections: list[Section]) -> None:
    seen: set[str] = set()
    for s in sections:
        if not isinstance(s, Section):
            raise TypeError(f"render_page takes Section objects, got {type(s).__name__}")
        if not KEY.match(s.key):
            raise ValueError(
                f"section key {s.key!r} is not an HTML id: expected a letter, then letters, "
                "digits, '-' or '_'"
            )
        if s.key in seen or s.key.startswith("kc-"):
            raise ValueError(f"section key {s.key!r} is used twice or reserved (kc-...)")
        seen.add(s.key)
        try:
            json_for_script(s.data)
        except (TypeError, ValueError) as e:
            raise ValueError(f"section {s.key!r}: its data is not JSON: {e}") from None


def _named_script(section: Section) -> str:
    # Named, so that a stack trace in the browser's console reads kc-section-graphs.js:12.
    return f"{section.script}\n//# sourceURL=kc-section-{section.key}.js"


def _header(title: str, meta: Mapping[str, Any]) -> str:
    facts = "".join(
        f"<span><b>{html.escape(str(k))}</b> {html.escape(str(v))}</span>"
        for k, v in meta.items()
        if isinstance(v, (str, int, float))
    )
    return (
        f'<header class="kc-head"><h1>{html.escape(title)}</h1>'
        f'<p class="kc-meta">{facts}</p></header>\n'
    )


def _nav(sections: list[Section]) -> str:
    links = "".join(
        f'<a href="#{s.key}" data-section="{s.key}">{html.escape(s.title)}</a>' for s in sections
    )
    return f'<nav class="kc-nav" aria-label="sections">{links}</nav>\n'


def _section(s: Section) -> str:
    return (
        f'<section id="{s.key}" class="kc-section">'
        f"<h2>{html.escape(s.title)}</h2>"
        f'<div class="kc-error" role="alert" hidden></div>'
        f"{s.html}</section>\n"
    )


_DETAIL_PANEL = (
    '<aside id="kc-detail" class="kc-detail" aria-live="polite" hidden>'
    '<button type="button" class="kc-close" aria-label="close the details">×</button>'
    '<div class="kc-detail-body"></div></aside>\n'
)

CSS = """
:root{--ink:#222;--muted:#666;--line:#ddd;--accent:#1f5fa8;--hl:#d1006f;--bg:#fafafa}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--ink);
background:#fff}
.kc-head{padding:10px 18px;border-bottom:1px solid var(--line);background:var(--bg)}
.kc-head h1{margin:0;font-size:18px}
.kc-meta{margin:4px 0 0;color:var(--muted);font-size:12px}
.kc-meta span{margin-right:14px}
.kc-body{display:flex;align-items:flex-start}
.kc-nav{position:sticky;top:0;flex:0 0 190px;display:flex;flex-direction:column;
padding:10px 0;min-height:100vh;border-right:1px solid var(--line);background:var(--bg)}
.kc-nav a{padding:7px 16px;color:var(--ink);text-decoration:none;border-left:3px solid
transparent}
.kc-nav a:hover{background:#eee}
.kc-nav a[aria-current=true]{border-left-color:var(--accent);background:#fff;font-weight:600}
.kc-nav a.kc-failed::after{content:" ⚠";color:#b00}
main{flex:1 1 auto;min-width:0;padding:12px 20px 40px}
main h2{margin:4px 0 12px;font-size:17px}
main h3{margin:18px 0 8px;font-size:15px}
/* opened at a section (report.html#memory), the page shows it from its top, title and all */
.kc-section{overflow-x:auto;scroll-margin-top:100vh}
.kc-error{margin:8px 0;padding:8px 12px;border:1px solid #e0a0a0;background:#fff0f0;
color:#900;white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:12px}
pre,.kc-text{font:12px/1.35 ui-monospace,"DejaVu Sans Mono",monospace;background:var(--bg);
border:1px solid var(--line);padding:8px 10px;overflow-x:auto}
table{border-collapse:collapse;font-size:13px}
th,td{padding:3px 10px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
td.kc-num,th.kc-num{text-align:right;font-variant-numeric:tabular-nums}
.kc-bar{display:inline-block;height:10px;background:var(--accent);opacity:.7;vertical-align:middle}
.kc-chip{display:inline-block;margin:2px;padding:1px 6px;border:1px solid var(--line);
border-radius:3px;font:12px ui-monospace,monospace}
.kc-chip.kc-key{border-color:var(--accent);background:#eaf1fa}
[data-kernel]{cursor:pointer}
.kc-hl{filter:drop-shadow(0 0 3px var(--hl))}
.kc-hl>rect,.kc-hl>ellipse,.kc-hl>polygon,.kc-hl>path,rect.kc-hl,circle.kc-hl{
stroke:var(--hl)!important;stroke-width:3px!important}
.kc-detail{position:fixed;top:0;right:0;bottom:0;width:360px;overflow:auto;padding:14px 16px;
background:#fff;border-left:1px solid var(--line);box-shadow:-4px 0 12px rgba(0,0,0,.08);
z-index:10}
body.kc-open main{margin-right:360px}
.kc-detail h3{margin:0 24px 8px 0;font-size:15px;word-break:break-all}
.kc-detail dl{display:grid;grid-template-columns:auto 1fr;gap:2px 12px;margin:0 0 10px}
.kc-detail dt{color:var(--muted)}
.kc-detail dd{margin:0}
.kc-close{position:absolute;top:8px;right:10px;border:0;background:none;font-size:20px;
cursor:pointer;color:var(--muted)}
@media print{.kc-nav,.kc-detail{display:none}.kc-section[hidden]{display:block}}
"""

SCRIPT = r"""
"use strict";
(function () {
  const doc = JSON.parse(document.getElementById("kc-data").textContent);
  const panel = document.getElementById("kc-detail");
  const panelBody = panel.querySelector(".kc-detail-body");
  const sections = Array.from(document.querySelectorAll("main > section.kc-section"));
  const tabs = Array.from(document.querySelectorAll(".kc-nav a[data-section]"));

  function esc(text) {
    return String(text).replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";");
  }

  function select(key, keepHash) {
    const target = document.getElementById(key);
    if (!target || !sections.includes(target)) return null;
    const changed = target.hidden || sections.some((s) => s !== target && !s.hidden);
    for (const s of sections) s.hidden = s !== target;
    for (const t of tabs) t.setAttribute("aria-current", String(t.dataset.section === key));
    // The first section shown keeps the URL as it is: a fragment set while the page loads
    // would be scrolled to once it has loaded.
    if (!keepHash && location.hash !== "#" + key) {
      try { history.replaceState(null, "", "#" + key); } catch (e) { /* file: URLs may refuse */ }
    }
    if (changed) window.scrollTo(0, 0);
    target.dispatchEvent(new CustomEvent("kc-show"));
    return target;
  }

  function kernelDetail(name, element) {
    const time = KC.kernels[name];
    const rows = time
      ? [["time per call", time.us.toFixed(2) + " µs"],
         ["share of the step", (100 * time.share).toFixed(1) + " %"],
         ["rate", time.rate || "–"]]
        .concat(time.calls > 1 ? [["calls per step call", String(time.calls)]] : [])
      : [["time", "not profiled (its time is part of the loop that runs it)"]];
    const title = element && element.querySelector("title");
    return "<h3>" + esc(name) + "</h3><dl>" +
      rows.map(([k, v]) => "<dt>" + esc(k) + "</dt><dd>" + esc(v) + "</dd>").join("") +
      "</dl>" + (title ? "<pre>" + esc(title.textContent) + "</pre>" : "");
  }

  function kernel(name) {
    const graphs = document.getElementById("graphs");
    let hits = [];
    let extra = "";
    for (const old of document.querySelectorAll(".kc-hl")) old.classList.remove("kc-hl");
    if (graphs && select("graphs")) {
      const asked = new CustomEvent("kc-kernel", {detail: {kernel: name, html: []}});
      graphs.dispatchEvent(asked);
      extra = asked.detail.html.join("");
      const selector = '[data-kernel="' + CSS.escape(name) + '"]';
      hits = Array.from(graphs.querySelectorAll(selector))
        .filter((e) => e.getClientRects().length > 0);
      for (const e of hits) e.classList.add("kc-hl");
      if (hits.length) hits[0].scrollIntoView({block: "center", inline: "center"});
    }
    KC.show(kernelDetail(name, hits[0]) + extra);
    return hits.length;
  }

  function fail(key, error) {
    const section = document.getElementById(key);
    const box = section && section.querySelector(".kc-error");
    const text = (error && error.stack) || String(error);
    if (box) {
      box.textContent = "This section's script failed; the rest of the page works.\n" + text;
      box.hidden = false;
    }
    const tab = tabs.find((t) => t.dataset.section === key);
    if (tab) tab.classList.add("kc-failed");
    console.error("kcompile report: section " + key + ": " + text);
  }

  const KC = {
    data: doc.sections, meta: doc.meta, kernels: doc.kernels, esc, select, kernel, fail,
    show(html) {
      panelBody.innerHTML = html;
      panel.hidden = false;
      document.body.classList.add("kc-open");  // the page narrows: the panel covers nothing
    },
    hide() { panel.hidden = true; document.body.classList.remove("kc-open"); },
  };
  window.KC = KC;

  panel.querySelector(".kc-close").addEventListener("click", () => KC.hide());
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") KC.hide(); });
  for (const t of tabs) {
    t.addEventListener("click", (e) => { e.preventDefault(); select(t.dataset.section); });
  }
  document.addEventListener("click", (e) => {
    const hit = e.target.closest && e.target.closest("[data-kernel]");
    if (hit && !panel.contains(hit)) kernel(hit.dataset.kernel);
  });
  window.addEventListener("hashchange", () => select(location.hash.slice(1)));

  // Each section's script in its own function, so that one failing (even one that does
  // not parse) leaves the others running. Every section is still shown while they run
  // (so that they can measure what they draw); then all but one are hidden. Without
  // scripts the page is every section, one below the other.
  for (const s of sections) {
    const source = doc.scripts[s.id];
    if (!source) continue;
    try {
      new Function("KC", "section", source)(KC, s);
    } catch (error) {
      fail(s.id, error);
    }
  }
  select(location.hash.slice(1), true) || (sections.length && select(sections[0].id, true));
})();
"""
