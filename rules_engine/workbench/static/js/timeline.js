// "Timeline": a case replayed step by step, drawn with Vega-Lite (vega-embed, served from vendor/),
// one bar per flag episode; zoom from months to decades, save as SVG, print or save as PDF.
//
// The chart is the spec the API returns (tools/replay_plot.timeline_chart, the same chart
// `rules-engine replay --plot` draws); the page only adds the zoom (an x interval bound to the
// scales) and names the flags panel. Vega runs with its CSP-safe expression interpreter, so the
// page needs no 'unsafe-eval'.

import { expressionInterpreter } from "../vendor/vega-interpreter.js";
import { api } from "./api.js";
import { caseInput } from "./caseinput.js";
import { announce, byId, count, download, fill, h, severityBadge } from "./dom.js";
import { clearError, showError } from "./errors.js";

const DAY = 24 * 60 * 60 * 1000;
const ZOOM = "zoom"; // the interval parameter bound to the x scale
const FLAGS_PANEL = "flags"; // the flags panel's name: its bars are the "flags_marks" mark

const current = { view: null, result: null, whole: null, months: "all" };

function ms(day) {
  return Date.parse(`${day}T00:00:00Z`);
}

function units(spec) {
  return (spec.vconcat || [spec]).flatMap((panel) => panel.layer || [panel]);
}

/**
 * The spec as the page draws it: the zoom added to the flags panel (the x scale is shared, so all
 * panels follow) and the panels as wide as the page allows. The case's span, which replay_plot
 * writes as an explicit domain on every panel, is set through the zoom once the chart is drawn
 * instead: an explicit domain on a shared scale that is also bound to a selection makes Vega-Lite
 * warn of conflicting domains, and would fight the zoom.
 */
function prepare(spec, width) {
  const copy = structuredClone(spec);
  delete copy.$schema; // the bundled Vega-Lite compiles it; no lookup of the schema
  const panels = copy.vconcat || [copy];
  for (const panel of panels) if (typeof panel.width === "number" && width) panel.width = width;
  for (const unit of units(copy)) {
    const x = unit.encoding && unit.encoding.x;
    if (!x) continue;
    if (x.scale && Array.isArray(x.scale.domain)) delete x.scale.domain;
    // Vega's own multi-level date labels (years, months, days) follow the zoom; the spec's fixed
    // "%Y" years would leave a zoomed view with one label or none.
    if (x.axis) {
      delete x.axis.format;
      x.axis.tickCount = 10;
      x.axis.labelOverlap = "greedy";
    }
  }
  const flags = panels[panels.length - 1];
  flags.name = FLAGS_PANEL;
  const unit = flags.layer ? flags.layer[0] : flags;
  // Drag to move; Shift + wheel to zoom, so that the wheel alone still scrolls the page. A
  // double-click goes back to the whole case (the page's own listener: Vega-Lite's would go back
  // to the data's extent, which ends at the last fact rather than at the replay's end).
  const zoom = {
    name: ZOOM,
    select: { type: "interval", encodings: ["x"], zoom: "wheel![event.shiftKey]", clear: false },
    bind: "scales",
  };
  unit.params = [...(unit.params || []), zoom];
  copy.autosize = { type: "pad" };
  copy.background = "#ffffff";
  return copy;
}

function wholeDomain(spec) {
  // The panels share one x domain, set by replay_plot on each x encoding.
  for (const unit of units(spec)) {
    const domain = unit.encoding && unit.encoding.x && unit.encoding.x.scale && unit.encoding.x.scale.domain;
    if (Array.isArray(domain) && domain.length === 2) return domain.map((d) => (typeof d === "string" ? ms(d) : d));
  }
  return null;
}

/** Panel width for the page: the chart frame less room for the row labels and legends. */
function panelWidth(frame) {
  return Math.max(480, Math.min(1400, frame.clientWidth - 440));
}

/** The name of the signal that holds the zoom's x domain (Vega-Lite: <param>_<field>). */
function zoomSignal(view) {
  const names = Object.keys(view.getState({ signals: (name) => name.startsWith(`${ZOOM}_`), data: () => false }).signals || {});
  return names.find((name) => name === `${ZOOM}_start`) || names.find((name) => !/_(tuple|modify|translate|zoom|x|y)/.test(name.slice(ZOOM.length)));
}

async function setDomain(domain) {
  const { view } = current;
  if (!view) return;
  const signal = zoomSignal(view);
  if (!signal) return;
  view.signal(signal, domain);
  await view.runAsync();
  describeDomain();
}

/** The dates the chart shows now, read from its x scale (the panels share it), on the chart's
 * data-from and data-to: what the zoom buttons announce, and what the browser tests check. */
function describeDomain() {
  const { view } = current;
  if (!view) return;
  const [from, to] = view.scale("x").domain();
  const day = (t) => new Date(t).toISOString().slice(0, 10);
  byId("chart").dataset.from = day(from);
  byId("chart").dataset.to = day(to);
}

async function zoomTo(months) {
  const { whole } = current;
  if (!whole) return;
  current.months = months;
  for (const button of document.querySelectorAll("[data-zoom]")) {
    button.setAttribute("aria-pressed", String(button.dataset.zoom === String(months)));
  }
  if (months === "all") {
    await setDomain(whole);
    announce("Showing the whole case.");
    return;
  }
  // The most recent months of the case (its end is where a reader starts).
  const to = whole[1];
  const from = Math.max(whole[0], to - months * 30.44 * DAY);
  await setDomain([from, to]);
  announce(`Showing ${byId("chart").dataset.from} to ${byId("chart").dataset.to}.`);
}

async function pan(direction) {
  const { view, whole } = current;
  if (!view || !whole) return;
  const signal = zoomSignal(view);
  const domain = (signal && view.signal(signal)) || whole;
  const [from, to] = domain.map(Number);
  const step = ((to - from) / 2) * direction;
  let next = [from + step, to + step];
  if (next[0] < whole[0]) next = [whole[0], whole[0] + (to - from)];
  if (next[1] > whole[1]) next = [whole[1] - (to - from), whole[1]];
  await setDomain(next);
  announce(`Showing ${byId("chart").dataset.from} to ${byId("chart").dataset.to}.`);
}

function episodesTable(episodes) {
  if (!episodes.length) return h("p", {}, "No rule raised a flag at any step of the replay.");
  return h(
    "table",
    { id: "episodes-table" },
    h("caption", {}, `One row per flag episode (${episodes.length}): from the step a rule first fired to the step it stopped.`),
    h(
      "thead",
      {},
      h("tr", {}, ["Rule", "Severity", "From", "To", "Steps"].map((t, i) => h("th", { scope: "col", class: i === 4 ? "number" : null }, t))),
    ),
    h(
      "tbody",
      {},
      episodes.map((e) =>
        h(
          "tr",
          {},
          h("td", {}, e.title ? [e.title, " ", h("code", {}, `(${e.rule_id})`)] : h("code", {}, e.rule_id), e.shadow ? [" ", h("span", { class: "badge shadow" }, "Shadow")] : null),
          h("td", {}, severityBadge(e.severity)),
          h("td", {}, e.from),
          h("td", {}, e.to || "still live"),
          h("td", { class: "number" }, e.steps ?? ""),
        ),
      ),
    ),
  );
}

async function draw(result) {
  const chart = byId("chart");
  if (current.view) {
    current.view.finalize();
    current.view = null;
  }
  fill(chart);
  const spec = prepare(result.spec, panelWidth(chart));
  current.whole = wholeDomain(result.spec);
  const embedded = await window.vegaEmbed(chart, spec, {
    renderer: "svg",
    actions: false,
    ast: true,
    expr: expressionInterpreter,
    tooltip: { theme: "light" },
    // The chart's text is in the page's own words below; keep Vega's own ARIA labels.
  });
  current.view = embedded.view;
  current.result = result;
  if (current.whole) await setDomain(current.whole);
  current.view.addEventListener("dblclick", () => zoomTo("all"));
  const signal = zoomSignal(current.view);
  if (signal) current.view.addSignalListener(signal, () => describeDomain()); // a drag or a Shift+wheel
  current.months = "all";
  for (const button of document.querySelectorAll("[data-zoom]")) {
    button.setAttribute("aria-pressed", String(button.dataset.zoom === "all"));
  }
  describeDomain();
  const svg = chart.querySelector("svg");
  if (svg) {
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", `Timeline of case ${result.case_id}: ${count(result.episodes.length, "flag episode")} (listed in the table below).`);
  }
  chart.dataset.episodes = String(result.episodes.length);
}

function summaryText(result) {
  return (
    `Case ${result.case_id}, ruleset ${result.ruleset} (version ${result.version}), replayed ` +
    `${result.step ? `each ${result.step} ` : ""}from ${result.from} to ${result.to}` +
    `${result.evaluations ? ` (${count(result.evaluations, "evaluation")})` : ""}: ` +
    `${count(result.episodes.length, "flag episode")} of ${count(new Set(result.episodes.map((e) => e.rule_id)).size, "rule")}.`
  );
}

async function show(load, statusId) {
  const status = byId(statusId);
  clearError(byId("timeline-error"));
  status.textContent = "Replaying the case…";
  status.classList.add("busy");
  try {
    const result = await load();
    const section = byId("timeline");
    section.hidden = false;
    byId("timeline-summary").textContent = summaryText(result);
    await draw(result);
    fill(byId("episodes"), episodesTable(result.episodes));
    status.textContent = "";
    document.body.dataset.drawn = String(Number(document.body.dataset.drawn || 0) + 1);
    announce(byId("timeline-summary").textContent);
    section.focus();
  } catch (error) {
    status.textContent = "";
    showError(byId("timeline-error"), error, "The timeline could not be drawn");
  } finally {
    status.classList.remove("busy");
  }
}

function fileName(extension) {
  const id = (current.result && current.result.case_id) || "case";
  return `timeline-${id.replace(/[^A-Za-z0-9_-]+/g, "-")}.${extension}`;
}

function main() {
  const input = caseInput();
  input.ready
    .then(([rulesets]) => {
      fill(byId("stored-ruleset"), rulesets.map((r) => h("option", { value: r.name }, r.name)));
      document.body.dataset.ready = "true";
    })
    .catch((error) => showError(byId("timeline-error"), error, "The workbench could not load the rulesets"));

  byId("case-form").addEventListener("submit", (event) => {
    event.preventDefault();
    let body;
    try {
      body = input.read();
    } catch (error) {
      showError(byId("timeline-error"), error, "The case could not be read");
      return;
    }
    body.step = byId("step").value;
    show(() => api("timeline", { body }), "timeline-status");
  });

  byId("stored-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = byId("stored-id").value.trim();
    if (!id) {
      byId("stored-id").setAttribute("aria-invalid", "true");
      showError(byId("timeline-error"), { message: "", violations: [{ field: "case id", description: "Enter the id of a stored case." }] }, "The case could not be found");
      return;
    }
    byId("stored-id").removeAttribute("aria-invalid");
    const ruleset = byId("stored-ruleset").value;
    const query = ruleset ? `?ruleset=${encodeURIComponent(ruleset)}` : "";
    show(() => api(`timeline/stored/${encodeURIComponent(id)}${query}`), "timeline-status");
  });

  for (const button of document.querySelectorAll("[data-zoom]")) {
    button.addEventListener("click", () => zoomTo(button.dataset.zoom === "all" ? "all" : Number(button.dataset.zoom)));
  }
  for (const button of document.querySelectorAll("[data-pan]")) {
    button.addEventListener("click", () => pan(Number(button.dataset.pan)));
  }
  byId("export-svg").addEventListener("click", async () => {
    if (!current.view) return;
    const svg = await current.view.toSVG();
    download(new Blob([svg], { type: "image/svg+xml" }), fileName("svg"));
    announce("The timeline was saved as an SVG file.");
  });
  // PDF: the browser's own print of this page, which the print stylesheet reduces to the title,
  // the summary, the chart (vector SVG) and the episodes table; choose "Save as PDF" to keep it.
  byId("export-pdf").addEventListener("click", () => {
    const title = document.title;
    document.title = fileName("pdf").replace(/\.pdf$/, "");
    window.print();
    document.title = title;
  });
}

main();
