// Routing policies (management key, routes:read / routes:write): the list, and a form that creates or
// replaces one; the API's 400 shows next to the field it names.
import { api } from "./api.js";
import { card, clearErrors, field, h, int, leave, list, showError, table, take } from "./ui.js";

const ERROR_TYPES = ["context_length_exceeded", "rate_limit_exceeded", "provider_error", "provider_unavailable",
  "provider_overloaded", "timeout", "content_policy_violation", "model_not_found", "invalid_request"];

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
      leave("routing", { message: `Saved ${saved.data.id}. Call it as model "${saved.data.id}".` });
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

