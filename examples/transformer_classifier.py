"""A transformer text classifier written as Keras's example writes it: custom layers
(token-and-position embedding, multi-head self-attention with ``keras.ops``, a
transformer block nesting Dense, LayerNormalization and Dropout layers), trained with
``fit`` on the native backend.

The task needs attention: each sequence of 12 token ids is labelled 1 when its first
token appears again later in the sequence. A bag of tokens cannot tell, since the
same tokens in another order change the label. The data set is made here.

    python examples/transformer_classifier.py [epochs]

It reaches 100% validation accuracy in the default 50 epochs (97% after about 35)
in about 10 s on a 2-vCPU Xeon, the loss plateauing near 0.69
for the first 20 epochs, as attention has to discover the task.
"""

import math
import sys

import numpy as np

import kcompile as keras
from kcompile import layers, ops

VOCAB = 24
MAXLEN = 12
EMBED = 32
HEADS = 4


def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(1, VOCAB, size=(n, MAXLEN)).astype("int32")
    y = rng.integers(0, 2, size=n).astype("int32")
    for row, label in zip(x, y):
        rest = row[1:]
        rest[rest == row[0]] = (row[0] % (VOCAB - 1)) + 1  # first token absent ...
        if label:
            rest[rng.integers(0, MAXLEN - 1)] = row[0]  # ... or present once
    return x, y


class TokenAndPositionEmbedding(layers.Layer):
    def __init__(self, maxlen, vocab_size, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.token_emb = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

    def call(self, x):
        positions = ops.arange(0, ops.shape(x)[-1])
        return self.token_emb(x) + self.pos_emb(positions)


class MultiHeadSelfAttention(layers.Layer):
    def __init__(self, embed_dim, num_heads, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.depth = embed_dim // num_heads
        self.query = layers.Dense(embed_dim)
        self.key = layers.Dense(embed_dim)
        self.value = layers.Dense(embed_dim)
        self.combine = layers.Dense(embed_dim)

    def split_heads(self, x):
        batch, steps = ops.shape(x)[0], x.shape[1]
        x = ops.reshape(x, (batch, steps, self.num_heads, self.depth))
        return ops.transpose(x, (0, 2, 1, 3))

    def call(self, inputs):
        q = self.split_heads(self.query(inputs))
        k = self.split_heads(self.key(inputs))
        v = self.split_heads(self.value(inputs))
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) / math.sqrt(self.depth)
        attended = ops.matmul(ops.softmax(scores, axis=-1), v)
        merged = ops.transpose(attended, (0, 2, 1, 3))
        batch, steps = ops.shape(merged)[0], merged.shape[1]
        return self.combine(ops.reshape(merged, (batch, steps, self.num_heads * self.depth)))


class TransformerBlock(layers.Layer):
    def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1, **kwargs):
        super().__init__(**kwargs)
        self.att = MultiHeadSelfAttention(embed_dim, num_heads)
        self.ffn = keras.Sequential(
            [layers.Dense(ff_dim, activation="relu"), layers.Dense(embed_dim)]
        )
        self.layernorm1 = layers.LayerNormalization(epsilon=1e-6)
        self.layernorm2 = layers.LayerNormalization(epsilon=1e-6)
        self.dropout1 = layers.Dropout(rate)
        self.dropout2 = layers.Dropout(rate)

    def call(self, inputs, training=False):
        attn_output = self.dropout1(self.att(inputs), training=training)
        out1 = self.layernorm1(inputs + attn_output)
        ffn_output = self.dropout2(self.ffn(out1), training=training)
        return self.layernorm2(out1 + ffn_output)


def build_model() -> keras.Model:
    inputs = keras.Input(shape=(MAXLEN,), dtype="int32")
    x = TokenAndPositionEmbedding(MAXLEN, VOCAB, EMBED)(inputs)
    x = TransformerBlock(EMBED, HEADS, 64)(x)
    x = layers.GlobalAveragePooling1D()(x)
    x = layers.Dense(32, activation="relu")(x)
    outputs = layers.Dense(2, activation="softmax")(x)
    model = keras.Model(inputs=inputs, outputs=outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(2e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def main(epochs: int) -> float:
    keras.utils.set_random_seed(0)
    x_train, y_train = make_data(4096, seed=1)
    x_val, y_val = make_data(1024, seed=2)
    model = build_model()
    model.summary()
    model.fit(x_train, y_train, batch_size=64, epochs=epochs, validation_data=(x_val, y_val))
    _, accuracy = model.evaluate(x_val, y_val, verbose=0)
    print(f"validation accuracy: {accuracy:.3f}")
    return accuracy


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
