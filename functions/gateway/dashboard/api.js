// The public API, called with the signed-in key. Nothing here knows a view.
const STORE = "switchyard.key";

export const session = {
  get key() { return sessionStorage.getItem(STORE); },
  set key(value) { if (value) sessionStorage.setItem(STORE, value); else sessionStorage.removeItem(STORE); },
};

/** An answer outside 2xx: the documented error body's message and metadata (field, reason…). */
export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.metadata = error.metadata || {};
  }
  get field() { return this.metadata.field || this.metadata.parameter || null; }
}

export async function api(path, { method = "GET", body, key } = {}) {
  const headers = { Authorization: `Bearer ${key || session.key || ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`/api/v1${path}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** A query string from an object, leaving out empty values. */
export function qs(params) {
  const q = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") q.set(name, value);
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}
