// DOM helpers and number formats shared by the views (no framework: elements built with h()).

/** An element: h("td", {class: "num"}, "12"). Attributes starting with "on" are listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name in el && typeof value !== "string") el[name] = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

export const int = (n) => (n === null || n === undefined ? "–" : Math.round(n).toLocaleString("en-US"));
export const pct = (x, digits = 1) => (x === null || x === undefined ? "–" : `${(x * 100).toFixed(digits)}%`);
export const ms = (x) => (x === null || x === undefined ? "–" : `${Math.round(x).toLocaleString("en-US")} ms`);
export function usd(x) {
  if (x === null || x === undefined) return "–";
  if (x === 0) return "$0";
  return `$${x >= 1 ? x.toFixed(2) : x.toPrecision(3)}`;
}
export const when = (iso) => (iso ? iso.replace("T", " ").replace(/\.\d+Z$|Z$/, " UTC") : "–");

/**
 * A table: columns [{label, value(row) -> text|Node, num?}], rows; caption names it for screen readers.
 * Each row carries data-key (rowKey(row)) so that tests and links can find it.
 */
export function table(caption, columns, rows, { rowKey, empty = "Nothing in this range." } = {}) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h("div", { class: "table-wrap" }, h("table", {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.label)))),
    h("tbody", {}, rows.map((row) => h("tr", { "data-key": rowKey ? rowKey(row) : null },
      columns.map((c, i) => h(i === 0 ? "th" : "td", { scope: i === 0 ? "row" : null, class: c.num ? "num" : null },
        c.value(row))))))));
}

/** A card: a titled section of a view. */
export const card = (title, ...body) => {
  const id = `card-${title.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  return h("section", { class: "card", "aria-labelledby": id }, h("h3", { id }, title), ...body);
};

/** A message in place of a card's content when its call failed. */
export const failure = (error) => h("p", { class: "error", role: "alert" },
  error.status === 403 ? `Not allowed for this key: ${error.message}` : error.message);

/** Form errors: an API 400 shown next to the field it names (metadata.field), else at the form's foot. */
export function showError(form, error, fieldMap = {}) {
  clearErrors(form);
  const field = error.field ? (fieldMap[error.field] || fieldMap[error.field.split(".")[0]] || error.field.split(".")[0])
    : null;
  const input = field ? form.querySelector(`[name="${CSS.escape(field)}"]`) : null;
  const slot = (input && form.querySelector(`#${CSS.escape(input.id)}-error`)) || form.querySelector(".form-error");
  slot.textContent = error.message;
  if (input) {
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }
}

export function clearErrors(form) {
  for (const el of form.querySelectorAll(".field-error, .form-error")) el.textContent = "";
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

/** A labelled control with its error slot: field("Name", {name: "name"}), or with a given control element. */
export function field(label, attrs, control) {
  const id = attrs.id || `f-${attrs.name}`;
  const input = control || h("input", { type: "text", ...attrs, id, "aria-describedby": `${id}-error ${id}-hint` });
  if (control) {
    input.id = id;
    input.setAttribute("aria-describedby", `${id}-error ${id}-hint`);
  }
  return h("div", { class: "field" },
    h("label", { for: id }, label), input,
    attrs.hint ? h("small", { id: `${id}-hint`, class: "hint" }, attrs.hint) : null,
    h("span", { id: `${id}-error`, class: "field-error", role: "alert" }));
}

export const list = (text) => (text || "").split(/[,\n]/).map((s) => s.trim()).filter(Boolean);

// What a change leaves for its view's next render (which replaces the form that made it): a message, a secret.
let flash = null;
export const leave = (view, value) => { flash = { view, ...value }; };
export function take(view) {
  const found = flash && flash.view === view ? flash : null;
  if (found) flash = null;
  return found;
}
