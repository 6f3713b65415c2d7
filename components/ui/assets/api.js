// The API from the page: fetch with the token in the Authorization header (never in a
// URL). On a 401 the token is asked for once — concurrent requests wait on the same
// question — kept in sessionStorage for this tab, and the request is retried.

const TOKEN_KEY = 'orchestrator.token';
let asking = null;

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

export function authHeaders(extra = {}) {
  const t = token();
  return t ? { ...extra, Authorization: `Bearer ${t}` } : { ...extra };
}

/** An API error: the contract's `{"error": {code, message, details}}` with the status. */
export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || 'unknown';
    this.details = e.details || {};
  }
}

function askForToken(rejected) {
  if (asking) return asking;
  const dialog = document.getElementById('token-dialog');
  const form = document.getElementById('token-form');
  const input = document.getElementById('token-input');
  const error = document.getElementById('token-error');
  error.textContent = rejected ? 'That token was refused. Try again.' : '';
  asking = new Promise((resolve) => {
    form.addEventListener('submit', () => {
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      input.value = '';
      asking = null;
      resolve();
    }, { once: true });
  });
  if (!dialog.open) dialog.showModal();
  input.focus();
  return asking;
}

/** Wait until the API accepts our token (used by the feed before it reconnects). */
export async function ensureToken(status) {
  if (status === 401) await askForToken(token() !== '');
}

/** JSON request; resolves to the parsed body (null for 204), throws ApiError. */
export async function api(method, path, body) {
  for (;;) {
    const init = { method, headers: authHeaders() };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    if (res.status === 401) {
      await askForToken(token() !== '');
      continue;
    }
    if (res.status === 204) return null;
    const text = await res.text();
    const json = text ? JSON.parse(text) : null;
    if (!res.ok) throw new ApiError(res.status, json);
    return json;
  }
}
