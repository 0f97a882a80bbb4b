"""Models written once for Keras and kcompile (``k`` is either), whose configs
``make_serialization_fixtures.py`` stores as Keras wrote them: name -> (build, the
inputs' shapes without the batch)."""

from __future__ import annotations


def functional_mlp(k):
    inputs = k.Input((6,), name="features")
    h = k.layers.Dense(8, activation="relu", name="hidden")(inputs)
    h = k.layers.Dropout(0.25)(h)
    h = k.layers.BatchNormalization()(h)
    outputs = k.layers.Dense(3, activation="softmax", name="probs")(h)
    model = k.Model(inputs, outputs, name="mlp")
    model.compile(optimizer=k.optimizers.Adam(0.01), loss="categorical_crossentropy")
    return model


def two_inputs(k):
    a = k.Input((4,), name="a")
    b = k.Input((3,), name="b")
    joined = k.layers.Concatenate()([k.layers.Dense(5, activation="tanh")(a), b])
    out = k.layers.Dense(2)(k.layers.Add()([k.layers.Dense(2)(joined), k.layers.Dense(2)(b)]))
    return k.Model([a, b], out, name="two_inputs")


def sequential_cnn(k):
    return k.Sequential(
        [
            k.Input((8, 8, 1)),
            k.layers.Conv2D(4, 3, activation="relu"),
            k.layers.MaxPooling2D(),
            k.layers.Flatten(),
            k.layers.Dense(2),
        ],
        name="cnn",
    )


def sequential_lstm(k):
    return k.Sequential(
        [k.Input((5, 3)), k.layers.LSTM(4), k.layers.Dense(1, activation="sigmoid")],
        name="lstm",
    )


JSON_MODELS = {
    "functional_mlp": (functional_mlp, [(6,)]),
    "two_inputs": (two_inputs, [(4,), (3,)]),
    "sequential_cnn": (sequential_cnn, [(8, 8, 1)]),
    "sequential_lstm": (sequential_lstm, [(5, 3)]),
}
