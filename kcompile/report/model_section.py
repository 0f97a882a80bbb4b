"""The report's model section: the model's summary, where the code was compiled (the CPU,
its features, the measured machine, the versions of kcompile and LLVM) and how long each
stage of the compile took. What a bug report needs beside the graphs."""

from __future__ import annotations

import html
import platform
from collections.abc import Iterable
from typing import Any

import llvmlite
import llvmlite.binding as llvm
import numpy as np

from kcompile.codegen.building.target import HostInfo, host
from kcompile.report.section import Section
from kcompile.version import __version__

# The features that choose kcompile's code paths (vector width, FMA, bf16 and int8
# engines): shown first, and those the CPU lacks are named too.
KEY_FEATURES = (
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512bf16",
    "avx512vnni",
    "avxvnni",
    "amx-tile",
    "amx-bf16",
    "amx-int8",
)


def model_section(
    model,
    pass_times: Iterable[tuple[str, float, int]],
    codegen_times: dict[str, float],
    cache_hit: bool = False,
    machine_line: str | None = None,
    cpu: HostInfo | None = None,
) -> Section:
    """The section ``model``. ``pass_times``: (stage, seconds, nodes after it) of tracing,
    autodiff and every pass (``PassManager.report.stages``); ``codegen_times``: seconds
    per codegen stage (``NativeExecutable.compile_times.stages``), ``cache_hit`` when the
    code came from the compile cache; ``machine_line``: ``Machine.describe()``; ``cpu``:
    the target (the host's by default)."""
    cpu = cpu or host()
    passes = [[name, float(seconds), int(nodes)] for name, seconds, nodes in pass_times]
    codegen = [[name, float(seconds)] for name, seconds in codegen_times.items()]
    data = {
        "name": model.name,
        "params": int(model.count_params()),
        "summary": summary_of(model),
        "cpu": {"name": cpu.cpu, "triple": cpu.triple, "features": features_of(cpu)},
        "machine": machine_line,
        "versions": versions(),
        "passes": passes,
        "codegen": codegen,
        "cache_hit": cache_hit,
    }
    parts = [
        "<h3>Summary</h3>",
        f'<pre class="kc-text">{html.escape(data["summary"])}</pre>',
        "<h3>Compile times</h3>",
        _times_table(passes, codegen, cache_hit),
        "<h3>Machine</h3>",
        _machine(data["cpu"], machine_line),
        "<h3>Versions</h3>",
        _table(["", "version"], [[k, v] for k, v in data["versions"].items()]),
    ]
    return Section("model", "Model and machine", "".join(parts), data)


def summary_of(model) -> str:
    """``model.summary()``'s table, as the model prints it (functional or not)."""
    lines: list[str] = []
    model.summary(print_fn=lines.append)
    return "\n".join(lines)


def features_of(cpu: HostInfo) -> list[str]:
    """The features the CPU has (LLVM's names, without the ``+``), sorted."""
    return sorted(f[1:] for f in cpu.features.split(",") if f.startswith("+"))


def versions() -> dict[str, str]:
    return {
        "kcompile": __version__,
        "LLVM": ".".join(str(p) for p in llvm.llvm_version_info),
        "llvmlite": llvmlite.__version__,
        "numpy": np.__version__,
        "Python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()} ({platform.machine()})",
    }


def _times_table(passes: list[list[Any]], codegen: list[list[Any]], cache_hit: bool) -> str:
    """One row per stage, its time as a bar against the slowest stage."""
    longest = max([r[1] for r in passes] + [r[1] for r in codegen] + [1e-9])
    rows = [[name, _ms(s), f"{nodes:,}", _bar(s, longest)] for name, s, nodes in passes]
    where = "the compile cache (its load)" if cache_hit else "a fresh compile"
    rows.append([f"codegen, from {where}:", "", "", ""])
    rows += [[name, _ms(s), "", _bar(s, longest)] for name, s in codegen]
    total_passes = sum(r[1] for r in passes)
    total_codegen = sum(r[1] for r in codegen)
    rows.append(["total", _ms(total_passes + total_codegen), "", ""])
    note = (
        f"<p>Tracing and passes {_ms(total_passes)} ms, codegen {_ms(total_codegen)} ms "
        f"(the code compiled with cycle counters around each kernel, for the profile).</p>"
    )
    return note + _table(["stage", "ms", "nodes after", ""], rows, numeric=frozenset({1, 2}))


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}"


def _bar(seconds: float, longest: float) -> Markup:
    width = max(1, round(160 * seconds / longest))
    return Markup(f'<span class="kc-bar" style="width:{width}px"></span>')


def _machine(cpu: dict[str, Any], machine_line: str | None) -> str:
    has = set(cpu["features"])
    chips = [f'<span class="kc-chip kc-key">{f}</span>' for f in KEY_FEATURES if f in has]
    chips += [
        f'<span class="kc-chip">{html.escape(f)}</span>'
        for f in cpu["features"]
        if f not in KEY_FEATURES
    ]
    lacks = [f for f in KEY_FEATURES if f not in has]
    parts = [
        f"<p>CPU <b>{html.escape(cpu['name'])}</b> ({html.escape(cpu['triple'])}), as LLVM "
        "names it; the code was built for it and its features.</p>",
        f"<p>{html.escape(machine_line)}</p>" if machine_line else "",
        f"<p>Features ({len(has)}; those that choose kcompile's code paths first):</p>",
        f"<div>{''.join(chips)}</div>",
        f"<p>Lacks: {', '.join(lacks)}.</p>" if lacks else "",
    ]
    return "".join(parts)


def _table(headers: list[str], rows: list[list[Any]], numeric: frozenset[int] = frozenset()) -> str:
    """A table of text cells (escaped here) and ``Markup`` cells (HTML made here)."""

    def cell(tag: str, i: int, value: Any) -> str:
        inner = value.html if isinstance(value, Markup) else html.escape(str(value))
        style = ' class="kc-num"' if i in numeric else ""
        return f"<{tag}{style}>{inner}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class Markup:
    """HTML that ``_table`` puts in a cell as it is."""

    def __init__(self, html: str) -> None:
        self.html = html
