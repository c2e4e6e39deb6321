// cxr-serve's review page: the worklist from /v1/reviews, one result at a time, verdicts by keyboard, a signature.
// The login is the gateway's HttpOnly cookie (gateway/routes/ui.py): this script never sees a token, stores
// nothing, and shows what the PACS holds (through the bridge) only through textContent.
"use strict";

const $ = (id) => document.getElementById(id);
const STATES = ["present", "absent", "uncertain"];

const page = { config: null, language: "en", items: [], index: -1, result: null, verdicts: [], focus: 0, report: "" };

// A label in the page's language (gateway/ui/texts.yaml through /ui/config.json), its {placeholders} filled.
function t(key, values = {}) {
  return page.config.texts[page.language][key].replace(/\{(\w+)\}/g, (_, name) => String(values[name]));
}

function applyLabels() {
  document.documentElement.lang = page.language === "zh" ? "zh-CN" : "en";
  document.title = t("review_title");
  for (const element of document.querySelectorAll("[data-text]")) element.textContent = t(element.dataset.text);
  $("image").alt = t("review_image_alt");
  $("disclaimer-general").textContent = t("disclaimer");
  if (page.items.length) renderWorklist();
  if (page.result) {
    renderFindings();
    showSignature(page.result.signed);
  }
}

function setState(state) {
  document.body.dataset.state = state;
  $("sign").disabled = state !== "idle";
}

function showError(message) {
  $("error").hidden = !message;
  $("error").textContent = message || "";
}

async function api(path, options = {}) {
  const response = await fetch(`/v1/reviews${path}`, { cache: "no-store", ...options });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error ? body.error.message : `HTTP ${response.status}`);
  return body;
}

function uidPath(item) {
  return `/${item.study}/${item.series}/${item.sop}`;
}

// --- the worklist ------------------------------------------------------------------------------------

// When the preliminary result was made, from its SeriesDate and SeriesTime ("20261202223613.77" → "2026-12-02 22:36").
function made(when) {
  const found = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})/.exec(when || "");
  return found ? `${found[1]}-${found[2]}-${found[3]} ${found[4]}:${found[5]}` : "—";
}

function renderWorklist() {
  const list = $("worklist");
  list.replaceChildren();
  page.items.forEach((item, index) => {
    const entry = document.createElement("li");
    entry.textContent = `${made(item.made)} · …${item.sop.slice(-12)}`;
    entry.dataset.sop = item.sop;
    entry.classList.toggle("signed", Boolean(item.signed));
    entry.setAttribute("aria-current", String(index === page.index));
    entry.addEventListener("click", () => open(index));
    list.append(entry);
  });
  $("count").textContent = t("review_to_sign", { n: page.items.filter((item) => !item.signed).length });
  $("empty").hidden = page.items.length > 0;
}

// --- one result -----------------------------------------------------------------------------------------

async function open(index) {
  if (index < 0 || index >= page.items.length) return;
  page.index = index;
  renderWorklist();
  setState("loading");
  showError("");
  const item = page.items[index];
  try {
    page.result = await api(uidPath(item));
  } catch (error) {
    showError(error.message);
    setState("failed");
    return;
  }
  page.verdicts = page.result.findings.map((finding) => ({ finding: finding.finding, verdict: null, state: null, comment: "" }));
  page.focus = 0;
  page.report = page.result.report;
  $("image").src = `/v1/reviews${uidPath(item)}/image`;
  $("image").hidden = false;
  $("disclaimer").textContent = page.result.disclaimer;
  $("probability").textContent = page.result.probability === null ? "—" : page.result.probability.toFixed(3);
  $("fracture-text").textContent = page.result.fracture_text || "—";
  $("report").value = page.report;
  $("report").readOnly = true;
  $("result").hidden = false;
  $("result").dataset.sop = item.sop;
  renderFindings();
  showSignature(page.result.signed);
  setState(page.result.signed ? "signed" : "idle");
}

function renderFindings() {
  const body = $("findings").tBodies[0];
  body.replaceChildren();
  page.result.findings.forEach((finding, index) => {
    const verdict = page.verdicts[index];
    const row = body.insertRow();
    row.dataset.finding = finding.finding;
    row.classList.toggle("focused", index === page.focus);
    const model = `${finding.model} (${finding.sha256.slice(0, 12)})`;
    for (const text of [String(index + 1), t(`review_finding_${finding.finding}`), t(`review_state_${finding.call}`), model]) {
      row.insertCell().textContent = text;
    }
    const cell = row.insertCell();
    cell.className = "verdict";
    cell.dataset.verdict = verdict.verdict || "";
    cell.textContent = verdict.verdict ? t(`review_verdict_${verdict.verdict}`) : "—";
    const state = row.insertCell();
    state.textContent = verdict.verdict === "modified" ? t(`review_state_${verdict.state}`) : "";
    if (verdict.verdict === "modified") {
      const comment = document.createElement("input");
      comment.type = "text";
      comment.maxLength = 2000;
      comment.placeholder = t("review_comment");
      comment.value = verdict.comment;
      comment.addEventListener("input", () => { verdict.comment = comment.value; });
      state.append(" ", comment);
    }
  });
}

function showSignature(signed) {
  $("signature").textContent = signed ? t("review_signed_by", { name: signed.reviewer, login: signed.login, at: signed.signed_at }) : "";
  if (signed) {
    page.result.signed = signed;
    page.items[page.index].signed = true;
  }
  renderWorklist();
}

// --- verdicts and the signature --------------------------------------------------------------------------

function judge(verdict) {
  const current = page.verdicts[page.focus];
  const call = page.result.findings[page.focus].call;
  if (verdict === "modified") {
    const from = current.verdict === "modified" ? current.state : call;
    current.state = STATES[(STATES.indexOf(from) + 1) % STATES.length];
  } else {
    current.state = null;
    page.focus = Math.min(page.focus + 1, page.verdicts.length - 1);
  }
  current.verdict = verdict;
  renderFindings();
}

async function sign() {
  if (document.body.dataset.state !== "idle") return;
  const missing = page.verdicts.filter((v) => !v.verdict).map((v) => t(`review_finding_${v.finding}`));
  if (missing.length) {
    showError(t("review_no_verdict", { findings: missing.join(", ") }));
    return;
  }
  const report = $("report").value;
  const verdicts = page.verdicts.map((v) => ({ finding: v.finding, verdict: v.verdict, comment: v.comment, ...(v.state ? { state: v.state } : {}) }));
  setState("signing");
  showError("");
  try {
    const signed = await api(uidPath(page.items[page.index]), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ verdicts, report, report_edited: report !== page.report }),
    });
    showSignature(signed);
    setState("signed");
  } catch (error) {
    showError(error.message);
    setState("refused");
  }
}

function editReport() {
  const report = $("report");
  report.readOnly = false;
  report.focus();
  report.setSelectionRange(report.value.length, report.value.length); // typing goes on where the text ends
}

function onKey(event) {
  const typing = event.target instanceof HTMLTextAreaElement || event.target instanceof HTMLInputElement || event.target instanceof HTMLSelectElement;
  if (typing) {
    if (event.key === "Escape") {
      event.target.blur();
      $("edited").hidden = $("report").value === page.report;
    }
    return;
  }
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const open_ = page.result !== null && document.body.dataset.state === "idle";
  const actions = {
    j: () => open(page.index + 1),
    k: () => open(page.index - 1),
    s: () => sign(),
    ...(open_ && {
      1: () => { page.focus = 0; renderFindings(); },
      2: () => { page.focus = Math.min(1, page.verdicts.length - 1); renderFindings(); },
      a: () => judge("accepted"),
      r: () => judge("rejected"),
      m: () => judge("modified"),
      c: () => $("findings").tBodies[0].rows[page.focus].querySelector("input")?.focus(),
      e: () => editReport(),
    }),
  };
  const action = actions[event.key];
  if (action) {
    event.preventDefault();
    action();
  }
}

async function start() {
  const config = await (await fetch("/ui/config.json", { cache: "no-store" })).json();
  page.config = config;
  page.language = config.default_language;
  $("language").value = page.language;
  $("language").addEventListener("change", (event) => {
    page.language = event.target.value;
    applyLabels();
  });
  applyLabels();
  $("sign-in").hidden = Boolean(config.user) || !config.sign_in;
  $("signed-in").hidden = !config.user;
  $("user-name").textContent = config.user || "";
  $("sign").addEventListener("click", sign);
  document.addEventListener("keydown", onKey);
  try {
    page.items = (await api("")).results;
  } catch (error) {
    showError(error.message);
    $("result").hidden = false;
    setState("failed");
    return;
  }
  renderWorklist();
  if (page.items.length) await open(0);
  else setState("empty");
}

start();
