"""Questions from an LLM: parsing, filters, the key rules, and generation against a fake OpenAI-compatible server."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from fake_llm import FakeLLM, Reply

from ft_helpers.documents import Passage
from ft_helpers.generate import (
    DEFAULT_PROMPT,
    GenerationError,
    GenerationSettings,
    build_prompt,
    count_copied_words,
    estimate_requests,
    filter_questions,
    find_api_key,
    generate_pairs,
    parse_questions,
    progress_path,
)

PASSAGES = [
    Passage(
        f"report-{n // 2}.md",
        f"report-{n // 2}.md#{n % 2 + 1}",
        f"In fiscal {2010 + n} the segment number {n} earned {100 + n} million dollars from customers in region {n}.",
    )
    for n in range(6)
]


@pytest.fixture()
def fake():
    server = FakeLLM().start()
    yield server
    server.stop()


def settings_for(fake: FakeLLM, **changes: object) -> GenerationSettings:
    values = {"base_url": fake.base_url, "model": "fake", "concurrency": 2, "max_retries": 2, "timeout": 5.0}
    return GenerationSettings(**{**values, **changes})


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ('["What is A?", "What is B?"]', ["What is A?", "What is B?"]),
        ('```json\n["What is A?",\n "What is B?"]\n```', ["What is A?", "What is B?"]),
        ('{"questions": ["What is A?", "What is B?"]}', ["What is A?", "What is B?"]),
        ('[{"question": "What is A?"}, {"question": "What is B?"}]', ["What is A?", "What is B?"]),
        ('Sure! Here they are: ["What is A?", "What is B?"] Hope this helps.', ["What is A?", "What is B?"]),
        ("Here are two questions:\n1. What is A?\n2) What is B?", ["What is A?", "What is B?"]),
        ("- What is A?\n* What is B?\n\nLet me know if you need more.", ["What is A?", "What is B?"]),
        ('Q1: "What is A?"\nQuestion 2: What is B?', ["What is A?", "What is B?"]),
        ("What is A?\nWhat   is\tB?", ["What is A?", "What is B?"]),
        ("1. Name the revenue for 2023\n2. What is B?", ["Name the revenue for 2023", "What is B?"]),
        ('["What is A?", ""]', ["What is A?", ""]),
        ("I cannot help with that.", []),
        ("", []),
        (None, []),
    ],
)
def test_parse_questions_reads_json_lists_and_stray_text(answer: str | None, expected: list[str]):
    assert parse_questions(answer) == expected


def test_filters_drop_empty_repeated_and_copied_questions_and_count_them():
    passage = "Net revenue for fiscal 2023 was 4.82 billion dollars, an increase of 6.4 percent over fiscal 2022."
    assert count_copied_words("Was net revenue for fiscal 2023 up?", passage) == 5
    assert count_copied_words("How did sales grow?", passage) == 0
    seen = {"whatwasrevenuein2022"}
    questions = [
        "",
        "   ",
        "What was revenue in 2022?",  # seen in an earlier passage
        "How much did revenue grow in fiscal 2023?",
        "how much did revenue GROW in fiscal 2023",  # the same question again
        "Net revenue for fiscal 2023 was 4.82 billion dollars, an increase of what?",  # copies 11 words
        "What drove the growth?",
        "One more question past the limit?",
    ]
    kept, dropped = filter_questions(questions, passage, seen, max_copied_words=10, limit=2)
    assert kept == ["How much did revenue grow in fiscal 2023?", "What drove the growth?"]
    assert dict(dropped) == {"empty": 2, "duplicate": 2, "copied": 1}
    assert "howmuchdidrevenuegrowinfiscal2023" in seen


def test_a_remote_endpoint_needs_a_key_and_a_local_one_does_not(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("MY_KEY", raising=False)
    assert find_api_key("http://localhost:11434/v1") is None
    assert find_api_key("http://127.0.0.1:8000/v1") is None
    with pytest.raises(ValueError, match=r"No API key for https://api\.openai\.com/v1: set OPENAI_API_KEY") as error:
        find_api_key("https://api.openai.com/v1")
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="set MY_KEY"):
        find_api_key("http://10.0.0.5:8000/v1", "MY_KEY")
    monkeypatch.setenv("MY_KEY", "sk-remote")
    assert find_api_key("https://example.com/v1", "MY_KEY") == "sk-remote"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"base_url": "localhost:8000"}, "must be an http"),
        ({"model": " "}, "--model must name"),
        ({"questions_per_passage": 0}, "--questions-per-passage must be at least 1"),
        ({"concurrency": 0}, "--concurrency must be at least 1"),
        ({"prompt": "Write {n} questions."}, "must contain {passage}"),
        ({"prompt": "{passage} in {language}"}, r"unknown placeholder\(s\) \{language\}"),
    ],
)
def test_settings_that_cannot_work_are_refused(changes: dict, message: str):
    settings = GenerationSettings(**{"base_url": "http://localhost:8000/v1", "model": "m", **changes})
    with pytest.raises(ValueError, match=message):
        settings.check()


def test_the_prompt_keeps_other_braces_and_the_estimate_counts_requests():
    prompt = build_prompt('Answer as {"questions": [...]} about {doc_id}: {passage} ({n})', PASSAGES[0], 3)
    assert prompt == f'Answer as {{"questions": [...]}} about report-0.md: {PASSAGES[0].text} (3)'
    settings = GenerationSettings("http://localhost:1/v1", "m", questions_per_passage=2)
    estimate = estimate_requests(PASSAGES, settings)
    characters = sum(len(build_prompt(DEFAULT_PROMPT, passage, 2)) for passage in PASSAGES)
    assert estimate == {"requests": 6, "prompt_tokens": round(characters / 4), "completion_tokens": 6 * 2 * 30}


def test_generation_writes_one_line_per_pair_and_records_each_passage(fake: FakeLLM, tmp_path: Path):
    output = tmp_path / "pairs.jsonl"
    summary = generate_pairs(PASSAGES, output, settings_for(fake), progress=False, log=lambda line: None)
    pairs = read_jsonl(output)
    assert len(pairs) == 12 and summary.questions == 12 and summary.requests == 6
    assert all(set(pair) == {"question", "context", "doc_id", "passage_id"} for pair in pairs)
    by_passage = {passage.passage_id: passage for passage in PASSAGES}
    for pair in pairs:
        assert pair["context"] == by_passage[pair["passage_id"]].text
        assert pair["doc_id"] == by_passage[pair["passage_id"]].doc_id
    assert sorted(request["prompt"] for request in fake.requests) == sorted(
        build_prompt(DEFAULT_PROMPT, passage, 2) for passage in PASSAGES
    )
    progress = read_jsonl(progress_path(output))
    assert progress[0]["settings"]["model"] == "fake"
    assert sorted(record["passage_id"] for record in progress[1:]) == sorted(by_passage)
    assert summary.usage["prompt_tokens"] > 0
    assert "12 questions for 6 passages of 3 documents" in summary.describe()


def test_429_500_and_a_slow_reply_are_retried(fake: FakeLLM, tmp_path: Path):
    fast = {"retry-after-ms": "10"}  # the client honours the server's delay (instead of seconds of backoff)
    fake.script(Reply(429, headers=fast), Reply(500, headers=fast), Reply(503, headers=fast))
    output = tmp_path / "pairs.jsonl"
    settings = settings_for(fake, concurrency=1, max_retries=3)
    summary = generate_pairs(PASSAGES[:2], output, settings, progress=False, log=lambda line: None)
    assert summary.questions == 4 and len(fake.requests) == 2 + 3
    fake.script(Reply(delay=2.0))  # slower than the timeout: the client gives up, retries, and gets an answer
    summary = generate_pairs(
        PASSAGES[:1], tmp_path / "slow.jsonl", settings_for(fake, timeout=0.5, max_retries=1), progress=False
    )
    assert summary.questions == 2


def test_malformed_answers_are_counted_and_their_passages_done(fake: FakeLLM, tmp_path: Path):
    fake.script(
        Reply(content="I am sorry, I cannot do that."),
        Reply(content='["", "What is stated in the passage?", "What is stated in the passage?"]'),
    )
    output = tmp_path / "pairs.jsonl"
    summary = generate_pairs(PASSAGES[:3], output, settings_for(fake, concurrency=1), progress=False)
    assert summary.unparsed_answers == 1
    assert summary.dropped == {"empty": 1, "duplicate": 1, "copied": 0}
    assert summary.questions == 1 + 2
    assert "1 answer held no question: their passages are not done, and resume=True asks again" in summary.describe()
    assert len(read_jsonl(progress_path(output))) == 1 + 2  # the unanswered passage is not done
    fake.requests.clear()
    summary = generate_pairs(PASSAGES[:3], output, settings_for(fake), resume=True, progress=False)
    assert len(fake.requests) == 1 and summary.questions == 1 + 2 + 2 and summary.unparsed_answers == 0


def test_a_rate_limit_that_does_not_end_stops_the_run_and_keeps_what_is_done(fake: FakeLLM, tmp_path: Path):
    fast = {"retry-after-ms": "10"}
    fake.script(Reply(), *[Reply(429, headers=fast) for _ in range(3)])
    output = tmp_path / "pairs.jsonl"
    settings = settings_for(fake, concurrency=1, max_retries=2)
    with pytest.raises(GenerationError, match=r"429 \(rate limit\) after 2 retries") as error:
        generate_pairs(PASSAGES[:3], output, settings, progress=False)
    assert "1 of 3 passages are saved: run the same command with resume=True" in str(error.value)
    assert len(read_jsonl(output)) == 2
    summary = generate_pairs(PASSAGES[:3], output, settings, resume=True, progress=False, log=lambda line: None)
    assert summary.questions == 6 and summary.passages_done_before == 1
    assert [request["prompt"] for request in fake.requests].count(build_prompt(DEFAULT_PROMPT, PASSAGES[0], 2)) == 1


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_endpoint_is_one_line(tmp_path: Path):
    settings = GenerationSettings(f"http://127.0.0.1:{free_port()}/v1", "fake", max_retries=0)
    with pytest.raises(GenerationError, match=r"Cannot reach the LLM at http://127\.0\.0\.1:\d+/v1 .*server running"):
        generate_pairs(PASSAGES[:2], tmp_path / "pairs.jsonl", settings, progress=False)
    assert not list(tmp_path.iterdir())  # nothing was done: no files are left


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(401, "Incorrect API key provided: sk-secret-123"), r"refused the API key \(401\): check OPENAI_API_KEY"),
        (Reply(404, "model 'nope' not found"), r"answered 404 for model 'fake'"),
        (Reply(500, "server error for key sk-secret-123"), r"answered 500 after 2 retries: .*\*\*\*"),
    ],
)
def test_endpoint_refusals_are_one_line_and_never_show_the_key(
    fake: FakeLLM, tmp_path: Path, reply: Reply, message: str
):
    fake.script(*[reply] * 3)  # a 500 is retried twice
    key = "sk-secret-123"
    client_settings = settings_for(fake)
    from ft_helpers.generate import make_client

    with pytest.raises(GenerationError, match=message) as error:
        generate_pairs(
            PASSAGES[:1],
            tmp_path / "pairs.jsonl",
            client_settings,
            client=make_client(client_settings, key),
            api_key=key,
            progress=False,
        )
    assert key not in str(error.value) and "\n" not in str(error.value)
    assert fake.requests[0]["authorization"] == f"Bearer {key}"  # the key was sent, only to the endpoint


def test_resume_goes_on_sends_nothing_twice_and_refuses_changed_settings(fake: FakeLLM, tmp_path: Path):
    output = tmp_path / "pairs.jsonl"
    settings = settings_for(fake)
    generate_pairs(PASSAGES[:2], output, settings, chunking={"max_tokens": 64}, progress=False)
    # A kill after the pairs of a third passage were written, before its record: and a line cut short
    extra = {
        "question": "Q?",
        "context": PASSAGES[2].text,
        "doc_id": "report-1.md",
        "passage_id": PASSAGES[2].passage_id,
    }
    with open(output, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(extra) + "\n" + '{"question": "cut sh')
    with pytest.raises(ValueError, match="exists: go on from it with resume=True, or start again with overwrite=True"):
        generate_pairs(PASSAGES, output, settings, chunking={"max_tokens": 64}, progress=False)
    with pytest.raises(ValueError, match="questions_per_passage was 2 in the first run and is 3 now"):
        generate_pairs(PASSAGES, output, settings_for(fake, questions_per_passage=3), {"max_tokens": 64}, resume=True)
    with pytest.raises(ValueError, match="max_tokens was 64 in the first run and is 128 now"):
        generate_pairs(PASSAGES, output, settings, chunking={"max_tokens": 128}, resume=True)
    edited = [Passage(PASSAGES[0].doc_id, PASSAGES[0].passage_id, "Edited text."), *PASSAGES[1:]]
    with pytest.raises(ValueError, match=r"the text of passage report-0\.md#1 differs from the first run's"):
        generate_pairs(edited, output, settings, chunking={"max_tokens": 64}, resume=True)
    fake.requests.clear()
    summary = generate_pairs(PASSAGES, output, settings, chunking={"max_tokens": 64}, resume=True, progress=False)
    sent = sorted(request["prompt"] for request in fake.requests)
    assert sent == sorted(build_prompt(DEFAULT_PROMPT, passage, 2) for passage in PASSAGES[2:])
    pairs = read_jsonl(output)
    assert len(pairs) == 12 == summary.questions and extra not in pairs
    assert sorted({pair["passage_id"] for pair in pairs}) == sorted(passage.passage_id for passage in PASSAGES)
    summary = generate_pairs(PASSAGES, output, settings, chunking={"max_tokens": 64}, resume=True, log=print)
    assert summary.questions == 12 and summary.passages_done_before == 6
    summary = generate_pairs(PASSAGES[:1], output, settings, overwrite=True, progress=False)
    assert summary.questions == 2 and len(read_jsonl(output)) == 2


def test_a_passage_the_server_refuses_is_recorded_and_the_run_goes_on(fake: FakeLLM, tmp_path: Path):
    from ft_helpers.generate import make_client

    key = "sk-secret-123"
    output = tmp_path / "pairs.jsonl"
    settings = settings_for(fake, concurrency=1)
    fake.script(Reply(), Reply(400, f"This passage is too long for the context (key {key})"))
    summary = generate_pairs(
        PASSAGES[:4], output, settings, client=make_client(settings, key), api_key=key, progress=False
    )
    assert summary.refused == 1 and summary.questions == 6 and len(fake.requests) == 4
    assert summary.first_refusal.startswith(f"{PASSAGES[1].passage_id}: 400 This passage is too long")
    assert "The server refused 1 passage (the first: report-0.md#2: 400" in summary.describe()
    assert key not in progress_path(output).read_text() and key not in summary.describe()
    fake.requests.clear()
    summary = generate_pairs(PASSAGES[:4], output, settings, resume=True, progress=False)
    assert not fake.requests and summary.refused == 1  # a refused passage is done: it is not sent again


def test_a_server_that_refuses_every_passage_stops_the_run(fake: FakeLLM, tmp_path: Path):
    fake.script(*[Reply(400, "unsupported parameter") for _ in range(6)])
    settings = settings_for(fake, concurrency=1)
    with pytest.raises(GenerationError, match=r"answered 400: unsupported parameter") as error:
        generate_pairs(PASSAGES, tmp_path / "pairs.jsonl", settings, progress=False)
    assert "after" not in str(error.value)  # a 400 is not retried, so the message says no retries
    assert len(fake.requests) == 3
