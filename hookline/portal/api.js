// The portal session and the API calls. The token arrives in the URL fragment (which browsers
// never send to a server), moves into sessionStorage at once, and leaves the address bar.

const STORE = "hookline.portal.session";

export const session = { community: "", token: "" };

export function openSession() {
  const params = new URLSearchParams(window.location.hash.slice(1));
  if (params.has("token")) {
    const opened = { community: params.get("community") || "", token: params.get("token") || "" };
    window.sessionStorage.setItem(STORE, JSON.stringify(opened));
    window.history.replaceState(null, "", `${window.location.pathname}#/webhooks`);
  }
  try {
    Object.assign(session, JSON.parse(window.sessionStorage.getItem(STORE) || "{}"));
  } catch {
    window.sessionStorage.removeItem(STORE);
  }
  return Boolean(session.community && session.token);
}

export function endSession() {
  window.sessionStorage.removeItem(STORE);
  session.community = "";
  session.token = "";
}

// /portal/ and /<stage>/portal/ both sit beside /v1 (and /<stage>/v1).
const apiRoot = `${window.location.pathname.replace(/\/portal(\/.*)?$/, "")}/v1`;

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `The server answered ${status}.`);
    this.status = status;
    this.code = (body && body.code) || "error";
    this.field = body && body.data && body.data.field;
  }

  // A route this Hookline server does not have (yet): degrade, do not break.
  get missingRoute() {
    return this.status === 405 || (this.status === 404 && /^No route/i.test(this.message));
  }
}

export async function call(method, path, body) {
  const headers = { Authorization: `Bearer ${session.token}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`${apiRoot}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
    cache: "no-store",
  });
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data);
    if (response.status === 401) window.dispatchEvent(new CustomEvent("portal:expired"));
    throw error;
  }
  return data;
}

export function community(method, path, body) {
  return call(method, `/communities/${encodeURIComponent(session.community)}${path}`, body);
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

// Every item of a community listing, following next_cursor (at most `pages` pages of 50).
export async function everything(path, pages = 20) {
  const items = [];
  let cursor = null;
  for (let page = 0; page < pages; page += 1) {
    const listing = await community("GET", `${path}${query({ per_page: 50, cursor })}`);
    items.push(...listing.data);
    cursor = listing.next_cursor;
    if (!cursor) break;
  }
  return items;
}
