"""Sentiment of short reviews: Embedding -> GlobalAveragePooling1D -> Dense.

The data set is made here, deterministically: reviews built from a small
vocabulary of positive, negative and neutral words (with negations that flip
the next sentiment word), so nothing is downloaded.

    python examples/text_classifier.py [epochs]
"""

import os
import sys

import numpy as np

import kcompile as keras
from kcompile import layers

POSITIVE = [
    "good",
    "great",
    "excellent",
    "lovely",
    "superb",
    "enjoyable",
    "fun",
    "brilliant",
    "charming",
    "solid",
]
NEGATIVE = [
    "bad",
    "awful",
    "terrible",
    "boring",
    "dull",
    "poor",
    "weak",
    "annoying",
    "messy",
    "bland",
]
NEUTRAL = [
    "the",
    "a",
    "film",
    "movie",
    "plot",
    "actor",
    "story",
    "scene",
    "music",
    "camera",
    "it",
    "was",
    "is",
    "and",
    "but",
    "really",
    "quite",
    "very",
    "rather",
    "this",
    "that",
]
NEGATION = ["not"]
VOCAB = ["<pad>", *NEUTRAL, *POSITIVE, *NEGATIVE, *NEGATION]
INDEX = {w: i for i, w in enumerate(VOCAB)}
LENGTH = 20


def make_reviews(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.zeros((count, LENGTH), np.int32)
    y = np.zeros(count, np.int32)
    for r in range(count):
        words, score = [], 0
        for _ in range(rng.integers(8, LENGTH + 1)):
            kind = rng.choice(
                ["neutral", "positive", "negative", "negation"], p=[0.6, 0.17, 0.17, 0.06]
            )
            if kind == "negation" and words and words[-1] != "not":
                words.append("not")
                continue
            if kind in ("positive", "negative"):
                sign = 1 if kind == "positive" else -1
                if words and words[-1] == "not":
                    sign = -sign
                score += sign
                words.append(rng.choice(POSITIVE if kind == "positive" else NEGATIVE))
            else:
                words.append(rng.choice(NEUTRAL))
        if score == 0:
            words.append(rng.choice(POSITIVE))
            score = 1
        words = words[:LENGTH]
        x[r, : len(words)] = [INDEX[w] for w in words]
        y[r] = int(score > 0)
    return x, y


def build_model():
    model = keras.Sequential(
        [
            keras.Input(shape=(LENGTH,), dtype="int32"),
            layers.Embedding(len(VOCAB), 16),
            layers.GlobalAveragePooling1D(),
            layers.Dense(16, activation="relu"),
            layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


if __name__ == "__main__":
    epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    keras.utils.set_random_seed(int(os.environ.get("KCOMPILE_SEED", "1")))
    x_train, y_train = make_reviews(8000, seed=1)
    x_test, y_test = make_reviews(2000, seed=2)
    model = build_model()
    model.summary()
    model.fit(x_train, y_train, epochs=epochs, validation_split=0.1, verbose=2)
    _, accuracy = model.evaluate(x_test, y_test, verbose=2)
    print(f"test accuracy: {accuracy:.4f}")
