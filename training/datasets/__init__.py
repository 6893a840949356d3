"""Dataset building: SFT and GRPO datasets from recorded episodes, with filters, scrubbing, dedup and mixing."""

from training.datasets.build import BuiltDataset, GRPOOptions, SFTOptions, build_grpo, build_sft, save_dataset
from training.datasets.filters import FilterConfig
from training.datasets.mixing import parse_proportions
from training.datasets.report import DatasetReport

__all__ = [
    "BuiltDataset",
    "DatasetReport",
    "FilterConfig",
    "GRPOOptions",
    "SFTOptions",
    "build_grpo",
    "build_sft",
    "parse_proportions",
    "save_dataset",
]
