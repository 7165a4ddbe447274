"""Helpers for fine-tuning a sentence-transformers embedding model for RAG retrieval: what the libraries lack.

Layers, lowest first (a module only imports the ones above it in this list):
``data`` -> ``split`` -> ``evaluation``, ``stats``, ``provenance`` -> ``training``, ``losses`` -> ``report`` ->
``config`` -> ``outputs``, ``search``, ``serve``, ``documents`` -> ``generate`` -> ``workflow`` (``cli`` is only for
``python -m ft_helpers``). ``serve`` needs the ``[serve]`` extra (onnx, onnxruntime) only when it exports or loads an
ONNX file; ``search`` imports faiss only when it builds or reads an index. ``documents`` needs pypdf only for a PDF,
and ``generate`` the ``openai`` client only when it sends requests (both in the ``[pairs]`` extra). ``losses`` and
``workflow`` import sentence-transformers when they are imported, so they are not imported here.
"""

from .config import RECIPES, Recipe, RunConfig
from .data import QADataError, load_qa_pairs, normalize_text, read_table, validate_qa_pairs
from .documents import Passage, read_documents, split_documents
from .evaluation import (
    PER_QUERY_METRICS,
    IRInputs,
    RetrievalResult,
    build_ir_inputs,
    check_evaluation_sizes,
    evaluate_retrieval,
    headline_metrics,
    score_dimensions,
    score_rankings,
)
from .generate import GenerationSettings, generate_pairs, parse_questions
from .provenance import collect_environment, collect_provenance, describe_data
from .report import (
    HEADLINE_METRICS,
    add_results_to_model_card,
    build_comparison_table,
    collect_results,
    describe_run,
    find_rank_changes,
    format_rank_change,
    plot_comparison,
    plot_dimensions,
    plot_training_curve,
    save_results,
    tabulate_rank_bands,
)
from .search import (
    build_passage_index,
    pick_calibration_passages,
    score_compressed,
    search_passages,
)
from .serve import export_encoder, load_encoder
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
    HardwareSettings,
    build_pair_dataset,
    check_batch_size,
    check_model_reference,
    chunk_passage,
    count_truncated,
    detect_hardware,
    pick_embedding_sizes,
    read_validation_curve,
    show_compact_progress,
)

__version__ = "0.2.0"

__all__ = [
    "HEADLINE_METRICS",
    "PER_QUERY_METRICS",
    "RECIPES",
    "GenerationSettings",
    "HardwareSettings",
    "IRInputs",
    "Passage",
    "QADataError",
    "Recipe",
    "RetrievalResult",
    "RunConfig",
    "add_results_to_model_card",
    "add_test_set",
    "build_comparison_table",
    "build_ir_inputs",
    "build_pair_dataset",
    "build_passage_index",
    "check_batch_size",
    "check_evaluation_sizes",
    "check_model_reference",
    "chunk_passage",
    "collect_environment",
    "collect_provenance",
    "collect_results",
    "compare_per_query",
    "count_truncated",
    "describe_data",
    "describe_run",
    "detect_hardware",
    "evaluate_retrieval",
    "export_encoder",
    "find_linked_groups",
    "find_rank_changes",
    "format_rank_change",
    "generate_pairs",
    "headline_metrics",
    "load_encoder",
    "load_qa_pairs",
    "normalize_text",
    "paired_bootstrap_ci",
    "paired_permutation_pvalue",
    "parse_questions",
    "pick_calibration_passages",
    "pick_embedding_sizes",
    "plot_comparison",
    "plot_dimensions",
    "plot_training_curve",
    "read_documents",
    "read_table",
    "read_validation_curve",
    "report_leakage",
    "save_results",
    "score_compressed",
    "score_dimensions",
    "score_rankings",
    "search_passages",
    "show_compact_progress",
    "split_documents",
    "split_grouped",
    "split_qa_pairs",
    "split_reference",
    "tabulate_rank_bands",
    "validate_qa_pairs",
]
