"""Dataset readers from local files (no downloads), transforms and batching.

``load_dataset("NAME[:PATH]", split)`` -> :class:`ArrayDataset`; ``list_datasets()``
lists the readers (see :mod:`.readers` for each one's layout and splits).
"""

from .cache import clear_cache
from .loader import augment_batch, batches
from .registry import (
    SPLITS,
    ArrayDataset,
    DatasetEntry,
    DatasetInfo,
    dataset_info,
    list_datasets,
    load_dataset,
    parse_spec,
    register_dataset,
    to_float,
)
from .safe_pickle import load_data_pickle
from .validate import DataWarning

__all__ = [
    "SPLITS",
    "ArrayDataset",
    "DataWarning",
    "DatasetEntry",
    "DatasetInfo",
    "augment_batch",
    "batches",
    "clear_cache",
    "dataset_info",
    "list_datasets",
    "load_data_pickle",
    "load_dataset",
    "parse_spec",
    "register_dataset",
    "to_float",
]
