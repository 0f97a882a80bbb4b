"""kcompile's ``.keras`` and ``.weights.h5`` files have Keras 3.15's HDF5 groups, each
with Keras's ``name`` attribute (the name of the layer, cell, sublayer, model or optimizer
whose variables it holds, empty or not): compared with the files Keras wrote for the same
programs (``keras_fixtures/saved_groups.json``, made by
``fixture_scripts/make_saved_group_fixtures.py`` from ``saved_group_programs``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import kcompile as keras
from tests.saved_group_programs import PROGRAMS, WHOLE_FILE, saved_groups

pytest.importorskip("h5py")

RECORD = json.loads((Path(__file__).parent / "keras_fixtures" / "saved_groups.json").read_text())


def test_fixture_is_keras_3_15_and_has_every_program():
    assert RECORD["keras_version"] == "3.15.1"
    assert set(RECORD["programs"]) == set(PROGRAMS)


@pytest.mark.parametrize("program", list(PROGRAMS))
def test_groups_and_their_names_are_keras(program, tmp_path):
    model = PROGRAMS[program](keras)
    ours = saved_groups(model, tmp_path, program in WHOLE_FILE)
    expected = RECORD["programs"][program]
    assert set(ours) == set(expected)
    for kind, groups in expected.items():
        assert sorted(ours[kind]) == sorted(groups), kind
        for path, group in groups.items():
            assert ours[kind][path] == group, f"{kind}: {path}"


def test_named_groups_include_empty_ones():
    """Keras writes a named group for an object without variables too: the fixture has
    them, so the comparison above checks that kcompile writes them."""
    groups = RECORD["programs"]["functional_recurrent"]["keras"]
    for path, name in [
        ("layers/bidirectional/forward_layer/vars", "forward_gru"),
        ("layers/multi_head_attention/_softmax/vars", "softmax"),
        ("layers/rnn_1/cell/vars", "stacked_rnn_cells"),
    ]:
        assert groups[path] == {"attrs": {"name": name}, "datasets": {}}


def test_file_editor_summary_shows_the_layers_names(tmp_path, capsys):
    keras.backend.clear_session()
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(4, name="hidden"),
            keras.layers.Dense(2, name="head"),
        ]
    )
    model.compile(optimizer="adam", loss="mse")
    model.save(tmp_path / "m.keras")
    keras.saving.KerasFileEditor(str(tmp_path / "m.keras")).summary()
    out = capsys.readouterr().out
    assert "dense ('hidden')" in out
    assert "dense_1 ('head')" in out
    assert "optimizer ('adam')" in out
