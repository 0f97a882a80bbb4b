"""The per-kernel profile: cycle counters around each kernel call, loop bodies too."""

import kcompile as keras
from kcompile import layers
from kcompile.tools import inspect
from kcompile.tools.cli import main


def _mlp():
    model = keras.Sequential(
        [keras.Input(shape=(12,)), layers.Dense(8, activation="relu"), layers.Dense(3)]
    )
    model.compile(loss="mse", optimizer="adam")
    return model


def test_profile_times_every_kernel_of_a_step():
    result = inspect.profile_step(_mlp(), "train", batch=16, calls=5)
    assert result.rows and not result.inner
    assert all(calls == 5 for _, _, calls, _ in result.rows)
    assert sum(seconds for *_, seconds in result.rows) > 0
    names = [name for name, *_ in result.rows]
    assert any("matmul" in what for _, what, _, _ in result.rows), names
    text = result.text()
    assert text.startswith("train step at batch 16, 5 calls:") and names[0] in text


def test_profile_looks_inside_loop_bodies():
    model = keras.Sequential([keras.Input(shape=(5, 3)), layers.SimpleRNN(4), layers.Dense(2)])
    model.compile(loss="mse", optimizer="sgd")
    result = inspect.profile_step(model, "predict", batch=3, calls=4)
    assert any(what.startswith("scan") for _, what, _, _ in result.rows)
    # Each body kernel runs once per step of the sequence, 5 per call.
    assert result.inner and all(calls == 4 * 5 for _, _, calls, _ in result.inner)
    assert "inside loops" in result.text()


def test_profile_command(tmp_path, capsys):
    path = tmp_path / "model.py"
    path.write_text(
        "import kcompile as keras\n"
        "from kcompile import layers\n"
        "def build_model():\n"
        "    m = keras.Sequential([keras.Input(shape=(6,)), layers.Dense(2)])\n"
        "    m.compile(loss='mse', optimizer='sgd')\n"
        "    return m\n"
    )
    assert main(["profile", str(path), "--step", "eval", "--batch", "4", "--calls", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("eval step at batch 4, 3 calls:") and "µs/call" in out


def test_each_kernel_is_read_against_the_machine():
    from kcompile.tools.machine import FMA_UNITS, Machine

    result = inspect.profile_step(_mlp(), "predict", batch=16, calls=3)
    products = {name: work for name, work in result.work.items() if work[0]}
    # the first Dense: 16 rows x 12 inputs x 8 units, multiply and add
    assert 2.0 * 16 * 12 * 8 in [flops for flops, _, _ in products.values()]
    assert all(nbytes > 0 for _, nbytes, _ in result.work.values())
    assert {engine for _, _, engine in result.work.values()} == {"fma"}  # float32
    fake = Machine(ghz=2.0, cores=2, lanes=8, copy_gbs=10.0)
    assert fake.peak_gflops == 2 * 8 * 2 * FMA_UNITS * 2.0
    result.machine = fake
    text = result.text()
    assert "GFLOP/s" in text and "GB/s" in text and "peak 128 GFLOP/s" in text


def test_off_x86_the_clock_is_the_one_the_kernel_reports(monkeypatch, tmp_path):
    import builtins

    from kcompile.tools import machine

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor : 0\ncpu MHz\t\t: 2400.000\nprocessor : 1\ncpu MHz : 2600.5\n")
    real_open = builtins.open
    monkeypatch.setattr(machine.platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(
        builtins,
        "open",
        lambda p, *a, **k: real_open(cpuinfo if p == "/proc/cpuinfo" else p, *a, **k),
    )
    assert machine.measure_clock() == 2.6005


def test_a_weight_gradient_counts_every_row_it_contracts():
    """A Dense over a sequence: xᵀ·dy contracts the batch and the time axis (16 x 5
    rows) into the 12 x 8 gradient, the same work as the forward product."""
    model = keras.Sequential([keras.Input(shape=(5, 12)), layers.Dense(8)])
    model.compile(loss="mse", optimizer="sgd")
    result = inspect.profile_step(model, "train", batch=16, calls=2)
    flops = [work[0] for work in result.work.values() if work[0]]
    assert flops.count(2.0 * 16 * 5 * 12 * 8) >= 2


def test_bf16_products_on_an_engine_are_read_against_its_peak():
    """Under mixed_bfloat16 a product that runs on a bf16 engine (kc_bgemm: the host has
    AMX-BF16 or AVX512_BF16 and its dims reach the engine's block) is read against that
    engine's peak (AMX's tiles; ``vdpbf16ps`` twice the FMAs'); where the host has neither
    every product is read against the FMA peak."""
    from kcompile.codegen.building.target import host
    from kcompile.codegen.library.bf16_gemm import engine_unit, has_engine
    from kcompile.tools.machine import AMX_BF16_FLOPS_PER_CYCLE, Machine

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = keras.Sequential([keras.Input(shape=(64,)), layers.Dense(32), layers.Dense(4)])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model.compile(loss="mse", optimizer="sgd")
    result = inspect.profile_step(model, "predict", batch=48, calls=2)
    engines = {work[2] for work in result.work.values() if work[0]}
    # the 64 -> 32 product reaches the 32 x 32 block; the 32 -> 4 one stays on kc_sgemm
    engine = engine_unit(host().has) if has_engine(host().has) else None
    assert engines == ({engine, "fma"} if engine else {"fma"})
    fake = Machine(ghz=2.0, cores=2, lanes=16, copy_gbs=10.0, amx=True)
    assert fake.engine_peak("amx_bf16") == 2 * AMX_BF16_FLOPS_PER_CYCLE * 2.0
    result.machine = fake
    text = result.text()
    assert "AMX-BF16 peak 4096 GFLOP/s" in text
    assert (" amx" in text) == (engine == "amx_bf16")
    assert (" bf16" in text) == (engine == "dp_bf16")
    zen4 = Machine(ghz=2.0, cores=2, lanes=16, copy_gbs=10.0, dp_bf16=True, fma_units=1)
    assert zen4.peak_gflops == 2 * 16 * 2 * 1 * 2.0
    assert zen4.engine_peak("dp_bf16") == 2 * zen4.peak_gflops
    assert "1 FMA unit a core: peak 128 GFLOP/s; AVX512_BF16 peak 256" in zen4.describe()


def test_fma_units_count_zen4s_512_bit_fmas_once():
    from kcompile.tools.machine import fma_units

    amd = {"vendor_id": "AuthenticAMD", "cpu family": "25"}
    assert fma_units(16, amd) == 1  # Zen 4: a 512-bit FMA takes both 256-bit pipes
    assert fma_units(8, amd) == 2  # Zen 3 (and Zen 4 on 256-bit vectors)
    assert fma_units(16, {**amd, "cpu family": "26"}) == 2  # Zen 5
    assert fma_units(16, {"vendor_id": "GenuineIntel", "cpu family": "6"}) == 2


def test_int8_products_are_read_against_the_integer_multiply_adds_peak(monkeypatch):
    """A quantized Dense's product on kc_igemm (both operands bytes) is read against the
    integer multiply-adds' peak, twice the FMAs'; held in f32 (``INTEGER_KERNEL`` off) it
    runs on the FMAs and is read against their peak."""
    from kcompile.passes import int8_products
    from kcompile.tools.machine import Machine

    model = keras.Sequential([keras.Input(shape=(64,)), layers.Dense(32), layers.Dense(4)])
    model.compile(loss="mse", optimizer="sgd")
    model.quantize("int8")
    engines = {}
    for integer_kernel in (True, False):
        monkeypatch.setattr(int8_products, "INTEGER_KERNEL", integer_kernel)
        result = inspect.profile_step(model, "predict", batch=16, calls=2)
        engines[integer_kernel] = {work[2] for work in result.work.values() if work[0]}
    assert engines == {True: {"madd_i8"}, False: {"fma_i8"}}
    fake = Machine(ghz=2.0, cores=2, lanes=8, copy_gbs=10.0)
    assert fake.engine_peak("madd_i8") == 2 * fake.engine_peak("fma") == 2 * fake.peak_gflops
    vnni = Machine(ghz=2.0, cores=2, lanes=8, copy_gbs=10.0, int8_per_lane=4)
    assert vnni.engine_peak("madd_i8") == 4 * vnni.peak_gflops  # vpdpbusd: 4 a lane
    tiles = Machine(ghz=2.0, cores=2, lanes=16, copy_gbs=10.0, int8_per_lane=4, amx_int8=True)
    assert tiles.engine_peak("madd_i8") == 2 * 2048 * 2.0  # AMX-INT8: 2,048 ops a cycle
    result.machine = fake
    assert " i8" in result.text()
