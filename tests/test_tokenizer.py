"""Token counts when an upstream sends no usage: tiktoken (shipped encodings) for OpenAI models, else an estimate."""

import hashlib
import lzma
import re
from pathlib import Path

import pytest
import tiktoken_ext.openai_public

from shared.chat.service import CallContext, ChatService
from shared.config import get_settings
from shared.tokenizer import HERE, URLS, count_messages, count_text, encoding_for, estimate
from tests.support import Recorder, catalog_from, run
from tests.test_sim import req

TEXT = "Hello from the fake upstream."


@pytest.mark.parametrize("name", sorted(URLS))
def test_shipped_encodings_are_the_files_tiktoken_pins(name):
    source = Path(tiktoken_ext.openai_public.__file__).read_text()
    pinned = re.search(rf'{name}\.tiktoken",\s*expected_hash="([0-9a-f]{{64}})"', source).group(1)
    data = lzma.decompress((HERE / f"{name}.tiktoken.xz").read_bytes())
    assert hashlib.sha256(data).hexdigest() == pinned


def test_model_families_and_counts():
    assert encoding_for("openai/gpt-4o-mini") == "o200k_base" and encoding_for("gpt-4") == "cl100k_base"
    assert encoding_for("anthropic/claude-haiku-4.5") is None and encoding_for("fast") is None
    assert count_text("Hello, world!", "gpt-4o") == 4  # "Hello", ",", " world", "!"
    assert count_text("Hello, world!", "claude-haiku-4-5") == estimate("Hello, world!") == 4
    # OpenAI's chat format: (3 + role + content) per message + 3 priming = (3+1+6) + (3+1+2) + 3
    assert count_messages([("system", "You are a helpful assistant.", None), ("user", "Hello!", None)], "gpt-4o") == 19


@pytest.fixture
def service(fake_upstream, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_VENDOR_KEY", "k")
    return ChatService(catalog_from(fake_upstream.catalog_yaml(), tmp_path), Recorder(), get_settings())


def stream_usage(service, model):
    async def go():
        sse = await service.open_stream(req(model=model, stream=True), CallContext(key_id="k"))
        return [frame async for frame in sse]
    run(go())
    return service.meter.events[-1]


@pytest.mark.parametrize("model, completion", [("fake/gpt-4o-no-usage", 6), ("fake/no-usage", (len(TEXT) + 3) // 4)])
def test_usage_missing_upstream_is_counted_and_marked_estimated(service, model, completion):
    body = run(service.complete(req(model=model), CallContext(key_id="k")))
    assert body["usage"]["completion_tokens"] == completion and body["usage"]["estimated"] is True
    streamed = stream_usage(service, model)
    assert streamed.completion_tokens == completion and streamed.usage_estimated is True
    assert streamed.prompt_tokens == body["usage"]["prompt_tokens"] > 0 and streamed.cost == body["usage"]["cost"] > 0


def test_reported_usage_is_never_replaced(service):
    assert stream_usage(service, "fake/ok").usage_estimated is False
