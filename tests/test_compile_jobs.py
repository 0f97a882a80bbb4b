"""A model's module compiled in parts on several cores (codegen.building.split,
codegen.building.jobs), and the pass pipeline's results taken from the compile cache
(kcompile.runtime.prepared)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import kcompile as keras
from kcompile import layers
from kcompile.codegen.building.cache import cache_key
from kcompile.codegen.building.target import pack_objects, unpack_objects
from kcompile.codegen.lowering.module import lower_graph
from kcompile.passes import PassManager, default_passes
from kcompile.runtime import prepare

DEFINE = re.compile(r'^define [^@]*@"?([\w.$]+)"?\(', re.M)


def _cnn():
    model = keras.Sequential(
        [
            keras.Input((12, 12, 2)),
            layers.Conv2D(4, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(5, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _train_graph():
    from kcompile.models import graphs as G

    model = _cnn()
    traced = G.trace_step(model, "train", [G.label_type_for(np.dtype(np.int32), (16,))])
    manager = PassManager(default_passes(), verify_each=False)
    return prepare(traced.graph, manager)


def test_each_function_is_defined_in_one_part_and_helpers_in_every_part_that_calls_them():
    graph = _train_graph()
    whole = lower_graph(graph, parts=1)
    parts = lower_graph(graph, parts=2).parts
    assert len(parts) == 2
    defined = [DEFINE.findall(text) for text in parts]
    everything = set(DEFINE.findall(whole.llvm_ir))
    helpers = {name for name in everything if name.startswith("kc_") and name[3:] in ("exp", "log")}
    own = [set(names) - helpers for names in defined]
    assert own[0].isdisjoint(own[1])
    assert own[0] | own[1] == everything - helpers
    assert all(own), "a part with nothing of its own"
    for text, names in zip(parts, defined):
        for helper in helpers:  # inlined into loops: a copy wherever one is called
            if f'@"{helper}"(' in text.split("\n", 1)[1]:
                assert helper in names


@pytest.mark.parametrize("mode", ["profile", "check"])
def test_counters_and_guard_words_are_one_global_shared_by_the_parts(mode):
    parts = lower_graph(_train_graph(), parts=2, **{mode: True}).parts
    name = "kc_profile_table" if mode == "profile" else "kc_guard_words"
    lines = [re.search(rf'^@"{name}" = (.*)$', text, re.M).group(1) for text in parts]
    assert sorted(line.split(" [")[0] for line in lines) == ["external global", "global"]


def test_pack_objects_detects_a_truncated_payload():
    payload = pack_objects([b"first", b"second"])
    assert unpack_objects(payload) == [b"first", b"second"]
    assert unpack_objects(b"one object") == [b"one object"]
    with pytest.raises(ValueError, match="do not add up"):
        unpack_objects(payload[:-3])


TRAIN_SCRIPT = """
import json, sys
import numpy as np
sys.path.insert(0, {tests!r})
import test_compile_jobs as t
import kcompile
from kcompile.codegen.library.runtime_library import runtime
runtime()  # built here, not in a child that would hold the second core
kcompile.utils.set_random_seed(7)
model = t._cnn()
rng = np.random.default_rng(0)
x = rng.normal(size=(16, 12, 12, 2)).astype(np.float32)
y = rng.integers(0, 5, 16).astype(np.int32)
losses = [float(model.train_on_batch(x, y)[0]) for _ in range(3)]
exe = next(iter(model.compiled_steps.executables.values()))
stages = list(exe.compile_times.stages)
print(json.dumps({{"losses": losses, "weights": [w.tolist() for w in model.get_weights()],
                  "stages": stages, "predict": model.predict_on_batch(x).tolist()}}))
"""


def _train_in_process(tmp_path, jobs: int, check: str) -> dict:
    env = dict(os.environ, KCOMPILE_CACHE_DIR=str(tmp_path / f"cache{jobs}"))
    env.update(KCOMPILE_COMPILE_JOBS=str(jobs), KCOMPILE_CHECK=check, KCOMPILE_VERIFY="")
    script = TRAIN_SCRIPT.format(tests=os.path.dirname(__file__))
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("check", ["0", "1"])
def test_training_compiled_in_two_processes_matches_one_bit_for_bit(tmp_path, check):
    """A fresh (single-threaded) process forks a child for the second part; the weights
    after three steps and the predictions equal those of the module compiled whole (and
    in the checking mode, the guard words live in one part and are checked from both)."""
    one = _train_in_process(tmp_path, 1, check)
    # The runtime library (base and convolutions) from the first process's cache: the
    # second compiles the model only, not again the 2.5 s of library it does not test.
    (tmp_path / "cache2").mkdir()
    for key in (cache_key("runtime"), cache_key("runtime", "conv")):
        if (tmp_path / "cache1" / f"{key}.o").exists():  # else the second builds it too
            shutil.copy(tmp_path / "cache1" / f"{key}.o", tmp_path / "cache2" / f"{key}.o")
    two = _train_in_process(tmp_path, 2, check)
    assert "wait for 1 more processes" in two["stages"], two["stages"]
    assert not any(s.startswith("wait for") for s in one["stages"])
    assert two["losses"] == one["losses"]
    assert two["weights"] == one["weights"]
    assert two["predict"] == one["predict"]
    entries = [p.read_bytes() for p in (tmp_path / "cache2").glob("*.o")]
    assert any(b"KCPARTS" in e[:200] for e in entries), "no entry holds a split module"


def test_the_pipeline_result_comes_from_the_cache_the_second_time(tmp_path, monkeypatch):
    from kcompile.ir import print_graph
    from kcompile.models import graphs as G

    monkeypatch.setenv("KCOMPILE_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("KCOMPILE_VERIFY", raising=False)
    traced = G.trace_step(_cnn(), "eval", [G.label_type_for(np.dtype(np.int32), (16,))]).graph
    first = PassManager(default_passes())
    fresh = prepare(traced, first)
    assert first.report.stages, "the first preparation ran no pass"
    second = PassManager(default_passes())
    cached = prepare(traced, second)
    assert not second.report.stages, "the second preparation ran the passes again"
    assert print_graph(cached) == print_graph(fresh) and cached is not fresh
    watched = PassManager(default_passes(), keep=True)  # snapshots: every stage runs
    prepare(traced, watched)
    assert watched.snapshots
    shorter = PassManager(default_passes({"fuse"}))  # another pipeline, another entry
    assert print_graph(prepare(traced, shorter)) != print_graph(fresh)
    assert shorter.report.stages


def test_stages_recorded_before_the_pipeline_are_checked_when_it_runs(monkeypatch):
    """Unwatched, a recorded stage (tracing) is verified and timed when the pipeline runs,
    and not at all when its result comes from the cache; watched, at once."""
    from kcompile.models import graphs as G

    monkeypatch.delenv("KCOMPILE_VERIFY", raising=False)
    label = [G.label_type_for(np.dtype(np.int32), (16,))]
    quiet = PassManager(default_passes())
    traced = G.trace_step(_cnn(), "eval", label, quiet.stage).graph
    assert not quiet.report.stages
    quiet.run(traced)
    assert quiet.report.stages[0][0] == "traced"
    watched = PassManager(default_passes(), keep=True)
    G.trace_step(_cnn(), "eval", label, watched.stage)
    assert [name for name, _ in watched.snapshots] == ["traced"]
