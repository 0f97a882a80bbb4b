"""Cases of StringLookup, IntegerLookup and TextVectorization run by Keras 3 (its lookup
layers need TensorFlow: ``tests/make_keras_fixtures.py lookup``, in an environment with
keras, jax and tensorflow-cpu) into ``keras_fixtures/lookup_layers.json``, and by
kcompile in ``tests/test_lookup_layers.py``. ``cases(keras)`` is the same code for both."""

from __future__ import annotations

import numpy as np


def cases(keras) -> dict:
    out: dict = {}
    L = keras.layers
    data = np.array(["b", "a", "c", "a", "b", "d", "b", "e", "e", "Zed"])
    s = L.StringLookup()
    s.adapt(data)
    out["s_vocab"] = [str(v) for v in s.get_vocabulary()]
    out["s_int"] = np.asarray(s(np.array([["a", "zz"], ["b", "Zed"]]))).tolist()
    s = L.StringLookup(max_tokens=4, mask_token="[MASK]")
    s.adapt(data)
    out["s_mask_vocab"] = [str(v) for v in s.get_vocabulary()]
    out["s_mask"] = np.asarray(s(np.array([["a", "[MASK]"], ["e", "q"]]))).tolist()
    s = L.StringLookup(output_mode="multi_hot")
    s.adapt(data)
    out["s_multi"] = np.asarray(s(np.array([["a", "a", "q"], ["b", "c", "d"]]))).tolist()
    s = L.StringLookup(output_mode="count")
    s.adapt(data)
    out["s_count"] = np.asarray(s(np.array([["a", "a", "q"], ["b", "c", "d"]]))).tolist()
    s = L.StringLookup(output_mode="one_hot")
    s.adapt(data)
    out["s_onehot"] = np.asarray(s(np.array([["a"], ["q"]]))).tolist()
    s = L.StringLookup(output_mode="tf_idf")
    s.adapt(np.array([["a", "b", "a"], ["b", "c", "c"], ["d", "a", "b"]]))
    out["s_tfidf"] = np.asarray(s(np.array([["a", "a", "c"], ["q", "d", "b"]]))).tolist()
    i = L.IntegerLookup()
    i.adapt(np.array([5, 7, 7, 3, 5, 7, 100]))
    out["i_vocab"] = [int(v) for v in i.get_vocabulary()]
    out["i_int"] = np.asarray(i(np.array([[7, 3], [8, 100]]))).tolist()
    i = L.IntegerLookup(num_oov_indices=3, vocabulary=[10, 20])
    out["i_oov3"] = np.asarray(i(np.array([[10, 4, 5], [6, 20, -7]]))).tolist()
    t = L.TextVectorization(max_tokens=12, output_sequence_length=6)
    texts = [
        "Hello, World! hello AGAIN.",
        "The world's big-ish; isn't it?",
        "Ünïcode Straße ok... Ok OK",
        "  tabs\tand\nnewlines  ",
    ]
    t.adapt(texts)
    out["t_vocab"] = [str(v) for v in t.get_vocabulary()]
    out["t_int"] = np.asarray(t(np.array([*texts, "totally unknown words here and more"]))).tolist()
    t = L.TextVectorization(ngrams=2, output_mode="count", max_tokens=20)
    t.adapt(texts)
    out["t_bi_vocab"] = [str(v) for v in t.get_vocabulary()]
    out["t_bi"] = np.asarray(t(np.array(texts[:2]))).tolist()
    t = L.TextVectorization(output_mode="tf_idf")
    t.adapt(texts)
    out["t_tfidf"] = np.round(np.asarray(t(np.array(texts[:2]))), 5).tolist()
    t = L.TextVectorization(split="character", standardize="lower", output_sequence_length=8)
    t.adapt(["abc ab", "cab"])
    out["t_char_vocab"] = [str(v) for v in t.get_vocabulary()]
    out["t_char"] = np.asarray(t(["abcab cd"])).tolist()
    t = L.TextVectorization()
    t.adapt(np.array([["one two"], ["two three three"]]))
    out["t_ragged"] = np.asarray(t(np.array([["two one"], ["three"]]))).tolist()
    return out
