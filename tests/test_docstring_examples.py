"""Keras's own docstring examples on kcompile, against the results real Keras recorded
(issue 26; ``benchmarks/keras_docstring_examples.py`` made the fixture and the guard list,
with Keras 3.15.1 on JAX; no Keras needed here).

Every example of ``tests/keras_fixtures/docstring_examples_agree.txt`` agreed with Keras when
the list was written and must keep agreeing: the same statements run, the same values (by
their numbers where Keras's are deterministic, by kind, shape and dtype where they are
random), the same printed numbers. The examples run in this process, one after another, each
in a fresh namespace after the session, settings and seeds are reset. The examples that do
not agree yet are run by a slow test that reports the ones that now agree (add them with the
script's ``--update-guard``) without failing on the others.
"""

from __future__ import annotations

import signal
import warnings
from typing import Any

import pytest

from benchmarks.keras_docstring_examples import (
    compare,
    keras_ran,
    load_fixture,
    read_guard,
    run_example,
)

FIXTURE = load_fixture()
EXAMPLES = {e["id"]: e for e in FIXTURE.get("examples", [])}
GUARD = read_guard()
FAST = sorted(i for i, slow in GUARD.items() if not slow)
SLOW = sorted(i for i, slow in GUARD.items() if slow)
CHUNKS = 4  # the fast examples in this many tests, so that workers share them
REST_TIMEOUT = 30  # seconds an example that does not agree yet may take in the slow report


def _run(example_id: str) -> dict[str, Any]:
    import kcompile

    example = EXAMPLES[example_id]
    record = run_example(kcompile, example, kcompile_side=True)
    return compare(example, example["keras"], record)


def _failures(ids: list[str]) -> dict[str, dict[str, Any]]:
    results = {i: _run(i) for i in ids}
    return {i: r for i, r in results.items() if r["status"] != "agree"}


def _describe(failures: dict[str, dict[str, Any]]) -> str:
    return "\n".join(f"{i}: {r['status']}: {r['cause']}" for i, r in sorted(failures.items()))


def test_the_guard_list_names_examples_keras_ran():
    assert FIXTURE, "tests/keras_fixtures/docstring_examples.json is missing"
    assert GUARD, "tests/keras_fixtures/docstring_examples_agree.txt is missing or empty"
    unknown = [i for i in GUARD if i not in EXAMPLES]
    assert not unknown, f"guarded examples absent from the fixture: {unknown}"
    not_run = [i for i in GUARD if not keras_ran(EXAMPLES[i], EXAMPLES[i]["keras"])]
    assert not not_run, f"guarded examples that Keras did not run: {not_run}"


def test_the_comparison_catches_a_wrong_value():
    """The oracle can fail: a changed number, dtype or shape in kcompile's record is caught."""
    example = next(
        EXAMPLES[i]
        for i in FAST
        if any(
            s.get("value", {}).get("t") == "array" and not s["value"].get("random")
            for s in EXAMPLES[i]["keras"]["statements"]
        )
    )
    keras_record = example["keras"]
    index, statement = next(
        (n, s)
        for n, s in enumerate(keras_record["statements"])
        if s.get("value", {}).get("t") == "array" and not s["value"].get("random")
    )
    value = statement["value"]
    numbers = value.get("data") or value["head"]
    bumped = [v + 1 if isinstance(v, (int, float)) else 1.0 for v in numbers]
    changes = [
        {**value, ("data" if "data" in value else "head"): bumped},
        {**value, "dtype": "float64" if value["dtype"] != "float64" else "float32"},
        {**value, "shape": [*value["shape"], 1]},
    ]
    assert compare(example, keras_record, keras_record)["status"] == "agree"
    for changed in changes:
        statements = list(keras_record["statements"])
        statements[index] = {**statement, "value": changed}
        other = {**keras_record, "statements": statements}
        assert compare(example, keras_record, other)["status"] == "mismatch", changed


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_guarded_examples_keep_agreeing(chunk, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that save files write them here
    ids = FAST[chunk::CHUNKS]
    failures = _failures(ids)
    assert not failures, (
        f"{len(failures)} of {len(ids)} Keras docstring examples that agreed with Keras no "
        f"longer do:\n{_describe(failures)}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_slow_guarded_examples_keep_agreeing(chunk, tmp_path, monkeypatch):
    # In chunks too: as one test (94 s in a loaded run) they could not be shared between
    # the workers.
    monkeypatch.chdir(tmp_path)
    ids = SLOW[chunk::CHUNKS]
    failures = _failures(ids)
    assert not failures, (
        f"{len(failures)} of {len(ids)} Keras docstring examples that agreed with Keras no "
        f"longer do:\n{_describe(failures)}"
    )


def _alarm(signum: int, frame: Any) -> None:
    raise TimeoutError(f"more than {REST_TIMEOUT} s")


@pytest.mark.slow
def test_report_the_examples_that_do_not_agree_yet(tmp_path, monkeypatch):
    """Reported, not asserted: kcompile's API grows under them."""
    monkeypatch.chdir(tmp_path)
    rest = [i for i, e in EXAMPLES.items() if i not in GUARD and keras_ran(e, e["keras"])]
    previous = signal.signal(signal.SIGALRM, _alarm)
    results = {}
    try:
        for example_id in rest:
            signal.alarm(REST_TIMEOUT)
            try:
                results[example_id] = _run(example_id)
            except TimeoutError as exc:
                results[example_id] = {"status": "timeout", "cause": str(exc)}
            finally:
                signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert set(results) == set(rest)
    now_agree = sorted(i for i, r in results.items() if r["status"] == "agree")
    if now_agree:
        warnings.warn(
            f"{len(now_agree)} Keras docstring examples now agree and are not guarded yet "
            "(python benchmarks/keras_docstring_examples.py --only-kcompile --update-guard): "
            + ", ".join(now_agree),
            stacklevel=1,
        )
    print(f"\n{len(now_agree)} of {len(rest)} unguarded examples agree; the others:")
    print(_describe({i: r for i, r in results.items() if r["status"] != "agree"}))
