"""The cases of ``test_layers_*_extra.py`` that are compared with Keras 3.15's numbers:
each names a layer of ``keras.layers`` with its arguments, its inputs' shapes (and
dtypes), and how it is called. ``make_misc_layer_fixtures.py`` builds each in Keras,
gives it seeded weights and inputs, and stores them with Keras's outputs in
``keras_fixtures/misc_layers.npz``; the tests build the same layer in kcompile."""

from __future__ import annotations

CASES: dict[str, dict] = {
    # --- EinsumDense --------------------------------------------------------------------
    "einsum_matrix": dict(
        layer="EinsumDense",
        args=dict(equation="ab,bc->ac", output_shape=5, bias_axes="c", activation="relu"),
        inputs=[(3, 4)],
    ),
    "einsum_sequence": dict(
        layer="EinsumDense",
        args=dict(equation="abc,cd->abd", output_shape=(None, 6), bias_axes="d"),
        inputs=[(2, 3, 4)],
    ),
    "einsum_left_ellipsis": dict(
        layer="EinsumDense",
        args=dict(equation="...x,xy->...y", output_shape=5, bias_axes="y"),
        inputs=[(2, 3, 4)],
    ),
    "einsum_right_ellipsis": dict(
        layer="EinsumDense",
        args=dict(equation="ab...,bc->ac...", output_shape=(5, 4), bias_axes="c"),
        inputs=[(2, 3, 4)],
    ),
    "einsum_heads": dict(
        layer="EinsumDense",
        args=dict(equation="abc,cde->abde", output_shape=(None, 2, 3), bias_axes="de"),
        inputs=[(2, 3, 4)],
    ),
    "einsum_no_bias": dict(
        layer="EinsumDense",
        args=dict(equation="abcd,cde->abe", output_shape=(None, 3), activation="tanh"),
        inputs=[(2, 3, 2, 4)],
    ),
    # --- attention ----------------------------------------------------------------------
    "gqa": dict(
        layer="GroupQueryAttention",
        args=dict(head_dim=3, num_query_heads=4, num_key_value_heads=2),
        inputs=[(2, 4, 6), (2, 5, 6)],
        call="query_value",
    ),
    "gqa_causal": dict(
        layer="GroupQueryAttention",
        args=dict(head_dim=2, num_query_heads=2, num_key_value_heads=1),
        inputs=[(2, 4, 6), (2, 4, 6)],
        call="query_value",
        kwargs=dict(use_causal_mask=True),
    ),
    "gqa_gate_window": dict(
        layer="GroupQueryAttention",
        args=dict(
            head_dim=3, num_query_heads=4, num_key_value_heads=4, use_gate=True, sliding_window=2
        ),
        inputs=[(2, 5, 6), (2, 5, 6)],
        call="query_value",
        kwargs=dict(use_causal_mask=True),
    ),
    "gqa_scores_key": dict(
        layer="GroupQueryAttention",
        args=dict(head_dim=3, num_query_heads=6, num_key_value_heads=3, use_bias=False),
        inputs=[(2, 3, 4), (2, 5, 4), (2, 5, 3)],
        call="query_value_key",
        kwargs=dict(return_attention_scores=True),
    ),
    "gqa_attention_mask": dict(
        layer="GroupQueryAttention",
        args=dict(head_dim=2, num_query_heads=4, num_key_value_heads=2),
        inputs=[(3, 4, 5), (3, 6, 5), ((3, 4, 6), "bool", 2)],
        call="attention_mask",
    ),
    "gqa_attention_mask_scores": dict(
        layer="GroupQueryAttention",
        args=dict(head_dim=2, num_query_heads=2, num_key_value_heads=2, sliding_window=3),
        inputs=[(3, 4, 5), (3, 6, 5), ((3, 4, 6), "bool", 2)],
        call="attention_mask",
        kwargs=dict(return_attention_scores=True),
    ),
    "additive_masks": dict(
        layer="AdditiveAttention",
        args=dict(),
        inputs=[(3, 4, 2), (3, 5, 2), ((3, 4), "bool", 2), ((3, 5), "bool", 2)],
        call="list_masks",
    ),
    "additive": dict(
        layer="AdditiveAttention", args=dict(), inputs=[(2, 3, 4), (2, 5, 4)], call="list"
    ),
    "additive_key_causal": dict(
        layer="AdditiveAttention",
        args=dict(use_scale=False),
        inputs=[(2, 4, 3), (2, 4, 3), (2, 4, 3)],
        call="list",
        kwargs=dict(use_causal_mask=True, return_attention_scores=True),
    ),
    # --- normalization ------------------------------------------------------------------
    "rms": dict(layer="RMSNormalization", args=dict(), inputs=[(3, 5)]),
    "rms_axes": dict(
        layer="RMSNormalization", args=dict(axis=[1, 2], epsilon=1e-3), inputs=[(2, 4, 5)]
    ),
    "spectral_dense": dict(
        layer="SpectralNormalization",
        args=dict(layer=dict(layer="Dense", args=dict(units=3)), power_iterations=2),
        inputs=[(4, 5)],
        kwargs=dict(training=True),
    ),
    "spectral_dense_inference": dict(
        layer="SpectralNormalization",
        args=dict(layer=dict(layer="Dense", args=dict(units=3))),
        inputs=[(4, 5)],
    ),
    # --- activations and the rest -------------------------------------------------------
    "elu": dict(layer="ELU", args=dict(alpha=0.7), inputs=[(3, 5)]),
    "prelu": dict(layer="PReLU", args=dict(), inputs=[(3, 5)]),
    "prelu_shared": dict(layer="PReLU", args=dict(shared_axes=[1]), inputs=[(2, 3, 4)]),
    "identity": dict(layer="Identity", args=dict(), inputs=[(2, 3)]),
    "alpha_dropout_inference": dict(layer="AlphaDropout", args=dict(rate=0.4), inputs=[(3, 5)]),
    "reversible_forward": dict(
        layer="ReversibleEmbedding",
        args=dict(input_dim=7, output_dim=4),
        inputs=[((2, 3), "int32", 7)],
    ),
    "reversible_reverse": dict(
        layer="ReversibleEmbedding",
        args=dict(input_dim=7, output_dim=4),
        inputs=[(2, 3, 4)],
        kwargs=dict(reverse=True),
    ),
    "reversible_untied_cap": dict(
        layer="ReversibleEmbedding",
        args=dict(input_dim=6, output_dim=4, tie_weights=False, logit_soft_cap=1.5),
        inputs=[(3, 4)],
        kwargs=dict(reverse=True),
    ),
    "pipeline": dict(
        layer="Pipeline",
        args=dict(
            layers=[
                dict(layer="Dense", args=dict(units=4)),
                dict(layer="ELU", args=dict()),
                dict(layer="Dropout", args=dict(rate=0.5)),
            ]
        ),
        inputs=[(3, 5)],
        kwargs=dict(training=False),
    ),
    # --- preprocessing ------------------------------------------------------------------
    "category_multi_hot": dict(
        layer="CategoryEncoding",
        args=dict(num_tokens=5, output_mode="multi_hot"),
        inputs=[((3, 4), "int32", 5)],
    ),
    "category_count": dict(
        layer="CategoryEncoding",
        args=dict(num_tokens=5, output_mode="count"),
        inputs=[((3, 4), "int32", 5)],
    ),
    "category_one_hot": dict(
        layer="CategoryEncoding",
        args=dict(num_tokens=4, output_mode="one_hot"),
        inputs=[((3, 1), "int32", 4)],
    ),
    "category_one_hot_2d": dict(
        layer="CategoryEncoding",
        args=dict(num_tokens=4, output_mode="one_hot"),
        inputs=[((3, 2), "int32", 4)],
    ),
    "discretization_int": dict(
        layer="Discretization",
        args=dict(bin_boundaries=[-0.5, 0.0, 0.7]),
        inputs=[(3, 4)],
    ),
    "discretization_one_hot": dict(
        layer="Discretization",
        args=dict(bin_boundaries=[-0.5, 0.0, 0.7], output_mode="one_hot"),
        inputs=[(3, 4)],
    ),
    "discretization_count": dict(
        layer="Discretization",
        args=dict(bin_boundaries=[-0.5, 0.0, 0.7], output_mode="count"),
        inputs=[(3, 4)],
    ),
}

# Discretization.adapt: the boundaries Keras finds for these data (seeded normal values).
ADAPT_CASES = {
    "adapt_4": dict(num_bins=4, epsilon=0.01, shape=(200, 3)),
    "adapt_7_coarse": dict(num_bins=7, epsilon=0.1, shape=(50,)),
    "adapt_batches": dict(num_bins=5, epsilon=0.01, shape=(3, 40, 2)),
}


def build_layer(namespace, spec: dict):
    """The layer ``spec`` names, from ``namespace`` (``keras.layers`` or kcompile's);
    a nested ``{"layer": ..., "args": ...}`` argument is a layer too."""
    args = {}
    for key, value in spec["args"].items():
        if isinstance(value, dict) and "layer" in value:
            value = build_layer(namespace, value)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            value = [build_layer(namespace, v) for v in value]
        args[key] = value
    return getattr(namespace, spec["layer"])(**args)


def make_inputs(rng, spec: dict) -> list:
    """Seeded inputs of the case's shapes: floats N(0, 1), integer ids below a bound."""
    arrays = []
    for item in spec["inputs"]:
        if isinstance(item[0], tuple):
            shape, dtype, high = item
            arrays.append(rng.integers(0, high, size=shape).astype(dtype))
        else:
            arrays.append(rng.normal(size=item).astype("float32"))
    return arrays


def call_layer(layer, spec: dict, arrays: list):
    kwargs = dict(spec.get("kwargs", {}))
    how = spec.get("call")
    if how == "list":
        return layer(list(arrays), **kwargs)
    if how == "list_masks":  # [query, value], mask=[query_mask, value_mask]
        return layer(list(arrays[:2]), mask=list(arrays[2:]), **kwargs)
    if how == "attention_mask":  # query, value, attention_mask=
        return layer(arrays[0], arrays[1], attention_mask=arrays[2], **kwargs)
    return layer(*arrays, **kwargs)
