// "Equality monitoring": the service's equality report for a ruleset and threshold (the report
// GetEqualityReport gives and `rules-engine fairness --from-service` prints): per characteristic a
// table of the groups, and a chart of each group's ratio to the whole caseload with its interval.
//
// Every figure and word comes from the API (workbench/equality.py lays the report out with the
// fairness report's own writers): a withheld number arrives as the word "withheld", never as a
// figure, and the charts are the HTML report's Vega-Lite specs, which draw only the groups whose
// ratio is shown. Vega runs with its CSP-safe expression interpreter, as on the timeline.

import { expressionInterpreter } from "../vendor/vega-interpreter.js";
import { api } from "./api.js";
import { anchorId, announce, byId, count, fill, h } from "./dom.js";
import { clearError, showError } from "./errors.js";

// The columns the writers lay out as text; every other one holds a number (or "withheld").
const TEXT_COLUMN = /reading|^(group|rule|characteristic)$/i;

let views = []; // the drawn charts, finalized before the next report is drawn

function numeric(column) {
  return !TEXT_COLUMN.test(column);
}

function cell(text, column, words, noteId) {
  const withheld = text === words.withheld;
  const classes = [numeric(column) ? "number" : "", withheld ? "withheld" : ""].filter(Boolean).join(" ");
  return h("td", { class: classes || null, "aria-describedby": withheld ? noteId : null }, text);
}

/** A table of rows laid out by the writers: the first cell names the row (a group, a rule). The
 * caption is for screen readers only where a heading above says the same. */
function table(id, caption, columns, rows, words, { headed = true } = {}) {
  const noteId = `${id}-withheld`;
  const withheld = rows.some((row) => row.cells.includes(words.withheld));
  return [
    h(
      "div",
      // Wide: it scrolls sideways, so it takes the focus (arrow keys scroll it) and is named.
      { class: "table-scroll", tabindex: "0", role: "region", "aria-label": caption },
      h(
        "table",
        { id, class: "equality-table" },
        h("caption", { class: headed ? "visually-hidden" : null }, caption),
        h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: numeric(c) ? "number" : null }, c)))),
        h(
          "tbody",
          {},
          rows.map((row) =>
            h(
              "tr",
              { class: row.class || null, dataset: row.group === undefined ? {} : { group: row.group } },
              h("th", { scope: "row" }, row.cells[0]),
              row.cells.slice(1).map((text, i) => cell(text, columns[i + 1], words, noteId)),
            ),
          ),
        ),
      ),
    ),
    withheld ? h("p", { id: noteId, class: "hint withheld-note" }, words.withheld_note) : null,
  ];
}

function chartFigure(chart, id) {
  const left = chart.not_drawn.length
    ? `Not drawn, as withheld or with no rate to compare: ${chart.not_drawn.join(", ")}.`
    : "Every group is drawn.";
  if (!chart.spec) {
    return h("p", { class: "hint", id }, `${chart.label}: no group's ratio can be shown. ${left}`);
  }
  return h(
    "figure",
    { class: "ratio-chart" },
    h("div", { id, class: "chart-frame", dataset: { measure: chart.measure } }),
    h("figcaption", { class: "hint" }, `${chart.label} (the dashed line is 1: as often as the whole caseload). ${left} The table below gives every number.`),
  );
}

function versionParts(version, words, many) {
  const prefix = many ? `${version.ruleset} version ${version.version}: ` : "";
  const key = (...parts) => anchorId(version.ruleset, version.version, ...parts);
  const charts = [];
  const parts = [h("h3", {}, `${version.ruleset}, version ${version.version}`)];
  if (!version.all_flags.length) parts.push(h("p", {}, "Nothing counted for this version."));
  for (const breakdown of version.all_flags) {
    const title = `${prefix}All flags together, by ${breakdown.name.toLowerCase()}`;
    parts.push(h("h4", {}, title));
    for (const chart of breakdown.charts) {
      const id = key("chart", breakdown.characteristic, chart.measure);
      parts.push(chartFigure(chart, id));
      if (chart.spec) charts.push({ id, chart });
    }
    parts.push(table(key("all", breakdown.characteristic), title, breakdown.columns, breakdown.rows, words));
  }
  parts.push(h("h4", {}, `${prefix}Rules whose flags fall differently on a group`));
  const { findings } = version;
  parts.push(
    findings.rows.length
      ? table(key("findings"), "Groups whose interval excludes 1", findings.columns, findings.rows.map((cells) => ({ cells, class: "disparate" })), words)
      : h("p", {}, "No rule's interval excludes 1 for any group shown."),
  );
  parts.push(h("h4", {}, `${prefix}Each rule`));
  for (const rule of version.rules) {
    parts.push(
      h(
        "details",
        { class: "drill rule-report", dataset: { rule: rule.rule_id } },
        h("summary", {}, rule.title),
        rule.breakdowns.map((b) =>
          table(key("rule", rule.rule_id, b.characteristic), `By ${b.name.toLowerCase()}`, b.columns, b.rows, words, { headed: false }),
        ),
      ),
    );
  }
  return { parts, charts };
}

function prepare(spec) {
  const copy = structuredClone(spec);
  delete copy.$schema; // the bundled Vega-Lite compiles it; no lookup of the schema
  copy.background = "#ffffff";
  // Room for the census's longer group names ("Any other White background (WOTH)").
  copy.config = { ...copy.config, axisY: { ...(copy.config || {}).axisY, labelLimit: 320 } };
  return copy;
}

async function drawCharts(charts) {
  for (const view of views) view.finalize();
  views = [];
  for (const { id, chart } of charts) {
    const place = byId(id);
    const embedded = await window.vegaEmbed(place, prepare(chart.spec), {
      renderer: "svg",
      actions: false,
      ast: true,
      expr: expressionInterpreter,
      tooltip: { theme: "light" },
    });
    views.push(embedded.view);
    const svg = place.querySelector("svg");
    if (svg) {
      svg.setAttribute("role", "img");
      svg.setAttribute("aria-label", `${chart.label}. The table below the chart gives every number.`);
    }
  }
}

function summaryText(result) {
  const which = result.ruleset ? `Ruleset ${result.ruleset}` : "Every ruleset";
  if (!result.versions.length) {
    return `${which}: nothing counted yet. The service counts each case it evaluates, once per ruleset version.`;
  }
  return `${which}: ${count(result.versions.length, "version")} counted.`;
}

async function render(result) {
  const { words } = result;
  const many = result.versions.length > 1;
  const drawn = result.versions.map((version) => versionParts(version, words, many));
  fill(
    byId("report-body"),
    h("p", { class: "summary-line", id: "report-summary" }, summaryText(result)),
    words.summary.map((line) => h("p", {}, line)),
    h("p", {}, words.how_to_read),
    h("p", { id: "legend", class: "hint" }, words.legend),
    drawn.map((d) => d.parts),
    result.versions.length ? [h("h3", {}, "Chance"), h("p", { id: "chance" }, words.chance)] : null,
  );
  byId("report").hidden = false;
  const charts = drawn.flatMap((d) => d.charts);
  await drawCharts(charts);
  byId("report").dataset.charts = String(charts.length);
}

function query() {
  const params = new URLSearchParams();
  params.set("ruleset", byId("ruleset").value); // empty: every ruleset
  const threshold = byId("threshold").value.trim();
  if (threshold) params.set("threshold", threshold);
  return params;
}

async function show() {
  const status = byId("equality-status");
  const form = byId("equality-form");
  clearError(byId("equality-error"));
  byId("threshold").removeAttribute("aria-invalid");
  status.textContent = "Reading the stored counts…";
  status.classList.add("busy");
  form.setAttribute("aria-busy", "true");
  const params = query();
  try {
    const result = await api(`equality?${params}`);
    history.replaceState(null, "", `?${params}`); // the report's address, to share
    await render(result);
    status.textContent = "";
    document.body.dataset.drawn = String(Number(document.body.dataset.drawn || 0) + 1);
    announce(byId("report-summary").textContent);
    byId("report").focus();
  } catch (error) {
    status.textContent = "";
    byId("report").hidden = true;
    if ((error.violations || []).some((v) => v.field === "threshold")) byId("threshold").setAttribute("aria-invalid", "true");
    showError(byId("equality-error"), error, "The report could not be shown");
  } finally {
    status.classList.remove("busy");
    form.removeAttribute("aria-busy");
  }
}

async function main() {
  byId("equality-form").addEventListener("submit", (event) => {
    event.preventDefault();
    show();
  });
  const asked = new URLSearchParams(location.search);
  if (asked.get("threshold")) byId("threshold").value = asked.get("threshold");
  try {
    const { rulesets } = await api("rulesets");
    fill(
      byId("ruleset"),
      rulesets.map((r) => h("option", { value: r.name, selected: r.name === asked.get("ruleset") }, `${r.name} (version ${r.version})`)),
      h("option", { value: "", selected: asked.has("ruleset") && !asked.get("ruleset") }, "Every ruleset"),
    );
    document.body.dataset.ready = "true";
  } catch (error) {
    showError(byId("equality-error"), error, "The workbench could not load the rulesets");
    return;
  }
  if (asked.has("ruleset")) show(); // a shared address shows its report at once
}

main();
