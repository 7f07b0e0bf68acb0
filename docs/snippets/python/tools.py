"""Tool calling, a round trip: the model calls get_weather, we run it, the model answers with its result."""
import json
import os

from openai import OpenAI

client = OpenAI(base_url=os.environ.get("SWITCHYARD_BASE_URL", "http://127.0.0.1:8080") + "/api/v1",
                api_key=os.environ["SWITCHYARD_API_KEY"])
tools = [{"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
messages = [{"role": "user", "content": "What is the weather in Paris?"}]

first = client.chat.completions.create(model="sim/fast", messages=messages, tools=tools)
call = first.choices[0].message.tool_calls[0]
print("tool call:", call.function.name, call.function.arguments)

result = {"city": json.loads(call.function.arguments).get("city"), "temperature_c": 18}  # your function here
messages += [first.choices[0].message,
             {"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)}]
final = client.chat.completions.create(model="sim/fast", messages=messages, tools=tools)
print("answer:", final.choices[0].message.content)
