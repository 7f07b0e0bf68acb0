// Create an inference key with the management API (fetch, built into Node): a $5 monthly limit, sim models
// only. SWITCHYARD_ADMIN_KEY: a management key. The secret ("key") is shown only once.
const baseURL = process.env.SWITCHYARD_BASE_URL ?? "http://127.0.0.1:8080";

const response = await fetch(`${baseURL}/api/v1/keys`, {
  method: "POST",
  headers: { Authorization: `Bearer ${process.env.SWITCHYARD_ADMIN_KEY}`, "Content-Type": "application/json" },
  body: JSON.stringify({ name: "my-app", limit: 5, limit_reset: "monthly", allowed_models: ["sim/*"] }),
});
const created = await response.json();
if (!response.ok) throw new Error(`${response.status}: ${created.error.message}`);
console.log(created.data.hash, created.key);
