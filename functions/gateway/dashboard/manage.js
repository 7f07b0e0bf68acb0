// The management views (a management key; each call needs its scope, a 403 says which): routing policies, keys,
// the audit log, synthetic jobs. Every change goes through the public API and is audited there.
import { api, qs } from "./api.js";
import { card, clearErrors, failure, field, h, int, list, pct, showError, table, usd, when } from "./ui.js";

// What a change leaves for the view's next render (which replaces the form that made it): a message, a secret.
let flash = null;
const take = (view) => { const f = flash && flash.view === view ? flash : null; if (f) flash = null; return f; };

const ERROR_TYPES = ["context_length_exceeded", "rate_limit_exceeded", "provider_error", "provider_unavailable",
  "provider_overloaded", "timeout", "content_policy_violation", "model_not_found", "invalid_request"];

// ---- Routing policies --------------------------------------------------------------------------------------

export async function routing(ctx) {
  const [policies, models] = await Promise.all([api("/routes"), api("/models")]);
  const ids = models.data.map((m) => m.id).sort();
  const form = policyForm(ctx, ids, models.data);
  const rows = policies.data;
  const listing = table("Routing policies", [
    { label: "Policy", value: (p) => p.id },
    { label: "Default", value: (p) => describe(p.default) },
    { label: "Rules", num: true, value: (p) => int((p.rules || []).length) },
    { label: "On error", value: (p) => Object.entries(p.on_error || {}).map(([e, m]) => `${e} → ${m}`).join("; ") || "–" },
    { label: "Applies to", value: (p) => (p.applies_to || []).join(", ") || "–" },
    { label: "", value: (p) => h("span", { class: "actions" },
      h("button", { type: "button", class: "small", "aria-label": `Edit ${p.id}`, onclick: () => form.load(p) }, "Edit"),
      h("button", { type: "button", class: "small danger", "aria-label": `Delete ${p.id}`, onclick: async (e) => {
        try {
          await api(`/routes/${p.id}`, { method: "DELETE" });
          ctx.rerender();
        } catch (error) {
          e.target.closest("td").append(h("span", { class: "field-error", role: "alert" }, ` ${error.message}`));
        }
      } }, "Delete")) },
  ], rows, { rowKey: (p) => p.id, empty: "No routing policies yet." });
  const done = take("routing");
  if (done) form.say(done.message);
  else if (ctx.args[0] === "new" && ctx.args[1]) form.prefill(ctx.args[1], ctx.args[2] || "context_length_exceeded");
  const datalist = h("datalist", { id: "model-ids" }, ids.map((id) => h("option", { value: id })));
  return h("div", {}, datalist, card("Policies", listing), card("Create or edit a policy", form.element));
}

const describe = (action) => (action ? action.model
  || (action.split || []).map((w) => `${w.model} ${w.weight}`).join(" / ") || `fallbacks ${action.fallbacks.join(", ")}` : "–");

function policyForm(ctx, ids, models) {
  const onError = h("div", { class: "pairs", id: "on-error-rows" });
  const addPair = (type = "", model = "") => {
    const n = onError.children.length;
    onError.append(h("div", { class: "pair" },
      field(`Error type ${n + 1}`, { name: `on_error_type_${n}` }, h("select", { name: `on_error_type_${n}` },
        h("option", { value: "" }, "(none)"), ERROR_TYPES.map((t) => h("option", { value: t, selected: t === type }, t)))),
      field(`Reroute to model ${n + 1}`, { name: `on_error_model_${n}`, value: model, list: "model-ids",
        autocomplete: "off" })));
  };
  const status = h("p", { role: "status", class: "meta", id: "policy-status" });
  const element = h("form", { id: "policy-form", novalidate: true, "aria-describedby": "policy-status" }, status,
    field("Policy id", { name: "id", placeholder: "acme/default", required: true, autocomplete: "off",
      hint: "author/name: the model name clients ask for" }),
    field("Description", { name: "description" }),
    field("Default model", { name: "default", list: "model-ids", autocomplete: "off", required: true }),
    field("Fallback models", { name: "fallbacks", list: "model-ids", autocomplete: "off",
      hint: "comma-separated, tried in order when the default fails" }),
    h("fieldset", {}, h("legend", {}, "On error, reroute"), onError,
      h("button", { type: "button", class: "small", onclick: () => addPair() }, "Add another error type")),
    field("Applies to", { name: "applies_to", hint: "comma-separated model ids or globs this policy also takes requests for" }),
    field("Retries", { name: "retries", type: "number", min: "0", max: "5", hint: "empty: the gateway's default" }),
    field("Rules (JSON)", { name: "rules" }, h("textarea", { name: "rules", rows: 4, spellcheck: "false",
      placeholder: '[{"name": "long", "when": {"prompt_tokens": "> 8192"}, "then": {"model": "sim/long-context"}}]' })),
    h("p", { class: "form-error", role: "alert" }),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Save policy"),
      h("button", { type: "reset", class: "secondary" }, "Clear")));
  addPair();
  const set = (name, value) => { element.elements[name].value = value ?? ""; };
  element.addEventListener("reset", () => {
    clearErrors(element);
    onError.replaceChildren();
    addPair();
    status.textContent = "";
  });
  element.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(element);
    const f = element.elements;
    let body;
    try {
      body = {
        id: f.id.value.trim(), default: { model: f.default.value.trim() || undefined },
        fallbacks: list(f.fallbacks.value), on_error: {}, applies_to: list(f.applies_to.value),
      };
      if (f.description.value.trim()) body.description = f.description.value.trim();
      if (f.retries.value !== "") body.retries = Number(f.retries.value);
      for (let n = 0; n < onError.children.length; n += 1) {
        const type = f[`on_error_type_${n}`].value, model = f[`on_error_model_${n}`].value.trim();
        if (type && model) body.on_error[type] = model;
      }
      body.rules = f.rules.value.trim() ? JSON.parse(f.rules.value) : [];
    } catch {
      showError(element, { message: "Rules are not valid JSON", field: "rules" });
      return;
    }
    try {
      const saved = await api("/routes", { method: "PUT", body });
      flash = { view: "routing", message: `Saved ${saved.data.id}. Call it as model "${saved.data.id}".` };
      if (ctx.args.length) ctx.go("#/routing"); else await ctx.rerender();
    } catch (error) {
      // "models" (an unknown model) is about the model fields; the rest name the field they are about.
      showError(element, error, { models: "default", default: "default", on_error: "on_error_model_0" });
    }
  });
  return {
    element,
    say(message) { status.textContent = message; status.setAttribute("data-autofocus", ""); status.tabIndex = -1; },
    load(p) {
      element.reset();
      set("id", p.id);
      set("description", p.description);
      set("default", p.default && p.default.model);
      set("fallbacks", [...(p.default?.fallbacks || []), ...(p.fallbacks || [])].join(", "));
      set("applies_to", (p.applies_to || []).join(", "));
      set("retries", p.retries);
      set("rules", p.rules && p.rules.length ? JSON.stringify(p.rules, null, 1) : "");
      onError.replaceChildren();
      const pairs = Object.entries(p.on_error || {});
      (pairs.length ? pairs : [["", ""]]).forEach(([t, m]) => addPair(t, m));
      if (p.default && p.default.split) set("rules", JSON.stringify(p.rules || [], null, 1));
      element.elements.id.focus();
    },
    prefill(model, errorType) {
      // the longest context among the models that can answer here (not policies), the model's own lab first
      const lab = model.split("/")[0];
      const longest = models.filter((m) => m.id !== model && m.context_length && m.available !== false && !m.models)
        .sort((a, b) => b.context_length - a.context_length || (b.id.startsWith(`${lab}/`) - a.id.startsWith(`${lab}/`))
          || a.id.localeCompare(b.id))[0];
      set("id", `dashboard/${model.split("/").pop()}-${errorType.replace(/_/g, "-")}`.slice(0, 100));
      set("description", `${model}, rerouted on ${errorType}`);
      set("default", model);
      onError.replaceChildren();
      addPair(errorType, longest ? longest.id : "");
      status.textContent = `Prefilled from ${model}'s ${errorType} errors: check the models, then save.`;
    },
  };
}

// ---- Keys --------------------------------------------------------------------------------------------------

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
  const reveal = async (message, token) => { flash = { view: "keys", message, secret: token }; await ctx.rerender(); };
  const rows = listed.data;
  const switcher = h("p", { class: "toolbar" }, management ? h("a", { href: "#/keys" }, "Inference keys")
    : h("a", { href: "#/keys/management" }, "Management keys"));
  const listing = table(management ? "Management keys" : "Inference keys", [
    { label: "Name", value: (k) => k.label || k.name },
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

// ---- Audit log ---------------------------------------------------------------------------------------------

export async function audit(ctx) {
  const [action, cursor] = [ctx.args[0] || "", ctx.args[1] || ""];
  const page = await api(`/audit${qs({ action, cursor, limit: 50 })}`);
  const form = h("form", { class: "toolbar", onsubmit: (e) => {
    e.preventDefault();
    ctx.go(`#/audit/${encodeURIComponent(new FormData(e.target).get("action").trim())}`);
  } }, h("label", { for: "audit-action" }, "Action"),
  h("input", { id: "audit-action", name: "action", value: action, placeholder: "e.g. route.put", list: "audit-actions" }),
  h("datalist", { id: "audit-actions" }, ["key.create", "key.update", "key.rotate", "key.delete", "route.put",
    "route.delete", "rankings.run", "synthetic.start"].map((a) => h("option", { value: a }))),
  h("button", { type: "submit" }, "Filter"));
  return h("div", {}, form, card("Management actions, newest first", table("Audit log", [
    { label: "#", num: true, value: (e) => e.seq },
    { label: "At", value: (e) => when(e.at) },
    { label: "Action", value: (e) => e.action },
    { label: "Actor", value: (e) => (e.actor ? e.actor.label || e.actor.id : "–") },
    { label: "Target", value: (e) => e.target },
    { label: "Source IP", value: (e) => e.source_ip || "–" },
    { label: "Request", value: (e) => (e.request_id ? h("code", {}, e.request_id) : "–") },
  ], page.data, { rowKey: (e) => String(e.seq), empty: "No entries." }),
  page.next_cursor ? h("p", {}, h("a", { class: "button", href: `#/audit/${encodeURIComponent(action)}/${page.next_cursor}` }, "Older entries")) : null));
}

// ---- Synthetic jobs ----------------------------------------------------------------------------------------

const LIVE = new Set(["queued", "running"]);

export async function jobs(ctx) {
  const [listed, templates] = await Promise.all([api("/synthetic/jobs"), api("/synthetic/templates")]);
  const body = h("div", {});
  const render = (rows) => body.replaceChildren(table("Synthetic jobs", [
    { label: "Job", value: (j) => j.name || j.job_id },
    { label: "Status", value: (j) => h("span", { class: `status ${j.status}` }, j.status) },
    { label: "Progress", value: (j) => progress(j) },
    { label: "Failed rows", num: true, value: (j) => int(j.rows_failed ?? 0) },
    { label: "Cost", num: true, value: (j) => usd(j.live ? j.live.cost_usd : j.cost_usd) },
    { label: "License", value: (j) => (j.license && j.license.dataset_license) || "–" },
    { label: "Reviewed", value: (j) => (j.review && j.review.reviewed ? `yes (${j.review.reviewer})` : "no") },
    { label: "Started", value: (j) => when(j.started_at || j.created_at) },
  ], rows, { rowKey: (j) => j.job_id, empty: "No synthetic jobs yet." }));
  render(listed.data);
  let rows = listed.data;
  let timer = null;
  const poll = async () => {
    timer = null;
    const live = rows.filter((j) => LIVE.has(j.status));
    if (!live.length) return;
    const fresh = await Promise.all(live.map((j) => api(`/synthetic/jobs/${j.job_id}`).catch(() => j)));
    const byId = new Map(fresh.map((j) => [j.job_id, j]));
    rows = rows.map((j) => byId.get(j.job_id) || j);
    render(rows);
    schedule();
  };
  const schedule = () => {
    if (!timer && rows.some((j) => LIVE.has(j.status))) timer = setTimeout(poll, 1000);
  };
  ctx.onLeave(() => { if (timer) clearTimeout(timer); timer = -1; });
  schedule();
  return h("div", {}, card("Jobs", h("p", { class: "meta" }, "Running jobs update every second."), body),
    card("Start a job from a template", startForm(ctx, templates.data)));
}

function progress(j) {
  const done = j.live ? Math.max(j.live.rows_made, j.rows_done || 0) : (j.rows_done ?? (j.status === "completed" ? j.num_records : 0));
  const total = j.num_records || 0;
  const label = `${int(done)} of ${int(total)} rows`;
  return h("span", { class: "progress" }, h("progress", { max: String(total || 1), value: String(Math.min(done, total)),
    "aria-label": `${j.name || j.job_id}: ${label}` }), ` ${label}${total ? ` (${pct(done / total, 0)})` : ""}`);
}

function startForm(ctx, templates) {
  const form = h("form", { id: "job-form", novalidate: true },
    field("Template", { name: "template" }, h("select", { name: "template" },
      templates.map((t) => h("option", { value: t.name || t.id }, `${t.name || t.id}${t.description ? ` — ${t.description}` : ""}`)))),
    field("Rows", { name: "num_records", type: "number", min: "1", value: "20" }),
    field("Job name", { name: "name", hint: "empty: the template's" }),
    h("p", { class: "form-error", role: "alert" }),
    h("button", { type: "submit" }, "Start job"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const f = form.elements;
    const body = { template: f.template.value };
    if (f.num_records.value) body.num_records = Number(f.num_records.value);
    if (f.name.value.trim()) body.name = f.name.value.trim();
    try {
      await api("/synthetic/jobs", { method: "POST", body });
      await ctx.rerender();
    } catch (error) {
      showError(form, error);
    }
  });
  return form;
}
