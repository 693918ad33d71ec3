// The admin API client: one place that holds the tokens, refreshes them silently and turns
// problem+json answers into errors the screens can show field by field.
//
// The access token lives in memory only; the refresh token in localStorage so a reload keeps
// the session (it is rotated on every use and revoked on logout). Tokens never go in URLs:
// the live socket authenticates with its first frame.

const REFRESH_KEY = "kaleem:console:refresh";
let access = "";
let refreshing = null;
const listeners = new Set();

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
    this.fields = Object.fromEntries((this.problem.errors || []).map((e) => [e.field, e.message]));
  }
}

export function onSessionChange(fn) { listeners.add(fn); }
function changed() { listeners.forEach((fn) => fn(signedIn())); }
export function signedIn() { return Boolean(access || localStorage.getItem(REFRESH_KEY)); }
export function accessToken() { return access; }

function keep(tokens) {
  access = tokens.access_token;
  localStorage.setItem(REFRESH_KEY, tokens.refresh_token);
}

async function refresh() {
  const token = localStorage.getItem(REFRESH_KEY);
  if (!token) throw new ApiError(401, { title: "Signed out" });
  if (!refreshing) {
    refreshing = raw("POST", "/auth/refresh", { refresh_token: token }, false)
      .then(keep)
      .catch((err) => {
        if (err.status === 401) { access = ""; localStorage.removeItem(REFRESH_KEY); changed(); }
        throw err;
      })
      .finally(() => { refreshing = null; });
  }
  return refreshing;
}

async function raw(method, path, body, auth = true, contentType = "application/json") {
  const headers = {};
  if (auth && access) headers.Authorization = `Bearer ${access}`;
  let payload;
  if (body !== undefined && body !== null) {
    headers["Content-Type"] = contentType;
    payload = contentType === "application/json" ? JSON.stringify(body) : body;
  }
  const resp = await fetch(`/api/v1${path}`, { method, headers, body: payload, credentials: "omit" });
  if (resp.status === 204) return null;
  const type = resp.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await resp.json() : await resp.text();
  if (!resp.ok) throw new ApiError(resp.status, typeof data === "object" ? data : { detail: data });
  return data;
}

/** A call with the session: a 401 refreshes once (silently) and retries. */
export async function api(method, path, body, contentType) {
  if (!access) await refresh();
  try {
    return await raw(method, path, body, true, contentType);
  } catch (err) {
    if (err.status !== 401) throw err;
    await refresh();
    return raw(method, path, body, true, contentType);
  }
}

export const get = (path, query) => api("GET", path + qs(query));
export function qs(query) {
  if (!query) return "";
  const entries = Object.entries(query).filter(([, v]) => v !== undefined && v !== null && v !== "");
  return entries.length ? "?" + new URLSearchParams(entries).toString() : "";
}

export async function login(email, password) {
  keep(await raw("POST", "/auth/login", { email, password }, false));
  changed();
}

export async function signup(merchant_name, email, password, default_language) {
  keep(await raw("POST", "/auth/signup", { merchant_name, email, password, default_language }, false));
  changed();
}

export async function acceptInvite(invite_token, password) {
  keep(await raw("POST", "/auth/accept-invite", { invite_token, password }, false));
  changed();
}

export async function logout() {
  const token = localStorage.getItem(REFRESH_KEY);
  try { if (access) await raw("POST", "/auth/logout", { refresh_token: token }); } catch { /* gone already */ }
  access = "";
  localStorage.removeItem(REFRESH_KEY);
  changed();
}

/** The live socket: reconnects with backoff, re-authenticates each time with a fresh token. */
export function live(onEvent, onState) {
  let ws = null;
  let stopped = false;
  let attempts = 0;
  async function open() {
    if (stopped) return;
    try { if (!access) await refresh(); } catch { return; }
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(`${proto}//${location.host}/api/v1/live`);
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: access }));
    ws.onmessage = (e) => {
      let frame;
      try { frame = JSON.parse(e.data); } catch { return; }
      if (frame.type === "ready") { attempts = 0; onState(true); return; }
      onEvent(frame);
    };
    ws.onclose = (e) => {
      onState(false);
      if (stopped) return;
      attempts += 1;
      const wait = Math.min(15000, 500 * 2 ** attempts);
      // 4401: the access token expired while the socket was down; refresh before retrying.
      setTimeout(() => (e.code === 4401 ? refresh().then(open, () => {}) : open()), wait);
    };
  }
  open();
  return () => { stopped = true; if (ws) ws.close(); };
}
