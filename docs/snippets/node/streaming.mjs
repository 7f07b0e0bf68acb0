// A streamed chat completion: text as it comes, then the usage of the final chunk.
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: `${process.env.SWITCHYARD_BASE_URL ?? "http://127.0.0.1:8080"}/api/v1`,
  apiKey: process.env.SWITCHYARD_API_KEY,
});

const stream = await client.chat.completions.create({
  model: "sim/fast",
  stream: true,
  messages: [{ role: "user", content: "Tell me a story" }],
});
for await (const chunk of stream) {
  if (chunk.choices.length && chunk.choices[0].delta.content) process.stdout.write(chunk.choices[0].delta.content);
  if (chunk.usage) console.log(`\n[${chunk.usage.completion_tokens} tokens]`);
}
