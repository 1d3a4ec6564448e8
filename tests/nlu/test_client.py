"""RasaClient against a small real HTTP server: timeouts, circuit breaker, never an exception."""

from __future__ import annotations

import logging
import time

import pytest

from nlu.client import RasaClient
from tests.nlu.fake_rasa import fake_rasa

WARNING = "Rasa unavailable, using fallback"
BACK = "Rasa back"


class Clock:
    """An injected monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def messages(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "nlu.client" and r.getMessage().startswith(text)
    ]


async def test_parse_returns_rasas_intent_when_it_answers() -> None:
    async with fake_rasa() as rasa:
        client = RasaClient(rasa.url, timeout=2)
        try:
            parse = await client.parse("ik stop even")
        finally:
            await client.aclose()
    assert (parse.intent, parse.confidence, parse.source) == ("pause", 0.93, "rasa")
    assert rasa.requests == ["ik stop even"]


async def test_rasas_nlu_fallback_becomes_out_of_scope() -> None:
    async with fake_rasa() as rasa:
        rasa.intent, rasa.confidence = "nlu_fallback", 0.4
        client = RasaClient(rasa.url, timeout=2)
        try:
            parse = await client.parse("qwertyuiop")
        finally:
            await client.aclose()
    assert (parse.intent, parse.source) == ("out_of_scope", "rasa")


async def test_a_refused_connection_falls_back_and_logs_once(
    closed_port_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="nlu.client")
    client = RasaClient(closed_port_url, timeout=0.5)
    try:
        first = await client.parse("pauze")
        second = await client.parse("merci")
    finally:
        await client.aclose()
    assert (first.intent, first.source) == ("pause", "fallback")
    assert (second.intent, second.source) == ("thanks", "fallback")
    assert not client.available
    assert len(messages(caplog, WARNING)) == 1


async def test_a_stalling_rasa_costs_no_more_than_the_timeout() -> None:
    async with fake_rasa() as rasa:
        rasa.mode = "slow"
        client = RasaClient(rasa.url, timeout=0.2)
        try:
            started = time.monotonic()
            parse = await client.parse("geen idee")
            elapsed = time.monotonic() - started
        finally:
            await client.aclose()
    assert (parse.intent, parse.source) == ("dont_know", "fallback")
    assert elapsed < 1.0


async def test_the_breaker_skips_rasa_for_a_while_then_finds_it_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="nlu.client")
    clock = Clock()
    async with fake_rasa() as rasa:
        rasa.mode = "error"
        client = RasaClient(rasa.url, timeout=1, retry_after=15, clock=clock)
        try:
            assert (await client.parse("hallo")).source == "fallback"
            assert len(rasa.requests) == 1
            clock.now += 10  # still inside the cool-down: Rasa is not even asked
            assert (await client.parse("hallo")).source == "fallback"
            assert len(rasa.requests) == 1
            clock.now += 6  # cool-down over, Rasa still broken: asked once, skipped again
            assert (await client.parse("hallo")).source == "fallback"
            assert len(rasa.requests) == 2
            rasa.mode = "ok"
            clock.now += 16
            parse = await client.parse("ik stop even")
        finally:
            await client.aclose()
    assert (parse.intent, parse.source) == ("pause", "rasa")
    assert client.available
    assert len(rasa.requests) == 3
    assert len(messages(caplog, WARNING)) == 1
    assert len(messages(caplog, BACK)) == 1


async def test_a_new_outage_is_logged_again(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="nlu.client")
    clock = Clock()
    async with fake_rasa() as rasa:
        client = RasaClient(rasa.url, timeout=1, retry_after=5, clock=clock)
        try:
            for mode in ("error", "ok", "garbage", "ok"):
                rasa.mode = mode
                clock.now += 6
                await client.parse("hallo")
        finally:
            await client.aclose()
    assert len(messages(caplog, WARNING)) == 2
    assert len(messages(caplog, BACK)) == 2


async def test_non_json_from_rasa_is_a_failure_not_an_exception() -> None:
    async with fake_rasa() as rasa:
        rasa.mode = "garbage"
        client = RasaClient(rasa.url, timeout=1)
        try:
            parse = await client.parse("ja")
        finally:
            await client.aclose()
    assert (parse.intent, parse.source) == ("affirm", "fallback")


async def test_empty_text_never_reaches_rasa() -> None:
    async with fake_rasa() as rasa:
        client = RasaClient(rasa.url, timeout=1)
        try:
            parse = await client.parse("   ")
        finally:
            await client.aclose()
    assert rasa.requests == []
    assert (parse.intent, parse.source) == ("out_of_scope", "fallback")


@pytest.mark.parametrize("text", ["a" * 10_000, "😂😂", "\x00\x1b[2J", "я ik", "\ud800"])
async def test_odd_input_never_raises(text: str) -> None:
    async with fake_rasa() as rasa:
        client = RasaClient(rasa.url, timeout=1)
        try:
            parse = await client.parse(text)
        finally:
            await client.aclose()
    assert (parse.intent, parse.source) == ("pause", "rasa")  # odd text is not an outage
    assert all(len(sent) <= 2000 for sent in rasa.requests)  # long texts are cut for Rasa
