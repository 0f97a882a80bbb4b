"""Keras initializers with Keras's formulas, drawn from kcompile's seeded generator.

As in Keras, each class has a snake_case alias (``glorot_uniform`` is ``GlorotUniform``),
a config (``get_config`` / ``from_config``), and ``serialize`` / ``deserialize`` /
``get`` read and write Keras's ``{"class_name": ..., "config": ...}`` form."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kcompile.backend import session as backend


def compute_fans(shape: tuple[int, ...]) -> tuple[float, float]:
    if len(shape) == 0:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    if len(shape) == 2:
        return float(shape[0]), float(shape[1])
    receptive = math.prod(shape[:-2])
    return float(shape[-2] * receptive), float(shape[-1] * receptive)


class Initializer:
    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Initializer:
        return cls(**config)

    def clone(self) -> Initializer:
        return type(self).from_config(self.get_config())

    def _rng(self) -> np.random.Generator:
        if self.seed is None:
            return backend.rng()
        return np.random.default_rng(self.seed)

    def __call__(self, shape, dtype=None) -> np.ndarray:
        return np.asarray(self.sample(tuple(shape)), dtype=np.float32)

    def sample(self, shape: tuple[int, ...]) -> np.ndarray:
        raise NotImplementedError


class Zeros(Initializer):
    def __init__(self) -> None:
        super().__init__()

    def get_config(self):
        return {}

    def sample(self, shape):
        return np.zeros(shape)


class Ones(Initializer):
    def __init__(self) -> None:
        super().__init__()

    def get_config(self):
        return {}

    def sample(self, shape):
        return np.ones(shape)


class Constant(Initializer):
    def __init__(self, value: float = 0.0) -> None:
        super().__init__()
        self.value = value

    def get_config(self):
        return {"value": self.value}

    def sample(self, shape):
        return np.full(shape, self.value)


class RandomUniform(Initializer):
    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.minval, self.maxval = minval, maxval

    def get_config(self):
        return {"seed": self.seed, "minval": self.minval, "maxval": self.maxval}

    def sample(self, shape):
        return self._rng().uniform(self.minval, self.maxval, shape)


class RandomNormal(Initializer):
    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.mean, self.stddev = mean, stddev

    def get_config(self):
        return {"seed": self.seed, "mean": self.mean, "stddev": self.stddev}

    def sample(self, shape):
        return self._rng().normal(self.mean, self.stddev, shape)


def _truncated_normal(rng: np.random.Generator, shape, mean: float, stddev: float) -> np.ndarray:
    """Normal samples redrawn until within two standard deviations, as TensorFlow does."""
    out = rng.normal(0.0, 1.0, shape)
    bad = np.abs(out) > 2.0
    while bad.any():
        out[bad] = rng.normal(0.0, 1.0, int(bad.sum()))
        bad = np.abs(out) > 2.0
    return mean + stddev * out


class TruncatedNormal(RandomNormal):
    def sample(self, shape):
        return _truncated_normal(self._rng(), shape, self.mean, self.stddev)


class VarianceScaling(Initializer):
    def __init__(
        self,
        scale=1.0,
        mode="fan_in",
        distribution="truncated_normal",
        seed=None,
        input_axes=None,
        output_axes=None,
    ):
        super().__init__(seed)
        if input_axes is not None or output_axes is not None:
            raise NotImplementedError(
                f"{type(self).__name__}(input_axes={input_axes!r}, output_axes="
                f"{output_axes!r}): kcompile computes the fans from the last two axes only"
            )
        if scale <= 0.0:
            raise ValueError(f"VarianceScaling scale must be positive, got {scale!r}")
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"VarianceScaling mode {mode!r}: expected fan_in, fan_out or fan_avg")
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise ValueError(
                f"VarianceScaling distribution {distribution!r}: expected "
                "truncated_normal, untruncated_normal or uniform"
            )
        self.scale, self.mode, self.distribution = scale, mode, distribution

    def get_config(self):
        return {
            "seed": self.seed,
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
            "input_axes": None,
            "output_axes": None,
        }

    def sample(self, shape):
        fan_in, fan_out = compute_fans(shape)
        denom = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}
        scale = self.scale / max(1.0, denom[self.mode])
        rng = self._rng()
        if self.distribution == "truncated_normal":
            # 0.8796... is the stddev of a unit normal truncated to [-2, 2].
            return _truncated_normal(rng, shape, 0.0, math.sqrt(scale) / 0.87962566103423978)
        if self.distribution == "untruncated_normal":
            return rng.normal(0.0, math.sqrt(scale), shape)
        limit = math.sqrt(3.0 * scale)
        return rng.uniform(-limit, limit, shape)


class _FixedScaling(VarianceScaling):
    """A VarianceScaling whose scale, mode and distribution its class fixes."""

    def get_config(self):
        return {"seed": self.seed, "input_axes": None, "output_axes": None}


class GlorotUniform(_FixedScaling):
    def __init__(self, seed=None, input_axes=None, output_axes=None):
        super().__init__(1.0, "fan_avg", "uniform", seed, input_axes, output_axes)


class GlorotNormal(_FixedScaling):
    def __init__(self, seed=None, input_axes=None, output_axes=None):
        super().__init__(1.0, "fan_avg", "truncated_normal", seed, input_axes, output_axes)


class HeNormal(_FixedScaling):
    def __init__(self, seed=None, input_axes=None, output_axes=None):
        super().__init__(2.0, "fan_in", "truncated_normal", seed, input_axes, output_axes)


class HeUniform(_FixedScaling):
    def __init__(self, seed=None, input_axes=None, output_axes=None):
        super().__init__(2.0, "fan_in", "uniform", seed, input_axes, output_axes)


class LecunNormal(_FixedScaling):
    def __init__(self, seed=None, input_axes=None, output_axes=None):
        super().__init__(1.0, "fan_in", "truncated_normal", seed, input_axes, output_axes)


class LecunUniform(_FixedScaling):
    def __init__(self, seed=None, input_axes=None, output_axes=None):
        super().__init__(1.0, "fan_in", "uniform", seed, input_axes, output_axes)


class Orthogonal(Initializer):
    def __init__(self, gain: float = 1.0, seed: int | None = None) -> None:
        super().__init__(seed)
        self.gain = gain

    def get_config(self):
        return {"seed": self.seed, "gain": self.gain}

    def sample(self, shape):
        if len(shape) < 2:
            raise ValueError(f"Orthogonal needs a shape of rank 2 or more, got {shape}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = self._rng().normal(0.0, 1.0, (max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(shape)


class Identity(Initializer):
    def __init__(self, gain: float = 1.0) -> None:
        super().__init__()
        self.gain = gain

    def get_config(self):  # (Keras's writes {}, losing the gain: kept only when not 1)
        return {} if self.gain == 1.0 else {"gain": self.gain}

    def sample(self, shape):
        if len(shape) != 2:
            raise ValueError(f"Identity needs a 2-D shape, got {shape}")
        return self.gain * np.eye(*shape)


def _window(name: str, size: int, periodic: bool) -> np.ndarray:
    """A window function as scipy.signal.get_window(name, size, fftbins=periodic) gives
    it, for the cosine windows; others from scipy when it is installed."""
    cosine = {"hann": (0.5, 0.5), "hamming": (0.54, 0.46)}
    if name in cosine:
        a, b = cosine[name]
        period = size if periodic else size - 1
        return a - b * np.cos(2.0 * np.pi * np.arange(size) / max(period, 1))
    if name in ("boxcar", "rect", "rectangular", "ones"):
        return np.ones(size)
    try:
        import scipy.signal
    except ImportError:
        raise NotImplementedError(
            f"STFT window {name!r}: kcompile computes hann, hamming and boxcar itself; "
            "other windows need scipy (pip install scipy)"
        ) from None
    return scipy.signal.get_window(name, size, periodic)


class STFT(Initializer):
    """The real (``side="real"``) or imaginary part of the short-time Fourier transform's
    kernel, of shape ``(frame_length, 1, fft_length // 2 + 1)``, windowed and scaled as
    Keras's ``STFT`` initializer."""

    def __init__(self, side="real", window="hann", scaling="density", periodic=False):
        super().__init__()
        if side not in ("real", "imag"):
            raise ValueError(f"side should be 'real' or 'imag', not {side}")
        if scaling is not None and scaling not in ("density", "spectrum"):
            raise ValueError(
                "Scaling is invalid, it must be `None`, 'density' or 'spectrum'. "
                f"Received scaling={scaling}"
            )
        self.side, self.window, self.scaling, self.periodic = side, window, scaling, periodic

    def get_config(self):
        return {
            "side": self.side,
            "window": self.window,
            "periodic": self.periodic,
            "scaling": self.scaling,
        }

    def sample(self, shape):
        frame_length, _, fft_length = shape
        time = np.arange(frame_length, dtype=np.float64).reshape(frame_length, 1, 1)
        freq = np.arange(fft_length, dtype=np.float64).reshape(1, 1, fft_length)
        args = -2.0 * time * freq / ((fft_length - 1) * 2) * np.pi
        kernel = np.cos(args) if self.side == "real" else np.sin(args)
        if self.window is None:
            return kernel
        win = self.window
        win = _window(win, frame_length, self.periodic) if isinstance(win, str) else win
        win = np.asarray(win, np.float64)
        if win.shape != (frame_length,):
            raise ValueError(
                "The shape of `window` must be equal to [frame_length]."
                f"Received: window shape={win.shape}"
            )
        scale = {"density": np.sqrt(np.sum(win**2)), "spectrum": np.sum(np.abs(win))}
        return kernel * win.reshape(-1, 1, 1) / scale.get(self.scaling, 1.0)


OrthogonalInitializer = Orthogonal
IdentityInitializer = Identity
STFTInitializer = STFT

_CLASSES: dict[str, type[Initializer]] = {
    cls.__name__: cls
    for cls in (
        Zeros, Ones, Constant, RandomUniform, RandomNormal, TruncatedNormal, VarianceScaling,
        GlorotUniform, GlorotNormal, HeNormal, HeUniform, LecunNormal, LecunUniform,
        Orthogonal, Identity, STFT,
    )
}  # fmt: skip
# Keras's snake_case aliases name the classes themselves: initializers.zeros is Zeros.
_ALL: dict[str, type[Initializer]] = {backend.snake_case(n): c for n, c in _CLASSES.items()}
_ALL.update(normal=RandomNormal, one=Ones, uniform=RandomUniform, zero=Zeros)  # Keras's aliases
zeros, ones, constant = Zeros, Ones, Constant
random_uniform, random_normal, truncated_normal = RandomUniform, RandomNormal, TruncatedNormal
variance_scaling, orthogonal, identity, stft = VarianceScaling, Orthogonal, Identity, STFT
glorot_uniform, glorot_normal = GlorotUniform, GlorotNormal
he_normal, he_uniform, lecun_normal, lecun_uniform = HeNormal, HeUniform, LecunNormal, LecunUniform


def serialize(initializer: Initializer) -> dict[str, Any]:
    """Keras's serialized form: ``{"module", "class_name", "config", "registered_name"}``."""
    if not isinstance(initializer, Initializer):
        raise TypeError(f"serialize: expected an Initializer, got {initializer!r}")
    name = type(initializer).__name__
    ours = _CLASSES.get(name) is type(initializer)
    return {
        "module": "keras.initializers" if ours else type(initializer).__module__,
        "class_name": name,
        "config": initializer.get_config(),
        "registered_name": None if ours else name,
    }


def deserialize(config: Any, custom_objects: dict | None = None) -> Initializer:
    """An initializer from Keras's serialized form (or a bare class name)."""
    if isinstance(config, str):
        return (
            get(config)
            if not custom_objects or config not in custom_objects
            else (custom_objects[config]())
        )
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"could not deserialize initializer {config!r}: expected a dict "
                         "with 'class_name' and 'config'")  # fmt: skip
    name = config["class_name"]
    cls = (custom_objects or {}).get(name) or _CLASSES.get(name) or _ALL.get(name)
    if cls is None:
        cls = (custom_objects or {}).get(config.get("registered_name"))
    if cls is None:
        raise ValueError(
            f"could not deserialize initializer {name!r}: known initializers are "
            f"{', '.join(sorted(_CLASSES))} (pass custom_objects= for your own)"
        )
    return cls.from_config(dict(config.get("config") or {}))


def get(identifier) -> Initializer:
    """An initializer from an instance, a name (``"glorot_uniform"``, ``"GlorotUniform"``),
    a class, Keras's serialized dict or a callable ``(shape, dtype) -> array``."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        key = identifier if identifier in _ALL else backend.snake_case(identifier)
        if key in _ALL:
            return _ALL[key]()
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if callable(identifier):
        return _CallableInitializer(identifier)
    raise ValueError(
        f"unknown initializer {identifier!r}; known initializers: {', '.join(sorted(_ALL))}"
    )


class _CallableInitializer(Initializer):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def sample(self, shape):
        return np.asarray(self.fn(shape, "float32"))
