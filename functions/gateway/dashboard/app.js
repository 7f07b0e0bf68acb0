// The dashboard's shell: sign-in, the views' navigation (location.hash), the time range, one view at a time.
import { api, ApiError, session } from "./api.js";
import { h } from "./ui.js";
import * as usage from "./usage.js";
import { audit } from "./audit.js";
import { jobs } from "./jobs.js";
import { keys } from "./keys.js";
import { routing } from "./routing.js";

// name -> [title, render(ctx), who may see it ("any" or "management")]
const VIEWS = {
  analytics: ["Analytics", usage.analytics, "any"],
  errors: ["Errors", usage.errors, "any"],
  rankings: ["Rankings", usage.rankings, "any"],
  routing: ["Routing", routing, "management"],
  keys: ["Keys", keys, "management"],
  audit: ["Audit log", audit, "management"],
  jobs: ["Synthetic jobs", jobs, "management"],
  key: ["My key", usage.myKey, "any"],
};
const HIDDEN = new Set(["errors"]); // reached from a model's "View errors", not from the menu

const state = { who: null, range: sessionStorage.getItem("switchyard.range") || "7d", leave: [] };
const $ = (id) => document.getElementById(id);

async function signIn(key) {
  const answer = await api("/key", { key });
  session.key = key;
  state.who = answer.data;
  $("who-name").textContent = `${state.who.name || state.who.label || "key"} · ${
    state.who.is_provisioning_key ? "management" : "inference"} key`;
  buildNav();
  $("sign-in").hidden = true;
  $("nav").hidden = $("who").hidden = $("view").hidden = false;
}

function allowed(name) {
  return VIEWS[name] && (VIEWS[name][2] === "any" || state.who.is_provisioning_key);
}

function buildNav() {
  const nav = $("nav");
  nav.replaceChildren(h("ul", {}, Object.entries(VIEWS).filter(([name]) => !HIDDEN.has(name) && allowed(name))
    .map(([name, [title]]) => h("li", {}, h("a", { href: `#/${name}`, "data-view": name }, title)))));
}

function signOut() {
  session.key = null;
  state.who = null;
  for (const stop of state.leave.splice(0)) stop();
  $("view").replaceChildren();
  $("nav").hidden = $("who").hidden = $("view").hidden = true;
  $("sign-in").hidden = false;
  history.replaceState(null, "", "#");
  $("key-input").value = "";
  $("key-input").focus();
}

let rendering = 0;

async function show() {
  if (!state.who) return;
  const [name, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const view = allowed(name) ? name : "analytics";
  for (const stop of state.leave.splice(0)) stop();
  const ticket = ++rendering;
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.view === view) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  const [title, render] = VIEWS[view];
  document.title = `${title} · Switchyard`;
  document.body.dataset.ready = "";
  const heading = h("h2", { tabindex: "-1" }, title);
  const body = h("div", { class: "view-body", "aria-busy": "true" }, h("p", { class: "loading" }, "Loading…"));
  $("view").replaceChildren(heading, body);
  const ctx = {
    who: state.who, args: rest.map(decodeURIComponent), heading,
    range: state.range,
    setRange(value) { state.range = value; sessionStorage.setItem("switchyard.range", value); show(); },
    onLeave(stop) { state.leave.push(stop); },
    go(hash) { location.hash = hash; },
    // put a view's frame in place before its data arrives (its cards then fill as their calls answer)
    mount(el) { if (ticket === rendering) body.replaceChildren(el); },
    rerender: show,
  };
  let content;
  try {
    content = await render(ctx);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return signOut();
    content = h("p", { class: "error", role: "alert" }, error.message);
  }
  if (ticket !== rendering) return; // another view was asked for meanwhile
  body.replaceChildren(content);
  body.removeAttribute("aria-busy");
  if (ctx.heading.textContent !== title) document.title = `${ctx.heading.textContent} · Switchyard`;
  // Focus follows the view (keyboard and screen-reader users land on it): what it asks for, else its heading.
  const wanted = body.querySelector("[data-autofocus]");
  if (wanted) wanted.focus();
  else if (state.focusView && !$("view").contains(document.activeElement)) heading.focus();
  state.focusView = true;
  document.body.dataset.ready = view;
  performance.mark(`view:${view}`);
}

$("sign-in-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = $("key-input").value.trim();
  const error = $("sign-in-error");
  error.textContent = "";
  $("key-input").removeAttribute("aria-invalid");
  if (!key) {
    error.textContent = "Paste a key first.";
    $("key-input").setAttribute("aria-invalid", "true");
    return;
  }
  try {
    await signIn(key);
    state.focusView = true;
    if (!location.hash || location.hash === "#") location.hash = "#/analytics"; else await show();
  } catch (e) {
    error.textContent = e.status === 401 || e.status === 403 ? `That key was refused: ${e.message}` : e.message;
    $("key-input").setAttribute("aria-invalid", "true");
    $("key-input").focus();
  }
});
$("sign-out").addEventListener("click", signOut);
window.addEventListener("hashchange", show);

(async () => {
  const key = session.key;
  if (key) {
    try {
      await signIn(key);
      state.focusView = false;
      await show();
      return;
    } catch {
      session.key = null;
    }
  }
  $("sign-in").hidden = false;
  $("key-input").focus();
})();
