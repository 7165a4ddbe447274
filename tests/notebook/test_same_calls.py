"""The notebook and ft_helpers.workflow make the same library calls with the same settings.

The notebook writes ``EVAL_BATCH_SIZE`` where the workflow writes ``config.eval_batch_size``; variable names may
differ (``base_model`` there, ``model`` here), but every setting passed as a parameter, a recipe or hardware field
or a literal must be the same, keyword by keyword.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict

import pytest
from conftest import ROOT
from notebook_cells import code_cells

#: The calls that must match: sentence-transformers' constructors and the helpers the steps are made of.
CALLS = (
    "load_qa_pairs",
    "add_test_set",
    "split_qa_pairs",
    "build_ir_inputs",
    "check_evaluation_sizes",
    "InformationRetrievalEvaluator",
    "encode_document",
    "evaluate_retrieval",
    "build_pair_dataset",
    "check_batch_size",
    "SentenceTransformerModelCardData",
    "SortedCachedMultipleNegativesRankingLoss",
    "CachedMultipleNegativesRankingLoss",
    "SortedMultipleNegativesRankingLoss",
    "MultipleNegativesRankingLoss",
    "MatryoshkaLoss",
    "pick_embedding_sizes",
    "SentenceTransformerTrainingArguments",
    "SentenceTransformerTrainer",
    "show_compact_progress",
    "compare_per_query",
    "score_dimensions",
    "pick_calibration_passages",
    "score_compressed",
    "add_results_to_model_card",
)


def callee(node: ast.Call) -> str:
    return node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")


def normalize(text: str) -> str:
    """``config.eval_batch_size`` -> ``EVAL_BATCH_SIZE``, so the two spellings of a parameter compare equal."""
    return re.sub(r"\bconfig\.(\w+)", lambda match: match.group(1).upper(), text)


def is_setting(text: str) -> bool:
    """Whether an argument is a setting (a parameter, a recipe or hardware field, a literal), not a variable."""
    try:
        ast.literal_eval(text)
        return True
    except (ValueError, SyntaxError):
        return bool(re.search(r"\b[A-Z][A-Z_]+\b|\brecipe\.|\bhardware\.", text)) or text.startswith(("f'", 'f"'))


#: Keywords only the workflow passes: the command line's --skip-bad-rows (a notebook reader adds skip_bad_rows=True
#: to the call when the error asks for it), and what the messages call each file (DATASET or TEST_DATASET).
WORKFLOW_ONLY_KEYWORDS = {"load_qa_pairs": {"skip_bad_rows", "name", "column_advice"}}


def signatures(source: str) -> dict[str, list[tuple]]:
    """Callee -> one entry per call: (number of positional arguments, ((keyword, setting or "<variable>"), ...))."""
    found = defaultdict(list)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and callee(node) in CALLS:
            keywords = []
            for keyword in node.keywords:
                if keyword.arg in WORKFLOW_ONLY_KEYWORDS.get(callee(node), ()):
                    continue
                value = normalize(ast.unparse(keyword.value))
                keywords.append((keyword.arg, value if is_setting(value) else "<variable>"))
            found[callee(node)].append((len(node.args), tuple(sorted(keywords))))
    return found


def notebook_signatures() -> dict[str, list[tuple]]:
    return signatures("\n".join(cell.source for cell in code_cells()[1:]))  # the install cell is IPython, not Python


def workflow_signatures() -> dict[str, list[tuple]]:
    return signatures((ROOT / "ft_helpers" / "workflow.py").read_text())


#: Calls the notebook makes only to show something (no step of the run): the reference split's leakage.
SHOWN_ONLY = {"split_qa_pairs": {(1, (("seed", "SEED"), ("strategy", "'reference'")))}}


@pytest.mark.parametrize("name", CALLS)
def test_notebook_and_workflow_make_the_same_call(name: str):
    notebook, workflow = set(notebook_signatures()[name]), set(workflow_signatures()[name])
    assert notebook, f"the notebook never calls {name}"
    assert workflow <= notebook, "the workflow does nothing the notebook does not show"
    assert notebook - SHOWN_ONLY.get(name, set()) <= workflow, "each step of the notebook is in the workflow"


def test_the_training_arguments_are_the_same_setting_by_setting():
    ((_, notebook),) = notebook_signatures()["SentenceTransformerTrainingArguments"]
    ((_, workflow),) = workflow_signatures()["SentenceTransformerTrainingArguments"]
    assert dict(notebook) == dict(workflow)
    assert dict(workflow)["use_cpu"] == "hardware.device == 'cpu'"
    assert dict(workflow)["warmup_steps"] == "0.1"
