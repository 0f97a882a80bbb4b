"""``kcompile fuzz``: many cases, each in its own process with a timeout, so a crash or a
hang is a result like any other; counts by outcome, and every failure saved as a shrunk
reproduction (a Python file, and the IR dumps of every stage)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

FAILURES = ("mismatch", "error", "crash", "hang")
_MARK = "KCOMPILE-FUZZ "


@dataclass
class Result:
    kind: str  # model or graph
    seed: int
    outcome: str  # ok, unsupported, mismatch, error, crash, hang
    message: str = ""
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.outcome in FAILURES

    def signature(self) -> tuple:
        """What must stay the same while shrinking: the outcome and its first words."""
        return (self.outcome, self.message.split(":")[0])


def _environment(dump: str | None = None) -> dict:
    env = dict(os.environ)
    env.setdefault("KCOMPILE_CHECK", "1")  # guard bytes around every buffer
    # Verifying and re-parsing after every pass costs a fifth of a case; the test suite
    # does it, the fuzzer leaves it to KCOMPILE_VERIFY=1.
    env["KCOMPILE_NUM_THREADS"] = env.get("KCOMPILE_FUZZ_THREADS", "1")
    if dump:
        env["KCOMPILE_DUMP"] = dump
    return env


def run_case(
    kind: str, seed: int, timeout: float, spec_file: str | None = None, dump=None
) -> Result:
    """One case in a fresh interpreter."""
    cmd = [sys.executable, "-m", "kcompile.tools.fuzz.worker", kind, str(seed)]
    if spec_file:
        cmd += ["--spec", spec_file]
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=_environment(dump)
        )
    except subprocess.TimeoutExpired:
        return Result(kind, seed, "hang", f"no result in {timeout:.0f} s", timeout)
    seconds = time.perf_counter() - start
    lines = [line for line in proc.stdout.splitlines() if line.startswith(_MARK)]
    if lines:
        data = json.loads(lines[-1][len(_MARK) :])
        message = data.get("message", "")
        if data.get("where"):
            message += f" (at {data['where']})"
        return Result(kind, seed, data["outcome"], message, seconds)
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        return Result(kind, seed, "crash", f"killed by {name}: {_tail(proc.stderr)}", seconds)
    return Result(kind, seed, "crash", f"exit {proc.returncode}: {_tail(proc.stderr)}", seconds)


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


def save_reproduction(result: Result, folder: Path, timeout: float) -> Path:
    """Shrink a failing case while it fails the same way; write it as a Python file (and,
    for a model, the IR of every stage from a run of the shrunk model)."""
    from kcompile.tools.fuzz.generate import random_model
    from kcompile.tools.fuzz.shrink import shrink
    from kcompile.tools.fuzz.spec import render

    folder.mkdir(parents=True, exist_ok=True)
    if result.kind != "model":
        from kcompile.ir import print_graph
        from kcompile.tools.fuzz.graphs import random_graph

        path = folder / f"graph-{result.seed}.kir"
        path.write_text(
            f"# {result.outcome}: {result.message}\n"
            f"# again: python -m kcompile.tools.fuzz.worker graph {result.seed}\n"
            + print_graph(random_graph(result.seed))
        )
        return path
    want = result.signature()

    def still_fails(spec) -> bool:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            f.write(spec.to_json())
        try:
            return run_case("model", spec.seed, timeout, f.name).signature() == want
        finally:
            os.unlink(f.name)

    spec = shrink(random_model(result.seed), still_fails, budget=40)
    path = folder / f"model-{result.seed}.py"
    header = f"# {result.outcome}: {result.message}\n"
    path.write_text(header + render(spec))
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(spec.to_json())
    try:
        run_case("model", spec.seed, timeout, f.name, dump=str(folder / f"model-{result.seed}-ir"))
    finally:
        os.unlink(f.name)
    return path


def fuzz(
    seed: int = 0,
    count: int | None = None,
    minutes: float | None = None,
    jobs: int = 1,
    kinds: tuple[str, ...] = ("model", "graph"),
    timeout: float = 120.0,
    out: str | None = "fuzz-failures",
    report=print,
) -> Counter:
    """Cases ``seed, seed + 1, ...`` (alternating ``kinds``) until ``count`` cases or
    ``minutes`` have passed; returns counts by (kind, outcome)."""
    deadline = time.monotonic() + 60 * minutes if minutes else None
    counts: Counter = Counter()
    failures: list[Result] = []

    def cases():
        i = 0
        while (count is None or i < count) and (deadline is None or time.monotonic() < deadline):
            yield kinds[i % len(kinds)], seed + i // len(kinds)
            i += 1

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        pending = []
        for kind, s in cases():
            pending.append(pool.submit(run_case, kind, s, timeout))
            while len(pending) >= 2 * max(1, jobs):
                _collect(pending.pop(0).result(), counts, failures, report)
        for future in pending:
            _collect(future.result(), counts, failures, report)
    if out:
        for result in _distinct(failures)[:MAX_REPRODUCTIONS]:
            path = save_reproduction(result, Path(out), timeout)
            report(f"  reproduction: {path}")
    return counts


MAX_REPRODUCTIONS = 10  # shrinking takes dozens of runs of a case: the first of each kind


def _distinct(failures: list[Result]) -> list[Result]:
    """One failure per (kind, signature), in seed order."""
    seen, out = set(), []
    for result in sorted(failures, key=lambda r: (r.kind, r.seed)):
        key = (result.kind, *result.signature())
        if key not in seen:
            seen.add(key)
            out.append(result)
    return out


def _collect(result: Result, counts: Counter, failures: list, report) -> None:
    counts[(result.kind, result.outcome)] += 1
    done = sum(counts.values())
    if done % 50 == 0:
        report(
            f"[{done} cases] " + ", ".join(f"{k} {o}: {n}" for (k, o), n in sorted(counts.items()))
        )
    if result.failed:
        failures.append(result)
        report(f"{result.kind} {result.seed}: {result.outcome}: {result.message[:400]}")
    elif result.outcome == "unsupported":
        report(f"{result.kind} {result.seed}: unsupported: {result.message[:200]}")


def summary(counts: Counter) -> str:
    kinds = sorted({k for k, _ in counts})
    outcomes = ["ok", "unsupported", *FAILURES]
    lines = [f"{'':8}" + "".join(f"{o:>13}" for o in outcomes)]
    for kind in kinds:
        lines.append(f"{kind:8}" + "".join(f"{counts[(kind, o)]:>13}" for o in outcomes))
    return "\n".join(lines)
