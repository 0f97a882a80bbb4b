"""Callback, CallbackList, History and ProgbarLogger (Keras's hooks and order)."""

from __future__ import annotations

from typing import Any

from kcompile.utils.progbar import Progbar


class Callback:
    def __init__(self) -> None:
        self.model = None
        self.params: dict[str, Any] = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_train_batch_begin(self, batch, logs=None): ...
    def on_train_batch_end(self, batch, logs=None): ...
    def on_test_begin(self, logs=None): ...
    def on_test_end(self, logs=None): ...
    def on_test_batch_begin(self, batch, logs=None): ...
    def on_test_batch_end(self, batch, logs=None): ...
    def on_predict_begin(self, logs=None): ...
    def on_predict_end(self, logs=None): ...
    def on_predict_batch_begin(self, batch, logs=None): ...
    def on_predict_batch_end(self, batch, logs=None): ...


class History(Callback):
    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None):
        self.epoch = []
        self.model.history = self  # fit(epochs=0) returns this, empty, as Keras's does

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)
        self.model.history = self


class ProgbarLogger(Callback):
    def __init__(self) -> None:
        super().__init__()
        self.progbar: Progbar | None = None
        self._shown = -1
        self.seen = 0
        self.in_fit = False
        self.testing = False  # inside evaluate, or validation inside fit

    def set_params(self, params):
        super().set_params(params)
        self.verbose = params["verbose"]
        self.epochs = params["epochs"]
        self.target = params["steps"]

    def _new_bar(self):
        self.seen = 0
        self._shown = -1  # the step count ``show`` drew last
        self.progbar = Progbar(self.target, verbose=self.verbose)

    def on_train_begin(self, logs=None):
        self.in_fit = True  # validation inside fit is silent

    def on_epoch_begin(self, epoch, logs=None):
        self._new_bar()
        if self.verbose and self.epochs > 1:
            print(f"Epoch {epoch + 1}/{self.epochs}", flush=True)

    def on_train_batch_end(self, batch, logs=None):
        self._update(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._finalize(logs)

    def on_test_begin(self, logs=None):
        self.testing = True
        if not self.in_fit:
            self._new_bar()

    def on_test_batch_end(self, batch, logs=None):
        if not self.in_fit:
            self._update(batch, logs)

    def on_test_end(self, logs=None):
        self.testing = False
        if not self.in_fit:
            self._finalize(logs)

    def on_predict_begin(self, logs=None):
        self._new_bar()

    def on_predict_batch_end(self, batch, logs=None):
        self._update(batch, None)

    def on_predict_end(self, logs=None):
        self._finalize(None)

    def show(self, seen: int, logs: dict | None = None) -> None:
        """The bar at ``seen`` steps while a loop runs: with ``logs``, the running loss
        and metrics so far (as ``on_train_batch_end`` would have shown them), else the
        values it last had.

        Drawn only when the count moved: a slow step would otherwise write the same line
        every interval."""
        if seen == self._shown:
            return
        if self.verbose == 1 and self.progbar is not None and not (self.in_fit and self.testing):
            self._shown = seen
            self.progbar.update(seen, list((logs or {}).items()), finalize=False)

    def _update(self, batch, logs):
        self.seen = batch + 1
        if self.verbose == 1:
            self.progbar.update(self.seen, list((logs or {}).items()), finalize=False)

    def _finalize(self, logs):
        if self.target is None:
            self.target = self.progbar.target = self.seen
        self.progbar.update(self.target, list((logs or {}).items()), finalize=True)


class CallbackList(Callback):
    def __init__(
        self,
        callbacks=None,
        model=None,
        add_history: bool = False,
        add_progbar: bool = False,
        **params: Any,
    ) -> None:
        super().__init__()
        self.callbacks = list(callbacks or [])
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be keras Callback objects, got {cb!r}")
        if add_history and not any(isinstance(c, History) for c in self.callbacks):
            self.callbacks.append(History())
        if add_progbar and not any(isinstance(c, ProgbarLogger) for c in self.callbacks):
            self.callbacks.append(ProgbarLogger())
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(params)

    def has_batch_hooks(self, mode: str) -> bool:
        """Whether a callback besides History and the progress bar overrides
        ``on_{mode}_batch_begin`` or ``on_{mode}_batch_end``."""
        hooks = (f"on_{mode}_batch_begin", f"on_{mode}_batch_end")
        return any(
            getattr(getattr(cb, hook), "__func__", None) is not getattr(Callback, hook)
            for cb in self.callbacks
            if not isinstance(cb, History | ProgbarLogger)
            for hook in hooks
        )

    def resume_epoch(self) -> int | None:
        """After ``on_train_begin``: the epoch fit goes on from when a callback restored
        a run (its ``resume_epoch``, as BackupAndRestore sets it), else None."""
        found = [getattr(cb, "resume_epoch", None) for cb in self.callbacks]
        epochs = [e for e in found if isinstance(e, int) and not isinstance(e, bool)]
        return max(epochs) if epochs else None

    def show_progress(self, seen: int, logs: dict | None = None) -> None:
        """Redraw the progress bar at ``seen`` steps while a native loop runs, with the
        epoch's running ``logs`` so far when the loop's rows could be read."""
        for cb in self.callbacks:
            if isinstance(cb, ProgbarLogger):
                cb.show(seen, logs)

    def _call(self, hook: str, *args) -> None:
        # Keras hands every hook a logs dict, an empty one where there is nothing to say
        args = (*args[:-1], {} if args[-1] is None else args[-1])
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._call("on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._call("on_train_batch_end", batch, logs)

    def on_test_begin(self, logs=None):
        self._call("on_test_begin", logs)

    def on_test_end(self, logs=None):
        self._call("on_test_end", logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._call("on_test_batch_begin", batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        self._call("on_test_batch_end", batch, logs)

    def on_predict_begin(self, logs=None):
        self._call("on_predict_begin", logs)

    def on_predict_end(self, logs=None):
        self._call("on_predict_end", logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._call("on_predict_batch_begin", batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._call("on_predict_batch_end", batch, logs)
