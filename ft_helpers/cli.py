"""Command line: ``python -m ft_helpers run`` fine-tunes and compares, ``evaluate`` scores, ``export`` makes ONNX.

The options are built from :class:`~ft_helpers.config.RunConfig`'s fields, their help and their choices. Bad
input ends the command with one line on standard error naming the option and what to do, and exit status 2;
Ctrl-C ends it with one line saying how to resume, and status 130.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import traceback
import warnings
from dataclasses import MISSING, Field, fields
from typing import Any

from .config import RunConfig
from .data import SUPPORTED_SUFFIXES
from .generate import GenerationError
from .search import PRECISIONS
from .serve import BACKENDS, QUANTIZATIONS, ExportError

#: Exit status for bad input and for an interrupted run.
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

RUN_EPILOG = f"""\
data: a Hub dataset id or a local {", ".join(SUPPORTED_SUFFIXES)} file, one question and the passage that
  answers it per row; name the columns with --question-column and --context-column. Rows with an empty question
  or passage are dropped with a warning. A CSV record that does not parse cleanly (a stray quote, a wrong number of
  fields) stops the run naming its line; --skip-bad-rows drops such records instead, and says how many.
splits: 81% train, 9% validation (picks the best epoch), 10% test (scored once at the end). 'grouped' keeps every
  passage, question and doc_id (the document, in files from `pairs`) in one split; 'reference' repeats the
  reference notebook's random split. With --test-dataset the test split is that file, and --dataset is split into
  train and validation only.
writes to --output-dir: model/ (the fine-tuned model and its model card), eval/ (per-query scores of both models),
  comparison.png, training.png, dimensions.png and results.json (every setting, both models' metrics, the
  comparison with 95% intervals, the scores by embedding size, the split, and how the run was made: this command,
  the code's commit, the data's checksum, versions, hardware), written last. A non-empty folder is refused unless
  --overwrite (delete its files first) or --resume (go on from its last complete checkpoint).
one run per folder: a run holds --output-dir/.lock until it ends; a second run there is refused, naming the first's
  process id. run.json keeps the settings and a fingerprint of the data: --resume refuses a change that shapes
  training (data, split, recipe, batch size, learning rate, epochs, seeds, model) and allows --eval-batch-size
  and --bootstrap-resamples. A full disk or an unwritable folder stops the run in one line; --resume goes on.
example: python -m ft_helpers run --dataset data/qa.csv --base-model models/minilm --output-dir out
"""

EVALUATE_EPILOG = """\
One --model: its metrics. Two: both, and the second compared with the first query by query (paired bootstrap 95%
intervals and a permutation test). The split is the one 'run' makes with the same --dataset, --test-dataset,
--split, --group-column and --seed, so a model fine-tuned by 'run' is scored on questions it never saw.
writes to --output-dir: eval/model_<n>/ (per-query scores), comparison.png (two models) and results.json.
example: python -m ft_helpers evaluate --dataset data/qa.csv --model models/minilm --model out/model \\
  --output-dir out-eval
"""


EXPORT_EPILOG = """\
writes to --model's folder: onnx-encoder/ with encoder.onnx (fp32), encoder-int8.onnx (--quantize int8), the
  tokenizer, and export.json (the weights' fingerprint, each file's size and its agreement with the model on sample
  texts). Load it with ft_helpers.load_encoder(DIR, backend="onnx" | "onnx-int8"); score it with
  `python -m ft_helpers evaluate --model DIR --backend onnx-int8 ...`. Needs the serve extra: pip install -e '.[serve]'
  in a clone (or 'ft-helpers[serve] @ git+URL').
example: python -m ft_helpers export --model out/model --quantize int8
"""

INDEX_EPILOG = """\
writes to --output-dir: index.faiss, passages.jsonl (each passage once) and index.json (the model folder and its
  weights' fingerprint, backend, embedding size, precision, bytes per passage). float32 is exact search; int8 keeps
  1 byte a number (ranges learned from the passages); binary 1 bit a number, its candidates rescored in float.
example: python -m ft_helpers index --model out/model --dataset data/qa.csv --output-dir out/index --dimensions 128
then:    python -m ft_helpers search --index out/index "What was the revenue in 2023?"
"""


SKIP_BAD_ROWS_HELP = (
    "Drop a CSV's records that do not parse cleanly (a stray or unclosed quote, a wrong number of fields), with a "
    "warning that counts them, instead of stopping at the first."
)

PAIRS_EPILOG = """\
reads --documents: a folder (searched recursively) or one file of .txt, .md, .pdf (needs pypdf) or .html (text only).
  Each document is cut into passages of whole sentences that fit the embedding model's window, overlapping a little.
sends one chat-completions request per passage to --base-url (any OpenAI-compatible server: OpenAI, Ollama, vLLM,
  llama.cpp, TGI), with the API key from $OPENAI_API_KEY (or --api-key-env); a server on this machine needs none.
  The number of requests and a rough token count are printed before anything is sent (--dry-run stops there).
writes --output: one JSON line per pair (question, context, doc_id, passage_id), each passage's pairs as soon as
  it is done, and beside it <name>.progress.jsonl (settings and finished passages) for --resume. Questions that are
  empty, repeated, or copy --max-copied-words words in a row from their passage are dropped and counted.
then: python -m ft_helpers run --dataset FILE.jsonl: the grouped split keeps each document's passages in one split.
  Its test questions are generated too: write 50 real ones and pass them as --test-dataset.
example: python -m ft_helpers pairs --documents docs/ --output pairs.jsonl \\
  --base-url http://localhost:11434/v1 --model llama3.1:8b
"""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (the option and the problem) and exit status 2."""

    def error(self, message: str) -> Any:
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see {self.prog} --help)\n")


def flag(name: str) -> str:
    """Return the option of a :class:`~ft_helpers.config.RunConfig` field, e.g. ``--max-train-samples``."""
    return "--" + name.replace("_", "-")


def _reader(annotation: str) -> Any:
    """Return a function that reads an option's text as the field's type (``"none"`` as None where allowed)."""
    kinds = {"int": int, "float": float, "str": str}
    parts = [part.strip() for part in annotation.split("|")]
    kind = kinds[next(part for part in parts if part != "None")]
    if "None" not in parts:
        return kind

    def parse(text: str) -> object:
        return None if text.lower() == "none" else kind(text)

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _add_option(parser: argparse.ArgumentParser, item: Field, default: Any = MISSING, text: str | None = None) -> None:
    default = item.default if default is MISSING else default
    text = (text or item.metadata["help"]).replace("%", "%%")
    if item.type == "bool":
        parser.add_argument(
            flag(item.name), action=argparse.BooleanOptionalAction, default=default, help=f"{text} Default: {default}."
        )
        return
    choices = item.metadata["choices"]
    parser.add_argument(
        flag(item.name),
        type=_reader(item.type),
        default=default,
        choices=choices,
        metavar=item.name.upper(),
        help=f"{text} Choices: {', '.join(choices)}. Default: {default}." if choices else f"{text} Default: {default}.",
    )


def build_parser() -> argparse.ArgumentParser:
    """Build the parser: ``run`` with one option per :class:`~ft_helpers.config.RunConfig` field, and ``evaluate``."""
    from .workflow import EVALUATE_PARAMETERS, EVALUATION_SUBSETS

    parser = _Parser(
        prog="python -m ft_helpers",
        description="Fine-tune a sentence-transformers embedding model on question/passage pairs for retrieval, "
        "and measure it against the base model on held-out questions.",
    )
    parser.add_argument("--debug", action="store_true", help="On an error, show the full traceback.")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="{run,evaluate,export,index,search,pairs}", parser_class=_Parser
    )
    formatter = argparse.RawDescriptionHelpFormatter

    run = commands.add_parser(
        "run",
        help="split, score the base model, fine-tune, score again and compare",
        description="Split the data, score the base model, fine-tune it, score it again and compare the two\n"
        "on the test split: the notebook's steps, with the same parameters.",
        epilog=RUN_EPILOG,
        formatter_class=formatter,
    )
    for item in fields(RunConfig):
        _add_option(run, item)
    resume = run.add_mutually_exclusive_group()
    resume.add_argument("--overwrite", action="store_true", help="Delete the files in --output-dir first.")
    resume.add_argument(
        "--resume", action="store_true", help="Go on from the last checkpoint in --output-dir (same options)."
    )
    run.add_argument("--keep-checkpoints", action="store_true", help="Keep --output-dir/checkpoints at the end.")
    run.add_argument("--skip-bad-rows", action="store_true", help=SKIP_BAD_ROWS_HELP)
    run.add_argument(
        "--push-to-hub",
        metavar="REPO",
        default=None,
        help="Upload the fine-tuned model and its model card to this Hugging Face Hub repository (user/name, "
        "created private if new), with the token that huggingface_hub finds (HF_TOKEN, or `hf auth login`).",
    )

    evaluate = commands.add_parser(
        "evaluate",
        help="score one model on the test split, or compare two",
        description="Score one model on the test (or validation) split, or compare two on it query by query.",
        epilog=EVALUATE_EPILOG,
        formatter_class=formatter,
    )
    evaluate.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="MODEL",
        help="A Hub id or a model folder; give it twice to compare (the first is the baseline).",
    )
    evaluate.add_argument(
        "--subset", choices=EVALUATION_SUBSETS, default="test", help="The split to score on. Default: test."
    )
    own = {
        "output_dir": ("output/evaluation", "Folder for the per-query scores (eval/), comparison.png, results.json."),
        "seed": (MISSING, "Seed of the split: the one the model was fine-tuned with, so that its test questions are "
                 "unseen."),
    }  # fmt: skip
    for item in fields(RunConfig):
        if item.name in EVALUATE_PARAMETERS:
            _add_option(evaluate, item, *own.get(item.name, (MISSING, None)))
    evaluate.add_argument(
        "--backend",
        action="append",
        choices=BACKENDS,
        default=None,
        help="How to run the model: torch (default), or onnx / onnx-int8 for a model folder exported with `export`. "
        "Once for all models, or once per --model.",
    )
    evaluate.add_argument(
        "--compression",
        action="store_true",
        help="Also score each model at smaller embedding sizes (384/256/128/64) in float32, int8 and binary FAISS "
        "indexes, as `run` does: bytes per passage and NDCG@10, in results.json 'compression'.",
    )
    evaluate.add_argument("--overwrite", action="store_true", help="Delete the files in --output-dir first.")
    evaluate.add_argument("--skip-bad-rows", action="store_true", help=SKIP_BAD_ROWS_HELP)

    export = commands.add_parser(
        "export",
        help="export a fine-tuned model to ONNX (fp32, and int8 with --quantize int8)",
        description="Export a saved model to ONNX inside its folder (onnx-encoder/): the transformer, its pooling and\n"
        "normalisation in one graph, checked against the model before anything is written.",
        epilog=EXPORT_EPILOG,
        formatter_class=formatter,
    )
    export.add_argument("--model", required=True, metavar="DIR", help="The model folder (model/ of a run).")
    export.add_argument(
        "--quantize", choices=QUANTIZATIONS, default=None, help="Also write an int8 copy. Default: fp32 only."
    )
    export.add_argument("--overwrite", action="store_true", help="Replace an earlier export of this model.")

    index = commands.add_parser(
        "index",
        help="embed a corpus with a model and save a FAISS index of it",
        description="Embed the passages of one column of a dataset with a model folder, and save a FAISS index of\n"
        "them with the passages and what made it (the model's fingerprint, embedding size, precision).",
        epilog=INDEX_EPILOG,
        formatter_class=formatter,
    )
    index.add_argument("--model", required=True, metavar="DIR", help="The model folder (model/ of a run).")
    index.add_argument("--dataset", required=True, help="A Hub dataset id or a local file holding the passages.")
    index.add_argument("--context-column", default="context", help="The column of passages. Default: context.")
    index.add_argument("--output-dir", required=True, help="Folder for the index (refused if not empty).")
    index.add_argument(
        "--dimensions", type=int, default=None, help="Numbers kept per embedding. Default: all (the model's size)."
    )
    index.add_argument("--precision", choices=PRECISIONS, default="float32", help="Default: float32.")
    index.add_argument("--backend", choices=BACKENDS, default="torch", help="How to embed. Default: torch.")
    index.add_argument("--batch-size", type=int, default=64, help="Passages embedded at a time. Default: 64.")
    index.add_argument("--overwrite", action="store_true", help="Replace the files in --output-dir.")
    index.add_argument("--skip-bad-rows", action="store_true", help=SKIP_BAD_ROWS_HELP)

    search = commands.add_parser(
        "search",
        help="answer a question from a saved index",
        description="Embed a question with the model that built the index and print its top passages.",
        formatter_class=formatter,
    )
    search.add_argument("--index", required=True, metavar="DIR", help="A folder written by `index`.")
    search.add_argument("question", help="The question (quote it).")
    search.add_argument(
        "--model", default=None, metavar="DIR", help="The model folder, if it moved since it built the index."
    )
    search.add_argument("--top-k", type=int, default=5, help="Passages to show. Default: 5.")
    search.add_argument(
        "--json", action="store_true", help="Print one JSON list of {rank, score, passage} objects instead."
    )

    pairs = commands.add_parser(
        "pairs",
        help="write training pairs for your documents with an LLM you choose",
        description="Cut documents into passages and ask an OpenAI-compatible LLM for questions each passage\n"
        "answers: question/passage pairs that `run --dataset` takes as they are.",
        epilog=PAIRS_EPILOG,
        formatter_class=formatter,
    )
    pairs.add_argument("--documents", required=True, metavar="PATH", help="A folder of documents, or one file.")
    pairs.add_argument("--output", required=True, metavar="FILE.jsonl", help="The pairs file to write.")
    pairs.add_argument(
        "--base-url", required=True, help="The endpoint, e.g. https://api.openai.com/v1 or http://localhost:11434/v1."
    )
    pairs.add_argument("--model", required=True, help="The LLM's name on that endpoint, e.g. gpt-4o-mini.")
    pairs.add_argument(
        "--api-key-env", default="OPENAI_API_KEY", help="The variable holding the API key. Default: OPENAI_API_KEY."
    )
    pairs.add_argument("--questions-per-passage", type=int, default=2, help="Questions asked for. Default: 2.")
    pairs.add_argument(
        "--prompt-file", default=None, help="Your own prompt, with {passage} (and {n}, {doc_id}). Default: built in."
    )
    pairs.add_argument("--max-passages", type=int, default=None, help="Only the first N passages. Default: all.")
    pairs.add_argument("--concurrency", type=int, default=4, help="Requests in flight at once. Default: 4.")
    pairs.add_argument(
        "--max-retries", type=int, default=5, help="Retries of a request on 429, 5xx and timeouts. Default: 5."
    )
    pairs.add_argument("--timeout", type=float, default=120.0, help="Seconds to wait for one answer. Default: 120.")
    pairs.add_argument(
        "--max-copied-words", type=int, default=10, help="Drop a question sharing this many words in a row with its "
        "passage. Default: 10."
    )  # fmt: skip
    pairs.add_argument(
        "--embedding-model", default=RunConfig.base_model, help="The model you will fine-tune: its tokenizer sizes "
        f"the passages. Default: {RunConfig.base_model}."
    )  # fmt: skip
    pairs.add_argument(
        "--max-tokens", type=int, default=None, help="Tokens per passage, at most the embedding model's window. "
        "Default: 128 (or the window, if smaller)."
    )  # fmt: skip
    pairs.add_argument(
        "--overlap", type=int, default=32, help="Tokens a passage may repeat from the one before. Default: 32."
    )
    pairs.add_argument("--min-tokens", type=int, default=16, help="Leave out shorter passages (headings). Default: 16.")
    pairs.add_argument(
        "--dry-run", action="store_true", help="Count the passages, print the estimate, and stop: nothing is sent."
    )
    going_on = pairs.add_mutually_exclusive_group()
    going_on.add_argument("--resume", action="store_true", help="Go on from an interrupted run (same settings).")
    going_on.add_argument("--overwrite", action="store_true", help="Replace an earlier run's files.")
    return parser


def run_pairs(options: dict[str, Any], log: Any = print) -> dict[str, Any]:
    """Carry out the ``pairs`` command: documents to passages to generated pairs (see ``PAIRS_EPILOG``)."""
    from .documents import PASSAGE_TOKENS, load_tokenizer, read_documents, split_documents
    from .generate import (
        DEFAULT_PROMPT,
        GenerationSettings,
        check_output,
        describe_count,
        estimate_requests,
        find_api_key,
        generate_pairs,
        read_prompt,
    )
    from .training import check_model_reference

    settings = GenerationSettings(
        base_url=options["base_url"],
        model=options["model"],
        prompt=read_prompt(options["prompt_file"]) if options["prompt_file"] else DEFAULT_PROMPT,
        questions_per_passage=options["questions_per_passage"],
        api_key_env=options["api_key_env"],
        concurrency=options["concurrency"],
        max_retries=options["max_retries"],
        timeout=options["timeout"],
        max_copied_words=options["max_copied_words"],
    )
    settings.check()
    for name in ("max_passages", "max_tokens"):
        if options[name] is not None and options[name] < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {options[name]}.")
    if options["overlap"] < 0 or options["min_tokens"] < 0:
        raise ValueError(
            f"--overlap and --min-tokens must be 0 or more, got {options['overlap']} and {options['min_tokens']}."
        )
    if options["max_tokens"] is not None and options["min_tokens"] >= options["max_tokens"]:
        raise ValueError(
            f"--min-tokens ({options['min_tokens']}) must be below --max-tokens ({options['max_tokens']})."
        )
    # Before anything loads or is sent: the key (a dry run sends nothing, so it needs none) and the output file.
    api_key = None if options["dry_run"] else find_api_key(settings.base_url, settings.api_key_env)
    check_output(options["output"], options["resume"], options["overwrite"], name_only=options["dry_run"])
    documents = read_documents(options["documents"])
    check_model_reference(options["embedding_model"], "--embedding-model")
    tokenizer, window = load_tokenizer(options["embedding_model"])
    max_tokens = options["max_tokens"] or min(window, PASSAGE_TOKENS)
    if max_tokens > window:
        raise ValueError(f"--max-tokens {max_tokens} is more than the embedding model's window ({window} tokens).")
    if options["min_tokens"] >= max_tokens:
        raise ValueError(f"--min-tokens ({options['min_tokens']}) must be below the passage size ({max_tokens}).")
    overlap = min(options["overlap"], max_tokens - 1)
    passages = split_documents(documents, tokenizer, max_tokens, overlap, options["min_tokens"])
    empty = [doc_id for doc_id, text in documents.items() if not text.strip()]
    log(
        f"{describe_count(len(documents), 'document')} -> {describe_count(len(passages), 'passage')} of at most "
        f"{max_tokens} tokens"
        + (
            f"; without text (a scanned PDF?), left out: {', '.join(empty[:3])}{' ...' * (len(empty) > 3)}"
            if empty
            else ""
        )
        + "."
    )
    if not passages:
        raise ValueError(
            f"No passage of {options['min_tokens']} tokens or more in {options['documents']!r}: lower --min-tokens."
        )
    if options["max_passages"] is not None:
        passages = passages[: options["max_passages"]]
    estimate = estimate_requests(passages, settings)
    log(
        f"Sends up to {describe_count(estimate['requests'], 'request')} to {settings.model} at {settings.base_url}, "
        f"keeping up to {settings.questions_per_passage} questions a passage: roughly {estimate['prompt_tokens']:,} "
        f"prompt and {estimate['completion_tokens']:,} answer tokens (4 characters a token; passages done before "
        "are skipped)."
    )
    if options["dry_run"]:
        return {"passages": len(passages), **estimate}
    chunking = {
        "embedding_model": options["embedding_model"],
        "max_tokens": max_tokens,
        "overlap": overlap,
        "min_tokens": options["min_tokens"],
    }
    summary = generate_pairs(
        passages,
        options["output"],
        settings,
        chunking=chunking,
        resume=options["resume"],
        overwrite=options["overwrite"],
        api_key=api_key,
        log=log,
    )
    log(to_command_line(summary.describe()))
    log(
        f"Next: python -m ft_helpers run --dataset {shlex.quote(options['output'])} --output-dir OUT. Its test "
        "questions are generated too, so its scores measure agreement with the generator, not with your users: "
        "write 50 real questions and pass them as --test-dataset (about documents you leave out of --documents, or "
        "the split keeps those documents out of training)."
    )
    return {"pairs": summary.output, "questions": summary.questions, "passages": summary.passages}


def to_command_line(message: str) -> str:
    """Rewrite a message for the command line: parameter names become options, and it fits on one line.

    Args:
        message: An error or warning from ``ft_helpers`` (which names the notebook's parameters, e.g. ``EPOCHS``).

    Returns:
        The message with ``EPOCHS`` as ``--epochs``, ``overwrite=True`` as ``--overwrite`` (and so on), on one line.
    """
    for name in (item.name for item in fields(RunConfig)):
        message = re.sub(rf"\b{name.upper()}\b", flag(name), message)
    controls = {"overwrite=True": "--overwrite", "resume=True": "--resume", "skip_bad_rows=True": "--skip-bad-rows"}
    for python, option in controls.items():
        message = message.replace(python, option)
    return " ".join(message.split())


def _quiet_libraries() -> None:
    """Keep the terminal to our own lines and one training progress bar (no weight-loading or shard bars)."""
    import datasets
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    datasets.disable_progress_bars()


def main(argv: list[str] | None = None) -> int:
    """Run a command; return the exit status (0 done, 2 bad input, 130 interrupted)."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    options = vars(args)
    debug = options.pop("debug")
    command = options.pop("command")
    command_line = shlex.join(["python", "-m", "ft_helpers", *argv])
    shown = warnings.showwarning
    warnings.showwarning = _show_warning  # a warning is one line too, in the options' names
    try:
        if command == "run":
            from huggingface_hub import get_token

            from .workflow import push_model, run

            controls = ("overwrite", "resume", "keep_checkpoints", "push_to_hub", "skip_bad_rows")
            control = {name: options.pop(name) for name in controls}
            config = RunConfig(**options)
            token = None
            if control["push_to_hub"]:  # before any work, not after it
                token = get_token()
                if not token:
                    raise ValueError(
                        "--push-to-hub needs a Hugging Face token with write access: set HF_TOKEN (from "
                        "https://huggingface.co/settings/tokens) or run `hf auth login`."
                    )
            _quiet_libraries()
            run(
                config,
                command=command_line,
                log=lambda line: print(to_command_line(line) if line.startswith("warning:") else line),
                resume=control["resume"],
                overwrite=control["overwrite"],
                keep_checkpoints=control["keep_checkpoints"],
                skip_bad_rows=control["skip_bad_rows"],
            )
            summary = {"results": f"{config.output_dir}/results.json", "model": f"{config.output_dir}/model"}
            if token is not None:
                summary["hub"] = push_model(f"{config.output_dir}/model", control["push_to_hub"], token)
        elif command == "export":
            from .serve import export_encoder

            _quiet_libraries()
            manifest = export_encoder(options["model"], quantize=options["quantize"], overwrite=options["overwrite"])
            folder = f"{options['model']}/onnx-encoder"
            summary = {backend: f"{folder}/{item['file']}" for backend, item in manifest["files"].items()}
            for backend, agreement in manifest["agreement_with_model"].items():
                print(f"{backend}: mean cosine to the model's embeddings {agreement['mean_cosine']:.4f}")
        elif command == "index":
            from .data import load_passages
            from .search import build_passage_index

            if options["batch_size"] < 1:
                raise ValueError(f"--batch-size must be at least 1, got {options['batch_size']}.")
            passages = load_passages(
                options["dataset"], options["context_column"], skip_bad_rows=options["skip_bad_rows"]
            )
            _quiet_libraries()
            built = build_passage_index(
                options["model"],
                passages,
                options["output_dir"],
                dimensions=options["dimensions"],
                precision=options["precision"],
                backend=options["backend"],
                batch_size=options["batch_size"],
                overwrite=options["overwrite"],
            )
            summary = {"index": str(built.folder), "passages": len(built.passages)}
        elif command == "search":
            from .search import search_passages

            if options["top_k"] < 1:
                raise ValueError(f"--top-k must be at least 1, got {options['top_k']}.")
            _quiet_libraries()
            (hits,) = search_passages(
                options["index"], [options["question"]], top_k=options["top_k"], model_dir=options["model"]
            )
            if options["json"]:
                print(json.dumps(hits, ensure_ascii=False))
            else:
                for hit in hits:
                    print(f"{hit['rank']:>3}. {hit['score']:.4f}  {hit['passage']}")
            return 0
        elif command == "pairs":
            _quiet_libraries()
            summary = run_pairs(options)
        else:
            from .workflow import evaluate_models

            models, overwrite, subset = options.pop("model"), options.pop("overwrite"), options.pop("subset")
            backends, compression = options.pop("backend"), options.pop("compression")
            skip_bad_rows = options.pop("skip_bad_rows")
            config = RunConfig(**options)
            _quiet_libraries()
            evaluate_models(
                models,
                config,
                subset=subset,
                command=command_line,
                log=lambda line: print(to_command_line(line)),
                overwrite=overwrite,
                backends=backends,
                compression=compression,
                skip_bad_rows=skip_bad_rows,
            )
            summary = {"results": f"{config.output_dir}/results.json"}
    except KeyboardInterrupt:
        resumable = command in ("run", "pairs")
        how = "run the same command with --resume" if resumable else "run the same command with --overwrite"
        print(f"\nInterrupted. To go on, {how}.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, OSError, ExportError, ImportError, GenerationError) as err:  # QADataError is a ValueError
        if debug:
            traceback.print_exc()
        print(f"error: {to_command_line(str(err))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        warnings.showwarning = shown
    print(json.dumps(summary))
    return 0


def _show_warning(message: Warning | str, category: type, filename: str, lineno: int, *args: Any) -> None:
    """Print a Python warning as the command line's other warnings: ``warning: <one line>`` on standard error."""
    print(f"warning: {to_command_line(str(message))}", file=sys.stderr)
