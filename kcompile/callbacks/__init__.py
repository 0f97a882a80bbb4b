"""Keras callbacks (``kcompile.callbacks``)."""

from kcompile.callbacks.callback import Callback, CallbackList, History, ProgbarLogger
from kcompile.callbacks.monitors import (
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    TerminateOnNaN,
)
from kcompile.callbacks.progbar import Progbar

__all__ = [
    "CSVLogger",
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "History",
    "LambdaCallback",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "Progbar",
    "ProgbarLogger",
    "TerminateOnNaN",
]
