"""Write questions for your passages with a language model you choose, through any OpenAI-compatible endpoint.

``python -m ft_helpers pairs`` uses this module: one chat-completions request per passage (OpenAI, or a local
Ollama, vLLM, llama.cpp server or TGI), the answer parsed into questions, filtered, and appended to a JSON Lines file
at once, so an interrupted run goes on where it stopped. The client is the ``openai`` package (the ``[pairs]``
extra), whose retries with backoff cover rate limits (429), server errors (5xx) and timeouts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .data import normalize_text
from .documents import Passage
from .report import write_text_atomically

#: The prompt sent for each passage; ``{n}`` is the number of questions, ``{passage}`` the passage and ``{doc_id}``
#: the document it comes from. Replace it with ``--prompt-file`` (the same placeholders).
DEFAULT_PROMPT = """\
You write search queries for a document retrieval system.

Read the passage below and write {n} different questions that someone could type into a search box and that this \
passage answers. Each question must stand on its own: name the company, product, period or term it asks about \
instead of writing "the passage", "the document" or "this company". Use your own words; do not copy sentences from \
the passage. Ask about the facts in it, not about its wording.

Answer with a JSON list of {n} strings and nothing else.

Passage (from {doc_id}):
{passage}
"""

#: Placeholders a prompt may use; ``{passage}`` is required.
PROMPT_PLACEHOLDERS = ("{n}", "{passage}", "{doc_id}")
#: Hosts that may be used without an API key (a server on this machine).
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "0.0.0.0")
#: Why a generated question is dropped, in the order the filters apply.
DROP_REASONS = ("empty", "duplicate", "copied")
#: What the API key is replaced by in any message.
MASK = "***"


class GenerationError(RuntimeError):
    """Raised when the endpoint fails for good (unreachable, refused the key, still failing after the retries)."""


@dataclass(frozen=True)
class GenerationSettings:
    """How questions are generated: the endpoint, the model, the prompt and the limits."""

    base_url: str
    model: str
    prompt: str = DEFAULT_PROMPT
    questions_per_passage: int = 2
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 4
    max_retries: int = 5
    timeout: float = 120.0
    max_copied_words: int = 10

    def check(self) -> None:
        """Raise ValueError, in one line, for a setting that cannot work."""
        parsed = urlparse(self.base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(
                f"--base-url must be an http(s) URL such as http://localhost:11434/v1, got {self.base_url!r}."
            )
        if not self.model.strip():
            raise ValueError("--model must name the model the endpoint serves (e.g. gpt-4o-mini, llama3.1:8b).")
        for name in ("questions_per_passage", "concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}.")
        if self.max_retries < 0 or self.timeout <= 0:
            raise ValueError(f"Need --max-retries >= 0 and --timeout > 0, got {self.max_retries} and {self.timeout}.")
        if self.max_copied_words < 1:
            raise ValueError(f"--max-copied-words must be at least 1, got {self.max_copied_words}.")
        check_prompt(self.prompt)


def check_prompt(prompt: str) -> None:
    """Raise ValueError when a prompt lacks ``{passage}`` or holds a placeholder other than {n}, {passage}, {doc_id}."""
    if "{passage}" not in prompt:
        raise ValueError("The prompt must contain {passage}, where each passage goes (and may use {n} and {doc_id}).")
    unknown = sorted(set(re.findall(r"\{[a-z_]+\}", prompt)) - set(PROMPT_PLACEHOLDERS))
    if unknown:
        raise ValueError(
            f"The prompt holds unknown placeholder(s) {', '.join(unknown)}; use {', '.join(PROMPT_PLACEHOLDERS)}."
        )


def read_prompt(path: str | Path) -> str:
    """Read and check a prompt file (UTF-8 text with the placeholders of :data:`DEFAULT_PROMPT`).

    Args:
        path: The file.

    Returns:
        The prompt.

    Raises:
        ValueError: The file cannot be read, or its placeholders are wrong (:func:`check_prompt`).
    """
    try:
        prompt = Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"Cannot read the prompt file {str(path)!r}: {err.__class__.__name__}.") from None
    check_prompt(prompt)
    return prompt


def build_prompt(template: str, passage: Passage, n: int) -> str:
    """Fill a prompt's placeholders (by plain replacement: other braces, e.g. a JSON example, stay as they are)."""
    return template.replace("{n}", str(n)).replace("{doc_id}", passage.doc_id).replace("{passage}", passage.text)


_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_LIST_MARKER = re.compile(r"^\s*(?:[-*•]+|\(?\d{1,2}[.):]|(?:Q|Question)\s*\d*\s*[.:)-])\s*", re.IGNORECASE)


def _questions_in_json(value: Any) -> list[str] | None:
    if isinstance(value, dict):
        for key in ("questions", "queries", "question", "query"):
            if key in value:
                return _questions_in_json(value[key])
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        found = []
        for item in value:
            inner = _questions_in_json(item)
            if inner is None:
                return None
            found.extend(inner)
        return found
    return None


def parse_questions(answer: str | None) -> list[str]:
    """Read the questions out of a model's answer: a JSON list or object, a numbered or bulleted list, or lines.

    Code fences, a preamble ("Here are two questions:") and quotes around each question are ignored. Lines are
    taken as questions when they end with "?" or carry a list marker.

    Args:
        answer: The model's reply (None or empty gives no questions).

    Returns:
        The questions in order, stripped (possibly empty strings, which the filters count).
    """
    if not answer or not answer.strip():
        return []
    text = answer.strip()
    fenced = _FENCE.search(text)
    candidates = [fenced.group(1)] if fenced else []
    candidates.append(text)
    for opening, closing in (("[", "]"), ("{", "}")):
        start, end = text.find(opening), text.rfind(closing)
        if 0 <= start < end:
            candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            found = _questions_in_json(json.loads(candidate))
        except (json.JSONDecodeError, RecursionError):
            continue
        if found is not None:
            return [" ".join(question.split()) for question in found]
    questions = []
    for line in (fenced.group(1) if fenced else text).splitlines():
        marker = _LIST_MARKER.match(line)
        line = line[marker.end() :] if marker else line
        line = " ".join(line.strip().strip("\"'“”`").split())
        if line.endswith("?") or (marker and line and not line.endswith(":")):
            questions.append(line)
    return questions


def count_copied_words(question: str, passage: str) -> int:
    """Return the length, in words, of the longest run of words the question shares with the passage, in order."""
    words = [normalize_text(word) for word in question.split()]
    words = [word for word in words if word]
    text = [normalize_text(word) for word in passage.split()]
    text = [word for word in text if word]
    if not words or not text:
        return 0
    positions: dict[str, list[int]] = {}
    for index, word in enumerate(text):
        positions.setdefault(word, []).append(index)
    best = 0
    previous: dict[int, int] = {}  # run length ending at text[j] for the previous question word
    for word in words:
        current = {j: previous.get(j - 1, 0) + 1 for j in positions.get(word, [])}
        best = max(best, *current.values()) if current else best
        previous = current
    return best


def filter_questions(
    questions: Iterable[str], passage: str, seen: set[str], max_copied_words: int, limit: int
) -> tuple[list[str], Counter]:
    """Keep the questions worth training on: not empty, not seen before in this run, not copied from the passage.

    Args:
        questions: Parsed questions for one passage.
        passage: The passage they were written for.
        seen: Comparison keys (:func:`~ft_helpers.data.normalize_text`) of the questions kept so far; updated.
        max_copied_words: Drop a question that shares this many words in a row with its passage.
        limit: Keep at most this many (the questions asked for); extra ones are not counted as dropped.

    Returns:
        The kept questions, and how many each filter (:data:`DROP_REASONS`) dropped.
    """
    kept: list[str] = []
    dropped: Counter = Counter()
    for question in questions:
        if len(kept) == limit:
            break
        key = normalize_text(question)
        if not key:
            dropped["empty"] += 1
        elif key in seen:
            dropped["duplicate"] += 1
        elif count_copied_words(question, passage) >= max_copied_words:
            dropped["copied"] += 1
        else:
            seen.add(key)
            kept.append(question)
    return kept, dropped


def is_local(base_url: str) -> bool:
    """Whether the endpoint runs on this machine (localhost, 127.0.0.1, ::1), where no API key is needed."""
    return (urlparse(base_url).hostname or "") in LOCAL_HOSTS


def find_api_key(base_url: str, api_key_env: str = "OPENAI_API_KEY") -> str | None:
    """Return the API key from the environment variable ``api_key_env``; refuse a remote endpoint without one.

    Args:
        base_url: The endpoint.
        api_key_env: The variable that holds the key.

    Returns:
        The key, or None for a local endpoint where the variable is unset.

    Raises:
        ValueError: The endpoint is not local and the variable is unset or empty.
    """
    key = os.environ.get(api_key_env, "").strip()
    if key:
        return key
    if is_local(base_url):
        return None
    raise ValueError(
        f"No API key for {base_url}: set {api_key_env} (or name another variable with --api-key-env). Only a "
        "server on this machine (localhost, 127.0.0.1) runs without one."
    )


def mask_key(text: str, key: str | None) -> str:
    """Replace every occurrence of the key in a text by ``***``."""
    return text.replace(key, MASK) if key else text


def estimate_requests(passages: list[Passage], settings: GenerationSettings) -> dict[str, int]:
    """Estimate what generating for these passages sends: requests, and tokens at about 4 characters a token.

    Args:
        passages: The passages still to do.
        settings: The prompt and questions per passage.

    Returns:
        ``requests``, ``prompt_tokens`` (rough) and ``completion_tokens`` (rough: 30 tokens a question).
    """
    n = settings.questions_per_passage
    characters = sum(len(build_prompt(settings.prompt, passage, n)) for passage in passages)
    return {
        "requests": len(passages),
        "prompt_tokens": round(characters / 4),
        "completion_tokens": 30 * n * len(passages),
    }


@dataclass
class GenerationSummary:
    """What a generation run did, resumed parts included."""

    output: str
    passages: int
    documents: int
    passages_done_before: int = 0
    requests: int = 0
    questions: int = 0
    unparsed_answers: int = 0
    refused: int = 0
    first_refusal: str = ""
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
    usage: dict[str, int] = field(default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0})

    def describe(self) -> str:
        """What was written and dropped, in a line or two."""
        dropped = ", ".join(f"{reason} {self.dropped.get(reason, 0)}" for reason in DROP_REASONS)
        resumed = f" ({self.passages_done_before} done before this run)" if self.passages_done_before else ""
        text = (
            f"{describe_count(self.questions, 'question')} for {describe_count(self.passages, 'passage')} of "
            f"{describe_count(self.documents, 'document')}{resumed} in {self.output}. Dropped: {dropped}."
        )
        if self.unparsed_answers:
            text += (
                f" {describe_count(self.unparsed_answers, 'answer')} held no question: their passages are not done, "
                "and resume=True asks again."
            )
        if self.refused:
            text += f" The server refused {describe_count(self.refused, 'passage')} (the first: {self.first_refusal})."
        return text


def progress_path(output: str | Path) -> Path:
    """The file beside the output that records the settings and every finished passage (what --resume reads)."""
    output = Path(output)
    return output.with_name(output.stem + ".progress.jsonl")


def _fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _run_settings(settings: GenerationSettings, chunking: dict[str, Any]) -> dict[str, Any]:
    """The settings that shape the output, as recorded in the progress file and compared on resume."""
    return {
        "model": settings.model,
        "prompt_sha256": _fingerprint(settings.prompt),
        "questions_per_passage": settings.questions_per_passage,
        "max_copied_words": settings.max_copied_words,
        **chunking,
    }


def _read_lines(text: str) -> list[dict[str, Any]]:
    """Read the records of a JSON Lines text, leaving out a last line cut short by a kill."""
    records = []
    for line in text.splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # only the last line can be partial: every line is written whole, then flushed
    return records


def check_output(output: str | Path, resume: bool = False, overwrite: bool = False, name_only: bool = False) -> bool:
    """Check the output file's name and the --resume/--overwrite rules, before anything loads or is sent.

    Args:
        output: The pairs file to write (``.jsonl``).
        resume: Go on from an earlier run's files.
        overwrite: Replace an earlier run's files.
        name_only: Check the name and folder only (for a dry run, which writes nothing).

    Returns:
        Whether an earlier run's files are there.

    Raises:
        ValueError: The name is not ``.jsonl``, its folder is missing, the files exist and neither flag is given,
            both flags are given, or --resume finds nothing.
    """
    output = Path(output).expanduser()
    if output.suffix.lower() != ".jsonl":
        raise ValueError(f"--output must be a .jsonl file (what `run --dataset` reads), got {str(output)!r}.")
    if not output.parent.is_dir():
        raise ValueError(f"The folder of --output does not exist: {str(output.parent)!r}. Create it first.")
    if name_only:
        return False
    if resume and overwrite:
        raise ValueError("Choose one of resume=True (go on) and overwrite=True (start again), not both.")
    exists = output.exists() or progress_path(output).exists()
    if exists and not (resume or overwrite):
        raise ValueError(f"{str(output)!r} exists: go on from it with resume=True, or start again with overwrite=True.")
    if resume and not exists:
        raise ValueError(f"Nothing to resume: {str(output)!r} does not exist.")
    return exists


def prepare_output(
    output: str | Path, run_settings: dict[str, Any], passages: list[Passage], resume: bool, overwrite: bool
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Check the output file and, on resume, read what is done (the pairs of passages not finished are removed).

    Args:
        output: The pairs file (``.jsonl``).
        run_settings: This run's settings (see ``_run_settings``); a resume must match the first run's.
        passages: This run's passages; a finished one must still have the same text.
        resume: Go on from an earlier run's files.
        overwrite: Delete an earlier run's files first.

    Returns:
        The finished passages' progress records by passage id, and the pairs already written for them.

    Raises:
        ValueError: The output is not ``.jsonl``, exists without --resume/--overwrite, there is nothing to resume,
            or a setting or a finished passage's text changed since the first run.
    """
    output = Path(output).expanduser()
    progress = progress_path(output)
    exists = check_output(output, resume, overwrite)
    if exists and overwrite:
        output.unlink(missing_ok=True)
        progress.unlink(missing_ok=True)
        exists = False
    if not exists:
        return {}, []
    if not progress.exists():
        raise ValueError(
            f"Cannot resume {str(output)!r}: {progress.name}, which says which passages are done, is missing. "
            "Start again with overwrite=True."
        )
    records = _read_lines(progress.read_text(encoding="utf-8"))
    first = records[0].get("settings") if records else None
    if first is None:
        raise ValueError(f"Cannot resume: {progress} does not start with the run's settings. Use overwrite=True.")
    for name, value in run_settings.items():
        if first.get(name) != value:
            raise ValueError(
                f"Cannot resume: {name} was {first.get(name)!r} in the first run and is {value!r} now. Use the first "
                "run's settings, or start again with overwrite=True."
            )
    done = {record["passage_id"]: record for record in records[1:] if "passage_id" in record}
    texts = {passage.passage_id: passage.text for passage in passages}
    for passage_id, record in done.items():
        if passage_id in texts and _fingerprint(texts[passage_id]) != record.get("text_sha256"):
            raise ValueError(
                f"Cannot resume: the text of passage {passage_id} differs from the first run's (the document changed). "
                "Start again with overwrite=True."
            )
    text = output.read_text(encoding="utf-8") if output.exists() else ""
    pairs = _read_lines(text)
    finished = [pair for pair in pairs if pair.get("passage_id") in done]
    if len(finished) != len(pairs) or (text and not text.endswith("\n")):
        write_text_atomically(output, "".join(json.dumps(pair, ensure_ascii=False) + "\n" for pair in finished))
    return done, finished


def _describe_failure(err: Exception, settings: GenerationSettings) -> str:
    """Say in one line why the endpoint failed for good, and what to do."""
    import openai

    where = f"The LLM at {settings.base_url}"
    retries = f"after {describe_count(settings.max_retries, 'retry', 'retries')}"
    if isinstance(err, openai.APITimeoutError):
        return f"{where} gave no answer within {settings.timeout:g} s, {retries}. Raise --timeout, lower --concurrency."
    if isinstance(err, openai.APIConnectionError):
        cause = err.__cause__ or err
        reason = " ".join(str(cause).split())[:100] or type(cause).__name__
        return (
            f"Cannot reach the LLM at {settings.base_url} ({reason}), {retries}. Is the server running, and is "
            "--base-url right?"
        )
    if isinstance(err, openai.AuthenticationError | openai.PermissionDeniedError):
        return f"{where} refused the API key ({err.status_code}): check {settings.api_key_env}."
    if isinstance(err, openai.NotFoundError):
        return f"{where} answered 404 for model {settings.model!r}: check --model and --base-url (it ends in /v1)."
    if isinstance(err, openai.RateLimitError):
        return f"{where} still refused with 429 (rate limit) {retries}: lower --concurrency, or wait and resume."
    if isinstance(err, openai.APIStatusError):
        body = _server_message(err)[:120]
        retried = f" {retries}" if err.status_code in (408, 409) or err.status_code >= 500 else ""
        return f"{where} answered {err.status_code}{retried}: {body}"
    return f"{where} failed: {type(err).__name__}: {' '.join(str(err).split())[:120]}"


#: Answers that refuse one passage, not the endpoint (a content filter, a passage too long for the model's context):
#: the passage is recorded as refused and the run goes on.
PASSAGE_REFUSALS = (400, 413, 422)
#: Refused passages in a row, with none answered, that mean the endpoint refuses every request.
REFUSALS_BEFORE_STOPPING = 3


def _server_message(err: Any) -> str:
    """The message a server put in its error answer, on one line (without the client's "Error code: 400 - ")."""
    body = getattr(err, "body", None)
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        text = body["message"]
    else:
        text = re.sub(r"^Error code: \d+ - ", "", str(getattr(err, "message", err)))
    return " ".join(text.split())


def describe_count(n: int, one: str, many: str | None = None) -> str:
    """Return a count with its noun: ``1 passage``, ``2 passages`` (``many`` for an irregular plural)."""
    return f"{n} {one if n == 1 else many or one + 's'}"


def _ask(client: Any, settings: GenerationSettings, passage: Passage) -> tuple[str | None, dict[str, int]]:
    """Send one passage's request; return the answer's text and the tokens the endpoint counted."""
    response = client.chat.completions.create(
        model=settings.model,
        messages=[{"role": "user", "content": build_prompt(settings.prompt, passage, settings.questions_per_passage)}],
    )
    usage = getattr(response, "usage", None)
    counted = {
        "prompt_tokens": getattr(usage, "prompt_tokens", 0) or 0,
        "completion_tokens": getattr(usage, "completion_tokens", 0) or 0,
    }
    choices = getattr(response, "choices", None) or []
    return (choices[0].message.content if choices else None), counted


def make_client(settings: GenerationSettings, api_key: str | None) -> Any:
    """Build the ``openai`` client for the endpoint, with the settings' retries and timeout."""
    try:
        from openai import OpenAI
    except ImportError:
        raise ImportError(
            "Generating questions needs the openai package: pip install openai (or the pairs extra: "
            "pip install -e '.[pairs]')."
        ) from None
    # A local server ignores the key, but the client insists on one: a placeholder, never a real key.
    return OpenAI(
        base_url=settings.base_url,
        api_key=api_key or "no-key-needed",
        max_retries=settings.max_retries,
        timeout=settings.timeout,
    )


def generate_pairs(
    passages: list[Passage],
    output: str | Path,
    settings: GenerationSettings,
    chunking: dict[str, Any] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    client: Any = None,
    api_key: str | None = None,
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> GenerationSummary:
    """Ask the model for questions about each passage and append each finished passage's pairs to ``output``.

    Each line of ``output`` is one pair: ``question``, ``context`` (the passage), ``doc_id`` and ``passage_id``,
    which ``run --dataset`` reads as it is. Beside it, ``<name>.progress.jsonl`` records the settings and each
    finished passage, so ``resume=True`` sends nothing twice. Requests run ``settings.concurrency`` at a time.

    Args:
        passages: From :func:`~ft_helpers.documents.split_documents`.
        output: The ``.jsonl`` file to write.
        settings: Endpoint, model, prompt, limits.
        chunking: How the passages were cut (recorded, and compared on resume).
        resume: Go on from an interrupted run with the same settings.
        overwrite: Start again, deleting an earlier run's files.
        client: An ``openai.OpenAI`` client (default: one made by :func:`make_client`).
        api_key: The key, only to mask it in messages (the client holds it).
        log: Where progress lines go.
        progress: Show a progress bar.

    Returns:
        What was written and dropped, this run and earlier ones together.

    Raises:
        ValueError: See :func:`prepare_output`.
        GenerationError: The endpoint failed for good; the passages finished so far are kept for --resume.
    """
    settings.check()
    output = Path(output).expanduser()
    run_settings = _run_settings(settings, chunking or {})
    done, finished = prepare_output(output, run_settings, passages, resume, overwrite)
    summary = GenerationSummary(
        str(output), len(passages), len({passage.doc_id for passage in passages}), passages_done_before=len(done)
    )
    seen = {normalize_text(pair["question"]) for pair in finished}
    summary.questions = len(finished)
    for record in done.values():
        summary.refused += bool(record.get("refused"))
        for reason, count in record.get("dropped", {}).items():
            summary.dropped[reason] = summary.dropped.get(reason, 0) + count
    todo = [passage for passage in passages if passage.passage_id not in done]
    if not todo:
        log(f"All {len(passages)} passages are done already.")
        return summary
    client = client or make_client(settings, api_key)
    progress_file = progress_path(output)
    with open(progress_file, "a", encoding="utf-8") as track, open(output, "a", encoding="utf-8") as pairs_file:
        if not done:
            track.write(json.dumps({"settings": run_settings}) + "\n")
            track.flush()

        saved = len(done)

        def save(passage: Passage, lines: list[str], record: dict[str, Any]) -> None:
            """Append a passage's pairs, then the record that says they are whole (each line written whole)."""
            nonlocal saved
            saved += 1
            pairs_file.write("".join(lines))
            pairs_file.flush()
            os.fsync(pairs_file.fileno())
            track.write(
                json.dumps({"passage_id": passage.passage_id, "text_sha256": _fingerprint(passage.text), **record})
                + "\n"
            )
            track.flush()
            os.fsync(track.fileno())

        failure = _send_all(todo, client, settings, summary, seen, save, progress, lambda text: mask_key(text, api_key))
    if failure is not None:
        message = _describe_failure(failure, settings)
        if not saved:  # nothing to go on from: leave no files that a rerun would have to be told about
            output.unlink(missing_ok=True)
            progress_file.unlink(missing_ok=True)
        else:
            message += (
                f" {saved} of {describe_count(len(passages), 'passage')} are saved: run the same command with "
                "resume=True to go on."
            )
        raise GenerationError(mask_key(message, api_key)) from None
    return summary


def _send_all(
    todo: list[Passage],
    client: Any,
    settings: GenerationSettings,
    summary: GenerationSummary,
    seen: set[str],
    save: Callable[[Passage, list[str], dict[str, Any]], None],
    progress: bool,
    mask: Callable[[str], str],
) -> Exception | None:
    """Send the passages' requests, ``settings.concurrency`` at a time, and save each answer as it comes.

    Returns:
        The error that stopped the run (the requests in flight are finished and saved first), or None.
    """
    import openai
    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), unit="passage", desc="Generating", disable=not progress)
    executor = ThreadPoolExecutor(max_workers=settings.concurrency)
    pending: dict[Future, Passage] = {}
    queue = iter(todo)
    failure: Exception | None = None
    held: list[tuple[Passage, str]] = []  # refused passages, until a passage is answered

    def save_refusals() -> None:
        for refused, reason in held:
            save(refused, [], {"kept": 0, "dropped": {}, "refused": reason})
            summary.refused += 1
            summary.first_refusal = summary.first_refusal or reason
        held.clear()

    def refill() -> None:
        for passage in queue:
            pending[executor.submit(_ask, client, settings, passage)] = passage
            if len(pending) == settings.concurrency:
                break

    try:
        refill()
        while pending:
            finished_now, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished_now:
                passage = pending.pop(future)
                error = future.exception()
                if isinstance(error, openai.APIStatusError) and error.status_code in PASSAGE_REFUSALS:
                    reason = mask(f"{passage.passage_id}: {error.status_code} {_server_message(error)[:80]}")
                    held.append((passage, reason))  # saved once a passage is answered: then it is this passage
                    if len(held) >= REFUSALS_BEFORE_STOPPING and summary.requests == 0:
                        failure = failure or error  # every passage so far refused: the request, not a passage
                        continue
                    bar.update(1)
                    continue
                if error is not None:
                    failure = failure or error
                    continue
                answer, counted = future.result()
                summary.requests += 1
                for name, value in counted.items():
                    summary.usage[name] += value
                parsed = parse_questions(answer)
                if not parsed:  # not done: a later run with resume=True asks again
                    summary.unparsed_answers += 1
                    bar.update(1)
                    continue
                kept, dropped = filter_questions(
                    parsed, passage.text, seen, settings.max_copied_words, settings.questions_per_passage
                )
                row = {"context": passage.text, "doc_id": passage.doc_id, "passage_id": passage.passage_id}
                lines = [json.dumps({"question": question, **row}, ensure_ascii=False) + "\n" for question in kept]
                save(passage, lines, {"kept": len(kept), "dropped": dict(dropped)})
                summary.questions += len(kept)
                for reason, count in dropped.items():
                    summary.dropped[reason] += count
                bar.update(1)
                bar.set_postfix(questions=summary.questions, refresh=False)
            if held and summary.requests:
                save_refusals()
            if failure is None:
                refill()
        if held and failure is None:  # a few passages, every one refused: say so rather than drop them
            save_refusals()
    finally:
        bar.close()
        executor.shutdown(wait=failure is not None, cancel_futures=True)
    return failure
