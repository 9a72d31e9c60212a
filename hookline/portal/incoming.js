// Incoming webhooks: secret URLs that create members and manage their spaces and courses.

import { ApiError, community, everything } from "./api.js";
import { clear, confirmDialog, copyButton, field, h, say, uid, when } from "./dom.js";
import { clearErrors, group, showError } from "./forms.js";

// A new URL (and signing secret) is kept here only until the page that shows it once renders.
let revealed = null;

export async function incomingList(main, portal) {
  const hooks = await everything("/incoming-webhooks");
  const items = hooks.map((hook) =>
    h(
      "li",
      { class: "card" },
      h("a", { href: `#/incoming/${hook.id}` }, hook.name),
      h("span", { class: "hint" }, ` · ${hook.status === "active" ? "Active" : "Inactive"} · created ${when(hook.created_at)}`),
    ),
  );
  clear(
    main,
    h(
      "div",
      { class: "heading-row" },
      h("h1", {}, "Incoming webhooks"),
      portal.readOnly ? null : h("button", { type: "button", onclick: () => { window.location.hash = "#/incoming/new"; } }, "Add incoming webhook"),
    ),
    h("p", {}, "Each incoming webhook is a secret URL: a form, a payment provider or a Zap posts a member's email to it, and Hookline creates the member and adds or removes their spaces and courses."),
    items.length ? h("ul", { class: "cards-list" }, items) : h("p", {}, "No incoming webhooks yet."),
  );
}

function choices(legend, groups, selected, emptyText) {
  const chosen = new Set(selected);
  const boxes = groups.map((item) => {
    const id = uid("group");
    return [h("input", { type: "checkbox", id, value: item.id, checked: chosen.has(item.id) }), id, item.name];
  });
  const fieldset = group(
    legend,
    boxes.length
      ? boxes.map(([input, id, name]) => h("div", { class: "check" }, input, h("label", { for: id }, name)))
      : h("p", { class: "hint" }, emptyText),
  );
  fieldset.setAttribute("tabindex", "-1");
  return { fieldset, value: () => boxes.filter(([input]) => input.checked).map(([input]) => input.value) };
}

async function allGroups(kind) {
  return everything(`/${kind}`);
}

export async function incomingForm(main, portal, id) {
  const [hook, spaces, courses] = await Promise.all([
    id
      ? community("GET", `/incoming-webhooks/${id}`)
      : { name: "", add_spaces: [], remove_spaces: [], add_courses: [], remove_courses: [], allowed_ips: [], send_welcome_email: false, require_signature: false },
    allGroups("spaces"),
    allGroups("courses"),
  ]);
  const none = (kind) => h("span", {}, `No ${kind} yet: create them under `, h("a", { href: "#/directory" }, "Spaces and courses"), ".");
  const name = h("input", { type: "text", value: hook.name, maxlength: "200", autocomplete: "off" });
  const addSpaces = choices("Add to spaces", spaces, hook.add_spaces, none("spaces"));
  const removeSpaces = choices("Remove from spaces", spaces, hook.remove_spaces, none("spaces"));
  const addCourses = choices("Add to courses", courses, hook.add_courses, none("courses"));
  const removeCourses = choices("Remove from courses", courses, hook.remove_courses, none("courses"));
  const welcome = h("input", { type: "checkbox", id: uid("welcome"), checked: hook.send_welcome_email });
  const signature = h("input", { type: "checkbox", id: uid("signature"), checked: hook.require_signature });
  const ips = h("textarea", { rows: "3", autocomplete: "off" });
  ips.value = hook.allowed_ips.join("\n");
  const form = h(
    "form",
    { novalidate: true, class: "stack" },
    field("Name", name),
    addSpaces.fieldset,
    removeSpaces.fieldset,
    addCourses.fieldset,
    removeCourses.fieldset,
    h("div", { class: "check" }, welcome, h("label", { for: welcome.id }, "Send welcome email"),
      h("span", { class: "hint" }, "Only to members this webhook creates.")),
    field("IP allowlist", ips, { hint: "One address or CIDR range per line. Empty: any address may call." }),
    h("div", { class: "check" }, signature, h("label", { for: signature.id }, "Require signature"),
      h("span", { class: "hint" }, "Callers must sign each request with the signing secret (shown once).")),
    h("div", { class: "actions" },
      h("button", { type: "submit", disabled: portal.readOnly }, "Save incoming webhook"),
      h("a", { href: id ? `#/incoming/${id}` : "#/incoming" }, "Cancel"),
    ),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const body = {
      name: name.value.trim(),
      add_spaces: addSpaces.value(),
      remove_spaces: removeSpaces.value(),
      add_courses: addCourses.value(),
      remove_courses: removeCourses.value(),
      send_welcome_email: welcome.checked,
      allowed_ips: ips.value.split(/\s+/).filter(Boolean),
    };
    if (!id || signature.checked !== hook.require_signature) body.require_signature = signature.checked;
    try {
      const saved = await community(id ? "PATCH" : "POST", id ? `/incoming-webhooks/${id}` : "/incoming-webhooks", body);
      const secret = saved.signing_secret && !saved.signing_secret.includes("…") && !saved.signing_secret.includes("*") ? saved.signing_secret : null;
      if (saved.url || (secret && body.require_signature)) revealed = { id: saved.id, url: saved.url, secret: body.require_signature ? secret : null };
      say("Incoming webhook saved.");
      window.location.hash = `#/incoming/${saved.id}`;
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      showError(form, error, {
        name,
        add_spaces: addSpaces.fieldset,
        remove_spaces: removeSpaces.fieldset,
        add_courses: addCourses.fieldset,
        remove_courses: removeCourses.fieldset,
        allowed_ips: ips,
        send_welcome_email: welcome,
        require_signature: signature,
      });
    }
  });
  clear(main, h("h1", {}, id ? `Edit ${hook.name}` : "Add incoming webhook"), form);
}

function urlPanel(title, url, secret) {
  const curl = `curl --form email=someone@example.com --form first_name=Sam '${url}'`;
  return h(
    "section",
    { class: "once", "aria-labelledby": "once-title" },
    h("h2", { id: "once-title", tabindex: "-1" }, title),
    h("p", {}, "Copy it now: the URL is the credential and is shown only once. Later visits cannot show it; use Rotate URL to get a new one."),
    h("p", { class: "secret" }, h("code", { id: "shown-url" }, url)),
    copyButton(url),
    h("h3", {}, "Try it"),
    h("pre", { class: "body" }, curl),
    copyButton(curl, "Copy curl example"),
    secret
      ? [h("h3", {}, "Signing secret"), h("p", { class: "secret" }, h("code", {}, secret)), copyButton(secret, "Copy signing secret")]
      : null,
  );
}

function secretPanel(secret) {
  return h(
    "section",
    { class: "once", "aria-labelledby": "once-title" },
    h("h2", { id: "once-title", tabindex: "-1" }, "Signing secret"),
    h("p", {}, "Copy it now: it is shown only once. Callers sign each request with it."),
    h("p", { class: "secret" }, h("code", {}, secret)),
    copyButton(secret, "Copy signing secret"),
  );
}

function names(ids, groups) {
  const byId = new Map(groups.map((g) => [g.id, g.name]));
  return ids.map((gid) => byId.get(gid) || gid).join(", ") || "—";
}

export async function incomingDetail(main, portal, id) {
  const [hook, logs, spaces, courses] = await Promise.all([
    community("GET", `/incoming-webhooks/${id}`),
    community("GET", `/incoming-webhooks/${id}/logs?per_page=20`),
    allGroups("spaces"),
    allGroups("courses"),
  ]);
  const once = revealed && revealed.id === id ? revealed : null;
  revealed = null;
  let shown = null;
  if (once && once.url) shown = urlPanel("Incoming webhook URL", once.url, once.secret);
  else if (once && once.secret) shown = secretPanel(once.secret);
  const onceSlot = h("div", {}, shown);
  const rotate = async () => {
    if (!(await confirmDialog("Rotate URL?", "The current URL stops working at once. Every sender must switch to the new one.", "Rotate URL"))) return;
    try {
      const answer = await community("POST", `/incoming-webhooks/${id}/rotate`);
      clear(onceSlot, urlPanel("New incoming webhook URL", answer.url, null));
      onceSlot.querySelector("h2").focus();
    } catch (error) {
      say(`Rotating failed: ${error.message}`);
    }
  };
  const remove = async () => {
    if (!(await confirmDialog("Delete incoming webhook?", `Delete ${hook.name}? Its URL stops working at once.`, "Delete"))) return;
    await community("DELETE", `/incoming-webhooks/${id}`);
    say("Incoming webhook deleted.");
    window.location.hash = "#/incoming";
  };
  const activity = logs.data.map((entry) =>
    h(
      "tr",
      {},
      h("td", { "data-label": "Time" }, when(entry.created_at)),
      h("td", { "data-label": "Source IP" }, entry.source_ip),
      h("td", { "data-label": "Outcome" }, h("span", { class: entry.outcome === "rejected" ? "bad" : "ok" }, entry.outcome)),
      h("td", { "data-label": "Status code" }, String(entry.status_code)),
      h("td", { "data-label": "Message" }, entry.message),
    ),
  );
  const change = !portal.readOnly;
  clear(
    main,
    h("p", { class: "crumbs" }, h("a", { href: "#/incoming" }, "Incoming webhooks")),
    h("h1", {}, hook.name),
    onceSlot,
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "URL"), h("dd", {}, "Hidden: shown only when created or rotated."),
      h("dt", {}, "Add to spaces"), h("dd", {}, names(hook.add_spaces, spaces)),
      h("dt", {}, "Remove from spaces"), h("dd", {}, names(hook.remove_spaces, spaces)),
      h("dt", {}, "Add to courses"), h("dd", {}, names(hook.add_courses, courses)),
      h("dt", {}, "Remove from courses"), h("dd", {}, names(hook.remove_courses, courses)),
      h("dt", {}, "Send welcome email"), h("dd", {}, hook.send_welcome_email ? "Yes" : "No"),
      h("dt", {}, "IP allowlist"), h("dd", {}, hook.allowed_ips.join(", ") || "Any address"),
      h("dt", {}, "Require signature"), h("dd", {}, hook.require_signature ? `Yes (secret ${hook.signing_secret})` : "No"),
    ),
    change
      ? h(
          "div",
          { class: "actions" },
          h("a", { class: "button secondary", href: `#/incoming/${id}/edit` }, "Edit"),
          h("button", { type: "button", class: "secondary", onclick: rotate }, "Rotate URL"),
          h("button", { type: "button", class: "danger", onclick: remove }, "Delete"),
        )
      : null,
    h("section", { "aria-labelledby": "activity-title" },
      h("div", { class: "heading-row" },
        h("h2", { id: "activity-title" }, "Activity"),
        h("button", { type: "button", class: "secondary", onclick: () => incomingDetail(main, portal, id) }, "Refresh activity"),
      ),
      activity.length
        ? h(
            "table",
            { class: "cards" },
            h("caption", { class: "visually-hidden" }, "Recent calls"),
            h("thead", {}, h("tr", {}, ["Time", "Source IP", "Outcome", "Status code", "Message"].map((t) => h("th", { scope: "col" }, t)))),
            h("tbody", {}, activity),
          )
        : h("p", {}, "No calls yet."),
    ),
  );
}
