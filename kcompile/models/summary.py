"""``model.summary()`` in Keras's table form."""

from __future__ import annotations

from kcompile.models import layer_internals as internals


def readable_size(nbytes: float) -> str:
    for unit in ["B", "KB", "MB", "GB", "TB"]:
        if nbytes / 1024 < 1:
            return f"{nbytes:.2f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.2f} PB"


def _row(cells: list[str], widths: list[int], right: set[int]) -> str:
    out = []
    for i, (c, w) in enumerate(zip(cells, widths)):
        out.append(" " + (c.rjust(w - 2) if i in right else c.ljust(w - 2)) + " ")
    return "│" + "│".join(out) + "│"


def _shape_of(layer) -> str:
    calls = internals.call_records(layer)
    if not calls:
        traced = internals.traced_shapes(layer)  # called inside another's call
        if traced:
            return str(traced[0]) if len(traced) == 1 else str(list(traced))
        tensor = getattr(layer, "output_tensor", None)
        return str(tensor.shape) if tensor is not None else "?"
    outs = calls[-1].outputs
    shapes = [str(t.shape) for t in outs]
    return shapes[0] if len(shapes) == 1 else "[" + ", ".join(shapes) + "]"


def summary_text(model, functional: bool) -> str:
    """Keras's table; ``functional`` adds its "Connected to" column (a functional model,
    not a Sequential or a subclassed model's own ``call``)."""
    headers = ["Layer (type)", "Output Shape", "Param #"]
    widths = [33, 24, 15]
    if functional:
        headers.append("Connected to")
        widths = [31, 22, 11, 23]
    rows = []
    # A functional model's keras.ops calls are rows too, as Keras's summary shows them.
    for layer in getattr(model, "operations", None) or model.layers:
        cells = [
            f"{layer.name} ({type(layer).__name__})",
            _shape_of(layer),
            f"{layer.count_params():,}" if layer.built else "0 (unbuilt)",
        ]
        if functional:
            calls = internals.call_records(layer)
            sources = []
            for call in calls[-1:]:
                for t in call.inputs:
                    rec = t._history[0] if t._history else None
                    src = rec.layer.name if rec else t._input_layer.name
                    sources.append(f"{src}[0][0]")
            cells.append(", ".join(sources) if sources else "-")
        rows.append(cells)
    for cells in rows:
        for j, c in enumerate(cells):
            widths[j] = max(widths[j], len(c) + 2)
    right = {2}
    top = "┏" + "┳".join("━" * w for w in widths) + "┓"
    head = (
        "┃"
        + "┃".join(
            " " + h.ljust(w - 2) + " " if j != 2 else " " + h.rjust(w - 2) + " "
            for j, (h, w) in enumerate(zip(headers, widths))
        )
        + "┃"
    )
    sep = "┡" + "╇".join("━" * w for w in widths) + "┩"
    mid = "├" + "┼".join("─" * w for w in widths) + "┤"
    bottom = "└" + "┴".join("─" * w for w in widths) + "┘"
    lines = [f'Model: "{model.name}"', top, head, sep]
    for i, cells in enumerate(rows):
        if i:
            lines.append(mid)
        lines.append(_row(cells, widths, right))
    lines.append(bottom)
    trainable = sum(int(v.value.size) for v in model.trainable_weights)
    non_trainable = sum(int(v.value.size) for v in model.non_trainable_weights)
    # Keras's bytes: each weight in its dtype's size (an int8 kernel 1 byte a value)
    trainable_bytes = sum(_weight_bytes(v) for v in model.trainable_weights)
    non_trainable_bytes = sum(_weight_bytes(v) for v in model.non_trainable_weights)
    opt = model.optimizer
    opt_params = 0
    if opt is not None and opt.built:
        opt_params = 2 + sum(int(a.size) for a in opt.slots.values())
    total = trainable + non_trainable + opt_params
    total_bytes = trainable_bytes + non_trainable_bytes + opt_params * 4
    lines.append(f" Total params: {total:,} ({readable_size(total_bytes)})")
    lines.append(f" Trainable params: {trainable:,} ({readable_size(trainable_bytes)})")
    lines.append(f" Non-trainable params: {non_trainable:,} ({readable_size(non_trainable_bytes)})")
    if opt_params:
        lines.append(f" Optimizer params: {opt_params:,} ({readable_size(opt_params * 4)})")
    return "\n".join(lines)


# Bits a value of each dtype takes, as Keras's summary counts them (its DTYPE_TO_SIZE).
DTYPE_BITS = {
    **dict.fromkeys(("float16", "bfloat16", "int16", "uint16"), 16),
    **dict.fromkeys(("float32", "int32", "uint32"), 32),
    **dict.fromkeys(("float64", "int64", "uint64"), 64),
    **dict.fromkeys(("int8", "uint8"), 8),
    "bool": 1,
}


def _weight_bytes(var) -> float:
    """Bytes of a weight as Keras counts them: its values in its dtype's size (an int8
    kernel 1 byte a value, a bfloat16 weight 2, a bool an eighth)."""
    return int(var.value.size) * DTYPE_BITS.get(str(var.dtype), 32) / 8
