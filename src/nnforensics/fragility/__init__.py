"""Synaptic filtering (InferLink): which weights and layers are fragile, robust or antifragile."""

from .analysis import ADVERSARIAL_MODES, GLOBAL_TARGET, FilterRun, Target, filter_targets, run_filter
from .filters import DEFAULT_THRESHOLDS, FILTERS, MAGNITUDE_FILTERS, SCOPES, removal_mask, threshold_sweep
from .scores import DEFAULT_TOLERANCE, RULE, VERDICTS, layer_verdicts, score_table

__all__ = ["ADVERSARIAL_MODES", "DEFAULT_THRESHOLDS", "DEFAULT_TOLERANCE", "FILTERS", "FilterRun", "GLOBAL_TARGET",
           "MAGNITUDE_FILTERS", "RULE", "SCOPES", "Target", "VERDICTS", "filter_targets", "layer_verdicts",
           "removal_mask", "run_filter", "score_table", "threshold_sweep"]
