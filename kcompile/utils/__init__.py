"""``keras.utils``: the Keras utilities kcompile provides, and kcompile's internal helpers
(atomic files, lazy attributes, the progress bar).

The public names are imported on first use, so that ``kcompile.utils.lazy`` (which
``import kcompile`` needs) does not bring in the plotting or data-loading code.
"""

from kcompile.utils.lazy import lazy_attributes

__getattr__ = lazy_attributes(
    __name__,
    {
        "PyDataset": "kcompile.trainers.batches:PyDataset",
        "Progbar": "kcompile.utils.progbar:Progbar",
        "clear_session": "kcompile.backend.session:clear_session",
        "get_file": "kcompile.utils.file_utils:get_file",
        "model_to_dot": "kcompile.tools.plot:model_to_dot",
        "normalize": "kcompile.utils.data_utils:normalize",
        "pad_sequences": "kcompile.utils.data_utils:pad_sequences",
        "plot_model": "kcompile.tools.plot:plot_model",
        "set_random_seed": "kcompile.backend.session:set_random_seed",
        "split_dataset": "kcompile.utils.data_utils:split_dataset",
        "to_categorical": "kcompile.utils.data_utils:to_categorical",
    },
)

__all__ = [
    "Progbar",
    "PyDataset",
    "clear_session",
    "get_file",
    "model_to_dot",
    "normalize",
    "pad_sequences",
    "plot_model",
    "set_random_seed",
    "split_dataset",
    "to_categorical",
]
