// Synthetic jobs (management key, synthetic:read / synthetic:write): the jobs with their progress, polled
// every second while one runs, and a job started from a template.
import { api } from "./api.js";
import { card, clearErrors, field, h, int, pct, showError, table, usd, when } from "./ui.js";

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
