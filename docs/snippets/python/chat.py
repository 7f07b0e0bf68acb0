"""A chat completion with the official openai SDK. SWITCHYARD_API_KEY: an inference key."""
import os

from openai import OpenAI

client = OpenAI(base_url=os.environ.get("SWITCHYARD_BASE_URL", "http://127.0.0.1:8080") + "/api/v1",
                api_key=os.environ["SWITCHYARD_API_KEY"])

answer = client.chat.completions.create(model="sim/fast", messages=[{"role": "user", "content": "Say hello"}])
print(answer.choices[0].message.content)
