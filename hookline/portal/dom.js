// Small DOM helpers. Text always goes in as text nodes, never as HTML.

let counter = 0;

export function uid(prefix = "f") {
  counter += 1;
  return `${prefix}-${counter}`;
}

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      node.className = value;
    } else if (name === "value") {
      node.value = value;
    } else if (name === "checked" || name === "selected" || name === "disabled") {
      node[name] = Boolean(value);
    } else {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

export function field(label, control, { hint, id } = {}) {
  const controlId = id || control.id || uid("field");
  control.id = controlId;
  const errorId = `${controlId}-error`;
  const parts = [h("label", { for: controlId }, label)];
  const described = [];
  if (hint) {
    parts.push(h("p", { class: "hint", id: `${controlId}-hint` }, hint));
    described.push(`${controlId}-hint`);
  }
  described.push(errorId);
  control.setAttribute("aria-describedby", described.join(" "));
  parts.push(control, h("p", { class: "field-error", id: errorId }));
  return h("div", { class: "field" }, parts);
}

export function when(iso) {
  if (!iso) return "—";
  const moment = new Date(iso);
  return Number.isNaN(moment.getTime()) ? iso : moment.toLocaleString();
}

export function hostOf(url) {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

export function say(message) {
  const status = document.getElementById("status");
  status.textContent = "";
  // A fresh node each time, so screen readers announce a repeated message too.
  window.setTimeout(() => {
    status.textContent = message;
  }, 30);
  window.setTimeout(() => {
    if (status.textContent === message) status.textContent = "";
  }, 6000);
}

export function copyButton(text, label = "Copy") {
  return h(
    "button",
    {
      type: "button",
      class: "secondary",
      onclick: async (event) => {
        const button = event.currentTarget;
        try {
          await navigator.clipboard.writeText(text);
          say("Copied to the clipboard.");
          button.textContent = "Copied";
        } catch {
          say("Copying failed: select the text and copy it by hand.");
        }
      },
    },
    label,
  );
}

export function confirmDialog(title, text, action) {
  return new Promise((resolve) => {
    const dialog = h(
      "dialog",
      { "aria-labelledby": "confirm-title", class: "dialog" },
      h("h2", { id: "confirm-title" }, title),
      h("p", {}, text),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", class: "danger", value: "yes", onclick: () => dialog.close("yes") }, action),
        h("button", { type: "button", class: "secondary", onclick: () => dialog.close("no") }, "Cancel"),
      ),
    );
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(dialog.returnValue === "yes");
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}
