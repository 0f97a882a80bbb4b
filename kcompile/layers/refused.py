"""Keras layers kcompile does not offer, each with the reason: what a module
``__getattr__`` of ``kcompile.layers`` raises for them (so ``hasattr`` stays false, and a
program that uses one stops at it with the reason, not an AttributeError)."""

from __future__ import annotations

_CONV3D = (
    "3-D convolutions are not supported yet: the IR's convolution primitive is 2-D and no "
    "3-D one is written (a 3-D convolution made of 2-D ones would unroll one per depth "
    "offset and output depth into the step); fold the depth into the channels and use "
    "Conv2D, or TimeDistributed(Conv2D) over the depth"
)
_CONV_LSTM = (
    "convolutional LSTMs are not supported yet: no cell with convolutions in its step is "
    "written (the recurrent layers' steps are matrix products); use "
    "TimeDistributed(Conv2D), then TimeDistributed(Flatten) and an LSTM"
)

REFUSED: dict[str, str] = {
    "Conv3D": _CONV3D,
    "Convolution3D": _CONV3D,
    "Conv3DTranspose": _CONV3D,
    "Convolution3DTranspose": _CONV3D,
    "ConvLSTM1D": _CONV_LSTM,
    "ConvLSTM2D": _CONV_LSTM,
    "ConvLSTM3D": _CONV_LSTM,
}


def refusal(name: str) -> NotImplementedError:
    """The error for ``keras.layers.<name>``, naming it and why it is not offered."""
    return NotImplementedError(f"keras.layers.{name}: {REFUSED[name]}")
