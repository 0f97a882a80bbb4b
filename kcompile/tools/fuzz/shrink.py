"""Shrinking a failing model: drop layers, outputs and extras, narrow shapes, while it
still fails the same way. Greedy, as delta debugging is: take the first smaller
candidate that still fails, start again from it."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator

from kcompile.tools.fuzz.catalogue import Invalid
from kcompile.tools.fuzz.spec import Call, ModelSpec, infer_shapes

_NARROW_ARGS = ("units", "filters", "output_dim", "kernel_size", "depth_multiplier", "pool_size")


def _renumber(spec: ModelSpec, removed: int, replacement: int) -> None:
    """Readers of tensor ``removed`` read ``replacement``; later ids move down by one."""

    def fix(i: int) -> int:
        i = replacement if i == removed else i
        return i - 1 if i > removed else i

    for call in spec.calls:
        call.inputs = [fix(i) for i in call.inputs]
    for out in spec.outputs:
        out.tensor = fix(out.tensor)


def _without_call(spec: ModelSpec, k: int) -> ModelSpec:
    new = copy.deepcopy(spec)
    call = new.calls.pop(k)
    _renumber(new, len(new.inputs) + k, call.inputs[0])
    return new


def _without_output(spec: ModelSpec, k: int) -> ModelSpec:
    new = copy.deepcopy(spec)
    del new.outputs[k]
    del new.metrics[k]
    return new


def _narrowed(args: dict) -> Iterator[dict]:
    for key in _NARROW_ARGS:
        value = args.get(key)
        if isinstance(value, int) and value > 1:
            yield {**args, key: 1}
            yield {**args, key: value // 2 + (value % 2 if value > 3 else 0)}
    for key in ("strides", "dilation_rate", "use_bias", "activation", "return_sequences"):
        if key in args and args[key] not in (None, 1, False):
            yield {k: v for k, v in args.items() if k != key}


def candidates(spec: ModelSpec) -> Iterator[ModelSpec]:
    """Smaller variants of ``spec``, the biggest cuts first (not all of them valid)."""
    for k in range(len(spec.outputs)):
        if len(spec.outputs) > 1:
            yield _without_output(spec, k)
    for k in reversed(range(len(spec.calls))):
        yield _without_call(spec, k)
    for k, call in enumerate(spec.calls):
        if len(call.inputs) > 2:
            for j in range(len(call.inputs)):
                new = copy.deepcopy(spec)
                del new.calls[k].inputs[j]
                yield new
        for j in range(len(call.inner or ())):
            new = copy.deepcopy(spec)
            del new.calls[k].inner[j]
            yield new
        if call.inner and len(call.inner) == 1:
            new = copy.deepcopy(spec)
            new.calls[k] = Call(*call.inner[0], inputs=call.inputs)
            yield new
    for k, inp in enumerate(spec.inputs):
        for axis, d in enumerate(inp.shape):
            if d > 1:
                new = copy.deepcopy(spec)
                new.inputs[k].shape[axis] = max(1, d // 2)
                yield new
    if spec.optimizer != ["SGD", {}]:
        new = copy.deepcopy(spec)
        new.optimizer = ["SGD", {}]
        yield new
    if any(spec.metrics):
        new = copy.deepcopy(spec)
        new.metrics = [[] for _ in spec.metrics]
        yield new
    for k, call in enumerate(spec.calls):
        for args in _narrowed(call.args):
            new = copy.deepcopy(spec)
            new.calls[k].args = args
            yield new


def _valid(spec: ModelSpec) -> bool:
    try:
        infer_shapes(spec)
    except (Invalid, ValueError, KeyError, IndexError):
        return False
    return True


def shrink(
    spec: ModelSpec, still_fails: Callable[[ModelSpec], bool], budget: int = 80
) -> ModelSpec:
    """The smallest variant found (within ``budget`` trials) for which ``still_fails``."""
    trials = 0
    progress = True
    while progress and trials < budget:
        progress = False
        for candidate in candidates(spec):
            if not _valid(candidate) or candidate.size() >= spec.size():
                continue
            trials += 1
            if still_fails(candidate):
                spec, progress = candidate, True
                break
            if trials >= budget:
                break
    return spec
