// Calls to the workbench API (api/... beside the pages), with the access token when the server asks.
//
// When the server has a clients file, every API call needs a client with the operator role. The
// page asks for the token once (a dialog), keeps it in sessionStorage (this tab only; gone when the
// tab closes) and sends it as `Authorization: Bearer <token>`. A refused token (401, 403) asks again.
// With mutual TLS the browser's client certificate does the same job and no token is asked for.

import { byId, fill, h } from "./dom.js";

const TOKEN_KEY = "rules-engine.workbench.token";

/** A refusal from the API: its status and the `{error, violations, problems}` body. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error : `The server answered ${status}.`);
    this.status = status;
    this.violations = (body && body.violations) || [];
    this.problems = (body && body.problems) || [];
  }
}

export function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null; // storage disabled: ask each time
  }
}

function keepToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // storage disabled: the token lives only as long as this page
  }
  memoryToken = token;
  showSession();
}

let memoryToken = null;
let pendingAsk = null;

/** Call api/<path>; `body` is sent as JSON. Resolves to the parsed answer, or throws ApiError. */
export async function api(path, { method, body, signal } = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = { Accept: "application/json" };
    const token = storedToken() || memoryToken;
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(`api/${path}`, {
        method: method || (body === undefined ? "GET" : "POST"),
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
        credentials: "same-origin",
        cache: "no-store",
      });
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError(0, { error: "The workbench could not reach the server. Check that it is running." });
    }
    const data = await answer(response);
    if ((response.status === 401 || response.status === 403) && attempt < 3) {
      const refused = token ? refusalWords(response.status) : "This server asks for an access token.";
      if (await askForToken(refused, data.error)) continue;
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }
}

async function answer(response) {
  const text = await response.text();
  try {
    return text ? JSON.parse(text) : {};
  } catch {
    return { error: `The server answered ${response.status} ${response.statusText}.` };
  }
}

function refusalWords(status) {
  return status === 403
    ? "That token does not have the operator role, which the workbench needs."
    : "That token was not recognised.";
}

/** Show the token dialog; resolves true when a token was given. One dialog for concurrent calls. */
function askForToken(reason, detail) {
  if (!pendingAsk) {
    pendingAsk = new Promise((resolve) => {
      const dialog = tokenDialog();
      fill(byId("token-reason"), reason, detail ? h("span", { class: "detail" }, ` (${detail})`) : null);
      const input = byId("token-input");
      input.value = "";
      dialog.returnValue = "";
      dialog.addEventListener(
        "close",
        () => {
          pendingAsk = null;
          const token = input.value.trim();
          input.value = "";
          if (dialog.returnValue === "use" && token) {
            keepToken(token);
            resolve(true);
          } else resolve(false);
        },
        { once: true },
      );
      dialog.showModal();
      input.focus();
    });
  }
  return pendingAsk;
}

function tokenDialog() {
  let dialog = byId("token-dialog");
  if (dialog) return dialog;
  const input = h("input", {
    id: "token-input",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    "aria-describedby": "token-reason token-help",
  });
  const form = h(
    "form",
    { method: "dialog" },
    h("h2", { id: "token-title" }, "Access token"),
    h("p", { id: "token-reason" }),
    h("label", { for: "token-input" }, "Operator access token"),
    input,
    h(
      "p",
      { id: "token-help", class: "hint" },
      "Ask the service's administrators for a token with the operator role. It is kept in this browser tab " +
        "only and is forgotten when the tab closes.",
    ),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit", value: "use", class: "primary" }, "Use this token"),
      h("button", { type: "submit", value: "cancel", formnovalidate: true }, "Cancel"),
    ),
  );
  dialog = h("dialog", { id: "token-dialog", "aria-labelledby": "token-title" }, form);
  document.body.append(dialog);
  return dialog;
}

/** The header's note of a kept token, with a button to forget it. */
export function showSession() {
  const place = byId("session");
  if (!place) return;
  if (!storedToken() && !memoryToken) {
    place.replaceChildren();
    return;
  }
  fill(
    place,
    h("span", {}, "Signed in with a token"),
    " ",
    h(
      "button",
      {
        type: "button",
        class: "link-button",
        onclick: () => {
          keepToken(null);
        },
      },
      "Forget token",
    ),
  );
}

document.addEventListener("DOMContentLoaded", showSession);
if (document.readyState !== "loading") showSession();
