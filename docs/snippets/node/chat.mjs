// A chat completion with the official openai package. SWITCHYARD_API_KEY: an inference key.
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: `${process.env.SWITCHYARD_BASE_URL ?? "http://127.0.0.1:8080"}/api/v1`,
  apiKey: process.env.SWITCHYARD_API_KEY,
});

const answer = await client.chat.completions.create({
  model: "sim/fast",
  messages: [{ role: "user", content: "Say hello" }],
});
console.log(answer.choices[0].message.content);
