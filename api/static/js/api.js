// Every call to /v1 goes through here: it sends the key, retries 429s, and turns 401/403 into a sign-out.

const KEY = "sitewatch.apiKey";
const REFUSED = "sitewatch.refused";

export class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

export const apiKey = () => sessionStorage.getItem(KEY);
export const setApiKey = (key) => sessionStorage.setItem(KEY, key);

/** The refusal message left by the last sign-out, read once. */
export function takeRefusal() {
  const msg = sessionStorage.getItem(REFUSED);
  sessionStorage.removeItem(REFUSED);
  return msg;
}

/** Forget the key and start again from a blank page, so nothing fetched with it stays on screen. */
export function signOut(message) {
  sessionStorage.removeItem(KEY);
  if (message) sessionStorage.setItem(REFUSED, message);
  window.location.replace(window.location.pathname);
}

async function problemDetail(response) {
  try {
    const body = await response.json();
    return body.detail || body.title || response.statusText;
  } catch {
    return response.statusText;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** fetch() with the key; throws ApiError on any non-2xx answer after retrying rate limits. */
export async function request(path, { method = "GET", body, accept = "application/json" } = {}) {
  const headers = { Authorization: `Bearer ${apiKey()}`, Accept: accept };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  for (let attempt = 0; ; attempt++) {
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-cache",
    });
    if (response.status === 429 && attempt < 5) {
      await sleep(1000 * (Number(response.headers.get("Retry-After")) || 1));
      continue;
    }
    if (response.status === 401 || response.status === 403) {
      const detail = await problemDetail(response);
      const what = response.status === 401 ? "was not accepted" : "may not use the web map";
      signOut(`This API key ${what} (${response.status}): ${detail}. Sign in with an officer or admin key.`);
      throw new ApiError(response.status, detail);
    }
    if (!response.ok) throw new ApiError(response.status, await problemDetail(response));
    return response;
  }
}

export const getJSON = async (path) => (await request(path)).json();

/** JSON, or null when the API answers 404 (no such thing yet). */
export async function getJSONOrNull(path) {
  try {
    return await getJSON(path);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
}

export const postJSON = async (path, body) => (await request(path, { method: "POST", body })).json();

/** Run ``task`` over ``items`` with at most ``limit`` in flight (keeps within the per-key rate). */
export async function eachLimited(items, limit, task) {
  const queue = [...items];
  const worker = async () => {
    while (queue.length) await task(queue.shift());
  };
  await Promise.all(Array.from({ length: Math.min(limit, queue.length) }, worker));
}

/** Escape text for HTML. */
export function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
