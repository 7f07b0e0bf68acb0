// Fallbacks: sim/down fails every call, so the next model in `models` answers; a routing policy
// (switchyard/fallback-demo: sim/down, then sim/fast) does the same by name.
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: `${process.env.SWITCHYARD_BASE_URL ?? "http://127.0.0.1:8080"}/api/v1`,
  apiKey: process.env.SWITCHYARD_API_KEY,
});
const hello = [{ role: "user", content: "Say hello" }];

let answer = await client.chat.completions.create({ model: "sim/down", models: ["sim/down", "sim/fast"], messages: hello });
console.log("models: served by", answer.model);
answer = await client.chat.completions.create({ model: "switchyard/fallback-demo", messages: hello });
console.log("route: served by", answer.model);
