"""The ``keras.ops`` calls that ``test_ops_numpy_api.py`` checks kcompile against Keras
with, written once for either library (``fn(ops, *inputs)``, ``ops`` being
``keras.ops`` or ``kcompile.ops``). ``make_ops_api_fixtures.py`` runs them on real Keras
and stores inputs and results in ``keras_fixtures/ops_api.npz``.

Each case: name -> (fn, inputs, flags). An input is (shape, kind); the first axis of
every input is the batch axis when the case is traced. Flags: "trace" (the call also
works inside a compiled step, its inputs' first axis the batch), "grad" (and its
gradient is checked against central differences). Kinds: "normal", "unit" (inside
(-0.9, 0.9)), "pos" (above 1.1), "int" (0..4), "bits" (any int32), "shift" (0..31),
"nan" (normal with NaN and infinities).
"""

from __future__ import annotations

import numpy as np

T, G = "trace", "grad"
TG = (T, G)

SEQ = np.array([-1.0, -0.25, 0.0, 0.5, 1.5], np.float32)
KERNEL_2D = (np.arange(2 * 2 * 3 * 4, dtype=np.float32).reshape(2, 2, 3, 4) % 7 - 3) / 5
KERNEL_1D = (np.arange(3 * 3 * 2, dtype=np.float32).reshape(3, 3, 2) % 5 - 2) / 4
DEPTHWISE = (np.arange(2 * 2 * 3 * 2, dtype=np.float32).reshape(2, 2, 3, 2) % 5 - 2) / 3
POINTWISE = (np.arange(6 * 4, dtype=np.float32).reshape(1, 1, 6, 4) % 3 - 1) / 2
TRANSPOSED = (np.arange(3 * 3 * 2 * 3, dtype=np.float32).reshape(3, 3, 2, 3) % 7 - 3) / 6
EYE4 = np.eye(4, dtype=np.float32)


def _spd(ops, a):
    """A symmetric positive definite matrix from any square ``a``."""
    return ops.matmul(a, ops.swapaxes(a, -1, -2)) + np.eye(a.shape[-1], dtype=np.float32)


STATS = (np.array([0.1, -0.2, 0.3], np.float32), np.array([0.5, 2.0, 1.0], np.float32))

CASES = {
    # trigonometry and hyperbolic functions
    "sin": (lambda ops, a: ops.sin(a * 3.0), [((3, 5), "normal")], TG),
    "cos": (lambda ops, a: ops.cos(a * 3.0), [((3, 5), "normal")], TG),
    "tan": (lambda ops, a: ops.tan(a), [((3, 5), "unit")], TG),
    "arcsin": (lambda ops, a: ops.arcsin(a), [((3, 5), "unit")], TG),
    "arccos": (lambda ops, a: ops.arccos(a), [((3, 5), "unit")], TG),
    "arctan": (lambda ops, a: ops.arctan(a * 4.0), [((3, 5), "normal")], TG),
    "arctan2": (lambda ops, a, b: ops.arctan2(a, b), [((3, 5), "normal"), ((3, 5), "normal")], TG),
    "sinh": (lambda ops, a: ops.sinh(a * 2.0), [((3, 5), "normal")], TG),
    "cosh": (lambda ops, a: ops.cosh(a * 2.0), [((3, 5), "normal")], TG),
    "arcsinh": (lambda ops, a: ops.arcsinh(a * 3.0), [((3, 5), "normal")], TG),
    "arccosh": (lambda ops, a: ops.arccosh(a), [((3, 5), "pos")], TG),
    "arctanh": (lambda ops, a: ops.arctanh(a), [((3, 5), "unit")], TG),
    "sinc": (lambda ops, a: ops.sinc(a), [((3, 5), "normal")], TG),
    # NaN, infinities and special functions
    "isnan": (lambda ops, a: ops.isnan(a), [((3, 6), "nan")], (T,)),
    "isinf": (lambda ops, a: ops.isinf(a), [((3, 6), "nan")], (T,)),
    "isfinite": (lambda ops, a: ops.isfinite(a), [((3, 6), "nan")], (T,)),
    "isposinf_isneginf": (
        lambda ops, a: ops.logical_or(ops.isposinf(a), ops.isneginf(a)), [((3, 6), "nan")], (T,)
    ),
    "nan_to_num": (lambda ops, a: ops.nan_to_num(a, nan=-1.0, posinf=9.0), [((3, 6), "nan")], (T,)),
    "nansum": (lambda ops, a: ops.nansum(ops.where(ops.isinf(a), 0.0, a), axis=-1), [((3, 6), "nan")], (T,)),
    "nanmean": (lambda ops, a: ops.nanmean(ops.where(ops.isinf(a), 0.0, a), axis=1), [((3, 6), "nan")], (T,)),
    "nanmax_nanmin": (
        lambda ops, a: ops.nanmax(a, axis=-1) - ops.nanmin(a, axis=-1) * 0.5,
        [((3, 6), "nan")], (T,),
    ),
    "nanvar_nanstd": (
        lambda ops, a: ops.nanvar(ops.where(ops.isinf(a), 0.0, a), axis=-1)
        + ops.nanstd(ops.where(ops.isinf(a), 0.0, a), axis=-1),
        [((3, 6), "nan")], (T,),
    ),
    "nanprod": (lambda ops, a: ops.nanprod(ops.where(ops.isinf(a), 1.0, a), axis=-1), [((3, 6), "nan")], (T,)),
    "nancumsum": (lambda ops, a: ops.nancumsum(ops.where(ops.isinf(a), 0.0, a), axis=-1), [((3, 6), "nan")], (T,)),
    "fmax_fmin": (
        lambda ops, a, b: ops.fmax(a, b) + ops.fmin(a, b) * 2.0,
        [((3, 6), "nan"), ((3, 6), "normal")], (T,),
    ),
    "fmax_grad": (lambda ops, a, b: ops.fmax(a, b), [((3, 5), "normal"), ((3, 5), "normal")], TG),
    "fmod": (lambda ops, a, b: ops.fmod(a * 3.0, b + 0.5), [((3, 5), "normal"), ((3, 5), "pos")], (T,)),
    "fmod_int": (lambda ops, a, b: ops.fmod(a - 2, b + 1), [((3, 5), "int"), ((3, 5), "int")], (T,)),
    "signbit": (lambda ops, a: ops.signbit(a), [((3, 6), "nan")], (T,)),
    "ldexp": (lambda ops, a: ops.ldexp(a, 3), [((3, 5), "normal")], TG),
    "logaddexp2": (lambda ops, a, b: ops.logaddexp2(a, b), [((3, 5), "normal"), ((3, 5), "normal")], TG),
    "erfc": (lambda ops, a: ops.erfc(a), [((3, 5), "normal")], TG),
    "erfinv": (lambda ops, a: ops.erfinv(a), [((3, 5), "unit")], TG),
    "i0": (lambda ops, a: ops.i0(a * 3.0), [((3, 5), "normal")], TG),
    "real_imag_angle": (
        lambda ops, a: ops.real(a) + ops.imag(a) + ops.angle(a) + ops.conj(a),
        [((3, 5), "normal")], (T,),
    ),
    "allclose": (lambda ops, a: ops.allclose(a, a + 1e-7), [((3, 4), "normal")], ()),
    "isclose_nan": (lambda ops, a: ops.isclose(a, a, equal_nan=True), [((3, 6), "nan")], (T,)),
    # bitwise, on int32 of every magnitude
    "bitwise_and_or": (
        lambda ops, a, b: ops.bitwise_and(a, b) + ops.bitwise_or(a, b) // 2, [((3, 6), "bits"), ((3, 6), "bits")], (T,)
    ),
    "bitwise_xor": (lambda ops, a, b: ops.bitwise_xor(a, b), [((3, 6), "bits"), ((3, 6), "bits")], (T,)),
    "bitwise_invert": (lambda ops, a: ops.bitwise_invert(a) + ops.bitwise_not(a), [((3, 6), "int")], (T,)),
    "left_shift": (lambda ops, a, s: ops.left_shift(a, s), [((3, 6), "bits"), ((3, 6), "shift")], (T,)),
    "right_shift": (lambda ops, a, s: ops.bitwise_right_shift(a, s), [((3, 6), "bits"), ((3, 6), "shift")], (T,)),
    "gcd_lcm": (
        lambda ops, a, b: ops.gcd(a, b) * 1000 + ops.lcm(a % 97, b % 89),
        [((3, 6), "bits"), ((3, 6), "bits")], (T,),
    ),
    "gcd_small": (lambda ops, a, b: ops.gcd(a - 2, b), [((3, 6), "int"), ((3, 6), "int")], (T,)),
    # sorting and order statistics
    "sort": (lambda ops, a: ops.sort(a), [((3, 6), "normal")], TG),
    "sort_axis0": (lambda ops, a: ops.sort(a, axis=0), [((3, 6), "normal")], ()),
    "sort_nan": (lambda ops, a: ops.sort(a), [((3, 6), "nan")], (T,)),
    "argsort": (lambda ops, a: ops.argsort(a, axis=-1), [((3, 6), "normal")], (T,)),
    "argsort_ties": (lambda ops, a: ops.argsort(a), [((3, 7), "int")], (T,)),
    "top_k": (lambda ops, a: ops.top_k(a, 3)[0], [((3, 6), "normal")], TG),
    "top_k_indices": (lambda ops, a: ops.top_k(a, 4)[1], [((3, 7), "int")], (T,)),
    "in_top_k": (
        lambda ops, a, t: ops.in_top_k(t[:, 0], a, 2), [((3, 5), "normal"), ((3, 1), "int")], (T,)
    ),
    "median": (lambda ops, a: ops.median(a, axis=-1), [((3, 6), "normal")], TG),
    "median_all": (lambda ops, a: ops.median(a), [((3, 5), "normal")], ()),
    "quantile": (lambda ops, a: ops.quantile(a, 0.3, axis=-1), [((3, 6), "normal")], TG),
    "quantile_many": (
        lambda ops, a: ops.quantile(a, [0.1, 0.75], axis=1, keepdims=True), [((3, 7), "normal")], ()
    ),
    "percentile_nearest": (
        lambda ops, a: ops.percentile(a, 40.0, axis=-1, method="nearest"), [((3, 6), "normal")], (T,)
    ),
    "nanmedian": (lambda ops, a: ops.nanmedian(ops.where(ops.isinf(a), 0.0, a), axis=-1), [((3, 6), "nan")], (T,)),
    "searchsorted": (lambda ops, a: ops.searchsorted(SEQ, a, side="right"), [((3, 5), "normal")], (T,)),
    "digitize": (lambda ops, a: ops.digitize(a, SEQ), [((3, 5), "normal")], (T,)),
    # building, splitting, combining
    "append": (lambda ops, a, b: ops.append(a, b, axis=1), [((3, 2), "normal"), ((3, 3), "normal")], TG),
    "append_flat": (lambda ops, a, b: ops.append(a, b), [((3, 2), "normal"), ((2,), "normal")], ()),
    "array_split": (lambda ops, a: ops.array_split(a, 3, axis=1)[1], [((3, 7), "normal")], TG),
    "hsplit": (lambda ops, a: ops.hsplit(a, 2)[1], [((3, 6), "normal")], TG),
    "vsplit": (lambda ops, a: ops.vsplit(a, [1])[1], [((3, 6), "normal")], ()),
    "dstack": (lambda ops, a, b: ops.dstack([a, b]), [((3, 4), "normal"), ((3, 4), "normal")], TG),
    "diff": (lambda ops, a: ops.diff(a, n=2, axis=-1), [((3, 6), "normal")], TG),
    "cumprod": (lambda ops, a: ops.cumprod(a, axis=-1), [((3, 5), "normal")], TG),
    "cumprod_int": (lambda ops, a: ops.cumprod(a, axis=1), [((3, 5), "int")], (T,)),
    "nancumprod": (lambda ops, a: ops.nancumprod(ops.where(ops.isinf(a), 1.0, a), axis=-1), [((3, 6), "nan")], (T,)),
    "cross": (lambda ops, a, b: ops.cross(a, b), [((3, 3), "normal"), ((3, 3), "normal")], TG),
    "kron": (lambda ops, a: ops.kron(a, np.array([[1.0, -2.0, 0.5]], np.float32)), [((3, 2), "normal")], TG),
    "vander": (lambda ops, a: ops.vander(a[0], 4), [((3, 4), "normal")], ()),
    "trapezoid": (lambda ops, a: ops.trapezoid(a, dx=0.5), [((3, 6), "normal")], TG),
    "correlate": (lambda ops, a, b: ops.correlate(a[0], b[0], mode="same"), [((3, 7), "normal"), ((3, 3), "normal")], ()),
    "correlate_full": (lambda ops, a, b: ops.correlate(a[0], b[0], mode="full"), [((3, 5), "normal"), ((3, 3), "normal")], ()),
    "corrcoef": (lambda ops, a: ops.corrcoef(a), [((3, 6), "normal")], ()),
    "isin": (lambda ops, a: ops.isin(a, np.array([0, 2, 4], np.int32)), [((3, 6), "int")], (T,)),
    "select": (
        lambda ops, a: ops.select([a < -0.5, a > 0.5], [a * 2.0, a * 3.0], -1.0), [((3, 6), "normal")], TG
    ),
    "histogram": (lambda ops, a: ops.histogram(a[0], bins=4)[0], [((3, 9), "normal")], ()),
    "histogram_edges": (lambda ops, a: ops.histogram(a[0], bins=3, range=(-1, 1))[1], [((3, 9), "normal")], ()),
    "bincount": (lambda ops, a: ops.bincount(a[0], minlength=6), [((3, 7), "int")], ()),
    "unravel_index": (lambda ops, a: ops.unravel_index(a, (2, 3))[1], [((3, 4), "int")], (T,)),
    "rot90": (lambda ops, a: ops.rot90(a, k=1, axes=(1, 2)), [((3, 2, 4), "normal")], TG),
    "rot90_3": (lambda ops, a: ops.rot90(a, k=3, axes=(1, 2)), [((3, 2, 4), "normal")], TG),
    "diagflat": (lambda ops, a: ops.diagflat(a[0], 1), [((3, 3), "normal")], ()),
    "geomspace": (lambda ops: ops.geomspace(1.0, 1000.0, 4), [], ()),
    "windows": (lambda ops: ops.hamming(5) + ops.hanning(5) + ops.bartlett(5) + ops.blackman(5), [], ()),
    "kaiser": (lambda ops: ops.kaiser(6, 3.0), [], ()),
    # core
    "slice": (lambda ops, a: ops.slice(a, (0, 1), (3, 3)), [((3, 5), "normal")], ()),
    "slice_clamped": (lambda ops, a: ops.slice(a, (1, 4), (2, 3)), [((3, 5), "normal")], ()),
    "slice_update": (
        lambda ops, a: ops.slice_update(a, (1, 2), np.ones((2, 2), np.float32)), [((3, 5), "normal")], ()
    ),
    "scatter": (lambda ops, a: ops.scatter(np.array([[0, 1], [2, 0], [0, 1]]), a[0, :3], (3, 2)), [((3, 5), "normal")], ()),
    "scatter_update": (lambda ops, a: ops.scatter_update(a, np.array([[0, 1], [2, 3]]), np.array([7.0, 8.0], np.float32)), [((3, 5), "normal")], ()),
    "segment_sum": (lambda ops, a: ops.segment_sum(a, np.array([0, 0, 2]), num_segments=3), [((3, 4), "normal")], ()),
    "segment_max": (lambda ops, a: ops.segment_max(a, np.array([1, 0, 1]), num_segments=2), [((3, 4), "normal")], ()),
    "saturate_cast": (lambda ops, a: ops.saturate_cast(a * 200.0, "uint8"), [((3, 5), "normal")], (T,)),
    "cdist": (lambda ops, a, b: ops.cdist(a, b), [((3, 4, 2), "normal"), ((3, 5, 2), "normal")], TG),
    "extract_sequences": (lambda ops, a: ops.extract_sequences(a, 3, 2), [((3, 8), "normal")], TG),
    # nn
    "conv_2d": (lambda ops, a: ops.conv(a, KERNEL_2D, strides=2, padding="same"), [((2, 5, 6, 3), "normal")], TG),
    "conv_1d_dilated": (lambda ops, a: ops.conv(a, KERNEL_1D, dilation_rate=2), [((2, 9, 3), "normal")], TG),
    "depthwise_conv": (lambda ops, a: ops.depthwise_conv(a, DEPTHWISE, padding="same"), [((2, 4, 5, 3), "normal")], TG),
    "separable_conv": (
        lambda ops, a: ops.separable_conv(a, DEPTHWISE, POINTWISE, strides=(1, 2)), [((2, 4, 5, 3), "normal")], TG
    ),
    "conv_transpose_same": (
        lambda ops, a: ops.conv_transpose(a, TRANSPOSED, strides=2, padding="same"), [((2, 3, 4, 3), "normal")], TG
    ),
    "conv_transpose_valid": (
        lambda ops, a: ops.conv_transpose(a, TRANSPOSED, strides=(1, 2)), [((2, 3, 4, 3), "normal")], TG
    ),
    "max_pool": (lambda ops, a: ops.max_pool(a, 2, strides=1, padding="same"), [((2, 4, 5, 3), "normal")], TG),
    "average_pool_same": (lambda ops, a: ops.average_pool(a, 3, strides=2, padding="same"), [((2, 5, 5, 2), "normal")], TG),
    "average_pool_1d": (lambda ops, a: ops.average_pool(a, (2,), strides=(2,)), [((2, 7, 3), "normal")], TG),
    "adaptive_average_pool": (lambda ops, a: ops.adaptive_average_pool(a, (2, 3)), [((2, 5, 7, 2), "normal")], TG),
    "adaptive_max_pool": (lambda ops, a: ops.adaptive_max_pool(a, (3, 2)), [((2, 5, 7, 2), "normal")], TG),
    "depth_to_space": (lambda ops, a: ops.depth_to_space(a, 2), [((2, 2, 3, 8), "normal")], TG),
    "space_to_depth": (lambda ops, a: ops.space_to_depth(a, 2), [((2, 4, 6, 2), "normal")], TG),
    "batch_normalization": (
        lambda ops, a: ops.batch_normalization(a, STATS[0], STATS[1], axis=-1, offset=STATS[0], scale=STATS[1]),
        [((3, 4, 3), "normal")], TG,
    ),
    "sparsemax": (lambda ops, a: ops.nn.sparsemax(a * 2.0), [((3, 6), "normal")], TG),
    "unfold": (lambda ops, a: ops.nn.unfold(a, 2, padding=1, stride=(1, 2)), [((2, 3, 4, 5), "normal")], TG),
    "fold": (
        lambda ops, a: ops.nn.fold(a, (4, 5), 2, padding=1, stride=(1, 2)), [((2, 12, 15), "normal")], TG
    ),
    # linalg
    "norm_vector": (lambda ops, a: ops.norm(a, axis=-1), [((3, 5), "normal")], TG),
    "norm_ord1_inf": (
        lambda ops, a: ops.norm(a, ord=1, axis=-1) + ops.norm(a, ord=np.inf, axis=-1), [((3, 5), "normal")], (T,)
    ),
    "norm_p3": (lambda ops, a: ops.linalg.norm(a, ord=3, axis=1, keepdims=True), [((3, 5), "normal")], TG),
    "norm_matrix": (
        lambda ops, a: ops.norm(a, ord="fro", axis=(1, 2)) + ops.norm(a, ord=1, axis=(1, 2)), [((3, 3, 4), "normal")], (T,)
    ),
    "norm_matrix_inf": (lambda ops, a: ops.norm(a, ord=-np.inf, axis=(1, 2)), [((3, 3, 4), "normal")], (T,)),
    "inv": (lambda ops, a: ops.linalg.inv(a + 3.0 * EYE4), [((3, 4, 4), "normal")], TG),
    "solve": (lambda ops, a, b: ops.solve(a + 3.0 * EYE4, b), [((3, 4, 4), "normal"), ((3, 4, 1), "normal")], TG),
    "solve_vector": (lambda ops, a, b: ops.solve(a[0], b[0]), [((3, 4, 4), "normal"), ((3, 4), "normal")], ()),
    "solve_matrix": (
        lambda ops, a, b: ops.linalg.solve(a, b), [((3, 4, 4), "normal"), ((3, 4, 2), "normal")], (T,)
    ),
    "det": (lambda ops, a: ops.det(a), [((3, 4, 4), "normal")], TG),
    "slogdet": (lambda ops, a: ops.slogdet(a)[0] * 10.0 + ops.slogdet(a)[1], [((3, 3, 3), "normal")], (T,)),
    "logdet": (lambda ops, a: ops.logdet(_spd(ops, a)), [((3, 4, 4), "normal")], TG),
    "cholesky": (lambda ops, a: ops.cholesky(_spd(ops, a)), [((3, 4, 4), "normal")], TG),
    "cholesky_upper": (lambda ops, a: ops.linalg.cholesky(_spd(ops, a), upper=True), [((3, 3, 3), "normal")], (T,)),
    "cholesky_inverse": (
        lambda ops, a: ops.linalg.cholesky_inverse(ops.cholesky(_spd(ops, a[0]))), [((3, 3, 3), "normal")], ()
    ),
    "solve_triangular": (
        lambda ops, a, b: ops.linalg.solve_triangular(a + 3.0 * EYE4, b, lower=True),
        [((3, 4, 4), "normal"), ((3, 4, 2), "normal")], TG,
    ),
    "solve_triangular_upper": (
        lambda ops, a, b: ops.solve_triangular(a + 3.0 * EYE4, b), [((3, 4, 4), "normal"), ((3, 4, 3), "normal")], (T,)
    ),
    "norm_all": (lambda ops, a: ops.norm(a), [((3, 4), "normal")], ()),
}  # fmt: skip


def make_inputs(name: str) -> list[np.ndarray]:
    """The inputs of case ``name`` (the same on every machine for a given numpy)."""
    seed = sum(ord(c) * (i + 1) for i, c in enumerate(name))
    rng = np.random.default_rng(seed)
    out = []
    for shape, kind in CASES[name][1]:
        if kind in ("int", "bits", "shift"):
            low, high = {"int": (0, 5), "bits": (-(2**31), 2**31), "shift": (0, 32)}[kind]
            out.append(rng.integers(low, high, size=shape, dtype=np.int64).astype(np.int32))
            continue
        x = rng.normal(size=shape).astype(np.float32)
        if kind == "unit":
            x = np.tanh(x).astype(np.float32) * np.float32(0.9)
        elif kind == "pos":
            x = np.abs(x) + np.float32(1.1)
        elif kind == "nan":
            flat = x.reshape(-1)
            flat[::5] = np.nan
            flat[1::7] = np.inf
            flat[3::11] = -np.inf
        out.append(x)
    return out
