"""The fuzzer's fixed budget in the suite (the long run is ``kcompile fuzz``): random
Keras models and op-level graphs compiled in the checking mode against the reference
interpreter, and mutated IR dumps against the parser. Seeds are fixed, so a failure here
names its case: ``python -m kcompile.tools.fuzz.worker model SEED``."""

from __future__ import annotations

from pathlib import Path

import pytest

from kcompile.ir import IRParseError, parse_graph
from kcompile.tools.fuzz.catalogue import Invalid
from kcompile.tools.fuzz.generate import random_model
from kcompile.tools.fuzz.graphs import check_graph, random_graph
from kcompile.tools.fuzz.mutate import fuzz_parser
from kcompile.tools.fuzz.oracle import Mismatch, check_source, compare
from kcompile.tools.fuzz.shrink import candidates, shrink
from kcompile.tools.fuzz.spec import ModelSpec, infer_shapes, render

# A few seeds of each, as a regression net in the suite's time; the fuzzer itself runs
# for as long as it is given (`kcompile fuzz --minutes N`: docs/trust.md). Seed 6 is
# quantized to int8 (a Dense and a MaxPooling1D, which model.quantize once stumbled on);
# seeds 3-5 and 7 left for the suite's time (~30 s of CPU), the fuzzer runs them.
MODEL_SEEDS = (0, 1, 2, 6)
GRAPH_SEEDS = range(40)
# The quick tier (-m "not slow") runs the first seeds of each; the full suite all.
QUICK_MODELS, QUICK_GRAPHS = 2, 15


def _seeds(seeds, quick: int) -> list:
    return [s if s < quick else pytest.param(s, marks=pytest.mark.slow) for s in seeds]


@pytest.mark.parametrize("seed", _seeds(MODEL_SEEDS, QUICK_MODELS))
def test_random_model_matches_the_reference(seed):
    spec = random_model(seed)
    check_source(render(spec), spec)


@pytest.mark.parametrize("seed", _seeds(GRAPH_SEEDS, QUICK_GRAPHS))
def test_random_graph_matches_float64_and_differences(seed):
    check_graph(random_graph(seed))


def test_the_generator_draws_quantized_and_lora_models():
    """Some models are quantized, some get LoRA on their Dense/EinsumDense/Embedding
    layers, some both (seeds 71 and 133 of these: the fuzzer checks them)."""
    specs = [random_model(s) for s in range(140)]
    assert any(s.quantized for s in specs) and any(s.lora for s in specs)
    assert any(s.quantized and s.lora for s in specs)
    assert 'enable_lora(2, lora_alpha=3, b_initializer="he_uniform")' in render(random_model(4))


def test_a_seed_names_one_model_and_its_file_round_trips():
    spec = random_model(7)
    assert random_model(7).to_json() == spec.to_json()
    assert ModelSpec.from_json(spec.to_json()).to_json() == spec.to_json()
    namespace = {}
    exec(compile(render(spec), "model.py", "exec"), namespace)
    assert ModelSpec.from_json(namespace["SPEC"]).to_json() == spec.to_json()
    infer_shapes(spec)


def test_the_generator_covers_the_layer_zoo():
    layers = {c.layer for s in range(300) for c in random_model(s).calls}
    inner = {name for s in range(300) for c in random_model(s).calls for name, _ in c.inner or ()}
    expected = {
        "Dense", "Conv1D", "Conv2D", "DepthwiseConv2D", "MaxPooling2D", "AveragePooling1D",
        "BatchNormalization", "LayerNormalization", "Dropout", "Embedding", "LSTM", "GRU",
        "SimpleRNN", "Bidirectional", "Concatenate", "Add", "Subtract", "Maximum", "Minimum",
        "Multiply", "Average", "Sequential", "ZeroPadding2D", "UpSampling2D", "Flatten",
    }  # fmt: skip
    assert expected <= layers | inner


def test_compare_is_normwise_and_refuses_what_it_should():
    compare("s", "x", [1.0, 2.0], [1.0, 2.0001], rtol=1e-3)
    with pytest.raises(Mismatch, match="max difference"):
        compare("s", "x", [1.0, 2.1], [1.0, 2.0], rtol=1e-3)
    with pytest.raises(Mismatch, match="non-finite"):
        compare("s", "x", [float("nan")], [1.0], rtol=1e-3)
    with pytest.raises(Mismatch, match="shape"):
        compare("s", "x", [1.0], [1.0, 1.0], rtol=1e-3)


def test_shrinking_keeps_a_failure_and_makes_the_model_smaller():
    spec = random_model(11)
    assert any(True for _ in candidates(spec))

    def fails(s):  # a stand-in failure: any model that still has an LSTM or a Dense
        return any(c.layer in ("Dense", "LSTM") for c in s.calls)

    small = shrink(spec, fails, budget=200)
    assert fails(small) and small.size() <= spec.size()
    assert len(small.calls) <= len(spec.calls)
    infer_shapes(small)


def test_invalid_edits_are_refused_by_the_spec():
    spec = random_model(3)
    spec.calls[0].inputs = [len(spec.inputs) + 5]
    with pytest.raises(Invalid):
        infer_shapes(spec)


def test_mutated_dumps_give_located_parse_errors_only():
    reports = []
    counts = fuzz_parser(seed=1, count=2000, report=reports.append)
    assert counts["escaped"] == 0, reports[:5]
    assert counts["refused"] > 1000


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "graph g(%x: f32[2] data) {\n  %0 = reduce_sum(%x) {axes=foo} : f32[]\n  return y=%0\n}",
            "2:8",
        ),
        (
            "graph g(%x: f32[2] data) {\n  %0 = neg(%x) : f32[2]\n  return y=%0\n} memory(max_batch=1e40, arena=0) {\n}",
            "4:20: expected an integer max_batch",
        ),
        ("graph g(%x: f32[2] data) {\n  return y=%x, y=%x\n}", "3:1"),
    ],
)
def test_malformed_text_is_an_ir_parse_error_with_its_location(text, message):
    with pytest.raises(IRParseError, match=message):
        parse_graph(text)


def test_an_impossible_live_range_is_refused_by_the_plan_verifier():
    text = (
        "graph g(%x: f32[N,2] data) {\n"
        "  %0 = neg(%x) : f32[N,2]\n"
        "  %1 = exp(%0) : f32[N,2]\n"
        "  return y=%1\n"
        "} memory(max_batch=4, arena=64) {\n"
        "  %0 offset=0 bytes=8*N live=0:1\n"
        "  %1 offset=32 bytes=8*N live=5:-1\n"
        "}"
    )
    with pytest.raises(IRParseError, match="impossible live range 5:-1"):
        parse_graph(text)
    with pytest.raises(IRParseError, match="storage is live only over"):
        parse_graph(text.replace("live=5:-1", "live=1:1"))
    parse_graph(text.replace("live=5:-1", "live=1:2"))


def test_a_failure_is_saved_shrunk_as_a_python_file(tmp_path, monkeypatch):
    from kcompile.tools.fuzz import runner

    def fake_case(kind, seed, timeout, spec_file=None, dump=None):
        spec = ModelSpec.from_json(Path(spec_file).read_text()) if spec_file else random_model(seed)
        has_dense = any(c.layer == "Dense" for c in spec.calls)
        outcome = "mismatch" if has_dense else "ok"
        return runner.Result(kind, seed, outcome, "forward: batch 1: max difference 1")

    monkeypatch.setattr(runner, "run_case", fake_case)
    failed = fake_case("model", 5, 1.0)
    path = runner.save_reproduction(failed, tmp_path, timeout=1.0)
    namespace = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    small = ModelSpec.from_json(namespace["SPEC"])
    assert any(c.layer == "Dense" for c in small.calls)
    assert small.size() < random_model(5).size()
    assert path.read_text().startswith("# mismatch: forward")


def test_a_failing_graph_is_saved_as_ir_that_parses(tmp_path):
    from kcompile.tools.fuzz import runner

    path = runner.save_reproduction(runner.Result("graph", 3, "error", "x"), tmp_path, 1.0)
    assert path.suffix == ".kir"
    parse_graph(path.read_text(), str(path))
