// Small DOM helpers shared by the pages. Everything from the server is put on the page as text
// (never as HTML), so a rule title or a case field cannot inject markup.

/** An element: h("a", {href: "#x", class: "link"}, "text", child, ...). */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") element.className = value;
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's children. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

export const byId = (id) => document.getElementById(id);

/** Say something to screen-reader users through the page's polite live region. */
export function announce(message) {
  let region = byId("announcer");
  if (!region) {
    region = h("div", { id: "announcer", class: "visually-hidden", "aria-live": "polite", role: "status" });
    document.body.append(region);
  }
  region.textContent = "";
  // A fresh text node after a tick, so the same message twice is still read out.
  setTimeout(() => {
    region.textContent = message;
  }, 50);
}

const SEVERITY_WORDS = { critical: "Critical", high: "High", medium: "Medium", low: "Low", info: "Information" };

/** A severity as a badge: the word is always written (colour is never the only cue). */
export function severityBadge(severity) {
  const key = String(severity || "").toLowerCase();
  return h("span", { class: `badge severity-${key}` }, SEVERITY_WORDS[key] || severity || "Unknown");
}

export function severityRank(severity) {
  return ["critical", "high", "medium", "low", "info"].indexOf(String(severity || "").toLowerCase());
}

/** A value as plain words: lists joined, booleans yes/no, nothing as an em dash. */
export function plain(value) {
  if (value === null || value === undefined || value === "") return "—";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (Array.isArray(value)) return value.length ? value.map(plain).join(", ") : "—";
  if (typeof value === "object") {
    return Object.entries(value)
      .map(([key, inner]) => `${words(key)}: ${plain(inner)}`)
      .join("; ");
  }
  return String(value);
}

/** camelCase or snake_case as words: "decidedOn" -> "decided on". */
export function words(name) {
  return String(name)
    .replace(/_/g, " ")
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .toLowerCase();
}

/** snake_case -> camelCase (a fact type's proto3 JSON name). */
export function camel(name) {
  return String(name).replace(/_([a-z0-9])/g, (_, letter) => letter.toUpperCase());
}

/** A safe fragment id from parts. */
export function anchorId(...parts) {
  return parts.map((part) => String(part).replace(/[^A-Za-z0-9_-]+/g, "-")).join("-");
}

/** The id a catalogue entry carries: catalogue.html#rule-<ruleset>-<rule id>. */
export function ruleAnchor(ruleset, ruleId) {
  return anchorId("rule", ruleset, ruleId);
}

/** A plain-words count: "1 flag", "3 flags", "no flags". */
export function count(n, one, many = `${one}s`) {
  if (n === 0) return `no ${many}`;
  return `${n.toLocaleString("en-GB")} ${n === 1 ? one : many}`;
}

/** Read a chosen file as text. */
export function readText(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error || new Error(`could not read ${file.name}`));
    reader.readAsText(file);
  });
}

/** Offer a Blob as a download. */
export function download(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
