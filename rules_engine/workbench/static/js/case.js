// "Try a case": evaluate a pasted, uploaded or sample case and show the flags, shadow flags and
// undetermined rules with their explanations, and the case itself with the evidence marked.

import { api } from "./api.js";
import { caseInput } from "./caseinput.js";
import { anchorId, announce, byId, count, fill, h, plain, ruleAnchor, severityBadge, severityRank, words } from "./dom.js";
import { clearError, showError } from "./errors.js";

// The columns every fact table starts with; the others follow in the order they first appear.
const FIRST_COLUMNS = ["id", "date"];

function factAnchor(factType, factId) {
  return anchorId("fact", factType, factId);
}

function valueTable(caption, rows, headings) {
  if (!rows.length) return null;
  return h(
    "div",
    { class: "table-scroll" },
    h(
      "table",
      {},
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, headings.map((text, i) => h("th", { scope: "col", class: i ? "number" : null }, text)))),
      h("tbody", {}, rows.map(([name, value]) => h("tr", {}, h("td", {}, h("code", {}, name)), h("td", { class: "number" }, plain(value))))),
    ),
  );
}

function flagCard(flag, ruleset) {
  const evidence = flag.evidence || [];
  const measured = Object.entries(flag.measured || {});
  const thresholds = (flag.thresholds || []).map((t) => [t.parameter, t.value]);
  const source = flag.source && flag.source.kind ? `${flag.source.kind === "statutory" ? "Statutory" : "Local"}${flag.source.reference ? ` — ${flag.source.reference}` : ""}` : null;
  const titleId = anchorId("flag", flag.shadow ? "shadow" : "live", flag.rule_id);
  return h(
    "article",
    { class: `flag sev-${flag.severity}${flag.shadow ? " shadow" : ""}`, "aria-labelledby": titleId, dataset: { rule: flag.rule_id } },
    h("h3", { id: titleId }, severityBadge(flag.severity), " ", flag.shadow ? [h("span", { class: "badge shadow" }, "Shadow"), " "] : null, flag.title),
    h("p", { class: "explanation" }, flag.explanation),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Escalation"),
      h("dd", {}, flag.escalation || "—"),
      h("dt", {}, "Rule"),
      h("dd", {}, h("a", { href: `catalogue.html#${ruleAnchor(ruleset, flag.rule_id)}` }, flag.rule_id), " (in the catalogue)"),
      source ? [h("dt", {}, "Source"), h("dd", {}, source)] : null,
      flag.contributing_rule_ids && flag.contributing_rule_ids.length
        ? [h("dt", {}, "Builds on"), h("dd", {}, flag.contributing_rule_ids.join(", "))]
        : null,
    ),
    h(
      "div",
      { class: "flag-values" },
      valueTable("Measured values", measured, ["Measure", "Value"]),
      valueTable("Thresholds compared with", thresholds, ["Threshold", "Value"]),
    ),
    evidence.length
      ? h(
          "div",
          {},
          h(
            "h4",
            {},
            flag.evidence_count > evidence.length
              ? `Evidence: the ${evidence.length} most recent of ${flag.evidence_count} facts`
              : `Evidence: ${count(evidence.length, "fact")}`,
          ),
          h(
            "ul",
            { class: "evidence-list" },
            evidence.map((item) =>
              h(
                "li",
                {},
                h("a", { href: `#${factAnchor(item.fact_type, item.fact_id)}`, class: "evidence-link" }, `${words(item.fact_type)} ${item.fact_id}`),
                item.date ? `, ${item.date}` : "",
              ),
            ),
          ),
        )
      : h("p", { class: "hint" }, "No single fact is behind this flag (it rests on what is missing or on other rules)."),
  );
}

/** fact type -> fact id -> [rule ids whose flags cite it] */
function evidenceIndex(flags) {
  const index = new Map();
  for (const flag of flags) {
    for (const item of flag.evidence || []) {
      if (!index.has(item.fact_type)) index.set(item.fact_type, new Map());
      const byId = index.get(item.fact_type);
      if (!byId.has(item.fact_id)) byId.set(item.fact_id, []);
      if (!byId.get(item.fact_id).includes(flag.rule_id)) byId.get(item.fact_id).push(flag.rule_id);
    }
  }
  return index;
}

function factTables(facts, flags) {
  const index = evidenceIndex(flags);
  const sections = [];
  const child = facts.child || {};
  if (Object.keys(child).length) {
    sections.push(
      h("h3", {}, "The child"),
      h("dl", { class: "facts" }, Object.entries(child).map(([key, value]) => [h("dt", {}, words(key)), h("dd", {}, plain(value))])),
    );
  }
  for (const [factType, items] of Object.entries(facts)) {
    if (factType === "child" || !Array.isArray(items) || !items.length) continue;
    const columns = [...FIRST_COLUMNS];
    for (const item of items) for (const key of Object.keys(item)) if (!columns.includes(key)) columns.push(key);
    const cited = index.get(factType) || new Map();
    const headingId = anchorId("facts", factType);
    const marked = items.filter((item) => cited.has(String(item.id))).length;
    const name = `${words(factType)[0].toUpperCase()}${words(factType).slice(1)}`;
    sections.push(
      h(
        "details",
        { class: "fact-group", open: marked > 0, dataset: { factType } },
        h(
          "summary",
          {},
          h("h3", { id: headingId }, `${name} (${items.length})`),
          marked ? h("span", { class: "marked" }, ` ${marked} marked as evidence`) : null,
        ),
        h(
        "div",
        { class: "table-scroll" },
        h(
          "table",
          { "aria-labelledby": headingId, class: "fact-table", dataset: { factType } },
          h(
            "thead",
            {},
            h("tr", {}, columns.map((c) => h("th", { scope: "col" }, words(c))), h("th", { scope: "col" }, "Evidence for")),
          ),
          h(
            "tbody",
            {},
            items.map((item) => {
              const rules = cited.get(String(item.id)) || [];
              return h(
                "tr",
                { id: factAnchor(factType, item.id), class: rules.length ? "evidence" : null },
                columns.map((c) => h("td", {}, plain(item[c]))),
                h("td", { class: "cited" }, rules.length ? rules.join(", ") : ""),
              );
            }),
          ),
        ),
      ),
      ),
    );
  }
  return sections;
}

function render(result) {
  const flags = result.flags || [];
  const shadow = result.shadow_flags || [];
  const undetermined = result.undetermined || [];
  const ordered = (list) => [...list].sort((a, b) => severityRank(a.severity) - severityRank(b.severity));
  const values = Object.entries(result.values || {}).sort(([a], [b]) => a.localeCompare(b));
  const summary =
    `Case ${result.case_id || ""} with ruleset ${result.ruleset} (version ${result.version}) as of ${result.as_of}: ` +
    `${count(flags.length, "flag")}, ${count(shadow.length, "shadow flag")}, ${count(undetermined.length, "undetermined rule")}.`;
  fill(
    byId("results-body"),
    h("p", { class: "summary-line", id: "result-summary" }, summary),
    h("div", { class: "notice", role: "note" }, h("p", {}, "Each flag below is a prompt for a professional to look at the case, never a decision.")),
    flags.length
      ? h("nav", { "aria-label": "Flags on this case", class: "flag-index" },
          h("ul", { class: "chips" }, ordered(flags).map((f) =>
            h("li", {}, h("a", { href: `#${anchorId("flag", "live", f.rule_id)}` }, severityBadge(f.severity), " ", f.title)))))
      : null,
    h("section", { "aria-labelledby": "flags-title", id: "flags" },
      h("h2", { id: "flags-title" }, `Flags (${flags.length})`),
      flags.length ? ordered(flags).map((f) => flagCard(f, result.ruleset)) : h("p", {}, "No rule raised a flag on this case.")),
    h("section", { "aria-labelledby": "shadow-title", id: "shadow-flags" },
      h("h2", { id: "shadow-title" }, `Shadow flags (${shadow.length})`),
      h("p", { class: "hint" }, "Rules being trialled: their flags are recorded by the service but not shown to practitioners."),
      shadow.length ? ordered(shadow).map((f) => flagCard(f, result.ruleset)) : h("p", {}, "No shadow rule would raise a flag.")),
    h("section", { "aria-labelledby": "undetermined-title", id: "undetermined" },
      h("h2", { id: "undetermined-title" }, `Undetermined rules (${undetermined.length})`),
      undetermined.length
        ? [
            h("p", { class: "hint" }, "These rules could not be decided because the case lacks facts they need. They raise no flag."),
            h("ul", { class: "undetermined" }, undetermined.map((u) =>
              h("li", {}, h("strong", {}, u.title || u.rule_id), ` (${u.rule_id}): `,
                u.missing && u.missing.length ? `cannot be measured without ${u.missing.map(words).join(", ")}.` : "could not be decided."))),
          ]
        : h("p", {}, "Every rule could be decided on this case.")),
    values.length
      ? h("details", { class: "drill panel" }, h("summary", {}, `All measured values (${values.length})`), valueTable("Every measure on this case", values, ["Measure", "Value"]))
      : null,
    h("section", { "aria-labelledby": "case-title", id: "case-facts", class: "fact-tables" },
      h("h2", { id: "case-title" }, "The case"),
      h("p", { class: "hint" }, "Rows marked in yellow, with the rules named in the last column, are the evidence behind a flag."),
      factTables(result.facts || {}, [...flags, ...shadow])),
  );
}

function main() {
  const form = byId("case-form");
  const input = caseInput();
  input.ready.catch((error) => showError(byId("case-error"), error, "The workbench could not load the rulesets"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const status = byId("case-status");
    clearError(byId("case-error"));
    let body;
    try {
      body = input.read();
    } catch (error) {
      showError(byId("case-error"), error, "The case could not be read");
      return;
    }
    status.textContent = "Evaluating…";
    status.classList.add("busy");
    form.setAttribute("aria-busy", "true");
    try {
      const result = await api("evaluate", { body });
      render(result);
      const results = byId("results");
      results.hidden = false;
      status.textContent = "";
      announce(byId("result-summary").textContent);
      results.focus();
    } catch (error) {
      byId("results").hidden = true;
      status.textContent = "";
      showError(byId("case-error"), error, "The case could not be evaluated");
    } finally {
      status.classList.remove("busy");
      form.removeAttribute("aria-busy");
    }
  });
  // An evidence link marks its row for a moment, beyond :target, so it is seen after the jump.
  byId("results-body").addEventListener("click", (event) => {
    const link = event.target.closest("a.evidence-link");
    if (!link) return;
    const row = document.getElementById(link.getAttribute("href").slice(1));
    if (!row) return;
    const group = row.closest("details");
    if (group) group.open = true;
    document.querySelectorAll("tr.pointed").forEach((r) => r.classList.remove("pointed"));
    row.classList.add("pointed");
  });
  input.ready.then(() => {
    document.body.dataset.ready = "true";
  }, () => {});
}

main();
