"""Ahead-of-time artifacts: written by ``export``, loaded and run with numpy and ctypes
alone (checked in a process where llvmlite cannot be imported), checkpoints that
resume bit for bit, and every refusal with its message."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

import kcompile as keras
from kcompile.artifact import ArtifactError, SelfCheckError
from kcompile.artifact.container import MANIFEST, MANIFEST_CHECKSUM
from kcompile.artifact.cpu import required_flags
from kcompile.ir import FeedError
from tests.classifiers import dense_classifier

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _model():
    return dense_classifier(features=6, hidden=8, seed=3)


def _data(rows: int = 90):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(rows, 6)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 1).astype(np.int32)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("artifact") / "model.kc")
    manifest = _model().export(path, probe=_data()[0], seed=11)
    return path, manifest


def _rewrite(
    src: str, dst: str, manifest_change=None, member_change=None, reseal: bool = True
) -> None:
    """A copy of the artifact with its manifest or one member changed, zip kept valid;
    with ``reseal`` the manifest's own checksum is made anew (as a builder would)."""
    with zipfile.ZipFile(src) as z:
        members = {name: z.read(name) for name in z.namelist()}
    manifest = json.loads(members[MANIFEST])
    if manifest_change:
        manifest_change(manifest)
    members[MANIFEST] = json.dumps(manifest).encode()
    if reseal:
        members[MANIFEST_CHECKSUM] = hashlib.sha256(members[MANIFEST]).hexdigest().encode()
    if member_change:
        name, data = member_change(members)
        members[name] = data
    with zipfile.ZipFile(dst, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def test_manifest_describes_the_artifact(artifact):
    _, manifest = artifact
    assert manifest["format_version"] == 2 and manifest["library"]["kind"] == "shared"
    assert set(manifest["steps"]) == {"train", "eval", "predict", "grad", "apply"}
    train = manifest["steps"]["train"]
    assert {"name": "input_layer", "role": "data", "type": "f32[N,6]"} in train["inputs"]
    assert train["memory"]["arena_bytes"] <= train["memory"]["unplanned_bytes"]
    assert "avx2" in manifest["target"]["requires"] or "sse2" in manifest["target"]["requires"]
    assert manifest["optimizer"]["class"] == "Adam"
    assert manifest["model"]["policy"] == "float32" and train["bf16_engine_products"] == 0
    assert manifest["metrics"] == {"accuracy": ["total", ["count"]]}
    assert len(manifest["checksums"]) == 13  # 5 graphs, 6 libraries, state, probe


def test_loaded_model_matches_the_model_it_was_built_from(artifact):
    path, _ = artifact
    x, y = _data()
    model, loaded = _model(), keras.load(path)
    assert loaded.selfcheck()["probe"] == 0.0
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.evaluate(x, y, verbose=0) == model.evaluate(x, y, verbose=0)
    h_loaded = loaded.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    h_model = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert h_loaded.history == h_model.history
    report = loaded.selfcheck()  # trained weights: checked against the interpreter
    assert "probe" not in report and report["reference"] < 1e-5


def test_checkpoint_resumes_bit_for_bit(artifact, tmp_path):
    path, _ = artifact
    x, y = _data()
    straight = keras.load(path)
    straight.fit(x, y, batch_size=16, epochs=4, verbose=0)
    first = keras.load(path)
    first.fit(x, y, batch_size=16, epochs=2, verbose=0)
    checkpoint = str(tmp_path / "checkpoint.kc")
    first.save(checkpoint)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]
    resumed = keras.load(checkpoint)
    assert resumed.epochs_done == 2 and resumed.selfcheck()["probe"] == 0.0
    resumed.fit(x, y, batch_size=16, epochs=4, initial_epoch=2, verbose=0)
    for a, b in zip(resumed.get_weights(), straight.get_weights()):
        np.testing.assert_array_equal(a, b)
    for name, array in straight._state.items():  # optimizer state too
        np.testing.assert_array_equal(resumed._state[name], array)


def _check_without_the_compiler(path: str, folder) -> None:
    """Load, selfcheck, predict, fit and save ``path`` in a fresh process where
    llvmlite and networkx cannot be imported, and compare with the model."""
    x, y = _data()
    np.save(folder / "x.npy", x)
    np.save(folder / "y.npy", y)
    script = textwrap.dedent(
        f"""
        import importlib.abc, json, sys
        import numpy as np

        class NoCompiler(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("llvmlite", "networkx"):
                    raise ImportError(name + " is blocked in this test")

        sys.meta_path.insert(0, NoCompiler())
        import kcompile
        loaded = kcompile.load({path!r})
        x, y = np.load({str(folder / "x.npy")!r}), np.load({str(folder / "y.npy")!r})
        report = loaded.selfcheck()
        predicted = loaded.predict(x, verbose=0)
        loaded.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        loaded.save({str(folder / "ckpt.kc")!r})
        np.save({str(folder / "predicted.npy")!r}, predicted)
        np.savez({str(folder / "weights.npz")!r}, *loaded.get_weights())
        print(json.dumps({{
            "report": report,
            "compiler_loaded": sorted(m for m in sys.modules
                                      if m.startswith(("llvmlite", "kcompile.codegen", "kcompile.passes"))),
        }}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["compiler_loaded"] == [] and result["report"]["probe"] == 0.0
    model = _model()
    np.testing.assert_array_equal(np.load(folder / "predicted.npy"), model.predict(x, verbose=0))
    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    with np.load(folder / "weights.npz") as trained:
        for i, w in enumerate(model.get_weights()):
            np.testing.assert_array_equal(trained[f"arr_{i}"], w)
    assert keras.load(str(folder / "ckpt.kc")).epochs_done == 2


def test_loads_and_trains_with_numpy_and_ctypes_alone(artifact, tmp_path):
    _check_without_the_compiler(artifact[0], tmp_path)


def test_object_code_when_no_linker(tmp_path, monkeypatch):
    # No C compiler at build time: object files, linked at load by kcompile's own
    # ELF loader, still with numpy and ctypes alone.
    monkeypatch.setenv("KCOMPILE_CC", "none")
    path = str(tmp_path / "objects.kc")
    manifest = _model().export(path)
    assert manifest["library"]["kind"] == "object"
    _check_without_the_compiler(path, tmp_path)


def test_portable_cpu_levels(tmp_path):
    path = str(tmp_path / "v2.kc")
    manifest = _model().export(path, cpu="x86-64-v2")  # SSE4.2: no AVX anywhere
    assert manifest["target"]["cpu"] == "x86-64-v2"
    assert "sse4_2" in manifest["target"]["requires"]
    assert not {"avx", "avx2", "fma", "sse4a"} & set(manifest["target"]["requires"])
    x, _ = _data()
    loaded = keras.load(path)
    assert loaded.selfcheck()["reference"] < 1e-5
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), _model().predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
    with pytest.raises(ValueError, match="unknown target CPU 'pentium'"):
        _model().export(str(tmp_path / "old.kc"), cpu="pentium")


def test_refuses_truncated_and_tampered_artifacts(artifact, tmp_path):
    path, _ = artifact
    with open(path, "rb") as f:
        data = f.read()
    truncated = tmp_path / "truncated.kc"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="truncated or corrupt"):
        keras.load(str(truncated))
    tampered = str(tmp_path / "tampered.kc")

    def flip_a_byte(members):
        name = "lib/predict.so"
        code = bytearray(members[name])
        code[len(code) // 2] ^= 0xFF
        return name, bytes(code)

    _rewrite(path, tampered, member_change=flip_a_byte)
    with pytest.raises(ArtifactError, match="'lib/predict.so' does not match its checksum"):
        keras.load(tampered)
    missing = str(tmp_path / "missing.kc")
    _rewrite(path, missing, member_change=lambda m: ("state.npz", b""))
    with pytest.raises(ArtifactError, match="'state.npz' holds 0 bytes, expected"):
        keras.load(missing)


def test_refuses_a_future_format_and_missing_cpu_features(artifact, tmp_path):
    path, _ = artifact
    future = str(tmp_path / "future.kc")
    _rewrite(path, future, manifest_change=lambda m: m.update(format_version=99))
    with pytest.raises(ArtifactError, match="format version 99 is newer"):
        keras.load(future)
    other_cpu = str(tmp_path / "other_cpu.kc")

    def needs_more(manifest):
        manifest["target"]["requires"] = [*manifest["target"]["requires"], "kc_absent_flag"]

    _rewrite(path, other_cpu, manifest_change=needs_more)
    with pytest.raises(ArtifactError, match="lacks: kc_absent_flag"):
        keras.load(other_cpu)
    not_zip = tmp_path / "notes.kc"
    not_zip.write_text("hello")
    with pytest.raises(ArtifactError, match="truncated or corrupt"):
        keras.load(str(not_zip))


def test_refuses_wrong_inputs_and_weights(artifact):
    path, _ = artifact
    loaded = keras.load(path)
    x, y = _data()
    with pytest.raises(
        FeedError, match=r"input 'input_layer': expected arrays of shape \(None, 6\)"
    ):
        loaded.predict(x[:, :5], verbose=0)
    with pytest.raises(TypeError, match="expected numeric data"):
        loaded.fit(x, y.astype(str), verbose=0)
    with pytest.raises(FeedError, match="expected integer class ids"):
        loaded.fit(x, y + 0.5, verbose=0)
    weights = loaded.get_weights()
    with pytest.raises(ValueError, match=r"weight 'dense/kernel' has shape \(6, 8\), got \(8, 6\)"):
        loaded.set_weights([weights[0].T, *weights[1:]])
    with pytest.raises(ValueError, match="has 4 weights, got 3"):
        loaded.set_weights(weights[:3])
    loaded.set_weights([w * 2 for w in weights])
    np.testing.assert_array_equal(loaded.get_weights()[0], weights[0] * 2)


def test_selfcheck_fails_when_the_probe_disagrees(artifact, tmp_path):
    path, _ = artifact
    wrong = str(tmp_path / "wrong_probe.kc")
    loaded = keras.load(path)
    probe = loaded._probe()

    def other_outputs(members):
        import io

        buffer = io.BytesIO()
        np.savez(buffer, *probe["inputs"], *(o + 0.01 for o in probe["outputs"]))
        return "probe.npz", buffer.getvalue()

    _rewrite(path, wrong, member_change=other_outputs)
    with zipfile.ZipFile(wrong) as z:  # checksums follow the new probe: a valid artifact
        members = {n: z.read(n) for n in z.namelist()}
    manifest = json.loads(members.pop(MANIFEST))
    members.pop(MANIFEST_CHECKSUM)
    from kcompile.artifact.container import write_artifact

    write_artifact(wrong, {k: v for k, v in manifest.items() if k != "checksums"}, members)
    with pytest.raises(SelfCheckError, match="differs from the stored probe outputs"):
        keras.load(wrong).selfcheck()


def test_cli_build_info_run(tmp_path):
    model_file = tmp_path / "model.py"
    model_file.write_text(
        textwrap.dedent(
            """
            import kcompile as keras
            from kcompile import layers

            def build_model():
                keras.utils.set_random_seed(3)
                model = keras.Sequential([keras.Input(shape=(6,)), layers.Dense(3, activation="softmax")])
                model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
                return model
            """
        )
    )
    x, y = _data()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    artifact = str(tmp_path / "m.kc")

    def kcompile(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [sys.executable, "-m", "kcompile.tools.cli", *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=300,
        )
        assert (done.returncode == 0) == ok, done.stderr
        return done

    assert "shared code" in kcompile("build", str(model_file), "-o", artifact).stdout
    assert "0 epochs done, seed 0" in kcompile("info", artifact).stdout
    out = kcompile("run", artifact, "--data", str(tmp_path), "--epochs", "2", "--verbose", "0")
    assert "2 epochs done" in out.stdout
    out = kcompile("run", artifact, "--data", str(tmp_path), "--epochs", "3", "--verbose", "0")
    assert "from epoch 3 to 3" in out.stdout and "3 epochs done" in out.stdout
    manifest = json.loads(kcompile("info", artifact, "--json").stdout)
    assert manifest["training"]["epochs_done"] == 3
    np.save(tmp_path / "x.npy", x[:, :5])  # data that does not fit: a message, no traceback
    failed = kcompile("run", artifact, "--data", str(tmp_path), "--epochs", "4", ok=False)
    assert "expected arrays of shape (None, 6)" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_a_failed_write_leaves_the_old_file(tmp_path):
    from kcompile.utils.atomic import atomic_write

    path = str(tmp_path / "checkpoint.kc")
    atomic_write(path, lambda f: f.write(b"old"))
    assert os.stat(path).st_mode & 0o644 == 0o644  # the usual mode, not mkstemp's 0600

    def crash(f):
        f.write(b"half of the new")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, crash)
    with open(path, "rb") as f:
        assert f.read() == b"old"
    assert os.listdir(tmp_path) == ["checkpoint.kc"]


def test_elf_loader_links_calls_and_refuses_what_it_cannot(tmp_path):
    import ctypes

    from kcompile.artifact.elf import ElfError, LoadedObject, system_symbol
    from kcompile.codegen.building.target import CompileTimes, compile_module

    source = """
    @counter = internal global i64 0
    declare float @powf(float, float)
    declare void @kc_no_such_function()
    define float @cube(float %x) {
      %c = load i64, ptr @counter
      %d = add i64 %c, 1
      store i64 %d, ptr @counter
      %y = call float @powf(float %x, float 3.0)
      ret float %y
    }
    define void @broken() {
      call void @kc_no_such_function()
      ret void
    }
    """
    code = compile_module(source, CompileTimes(), pic=True).object_code
    with pytest.raises(ElfError, match="needs 'kc_no_such_function'"):
        LoadedObject(code, system_symbol, "test.o")
    found = LoadedObject(code, lambda n: system_symbol("powf") if n == "powf" else 1, "test.o")
    cube = ctypes.CFUNCTYPE(ctypes.c_float, ctypes.c_float)(found.address("cube"))
    assert cube(2.0) == 8.0 and cube(-1.5) == -3.375  # a libc call and a write to .bss
    with pytest.raises(ElfError, match="not a 64-bit little-endian ELF"):
        LoadedObject(b"\x7fELF\x01junk", system_symbol, "junk.o")
    with pytest.raises(KeyError, match="no symbol 'square'"):
        found.address("square")


def test_refuses_an_edited_manifest_and_members_of_the_wrong_size(artifact, tmp_path):
    path, _ = artifact
    edited = str(tmp_path / "edited.kc")

    def swap_libraries(manifest):  # which library serves a step: once a SIGSEGV
        steps = manifest["steps"]
        steps["train"]["code"], steps["predict"]["code"] = (
            steps["predict"]["code"],
            steps["train"]["code"],
        )

    _rewrite(path, edited, manifest_change=swap_libraries, reseal=False)
    with pytest.raises(ArtifactError, match="'manifest.json' does not match its checksum"):
        keras.load(edited)
    larger = str(tmp_path / "larger.kc")
    _rewrite(path, larger, member_change=lambda m: ("state.npz", m["state.npz"] + b"x" * 4096))
    with pytest.raises(ArtifactError, match="'state.npz' holds \\d+ bytes, expected \\d+"):
        keras.load(larger)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: m.pop("steps"), "lacks 'steps'"),
        (lambda m: m["training"].pop("seed"), "lacks 'training.seed'"),
        (lambda m: m.update(format_version="1"), "format_version must be a positive integer"),
        (lambda m: m["steps"]["eval"].update(code=7), "'steps.eval.code' should be a str"),
    ],
)
def test_refuses_missing_and_mistyped_manifest_keys(artifact, tmp_path, change, message):
    path, _ = artifact
    broken = str(tmp_path / "broken.kc")
    _rewrite(path, broken, manifest_change=change)
    with pytest.raises(ArtifactError, match=message):
        keras.load(broken)


def test_refuses_a_damaged_deflate_stream(artifact, tmp_path):
    path, _ = artifact
    with open(path, "rb") as f:
        data = bytearray(f.read())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("state.npz")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start : start + 16] = b"\xff" * 16  # an invalid deflate block type
    damaged = tmp_path / "damaged.kc"
    damaged.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="'state.npz' is damaged"):
        keras.load(str(damaged))


def test_the_matrix_engines_features_are_required_by_their_cpuinfo_names():
    """An artifact built where AMX and VNNI are lists them as /proc/cpuinfo names them (a
    machine without them refuses it, naming the flags); disabled features are not."""
    features = "+avx2,+avx512vnni,+amx-tile,+amx-int8,-amx-bf16,+avxvnni"
    assert required_flags(features) == ["amx_int8", "amx_tile", "avx2", "avx512_vnni", "avx_vnni"]
