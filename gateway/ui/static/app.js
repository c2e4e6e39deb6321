// cxr-serve's page: one streamed /v1/chat/completions call per X-ray, shown as it arrives.
// Model output is untrusted text: it only ever reaches the page through textContent.
// Nothing is stored by this script: no cookies it can read, no localStorage; the API key lives in the input field only,
// and a hospital login is an HttpOnly cookie the gateway sets (gateway/routes/ui.py), never visible here.
"use strict";

const $ = (id) => document.getElementById(id);

const page = {
  config: null,
  language: "en", // the language of the labels, chosen in the form
  file: null,
  previewUrl: null,
};

function t(key) {
  return page.config.texts[page.language][key];
}

function setState(state) {
  document.body.dataset.state = state;
  const busy = state === "running" || state === "streaming";
  $("submit").disabled = busy;
  $("report").setAttribute("aria-busy", String(state === "streaming"));
  const status = { running: "state_running", streaming: "state_streaming", done: "state_done" }[state];
  $("status").textContent = status ? t(status) : "";
}

function applyLabels() {
  document.documentElement.lang = page.language === "zh" ? "zh-CN" : "en";
  document.title = t("title");
  for (const element of document.querySelectorAll("[data-text]")) {
    element.textContent = t(element.dataset.text);
  }
  $("no-image").textContent = t(page.file ? "no_preview" : "no_image");
  $("disclaimer").textContent = t("disclaimer");
  $("stand-in").textContent = t("stand_in_notice");
  setState(document.body.dataset.state);
}

// --- the chosen file -------------------------------------------------------------------------

function isDicom(file) {
  return file.type === "application/dicom" || /\.(dcm|dicom)$/i.test(file.name);
}

function showPreview(blob) {
  if (page.previewUrl) URL.revokeObjectURL(page.previewUrl);
  page.previewUrl = blob ? URL.createObjectURL(blob) : null; // the browser's memory, gone with the page
  $("preview").hidden = !blob;
  $("no-image").hidden = Boolean(blob);
  if (blob) $("preview").src = page.previewUrl;
  else $("preview").removeAttribute("src");
}

// A DICOM is shown as the gateway renders it for the models (VOI window, polarity), not guessed here.
async function dicomPreview(file) {
  const response = await fetch("/ui/preview", {
    method: "POST", headers: authHeaders({ "Content-Type": "application/dicom" }), body: file, cache: "no-store",
  });
  return response.ok ? response.blob() : null;
}

async function choose(file) {
  page.file = file || null;
  showPreview(null);
  $("no-image").textContent = t(file ? "no_preview" : "no_image");
  if (!file) return;
  if (isDicom(file)) showPreview(await dicomPreview(file).catch(() => null));
  else if (file.type === "image/jpeg" || file.type === "image/png") showPreview(file);
}

function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

// --- errors, in plain words first and the gateway's own reason after ----------------------------

const ERROR_BY_STATUS = {
  400: "error_refused", 415: "error_refused", 422: "error_refused",
  413: "error_too_large", 401: "error_auth", 403: "error_auth", 429: "error_busy",
  502: "error_backend", 503: "error_backend", 504: "error_backend",
};

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = false;
}

async function httpError(response) {
  let reason = "";
  try {
    reason = (await response.json()).error.message;
  } catch {
    reason = `HTTP ${response.status}`;
  }
  let text = `${t(ERROR_BY_STATUS[response.status] || "error_other")} ${reason}`;
  const retry = response.headers.get("retry-after");
  if (response.status === 429 && retry) text += ` (${t("retry_after")}: ${retry})`;
  return text;
}

// --- the result ----------------------------------------------------------------------------------

function percent(p) {
  return `${(p * 100).toFixed(1)}%`;
}

function listItems(list, items) {
  list.replaceChildren(...items.map((text) => {
    const item = document.createElement("li");
    item.textContent = text;
    return item;
  }));
}

function showProbabilities(probabilities) {
  $("probabilities").replaceChildren(...Object.entries(probabilities).map(([name, p]) => {
    const item = document.createElement("li");
    const label = document.createElement("span");
    label.textContent = name;
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.setAttribute("role", "meter");
    bar.setAttribute("aria-label", name);
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "100");
    bar.setAttribute("aria-valuenow", (p * 100).toFixed(1));
    const fill = document.createElement("span");
    fill.style.width = percent(p); // CSSOM, which the style-src policy allows (no inline style attribute)
    bar.append(fill);
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = percent(p);
    item.append(label, bar, value);
    return item;
  }));
}

// The fracture text with each evidence clause (the ones that set the flag) marked.
function highlighted(text, evidence) {
  const spans = evidence
    .map((clause) => [text.indexOf(clause), clause.length])
    .filter(([start]) => start >= 0)
    .sort((a, b) => a[0] - b[0]);
  const parts = [];
  let at = 0;
  for (const [start, length] of spans) {
    if (start < at) continue;
    parts.push(text.slice(at, start));
    const mark = document.createElement("mark");
    mark.textContent = text.slice(start, start + length);
    parts.push(mark);
    at = start + length;
  }
  parts.push(text.slice(at));
  return parts;
}

function showFracture(fracture) {
  if (!fracture) {
    $("fracture-flag").textContent = t("fracture_unavailable");
    $("fracture-text").replaceChildren();
    return;
  }
  $("fracture-flag").textContent = t(fracture.suspected ? "fracture_suspected" : "fracture_not_detected");
  $("fracture-text").replaceChildren(...highlighted(fracture.text, fracture.evidence));
}

function showTimings(timings) {
  $("timings").tBodies[0].replaceChildren(...Object.entries(timings).map(([stage, timing]) => {
    const row = document.createElement("tr");
    const name = document.createElement("td");
    name.textContent = t(`stage_${stage}`) || stage;
    const value = document.createElement("td");
    value.textContent = `${Math.round(timing.duration_ms)} ms`;
    row.append(name, value);
    return row;
  }));
}

function showWarnings(warnings) {
  $("partial").hidden = warnings.length === 0;
  $("partial").textContent = [t("status_partial"), ...warnings.map((w) => `${t(`stage_${w.stage}`)}: ${w.message}`)].join(" · ");
}

// Stage one (the first chunk's `cxr_findings`) and the final `cxr` share these fields.
function showFindings(result) {
  $("result").hidden = false;
  const c = result.classification;
  $("predicted-class").textContent = c.predicted_class;
  $("confidence").textContent = percent(c.confidence);
  $("risk").textContent = result.risk_level.text;
  $("risk").dataset.code = result.risk_level.code;
  $("interpretation").textContent = result.confidence_interpretation.text;
  showProbabilities(c.probabilities);
  showFracture(result.fracture);
  listItems($("recommendations"), result.recommendations);
  showTimings(result.timings_ms);
  showWarnings(result.warnings);
}

function showFinal(result) {
  showFindings(result);
  $("result").dataset.status = result.status;
  listItems($("models"), result.models.map(
    (m) => `${t(`stage_${m.role}`)}: ${m.name} (${t(m.clinical_use ? "model_clinical" : "model_stand_in")})`,
  ));
}

function resetResult() {
  $("error").hidden = true;
  $("result").hidden = true;
  delete $("result").dataset.status;
  $("report").textContent = "";
  $("partial").hidden = true;
}

// --- the stream ----------------------------------------------------------------------------------

function handleEvent(payload, run) {
  if (payload === "[DONE]") {
    run.done = true;
    return;
  }
  const message = JSON.parse(payload);
  if (message.error) {
    // Before stage one's findings, an unavailable backend (the classifier) means no report at all.
    const before = !run.sawFindings && message.error.type === "service_unavailable";
    showError(`${t(before ? "error_backend" : "error_stream")} ${message.error.message}`);
    return;
  }
  if (message.cxr_findings) {
    run.sawFindings = true;
    showFindings(message.cxr_findings);
    setState("streaming");
  }
  for (const choice of message.choices || []) {
    if (choice.delta && choice.delta.content) $("report").append(choice.delta.content);
  }
  if (message.cxr) showFinal(message.cxr);
}

async function readStream(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const run = { done: false, sawFindings: false };
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      for (const line of buffer.slice(0, end).split("\n")) {
        if (line.startsWith("data: ")) handleEvent(line.slice(6), run);
      }
      buffer = buffer.slice(end + 2);
    }
  }
  if (!run.done) showError(t("error_cut")); // a cut stream is never shown as a whole answer
}

function authHeaders(headers) {
  const key = $("api-key").value.trim();
  return key ? { ...headers, Authorization: `Bearer ${key}` } : headers;
}

function requestBody(imageUrl) {
  const content = [{ type: "image_url", image_url: { url: imageUrl } }];
  const indication = $("indication").value.trim();
  if (indication) content.push({ type: "text", text: indication });
  return { model: page.config.model, stream: true, language: page.language, messages: [{ role: "user", content }] };
}

function fail(text) {
  showError(text);
  setState("failed");
}

async function analyze(event) {
  event.preventDefault();
  resetResult();
  if (!page.file) return fail(t("error_no_file"));
  setState("running");
  let imageUrl;
  try {
    imageUrl = await readAsDataUrl(page.file);
    // browsers rarely know a .dcm file's type: name it, so the gateway reads it as DICOM
    if (isDicom(page.file)) imageUrl = `data:application/dicom;base64,${imageUrl.split(",", 2)[1]}`;
  } catch {
    return fail(t("error_read"));
  }
  try {
    await send(imageUrl);
  } catch (error) {
    // fetch rejects with a TypeError when the gateway cannot be reached at all
    showError(error instanceof TypeError ? t("error_network") : `${t("error_other")} ${error.message}`);
  }
  setState($("error").hidden ? "done" : "failed");
}

async function send(imageUrl) {
  const response = await fetch("/v1/chat/completions", {
    method: "POST",
    headers: authHeaders({ "Content-Type": "application/json" }),
    body: JSON.stringify(requestBody(imageUrl)),
    cache: "no-store",
    credentials: "same-origin", // the hospital login's HttpOnly cookie, when signed in; never another site's
  });
  if (!response.ok) {
    showError(await httpError(response));
    return;
  }
  await readStream(response.body);
}

// --- wiring ----------------------------------------------------------------------------------------

function wireDrop() {
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    choose(event.dataTransfer.files[0]);
  });
}

async function start() {
  page.config = await (await fetch("/ui/config.json", { cache: "no-store" })).json();
  page.language = page.config.default_language;
  $("language").value = page.language;
  // With the hospital's login the session cookie goes with every call of this page; no key to type.
  $("account").hidden = !page.config.sign_in;
  $("sign-in").hidden = Boolean(page.config.user);
  $("signed-in").hidden = !page.config.user;
  $("user-name").textContent = page.config.user || "";
  $("api-key-field").hidden = !page.config.auth_required || page.config.sign_in;
  $("stand-in").hidden = !page.config.stand_in;
  $("file").addEventListener("change", (event) => choose(event.target.files[0]));
  $("language").addEventListener("change", (event) => {
    page.language = event.target.value;
    applyLabels();
  });
  $("request").addEventListener("submit", analyze);
  wireDrop();
  setState("idle");
  applyLabels();
}

start();
