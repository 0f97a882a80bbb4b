"""``keras.ops.ctc_loss`` and ``ctc_decode`` (also in ``keras.ops.nn``): the
connectionist temporal classification loss, as Keras's JAX backend computes it (the
forward recursion of optax's ``ctc_loss`` over blank ("phi") and label ("emit") states,
in log space with -1e5 standing for log 0), and Keras's greedy decoding.

The recursion runs over the time steps, whose count is static, so it is unrolled while
tracing: each step is a few element-wise operations on [batch, labels] arrays, and the
gradient comes from those operations' rules. A step past a sample's ``output_length``
keeps its state, as Keras's masking does.
"""

from __future__ import annotations

from kcompile.ops import nn as NN
from kcompile.ops import numpy as N

_LOG_EPSILON = -1e5


def _phi_update(phi, added):
    """Keras's ``update_phi_score``: the blank states after a label absorb ``added``."""
    return N.concatenate([phi[:, :1], N.logaddexp(phi[:, 1:], added)], axis=-1)


def _dims(x) -> tuple:
    return tuple(x.shape)


def ctc_loss(target, output, target_length, output_length, mask_index=0):
    """The CTC loss per sample: ``target`` int [batch, max_label_length], ``output``
    logits [batch, max_input_length, num_classes], the lengths int [batch];
    ``mask_index`` is the blank class."""
    target = N.cast(N.convert_to_tensor(target), "int32")
    output = N.cast(N.convert_to_tensor(output), "float32")
    target_length = N.cast(N.convert_to_tensor(target_length), "int32")
    output_length = N.cast(N.convert_to_tensor(output_length), "int32")
    _, steps, num_classes = _dims(output)
    max_label_length = _dims(target)[1]
    if steps is None or max_label_length is None or num_classes is None:
        raise ValueError("keras.ops.ctc_loss: the time, label and class axes must be static")
    label_positions = N.arange(max_label_length, dtype="int32")
    target_valid = N.cast(N.less(label_positions[None, :], target_length[:, None]), "float32")
    label_lengths = N.cast(N.sum(target_valid, axis=1), "int32")
    time_positions = N.arange(steps, dtype="int32")
    output_pad = N.cast(
        N.greater_equal(time_positions[None, :], output_length[:, None]), "float32"
    )  # [B, T], 1 past the end
    logprobs = NN.log_softmax(output, axis=-1)
    repeat = N.cast(N.equal(target[:, :-1], target[:, 1:]), "float32")
    repeat = N.pad(repeat, [(0, 0), (0, 1)])
    one_hot = NN.one_hot(target, num_classes)  # [B, N, K]
    emit_all = N.matmul(logprobs, N.transpose(one_hot, (0, 2, 1)))  # [B, T, N]
    phi_all = logprobs[:, :, mask_index : mask_index + 1]  # [B, T, 1]

    zeros_phi = N.zeros_like(target_valid[:, :1])  # [B, 1], zeros shaped by the batch
    phi = N.concatenate(
        [zeros_phi, N.zeros_like(target_valid) + _LOG_EPSILON], axis=-1
    )  # [B, N + 1]
    emit = N.zeros_like(target_valid) + _LOG_EPSILON  # [B, N]
    for t in range(steps):
        logprob_emit, logprob_phi = emit_all[:, t, :], phi_all[:, t, :]
        pad = output_pad[:, t : t + 1]
        phi_orig = phi
        phi = _phi_update(phi, emit + _LOG_EPSILON * repeat)
        next_emit = N.logaddexp(phi[:, :-1] + logprob_emit, emit + logprob_emit)
        next_phi = _phi_update(
            phi + logprob_phi, emit + logprob_phi + _LOG_EPSILON * (1.0 - repeat)
        )
        emit = pad * emit + (1.0 - pad) * next_emit
        phi = pad * phi_orig + (1.0 - pad) * next_phi
    last = _phi_update(phi, emit)
    chosen = NN.one_hot(label_lengths, max_label_length + 1)
    return -N.sum(last * chosen, axis=1)


def ctc_decode(
    inputs,
    sequence_lengths,
    strategy="greedy",
    beam_width=100,
    top_paths=1,
    merge_repeated=True,
    mask_index=0,
):
    """Keras's greedy CTC decoding of ``inputs`` [batch, time, classes]: the best class
    of each step (past ``sequence_lengths`` the blank ``mask_index``), repeats merged,
    blanks removed and the rest moved to the front, padded with -1; returns
    (decoded [1, batch, time] int32, scores [batch, 1] = -Σ of the steps' best
    values). The decoded length depends on the values, but Keras pads it to the time
    axis, so the shapes are static and the decoding traces. Beam search keeps a
    value-dependent set of prefixes per step and is not offered."""
    if strategy == "beam_search":
        raise NotImplementedError(
            "keras.ops.ctc_decode: strategy='beam_search' is not supported by kcompile yet "
            "(its beams are a value-dependent set of prefixes); use strategy='greedy'"
        )
    if strategy != "greedy":
        raise ValueError(
            f"Invalid strategy {strategy}. Supported values are 'greedy' and 'beam_search'."
        )
    inputs = N.cast(N.convert_to_tensor(inputs), "float32")
    lengths = N.cast(N.convert_to_tensor(sequence_lengths), "int32")
    _, steps, num_classes = _dims(inputs)
    if mask_index is None:
        mask_index = num_classes - 1
    indices = N.cast(N.argmax(inputs, axis=-1), "int32")
    scores = N.max(inputs, axis=-1)
    past_end = N.greater_equal(N.arange(steps, dtype="int32")[None, :], lengths[:, None])
    indices = N.where(past_end, mask_index, indices)
    scores = N.where(past_end, 0.0, scores)
    if merge_repeated:
        repeat = N.pad(N.cast(N.equal(indices[:, 1:], indices[:, :-1]), "int32"),
                       [(0, 0), (1, 0)])  # fmt: skip
        indices = N.where(N.equal(repeat, 1), mask_index, indices)
    keep = N.cast(N.not_equal(indices, mask_index), "int32")
    # Kept labels move to the front in order: label t goes to slot (kept before t).
    slot = N.where(N.equal(keep, 1), N.cumsum(keep, axis=1) - 1, -1)
    placed = N.cast(NN.one_hot(slot, steps), "float32")  # [B, T, T]; -1 is all zeros
    values = N.cast(indices + 1, "float32")[:, None, :]  # 0 where nothing lands
    decoded = N.cast(N.matmul(values, placed)[:, 0, :], "int32") - 1
    return N.expand_dims(decoded, 0), -N.sum(scores, axis=1)[:, None]


__all__ = ["ctc_decode", "ctc_loss"]
