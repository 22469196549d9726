// Airlift console: the JSON API client (docs/http-api.md). Adds the CSRF
// header to state-changing requests, turns error bodies into ApiError, and
// reports a lost session (401) to the handler the app installs.

/** A refused or failed request: `status` 0 means the node was not reachable. */
export class ApiError extends Error {
  constructor(status, name, message) {
    super(message);
    this.status = status;
    this.name = name;
  }
}

let csrf = '';
let onUnauthorized = () => {};

/** The CSRF token of the current session (from login or GET /session). */
export function setCsrf(token) {
  csrf = token || '';
}

/** Called once per 401 answer outside of login: the session is gone. */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

/**
 * One API call. Resolves to the parsed JSON answer (`null` for 204), rejects
 * with ApiError. `path` is below /api/v1, e.g. `/flows`.
 */
export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (method !== 'GET') {
    headers['Content-Type'] = 'application/json';
    if (csrf) headers['X-CSRF-Token'] = csrf; // none before login
    if (body !== undefined) init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(`/api/v1${path}`, init);
  } catch {
    throw new ApiError(0, 'Network', 'The node is not reachable.');
  }
  const text = await res.text().catch(() => '');
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const name = (data && data.error) || `HTTP ${res.status}`;
    const message = (data && data.message) || `${method} ${path}: ${res.status} ${res.statusText}`;
    if (res.status === 401 && path !== '/login') onUnauthorized();
    throw new ApiError(res.status, name, message);
  }
  return data;
}

/** Encodes one path segment (flow, input or pull names). */
export const seg = (s) => encodeURIComponent(String(s));
