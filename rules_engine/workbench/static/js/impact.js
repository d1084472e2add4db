// "Impact of a change": upload edited rule files and a caseload; the server checks the edit, runs
// the ruleset's own tests, evaluates the caseload on both versions and counts the change per rule
// and per theme. This page sends the files' text as JSON and lays out the counts and drill-down.

import { api } from "./api.js";
import { announce, byId, count, fill, h, plain, readText } from "./dom.js";
import { clearError, showError } from "./errors.js";

const chosen = []; // [{file, path}]
let caseload = null; // {name, text, lines}
let last = null; // the latest preview, for the drill-down

function number(n) {
  return (n ?? 0).toLocaleString("en-GB");
}

// -- the form ------------------------------------------------------------------------------------

function pathFor(file) {
  // A folder's files carry "folder/sub/file.yaml": the path inside the ruleset drops the folder.
  const relative = file.webkitRelativePath || "";
  return relative.includes("/") ? relative.split("/").slice(1).join("/") : file.name;
}

function addFiles(files) {
  for (const file of files) {
    if (!/\.ya?ml$/i.test(file.name)) continue; // a folder brings README.md and the like along
    const path = pathFor(file);
    const same = chosen.findIndex((c) => c.path === path);
    if (same >= 0) chosen.splice(same, 1);
    chosen.push({ file, path });
  }
  showChosen();
}

function showChosen() {
  const place = byId("chosen-files");
  if (!chosen.length) {
    fill(place, h("p", { class: "hint" }, "No files chosen yet."));
    return;
  }
  fill(
    place,
    h("p", {}, `${count(chosen.length, "file")} will replace or add to the served ruleset's files. Check each path:`),
    h(
      "ul",
      { class: "file-list" },
      chosen.map((entry, index) => {
        const id = `path-${index}`;
        return h(
          "li",
          { class: "chosen-file" },
          h("label", { for: id, class: "visually-hidden" }, `Path in the ruleset for ${entry.file.name}`),
          h("input", {
            type: "text",
            id,
            value: entry.path,
            spellcheck: "false",
            autocomplete: "off",
            "data-index": index,
            class: "chosen-path",
          }),
          " ",
          h("button", { type: "button", class: "link-button", "data-remove": index }, `Remove ${entry.file.name}`),
        );
      }),
    ),
  );
}

async function readCaseload(file) {
  const text = await readText(file);
  const lines = text.split("\n").filter((line) => line.trim()).length;
  caseload = { name: file.name, text, lines };
  byId("caseload-summary").textContent = `${file.name}: ${count(lines, "case")}.`;
}

async function requestBody() {
  const body = { ruleset: byId("ruleset").value };
  const asOf = byId("as-of").value;
  if (asOf) body.as_of = asOf;
  const base = byId("base-path").value.trim();
  const head = byId("head-path").value.trim();
  const problems = [];
  if (base || head) {
    body.base = base;
    body.head = head;
    delete body.ruleset;
  } else {
    if (!chosen.length) problems.push({ field: "files", description: "Choose the rule files you edited." });
    body.files = {};
    for (const entry of chosen) body.files[entry.path] = await readText(entry.file);
  }
  if (!caseload) problems.push({ field: "caseload", description: "Choose a caseload file (JSON lines)." });
  else body.caseload = caseload.text;
  if (problems.length) {
    const error = new Error("The preview needs a little more.");
    error.violations = problems;
    throw error;
  }
  return body;
}

// -- the results ---------------------------------------------------------------------------------

function countCells(row) {
  return [
    h("td", { class: "number newly" }, number(row.newly_flagged)),
    h("td", { class: "number gone" }, number(row.no_longer_flagged)),
    h("td", { class: "number same" }, number(row.unchanged)),
  ];
}

function countHeads() {
  return [
    h("th", { scope: "col", class: "number" }, "Newly flagged"),
    h("th", { scope: "col", class: "number" }, "No longer flagged"),
    h("th", { scope: "col", class: "number" }, "Unchanged"),
  ];
}

function themeRows(themes, everyTheme) {
  const shown = everyTheme ? themes : themes.filter((t) => t.newly_flagged || t.no_longer_flagged);
  if (!shown.length) {
    return h("tr", {}, h("td", { colspan: 5 }, "No theme's count changes: every case stays as it was under every theme."));
  }
  return shown.map((t) =>
    h(
      "tr",
      { dataset: { theme: t.theme } },
      h("th", { scope: "row" }, t.theme, themesShared(themes) ? "" : h("span", { class: "hint" }, ` (${t.ruleset})`)),
      h("td", {}, count((t.rules || []).length, "rule")),
      countCells(t),
    ),
  );
}

function themeTable(themes) {
  if (!themes.length) return h("p", {}, "No theme to count.");
  const body = h("tbody", {}, themeRows(themes, false));
  const toggle = h("input", { type: "checkbox", id: "every-theme" });
  toggle.addEventListener("change", () => fill(body, themeRows(themes, toggle.checked)));
  return h(
    "div",
    {},
    h("div", { class: "field" }, h("label", { for: "every-theme", class: "inline" }, toggle, ` Show every theme (${themes.length}), not only those whose counts change`)),
    h(
      "div",
      { class: "table-scroll" },
      h(
        "table",
        { id: "theme-table" },
        h("caption", { class: "visually-hidden" }, "Counts by theme"),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Theme"), h("th", { scope: "col" }, "Rules"), countHeads())),
        body,
      ),
    ),
  );
}

function themesShared(themes) {
  return new Set(themes.map((t) => t.ruleset)).size <= 1;
}

function ruleRows(rules, everyRule) {
  const changed = (r) => r.newly_flagged || r.no_longer_flagged || (r.edits && r.edits.length) || r.presence !== "both";
  const shown = everyRule ? rules : rules.filter(changed);
  shown.sort((a, b) => b.newly_flagged + b.no_longer_flagged - (a.newly_flagged + a.no_longer_flagged) || a.rule_id.localeCompare(b.rule_id));
  return shown.map((r) => {
    const cases = (last.cases || []).filter((c) => c.rule_id === r.rule_id && c.ruleset === r.ruleset).length;
    const change = [];
    if (r.presence === "added") change.push("added by the edit");
    if (r.presence === "removed") change.push("removed by the edit");
    for (const edit of r.edits || []) change.push(edit);
    return h(
      "tr",
      { dataset: { rule: r.rule_id } },
      h("th", { scope: "row" }, r.title || r.rule_id, h("br"), h("code", { class: "rule-id" }, r.rule_id), r.shadow ? [" ", h("span", { class: "badge shadow" }, "Shadow")] : null),
      h("td", {}, (r.themes || []).join(", ") || "—"),
      h("td", {}, change.length ? change.join("; ") : "—"),
      countCells(r),
      h(
        "td",
        {},
        cases
          ? h("button", { type: "button", class: "show-cases", "data-rule": r.rule_id, "data-ruleset": r.ruleset }, `Show ${count(cases, "case")}`, h("span", { class: "visually-hidden" }, ` for ${r.rule_id}`))
          : "—",
      ),
    );
  });
}

function ruleTable(rules) {
  const body = h("tbody", {}, ruleRows(rules, false));
  const toggle = h("input", { type: "checkbox", id: "every-rule" });
  toggle.addEventListener("change", () => fill(body, ruleRows(rules, toggle.checked)));
  return h(
    "div",
    {},
    h("div", { class: "field" }, h("label", { for: "every-rule", class: "inline" }, toggle, ` Show every rule (${rules.length}), not only those the edit changes`)),
    h(
      "div",
      { class: "table-scroll" },
      h(
        "table",
        { id: "rule-table" },
        h("caption", { class: "visually-hidden" }, "Counts by rule"),
        h(
          "thead",
          {},
          h("tr", {}, h("th", { scope: "col" }, "Rule"), h("th", { scope: "col" }, "Themes"), h("th", { scope: "col" }, "What the edit changed"), countHeads(), h("th", { scope: "col" }, "Cases")),
        ),
        body,
      ),
    ),
  );
}

function sideTable(caption, side) {
  const names = [...new Set([...Object.keys(side.measured || {}), ...Object.keys(side.thresholds || {})])];
  if (!side.exists) return h("p", {}, `${caption}: the rule does not exist in this version.`);
  if (!names.length) return null;
  return h(
    "table",
    { class: "side" },
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Name"), h("th", { scope: "col", class: "number" }, "Value"))),
    h(
      "tbody",
      {},
      Object.entries(side.measured || {}).map(([name, value]) => h("tr", {}, h("td", {}, h("code", {}, name)), h("td", { class: "number" }, plain(value)))),
      Object.entries(side.thresholds || {}).map(([name, value]) => h("tr", {}, h("td", {}, h("code", {}, name), " (threshold)"), h("td", { class: "number" }, plain(value)))),
    ),
  );
}

function drill(ruleset, ruleId) {
  const cases = (last.cases || []).filter((c) => c.rule_id === ruleId && c.ruleset === ruleset);
  const title = cases.length ? cases[0].title : ruleId;
  const place = byId("drill");
  fill(
    place,
    h("h3", { id: "drill-title" }, `Cases whose flag changes: ${title}`),
    h("p", { class: "hint" }, `Rule ${ruleId}. Each case with what the rule measured and compared, before and after the edit.`),
    h(
      "ul",
      { class: "case-changes" },
      cases.map((c) =>
        h(
          "li",
          { class: "case-change", dataset: { case: c.case_id, change: c.change } },
          h("strong", {}, `Case ${c.case_id}`),
          " ",
          c.change === "newly_flagged" ? h("span", { class: "badge change-new" }, "Newly flagged") : h("span", { class: "badge change-gone" }, "No longer flagged"),
          c.explanation ? h("p", {}, c.explanation) : null,
          h("div", { class: "flag-values" }, sideTable("Before the edit", c.before || {}), sideTable("After the edit", c.after || {})),
        ),
      ),
    ),
  );
  place.hidden = false;
  place.focus();
}

function render(result, seconds) {
  last = result;
  const rules = result.rules || [];
  const sum = (key) => rules.reduce((total, r) => total + (r[key] || 0), 0);
  const versions = (result.rulesets || [])
    .map((name) => `${name} ${(result.base_versions || {})[name] || "(new)"} → ${(result.head_versions || {})[name] || "(removed)"}`)
    .join(", ");
  const changedCases = new Set((result.cases || []).map((c) => c.case_id)).size;
  const parts = [
    h(
      "p",
      { class: "summary-line", id: "impact-summary" },
      `${count(result.caseload, "case")} evaluated as of ${result.as_of} on both versions (${versions}), in ${seconds.toFixed(1)} s.`,
    ),
    h(
      "ul",
      { class: "totals" },
      h("li", { id: "total-newly" }, h("span", { class: "n" }, number(sum("newly_flagged"))), "new flags (case and rule)"),
      h("li", { id: "total-gone" }, h("span", { class: "n" }, number(sum("no_longer_flagged"))), "flags no longer raised"),
      h("li", { id: "total-cases" }, h("span", { class: "n" }, number(changedCases)), "cases whose flags change"),
    ),
  ];
  if (result.cases_total > (result.cases || []).length) {
    parts.push(h("p", { class: "hint" }, `The drill-down lists the first ${number(result.cases.length)} of ${number(result.cases_total)} changes; the counts cover every case.`));
  }
  if ((result.parameters || []).length) {
    parts.push(
      h("h3", {}, "Thresholds changed"),
      h(
        "ul",
        { id: "parameters" },
        result.parameters.map((p) =>
          h("li", {}, p.describe || `${p.name}: ${plain(p.old)} → ${plain(p.new)}`,
            p.near !== null && p.near !== undefined ? ` — ${count(p.near, "case")} in the caseload near the change` : ""),
        ),
      ),
    );
  }
  if ((result.warnings || []).length) {
    parts.push(
      h("h3", {}, "Warnings"),
      h("ul", { id: "warnings" }, result.warnings.map((w) => h("li", {}, w.file ? `${w.file}${w.line ? `:${w.line}:${w.column}` : ""}: ` : "", w.message))),
    );
  }
  parts.push(
    h("h3", {}, "By theme"),
    h("p", { class: "hint" }, "A case counts once per theme, however many of the theme's rules flag it: a case moved from one rule to another of the same theme is unchanged."),
    themeTable(result.themes || []),
    h("h3", {}, "By rule"),
    ruleTable(rules),
  );
  parts.push(h("section", { id: "drill", class: "panel", hidden: true, tabindex: "-1", "aria-labelledby": "drill-title" }));
  fill(byId("impact-body"), parts);
}

// -- wiring --------------------------------------------------------------------------------------

async function main() {
  byId("rule-files").addEventListener("change", (event) => addFiles(event.target.files));
  byId("rule-folder").addEventListener("change", (event) => addFiles(event.target.files));
  byId("caseload").addEventListener("change", (event) => {
    if (event.target.files[0]) readCaseload(event.target.files[0]);
  });
  byId("chosen-files").addEventListener("input", (event) => {
    const input = event.target.closest("input.chosen-path");
    if (input) chosen[Number(input.dataset.index)].path = input.value.trim();
  });
  byId("chosen-files").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-remove]");
    if (!button) return;
    chosen.splice(Number(button.dataset.remove), 1);
    showChosen();
    announce("File removed.");
  });
  byId("impact-body").addEventListener("click", (event) => {
    const button = event.target.closest("button.show-cases");
    if (button) drill(button.dataset.ruleset, button.dataset.rule);
  });
  showChosen();

  const form = byId("impact-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError(byId("impact-error"));
    const status = byId("impact-status");
    let body;
    try {
      body = await requestBody();
    } catch (error) {
      showError(byId("impact-error"), error, "The preview cannot run yet");
      return;
    }
    const started = performance.now();
    status.textContent = `Checking the edit, running its tests, then evaluating ${caseload ? count(caseload.lines, "case") : "the caseload"} twice…`;
    status.classList.add("busy");
    form.setAttribute("aria-busy", "true");
    const submit = form.querySelector("button[type=submit]");
    submit.disabled = true;
    try {
      const result = await api("impact", { body });
      const seconds = (performance.now() - started) / 1000;
      render(result, seconds);
      byId("impact-results").hidden = false;
      status.textContent = "";
      document.body.dataset.previewSeconds = seconds.toFixed(2);
      announce(byId("impact-summary").textContent);
      byId("impact-results").focus();
    } catch (error) {
      status.textContent = "";
      byId("impact-results").hidden = true;
      showError(byId("impact-error"), error, error.problems && error.problems.length ? "The edited rules did not pass" : "The preview could not run");
    } finally {
      status.classList.remove("busy");
      form.removeAttribute("aria-busy");
      submit.disabled = false;
    }
  });

  try {
    const { rulesets } = await api("rulesets");
    fill(byId("ruleset"), rulesets.map((r) => h("option", { value: r.name }, `${r.name} (version ${r.version})`)));
    document.body.dataset.ready = "true";
  } catch (error) {
    showError(byId("impact-error"), error, "The workbench could not load the rulesets");
  }
}

main();
