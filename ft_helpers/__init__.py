"""Helpers for fine-tuning a sentence-transformers embedding model for RAG retrieval.

Layers, lowest first (a module only imports the ones above it in this list):
``data`` -> ``split`` -> ``evaluation``, ``stats`` -> ``losses``, ``training`` -> ``report`` -> ``config``,
``pipeline`` (``cli`` is only for ``python -m ft_helpers``). ``losses`` imports sentence-transformers when it is
imported, so it is not imported here: ``training.build_loss`` imports it when a recipe needs it.
"""

from .config import RECIPES, Recipe, RunConfig
from .data import QADataError, load_qa_pairs, normalize_text, read_table, validate_qa_pairs
from .evaluation import (
    PER_QUERY_METRICS,
    IRInputs,
    RetrievalResult,
    build_ir_evaluator,
    build_ir_inputs,
    encode_corpus,
    evaluate_retrieval,
    headline_metrics,
    score_dimensions,
    score_rankings,
)
from .pipeline import collect_results, run_pipeline
from .report import (
    HEADLINE_METRICS,
    build_comparison_table,
    find_rank_changes,
    format_rank_change,
    plot_comparison,
    plot_dimensions,
    plot_training_curve,
    save_results,
    tabulate_rank_bands,
)
from .split import (
    add_test_set,
    find_linked_groups,
    report_leakage,
    split_grouped,
    split_qa_pairs,
    split_reference,
)
from .stats import compare_per_query, paired_bootstrap_ci, paired_permutation_pvalue
from .training import (
    LOSSES,
    PRECISIONS,
    HardwareSettings,
    add_hard_negatives,
    build_loss,
    build_pair_dataset,
    check_batch_size,
    check_model_reference,
    chunk_passage,
    collect_environment,
    count_truncated,
    detect_hardware,
    load_base_model,
    name_loss,
    pick_embedding_sizes,
)

__version__ = "0.1.0"

__all__ = [
    "HEADLINE_METRICS",
    "LOSSES",
    "PER_QUERY_METRICS",
    "PRECISIONS",
    "RECIPES",
    "HardwareSettings",
    "IRInputs",
    "QADataError",
    "Recipe",
    "RetrievalResult",
    "RunConfig",
    "add_hard_negatives",
    "add_test_set",
    "build_comparison_table",
    "build_ir_evaluator",
    "build_ir_inputs",
    "build_loss",
    "build_pair_dataset",
    "check_batch_size",
    "check_model_reference",
    "chunk_passage",
    "collect_environment",
    "collect_results",
    "compare_per_query",
    "count_truncated",
    "detect_hardware",
    "encode_corpus",
    "evaluate_retrieval",
    "find_linked_groups",
    "find_rank_changes",
    "format_rank_change",
    "headline_metrics",
    "load_base_model",
    "load_qa_pairs",
    "name_loss",
    "normalize_text",
    "paired_bootstrap_ci",
    "paired_permutation_pvalue",
    "pick_embedding_sizes",
    "plot_comparison",
    "plot_dimensions",
    "plot_training_curve",
    "read_table",
    "report_leakage",
    "run_pipeline",
    "save_results",
    "score_dimensions",
    "score_rankings",
    "split_grouped",
    "split_qa_pairs",
    "split_reference",
    "tabulate_rank_bands",
    "validate_qa_pairs",
]
