"""Keras's TensorBoard callback: each epoch's logs as scalars (``epoch_loss``,
``epoch_accuracy``, ``epoch_learning_rate``, ...) in TensorBoard's event files under
``log_dir/train`` and ``log_dir/validation``, written without TensorFlow: TFRecord
framing (lengths and data guarded by masked CRC-32C) around hand-encoded ``Event``
protocol buffers, as ``tensorboard --logdir`` reads them. ``read_events`` parses them
back (and checks every checksum).
"""

from __future__ import annotations

import os
import socket
import struct
import time
from typing import Any

import numpy as np

from kcompile.callbacks.callback import Callback

_CRC32C_POLY = 0x82F63B78  # Castagnoli, reflected
_TABLE = []
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ _CRC32C_POLY if _c & 1 else _c >> 1
    _TABLE.append(_c)


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    return _varint(number << 3 | wire) + payload


def _length_delimited(number: int, data: bytes) -> bytes:
    return _field(number, 2, _varint(len(data)) + data)


def event(wall_time: float, step: int, scalars: dict[str, float] | None = None, version=None):
    """An ``Event`` message: wall_time (1, double), step (2, int64), file_version (3) or
    summary (5) of ``Summary.Value``s with tag (1) and simple_value (2, float)."""
    body = _field(1, 1, struct.pack("<d", wall_time)) + _field(2, 0, _varint(step))
    if version is not None:
        return body + _length_delimited(3, version.encode())
    values = b"".join(
        _length_delimited(
            1, _length_delimited(1, tag.encode()) + _field(2, 5, struct.pack("<f", value))
        )
        for tag, value in (scalars or {}).items()
    )
    return body + _length_delimited(5, values)


def record(data: bytes) -> bytes:
    """TFRecord framing: length, its masked CRC, the data, its masked CRC."""
    length = struct.pack("<Q", len(data))
    return (
        length + struct.pack("<I", masked_crc(length)) + data + struct.pack("<I", masked_crc(data))
    )


class EventWriter:
    """One event file, appended record by record (flushed after each)."""

    def __init__(self, folder: str) -> None:
        os.makedirs(folder, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.kcompile"
        self.path = os.path.join(folder, name)
        with open(self.path, "wb") as f:
            f.write(record(event(time.time(), 0, version="brain.Event:2")))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        with open(self.path, "ab") as f:
            f.write(record(event(time.time(), step, values)))


class TensorBoard(Callback):
    """Scalars per epoch, Keras's names; histograms, images, graphs and profiling are not
    written (``histogram_freq`` and ``write_images`` are refused; ``write_graph`` is
    accepted and has nothing to write: the compiled step is in ``kcompile ir``)."""

    def __init__(
        self,
        log_dir: str = "logs",
        histogram_freq: int = 0,
        write_graph: bool = True,
        write_images: bool = False,
        write_steps_per_second: bool = False,
        update_freq: Any = "epoch",
        profile_batch: Any = 0,
        embeddings_freq: int = 0,
        embeddings_metadata: Any = None,
    ) -> None:
        super().__init__()
        if histogram_freq or write_images or embeddings_freq:
            raise NotImplementedError(
                "TensorBoard: histograms, images and embeddings are not written by kcompile "
                "(scalars are)"
            )
        if update_freq != "epoch":
            raise NotImplementedError("TensorBoard: update_freq='epoch' only")
        self.log_dir = os.fspath(log_dir)
        self._writers: dict[str, EventWriter] = {}

    def _writer(self, kind: str) -> EventWriter:
        if kind not in self._writers:
            self._writers[kind] = EventWriter(os.path.join(self.log_dir, kind))
        return self._writers[kind]

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        train = _with_learning_rates(train, getattr(self.model, "optimizer", None))
        self._writer("train").scalars(epoch, {f"epoch_{k}": float(v) for k, v in train.items()})
        validation = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
        if validation:
            scalars = {f"epoch_{k}": float(v) for k, v in validation.items()}
            self._writer("validation").scalars(epoch, scalars)


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def _fields(data: bytes):
    at = 0
    while at < len(data):
        key, at = _read_varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _read_varint(data, at)
        elif wire == 1:
            value, at = data[at : at + 8], at + 8
        elif wire == 5:
            value, at = data[at : at + 4], at + 4
        elif wire == 2:
            size, at = _read_varint(data, at)
            value, at = data[at : at + size], at + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, value


def read_events(path: str) -> list[dict]:
    """The events of a file: ``{"step", "wall_time", "scalars"}`` (or ``"file_version"``);
    a damaged record raises ``ValueError``."""
    with open(path, "rb") as f:
        data = f.read()
    events, at = [], 0
    while at < len(data):
        header = data[at : at + 8]
        (length,) = struct.unpack("<Q", header)
        (crc,) = struct.unpack("<I", data[at + 8 : at + 12])
        body = data[at + 12 : at + 12 + length]
        (body_crc,) = struct.unpack("<I", data[at + 12 + length : at + 16 + length])
        if crc != masked_crc(header) or body_crc != masked_crc(body):
            raise ValueError(f"{path}: a record at byte {at} fails its checksum")
        at += 16 + length
        out: dict = {"scalars": {}}
        for number, value in _fields(body):
            if number == 1:
                out["wall_time"] = struct.unpack("<d", value)[0]
            elif number == 2:
                out["step"] = value
            elif number == 3:
                out["file_version"] = value.decode()
            elif number == 5:
                for _, entry in _fields(value):
                    parts = dict(_fields(entry))
                    out["scalars"][parts[1].decode()] = struct.unpack("<f", parts[2])[0]
        events.append(out)
    return events


def _with_learning_rates(logs: dict, optimizer) -> dict:
    """``logs`` with the optimizer's rate, as Keras's TensorBoard collects it: a
    MultiOptimizer's as ``learning_rate_<name>`` for each inner optimizer."""
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer
    if optimizer is None:
        return logs
    if hasattr(optimizer, "optimizers"):
        rates = {f"learning_rate_{o.name}": o.learning_rate for o in optimizer.optimizers}
    else:
        rates = {"learning_rate": optimizer.learning_rate}
    return {**{k: float(np.float32(v)) for k, v in rates.items()}, **logs}
