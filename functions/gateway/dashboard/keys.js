// Keys (management key, keys:read / keys:write): inference and management keys, created with restrictions,
// rotated with a grace period, disabled; a new secret is shown once.
import { api, qs } from "./api.js";
import { clearErrors, card, field, h, leave, list, showError, table, take, usd, when } from "./ui.js";

export async function keys(ctx) {
  const management = ctx.args[0] === "management";
  const listed = await api(`/keys${qs({ management: management ? "true" : "" })}`);
  const secret = h("div", { id: "key-secret", role: "status", "aria-live": "polite" });
  const shown = take("keys");
  if (shown) {
    secret.append(h("div", { class: "card notice" }, h("p", {}, `${shown.message}. Its secret is shown once: copy it now.`),
      h("label", { for: "new-secret" }, "Secret"),
      h("input", { id: "new-secret", readonly: true, value: shown.secret, class: "mono", "data-autofocus": "" })));
  }
  const reveal = async (message, token) => { leave("keys", { message, secret: token }); await ctx.rerender(); };
  const rows = listed.data;
  const switcher = h("p", { class: "toolbar" }, management ? h("a", { href: "#/keys" }, "Inference keys")
    : h("a", { href: "#/keys/management" }, "Management keys"));
  const listing = table(management ? "Management keys" : "Inference keys", [
    { label: "Name", value: (k) => k.name },
    { label: "Key", value: (k) => h("code", {}, k.label || "–") },
    { label: "Hash", value: (k) => h("code", {}, k.hash) },
    { label: "State", value: (k) => (k.disabled ? "disabled" : "active") },
    { label: "Usage", num: true, value: (k) => usd(k.usage) },
    { label: "Limit", num: true, value: (k) => (k.limit === null ? "none" : `${usd(k.limit)}${k.limit_reset ? ` ${k.limit_reset}` : ""}`) },
    { label: "Restrictions", value: (k) => restrictions(k) },
    { label: "Created", value: (k) => when(k.created_at) },
    { label: "", value: (k) => h("span", { class: "actions" },
      h("button", { type: "button", class: "small", "aria-label": `Rotate ${k.name}`, onclick: async (e) => {
        try {
          const grace = Number(document.getElementById("grace").value || 0);
          const r = await api(`/keys/${k.hash}/rotate`, { method: "POST", body: { grace_seconds: grace } });
          await reveal(`Rotated ${k.name}; the old secret works for ${r.old_secret_refused_within_seconds} s more at most`, r.key);
        } catch (error) { e.target.closest("td").append(h("span", { class: "field-error", role: "alert" }, ` ${error.message}`)); }
      } }, "Rotate"),
      h("button", { type: "button", class: "small danger", "aria-label": `${k.disabled ? "Enable" : "Disable"} ${k.name}`,
        onclick: async (e) => {
          try {
            await api(`/keys/${k.hash}`, { method: "PATCH", body: { disabled: !k.disabled } });
            await ctx.rerender();
          } catch (error) { e.target.closest("td").append(h("span", { class: "field-error", role: "alert" }, ` ${error.message}`)); }
        } }, k.disabled ? "Enable" : "Disable")) },
  ], rows, { rowKey: (k) => k.hash, empty: "No keys of this kind." });
  const grace = h("div", { class: "toolbar" }, h("label", { for: "grace" }, "Rotation grace (seconds)"),
    h("input", { id: "grace", name: "grace", type: "number", min: "0", max: "2592000", value: "0" }));
  return h("div", {}, secret, switcher, card(management ? "Management keys" : "Inference keys", grace, listing),
    card("Create a key", keyForm(ctx, management, reveal)));
}

function restrictions(k) {
  const parts = [];
  if (k.allowed_models) parts.push(`models: ${k.allowed_models.join(", ")}`);
  if (k.allowed_ips) parts.push(`IPs: ${k.allowed_ips.join(", ")}`);
  if (k.allowed_origins) parts.push(`origins: ${k.allowed_origins.join(", ")}`);
  if (k.rpm) parts.push(`${k.rpm}/min`);
  if (k.rpd) parts.push(`${k.rpd}/day`);
  if (k.expires_at) parts.push(`expires ${when(k.expires_at)}`);
  if (k.zero_log) parts.push("zero-log");
  if (k.scopes) parts.push(`scopes: ${k.scopes.join(", ")}`);
  return parts.join("; ") || "none";
}

function keyForm(ctx, management, reveal) {
  const form = h("form", { id: "key-form", novalidate: true },
    field("Name", { name: "name", required: true, autocomplete: "off", placeholder: "prod-customer-support-v2" }),
    field("Spend limit (USD)", { name: "limit", type: "number", min: "0", step: "any" }),
    field("Limit resets", { name: "limit_reset" }, h("select", { name: "limit_reset" },
      ["", "daily", "weekly", "monthly"].map((v) => h("option", { value: v }, v || "never")))),
    field("Allowed models", { name: "allowed_models", list: "model-ids", hint: "comma-separated ids or globs; empty: any" }),
    field("Allowed IPs", { name: "allowed_ips", hint: "comma-separated addresses or CIDRs" }),
    field("Allowed origins", { name: "allowed_origins", hint: "comma-separated, e.g. https://your-app.com" }),
    field("Requests per minute", { name: "rpm", type: "number", min: "1" }),
    field("Requests per day", { name: "rpd", type: "number", min: "1" }),
    field("Expires", { name: "expires_at", type: "date" }),
    h("div", { class: "field check" }, h("input", { type: "checkbox", id: "f-zero_log", name: "zero_log" }),
      h("label", { for: "f-zero_log" }, "Zero-log (no prompt or completion kept, ever)")),
    management ? field("Scopes", { name: "scopes", value: "analytics:read", hint: "comma-separated, e.g. keys:read, routes:write, or *" }) : null,
    h("p", { class: "form-error", role: "alert" }),
    h("button", { type: "submit" }, management ? "Create management key" : "Create key"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const f = form.elements;
    const body = { name: f.name.value.trim() };
    const number = (name) => { if (f[name].value !== "") body[name] = Number(f[name].value); };
    number("limit"); number("rpm"); number("rpd");
    if (f.limit_reset.value) body.limit_reset = f.limit_reset.value;
    for (const name of ["allowed_models", "allowed_ips", "allowed_origins"]) {
      if (list(f[name].value).length) body[name] = list(f[name].value);
    }
    if (f.expires_at.value) body.expires_at = `${f.expires_at.value}T00:00:00Z`;
    if (f.zero_log.checked) body.zero_log = true;
    if (management) { body.management = true; body.scopes = list(f.scopes.value); }
    try {
      const made = await api("/keys", { method: "POST", body });
      await reveal(`Created ${made.data.name} (${made.data.hash})${made.warnings ? `; ${made.warnings.join("; ")}` : ""}`, made.key);
    } catch (error) {
      showError(form, error);
    }
  });
  return form;
}

