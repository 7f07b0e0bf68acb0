import orjson
import pytest

from shared.chat.schema import parse_chat_request
from shared.errors import BadRequestError

USER = [{"role": "user", "content": "hi"}]


def body(**fields) -> bytes:
    return orjson.dumps({"model": "sim/fast", "messages": USER, **fields})


@pytest.mark.parametrize("raw, field", [
    (b"{", "body"),
    (b"[1, 2]", "body"),
    (orjson.dumps({"messages": USER}), "model"),
    (body(messages=[]), "messages"),
    (body(messages=[{"role": "wizard", "content": "x"}]), "messages[0].role"),
    (body(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]),
     "messages[0].content[0].image_url.url"),
    (body(messages=[{"role": "tool", "content": "x"}]), "messages[0]"),
    (body(temperature=3), "temperature"),
    (body(top_p=-0.1), "top_p"),
    (body(max_tokens=0), "max_tokens"),
    (body(stop=["a", "b", "c", "d", "e"]), "stop"),
    (body(stop=[1]), "stop[0]"),
    (body(n=0), "n"),
    (body(stream="yes"), "stream"),
    (body(tools=[{"type": "function", "function": {"name": "bad name"}}]), "tools[0].function.name"),
    (body(tool_choice={"type": "function", "function": {"name": "f"}}), "tool_choice"),
    (body(response_format={"type": "xml"}), "response_format.type"),
    (body(response_format={"type": "json_schema"}), "response_format"),
])
def test_bad_requests_name_the_field(raw, field):
    with pytest.raises(BadRequestError) as e:
        parse_chat_request(raw)
    assert e.value.metadata["field"] == field, e.value.message
    assert e.value.status == 400


def test_the_full_openai_request_is_accepted():
    req = parse_chat_request(body(
        messages=[{"role": "system", "content": "be brief"},
                  {"role": "user", "content": [{"type": "text", "text": "what is this"},
                                               {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]},
                  {"role": "assistant", "content": None,
                   "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                  {"role": "tool", "tool_call_id": "c1", "content": "42"}],
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        tool_choice="auto", response_format={"type": "json_object"}, temperature=0.2, top_p=0.9,
        max_completion_tokens=50, stop="\n\n", seed=7, n=2, stream=True,
        stream_options={"include_usage": True}, user="u-1"))
    assert req.output_limit == 50 and req.wants_json and req.n == 2


def test_connection_steering_fields_never_reach_an_upstream():
    req = parse_chat_request(body(api_base="http://169.254.169.254", base_url="http://evil", api_key="x",
                                  extra_headers={"Host": "evil"}, top_k=5, models=["a/b"], heal_json=True))
    sent = req.upstream_body("gpt-x")
    assert sent["model"] == "gpt-x" and sent["top_k"] == 5
    assert not {"api_base", "base_url", "api_key", "extra_headers", "models", "heal_json"} & set(sent)
