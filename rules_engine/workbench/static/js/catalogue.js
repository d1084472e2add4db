// The catalogue page: every ruleset's rules in plain words, with search and filters.

import { api } from "./api.js";
import { announce, byId, count, fill, h, plain, ruleAnchor, severityBadge, severityRank } from "./dom.js";
import { showError } from "./errors.js";

const SOURCE_WORDS = {
  statutory: "Statutory guidance",
  local: "Local policy",
  research: "Research",
  review: "Case review",
};

const state = { rules: [] }; // [{ruleset, rule, element, text}]

function sourceKind(rule) {
  return (rule.source && rule.source.kind) || "";
}

function sourceWords(kind) {
  return SOURCE_WORDS[kind] || (kind ? kind[0].toUpperCase() + kind.slice(1) : "Not given");
}

function ruleLink(ruleset, ruleId, titles) {
  return h("a", { href: `#${ruleAnchor(ruleset, ruleId)}`, class: "rule-link" }, titles.get(ruleId) || ruleId);
}

function ruleArticle(ruleset, rule, titles) {
  const kind = sourceKind(rule);
  const reference = rule.source && rule.source.reference;
  const facts = [
    ["Severity", severityBadge(rule.severity)],
    ["Escalation", rule.escalation || "—"],
    ["Themes", (rule.themes || []).join(", ") || "—"],
    ["Source", [sourceWords(kind), reference ? ` — ${reference}` : ""]],
    [
      "Status",
      rule.shadow
        ? [h("span", { class: "badge shadow" }, "Shadow"), " being trialled: its flags are recorded but not shown to practitioners"]
        : "Live: its flags are shown to practitioners",
    ],
  ];
  const tags = (rule.tags || []).filter((tag) => !(rule.themes || []).includes(tag));
  if (tags.length) facts.push(["Tags", tags.join(", ")]);
  const links = (ids) => h("ul", { class: "rule-links" }, ids.map((id) => h("li", {}, ruleLink(ruleset.name, id, titles))));
  if (rule.builds_on && rule.builds_on.length) facts.push(["Builds on", links(rule.builds_on)]);
  if (rule.built_on_by && rule.built_on_by.length) facts.push(["Used by", links(rule.built_on_by)]);
  const thresholds = rule.thresholds || [];
  const tests = rule.tests || [];
  const measures = rule.measures || [];
  const titleId = `${ruleAnchor(ruleset.name, rule.id)}-title`;
  return h(
    "article",
    {
      class: `rule sev-${String(rule.severity).toLowerCase()}`,
      id: ruleAnchor(ruleset.name, rule.id),
      "aria-labelledby": titleId,
      tabindex: "-1",
    },
    h("h3", { id: titleId }, rule.title),
    h("p", { class: "rule-id" }, `Rule ${rule.id}`, rule.file ? ` · ${rule.file}${rule.line ? `, line ${rule.line}` : ""}` : ""),
    h("p", { class: "summary" }, h("strong", {}, "Raised when: "), rule.summary || rule.condition || "—"),
    rule.description ? h("p", {}, rule.description) : null,
    h("dl", { class: "facts" }, facts.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)])),
    thresholds.length
      ? h(
          "div",
          { class: "table-scroll thresholds" },
          h(
            "table",
            {},
            h("caption", {}, "Thresholds"),
            h(
              "thead",
              {},
              h("tr", {}, h("th", { scope: "col" }, "Threshold"), h("th", { scope: "col", class: "number" }, "Value"),
                h("th", { scope: "col" }, "Source")),
            ),
            h(
              "tbody",
              {},
              thresholds.map((t) =>
                h(
                  "tr",
                  {},
                  h("td", {}, h("code", {}, t.parameter)),
                  h("td", { class: "number" }, plain(t.value)),
                  // The rule's own source is written once above; a threshold with another says so.
                  h("td", {}, sourceWords(t.source || kind), t.reference && t.reference !== reference ? ` — ${t.reference}` : ""),
                ),
              ),
            ),
          ),
        )
      : h("p", { class: "hint" }, "No adjustable thresholds."),
    measures.length
      ? h(
          "details",
          { class: "drill" },
          h("summary", {}, `What it measures (${measures.length})`),
          h("ul", {}, measures.map((m) => h("li", {}, m.words || m.name, " ", h("code", {}, `(${m.name})`)))),
        )
      : null,
    tests.length
      ? h(
          "details",
          { class: "drill" },
          h("summary", {}, `Covered by ${count(tests.length, "rule test")}`),
          h("ul", { class: "tests-list" }, tests.map((name) => h("li", {}, name))),
        )
      : h("p", { class: "hint" }, "No rule test covers this rule yet."),
  );
}

function searchText(ruleset, rule) {
  const parts = [
    ruleset.name,
    rule.id,
    rule.title,
    rule.summary,
    rule.description,
    rule.escalation,
    rule.severity,
    (rule.themes || []).join(" "),
    (rule.tags || []).join(" "),
    rule.source && rule.source.reference,
    (rule.thresholds || []).map((t) => `${t.parameter} ${t.value}`).join(" "),
    (rule.measures || []).map((m) => `${m.name} ${m.words}`).join(" "),
    (rule.tests || []).join(" "),
    rule.shadow ? "shadow trial" : "",
  ];
  return parts.filter(Boolean).join(" ").toLowerCase();
}

function options(select, values, label = (v) => v) {
  select.append(...values.map((value) => h("option", { value }, label(value))));
}

function render(rulesets) {
  const place = byId("rulesets");
  const sections = [];
  const themes = new Set();
  const severities = new Set();
  const sources = new Set();
  state.rules = [];
  for (const ruleset of rulesets) {
    const titles = new Map(ruleset.rules.map((rule) => [rule.id, rule.title]));
    const articles = ruleset.rules.map((rule) => {
      const element = ruleArticle(ruleset, rule, titles);
      (rule.themes || []).forEach((t) => themes.add(t));
      severities.add(String(rule.severity).toLowerCase());
      if (sourceKind(rule)) sources.add(sourceKind(rule));
      state.rules.push({ ruleset, rule, element, text: searchText(ruleset, rule) });
      return element;
    });
    const headingId = `ruleset-${ruleset.name}`;
    sections.push(
      h(
        "section",
        { class: "ruleset", "aria-labelledby": headingId, dataset: { ruleset: ruleset.name } },
        h(
          "div",
          { class: "ruleset-head" },
          h("h2", { id: headingId }, `Ruleset: ${ruleset.name}`),
          h("span", { class: "version" }, `version ${ruleset.version}`),
        ),
        ruleset.description ? h("p", {}, ruleset.description) : null,
        h("p", { class: "hint" }, `${count(ruleset.rules.length, "rule")}, ${count(ruleset.rules.filter((r) => r.shadow).length, "shadow rule")}.`),
        articles,
      ),
    );
  }
  options(byId("theme"), [...themes].sort(themeOrder));
  options(byId("severity"), [...severities].sort((a, b) => severityRank(a) - severityRank(b)), (s) => severityBadge(s).textContent);
  options(byId("source"), [...sources].sort(), sourceWords);
  fill(place, sections.length ? sections : h("p", {}, "The service is serving no ruleset."));
}

function themeOrder(a, b) {
  // Catalogue codes (H1, W2 ...) by letter then number; file-named themes after them.
  const code = /^([A-Z])(\d+)$/;
  const [ma, mb] = [code.exec(a), code.exec(b)];
  if (ma && mb) return ma[1] === mb[1] ? Number(ma[2]) - Number(mb[2]) : ma[1].localeCompare(mb[1]);
  if (ma || mb) return ma ? -1 : 1;
  return a.localeCompare(b);
}

function filters() {
  return {
    q: byId("search").value.trim().toLowerCase(),
    theme: byId("theme").value,
    severity: byId("severity").value,
    source: byId("source").value,
  };
}

function apply({ quiet = false } = {}) {
  const f = filters();
  const words = f.q.split(/\s+/).filter(Boolean);
  let shown = 0;
  for (const entry of state.rules) {
    const { rule } = entry;
    const visible =
      words.every((word) => entry.text.includes(word)) &&
      (!f.theme || (rule.themes || []).includes(f.theme)) &&
      (!f.severity || String(rule.severity).toLowerCase() === f.severity) &&
      (!f.source || sourceKind(rule) === f.source);
    entry.element.hidden = !visible;
    if (visible) shown++;
  }
  for (const section of document.querySelectorAll("section.ruleset")) {
    section.hidden = !section.querySelector("article.rule:not([hidden])");
  }
  const total = state.rules.length;
  const message =
    shown === total ? `Showing all ${count(total, "rule")}.` : `Showing ${shown.toLocaleString("en-GB")} of ${count(total, "rule")}.`;
  byId("result-count").textContent = message;
  let none = byId("no-results");
  if (!shown && total) {
    if (!none) {
      none = h("p", { id: "no-results", class: "no-results" }, "No rule matches this search. Try fewer words or clear the filters.");
      byId("rulesets").prepend(none);
    }
  } else if (none) none.remove();
  if (!quiet) keepInAddress(f);
}

function keepInAddress(f) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries({ ...f, q: byId("search").value.trim() })) if (value) params.set(key, value);
  const query = params.toString();
  history.replaceState(null, "", `${location.pathname}${query ? `?${query}` : ""}${location.hash}`);
}

function fromAddress() {
  const params = new URLSearchParams(location.search);
  byId("search").value = params.get("q") || "";
  for (const name of ["theme", "severity", "source"]) {
    const select = byId(name);
    const wanted = params.get(name) || "";
    if ([...select.options].some((o) => o.value === wanted)) select.value = wanted;
  }
}

let searchTimer;

/** Go to a rule's entry, clearing the filters first if they hide it. */
function goTo(hash, { focus = true } = {}) {
  const target = hash && document.getElementById(decodeURIComponent(hash.slice(1)));
  if (!target || !target.classList.contains("rule")) return false;
  if (searchTimer) {
    // A search still being typed is applied first, so it cannot hide the rule after the jump.
    clearTimeout(searchTimer);
    searchTimer = undefined;
    apply();
  }
  if (target.hidden) {
    byId("filters").reset();
    apply();
    announce("Search and filters cleared to show the rule.");
  }
  target.scrollIntoView({ block: "start" });
  if (focus) target.focus({ preventScroll: true });
  return true;
}

async function main() {
  const form = byId("filters");
  form.addEventListener("submit", (event) => event.preventDefault());
  byId("search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      searchTimer = undefined;
      apply();
    }, 120);
  });
  for (const name of ["theme", "severity", "source"]) byId(name).addEventListener("change", () => apply());
  form.addEventListener("reset", () => setTimeout(() => apply(), 0));
  byId("rulesets").addEventListener("click", (event) => {
    const link = event.target.closest("a.rule-link");
    if (link && goTo(link.getAttribute("href"))) {
      event.preventDefault();
      history.replaceState(null, "", `${location.pathname}${location.search}${link.getAttribute("href")}`);
    }
  });
  window.addEventListener("hashchange", () => goTo(location.hash));

  let data;
  try {
    data = await api("rulesets");
  } catch (error) {
    fill(byId("rulesets"));
    showError(byId("catalogue-error"), error, "The catalogue could not be loaded");
    return;
  }
  render(data.rulesets || []);
  fromAddress();
  apply({ quiet: true });
  document.body.dataset.ready = "true";
  if (location.hash) goTo(location.hash);
}

main();
