"""Keras callbacks (``kcompile.callbacks``)."""

from kcompile.callbacks.callback import Callback, CallbackList, History, ProgbarLogger
from kcompile.callbacks.monitors import (
    BackupAndRestore,
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TerminateOnNaN,
)
from kcompile.callbacks.remote_monitor import RemoteMonitor
from kcompile.callbacks.swap_ema_weights import SwapEMAWeights
from kcompile.callbacks.tensorboard import TensorBoard
from kcompile.utils.progbar import Progbar
from kcompile.utils.unoffered import refuse

__all__ = [
    "BackupAndRestore",
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
    "ReduceLROnPlateau",
    "RemoteMonitor",
    "SwapEMAWeights",
    "TensorBoard",
    "TerminateOnNaN",
]


def __getattr__(name: str):
    refuse("callbacks", name)
