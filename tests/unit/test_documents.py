"""Documents in: reading .txt/.md/.pdf/.html, and cutting documents into passages that fit the model's window."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from pdf_writer import write_pdf

from ft_helpers.data import QADataError
from ft_helpers.documents import read_documents, split_document, split_documents, split_sentences

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "documents"


@pytest.fixture(scope="module")
def tokenizer():
    from conftest import minilm_path
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path())


def test_the_example_folder_reads_every_format_with_its_path_as_id():
    documents = read_documents(EXAMPLES)
    assert len(documents) == 16
    suffixes = {doc_id.rsplit(".", 1)[1] for doc_id in documents}
    assert suffixes == {"md", "txt", "pdf", "html"}
    pdf = documents["acme-manufacturing-part1.pdf"]
    assert "Net revenue for fiscal 2023 was $4.82 billion" in " ".join(pdf.split())
    html = documents["greenleaf-grocers-part1.html"]
    assert "Greenleaf Grocers" in html
    assert "console.log" not in html and "margin" not in html  # scripts and styles are not text
    assert all(text.strip() for text in documents.values())


def test_a_single_file_and_nested_folders_keep_relative_ids(tmp_path: Path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "deep.txt").write_text("Deep text.", encoding="utf-8")
    (tmp_path / "top.md").write_text("# Top\n\nText.", encoding="utf-8")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")  # other types are left out
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD.txt").write_text("hidden", encoding="utf-8")
    assert list(read_documents(tmp_path)) == ["a/b/deep.txt", "top.md"]
    assert read_documents(tmp_path / "top.md") == {"top.md": "Top\n\nText."}  # a heading's marks are not words
    (tmp_path / "table.html").write_text("<table><tr><td>Revenue</td><td>4.8</td></tr></table>", encoding="utf-8")
    assert read_documents(tmp_path / "table.html")["table.html"].split() == ["Revenue", "4.8"]


def test_an_empty_folder_a_missing_path_and_a_broken_pdf_are_one_line(tmp_path: Path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(QADataError, match=r"No documents in .*empty.*\.txt, \.md, \.pdf") as empty:
        read_documents(tmp_path / "empty")
    with pytest.raises(QADataError, match="neither a folder nor a file"):
        read_documents(tmp_path / "missing")
    broken = tmp_path / "docs"
    broken.mkdir()
    (broken / "good.txt").write_text("Fine.", encoding="utf-8")
    (broken / "scan.pdf").write_bytes(b"%PDF-1.4\nthis is not a pdf at all\n")
    with pytest.raises(QADataError, match=r"Cannot read .*scan\.pdf.* as PDF .*move it out of the folder") as bad:
        read_documents(broken)
    assert capsys.readouterr().err == ""  # pypdf's own warnings are not printed before our line
    (broken / "scan.pdf").unlink()
    (broken / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(QADataError, match=r"latin1\.txt.*not UTF-8") as latin:
        read_documents(broken)
    for error in (empty, bad, latin):
        assert "\n" not in str(error.value) and len(str(error.value)) < 300


def test_a_pdf_of_several_pages_is_read_whole(tmp_path: Path):
    paragraphs = [f"Paragraph {n} says that segment {n} grew by {n} percent." for n in range(80)]
    documents = read_documents(write_pdf(tmp_path / "long.pdf", paragraphs))
    text = " ".join(documents["long.pdf"].split())
    assert "Paragraph 0 says" in text and "Paragraph 79 says that segment 79 grew by 79 percent." in text


def test_sentences_split_at_ends_and_blank_lines():
    text = "First one. Second one?  Third!\n\nNew paragraph without end\nstill the same sentence."
    assert split_sentences(text) == [
        "First one.",
        "Second one?",
        "Third!",
        "New paragraph without end still the same sentence.",
    ]


def test_passages_are_whole_sentences_within_the_window_and_overlap(tokenizer):
    sentences = [f"In {2000 + n} the company opened {n + 3} new plants in region {n}." for n in range(30)]
    text = " ".join(sentences)
    passages = split_document(text, tokenizer, max_tokens=60, overlap=20)
    assert len(passages) > 3
    for passage in passages:
        assert len(tokenizer(passage, add_special_tokens=False)["input_ids"]) <= 60
        assert set(split_sentences(passage)) <= set(sentences)  # whole sentences only
    covered = [sentence for passage in passages for sentence in split_sentences(passage)]
    assert set(covered) == set(sentences)  # nothing lost
    for before, after in itertools.pairwise(passages):
        assert split_sentences(before)[-1] == split_sentences(after)[0]  # the overlap repeats the last sentence
    no_overlap = split_document(text, tokenizer, max_tokens=60, overlap=0)
    assert sum(len(split_sentences(p)) for p in no_overlap) == len(sentences)


def test_a_sentence_longer_than_the_window_is_cut_and_short_passages_can_be_left_out(tokenizer):
    long_sentence = " ".join(["revenue"] * 150) + "."  # 151 tokens: 50 + 50 + 50 + 1
    passages = split_document(long_sentence, tokenizer, max_tokens=50)
    assert len(passages) == 4 and all(len(tokenizer(p, add_special_tokens=False)["input_ids"]) <= 50 for p in passages)
    documents = {"a.txt": "Heading\n\n" + "Short.", "b.txt": "A sentence with quite a few words in it, to pass."}
    kept = split_documents(documents, tokenizer, max_tokens=20, overlap=0, min_tokens=5)
    assert [(p.doc_id, p.text) for p in kept] == [("b.txt", documents["b.txt"])]  # "Heading Short." is 3 tokens
    heading = split_document("Results\n\nRevenue grew. Costs fell.\n\nOutlook is stable.", tokenizer, max_tokens=50)
    assert heading == ["Results\nRevenue grew. Costs fell.\nOutlook is stable."]  # paragraphs keep their lines
    passages = split_documents({"x.md": "One. Two. Three."}, tokenizer, max_tokens=2)
    assert [(p.doc_id, p.passage_id, p.text) for p in passages] == [
        ("x.md", "x.md#1", "One."),
        ("x.md", "x.md#2", "Two."),
        ("x.md", "x.md#3", "Three."),
    ]
    assert split_documents({"empty.pdf": "  \n "}, tokenizer, max_tokens=20) == []
    with pytest.raises(ValueError, match="overlap < max_tokens"):
        split_document("Text.", tokenizer, max_tokens=10, overlap=10)
