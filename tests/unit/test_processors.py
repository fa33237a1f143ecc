"""The built-in processors and the demo documents."""

from __future__ import annotations

import hashlib
import json
import time

import pytest

from pulling_agent.demo import demo_document, demo_documents
from pulling_agent.plugins import PluginError, load_processor
from pulling_agent.processors.base import ProcessingError, Processor
from pulling_agent.processors.builtin import (
    NoopProcessor,
    ProcessorOptionError,
    SlowProcessor,
)
from pulling_agent.processors.digest import DigestProcessor, digest
from pulling_agent.sources.base import Document


def doc(payload: str, doc_id: int = 1) -> Document:
    return Document(id=doc_id, payload=payload)


# ------------------------------------------------------------------ digest


def test_digest_of_a_json_document_measures_its_body() -> None:
    payload = json.dumps({"title": "Hello", "author": "Ada", "body": "one two\nthree"})
    result = json.loads(DigestProcessor().process(doc(payload)))
    assert result == {
        "sha256": hashlib.sha256(payload.encode()).hexdigest(),
        "format": "json",
        "title": "Hello",
        "words": 3,
        "lines": 2,
        "characters": 13,
    }


def test_digest_of_plain_text() -> None:
    result = digest("not json at all\nsecond line")
    assert result["format"] == "text"
    assert (result["words"], result["lines"], result["characters"]) == (6, 2, 27)
    assert "title" not in result


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ('"a json string"', 3),  # the string itself
        ("[1, 2, 3]", 3),  # other JSON: the payload's text
        ('{"title": "no body"}', 3),  # an object without body: the whole payload
        ("", 0),
    ],
)
def test_digest_of_other_shapes(payload: str, words: int) -> None:
    assert digest(payload)["words"] == words


def test_digest_is_deterministic_and_unicode_safe() -> None:
    payload = json.dumps({"body": "café ✓ 日本語"}, ensure_ascii=False)
    assert DigestProcessor().process(doc(payload)) == DigestProcessor().process(doc(payload))
    assert digest(payload)["characters"] == len("café ✓ 日本語")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ('{"poison": true, "body": "x"}', "poison document"),
        ('{"body": 42}', "'body' must be a string"),
        ('{"body": "ok", "title": ["a"]}', "'title' must be a string"),
    ],
)
def test_invalid_documents_raise_processing_error(payload: str, message: str) -> None:
    with pytest.raises(ProcessingError, match=message):
        DigestProcessor().process(doc(payload))


def test_poison_false_is_fine() -> None:
    assert digest('{"poison": false, "body": "x"}')["words"] == 1


def test_digest_works_on_every_demo_document() -> None:
    processor = DigestProcessor()
    for n, payload in enumerate(demo_documents(50, seed=3)):
        result = json.loads(processor.process(doc(payload, n)))
        assert result["format"] == "json"
        assert result["words"] > 5 and result["title"]


# ----------------------------------------------------------------- builtin


def test_builtin_processors_load_by_name() -> None:
    assert isinstance(load_processor("digest"), DigestProcessor)
    assert isinstance(load_processor("noop"), NoopProcessor)
    slow = load_processor("slow", {"seconds": "0", "fail_every": "2"})
    assert isinstance(slow, SlowProcessor)
    assert isinstance(slow, Processor)


def test_interruptible_declarations() -> None:
    assert DigestProcessor.interruptible is True
    assert NoopProcessor.interruptible is True
    assert SlowProcessor().interruptible is True
    stubborn = SlowProcessor(seconds="0", interruptible="false")
    assert stubborn.interruptible is False
    assert SlowProcessor.interruptible is False  # the class default stays the base's
    assert stubborn.seconds == 0


def test_noop_returns_an_empty_result() -> None:
    assert NoopProcessor().process(doc("anything")) == ""


def test_slow_sleeps_per_document() -> None:
    processor = SlowProcessor(seconds="0.05")
    assert processor.seconds == 0.05
    assert processor.process(doc("x")) == "slept 0.05s"


def test_slow_with_cpu_computes_instead_of_sleeping(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr("pulling_agent.processors.builtin.time.sleep", slept.append)
    started = time.perf_counter()
    SlowProcessor(seconds="0.02", cpu="true").process(doc("x"))
    assert slept == [] and time.perf_counter() - started >= 0.02  # busy for the time
    SlowProcessor(seconds="0.02").process(doc("x"))
    assert slept == [0.02]


def test_slow_fails_every_nth_document() -> None:
    processor = SlowProcessor(seconds="0", fail_every="3")
    outcomes = []
    for n in range(1, 7):
        try:
            processor.process(doc("x", n))
            outcomes.append("ok")
        except ProcessingError as exc:
            assert f"document {n}" in str(exc)
            outcomes.append("failed")
    assert outcomes == ["ok", "ok", "failed", "ok", "ok", "failed"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"seconds": "soon"}, "'seconds' must be a number"),
        ({"seconds": "-1"}, "'seconds' must be >= 0"),
        ({"seconds": "inf"}, "finite"),
        ({"interruptible": "maybe"}, "'interruptible' must be true or false"),
        ({"fail_every": "1.5"}, "'fail_every' must be a whole number"),
        ({"fail_every": "-2"}, "'fail_every' must be >= 0"),
    ],
)
def test_slow_option_errors_are_clear(options: dict[str, str], message: str) -> None:
    with pytest.raises(ProcessorOptionError, match=message):
        SlowProcessor(**options)


@pytest.mark.parametrize("word", ["true", "TRUE", " yes ", "on", "1"])
def test_true_words(word: str) -> None:
    assert SlowProcessor(seconds="0", interruptible=word).interruptible is True


@pytest.mark.parametrize("word", ["false", "No", "off", "0"])
def test_false_words(word: str) -> None:
    assert SlowProcessor(seconds="0", interruptible=word).interruptible is False


def test_unknown_options_are_refused_through_the_loader() -> None:
    with pytest.raises(PluginError, match="rejected its options"):
        load_processor("slow", {"sconds": "1"})
    with pytest.raises(PluginError, match="rejected its options"):
        load_processor("digest", {"anything": "1"})
    with pytest.raises(PluginError, match="'seconds' must be a number"):
        load_processor("slow", {"seconds": "soon"})


# -------------------------------------------------------------------- demo


def test_demo_documents_are_deterministic_by_seed() -> None:
    assert list(demo_documents(5, seed=7)) == list(demo_documents(5, seed=7))
    assert list(demo_documents(5, seed=7)) != list(demo_documents(5, seed=8))
    assert list(demo_documents(3, seed=1, start=2)) == [demo_document(n, 1) for n in (2, 3, 4)]


def test_demo_documents_look_real() -> None:
    documents = [json.loads(d) for d in demo_documents(20)]
    assert [d["index"] for d in documents] == list(range(20))
    for document in documents:
        assert set(document) == {"index", "title", "author", "body", "tags"}
        assert len(document["author"].split()) == 2
        assert document["body"].count(".") >= 3
        assert 100 < len(json.dumps(document)) < 1000
    assert len({d["body"] for d in documents}) > 15, "varied, not one text repeated"
    with pytest.raises(ValueError, match="count"):
        list(demo_documents(-1))
