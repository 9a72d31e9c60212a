// Spaces and courses: enough of the directory to set up incoming webhooks.

import { ApiError, community, everything } from "./api.js";
import { clear, field, h, say } from "./dom.js";
import { clearErrors, showError } from "./forms.js";

async function section(portal, kind, singular, refresh) {
  const groups = await everything(`/${kind}`);
  const title = kind === "spaces" ? "Spaces" : "Courses";
  const name = h("input", { type: "text", maxlength: "200", autocomplete: "off" });
  const form = h(
    "form",
    { novalidate: true, class: "inline-form" },
    field(`${singular} name`, name),
    h("button", { type: "submit" }, `Create ${singular.toLowerCase()}`),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    try {
      await community("POST", `/${kind}`, { name: name.value.trim() });
      say(`${singular} ${name.value.trim()} created.`);
      await refresh();
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      showError(form, error, { name, slug: name });
    }
  });
  return h(
    "section",
    { "aria-labelledby": `${kind}-title` },
    h("h2", { id: `${kind}-title` }, title),
    groups.length
      ? h("ul", { class: "cards-list" }, groups.map((g) => h("li", { class: "card" }, g.name, h("span", { class: "hint" }, ` · ${g.slug}`))))
      : h("p", {}, `No ${kind} yet.`),
    portal.readOnly ? null : form,
  );
}

export async function directoryScreen(main, portal) {
  const refresh = () => directoryScreen(main, portal);
  const [spaces, courses] = await Promise.all([
    section(portal, "spaces", "Space", refresh),
    section(portal, "courses", "Course", refresh),
  ]);
  clear(main, h("h1", {}, "Spaces and courses"), spaces, courses);
}
