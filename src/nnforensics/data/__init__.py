"""Dataset readers from local files (no downloads), transforms and batching."""

from .loader import batches, augment_batch
from .registry import (
    ArrayDataset,
    DatasetInfo,
    dataset_info,
    list_datasets,
    load_dataset,
    parse_spec,
    register_dataset,
    to_float,
)

__all__ = [
    "ArrayDataset",
    "DatasetInfo",
    "augment_batch",
    "batches",
    "dataset_info",
    "list_datasets",
    "load_dataset",
    "parse_spec",
    "register_dataset",
    "to_float",
]
