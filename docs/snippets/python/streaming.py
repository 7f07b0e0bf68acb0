"""A streamed chat completion: text as it comes, then the usage of the final chunk."""
import os

from openai import OpenAI

client = OpenAI(base_url=os.environ.get("SWITCHYARD_BASE_URL", "http://127.0.0.1:8080") + "/api/v1",
                api_key=os.environ["SWITCHYARD_API_KEY"])

stream = client.chat.completions.create(model="sim/fast", stream=True,
                                        messages=[{"role": "user", "content": "Tell me a story"}])
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        print(chunk.choices[0].delta.content, end="", flush=True)
    if chunk.usage:
        print(f"\n[{chunk.usage.completion_tokens} tokens]")
