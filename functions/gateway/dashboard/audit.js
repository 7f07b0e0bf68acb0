// The audit log (management key, audit:read): management actions, newest first, filtered by action.
import { api, qs } from "./api.js";
import { card, h, table, when } from "./ui.js";

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

