// The case form shared by "Try a case" and "Timeline": a pasted or uploaded case (proto3 JSON, as
// the API takes it) or a made-up sample, the ruleset and the date to evaluate it on.

import { api } from "./api.js";
import { byId, fill, h, readText } from "./dom.js";

/** A problem with the form itself (before anything is sent), shown like the API's field errors. */
export class InputError extends Error {
  constructor(field, message) {
    super("The case could not be read.");
    this.violations = [{ field, description: message }];
  }
}

/**
 * Wire the case form. Expects #sample, #load-sample, #sample-hint, #case-file, #case-json, #ruleset,
 * #as-of in the page. Returns {ready, read}: `ready` resolves once the rulesets and samples are
 * listed; `read()` gives the request body {ruleset, as_of, case} or throws InputError.
 */
export function caseInput({ onLoaded } = {}) {
  const text = byId("case-json");
  const status = byId("input-status");
  const say = (message) => {
    if (status) status.textContent = message;
  };

  byId("case-file").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    text.value = await readText(file);
    text.removeAttribute("aria-invalid");
    say(`Loaded ${file.name}.`);
    if (onLoaded) onLoaded();
  });

  byId("load-sample").addEventListener("click", async () => {
    const name = byId("sample").value;
    if (!name) {
      say("Choose a sample first.");
      byId("sample").focus();
      return;
    }
    say("Loading the sample…");
    try {
      const sample = await api(`samples/${encodeURIComponent(name)}`);
      text.value = JSON.stringify(sample.case, null, 2);
      text.removeAttribute("aria-invalid");
      if (sample.as_of) byId("as-of").value = sample.as_of;
      say(`Loaded the sample “${name}”, to be tried on ${sample.as_of || "today"}.`);
      if (onLoaded) onLoaded();
    } catch (error) {
      say(`The sample could not be loaded: ${error.message}`);
    }
  });

  byId("sample").addEventListener("change", () => {
    const chosen = byId("sample").selectedOptions[0];
    byId("sample-hint").textContent = chosen && chosen.dataset.description ? chosen.dataset.description : "";
  });

  const ready = Promise.all([listRulesets(), listSamples()]);

  function read() {
    const raw = text.value.trim();
    if (!raw) {
      text.setAttribute("aria-invalid", "true");
      throw new InputError("case", "Paste a case, upload a case file or load a sample first.");
    }
    let parsed;
    try {
      parsed = JSON.parse(raw);
    } catch (error) {
      text.setAttribute("aria-invalid", "true");
      throw new InputError("case", `This is not valid JSON: ${error.message}`);
    }
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
      text.setAttribute("aria-invalid", "true");
      throw new InputError("case", "The case must be a JSON object, such as {\"caseId\": \"…\", \"concerns\": […]}.");
    }
    text.removeAttribute("aria-invalid");
    // A whole EvaluateRequest ({"case": {...}}) is taken too: its case is what is tried.
    const theCase = parsed.case && typeof parsed.case === "object" && !parsed.caseId ? parsed.case : parsed;
    const body = { case: theCase };
    const ruleset = byId("ruleset").value;
    if (ruleset) body.ruleset = ruleset;
    const asOf = byId("as-of").value;
    if (asOf) body.as_of = asOf;
    return body;
  }

  return { ready, read };
}

async function listRulesets() {
  const select = byId("ruleset");
  try {
    const { rulesets } = await api("rulesets");
    const wanted = new URLSearchParams(location.search).get("ruleset");
    fill(
      select,
      rulesets.map((r) => h("option", { value: r.name, selected: r.name === wanted }, `${r.name} (version ${r.version})`)),
    );
    return rulesets;
  } catch (error) {
    fill(select, h("option", { value: "" }, "The service's default ruleset"));
    throw error;
  }
}

async function listSamples() {
  const select = byId("sample");
  const { samples } = await api("samples");
  select.append(
    ...samples.map((s) =>
      h("option", { value: s.name, dataset: { description: s.description || "" } }, s.title ? `${s.title} (${s.name})` : s.name),
    ),
  );
  return samples;
}
