// Tool calling, a round trip: the model calls get_weather, we run it, the model answers with its result.
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: `${process.env.SWITCHYARD_BASE_URL ?? "http://127.0.0.1:8080"}/api/v1`,
  apiKey: process.env.SWITCHYARD_API_KEY,
});
const tools = [{
  type: "function",
  function: {
    name: "get_weather",
    description: "The current weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
}];
const messages = [{ role: "user", content: "What is the weather in Paris?" }];

const first = await client.chat.completions.create({ model: "sim/fast", messages, tools });
const call = first.choices[0].message.tool_calls[0];
console.log("tool call:", call.function.name, call.function.arguments);

const result = { city: JSON.parse(call.function.arguments).city, temperature_c: 18 }; // your function here
messages.push(first.choices[0].message, { role: "tool", tool_call_id: call.id, content: JSON.stringify(result) });
const final = await client.chat.completions.create({ model: "sim/fast", messages, tools });
console.log("answer:", final.choices[0].message.content);
