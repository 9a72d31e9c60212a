// Showing API errors next to the field they name.

import { h } from "./dom.js";

export function clearErrors(form) {
  for (const node of form.querySelectorAll(".field-error")) node.textContent = "";
  for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  const summary = form.querySelector(".form-error");
  if (summary) summary.remove();
}

// `fields` maps an API field name (data.field) to the control it belongs to.
export function showError(form, error, fields) {
  const name = (error.field || "").split(",")[0].split(".")[0];
  const control = fields[name];
  if (control) {
    control.setAttribute("aria-invalid", "true");
    const slot = document.getElementById(`${control.id}-error`);
    if (slot) slot.textContent = error.message;
    control.focus();
    return;
  }
  const summary = h("p", { class: "alert form-error", role: "alert" }, error.message);
  form.prepend(summary);
}

export function group(legend, children, { id, hint } = {}) {
  return h(
    "fieldset",
    { id },
    h("legend", {}, legend),
    hint ? h("p", { class: "hint" }, hint) : null,
    children,
  );
}
