// Calls to Vigil's API with the user's bearer token.
//
// The token is asked for once, when the API first answers 401, and kept in localStorage
// (this browser, this origin) until the user chooses "Forget token". Every API call, the
// WHEP signalling and the WebSocket carry it; <img> and <video> cannot send headers, so
// snapshots and recordings are fetched here and handed to them as blobs.

const TOKEN_KEY = "vigil.token";

export const API = "/api/v1";

/** An API call that failed: HTTP status, the API's error code and message (docs/API.md). */
export class ApiError extends Error {
  constructor(status, code, message, details = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export function storedToken() {
  try {
    return localStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return ""; // storage disabled (private mode, policy): the API may still be open
  }
}

function storeToken(token) {
  try {
    localStorage.setItem(TOKEN_KEY, token);
  } catch {
    // Not kept: it is asked for again on the next visit.
  }
  window.dispatchEvent(new Event("vigil-token"));
}

export function forgetToken() {
  try {
    localStorage.removeItem(TOKEN_KEY);
  } catch {
    // nothing stored
  }
  window.dispatchEvent(new Event("vigil-token"));
}

/** `headers` plus `Authorization: Bearer …` when a token is known. */
export function withToken(headers = {}) {
  const token = storedToken();
  return token ? { ...headers, Authorization: `Bearer ${token}` } : { ...headers };
}

let pendingToken = null;

/** Ask the user for a token (one dialog, however many calls are waiting for it). */
export function askForToken(problem = "") {
  if (!pendingToken) {
    pendingToken = new Promise((resolve) => {
      const dialog = document.getElementById("token-dialog");
      const form = document.getElementById("token-form");
      const input = document.getElementById("token-input");
      document.getElementById("token-error").textContent = problem;
      input.value = "";
      const submitted = (event) => {
        event.preventDefault();
        const token = input.value.trim();
        if (!token) return;
        form.removeEventListener("submit", submitted);
        dialog.removeEventListener("cancel", refuseCancel);
        dialog.close();
        pendingToken = null;
        storeToken(token);
        resolve(token);
      };
      // Without a token nothing on the page works: the dialog stays until one is given.
      const refuseCancel = (event) => event.preventDefault();
      form.addEventListener("submit", submitted);
      dialog.addEventListener("cancel", refuseCancel);
      dialog.showModal();
      input.focus();
    });
  }
  return pendingToken;
}

/**
 * fetch() with the token. A 401 asks for a (new) token and tries again; every other answer,
 * successful or not, is returned.
 */
export async function request(path, { method = "GET", headers = {}, body, signal, keepalive } = {}) {
  for (;;) {
    const response = await fetch(path, {
      method, body, signal, keepalive, cache: "no-store", headers: withToken(headers),
    });
    if (response.status !== 401) return response;
    await response.body?.cancel();
    const refused = storedToken();
    await askForToken(refused ? "That token was refused (unknown or revoked). Try another." : "");
  }
}

/** The ApiError an unsuccessful response carries. */
export async function errorOf(response) {
  let error = {};
  try {
    error = (await response.json()).error || {};
  } catch {
    // not the API's JSON (a proxy's page, say)
  }
  return new ApiError(response.status, error.code || "", error.message || response.statusText
    || `HTTP ${response.status}`, error.details || null);
}

/** GET (or another method) a JSON document; ApiError unless 2xx. */
export async function getJson(path, options = {}) {
  const response = await request(path, options);
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

/** A path under the API with the query built from `params` (null and undefined left out). */
export function apiPath(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined) query.set(key, value);
  }
  const text = query.toString();
  return `${API}${path}${text ? `?${text}` : ""}`;
}

/** The path segment for a stream name (names are [A-Za-z0-9_-], but never trust a name). */
export function streamPath(name) {
  return encodeURIComponent(name);
}
