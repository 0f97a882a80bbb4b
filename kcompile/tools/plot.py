"""``keras.utils.plot_model`` and ``model_to_dot``: the model's layers and their
connections as Graphviz text, rendered to PNG/SVG/PDF by Graphviz's ``dot`` program when
it is installed (Debian's ``graphviz``), else written as ``.dot`` text with a message
that says how to render it."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

from kcompile.utils.atomic import atomic_write


def _shape(shape) -> str:
    return str(tuple(shape)).replace("None", "None")


def model_to_dot(
    model,
    show_shapes: bool = False,
    show_dtype: bool = False,
    show_layer_names: bool = True,
    rankdir: str = "TB",
    expand_nested: bool = False,
    dpi: int = 200,
    show_layer_activations: bool = False,
    show_trainable: bool = False,
    **kwargs: Any,
) -> str:
    """Graphviz text: one box per layer (name, class; shapes, dtypes, activation and
    trainable flag on request), an edge per tensor passed between layers."""
    if not getattr(model, "built", False):
        raise ValueError(
            f"plot_model: model '{model.name}' is not built yet; call it on data first"
        )
    lines = [f'digraph "{model.name}" {{', f"  rankdir={rankdir};", f"  dpi={dpi};"]
    lines.append('  node [shape=record, fontname="Helvetica", fontsize=10];')
    nodes = getattr(model, "operations", None) or model.layers  # keras.ops calls too
    ids = {id(layer): f"l{i}" for i, layer in enumerate(nodes)}
    for inp in model.inputs:
        ids.setdefault(id(inp._input_layer), f"l{len(ids)}")
    layers = [t._input_layer for t in model.inputs if t._input_layer not in nodes]
    for layer in [*layers, *nodes]:
        title = (
            f"{layer.name} ({type(layer).__name__})" if show_layer_names else type(layer).__name__
        )
        parts = [title]
        calls = getattr(layer, "_calls", [])
        if show_shapes:
            if hasattr(layer, "output_tensor"):
                parts.append(f"output: {_shape(layer.output_tensor.shape)}")
            elif calls:
                ins = ", ".join(_shape(t.shape) for t in calls[0].inputs)
                outs = ", ".join(_shape(t.shape) for t in calls[0].outputs)
                parts.append(f"input: {ins}\\noutput: {outs}")
        if show_dtype and calls:
            parts.append(f"dtype: {calls[0].outputs[0].dtype}")
        if show_layer_activations and hasattr(layer, "activation"):
            parts.append(f"activation: {getattr(layer.activation, '__name__', layer.activation)}")
        if show_trainable:
            parts.append(f"trainable: {layer.trainable}")
        label = "|".join(p.replace('"', "'") for p in parts)
        lines.append(f'  {ids[id(layer)]} [label="{{{label}}}"];')
    for layer in nodes:
        for record in getattr(layer, "_calls", []):
            for t in record.inputs:
                source = t._history[0].layer if t._history and t._history[0] else t._input_layer
                if id(source) in ids:
                    lines.append(f"  {ids[id(source)]} -> {ids[id(layer)]};")
    lines.append("}")
    return "\n".join(dict.fromkeys(lines)) + "\n"


def plot_model(model, to_file: str = "model.png", **kwargs: Any) -> str:
    """Write the model's diagram to ``to_file`` (its extension picks PNG, SVG, PDF or DOT);
    the path written, which is ``<to_file>.dot`` when Graphviz is not installed."""
    text = model_to_dot(model, **kwargs)
    to_file = os.fspath(to_file)
    extension = os.path.splitext(to_file)[1].lstrip(".").lower() or "png"
    if extension == "dot":
        atomic_write(to_file, lambda f: f.write(text.encode()))
        return to_file
    dot = shutil.which("dot")
    if dot is None:
        fallback = to_file + ".dot"
        atomic_write(fallback, lambda f: f.write(text.encode()))
        print(
            f"plot_model: Graphviz's `dot` program is not installed (Debian: apt-get install "
            f"graphviz); wrote the diagram as text to {fallback}; render it with "
            f"`dot -T{extension} {fallback} -o {to_file}`"
        )
        return fallback
    done = subprocess.run([dot, f"-T{extension}"], input=text.encode(), capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(f"plot_model: dot failed: {done.stderr.decode(errors='replace')}")
    atomic_write(to_file, lambda f: f.write(done.stdout))
    return to_file
