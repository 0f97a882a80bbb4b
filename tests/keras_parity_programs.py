"""Keras programs run twice: by Keras 3 itself (``tests/make_keras_fixtures.py``, in an
environment that has Keras) and by kcompile (``tests/test_keras_parity.py``). Each
``build(keras)`` takes the Keras module — ``keras`` or ``kcompile`` — so the program is
the same code with only the import changed. ``data(rng)`` makes its inputs and labels.
"""

from __future__ import annotations

import numpy as np


def _ops(keras):
    return keras.ops


# --- a custom layer with weights in build, a nested layer, and keras.ops -----------------


def custom_mlp(keras):
    ops = _ops(keras)

    class Linear(keras.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units

        def build(self, input_shape):
            self.w = self.add_weight(
                shape=(input_shape[-1], self.units), initializer="glorot_uniform", name="w"
            )
            self.b = self.add_weight(shape=(self.units,), initializer="zeros", name="b")

        def call(self, inputs):
            return ops.matmul(inputs, self.w) + self.b

    class Block(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.inner = Linear(16)
            self.gate = Linear(16)

        def call(self, inputs):
            return ops.gelu(self.inner(inputs)) * ops.sigmoid(self.gate(inputs))

    inputs = keras.Input((6,))
    h = Block()(inputs)
    h = h + ops.mean(h, axis=-1, keepdims=True) - ops.square(h) * 0.1
    outputs = keras.layers.Dense(3, activation="softmax")(h)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def custom_mlp_data(rng):
    x = rng.normal(size=(32, 6)).astype("float32")
    return x, (x[:, 0] + x[:, 1] > 0).astype("int32") + (x[:, 2] > 1).astype("int32")


# --- attention written with keras.ops, layer normalization, a regularizer ------------------


def ops_attention(keras):
    ops = _ops(keras)

    class SelfAttention(keras.layers.Layer):
        def __init__(self, width, heads, **kwargs):
            super().__init__(**kwargs)
            self.width, self.heads = width, heads
            self.qkv = keras.layers.Dense(3 * width, kernel_regularizer=keras.regularizers.L2(1e-3))
            self.out = keras.layers.Dense(width)

        def call(self, x):
            length = ops.shape(x)[1]
            qkv = ops.reshape(self.qkv(x), (-1, length, 3, self.heads, self.width // self.heads))
            q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
            scores = ops.einsum("bqhd,bkhd->bhqk", q, k) / ops.sqrt(float(self.width // self.heads))
            weights = ops.softmax(scores, axis=-1)
            mixed = ops.einsum("bhqk,bkhd->bqhd", weights, v)
            return self.out(ops.reshape(mixed, (-1, length, self.width)))

    inputs = keras.Input((5, 8))
    h = keras.layers.LayerNormalization()(inputs + SelfAttention(8, 2)(inputs))
    h = keras.layers.GlobalAveragePooling1D()(h)
    outputs = keras.layers.Dense(1)(h)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="mse", metrics=["mae"])
    return model


def ops_attention_data(rng):
    x = rng.normal(size=(16, 5, 8)).astype("float32")
    return x, x[:, :, 0].sum(1, keepdims=True).astype("float32")


# --- a subclassed model with a dropout-free residual body ---------------------------------


def subclassed(keras):
    ops = _ops(keras)

    class Residual(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.stem = keras.layers.Dense(12, activation="relu")
            self.body = keras.layers.Dense(12, activation="tanh")
            self.head = keras.layers.Dense(1, activation="sigmoid")

        def call(self, inputs, training=None):
            h = self.stem(inputs)
            return self.head(h + self.body(h) * ops.cast(ops.shape(h)[-1], "float32") ** -0.5)

    model = Residual()
    model(np.zeros((1, 4), "float32"))  # built by a first call (Keras's build() makes no weights)
    model.compile(
        optimizer=keras.optimizers.RMSprop(0.01),
        loss="binary_crossentropy",
        metrics=["accuracy", keras.metrics.Precision(), keras.metrics.Recall()],
    )
    return model


def subclassed_data(rng):
    x = rng.normal(size=(32, 4)).astype("float32")
    return x, (x[:, 0] * x[:, 1] > 0).astype("float32")[:, None]


# --- sequences of a length the data decides ------------------------------------------------


def dynamic_lstm(keras):
    inputs = keras.Input(shape=(None,), dtype="int32")
    x = keras.layers.Embedding(20, 6)(inputs)
    x = keras.layers.LSTM(8, return_sequences=True)(x)
    x = keras.layers.GRU(5)(x)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def dynamic_lstm_data(rng):
    x = rng.integers(0, 20, (16, 7)).astype("int32")
    return x, (x[:, 0] > 9).astype("int32")


# --- a custom loss and a Lambda -------------------------------------------------------------


def custom_loss(keras):
    ops = _ops(keras)

    def smooth_l1(y_true, y_pred):
        d = ops.abs(y_true - y_pred)
        return ops.mean(ops.where(d < 1.0, 0.5 * d * d, d - 0.5), axis=-1)

    inputs = keras.Input((5,))
    h = keras.layers.Dense(8, activation="elu")(inputs)
    h = keras.layers.Lambda(lambda t: ops.concatenate([t, ops.abs(t)], axis=-1))(h)
    outputs = keras.layers.Dense(2)(h)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.AdamW(0.01), loss=smooth_l1)
    return model


def custom_loss_data(rng):
    x = rng.normal(size=(24, 5)).astype("float32")
    return x, np.stack([x[:, 0] * 3, x[:, 1] - x[:, 2]], 1).astype("float32")


# --- convolutions with batch normalization; a custom metric -------------------------------


def conv_bn(keras):
    ops = _ops(keras)

    class MeanAbsoluteLogit(keras.metrics.Metric):
        def __init__(self, name="mean_abs_logit", **kwargs):
            super().__init__(name=name, **kwargs)
            self.total = self.add_variable(shape=(), initializer="zeros", name="total")
            self.count = self.add_variable(shape=(), initializer="zeros", name="count")

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.total.assign_add(ops.sum(ops.abs(y_pred)))
            self.count.assign_add(ops.cast(ops.shape(y_pred)[0], "float32"))

        def result(self):
            return self.total / self.count

    inputs = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(3, 3, strides=2, activation="tanh")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(4)(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
        metrics=["categorical_accuracy", MeanAbsoluteLogit()],
    )
    return model


def conv_bn_data(rng):
    x = rng.normal(size=(16, 8, 8, 2)).astype("float32")
    return x, np.eye(4, dtype="float32")[rng.integers(0, 4, 16)]


# --- the functional API guide's ticket model: named inputs and outputs, merge helpers -------


def functional_guide(keras):
    layers = keras.layers
    title_input = keras.Input(shape=(None,), name="title", dtype="int32")
    body_input = keras.Input(shape=(None,), name="body", dtype="int32")
    tags_input = keras.Input(shape=(6,), name="tags")
    title_features = layers.LSTM(8)(layers.Embedding(30, 5)(title_input))
    body_features = layers.GRU(4)(layers.Embedding(30, 5)(body_input))
    similarity = layers.dot([title_features[:, :4], body_features], axes=1, normalize=True)
    x = layers.concatenate([title_features, body_features, tags_input, similarity])
    x = layers.add([layers.Dense(8)(x), layers.Dense(8)(tags_input)])
    priority_pred = layers.Dense(1, name="priority")(x)
    department_pred = layers.Dense(3, name="department")(x)
    model = keras.Model(
        inputs=[title_input, body_input, tags_input],
        outputs={"priority": priority_pred, "department": department_pred},
    )
    model.compile(
        optimizer=keras.optimizers.RMSprop(1e-2),
        loss={
            "priority": keras.losses.BinaryCrossentropy(from_logits=True),
            "department": keras.losses.CategoricalCrossentropy(from_logits=True),
        },
        loss_weights={"priority": 1.0, "department": 0.2},
    )
    return model


def functional_guide_data(rng):
    x = {
        "title": rng.integers(0, 30, (12, 4)).astype("int32"),
        "body": rng.integers(0, 30, (12, 9)).astype("int32"),
        "tags": rng.integers(0, 2, (12, 6)).astype("float32"),
    }
    y = {
        "priority": rng.random((12, 1)).astype("float32"),
        "department": rng.integers(0, 2, (12, 3)).astype("float32"),
    }
    return x, y


# --- keras-io's text classification with a Transformer (dropout 0), attention layers ------


def transformer_block(keras):
    ops = _ops(keras)
    layers = keras.layers

    class TransformerBlock(layers.Layer):
        def __init__(self, embed_dim, num_heads, ff_dim, rate=0.0):
            super().__init__()
            self.att = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
            self.ffn = keras.Sequential(
                [layers.Dense(ff_dim, activation="relu"), layers.Dense(embed_dim)]
            )
            self.layernorm1 = layers.LayerNormalization(epsilon=1e-6)
            self.layernorm2 = layers.LayerNormalization(epsilon=1e-6)
            self.dropout1 = layers.Dropout(rate)
            self.dropout2 = layers.Dropout(rate)

        def call(self, inputs):
            attn_output = self.att(inputs, inputs)
            attn_output = self.dropout1(attn_output)
            out1 = self.layernorm1(inputs + attn_output)
            ffn_output = self.ffn(out1)
            ffn_output = self.dropout2(ffn_output)
            return self.layernorm2(out1 + ffn_output)

    class TokenAndPositionEmbedding(layers.Layer):
        def __init__(self, maxlen, vocab_size, embed_dim):
            super().__init__()
            self.token_emb = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
            self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

        def call(self, x):
            maxlen = ops.shape(x)[-1]
            positions = ops.arange(start=0, stop=maxlen, step=1)
            return self.token_emb(x) + self.pos_emb(positions)

    inputs = layers.Input(shape=(6,))
    x = TokenAndPositionEmbedding(6, 20, 8)(inputs)
    x = TransformerBlock(8, 2, 16)(x)
    causal, scores = layers.MultiHeadAttention(num_heads=2, key_dim=3, value_dim=5)(
        x, x, return_attention_scores=True, use_causal_mask=True
    )
    x = layers.Attention(use_scale=True)([x, causal]) + layers.Attention(score_mode="concat")(
        [x, x]
    )
    x = layers.concatenate([layers.GlobalAveragePooling1D()(x), layers.Flatten()(scores[:, 0])])
    outputs = layers.Dense(2, activation="softmax")(x)
    model = keras.Model(inputs=inputs, outputs=outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def transformer_block_data(rng):
    x = rng.integers(0, 20, (16, 6)).astype("int32")
    return x, (x[:, 0] == x[:, 3]).astype("int32")


# --- keras-io's convolutional autoencoder (shrunk), transposed convolutions -----------------


def autoencoder(keras):
    layers = keras.layers
    inputs = layers.Input(shape=(8, 8, 1))
    x = layers.Conv2D(4, (3, 3), activation="relu", padding="same")(inputs)
    x = layers.MaxPooling2D((2, 2), padding="same")(x)
    x = layers.Conv2D(4, (3, 3), activation="relu", padding="same")(x)
    x = layers.MaxPooling2D((2, 2), padding="same")(x)
    x = layers.Conv2DTranspose(4, (3, 3), strides=2, activation="relu", padding="same")(x)
    x = layers.Conv2DTranspose(4, (3, 3), strides=2, activation="relu", padding="same")(x)
    decoded = layers.Conv2D(1, (3, 3), activation="sigmoid", padding="same")(x)
    odd = layers.Conv2DTranspose(2, (4, 3), strides=(3, 2), padding="valid", output_padding=1)(
        inputs[:, :3, :3, :]
    )
    wide = layers.Conv2DTranspose(2, 3, strides=2, padding="same", output_padding=(1, 0))(
        inputs[:, :3, :3, :]
    )
    seq = layers.Conv1DTranspose(3, 3, strides=2, padding="same", activation="tanh")(
        inputs[:, 0, :, :]
    )
    extra = layers.concatenate(
        [layers.Flatten()(odd), layers.Flatten()(wide), layers.Flatten()(seq)]
    )
    model = keras.Model(inputs, [decoded, layers.Dense(1)(extra)])
    model.compile(optimizer="adam", loss=["binary_crossentropy", "mse"])
    return model


def autoencoder_data(rng):
    x = rng.random((8, 8, 8, 1)).astype("float32")
    return x, [x, x.sum((1, 2))]


# --- the rest of the layer zoo: reshaping, normalization, preprocessing ----------------------


def layer_zoo(keras):
    layers = keras.layers
    image = layers.Input(shape=(6, 5, 2))
    x = layers.Rescaling(0.5, offset=-0.25)(image)
    x = layers.Normalization(mean=[0.1, -0.2], variance=[2.0, 0.5])(x)
    small = layers.Resizing(4, 3)(x)
    big = layers.Resizing(9, 7, interpolation="nearest")(x)
    crop = layers.CenterCrop(3, 4)(big)
    grouped = layers.GroupNormalization(groups=2)(layers.Conv2D(4, 3, padding="same")(crop))
    cut = layers.Cropping2D(((1, 0), (0, 2)))(grouped)
    seq = layers.Reshape((6, 10))(x)
    seq = layers.ZeroPadding1D((1, 2))(layers.Cropping1D((0, 1))(seq))
    seq = layers.UpSampling1D(2)(layers.Permute((2, 1))(seq))
    seq = layers.TimeDistributed(layers.Dense(3, activation="tanh"))(seq)
    unit = layers.UnitNormalization()(layers.GlobalAveragePooling1D()(seq))
    repeated = layers.RepeatVector(2)(unit)
    regular = layers.ActivityRegularization(l1=0.01, l2=0.02)(repeated)
    joined = layers.concatenate(
        [layers.Flatten()(small), layers.Flatten()(cut), layers.Flatten()(regular)]
    )
    model = keras.Model(image, layers.Dense(2)(joined))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    return model


def layer_zoo_data(rng):
    x = rng.normal(size=(8, 6, 5, 2)).astype("float32")
    return x, np.stack([x.mean((1, 2, 3)), x[:, 0, 0, 0]], 1).astype("float32")


# --- every loss and metric kind on one shared trunk ---------------------------------------


def loss_zoo(keras):
    layers = keras.layers
    inputs = layers.Input(shape=(6,))
    h = layers.Dense(8, activation="tanh")(inputs)

    def head(name, activation=None):
        return layers.Dense(3, activation=activation, name=name)(h)

    heads = {
        "huber": (head("huber"), keras.losses.Huber(delta=0.5), ["mape", "msle"]),
        "logcosh": (head("logcosh"), "log_cosh", [keras.metrics.LogCoshError()]),
        "kld": (head("kld", "softmax"), keras.losses.KLDivergence(), ["kl_divergence"]),
        "poisson": (head("poisson", "softplus"), "poisson", [keras.metrics.Poisson()]),
        "cosine": (head("cosine"), keras.losses.CosineSimilarity(), ["cosine_similarity"]),
        "hinge": (head("hinge"), "hinge", [keras.metrics.Hinge()]),
        "sqhinge": (head("sqhinge"), keras.losses.SquaredHinge(), ["squared_hinge"]),
        "cathinge": (
            head("cathinge"),
            keras.losses.CategoricalHinge(),
            [keras.metrics.TopKCategoricalAccuracy(k=2), "categorical_hinge"],
        ),
        "mape": (head("mape"), "mape", [keras.metrics.MeanSquaredLogarithmicError()]),
        "msle": (head("msle", "relu"), keras.losses.MeanSquaredLogarithmicError(), []),
        "focal": (
            head("focal", "softmax"),
            keras.losses.CategoricalFocalCrossentropy(alpha=0.3, gamma=1.5),
            [keras.metrics.TopKCategoricalAccuracy(k=1, name="top1")],
        ),
        "bfocal": (
            head("bfocal", "sigmoid"),
            keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, gamma=2.0),
            [
                keras.metrics.TruePositives(),
                keras.metrics.FalsePositives(),
                keras.metrics.TrueNegatives(),
                keras.metrics.FalseNegatives(thresholds=0.3),
            ],
        ),
    }
    model = keras.Model(inputs, {k: v[0] for k, v in heads.items()})
    model.compile(
        optimizer=keras.optimizers.SGD(0.05),
        loss={k: v[1] for k, v in heads.items()},
        metrics={k: v[2] for k, v in heads.items()},
    )
    return model


def loss_zoo_data(rng):
    x = rng.normal(size=(16, 6)).astype("float32")
    onehot = np.eye(3, dtype="float32")[rng.integers(0, 3, 16)]
    binary = (rng.random((16, 3)) < 0.5).astype("float32")
    positive = rng.uniform(0.5, 2.0, (16, 3)).astype("float32")
    y = {
        "huber": rng.normal(size=(16, 3)).astype("float32"),
        "logcosh": rng.normal(size=(16, 3)).astype("float32"),
        "kld": rng.dirichlet(np.ones(3), 16).astype("float32"),
        "poisson": rng.poisson(1.5, (16, 3)).astype("float32"),
        "cosine": rng.normal(size=(16, 3)).astype("float32"),
        "hinge": binary,
        "sqhinge": 2 * binary - 1,
        "cathinge": onehot,
        "mape": positive,
        "msle": positive,
        "focal": onehot,
        "bfocal": binary,
    }
    return x, y


# --- each optimizer on a small MLP (the update rules, weight decay) --------------------------

_OPTIMIZERS = {
    "adagrad": lambda k: k.optimizers.Adagrad(0.05, weight_decay=0.01),
    "adadelta": lambda k: k.optimizers.Adadelta(1.0, rho=0.9),
    "adamax": lambda k: k.optimizers.Adamax(0.02),
    "nadam": lambda k: k.optimizers.Nadam(0.02),
    "ftrl": lambda k: k.optimizers.Ftrl(
        0.05,
        l1_regularization_strength=0.01,
        l2_regularization_strength=0.02,
        beta=0.1,
        l2_shrinkage_regularization_strength=0.01,
    ),
    "lion": lambda k: k.optimizers.Lion(0.003, weight_decay=0.05),
    "sgd_decay": lambda k: k.optimizers.SGD(0.05, momentum=0.9, weight_decay=0.01),
    "adam_ema": lambda k: k.optimizers.Adam(
        0.02, use_ema=True, ema_momentum=0.9, ema_overwrite_frequency=2
    ),
    "adam_accumulate": lambda k: k.optimizers.Adam(
        0.02, gradient_accumulation_steps=2, clipnorm=1.0, weight_decay=0.01
    ),
}


def _optimizer_program(name):
    def build(keras):
        inputs = keras.Input((5,))
        h = keras.layers.Dense(6, activation="tanh")(inputs)
        model = keras.Model(inputs, keras.layers.Dense(2)(h))
        model.compile(optimizer=_OPTIMIZERS[name](keras), loss="mse")
        return model

    return build


def _optimizer_data(rng):
    x = rng.normal(size=(16, 5)).astype("float32")
    return x, np.stack([x[:, 0] - x[:, 1], x[:, 2] * 0.5], 1).astype("float32")


# --- learning-rate schedules, computed in the step from the iteration count ---------------


def _custom_schedule(keras):
    ops = _ops(keras)

    class WarmupRsqrt(keras.optimizers.schedules.LearningRateSchedule):
        """A user's schedule (as the transformer tutorials write it)."""

        def __call__(self, step):
            step = ops.cast(step, "float32") + 1.0
            return 0.2 * ops.minimum(ops.rsqrt(step), step * 2.0**-1.5)

    return WarmupRsqrt()


_SCHEDULES = {
    "exponential": lambda k: k.optimizers.schedules.ExponentialDecay(0.2, 2, 0.5, staircase=True),
    "piecewise": lambda k: k.optimizers.schedules.PiecewiseConstantDecay([0, 1], [0.3, 0.1, 0.05]),
    "polynomial": lambda k: k.optimizers.schedules.PolynomialDecay(
        0.2, 2, 0.01, power=2.0, cycle=True
    ),
    "inverse_time": lambda k: k.optimizers.schedules.InverseTimeDecay(0.2, 1, 0.5),
    "cosine": lambda k: k.optimizers.schedules.CosineDecay(
        0.1, 2, alpha=0.1, warmup_target=0.3, warmup_steps=1
    ),
    "restarts": lambda k: k.optimizers.schedules.CosineDecayRestarts(
        0.2, 1, t_mul=1.5, m_mul=0.8, alpha=0.05
    ),
    "custom": _custom_schedule,
}


def _schedule_program(name):
    def build(keras):
        inputs = keras.Input((5,))
        model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
        model.compile(optimizer=keras.optimizers.SGD(_SCHEDULES[name](keras)), loss="mse")
        return model

    return build


# --- sample weights, class weights and weighted metrics --------------------------------------


def _weighted_program(loss, metrics, weighted_metrics):
    def build(keras):
        inputs = keras.Input((4,))
        h = keras.layers.Dense(5, activation="relu")(inputs)
        model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(h))
        model.compile(
            optimizer=keras.optimizers.Adam(0.02),
            loss=loss,
            metrics=metrics,
            weighted_metrics=weighted_metrics,
        )
        return model

    return build


def _sample_weighted_data(rng):
    x = rng.normal(size=(20, 4)).astype("float32")
    y = rng.integers(0, 3, 20).astype("int32")
    return x, y, {"sample_weight": rng.uniform(0.0, 2.0, 20).astype("float32")}


def _class_weighted_data(rng):
    x = rng.normal(size=(20, 4)).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, 20)]
    return x, y, {"class_weight": {0: 0.5, 1: 2.0, 2: 1.0}}


# --- separable convolutions and channels_first global pooling ----------------------------


def separable(keras):
    layers = keras.layers
    image = layers.Input(shape=(7, 6, 3))
    x = layers.SeparableConv2D(4, 3, padding="same", depth_multiplier=2, activation="relu")(image)
    x = layers.SeparableConv2D(3, (2, 3), strides=2, dilation_rate=1)(x)
    seq = layers.SeparableConv1D(5, 3, padding="same", activation="tanh")(image[:, 0])
    first = layers.GlobalAveragePooling1D(data_format="channels_first")(seq)
    pooled = layers.GlobalMaxPooling2D(keepdims=True)(x)
    joined = layers.concatenate([layers.Flatten()(pooled), first])
    model = keras.Model(image, layers.Dense(2)(joined))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return model


def separable_data(rng):
    x = rng.normal(size=(8, 7, 6, 3)).astype("float32")
    return x, x[:, :2, 0, 0].astype("float32")


# --- metrics with vector state: AUC and F1 ---------------------------------------------------


def confusion_metrics(keras):
    inputs = keras.Input((4,))
    h = keras.layers.Dense(6, activation="tanh")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="sigmoid")(h))
    metrics = keras.metrics
    model.compile(
        optimizer=keras.optimizers.Adam(0.05),
        loss="binary_crossentropy",
        metrics=[
            "auc",
            metrics.AUC(curve="PR", multi_label=True, name="pr_auc"),
            metrics.AUC(num_thresholds=9, summation_method="minoring", name="auc9"),
            metrics.F1Score(threshold=0.5),
            metrics.FBetaScore(average="macro", beta=2.0, name="f2"),
            "precision",
        ],
        weighted_metrics=[metrics.AUC(from_logits=False, name="w_auc")],
    )
    return model


def confusion_metrics_data(rng):
    x = rng.normal(size=(24, 4)).astype("float32")
    y = (x[:, :3] + 0.8 * rng.normal(size=(24, 3)) > 0).astype("float32")
    return x, y, {"sample_weight": rng.uniform(0.0, 2.0, 24).astype("float32")}


# --- masks: Embedding(mask_zero), Masking, and the layers and losses that honour them -------


def masked_classifier(keras):
    layers = keras.layers
    ids = keras.Input((7,), dtype="int32")
    e = layers.Embedding(9, 4, mask_zero=True)(ids)
    h = layers.LSTM(5, return_sequences=True)(e)
    h2 = layers.Bidirectional(layers.GRU(3, return_sequences=True))(h)
    attended = layers.MultiHeadAttention(2, 3)(h2, h2)
    joined = layers.LayerNormalization()(layers.add([attended, h2]))
    pooled = layers.GlobalAveragePooling1D()(joined)
    backwards = layers.SimpleRNN(4, go_backwards=True)(h)
    product = layers.multiply([h, layers.Dense(5)(h)])  # both masked
    larger = layers.maximum([h, layers.Conv1D(5, 1)(h)])  # one masked (Conv1D drops it)
    smaller = layers.minimum([h, layers.Dense(5)(h)])
    merged = [layers.GlobalAveragePooling1D()(t) for t in (product, larger, smaller)]
    features = layers.concatenate([pooled, backwards, *merged])
    model = keras.Model(ids, layers.Dense(2, activation="softmax")(features))
    model.compile(
        keras.optimizers.Adam(0.02), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


def _padded_ids(rng, rows: int, steps: int, vocab: int) -> np.ndarray:
    ids = rng.integers(1, vocab, (rows, steps)).astype("int32")
    for i in range(rows):
        kept = rng.integers(1, steps + 1)
        if i % 2:
            ids[i, kept:] = 0  # padded after
        else:
            ids[i, : steps - kept] = 0  # before, as pad_sequences does by default
    return ids


def masked_classifier_data(rng):
    ids = _padded_ids(rng, 12, 7, 9)
    return ids, (ids.sum(axis=1) % 2).astype("int32")


def masked_attention(keras):
    layers = keras.layers
    ids = keras.Input((7,), dtype="int32")
    e = layers.Embedding(9, 4, mask_zero=True)(ids)
    scored = layers.Attention(use_scale=True)([e, e])
    pooled = layers.GlobalAveragePooling1D()(layers.Dense(3, activation="relu")(scored))
    model = keras.Model(ids, layers.Dense(1, activation="sigmoid")(pooled))
    model.compile(keras.optimizers.Adam(0.02), "binary_crossentropy", metrics=["accuracy"])
    return model


def masked_tagger(keras):
    layers = keras.layers
    ids = keras.Input((6,), dtype="int32")
    h = layers.Embedding(7, 3, mask_zero=True)(ids)
    h = layers.GRU(4, return_sequences=True)(h)
    h = layers.Dropout(0.0)(layers.Dense(5, activation="tanh")(h))
    model = keras.Model(ids, layers.Dense(3, activation="softmax")(h))
    model.compile(
        keras.optimizers.Adam(0.02),
        "sparse_categorical_crossentropy",
        metrics=["sparse_categorical_accuracy"],
    )
    return model


def masked_tagger_data(rng):
    ids = _padded_ids(rng, 10, 6, 7)
    return ids, (ids % 3).astype("int32")


def masking_layer(keras):
    layers = keras.layers
    x = keras.Input((6, 2))
    h = layers.Masking(0.0)(x)
    h = layers.LSTM(4, return_sequences=True)(h)
    h = layers.Bidirectional(layers.SimpleRNN(3, return_sequences=True), merge_mode="sum")(h)
    model = keras.Model(x, layers.Dense(1)(h))
    model.compile(keras.optimizers.SGD(0.1), "mse", metrics=["mae"])
    return model


def masking_layer_data(rng):
    x = rng.normal(size=(8, 6, 2)).astype("float32")
    x[::2, 4:] = 0.0
    x[1::2, :2] = 0.0
    return x, x[:, :, :1] * 2.0 + 1.0


PROGRAMS = {
    "masked_classifier": (masked_classifier, masked_classifier_data),
    "masked_tagger": (masked_tagger, masked_tagger_data),
    "masked_attention": (masked_attention, masked_classifier_data),
    "masking_layer": (masking_layer, masking_layer_data),
    "confusion_metrics": (confusion_metrics, confusion_metrics_data),
    "separable": (separable, separable_data),
    "sample_weight": (
        _weighted_program(
            "sparse_categorical_crossentropy",
            ["sparse_categorical_accuracy"],
            ["sparse_categorical_accuracy", "sparse_categorical_crossentropy"],
        ),
        _sample_weighted_data,
    ),
    "class_weight": (
        _weighted_program("categorical_crossentropy", ["accuracy"], ["categorical_accuracy"]),
        _class_weighted_data,
    ),
    **{f"schedule_{k}": (_schedule_program(k), _optimizer_data) for k in _SCHEDULES},
    **{f"optimizer_{k}": (_optimizer_program(k), _optimizer_data) for k in _OPTIMIZERS},
    "loss_zoo": (loss_zoo, loss_zoo_data),
    "layer_zoo": (layer_zoo, layer_zoo_data),
    "autoencoder": (autoencoder, autoencoder_data),
    "transformer_block": (transformer_block, transformer_block_data),
    "functional_guide": (functional_guide, functional_guide_data),
    "conv_bn": (conv_bn, conv_bn_data),
    "custom_mlp": (custom_mlp, custom_mlp_data),
    "ops_attention": (ops_attention, ops_attention_data),
    "subclassed": (subclassed, subclassed_data),
    "dynamic_lstm": (dynamic_lstm, dynamic_lstm_data),
    "custom_loss": (custom_loss, custom_loss_data),
}
STEPS = 3  # train_on_batch calls recorded after the first predict


def initial_weights(model, seed: int) -> list[np.ndarray]:
    """Weights both frameworks start from: drawn here, not by either's initializers."""
    rng = np.random.default_rng(seed)
    return [
        (rng.normal(size=w.shape) * 0.3).astype("float32") if w.ndim else w
        for w in model.get_weights()
    ]


def _stacked(data) -> np.ndarray:
    """One array of a program's inputs or labels (a dict's or list's arrays flattened
    and joined)."""
    if isinstance(data, dict):
        data = [data[k] for k in sorted(data)]
    if isinstance(data, list):
        return np.concatenate([np.ravel(a).astype("float64") for a in data])
    return data


def run(keras, name: str) -> dict[str, np.ndarray]:
    """The program ``name`` on ``keras``: predictions, losses and metrics of STEPS training
    steps on the whole batch, the weights after, and evaluate's numbers."""
    build, data = PROGRAMS[name]
    x, y, *extra = data(np.random.default_rng(0))
    weights = extra[0] if extra else {}  # sample_weight= or class_weight= of the steps
    model = build(keras)
    start = initial_weights(model, 1)
    model.set_weights(start)
    predicted = model.predict(x, verbose=0)
    out = {"x": _stacked(x), "y": _stacked(y)}
    if isinstance(predicted, dict):
        out.update({f"predict/{k}": np.asarray(v) for k, v in predicted.items()})
    elif isinstance(predicted, list):
        out.update({f"predict/{i}": np.asarray(v) for i, v in enumerate(predicted)})
    else:
        out["predict"] = np.asarray(predicted)
    for i in range(len(start)):
        out[f"start/{i}"] = start[i]
    for step in range(STEPS):
        logs = model.train_on_batch(x, y, return_dict=True, **weights)
        for key, value in logs.items():
            out[f"train{step}/{key}"] = np.asarray(value, np.float64)
    for i, w in enumerate(model.get_weights()):
        out[f"end/{i}"] = np.asarray(w)
    scored = {"sample_weight": weights["sample_weight"]} if "sample_weight" in weights else {}
    for key, value in model.evaluate(x, y, verbose=0, return_dict=True, **scored).items():
        out[f"evaluate/{key}"] = np.asarray(value, np.float64)
    if name == "dynamic_lstm":  # a second length
        out["predict_long"] = np.asarray(model.predict(np.tile(x, (1, 2)), verbose=0))
    return out


# --- models saved to Keras's files by Keras (test_keras_files) ------------------------------


def _file_sequence_model(keras):
    layers = keras.layers
    inputs = keras.Input((6,), dtype="int32")
    x = layers.Embedding(12, 4)(inputs)
    x = layers.LSTM(5, return_sequences=True)(x)
    x = layers.Bidirectional(layers.GRU(3, return_sequences=True))(x)
    x = layers.MultiHeadAttention(2, 3)(x, x)
    x = layers.LayerNormalization()(x)
    x = layers.Conv1D(4, 3, activation="relu")(x)
    x = layers.GlobalAveragePooling1D()(x)
    model = keras.Model(inputs, layers.Dense(2, activation="softmax")(x))
    model.compile(
        keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


def _file_sequence_data(rng):
    x = rng.integers(0, 12, (16, 6)).astype("int32")
    return x, (x[:, 0] > 5).astype("int32")


def _file_cnn(keras):
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((8, 8, 2)),
            layers.Conv2D(4, 3, padding="same", activation="relu"),
            layers.BatchNormalization(),
            layers.MaxPooling2D(),
            layers.Dropout(0.25),
            layers.Conv2DTranspose(3, 3, strides=2, padding="same"),
            layers.Flatten(),
            layers.Dense(3),
        ]
    )
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "mse")
    return model


def _file_cnn_data(rng):
    return rng.normal(size=(16, 8, 8, 2)).astype("float32"), rng.normal(size=(16, 3)).astype(
        "float32"
    )


_CUSTOM_CLASSES: dict = {}


def file_custom_objects(keras) -> dict:
    """A user's layers for the .keras files (one set of classes per Keras module): a
    layer with its own weights, and one holding it, a built-in layer and a list of
    Dense layers as attributes, with a weight of its own; a subclassed model."""
    if keras.__name__ in _CUSTOM_CLASSES:
        return _CUSTOM_CLASSES[keras.__name__]
    ops = keras.ops

    class Linear(keras.layers.Layer):
        def __init__(self, units=4, **kwargs):
            super().__init__(**kwargs)
            self.units = units

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], self.units), name="w")
            self.b = self.add_weight(shape=(self.units,), initializer="zeros", name="b")

        def call(self, x):
            return ops.matmul(x, self.w) + self.b

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    class Block(keras.layers.Layer):
        def __init__(self, width=6, **kwargs):
            super().__init__(**kwargs)
            self.width = width
            self.inner = Linear(width)
            self.norm = keras.layers.LayerNormalization()
            self.extra = [keras.layers.Dense(width), keras.layers.Dense(width, activation="relu")]
            self.scale = self.add_weight(shape=(), initializer="ones", name="scale")

        def call(self, x):
            h = self.norm(self.inner(x))
            for dense in self.extra:
                h = dense(h)
            return h * self.scale

        def get_config(self):
            return {**super().get_config(), "width": self.width}

    class Residual(keras.Model):
        def __init__(self, width=4, **kwargs):
            super().__init__(**kwargs)
            self.width = width
            self.inp = keras.layers.Dense(width, activation="relu")
            self.blocks = [keras.layers.Dense(width), keras.layers.Dense(width)]
            self.out = keras.layers.Dense(1)

        def call(self, x):
            h = self.inp(x)
            for block in self.blocks:
                h = h + block(h)
            return self.out(h)

        def get_config(self):
            return {**super().get_config(), "width": self.width}

    _CUSTOM_CLASSES[keras.__name__] = {"Linear": Linear, "Block": Block, "Residual": Residual}
    return _CUSTOM_CLASSES[keras.__name__]


def _file_custom(keras):
    classes = file_custom_objects(keras)
    inputs = keras.Input((3,))
    h = classes["Block"](6)(classes["Linear"](4)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(h))
    model.compile(keras.optimizers.RMSprop(0.01, momentum=0.5, centered=True), "mse")
    return model


def _file_subclassed(keras):
    model = file_custom_objects(keras)["Residual"](4)
    model.build((None, 3))
    model.compile(keras.optimizers.Adam(0.01), "mse")
    return model


def _file_subclassed_data(rng):
    x = rng.normal(size=(16, 3)).astype("float32")
    return x, x[:, :1] * 2.0


def _file_nadam(keras):
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(5, activation="tanh"), keras.layers.Dense(2)]
    )
    model.compile(keras.optimizers.Nadam(0.02, use_ema=True), "mse")
    return model


def _file_custom_data(rng):
    x = rng.normal(size=(16, 3)).astype("float32")
    return x, x[:, :2] * 2.0


FILE_MODELS = {
    "sequence_model": (_file_sequence_model, _file_sequence_data),
    "cnn": (_file_cnn, _file_cnn_data),
    "custom_layers": (_file_custom, _file_custom_data),
    "nadam_ema": (_file_nadam, _file_custom_data),
    "subclassed_file": (_file_subclassed, _file_subclassed_data),
}
CUSTOM_FILES = ("custom_layers", "subclassed_file")  # loaded with file_custom_objects
