import os
import sys

import numpy as np
import pytest

# The suite starts hundreds of Python processes (MPI ranks, the command line, artifacts'
# programs, fresh venvs). Where bytecode writing is off (PYTHONDONTWRITEBYTECODE, set on
# some machines), each compiled kcompile's sources again (0.6 s a process) and each
# pytest worker rewrote every test module's asserts again (7 s): the suite keeps Python's
# default, bytecode cached in __pycache__, for itself and what it starts.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

# Under pytest-xdist with a worker per core, a model compiled in one process per core
# (codegen.building.jobs) only oversubscribes the cores the other workers hold: the parity and
# example modules ran 102.8 s (user 187 s, sys 7.1 s) against 92.2 s (user 172 s, sys 2.1
# s) with one process per compile (`-n 2`, cold cache, 2-core AMD EPYC). The split path
# keeps its own tests (tests/test_compile_jobs.py sets the count it tests).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
_CORES = os.cpu_count() or 1
if _WORKERS >= _CORES:
    os.environ.setdefault("KCOMPILE_COMPILE_JOBS", "1")

# The checking mode (every buffer between guard zones, checked after every kernel:
# kcompile.runtime.guarded) for the modules that run compiled kernels of every kind end to
# end; the fuzzer's cases run with it too. It costs a fifth more LLVM time on a model (the
# example CNN's train step: 1.5 s against 1.2; twice as much while LLVM inlined the check
# after every kernel), so the layer and op families' own tests (compared with the
# reference interpreter either way) leave it off, to keep the suite within its time.
CHECKED_MODULES = {
    "test_memory_check",
    "test_ops",
    "test_codegen_ops",
    "test_training",
    "test_backends",
    "test_conv_layers",
    "test_recurrent",
    "test_custom_train_step",
    "test_fuzz",
}


# Every graph is verified after every pass (always, not only in tests). In these modules
# every stage must also print and parse back to an equal graph (KCOMPILE_VERIFY): the ones
# whose models reach every op and attribute the IR prints (the fuzzer's random models and
# graphs, the op and layer families run end to end, the narrow dtypes) and the IR's own.
# The round trip was a third of a model's cold compile (parsing 60 stages of 10,000
# lines), so the suite's other modules, which compile the same ops again, leave it off;
# `KCOMPILE_VERIFY=1 python -m pytest` round-trips everywhere.
ROUND_TRIP_MODULES = CHECKED_MODULES | {
    "test_ir_text",
    "test_dumps",
    "test_golden",
    "test_narrow",
    "test_narrow_dtypes",
    "test_narrow_floats",
    "test_mixed_precision",
    "test_layers_core_extra",
    "test_image_augmentation_extra",
}


@pytest.fixture(autouse=True, scope="module")
def _round_trip_mode(request):
    # Module-scoped, so that a module's own module-scoped fixtures compile under it too.
    chosen = os.environ.get("KCOMPILE_VERIFY") is not None  # by whoever runs the suite
    with pytest.MonkeyPatch.context() as mp:
        if not chosen and request.module.__name__.rpartition(".")[2] in ROUND_TRIP_MODULES:
            mp.setenv("KCOMPILE_VERIFY", "1")
        yield


@pytest.fixture(autouse=True)
def _checking_mode(request, monkeypatch):
    if os.environ.get("KCOMPILE_CHECK") is not None:
        return  # chosen by whoever runs the suite (KCOMPILE_CHECK=1 for all of it)
    if request.module.__name__.rpartition(".")[2] in CHECKED_MODULES:
        monkeypatch.setenv("KCOMPILE_CHECK", "1")


# The quick tier (`-m "not slow"`, for working in a loop) leaves out the tests marked slow
# in place and these: each took 2.4 s or more in a cold-cache run of the quick tier on 2
# cores (`python -m pytest -q -n auto -m "not slow" --durations=0`). What they check is
# also checked, on smaller models, by tests the quick tier keeps; the full suite runs all.
SLOW_IN_THE_QUICK_TIER = {
    "tests/test_artifact.py::test_cli_build_info_run",
    "tests/test_artifact.py::test_manifest_describes_the_artifact",
    "tests/test_artifact.py::test_object_code_when_no_linker",
    "tests/test_artifact.py::test_portable_cpu_levels",
    "tests/test_backends.py::test_five_train_steps_match[two_inputs_rmsprop]",
    "tests/test_bad_input.py::test_loaded_artifacts_refuse_them_too",
    "tests/test_batch_data.py::test_a_py_dataset_trains_like_the_same_batches_of_arrays",
    "tests/test_cli_errors.py::test_ctrl_c_while_run_loads_its_data_exits_130",
    "tests/test_codegen_target.py::test_dumps_of_llvm_ir_and_assembly",
    "tests/test_compile_cache.py::test_the_runtime_library_builds_in_a_child_while_the_model_compiles",
    "tests/test_compile_jobs.py::test_training_compiled_in_two_processes_matches_one_bit_for_bit[0]",
    "tests/test_compile_jobs.py::test_training_compiled_in_two_processes_matches_one_bit_for_bit[1]",
    "tests/test_concurrency.py::test_concurrent_predict_and_evaluate_match_serial_results[artifact]",
    "tests/test_conv_layers.py::test_compiled_train_steps_match_reference[cnn]",
    "tests/test_custom_train_step.py::test_a_custom_train_step_trains_as_keras_does[stateless]",
    "tests/test_custom_train_step.py::test_a_custom_train_step_trains_as_keras_does[tape]",
    "tests/test_custom_train_step.py::test_a_vae_holding_its_models_trains_and_its_trackers_read_what_fit_reported",
    "tests/test_custom_train_step.py::test_state_tree_round_trip_and_train_function",
    "tests/test_custom_train_step.py::test_the_default_steps_written_with_the_api_match_the_built_in_ones",
    "tests/test_conv_layers.py::test_compiled_train_steps_match_reference[conv1d]",
    "tests/test_conv_layers.py::test_compiled_train_steps_match_reference[transpose]",
    "tests/test_custom_layers.py::test_lambda_layers_custom_losses_and_loss_subclasses",
    "tests/test_custom_layers.py::test_native_and_reference_agree_on_custom_layers",
    "tests/test_custom_layers.py::test_siamese_network_as_the_keras_example_writes_it",
    "tests/test_datasets_cli.py::test_cli_ir_any_stage_all_and_dot",
    "tests/test_datasets_cli.py::test_cli_memory_and_check",
    "tests/test_distribution.py::test_a_checkpoint_from_two_ranks_resumes_in_one_process_and_in_two",
    "tests/test_distribution.py::test_kcompile_run_trains_an_artifact_data_parallel_and_resumes_with_any_ranks",
    "tests/test_distribution.py::test_two_ranks_train_as_one_process_on_the_global_batch[batchnorm]",
    "tests/test_distribution.py::test_two_ranks_train_as_one_process_on_the_global_batch[plain]",
    "tests/test_distribution.py::test_two_ranks_train_as_one_process_on_the_global_batch[short]",
    "tests/test_downloads.py::test_cifar10_extracts_its_archive_once",
    "tests/test_dumps.py::test_example_and_cli_write_the_tree_kcompile_dump_writes",
    "tests/test_dumps.py::test_kcompile_dump_writes_every_step_complete_also_on_a_cache_hit",
    "tests/test_dynamic_shapes.py::test_bidirectional_lstm_on_reviews_as_the_keras_example_writes_it",
    "tests/test_dynamic_shapes.py::test_export_of_a_dynamic_model_compiles_for_its_probe",
    "tests/test_dynamic_shapes.py::test_native_and_reference_agree_at_two_lengths",
    "tests/test_dynamic_shapes.py::test_steps_specialize_on_the_data_and_compile_again_for_new_shapes",
    "tests/test_examples_custom.py::test_the_subclassed_model_example_separates_the_rings",
    "tests/test_fusion_regressions.py::test_trains_like_the_reference[16-conv_leaky_subtract]",
    "tests/test_fusion_regressions.py::test_trains_like_the_reference[16-conv_relu_then_padding]",
    "tests/test_fusion_regressions.py::test_trains_like_the_reference[16-minimum_merge]",
    "tests/test_fusion_regressions.py::test_trains_like_the_reference[32-vector_batchnorm_concatenated]",
    "tests/test_fusion_regressions.py::test_trains_like_the_reference[32-vector_batchnorm_without_center]",
    "tests/test_fuzz.py::test_mutated_dumps_give_located_parse_errors_only",
    "tests/test_fuzz.py::test_random_model_matches_the_reference[0]",
    "tests/test_fuzz.py::test_random_model_matches_the_reference[1]",
    "tests/test_keras_files.py::test_a_kcompile_keras_file_round_trips_with_its_optimizer",
    "tests/test_keras_files.py::test_a_keras_file_from_keras_predicts_kerass_numbers[custom_layers]",
    "tests/test_keras_files.py::test_a_keras_file_from_keras_predicts_kerass_numbers[nadam_ema]",
    "tests/test_keras_files.py::test_a_keras_file_from_keras_predicts_kerass_numbers[sequence_model]",
    "tests/test_keras_files.py::test_a_keras_file_from_keras_predicts_kerass_numbers[subclassed_file]",
    "tests/test_keras_files.py::test_a_users_layers_round_trip_and_need_their_classes",
    "tests/test_keras_files.py::test_model_checkpoint_writes_keras_files",
    "tests/test_keras_parity.py::test_kcompile_gives_kerass_numbers[confusion_metrics]",
    "tests/test_keras_parity.py::test_kcompile_gives_kerass_numbers[conv_bn]",
    "tests/test_keras_parity.py::test_kcompile_gives_kerass_numbers[custom_mlp]",
    "tests/test_keras_parity.py::test_kcompile_gives_kerass_numbers[masked_attention]",
    "tests/test_keras_parity.py::test_kcompile_gives_kerass_numbers[masked_tagger]",
    "tests/test_keras_parity.py::test_kcompile_gives_kerass_numbers[masking_layer]",
    "tests/test_keras_parity.py::test_kcompile_gives_kerass_numbers[ops_attention]",
    "tests/test_lookup_layers.py::test_a_model_with_text_input_runs_its_vectorizer_on_the_host",
    "tests/test_masking.py::test_both_backends_train_a_masked_model_alike[llvm]",
    "tests/test_metrics_confusion.py::test_an_artifact_computes_them_as_the_model_does",
    "tests/test_metrics_confusion.py::test_exporting_a_users_metric_is_refused_naming_it",
    "tests/test_metrics_confusion.py::test_fit_and_evaluate_report_what_the_metrics_give_on_the_predictions",
    "tests/test_more_layers.py::test_native_and_reference_agree_on_the_new_layers",
    "tests/test_packaging.py::test_the_wheel_holds_one_top_level_package",
    "tests/test_recurrent.py::test_compiled_train_steps_match_reference[gru]",
    "tests/test_recurrent.py::test_text_classifier_example_learns",
    "tests/test_training.py::test_functional_two_inputs_concat_residual",
    "tests/test_recurrent_state.py::test_compiled_training_with_dropout_matches_the_reference[GRU]",
    "tests/test_recurrent_state.py::test_compiled_training_with_dropout_matches_the_reference[LSTM]",
    "tests/test_recurrent_state.py::test_gradients_through_user_and_stacked_cells",
    "tests/test_recurrent_state.py::test_gradients_flow_through_initial_states[GRU]",
    "tests/test_recurrent_state.py::test_bidirectional_keeps_working_with_dropout",
    "tests/test_recurrent_state.py::test_states_and_cells_match_keras[bidirectional_concat]",
    "tests/test_recurrent_state.py::test_states_and_cells_match_keras[user_cell]",
    "tests/test_activations_api.py::test_compiled_activations_match_keras",
    "tests/test_artifact.py::test_loaded_model_matches_the_model_it_was_built_from",
    "tests/test_backends.py::test_five_train_steps_match[mlp_softmax_adam]",
    "tests/test_batch_data.py::test_generators_with_weights_named_inputs_and_steps_per_epoch",
    "tests/test_distribution.py::test_mpiexec_without_a_distribution_warns_each_rank",
    "tests/test_distribution.py::test_rank_0s_early_stopping_stops_every_rank",
    "tests/test_dynamic_shapes.py::test_a_recurrent_model_over_sequences_of_any_length",
    "tests/test_fuzz.py::test_random_graph_matches_float64_and_differences[4]",
    "tests/test_keras_parity.py::test_kcompile_gives_kerass_numbers[subclassed]",
    "tests/test_masking.py::test_both_backends_train_a_masked_model_alike[reference]",
    "tests/test_metrics_confusion.py::test_the_epoch_loop_records_vector_statistics_element_by_element",
    "tests/test_more_layers.py::test_noise_statistics_in_training",
    "tests/test_ops_numpy_api.py::test_traced_compiles_and_matches_keras[inv]",
    "tests/test_optimizers_api.py::test_update_rule_matches_keras[adafactor-None]",
    "tests/test_optimizers_api.py::test_update_rule_matches_keras[adafactor_absolute_step-None]",
    "tests/test_optimizers_api.py::test_update_rule_matches_keras[adafactor_options-None]",
    "tests/test_recurrent_state.py::test_compiled_training_with_dropout_matches_the_reference[SimpleRNN]",
}


def pytest_collection_modifyitems(items):
    for item in items:
        if item.nodeid in SLOW_IN_THE_QUICK_TIER:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _fresh_session():
    import kcompile

    kcompile.backend.clear_session()
    kcompile.utils.set_random_seed(1234)
    # A failing test shows kcompile's own frames (tests/test_errors.py turns the user's
    # filtering back on).
    kcompile.config.disable_traceback_filtering()
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    """The test run with the pool on 1 and on 2 threads (the thread count)."""
    from tests.threads import on_threads

    with on_threads(request.param):
        yield request.param
