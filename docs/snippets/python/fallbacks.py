"""Fallbacks: sim/down fails every call, so the next model in `models` answers; a routing policy
(switchyard/fallback-demo: sim/down, then sim/fast) does the same by name."""
import os

from openai import OpenAI

client = OpenAI(base_url=os.environ.get("SWITCHYARD_BASE_URL", "http://127.0.0.1:8080") + "/api/v1",
                api_key=os.environ["SWITCHYARD_API_KEY"])
hello = [{"role": "user", "content": "Say hello"}]

answer = client.chat.completions.create(model="sim/down", messages=hello,
                                        extra_body={"models": ["sim/down", "sim/fast"]})
print("models: served by", answer.model)
answer = client.chat.completions.create(model="switchyard/fallback-demo", messages=hello)
print("route: served by", answer.model)
