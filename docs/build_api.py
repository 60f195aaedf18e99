"""Writes docs/api.md from the public names' signatures and docstrings.

    python docs/build_api.py
"""

import importlib
import inspect
import pathlib
import re

MODULES = [
    ("keras_lottery.layers", ["MaskedLayer", "PrunableWeight",
                              "MaskedDense", "MaskedEinsumDense", "MaskedEmbedding",
                              "MaskedConv1D", "MaskedConv2D", "MaskedConv3D",
                              "MaskedConv1DTranspose", "MaskedConv2DTranspose",
                              "MaskedConv3DTranspose", "MaskedDepthwiseConv1D",
                              "MaskedDepthwiseConv2D", "MaskedSeparableConv1D",
                              "MaskedSeparableConv2D", "MaskedLSTM", "MaskedGRU",
                              "MaskedSimpleRNN", "MaskedConvLSTM1D", "MaskedConvLSTM2D",
                              "MaskedConvLSTM3D", "MaskedMultiHeadAttention",
                              "MaskedGroupQueryAttention"]),
    ("keras_lottery.conversion", ["prunable", "strip", "copy_model", "copy_variables"]),
    ("keras_lottery.pruning", ["magnitude_prune", "global_magnitude_prune", "score_prune",
                               "global_score_prune", "erk_densities", "random_prune",
                               "random_masks_like", "rates_for_densities", "prune_count",
                               "keep_count", "density", "PruneRates", "WeightInfo",
                               "validate_masks"]),
    ("keras_lottery.criteria", ["Criterion", "large_final", "large_init", "magnitude_increase",
                                "movement", "random_scores", "after_training_scores",
                                "inverted", "signed_constant"]),
    ("keras_lottery.saliency", ["snip_scores", "grasp_scores", "synflow_scores",
                                "scores_at_initialization", "prune_at_initialization"]),
    ("keras_lottery.autodiff", ["gradient", "hessian_gradient_product"]),
    ("keras_lottery.masks", ["get_weights", "set_weights", "get_masks", "apply_masks",
                             "masked_layers", "rates_for", "weight_infos", "layer_labels"]),
    ("keras_lottery.sparsity", ["sparsity_report", "SparsityReport", "unmasked_layers",
                                "unmasked_weights", "warn_unmasked"]),
    ("keras_lottery.ticket_search", ["TicketSearch"]),
    ("keras_lottery.search_config", ["SearchConfig", "check_settings", "fit_settings",
                                     "best_function"]),
    ("keras_lottery.search_checks", ["prepared_model", "check_plan", "check_monitor",
                                     "check_rewind_step", "check_fresh_initialization"]),
    ("keras_lottery.progress", ["Progress"]),
    ("keras_lottery.planning", ["iterative_masks", "one_shot_masks", "chosen_at",
                                "densities", "densities_at", "global_rate", "one_shot_floor"]),
    ("keras_lottery.training", ["Trainer", "FreshOptimizer", "check_exact_zeros", "seed_for"]),
    ("keras_lottery.run_directory", ["SearchStore", "RunDirectory", "MemoryDirectory",
                                     "load_result", "load_masks"]),
    ("keras_lottery.transfer", ["as_mask_sets", "check_alone", "full_mask_sets",
                                "fingerprint"]),
    ("keras_lottery.structures", ["Structure", "as_structure", "plan", "StructurePlan"]),
    ("keras_lottery.unit_groups", ["unit_groups", "UnitGroup", "Slice"]),
    ("keras_lottery.structured_pruning", ["structured_masks", "one_shot_structured",
                                          "random_structured_like", "remove_units",
                                          "alive_units", "unit_scores", "top_units",
                                          "pattern_prune", "start_units"]),
    ("keras_lottery.shrink", ["shrink", "shrink_report", "GroupReport"]),
    ("keras_lottery.early_bird", ["EarlyBird"]),
    ("keras_lottery.export", ["load_ticket", "export_ticket", "write_model_config"]),
    ("keras_lottery.run_lock", ["held", "RunBusyError"]),
    ("keras_lottery.resume", ["fingerprint", "differences", "explain", "first_difference",
                               "architecture", "data_fingerprint"]),
    ("keras_lottery.results", ["SearchResult", "RoundRecord"]),
    ("keras_lottery.aggregate", ["aggregate", "AggregateResult", "AggregateRecord", "Spread"]),
    ("keras_lottery.distribution", ["data_parallel", "describe", "batch_replicas",
                                    "check_supported", "check_batches", "tf_strategy"]),
    ("keras_lottery.state", ["snapshot", "restore", "fresh_initialization", "state_variables"]),
    ("keras_lottery.callbacks", ["PeriodicEvaluation", "CaptureState", "IterationCounter",
                                 "Reseed"]),
    ("keras_lottery.evaluation", ["evaluate"]),
    ("keras_lottery.speed", ["fast_compile_settings", "FASTEST_JIT_COMPILE"]),
    ("keras_lottery.schedules", ["LinearWarmup", "step_decay"]),
    ("keras_lottery.presets", ["Preset", "PRESETS", "get"]),
    ("keras_lottery.models", None),
    ("keras_lottery.datasets", None),
    ("keras_lottery.text", ["text_splits", "text_file", "jargon", "tiny_shakespeare",
                            "read_text", "Vocabulary", "TextSplits"]),
    ("keras_lottery.metrics", ["BitsPerCharacter", "Perplexity"]),
    ("keras_lottery.plots", ["accuracy_curves", "early_stop", "save_figures"]),
]


def entry(name, obj):
    if isinstance(obj, dict):
        return f"### `{name}`\n\n`{', '.join(sorted(obj))}`\n"
    try:
        # Default functions print with their address, which changes every run.
        signature = re.sub(r" at 0x[0-9a-f]+", "", str(inspect.signature(obj)))
    except (TypeError, ValueError):
        signature = ""
    doc = inspect.getdoc(obj) or ""
    lines = [f"### `{name}{signature}`", "", doc.split("\n\n")[0], ""]
    if inspect.isclass(obj):
        for method, member in vars(obj).items():
            if not method.startswith("_") and callable(member) and getattr(member, "__doc__", None):
                summary = inspect.getdoc(member).split("\n\n")[0].replace("\n", " ")
                lines.append(f"- `{method}`: {summary}")
        lines.append("")
    return "\n".join(lines)


def main():
    parts = ["# API reference", "",
             "Generated by `python docs/build_api.py` from the docstrings; the full text is in "
             "the source.", ""]
    for module_name, names in MODULES:
        module = importlib.import_module(module_name)
        parts += [f"## `{module_name}`", "", (inspect.getdoc(module) or "").split("\n\n")[0], ""]
        if names is None:
            names = [n for n in getattr(module, "__all__", dir(module)) if not n.startswith("_")
                     and getattr(getattr(module, n), "__module__", "").startswith(module_name)]
        for name in names:
            parts.append(entry(name, getattr(module, name)))
    path = pathlib.Path(__file__).with_name("api.md")
    path.write_text("\n".join(parts).rstrip() + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
