// Webhooks: the list with its Active toggles, the form, and one webhook's page
// (Send test, Rotate secret, Delete).

import { ApiError, community, everything } from "./api.js";
import { clear, confirmDialog, copyButton, field, h, hostOf, say, uid, when } from "./dom.js";
import { clearErrors, group, showError } from "./forms.js";

// A secret is kept here only until the page that shows it once has rendered.
let revealed = null;

function statusText(entry) {
  if (!entry) return "No deliveries yet";
  const code = entry.status_code === null || entry.status_code === undefined ? "no answer" : entry.status_code;
  return `${entry.success ? "Success" : "Failure"} (${code}) · ${when(entry.created_at)}`;
}

export async function webhookList(main, portal) {
  const hooks = await everything("/webhooks");
  const body = h("tbody");
  const table = h(
    "table",
    { class: "cards" },
    h("caption", { class: "visually-hidden" }, "Webhooks of this community"),
    h(
      "thead",
      {},
      h("tr", {}, ["Name", "URL host", "Events", "Active", "Last delivery", "Last error"].map((t) => h("th", { scope: "col" }, t))),
    ),
    body,
  );
  for (const hook of hooks) {
    const toggle = h("input", {
      type: "checkbox",
      role: "switch",
      checked: hook.is_active,
      disabled: portal.readOnly,
      onchange: async (event) => {
        const input = event.currentTarget;
        try {
          await community("PATCH", `/webhooks/${hook.id}`, { is_active: input.checked });
          say(`${hook.name || hook.id} is now ${input.checked ? "active" : "inactive"}.`);
        } catch (error) {
          input.checked = !input.checked;
          say(`Could not change ${hook.name || hook.id}: ${error.message}`);
        }
      },
    });
    const last = h("td", { "data-label": "Last delivery" }, "…");
    body.append(
      h(
        "tr",
        {},
        h("th", { scope: "row", "data-label": "Name" }, h("a", { href: `#/webhooks/${hook.id}` }, hook.name || hook.id)),
        h("td", { "data-label": "URL host" }, hostOf(hook.url)),
        h("td", { "data-label": "Events" }, hook.events.join(", ")),
        h("td", {}, h("label", { class: "switch" }, toggle, " Active")),
        last,
        h("td", { "data-label": "Last error" }, hook.last_error || "—"),
      ),
    );
    community("GET", `/webhooks/${hook.id}/logs?per_page=1`)
      .then((log) => clear(last, statusText(log.data[0])))
      .catch(() => clear(last, "—"));
  }
  clear(
    main,
    h(
      "div",
      { class: "heading-row" },
      h("h1", {}, "Webhooks"),
      portal.readOnly ? null : h("button", { type: "button", onclick: () => { window.location.hash = "#/webhooks/new"; } }, "Add webhook"),
    ),
    hooks.length ? table : h("p", {}, "No webhooks yet. Add one to send this community's events to an endpoint."),
  );
}

function eventsFieldset(portal, selected) {
  const chosen = new Set(selected);
  const boxes = [];
  const box = (name, description) => {
    const id = uid("event");
    const input = h("input", { type: "checkbox", id, name: "events", value: name, checked: chosen.has(name) });
    boxes.push(input);
    return h(
      "div",
      { class: "check" },
      input,
      h("label", { for: id }, name),
      h("span", { class: "hint", id: `${id}-hint` }, description),
    );
  };
  const groups = new Map();
  for (const type of portal.eventTypes) {
    if (!groups.has(type.group)) groups.set(type.group, []);
    groups.get(type.group).push(type);
  }
  const sections = [group("All events", box("*", "Every event, including types added later."))];
  for (const [name, types] of groups) {
    sections.push(
      group(`${name} events`, [
        box(`${name}.*`, `Every ${name} event.`),
        types.map((type) => box(type.name, type.description)),
      ]),
    );
  }
  for (const input of boxes) input.setAttribute("aria-describedby", `${input.id}-hint`);
  const fieldset = group("Events", h("div", { class: "event-groups" }, sections), {
    id: "events",
    hint: "Pick the event types this webhook receives.",
  });
  fieldset.setAttribute("tabindex", "-1");
  return { fieldset, boxes };
}

function headersEditor(existing) {
  // Values are write-only: saved values are never put back into the page.
  const rows = h("div", { class: "header-rows" });
  const state = { dirty: false };
  const addRow = (name = "", saved = false) => {
    const nameInput = h("input", { type: "text", value: name, autocomplete: "off", maxlength: "256" });
    const valueInput = h("input", {
      type: "password",
      autocomplete: "new-password",
      placeholder: saved ? "saved (type to replace)" : "",
    });
    nameInput.addEventListener("input", () => { state.dirty = true; });
    valueInput.addEventListener("input", () => { state.dirty = true; });
    const row = h(
      "div",
      { class: "header-row" },
      field("Header name", nameInput),
      field("Header value", valueInput),
      h("button", { type: "button", class: "secondary", onclick: () => { row.remove(); state.dirty = true; } }, "Remove header"),
    );
    row.read = () => [nameInput.value.trim(), valueInput.value, saved ? name : null];
    rows.append(row);
    return row;
  };
  for (const name of Object.keys(existing)) addRow(name, true);
  const fieldset = group(
    "Headers",
    [rows, h("button", { type: "button", class: "secondary", onclick: () => { addRow(); state.dirty = true; } }, "Add header")],
    { id: "headers", hint: "Sent with every delivery. Values are write-only: they are never shown again." },
  );
  fieldset.setAttribute("tabindex", "-1");
  const value = () => {
    const headers = {};
    for (const row of rows.children) {
      const [name, typed, savedName] = row.read();
      if (!name) continue;
      headers[name] = typed || (savedName !== null ? existing[savedName] : "");
    }
    return headers;
  };
  return { fieldset, state, value };
}

export async function webhookForm(main, portal, id) {
  const hook = id
    ? await community("GET", `/webhooks/${id}`)
    : { name: "", url: "", events: [], retry_count: 3, format: "json", headers: {}, is_active: true };
  const name = h("input", { type: "text", value: hook.name, maxlength: "200", autocomplete: "off" });
  const url = h("input", { type: "url", value: hook.url, inputmode: "url", autocomplete: "off", required: true });
  const retries = h("input", { type: "number", value: String(hook.retry_count), min: "0", max: "10", inputmode: "numeric" });
  const format = h(
    "select",
    {},
    [["json", "json (Hookline payload)"], ["slack", "slack"], ["discord", "discord"]].map(([value, text]) =>
      h("option", { value, selected: hook.format === value }, text),
    ),
  );
  const active = h("input", { type: "checkbox", id: uid("active"), checked: hook.is_active });
  const events = eventsFieldset(portal, hook.events);
  const headers = headersEditor(hook.headers || {});
  const form = h(
    "form",
    { novalidate: true, class: "stack" },
    field("Name", name),
    field("URL", url, { hint: "Where deliveries are POSTed (https://)." }),
    field("Retry count", retries, { hint: "Retries after a failed attempt (0–10): 5 min, 30 min, 2 h, then every 2 h." }),
    events.fieldset,
    h("p", { class: "field-error", id: "events-error" }),
    field("Format", format),
    headers.fieldset,
    h("p", { class: "field-error", id: "headers-error" }),
    h("div", { class: "check" }, active, h("label", { for: active.id }, "Active")),
    h("div", { class: "actions" },
      h("button", { type: "submit", disabled: portal.readOnly }, "Save webhook"),
      h("a", { href: id ? `#/webhooks/${id}` : "#/webhooks" }, "Cancel"),
    ),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const body = {
      name: name.value.trim(),
      url: url.value.trim(),
      retry_count: retries.value === "" ? 3 : Number(retries.value),
      events: events.boxes.filter((b) => b.checked).map((b) => b.value),
      format: format.value,
      is_active: active.checked,
    };
    if (!id || headers.state.dirty) body.headers = headers.value();
    try {
      const saved = await community(id ? "PATCH" : "POST", id ? `/webhooks/${id}` : "/webhooks", body);
      if (!id) revealed = { id: saved.id, secret: saved.secret };
      say("Webhook saved.");
      window.location.hash = `#/webhooks/${saved.id}`;
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      showError(form, error, { name, url, retry_count: retries, format, events: events.fieldset, headers: headers.fieldset, is_active: active });
    }
  });
  clear(main, h("h1", {}, id ? `Edit ${hook.name || hook.id}` : "Add webhook"), form);
}

function secretPanel(title, secret, note) {
  return h(
    "section",
    { class: "once", "aria-labelledby": "once-title" },
    h("h2", { id: "once-title" }, title),
    h("p", {}, note),
    h("p", { class: "secret" }, h("code", { id: "shown-secret" }, secret)),
    copyButton(secret),
  );
}

export async function webhookDetail(main, portal, id) {
  const hook = await community("GET", `/webhooks/${id}`);
  const once = revealed && revealed.id === id ? revealed.secret : null;
  revealed = null;
  const result = h("div", { class: "result", "aria-live": "polite" });
  const onceSlot = h("div", {}, once ? secretPanel("Signing secret", once, "Copy it now: it is shown only once. Later visits show it masked.") : null);
  const overlap = h("input", { type: "number", value: "86400", min: "0", max: String(7 * 86400), step: "1", inputmode: "numeric" });
  const overlapSlot = h("div", { "aria-live": "polite" });
  const sendTest = async () => {
    clear(result, h("p", {}, "Sending a test.ping…"));
    try {
      const answer = await community("POST", `/webhooks/${id}/test`);
      const code = answer.status_code === null ? "no answer" : answer.status_code;
      clear(
        result,
        h("h2", {}, "Test result"),
        h(
          "dl",
          { class: "facts" },
          h("dt", {}, "Status code"), h("dd", { id: "test-status" }, String(code)),
          h("dt", {}, "Response time"), h("dd", {}, `${answer.response_time} ms`),
          h("dt", {}, "Result"), h("dd", {}, answer.message),
        ),
        h("h3", {}, "Response body"),
        h("pre", { class: "body" }, answer.response_body || "(empty)"),
      );
    } catch (error) {
      clear(result, h("p", { class: "alert" }, error.message));
    }
  };
  const rotateForm = h(
    "form",
    { novalidate: true, class: "stack" },
    field("Old secret keeps signing for (seconds)", overlap, {
      hint: "86400 is 24 hours; 0 switches to the new secret at once (up to 604800, a week).",
    }),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "secondary" }, "Rotate secret")),
  );
  const completeOverlap = async () => {
    const ends = when(hook.overlap_ends_at);
    const text = `Only the current secret signs from now on; the old one stops at once instead of at ${ends}. Receivers still checking with the old secret will reject deliveries.`;
    if (!(await confirmDialog("End the overlap now?", text, "End overlap"))) return;
    try {
      showOverlap(await community("POST", `/webhooks/${id}/rotate-secret/complete`));
      say("Overlap ended: only the current secret signs now.");
    } catch (error) {
      say(error.missingRoute ? "Ending the overlap is not available on this server." : `Ending the overlap failed: ${error.message}`);
    }
  };
  const showOverlap = (view) => {
    hook.overlap_ends_at = view.overlap_ends_at;
    const kept = view.previous_secrets || [];
    if (!view.overlap_ends_at) {
      clear(overlapSlot, h("p", {}, "No overlap running: only the current secret signs."));
      return;
    }
    clear(
      overlapSlot,
      h("p", { id: "overlap-note" }, `Overlap running until ${when(view.overlap_ends_at)}: ${kept.length === 1 ? "the old secret still signs" : `${kept.length} old secrets still sign`} alongside the current one.`),
      portal.readOnly
        ? null
        : h("button", { type: "button", class: "secondary", "aria-describedby": "overlap-note", onclick: completeOverlap }, "End overlap now"),
    );
  };
  showOverlap(hook);
  rotateForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(rotateForm);
    const body = overlap.value === "" ? undefined : { overlap_seconds: Number(overlap.value) };
    try {
      const answer = await community("POST", `/webhooks/${id}/rotate-secret`, body);
      const until = answer.previous_secret_expires_at
        ? ` The previous secret keeps signing until ${when(answer.previous_secret_expires_at)}.`
        : "";
      showOverlap(answer);
      clear(onceSlot, secretPanel("New signing secret", answer.secret, `Copy it now: it is shown only once.${until}`));
      onceSlot.querySelector("h2").setAttribute("tabindex", "-1");
      onceSlot.querySelector("h2").focus();
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.missingRoute) say("Rotating is not available on this server.");
      else showError(rotateForm, error, { overlap_seconds: overlap });
    }
  });
  const remove = async () => {
    if (!(await confirmDialog("Delete webhook?", `Delete ${hook.name || hook.id}? Deliveries to it stop at once; this cannot be undone.`, "Delete"))) return;
    try {
      await community("DELETE", `/webhooks/${id}`);
      say("Webhook deleted.");
      window.location.hash = "#/webhooks";
    } catch (error) {
      say(`Deleting failed: ${error.message}`);
    }
  };
  const change = !portal.readOnly;
  clear(
    main,
    h("p", { class: "crumbs" }, h("a", { href: "#/webhooks" }, "Webhooks")),
    h("h1", {}, hook.name || hook.id),
    onceSlot,
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "URL"), h("dd", { class: "wrap-anywhere" }, hook.url),
      h("dt", {}, "Events"), h("dd", {}, hook.events.join(", ")),
      h("dt", {}, "Format"), h("dd", {}, hook.format),
      h("dt", {}, "Retry count"), h("dd", {}, String(hook.retry_count)),
      h("dt", {}, "Status"), h("dd", {}, hook.is_active ? "Active" : `Inactive${hook.disabled_reason ? ` (${hook.disabled_reason})` : ""}`),
      h("dt", {}, "Headers"), h("dd", {}, Object.keys(hook.headers || {}).join(", ") || "—"),
      h("dt", {}, "Signing secret"), h("dd", {}, h("code", {}, hook.secret || "—")),
      h("dt", {}, "Last error"), h("dd", {}, hook.last_error || "—"),
    ),
    h(
      "div",
      { class: "actions" },
      h("a", { class: "button", href: `#/webhooks/${id}/log` }, "Delivery log"),
      change ? h("a", { class: "button secondary", href: `#/webhooks/${id}/edit` }, "Edit") : null,
      change ? h("button", { type: "button", onclick: sendTest }, "Send test") : null,
    ),
    result,
    h(
      "section",
      { "aria-labelledby": "secret-title" },
      h("h2", { id: "secret-title" }, "Secret"),
      overlapSlot,
      change ? rotateForm : null,
    ),
    change
      ? h(
          "section",
          { "aria-labelledby": "danger-title" },
          h("h2", { id: "danger-title" }, "Delete"),
          h("button", { type: "button", class: "danger", onclick: remove }, "Delete"),
        )
      : null,
  );
}
