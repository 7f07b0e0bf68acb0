// The views any key may open: analytics, a model's errors, the rankings, the key itself. An inference key's
// answers are its own calls only (the API scopes them); a management key's are everyone's.
import { api, qs } from "./api.js";
import { bars, donut, legend, lines } from "./charts.js";
import { card, failure, h, int, ms, pct, table, usd, when } from "./ui.js";

export const RANGES = { "24h": ["Last 24 hours", 1], "7d": ["Last 7 days", 7], "30d": ["Last 30 days", 30],
  "90d": ["Last 90 days", 90] };

/** The range's start (an ISO time; the end is now) and the latency chart's bucket. */
export function span(range) {
  const days = (RANGES[range] || RANGES["7d"])[1];
  const from = new Date(Date.now() - days * 86400e3);
  from.setUTCSeconds(0, 0); // whole minutes: the same query within a minute is the same text
  return { from: from.toISOString().replace(".000Z", "Z"), granularity: days <= 7 ? "hour" : "day", days };
}

function rangePicker(ctx) {
  const select = h("select", { id: "range", name: "range", onchange: (e) => ctx.setRange(e.target.value) },
    Object.entries(RANGES).map(([value, [label]]) => h("option", { value, selected: value === ctx.range }, label)));
  return h("div", { class: "toolbar" }, h("label", { for: "range" }, "Time range"), select);
}

const settle = (results) => results.map((r) => (r.status === "fulfilled" ? r.value : r.reason));
const failed = (x) => x instanceof Error;
const rate = (completed, failedCalls) => (completed + failedCalls ? completed / (completed + failedCalls) : null);
const errorsLink = (model) => h("a", { href: `#/errors/${encodeURIComponent(model)}`, class: "button small",
  "aria-label": `View errors of ${model}` }, "View errors");

export async function analytics(ctx) {
  const { from, granularity } = span(ctx.range);
  // Three scans of the lake, drawn as each answers: model and lab together (a model has one lab, so the labs'
  // sums are the models' added up), the apps, and the latency over time.
  const slots = { totals: h("div", {}), models: placeholder("Top models by tokens"), labs: placeholder("Cost share by lab"),
    apps: placeholder("Usage by app"), latency: placeholder("Latency percentiles") };
  const frame = h("div", {}, rangePicker(ctx), slots.totals, slots.models, h("div", { class: "grid" }, slots.labs,
    slots.apps), slots.latency);
  ctx.mount(frame);
  let first = true;
  const fill = (promise, draw) => promise.then((v) => v, (e) => e).then((answer) => {
    if (failed(answer) && answer.status === 401) throw answer;
    for (const [slot, el] of draw(answer)) slots[slot].replaceWith(slots[slot] = el);
    if (first) { first = false; performance.mark("paint:analytics"); }
  });
  await Promise.all([
    fill(api(`/analytics${qs({ from, group_by: "model,lab" })}`), (byModel) => [["totals", totals(byModel)],
      ["models", topModels(byModel)], ["labs", labShare(failed(byModel) ? byModel : { data: byLab(byModel.data) })]]),
    fill(api(`/analytics${qs({ from, group_by: "app" })}`), (apps) => [["apps", appUsage(apps)]]),
    fill(api(`/analytics${qs({ from, granularity })}`), (series) => [["latency", latency(series, granularity)]]),
  ]);
  return frame;
}

const placeholder = (title) => card(title, h("p", { class: "loading" }, "Loading…"));

/** Rows by lab from rows by model and lab: the sums (cost, calls, tokens) added up. */
function byLab(rows) {
  const labs = new Map();
  for (const r of rows) {
    const lab = labs.get(r.lab) || { lab: r.lab, cost: 0, calls: 0, total_tokens: 0 };
    lab.cost += r.cost;
    lab.calls += r.calls;
    lab.total_tokens += r.total_tokens;
    labs.set(r.lab, lab);
  }
  return [...labs.values()];
}

function totals(models) {
  if (failed(models)) return h("div", {});
  const rows = models.data;
  const sum = (k) => rows.reduce((a, r) => a + r[k], 0);
  const figures = [["Calls", int(sum("calls"))], ["Tokens", int(sum("total_tokens"))], ["Cost", usd(sum("cost"))],
    ["Success rate", pct(rate(sum("completed"), sum("failed")))], ["Models", int(rows.length)]];
  return h("dl", { class: "totals", id: "totals" },
    figures.map(([label, value]) => h("div", {}, h("dt", {}, label), h("dd", {}, value))));
}

function topModels(models) {
  if (failed(models)) return card("Top models by tokens", failure(models));
  const rows = [...models.data].sort((a, b) => b.total_tokens - a.total_tokens || b.calls - a.calls);
  const total = rows.reduce((a, r) => a + r.total_tokens, 0);
  const top = rows.slice(0, 10);
  return card("Top models by tokens",
    top.length ? bars("Tokens by model", top.map((r) => ({ label: r.model || "(none)", value: r.total_tokens,
      text: int(r.total_tokens) }))) : null,
    table("Models by tokens in the range", [
      { label: "Model", value: (r) => r.model || "(none)" },
      { label: "Tokens", num: true, value: (r) => int(r.total_tokens) },
      { label: "Share", num: true, value: (r) => pct(total ? r.total_tokens / total : null) },
      { label: "Calls", num: true, value: (r) => int(r.calls) },
      { label: "Success rate", num: true, value: (r) => pct(r.success_rate) },
      { label: "Failed", num: true, value: (r) => int(r.failed) },
      { label: "p50 latency", num: true, value: (r) => ms(r.latency_ms_p50) },
      { label: "p95 latency", num: true, value: (r) => ms(r.latency_ms_p95) },
      { label: "Cost", num: true, value: (r) => usd(r.cost) },
      { label: "Errors", value: (r) => (r.failed ? errorsLink(r.model) : "none") },
    ], rows, { rowKey: (r) => r.model, empty: "No calls in this range." }));
}

function labShare(labs) {
  if (failed(labs)) return card("Cost share by lab", failure(labs));
  const rows = [...labs.data].sort((a, b) => b.cost - a.cost);
  const total = rows.reduce((a, r) => a + r.cost, 0);
  const items = rows.map((r) => ({ label: r.lab || "(none)", value: r.cost, text: pct(total ? r.cost / total : 0) }));
  return card("Cost share by lab",
    rows.length ? h("div", { class: "donut-row" }, donut("Cost share by lab", items), legend(items.map((i) => `${i.label} ${i.text}`))) : null,
    table("Cost by lab", [
      { label: "Lab", value: (r) => r.lab || "(none)" },
      { label: "Cost", num: true, value: (r) => usd(r.cost) },
      { label: "Share", num: true, value: (r) => pct(total ? r.cost / total : null) },
      { label: "Calls", num: true, value: (r) => int(r.calls) },
      { label: "Tokens", num: true, value: (r) => int(r.total_tokens) },
    ], rows, { rowKey: (r) => r.lab }));
}

function appUsage(apps) {
  if (failed(apps)) return card("Usage by app", failure(apps));
  const rows = [...apps.data].sort((a, b) => b.total_tokens - a.total_tokens);
  return card("Usage by app",
    rows.length ? bars("Tokens by app", rows.slice(0, 10).map((r) => ({ label: r.app || "(no app)",
      value: r.total_tokens, text: int(r.total_tokens) })), { width: 460 }) : null,
    table("Usage by app", [
      { label: "App", value: (r) => r.app || "(no app)" },
      { label: "Calls", num: true, value: (r) => int(r.calls) },
      { label: "Tokens", num: true, value: (r) => int(r.total_tokens) },
      { label: "Cost", num: true, value: (r) => usd(r.cost) },
      { label: "Success rate", num: true, value: (r) => pct(r.success_rate) },
    ], rows, { rowKey: (r) => r.app }));
}

function latency(series, granularity) {
  if (failed(series)) return card("Latency percentiles", failure(series));
  const rows = series.data.filter((r) => r.latency_ms_p50 !== null);
  const xs = rows.map((r) => new Date(r.period));
  const lineSet = [["p50", "latency_ms_p50"], ["p95", "latency_ms_p95"], ["p99", "latency_ms_p99"]]
    .map(([label, k]) => ({ label, values: rows.map((r) => r[k]) }));
  return card(`Latency percentiles (by ${granularity})`,
    rows.length ? h("div", {}, lines("Latency p50, p95 and p99 over time", xs, lineSet, (v) => `${Math.round(v)} ms`),
      legend(["p50", "p95", "p99"])) : h("p", { class: "empty" }, "No completed calls in this range."),
    rows.length ? h("details", {}, h("summary", {}, "The numbers"), table("Latency by period", [
      { label: "Period", value: (r) => when(r.period) },
      { label: "Calls", num: true, value: (r) => int(r.calls) },
      { label: "p50", num: true, value: (r) => ms(r.latency_ms_p50) },
      { label: "p95", num: true, value: (r) => ms(r.latency_ms_p95) },
      { label: "p99", num: true, value: (r) => ms(r.latency_ms_p99) },
      { label: "TTFT p50", num: true, value: (r) => ms(r.ttft_ms_p50) },
    ], rows, { rowKey: (r) => r.period })) : null);
}

export async function errors(ctx) {
  const model = ctx.args[0];
  const { from } = span(ctx.range);
  if (!model) {
    const all = await api(`/analytics${qs({ from, status: "failed", group_by: "model,error_type" })}`);
    return h("div", {}, rangePicker(ctx), card("Failed calls by model and error type", table("Failures", [
      { label: "Model", value: (r) => r.model || "(none)" },
      { label: "Error type", value: (r) => r.error_type || "unknown" },
      { label: "Calls", num: true, value: (r) => int(r.calls) },
      { label: "", value: (r) => errorsLink(r.model) },
    ], all.data.sort((a, b) => b.calls - a.calls), { empty: "No failed calls in this range." })));
  }
  ctx.heading.textContent = `Errors of ${model}`;
  // One scan: the model's calls by error type; the row without one ("") holds its completed and cancelled calls.
  const kinds = await api(`/analytics${qs({ from, model, group_by: "error_type" })}`);
  const sum = (k) => kinds.data.reduce((a, r) => a + r[k], 0);
  const s = { calls: sum("calls"), completed: sum("completed"), failed: sum("failed") };
  s.success_rate = rate(s.completed, s.failed);
  const rows = kinds.data.filter((r) => r.failed > 0).map((r) => ({ ...r, calls: r.failed }))
    .sort((a, b) => b.calls - a.calls);
  const failures = rows.reduce((a, r) => a + r.calls, 0);
  return h("div", {}, rangePicker(ctx),
    h("p", {}, h("a", { href: "#/analytics" }, "← All models")),
    h("dl", { class: "totals", id: "model-totals" }, [["Calls", int(s.calls)], ["Completed", int(s.completed)],
      ["Failed", int(s.failed)], ["Success rate", pct(s.success_rate)]]
      .map(([label, value]) => h("div", {}, h("dt", {}, label), h("dd", {}, value)))),
    card("Errors by type",
      rows.length ? bars(`Failed calls of ${model} by error type`, rows.map((r) => ({ label: r.error_type || "unknown",
        value: r.calls, text: int(r.calls) }))) : null,
      table(`Failed calls of ${model} by error type`, [
        { label: "Error type", value: (r) => r.error_type || "unknown" },
        { label: "Calls", num: true, value: (r) => int(r.calls) },
        { label: "Share of failures", num: true, value: (r) => pct(failures ? r.calls / failures : null) },
        { label: "Last seen", value: (r) => when(r.last_call_at) },
        { label: "Reroute", value: (r) => (ctx.who.is_provisioning_key && r.error_type ? h("a", {
          class: "button small", href: `#/routing/new/${encodeURIComponent(model)}/${encodeURIComponent(r.error_type)}`,
          "aria-label": `Create a routing policy for ${r.error_type} of ${model}` }, "Create a routing policy") : "") },
      ], rows, { rowKey: (r) => r.error_type, empty: "No failed calls of this model in the range." })));
}

export async function rankings(ctx) {
  const by = ctx.args[0] || "model";
  const date = ctx.args[1] || "";
  const form = h("form", { class: "toolbar", onsubmit: (e) => {
    e.preventDefault();
    const d = new FormData(e.target);
    ctx.go(`#/rankings/${d.get("by")}${d.get("date") ? `/${d.get("date")}` : ""}`);
  } },
  h("label", { for: "rank-by" }, "Rank by"),
  h("select", { id: "rank-by", name: "by" }, ["model", "lab", "app"].map((v) => h("option", { value: v, selected: v === by }, v))),
  h("label", { for: "rank-date" }, "Day"), h("input", { id: "rank-date", name: "date", type: "date", value: date }),
  h("button", { type: "submit" }, "Show"));
  const [ranked, terms] = settle(await Promise.allSettled([api(`/rankings${qs({ by, date })}`),
    by === "model" ? api("/models/licenses") : Promise.resolve(null)]));
  if (failed(ranked)) {
    return h("div", {}, form, ranked.status === 404 ? h("div", { class: "card" }, h("p", {}, ranked.message),
      ctx.who.is_provisioning_key ? runButton(ctx) : null) : failure(ranked));
  }
  const licenses = new Map((!failed(terms) && terms ? terms.data : []).map((t) => [t.model, t]));
  const meta = ranked.meta;
  const columns = {
    model: [
      { label: "Rank", num: true, value: (r) => r.rank ?? "–" }, { label: "Model", value: (r) => r.model },
      { label: "Lab", value: (r) => r.lab }, { label: "Status", value: (r) => r.status || "–" },
      { label: "Score", num: true, value: (r) => (r.score === null || r.score === undefined ? "–" : r.score.toFixed(3)) },
      { label: "Success rate", num: true, value: (r) => pct(r.success_rate) },
      { label: "p95 latency", num: true, value: (r) => ms(r.p95_latency_ms) },
      { label: "$ per 1k tokens", num: true, value: (r) => usd(r.cost_per_1k_tokens) },
      { label: "Calls", num: true, value: (r) => int(r.calls) },
      { label: "Tokens", num: true, value: (r) => int(r.total_tokens) },
      { label: "License terms", value: (r) => terms_(licenses.get(r.model)) },
    ],
    lab: [
      { label: "Rank", num: true, value: (r) => r.rank ?? "–" }, { label: "Lab", value: (r) => r.lab },
      { label: "Score", num: true, value: (r) => (r.score === null || r.score === undefined ? "–" : r.score.toFixed(3)) },
      { label: "Best model", value: (r) => r.best_model || "–" },
      { label: "Calls", num: true, value: (r) => int(r.calls) }, { label: "Token share", num: true, value: (r) => pct(r.token_share) },
      { label: "Cost share", num: true, value: (r) => pct(r.cost_share) },
    ],
    app: [
      { label: "Rank", num: true, value: (r) => r.rank ?? "–" }, { label: "App", value: (r) => r.app || "(no app)" },
      { label: "Calls", num: true, value: (r) => int(r.calls) }, { label: "Tokens", num: true, value: (r) => int(r.total_tokens) },
      { label: "Cost", num: true, value: (r) => usd(r.cost) }, { label: "Top model", value: (r) => r.top_model || "–" },
    ],
  }[by];
  return h("div", {}, form,
    h("p", { class: "meta" }, `Day ${meta.date} (as of ${when(meta.as_of)}). Score = ${meta.formula.text || "0.4·success + 0.3·(1/p95) + 0.3·(1/cost per 1k)"}.`),
    card(`Rankings by ${by}`, table(`Rankings by ${by}, ${meta.date}`, columns, ranked.data,
      { rowKey: (r) => r[by] ?? r.model, empty: "Nothing ranked that day." })),
    ctx.who.is_provisioning_key ? runButton(ctx) : null);
}

function terms_(t) {
  if (!t || !t.license) return "not in the license table";
  const allows = [t.commercial_use ? "commercial use" : null, t.train_other_models ? "training other models" : null]
    .filter(Boolean);
  const text = `${t.license}: ${allows.length ? `allows ${allows.join(" and ")}` : "restricted"}`;
  return t.source && t.source.startsWith("https://") ? h("a", { href: t.source, rel: "noopener noreferrer" }, text) : text;
}

function runButton(ctx) {
  const status = h("span", { role: "status", class: "meta" });
  const day = h("input", { id: "run-date", name: "run-date", type: "date",
    value: new Date(Date.now() - 86400e3).toISOString().slice(0, 10) });
  return h("form", { class: "toolbar", onsubmit: async (e) => {
    e.preventDefault();
    status.textContent = "Running…";
    try {
      let run = (await api("/rankings/runs", { method: "POST", body: { date: day.value || undefined } })).data;
      while (run.status === "queued" || run.status === "running") {
        await new Promise((r) => { setTimeout(r, 1000); });
        run = (await api(`/rankings/runs/${run.id}`)).data;
      }
      status.textContent = `Run ${run.id}: ${run.status}${run.error ? ` (${run.error})` : ""}`;
      if (run.status === "completed") ctx.go(`#/rankings/model/${run.date}`);
    } catch (error) {
      status.textContent = error.message;
    }
  } }, h("label", { for: "run-date" }, "Run the rankings for"), day, h("button", { type: "submit" }, "Run"), status);
}

export async function myKey(ctx) {
  // A management key's activity is everyone's, over 30 days of the lake: asked for on demand, not on each visit.
  const everyone = ctx.who.is_provisioning_key;
  const [credits, activity] = settle(await Promise.allSettled([api("/credits"),
    everyone ? Promise.resolve(null) : api("/activity")]));
  const k = ctx.who;
  const facts = [["Name", k.name], ["Key", k.label], ["Hash", k.hash], ["Kind", k.is_provisioning_key ? "management" : "inference"],
    ["Usage", usd(k.usage)], ["Limit", k.limit === null || k.limit === undefined ? "none" : usd(k.limit)],
    ["Remaining", k.limit_remaining === null || k.limit_remaining === undefined ? "–" : usd(k.limit_remaining)],
    ["Rate limits", [k.rpm ? `${k.rpm}/min` : null, k.rpd ? `${k.rpd}/day` : null].filter(Boolean).join(", ") || "none"],
    ["Allowed models", (k.allowed_models || []).join(", ") || "any"], ["Expires", when(k.expires_at)]];
  if (k.scopes) facts.push(["Scopes", k.scopes.join(", ")]);
  const slot = h("div", {});
  const show = (answer) => slot.replaceChildren(failed(answer) ? failure(answer) : activityTable(answer.data));
  if (activity) show(activity);
  else {
    slot.append(h("button", { type: "button", onclick: async (e) => {
      e.target.disabled = true;
      e.target.textContent = "Loading…";
      show(await api("/activity").catch((error) => error));
    } }, "Show every key's activity"));
  }
  return h("div", {},
    card("This key", h("dl", { class: "facts" }, facts.map(([a, b]) => h("div", {}, h("dt", {}, a), h("dd", {}, b ?? "–"))))),
    card("Credits", failed(credits) ? failure(credits) : h("dl", { class: "totals", id: "credits" },
      h("div", {}, h("dt", {}, "Total credits"), h("dd", {}, credits.data.total_credits === null ? "no limit" : usd(credits.data.total_credits))),
      h("div", {}, h("dt", {}, "Total usage"), h("dd", {}, usd(credits.data.total_usage))))),
    card("Activity, last 30 completed days", slot));
}

const activityTable = (rows) => table("Activity by day and model", [
  { label: "Day", value: (r) => r.date }, { label: "Model", value: (r) => r.model },
  { label: "Provider", value: (r) => r.provider_name }, { label: "Requests", num: true, value: (r) => int(r.requests) },
  { label: "Prompt tokens", num: true, value: (r) => int(r.prompt_tokens) },
  { label: "Completion tokens", num: true, value: (r) => int(r.completion_tokens) },
  { label: "Spend", num: true, value: (r) => usd(r.usage) },
], rows, { empty: "No calls in the last 30 completed days (today is not counted)." });
