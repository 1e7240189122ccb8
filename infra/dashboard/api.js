// The API client of the dashboard. The token lives in this tab's sessionStorage and travels only
// in the Authorization header: never in the page, a URL or a cookie.

const KEY = 'aligner.apiToken';

export class AuthError extends Error {}

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (t) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

/** A JSON request; 401 throws AuthError, any other error status an Error with the server's message. */
export async function call(method, path, body) {
  const headers = { authorization: `Bearer ${token.get() ?? ''}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (res.status === 401) throw new AuthError(json?.message ?? 'the server refused the token');
  if (!res.ok) {
    const err = new Error(json?.message ?? `${method} ${path}: HTTP ${res.status}`);
    err.status = res.status;
    throw err;
  }
  return json;
}

export const get = (path) => call('GET', path);
export const post = (path, body) => call('POST', path, body);

/** GET that answers null for a 404 (a run with no checkpoints or rollouts yet). */
export async function getOrNull(path) {
  try {
    return await get(path);
  } catch (e) {
    if (e.status === 404) return null;
    throw e;
  }
}
