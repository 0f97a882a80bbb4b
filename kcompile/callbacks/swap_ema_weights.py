"""Keras's ``SwapEMAWeights``: evaluate (and predict, and optionally checkpoint at the
end of each epoch) with the moving averages of the weights that an optimizer with
``use_ema=True`` keeps, training going on with the raw weights.

kcompile's optimizers keep the average of each trainable weight in their ``average``
slot (``Optimizer.all_slots``); the swap exchanges those arrays with the weights' in
place, so the compiled steps, which are bound to both, see it without recompiling.
"""

from __future__ import annotations

import numpy as np

from kcompile.callbacks.callback import Callback


class SwapEMAWeights(Callback):
    """Swaps the model's weights and their moving averages around evaluation and
    prediction (and, with ``swap_on_epoch``, around the end of each epoch, so that
    ``ModelCheckpoint`` after it saves the averages)."""

    def __init__(self, swap_on_epoch: bool = False) -> None:
        super().__init__()
        self.swap_on_epoch = swap_on_epoch
        self._ema_weights_in_model = False

    def _pairs(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(weight, its average) arrays of the model's trainable weights; under a
        MultiOptimizer, of those its inner optimizers with ``use_ema`` update (Keras's)."""
        optimizer = self.model.optimizer
        optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer
        variables = self.model.trainable_weights
        if hasattr(optimizer, "optimizers"):  # a MultiOptimizer
            if not any(getattr(opt, "use_ema", False) for opt in optimizer.optimizers):
                raise ValueError(
                    "SwapEMAWeights must be used when at least one inner optimizer has "
                    "`use_ema=True` set. Received a MultiOptimizer with all inner "
                    "optimizers having `use_ema=False`."
                )
            optimizer.build(variables)
            averaged = [
                (v, opt)
                for opt in optimizer.optimizers
                if opt.use_ema
                for v in optimizer.variables_of(opt)
            ]
        else:
            if not getattr(optimizer, "use_ema", False):
                raise ValueError(
                    "SwapEMAWeights must be used when `use_ema=True` is set on the optimizer. "
                    f"Received: use_ema={getattr(optimizer, 'use_ema', False)}"
                )
            optimizer.build(variables)
            averaged = [(v, optimizer) for v in variables]
        return [(v.value, opt.slots[opt.slot_path(v, "average")]) for v, opt in averaged]

    def _swap_variables(self) -> None:
        for weight, average in self._pairs():
            held = weight.copy()
            np.copyto(weight, average)
            np.copyto(average, held)

    def _finalize_ema_values(self) -> None:
        """The averages set to the weights now in the model (the averages, swapped in),
        so that fit's end, which puts the averages into the model, keeps them."""
        for weight, average in self._pairs():
            np.copyto(average, weight)

    def on_epoch_begin(self, epoch, logs=None):
        if self.swap_on_epoch and self._ema_weights_in_model:
            self._swap_variables()
            self._ema_weights_in_model = False

    def on_epoch_end(self, epoch, logs=None):
        if self.swap_on_epoch and not self._ema_weights_in_model:
            self._swap_variables()
            self._ema_weights_in_model = True
            if epoch == self.params["epochs"] - 1:
                self._finalize_ema_values()

    def on_test_begin(self, logs=None):
        if not self._ema_weights_in_model:
            self._swap_variables()
            self._ema_weights_in_model = True

    def on_test_end(self, logs=None):
        if self._ema_weights_in_model:
            self._swap_variables()
            self._ema_weights_in_model = False

    def on_predict_begin(self, logs=None):
        if not self._ema_weights_in_model:
            self._swap_variables()
            self._ema_weights_in_model = True

    def on_predict_end(self, logs=None):
        # Keras 3.15's condition, kept as Keras has it: after predict the averages stay
        # in the model.
        if not self._ema_weights_in_model:
            self._swap_variables()
            self._ema_weights_in_model = False
