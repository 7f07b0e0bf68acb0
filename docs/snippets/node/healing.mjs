// JSON with healing: sim/broken-json writes malformed JSON on purpose; the gateway repairs it and checks the
// schema, and says so in `heal_status` ("healed") and `heal` (repairs, schema_valid).
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: `${process.env.SWITCHYARD_BASE_URL ?? "http://127.0.0.1:8080"}/api/v1`,
  apiKey: process.env.SWITCHYARD_API_KEY,
});
const schema = {
  type: "object",
  additionalProperties: false,
  required: ["city", "temperature_c"],
  properties: { city: { type: "string" }, temperature_c: { type: "number" } },
};

const answer = await client.chat.completions.create({
  model: "sim/broken-json",
  messages: [{ role: "user", content: "The weather in Paris, as JSON" }],
  response_format: { type: "json_schema", json_schema: { name: "weather", strict: true, schema } },
});
const weather = JSON.parse(answer.choices[0].message.content); // parses: healed
console.log(answer.heal_status, JSON.stringify(answer.heal), JSON.stringify(weather));
