"""``keras.preprocessing``: Keras's namespace re-exporting the dataset builders of
``keras.utils`` (``image_dataset_from_directory``, ``text_dataset_from_directory``,
``timeseries_dataset_from_array``), with ``preprocessing.image`` (the image file
utilities) and ``preprocessing.sequence`` (``pad_sequences``)."""

from kcompile.utils.lazy import lazy_attributes

__getattr__ = lazy_attributes(
    __name__,
    {
        "image": "kcompile.preprocessing.image",
        "sequence": "kcompile.preprocessing.sequence",
        "image_dataset_from_directory": (
            "kcompile.utils.image_dataset_utils:image_dataset_from_directory"
        ),
        "text_dataset_from_directory": (
            "kcompile.utils.text_dataset_utils:text_dataset_from_directory"
        ),
        "timeseries_dataset_from_array": (
            "kcompile.utils.timeseries_dataset_utils:timeseries_dataset_from_array"
        ),
    },
)

__all__ = [
    "image",
    "image_dataset_from_directory",
    "sequence",
    "text_dataset_from_directory",
    "timeseries_dataset_from_array",
]
