"""JSON with healing: sim/broken-json writes malformed JSON on purpose; the gateway repairs it and checks the
schema, and says so in `heal_status` ("healed") and `heal` (repairs, schema_valid)."""
import json
import os

from openai import OpenAI

client = OpenAI(base_url=os.environ.get("SWITCHYARD_BASE_URL", "http://127.0.0.1:8080") + "/api/v1",
                api_key=os.environ["SWITCHYARD_API_KEY"])
schema = {"type": "object", "additionalProperties": False, "required": ["city", "temperature_c"],
          "properties": {"city": {"type": "string"}, "temperature_c": {"type": "number"}}}

answer = client.chat.completions.create(
    model="sim/broken-json", messages=[{"role": "user", "content": "The weather in Paris, as JSON"}],
    response_format={"type": "json_schema", "json_schema": {"name": "weather", "strict": True, "schema": schema}})
weather = json.loads(answer.choices[0].message.content)  # parses: healed
print(answer.model_extra["heal_status"], answer.model_extra["heal"], weather)
