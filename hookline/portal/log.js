// One webhook's delivery log: every attempt, filters, paging, Resend, Recover and Replay.

import { ApiError, community, query } from "./api.js";
import { clear, field, h, say, uid, when } from "./dom.js";
import { showError } from "./forms.js";

const PER_PAGE = 20;
const BODY_PREVIEW = 500;

function isoFrom(localValue) {
  const moment = new Date(localValue);
  return Number.isNaN(moment.getTime()) ? "" : moment.toISOString().replace(/\.\d{3}Z$/, "Z");
}

function sinceForm(label, button, hint, run) {
  const input = h("input", { type: "datetime-local", step: "1" });
  const out = h("p", { class: "hint outcome", "aria-live": "polite" });
  const form = h(
    "form",
    { novalidate: true, class: "inline-form" },
    field(label, input, { hint }),
    h("button", { type: "submit", class: "secondary" }, button),
    out,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const since = isoFrom(input.value);
    if (!since) {
      out.textContent = "Pick a date and time first.";
      input.focus();
      return;
    }
    out.textContent = await run(since);
  });
  return form;
}

const NO_FILTERS = { page: 1, status: "", event: "", status_code: "", since: "", until: "" };

function options(pairs, chosen) {
  return pairs.map(([value, text]) => h("option", { value, selected: chosen === value }, text));
}

export async function deliveryLog(main, portal, id, filters = NO_FILTERS) {
  const hook = await community("GET", `/webhooks/${id}`);
  // since and until stay as the inputs' local values; the API gets them as UTC instants.
  const asked = { ...filters, per_page: PER_PAGE, since: isoFrom(filters.since), until: isoFrom(filters.until) };
  let log = { data: [], next_cursor: null };
  let failure = null;
  try {
    log = await community("GET", `/webhooks/${id}/logs${query(asked)}`);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    failure = error;
  }
  // After a refused filter the focus stays on the field the error names.
  const reload = (next) => deliveryLog(main, portal, id, { ...filters, ...next }).then((refused) => {
    if (!refused) main.querySelector("h1").focus();
  });

  const status = h("select", {}, options([["", "All"], ["success", "Success"], ["failed", "Failure"]], filters.status));
  const statusCode = h(
    "select",
    {},
    options(
      [["", "Any"], ["2xx", "2xx"], ["3xx", "3xx"], ["4xx", "4xx"], ["5xx", "5xx"], ["none", "No answer"]],
      filters.status_code,
    ),
  );
  const eventFilter = h(
    "select",
    {},
    h("option", { value: "" }, "All events"),
    portal.eventTypes.map((t) => h("option", { value: t.name, selected: filters.event === t.name }, t.name)),
  );
  const since = h("input", { type: "datetime-local", step: "1", value: filters.since });
  const until = h("input", { type: "datetime-local", step: "1", value: filters.until });
  const filterForm = h(
    "form",
    { class: "filters", novalidate: true },
    field("Status", status),
    field("Status code", statusCode),
    field("Event", eventFilter),
    field("Since", since, { hint: "From this time on (your time zone)." }),
    field("Until", until, { hint: "Before this time." }),
    h("button", { type: "submit", class: "secondary" }, "Filter"),
  );
  filterForm.addEventListener("submit", (event) => {
    event.preventDefault();
    reload({
      page: 1,
      status: status.value,
      status_code: statusCode.value,
      event: eventFilter.value,
      since: since.value,
      until: until.value,
    });
  });

  const rows = log.data.map((entry) => {
    const bodyId = uid("body");
    const preview = h("pre", { class: "body", id: bodyId, hidden: true }, (entry.response_body || "(empty)").slice(0, BODY_PREVIEW));
    const toggle = h(
      "button",
      {
        type: "button",
        class: "link",
        "aria-expanded": "false",
        "aria-controls": bodyId,
        onclick: () => {
          const open = preview.hidden;
          preview.hidden = !open;
          toggle.setAttribute("aria-expanded", String(open));
          toggle.textContent = open ? "Hide response body" : "Show response body";
        },
      },
      "Show response body",
    );
    const resend = portal.readOnly
      ? null
      : h(
          "button",
          {
            type: "button",
            class: "secondary",
            onclick: async () => {
              try {
                const answer = await community("POST", `/webhooks/${id}/deliveries/${entry.delivery_id}/resend`);
                say(answer.message || "Resent.");
              } catch (error) {
                say(error.missingRoute ? "Resend is not available on this server." : `Resend failed: ${error.message}`);
              }
            },
          },
          "Resend",
        );
    const code = entry.status_code === null || entry.status_code === undefined ? "none" : String(entry.status_code);
    return h(
      "tr",
      {},
      h("td", { "data-label": "Time" }, when(entry.created_at)),
      h("td", { "data-label": "Event" }, entry.event),
      h("td", { "data-label": "Attempt" }, String(entry.attempt)),
      h("td", { "data-label": "Status code" }, code),
      h("td", { "data-label": "Response time" }, `${entry.response_time_ms} ms`),
      h("td", { "data-label": "Result" }, h("span", { class: entry.success ? "ok" : "bad" }, entry.success ? "Success" : "Failure"), entry.error ? ` · ${entry.error}` : ""),
      h("td", { "data-label": "Response body" }, toggle, preview),
      h("td", { "data-label": "Actions" }, resend),
    );
  });

  const table = h(
    "table",
    { class: "cards" },
    h("caption", { class: "visually-hidden" }, `Delivery log of ${hook.name || hook.id}`),
    h(
      "thead",
      {},
      h("tr", {}, ["Time", "Event", "Attempt", "Status code", "Response time", "Result", "Response body", "Actions"].map((t) => h("th", { scope: "col" }, t))),
    ),
    h("tbody", {}, rows),
  );
  const more = log.next_cursor !== null && log.next_cursor !== undefined;
  const pager = h(
    "nav",
    { class: "pager", "aria-label": "Pages" },
    h("button", { type: "button", class: "secondary", disabled: filters.page <= 1, onclick: () => reload({ page: filters.page - 1 }) }, "Previous page"),
    h("span", {}, `Page ${filters.page}`),
    h("button", { type: "button", class: "secondary", disabled: !more, onclick: () => reload({ page: filters.page + 1 }) }, "Next page"),
  );

  const recover = sinceForm("Recover since", "Recover", "Send every failed delivery since then again.", async (since) => {
    try {
      return (await community("POST", `/webhooks/${id}/recover`, { since })).message || "Recovery queued.";
    } catch (error) {
      return error.missingRoute ? "Recover is not available on this server." : `Recover failed: ${error.message}`;
    }
  });
  const replay = sinceForm("Replay since", "Replay", "Deliver stored events since then that this webhook never got.", async (since) => {
    try {
      const answer = await community("POST", `/webhooks/${id}/replay`, { since });
      return answer.message || `Replay queued: ${answer.queued ?? answer.count ?? 0} events.`;
    } catch (error) {
      return error.missingRoute ? "Replay is not available on this Hookline server yet." : `Replay failed: ${error.message}`;
    }
  });

  clear(
    main,
    h("p", { class: "crumbs" }, h("a", { href: "#/webhooks" }, "Webhooks"), " / ", h("a", { href: `#/webhooks/${id}` }, hook.name || hook.id)),
    h("h1", { tabindex: "-1" }, `Delivery log: ${hook.name || hook.id}`),
    filterForm,
    failure ? null : log.data.length ? table : h("p", {}, "No attempts match."),
    pager,
    portal.readOnly
      ? null
      : h("section", { "aria-labelledby": "bulk-title" }, h("h2", { id: "bulk-title" }, "Recover and replay"), recover, replay),
  );
  if (failure) {
    showError(filterForm, failure, { status, status_code: statusCode, event: eventFilter, since, until });
  }
  return failure !== null;
}
