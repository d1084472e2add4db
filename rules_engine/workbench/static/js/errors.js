// One way to show what went wrong: an error summary that names each field (with its path, as the
// API gives it) or each rule-file problem (file, line, column), and takes the focus.

import { fill, h } from "./dom.js";

/** Show `error` (an ApiError or any Error) in `place`, which is emptied first; focus moves there. */
export function showError(place, error, heading = "There is a problem") {
  const fields = error.violations && error.violations.length;
  // With field errors the list says it all (the API's message repeats the first of them).
  const message = fields ? "Correct these and try again:" : error.message || String(error);
  const parts = [h("h2", { id: `${place.id}-title` }, heading), h("p", {}, message)];
  if (error.violations && error.violations.length) {
    parts.push(
      h(
        "ul",
        { class: "violations" },
        error.violations.map((violation) =>
          h(
            "li",
            { class: "violation" },
            h("code", { class: "field-path" }, violation.field || "(request)"),
            ": ",
            violation.description,
          ),
        ),
      ),
    );
  }
  if (error.problems && error.problems.length) {
    parts.push(problemTable(error.problems));
  }
  place.hidden = false;
  place.setAttribute("role", "alert");
  place.setAttribute("tabindex", "-1");
  place.setAttribute("aria-labelledby", `${place.id}-title`);
  place.classList.add("error-summary");
  fill(place, parts);
  place.focus();
}

export function clearError(place) {
  place.hidden = true;
  place.replaceChildren();
}

/** Rule-file problems as a table: file, line, column, message. */
export function problemTable(problems) {
  return h(
    "table",
    { class: "problems" },
    h("caption", {}, "Problems in the rule files"),
    h(
      "thead",
      {},
      h("tr", {}, h("th", { scope: "col" }, "File"), h("th", { scope: "col" }, "Line"),
        h("th", { scope: "col" }, "Column"), h("th", { scope: "col" }, "Problem")),
    ),
    h(
      "tbody",
      {},
      problems.map((problem) =>
        h(
          "tr",
          { class: "problem" },
          h("td", {}, h("code", {}, problem.file || "—")),
          h("td", { class: "number" }, problem.line ?? "—"),
          h("td", { class: "number" }, problem.column ?? "—"),
          h("td", {}, problem.message || ""),
        ),
      ),
    ),
  );
}
