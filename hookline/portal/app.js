// The portal shell: opens the session, shows who it is for, and routes #/... to a screen.

import { ApiError, call, community, endSession, openSession } from "./api.js";
import { clear, h, when } from "./dom.js";
import { directoryScreen } from "./directory.js";
import { incomingDetail, incomingForm, incomingList } from "./incoming.js";
import { deliveryLog } from "./log.js";
import { webhookDetail, webhookForm, webhookList } from "./webhooks.js";

const main = document.getElementById("main");
export const portal = { readOnly: false, eventTypes: [] };

const routes = [
  [/^\/webhooks$/, () => webhookList(main, portal)],
  [/^\/webhooks\/new$/, () => webhookForm(main, portal, null)],
  [/^\/webhooks\/([\w-]+)$/, (id) => webhookDetail(main, portal, id)],
  [/^\/webhooks\/([\w-]+)\/edit$/, (id) => webhookForm(main, portal, id)],
  [/^\/webhooks\/([\w-]+)\/log$/, (id) => deliveryLog(main, portal, id)],
  [/^\/incoming$/, () => incomingList(main, portal)],
  [/^\/incoming\/new$/, () => incomingForm(main, portal, null)],
  [/^\/incoming\/([\w-]+)$/, (id) => incomingDetail(main, portal, id)],
  [/^\/incoming\/([\w-]+)\/edit$/, (id) => incomingForm(main, portal, id)],
  [/^\/directory$/, () => directoryScreen(main, portal)],
];

function refused(title, text) {
  document.querySelector("nav").hidden = true;
  clear(main, h("h1", { tabindex: "-1" }, title), h("p", { class: "alert" }, text));
  document.title = `${title} · Hookline portal`;
  main.querySelector("h1").focus();
}

function expired() {
  endSession();
  refused(
    "This portal link has expired",
    "The link is no longer valid. Ask your community platform for a new portal link.",
  );
}

async function render() {
  const path = window.location.hash.replace(/^#/, "") || "/webhooks";
  const found = routes.find(([pattern]) => pattern.test(path));
  for (const link of document.querySelectorAll("nav a")) {
    const current = path.startsWith(link.getAttribute("href").slice(1));
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!found) {
    window.location.hash = "#/webhooks";
    return;
  }
  const [pattern, screen] = found;
  try {
    await screen(...path.match(pattern).slice(1));
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return;
    clear(
      main,
      h("h1", { tabindex: "-1" }, "Something went wrong"),
      h("p", { class: "alert" }, error.message),
    );
  }
  const heading = main.querySelector("h1");
  if (heading) {
    document.title = `${heading.textContent} · Hookline portal`;
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
}

async function start() {
  window.addEventListener("portal:expired", expired);
  if (!openSession()) {
    refused(
      "No portal session",
      "Open the portal from the link your community platform gives you.",
    );
    return;
  }
  let current;
  try {
    current = await community("GET", "/portal-sessions/current");
  } catch (error) {
    if (error instanceof ApiError && error.status === 403) {
      endSession();
      refused(
        "This link is not valid here",
        "This portal link belongs to another community. Ask for a link for this community.",
      );
    } else if (!(error instanceof ApiError && error.status === 401)) {
      refused("The portal could not start", error.message);
    }
    return;
  }
  portal.readOnly = current.read_only;
  const [info, types, custom] = await Promise.all([
    community("GET", ""),
    call("GET", "/event-types").catch(() => ({ data: [] })),
    // The community's own event types, where this server has them.
    community("GET", "/event-types").catch(() => ({ data: [] })),
  ]);
  const known = new Set((types.data || []).map((t) => t.name));
  const own = (custom.data || [])
    .filter((t) => t.name && !known.has(t.name))
    .map((t) => ({ name: t.name, group: t.group || t.name.split(".")[0], description: t.description || "" }));
  portal.eventTypes = [...(types.data || []), ...own];
  document.getElementById("community-name").textContent = `· ${info.name}`;
  document.getElementById("session-note").textContent =
    `${current.read_only ? "Read-only session. " : ""}Link valid until ${when(current.expires_at)}.`;
  window.addEventListener("hashchange", render);
  await render();
}

start();
