"""``keras.utils``: the Keras utilities kcompile provides, and kcompile's internal helpers
(atomic files, lazy attributes, the progress bar).

The public names are imported on first use, so that ``kcompile.utils.lazy`` (which
``import kcompile`` needs) does not bring in the plotting or data-loading code.
"""

from kcompile.utils.lazy import lazy_attributes
from kcompile.utils.unoffered import refuse

_lazy = lazy_attributes(
    __name__,
    {
        "Config": "kcompile.utils.config:Config",
        "CustomObjectScope": "kcompile.saving.object_registration:CustomObjectScope",
        "FeatureSpace": "kcompile.utils.feature_space:FeatureSpace",
        "Progbar": "kcompile.utils.progbar:Progbar",
        "PyDataset": "kcompile.trainers.batches:PyDataset",
        "array_to_img": "kcompile.utils.image_utils:array_to_img",
        "audio_dataset_from_directory": (
            "kcompile.utils.audio_dataset_utils:audio_dataset_from_directory"
        ),
        "image_dataset_from_directory": (
            "kcompile.utils.image_dataset_utils:image_dataset_from_directory"
        ),
        "img_to_array": "kcompile.utils.image_utils:img_to_array",
        "load_img": "kcompile.utils.image_utils:load_img",
        "save_img": "kcompile.utils.image_utils:save_img",
        "text_dataset_from_directory": (
            "kcompile.utils.text_dataset_utils:text_dataset_from_directory"
        ),
        "timeseries_dataset_from_array": (
            "kcompile.utils.timeseries_dataset_utils:timeseries_dataset_from_array"
        ),
        "Sequence": "kcompile.trainers.batches:PyDataset",  # Keras 3's alias
        "clear_session": "kcompile.backend.session:clear_session",
        "custom_object_scope": "kcompile.saving.object_registration:custom_object_scope",
        "deserialize_keras_object": "kcompile.saving.serialization_lib:deserialize_keras_object",
        "disable_interactive_logging": "kcompile.config:disable_interactive_logging",
        "enable_interactive_logging": "kcompile.config:enable_interactive_logging",
        "get_custom_objects": "kcompile.saving.object_registration:get_custom_objects",
        "get_file": "kcompile.utils.file_utils:get_file",
        "get_registered_name": "kcompile.saving.object_registration:get_registered_name",
        "get_registered_object": "kcompile.saving.object_registration:get_registered_object",
        "get_source_inputs": "kcompile.utils.tensor_utils:get_source_inputs",
        "is_interactive_logging_enabled": "kcompile.config:is_interactive_logging_enabled",
        "is_keras_tensor": "kcompile.utils.tensor_utils:is_keras_tensor",
        "model_to_dot": "kcompile.tools.plot:model_to_dot",
        "normalize": "kcompile.utils.data_utils:normalize",
        "pack_x_y_sample_weight": "kcompile.utils.tensor_utils:pack_x_y_sample_weight",
        "pad_sequences": "kcompile.utils.data_utils:pad_sequences",
        "plot_model": "kcompile.tools.plot:plot_model",
        "register_keras_serializable": (
            "kcompile.saving.object_registration:register_keras_serializable"
        ),
        "serialize_keras_object": "kcompile.saving.serialization_lib:serialize_keras_object",
        "set_random_seed": "kcompile.backend.session:set_random_seed",
        "split_dataset": "kcompile.utils.data_utils:split_dataset",
        "standardize_dtype": "kcompile.backend.dtypes:standardize_dtype",
        "to_categorical": "kcompile.utils.data_utils:to_categorical",
        "unpack_x_y_sample_weight": "kcompile.utils.tensor_utils:unpack_x_y_sample_weight",
    },
)


def __getattr__(name: str):
    try:
        return _lazy(name)
    except AttributeError:
        refuse("utils", name)


__all__ = [
    "Config",
    "CustomObjectScope",
    "FeatureSpace",
    "Progbar",
    "PyDataset",
    "Sequence",
    "array_to_img",
    "audio_dataset_from_directory",
    "clear_session",
    "custom_object_scope",
    "deserialize_keras_object",
    "disable_interactive_logging",
    "enable_interactive_logging",
    "get_custom_objects",
    "get_file",
    "get_registered_name",
    "get_registered_object",
    "get_source_inputs",
    "image_dataset_from_directory",
    "img_to_array",
    "is_interactive_logging_enabled",
    "is_keras_tensor",
    "load_img",
    "model_to_dot",
    "normalize",
    "pack_x_y_sample_weight",
    "pad_sequences",
    "plot_model",
    "register_keras_serializable",
    "save_img",
    "serialize_keras_object",
    "set_random_seed",
    "split_dataset",
    "standardize_dtype",
    "text_dataset_from_directory",
    "timeseries_dataset_from_array",
    "to_categorical",
    "unpack_x_y_sample_weight",
]
