"""The report's ``passes`` section: what each stage changed in the graph's text, the
diff ``kcompile check`` prints when a pass changes results (``inspect.ir_diff``: lines
matched with value numbers ignored, so a node inserted early does not make every later
line look changed).

Each pass that changed the text is a fold-out block: removed lines on red, added lines on
green, a few unchanged lines around them for context, and ``⋯`` where unchanged lines are
left out. The passes that changed nothing are listed as such.
"""

from __future__ import annotations

import html
import itertools
from typing import Any

from kcompile.report.section import Section
from kcompile.report.stages import check_stages
from kcompile.tools.inspect import IRChange, ir_diff

CONTEXT = 2  # unchanged lines shown before and after each run of changes
MAX_SHOWN = 400  # changed lines shown for one pass; its counts say how many there are


def diff_rows(
    after: list[str], changes: list[IRChange], context: int = CONTEXT
) -> list[tuple[str, str]]:
    """The rows a pass's block shows, in order: ``("del", line)`` and ``("add", line)``
    for each change, ``("ctx", line)`` for up to ``context`` unchanged lines of the text
    after the pass around each run of changes, ``("gap", "⋯")`` where lines are skipped."""
    rows: list[tuple[str, str]] = []
    shown = 0  # the first line of ``after`` not yet shown
    for n, change in enumerate(changes):
        start = max(change.after_at - context, shown)
        if start > shown:
            rows.append(("gap", "⋯"))
        rows += [("ctx", line) for line in after[start : change.after_at]]
        rows += [("del", line) for line in change.removed]
        rows += [("add", line) for line in change.added]
        end = change.after_at + len(change.added)
        following = changes[n + 1].after_at if n + 1 < len(changes) else len(after)
        stop = min(end + context, following)
        rows += [("ctx", line) for line in after[end:stop]]
        shown = max(shown, stop)
    if changes and shown < len(after):
        rows.append(("gap", "⋯"))
    return rows


def _block(k: int, entry: dict[str, Any], rows: list[tuple[str, str]], max_shown: int) -> str:
    marks = {"del": "-", "add": "+", "ctx": " ", "gap": " "}
    out, changed = [], 0
    for kind, line in rows:
        if kind in ("del", "add"):
            changed += 1
            if changed > max_shown:
                break
        out.append(f'<span class="kc-p-{kind}">{marks[kind]} {html.escape(line)}</span>')
    hidden = entry["removed"] + entry["added"] - max_shown
    if hidden > 0:
        out.append(
            f'<span class="kc-p-gap">… and {hidden} more changed lines '
            f"(all of them: kcompile ir --all DIR, then diff the .kir files)</span>"
        )
    summary = (
        f"<b>{html.escape(entry['name'])}</b>: −{entry['removed']} +{entry['added']} lines"
        f" in {entry['runs']} place{'s' if entry['runs'] != 1 else ''}"
    )
    return (
        f'<details class="kc-p-pass" data-pass="{k}"><summary>{summary}</summary>'
        f'<pre class="kc-p-diff">{"".join(out)}</pre></details>'
    )


def pass_section(
    stages: list[tuple[str, str]], *, context: int = CONTEXT, max_shown: int = MAX_SHOWN
) -> Section:
    """The ``passes`` section of ``stages`` (``inspect.pipeline_stages``): one entry a
    pair of consecutive stages, named by the later one.

    ``data``: ``passes``, one dict a pair: ``name`` (the stage after), ``before`` (the
    stage before), ``changed`` (whether ``ir_diff`` finds any change), ``renumbered``
    (the texts differ but only in value numbers), ``removed`` and ``added`` (line
    counts), ``runs`` (runs of changed lines); ``unchanged``: the names of the passes that
    changed nothing."""
    check_stages(stages, "pass_section")
    entries: list[dict[str, Any]] = []
    parts: list[str] = []
    for k, ((before_name, before), (name, after)) in enumerate(itertools.pairwise(stages), 1):
        changes = ir_diff(before, after)
        entry = {
            "name": name,
            "before": before_name,
            "changed": bool(changes),
            "renumbered": not changes and before != after,
            "removed": sum(len(c.removed) for c in changes),
            "added": sum(len(c.added) for c in changes),
            "runs": len(changes),
        }
        entries.append(entry)
        if changes:
            rows = diff_rows(after.splitlines(), changes, context)
            parts.append(_block(k, entry, rows, max_shown))
        else:
            how = " (value numbers aside)" if entry["renumbered"] else ""
            parts.append(
                f'<p class="kc-p-same" data-pass="{k}"><b>{html.escape(name)}</b> '
                f"changed nothing{how}</p>"
            )
    data = {"passes": entries, "unchanged": [e["name"] for e in entries if not e["changed"]]}
    intro = (
        "What each pass changed in the graph's text, in pipeline order: removed lines "
        "red, added lines green, value numbers ignored when lines are matched (as "
        "kcompile check reports them)."
    )
    body = f'<style>{STYLE}</style><div class="kc-passes"><p>{intro}</p>{"".join(parts)}</div>'
    return Section("passes", "What each pass changed", body, data)


STYLE = """
.kc-passes .kc-p-pass{margin:.3em 0}
.kc-passes .kc-p-pass summary{cursor:pointer}
.kc-passes .kc-p-same{margin:.3em 0;color:#666}
.kc-passes .kc-p-diff{max-height:70vh;overflow:auto}
.kc-passes .kc-p-diff span{display:block;white-space:pre}
.kc-passes .kc-p-del{background:#fde2e2;color:#8a1111}
.kc-passes .kc-p-add{background:#ddf4dd;color:#0f5a0f}
.kc-passes .kc-p-ctx{color:#555}
.kc-passes .kc-p-gap{color:#999}
"""
