// streamguard web page: plain JavaScript, no framework, nothing loaded from elsewhere.
//
// Files upload one at a time (XMLHttpRequest, for upload progress); the server's
// job states arrive on one server-sent event stream for all of this page's jobs
// (one connection, whatever the number of files: browsers allow only six).
"use strict";

const STORE_KEY = "streamguard-jobs";
const ICONS = {
  video: '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"><rect x="2" y="5" width="14" height="14" rx="2"/><path d="m16 10 6-3v10l-6-3z"/></svg>',
  image: '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"><rect x="3" y="3" width="18" height="18" rx="2"/><circle cx="9" cy="9" r="2"/><path d="m21 15-5-5L5 21"/></svg>',
  other: '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"><path d="M14 3H6a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V9z"/><path d="M14 3v6h6"/></svg>',
};
const BADGES = {
  waiting: "Waiting", uploading: "Uploading", queued: "In line", running: "Working", done: "Done",
  failed: "Failed", cancelled: "Cancelled", removed: "Deleted", rejected: "Not accepted", unknown: "Gone",
};
const DETECTION_HINTS = {
  fast: "Quickest; can miss the smallest faces",
  balanced: "Finds small faces too",
  thorough: "Slowest; looks hardest for tiny, distant faces",
};
const ACTIVE = new Set(["waiting", "uploading", "queued", "running"]);
const FINISHED = new Set(["done", "failed", "cancelled", "removed", "rejected", "unknown"]);

const $ = (sel, root = document) => root.querySelector(sel);
let CONFIG = null;
const cards = [];           // every card on the page, in order
const uploadQueue = [];     // cards waiting for their turn to upload
let uploading = null;       // the card uploading now
let events = null;          // the EventSource, and the ids it follows
let eventIds = "";

// -- small helpers -----------------------------------------------------------------------------

function fmtSize(n) {
  const units = [["GiB", 2 ** 30], ["MiB", 2 ** 20], ["KiB", 2 ** 10]];
  for (const [unit, size] of units) {
    if (n >= size) return `${(n / size).toFixed(n / size >= 100 ? 0 : 1)} ${unit}`;
  }
  return `${n} bytes`;
}

function fmtTime(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const mm = h ? String(m).padStart(2, "0") : String(m);
  return `${h ? h + ":" : ""}${mm}:${String(r).padStart(2, "0")}`;
}

function suffixOf(name) {
  const i = name.lastIndexOf(".");
  return i > 0 ? name.slice(i).toLowerCase() : "";
}

function kindOf(name) {
  const s = suffixOf(name);
  if (CONFIG.video_suffixes.includes(s)) return "video";
  if (CONFIG.image_suffixes.includes(s)) return "image";
  return null;
}

function listSuffixes(list) {
  return list.map((s) => s.slice(1)).join(" ");
}

function api(path, options = {}) {
  // The header proves the request comes from this page (other sites cannot add it without asking).
  return fetch(path, { ...options, headers: { "X-Streamguard": "1", ...(options.headers || {}) } });
}

function currentOptions() {
  return {
    mode: document.querySelector('input[name="mode"]:checked').value,
    strength: $("#strength").value,
    detection: document.querySelector('input[name="detection"]:checked').value,
    boxes: $("#boxes").checked ? "1" : "0",
  };
}

function describeOptions(o) {
  const mode = { blur: "Blur", pixelate: "Pixelate", solid: "Solid" }[o.mode] || o.mode;
  return `${mode} ${Number(o.strength).toFixed(1)}× · ${o.detection}${o.boxes === "1" || o.boxes === true ? " · outlines" : ""}`;
}

function banner(text) {
  const b = $("#banner");
  b.textContent = text || "";
  b.hidden = !text;
}

// -- cards ---------------------------------------------------------------------------------------

function newCard(name, size, kind) {
  const el = $("#job-template").content.firstElementChild.cloneNode(true);
  const card = { el, name, size, kind, state: "waiting", file: null, xhr: null, jobId: null, job: null, opts: null, compared: false };
  $(".name", el).textContent = name;
  $(".name", el).title = name;
  $(".kind", el).innerHTML = ICONS[kind || "other"];
  $(".cancel", el).addEventListener("click", () => cancelCard(card));
  $(".remove", el).addEventListener("click", () => removeCard(card));
  cards.push(card);
  $("#jobs").append(el);
  return card;
}

function setMeta(card) {
  const parts = [];
  if (card.size) parts.push(fmtSize(card.size));
  if (card.job && card.job.width) {
    parts.push(`${card.job.width}×${card.job.height}`);
    if (card.job.duration) parts.push(fmtTime(card.job.duration));
  }
  if (card.opts) parts.push(describeOptions(card.opts));
  $(".meta", card.el).textContent = parts.join(" · ");
}

function setState(card, state, stats = "", message = null) {
  card.state = state;
  card.el.dataset.state = state;
  $(".badge", card.el).textContent = BADGES[state] || state;
  $(".stats", card.el).textContent = stats;
  const msg = $(".message", card.el);
  msg.hidden = !message;
  msg.textContent = message || "";
  $(".cancel", card.el).hidden = !ACTIVE.has(state);
  refreshToolbar();
}

function setBar(card, fraction) {
  const bar = $(".bar", card.el);
  bar.classList.toggle("indeterminate", fraction === null);
  if (fraction !== null) $(".bar span", card.el).style.width = `${(100 * Math.min(1, Math.max(0, fraction))).toFixed(1)}%`;
}

function reject(card, message) {
  setState(card, "rejected", "", message);
}

function render(card, job) {
  card.job = job;
  if (job.size) card.size = job.size;
  if (!card.opts && job.options) card.opts = { ...job.options, boxes: job.options.boxes ? "1" : "0" };
  setMeta(card);
  const s = job.state;
  if (s === "queued") {
    setBar(card, 0);
    const ahead = (job.queue_position || 1) - 1;
    setState(card, s, ahead ? `Waiting: ${ahead} ${ahead === 1 ? "file" : "files"} ahead` : "Next in line");
  } else if (s === "running") {
    if (card.kind === "video" && job.frames_total) {
      setBar(card, job.progress || 0);
      const bits = [`Frame ${job.frames_done} of ${job.frames_total}`];
      bits.push(job.fps ? `${job.fps.toFixed(1)} fps` : "starting…");
      if (job.eta !== null && job.eta !== undefined && job.fps) bits.push(`about ${fmtTime(job.eta)} left`);
      setState(card, s, `${Math.round(100 * (job.progress || 0))}% · ${bits.join(" · ")}`);
    } else {
      setBar(card, null);
      setState(card, s, card.kind === "video" ? `Frame ${job.frames_done}…` : "Finding and covering faces…");
    }
  } else if (s === "done") {
    setBar(card, 1);
    let stats;
    if (card.kind === "video") {
      stats = `Done: ${job.frames_done} frames in ${fmtTime(job.seconds || 0)}`;
      if (job.seconds) stats += ` (${(job.frames_done / job.seconds).toFixed(1)} fps)`;
    } else {
      const n = job.faces || 0, sure = job.sure ?? n;
      stats = `Done: ${n} ${n === 1 ? "face" : "faces"} covered`;
      // Every find is covered, however unsure: say how many of them the models were sure of.
      if (sure !== n) stats = `Done: ${n} ${n === 1 ? "region" : "regions"} covered (${sure} sure ${sure === 1 ? "face" : "faces"}, ${n - sure} less certain)`;
    }
    if (job.downloaded) stats += ` · downloaded; deleted from the server in ${Math.round(CONFIG.keep_downloaded)} s`;
    setState(card, s, stats);
    const a = $(".download", card.el);
    a.href = `/api/jobs/${job.id}/result?download=1`;
    a.setAttribute("download", job.result_name);
    a.hidden = false;
    if (!card.compared) showCompare(card, job);
  } else if (s === "failed") {
    setState(card, s, "", job.error || "failed");
    dropCompare(card);
  } else if (s === "cancelled") {
    setState(card, s, "", "Cancelled: nothing was kept.");
    dropCompare(card);
  } else if (s === "removed") {
    setState(card, s, "", capitalize(job.reason || "deleted from the server") + ".");
    dropCompare(card, card.kind === "image");
  } else if (s === "unknown") {
    setState(card, s, "", "This file is no longer on the server.");
    dropCompare(card, card.kind === "image");
  } else {
    setState(card, s);
  }
}

function capitalize(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function dropCompare(card, keepImage = false) {
  $(".download", card.el).hidden = true;
  // A loaded picture stays useful on screen; a video would stop playing once its file is deleted.
  if (!keepImage) $(".compare-slot", card.el).replaceChildren();
}

// -- before / after ----------------------------------------------------------------------------

function el(tag, attrs = {}, children = []) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

function showCompare(card, job) {
  card.compared = true;
  const slot = $(".compare-slot", card.el);
  const before = `/api/jobs/${job.id}/input`;
  const after = `/api/jobs/${job.id}/result`;
  if (card.kind === "image") {
    const range = el("input", { type: "range", min: "0", max: "100", step: "0.1", value: "50", "aria-label": "Compare: drag to show more of before or after" });
    const box = el("div", { class: "compare-img" }, [
      el("img", { class: "after", src: after, alt: `${job.name} after` }),
      el("img", { class: "before", src: before, alt: `${job.name} before` }),
      el("span", { class: "tag before", text: "Before" }),
      el("span", { class: "tag after", text: "After" }),
      range,
      el("div", { class: "handle" }),
    ]);
    range.addEventListener("input", () => box.style.setProperty("--pos", `${range.value}%`));
    slot.replaceChildren(box);
    return;
  }
  const vBefore = el("video", { class: "before", src: before, muted: "", playsinline: "", preload: "auto" });
  vBefore.muted = true;
  const vAfter = el("video", { class: "after", src: after, controls: "", playsinline: "", preload: "auto" });
  const figB = el("figure", {}, [el("figcaption", { text: "Before (muted)" }), vBefore]);
  const figA = el("figure", {}, [el("figcaption", { text: "After, with its sound" }), vAfter]);
  for (const [video, fig] of [[vBefore, figB], [vAfter, figA]]) {
    video.addEventListener("error", () => {
      fig.replaceChildren(fig.firstChild, el("div", { class: "nopreview", text: `This browser cannot play ${suffixOf(job.name)} files here; download to view.` }));
    });
  }
  syncVideos(vAfter, vBefore);
  slot.replaceChildren(el("div", { class: "compare-vid" }, [figB, figA]));
}

function syncVideos(lead, follow) {
  // The result (with sound and controls) leads; the original follows it.
  const align = () => { if (Math.abs(follow.currentTime - lead.currentTime) > 0.12) follow.currentTime = lead.currentTime; };
  lead.addEventListener("play", () => { align(); follow.play().catch(() => {}); });
  lead.addEventListener("pause", () => { follow.pause(); align(); });
  lead.addEventListener("seeked", align);
  lead.addEventListener("ratechange", () => { follow.playbackRate = lead.playbackRate; });
  lead.addEventListener("timeupdate", align);
}

// -- uploads -------------------------------------------------------------------------------------

function addFiles(files) {
  for (const file of files) {
    const kind = kindOf(file.name);
    const card = newCard(file.name, file.size, kind);
    if (!kind) {
      reject(card, `${file.name}: not a supported file type. Use a video (${listSuffixes(CONFIG.video_suffixes)}) or a photo (${listSuffixes(CONFIG.image_suffixes)}).`);
      continue;
    }
    if (file.size > CONFIG.max_upload) {
      reject(card, `${file.name} is ${fmtSize(file.size)}, larger than the ${CONFIG.max_upload_text} limit.`);
      continue;
    }
    if (file.size === 0) {
      reject(card, `${file.name}: the file is empty.`);
      continue;
    }
    card.file = file;
    card.opts = currentOptions();
    setMeta(card);
    setBar(card, 0);
    setState(card, "waiting", "Waiting to upload");
    uploadQueue.push(card);
  }
  pumpUploads();
}

function pumpUploads() {
  if (uploading || !uploadQueue.length) return;
  const card = uploadQueue.shift();
  uploading = card;
  const params = new URLSearchParams({ name: card.file.name, ...card.opts });
  const xhr = new XMLHttpRequest();
  card.xhr = xhr;
  xhr.open("POST", `/api/jobs?${params}`);
  xhr.setRequestHeader("X-Streamguard", "1");
  xhr.setRequestHeader("Content-Type", "application/octet-stream");
  const t0 = performance.now();
  setState(card, "uploading", "Uploading…");
  xhr.upload.addEventListener("progress", (e) => {
    if (!e.lengthComputable) return;
    const secs = (performance.now() - t0) / 1000;
    const rate = secs > 0.2 ? e.loaded / secs : 0;
    setBar(card, e.loaded / e.total);
    let text = `Uploading ${Math.round((100 * e.loaded) / e.total)}% · ${fmtSize(e.loaded)} of ${fmtSize(e.total)}`;
    if (rate) text += ` · ${fmtSize(rate)}/s`;
    if (e.loaded >= e.total) text = card.kind === "video" ? "Checking the video…" : "Uploaded";
    setState(card, "uploading", text);
  });
  const finish = () => {
    card.xhr = null;
    uploading = null;
    pumpUploads();
  };
  xhr.addEventListener("load", () => {
    let body = {};
    try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON: use the status below */ }
    if (xhr.status === 201) {
      card.jobId = body.id;
      card.file = null;
      remember();
      render(card, body);
      follow();
    } else {
      reject(card, body.error || `Upload failed (HTTP ${xhr.status}).`);
    }
    finish();
  });
  xhr.addEventListener("error", () => {
    reject(card, "Upload failed: the streamguard server could not be reached.");
    finish();
  });
  xhr.addEventListener("abort", () => {
    setState(card, "cancelled", "", "Upload cancelled.");
    finish();
  });
  xhr.send(card.file);
}

function cancelCard(card) {
  if (card.state === "waiting") {
    uploadQueue.splice(uploadQueue.indexOf(card), 1);
    setState(card, "cancelled", "", "Cancelled before upload.");
  } else if (card.state === "uploading" && card.xhr) {
    card.xhr.abort();
  } else if (card.jobId) {
    $(".cancel", card.el).disabled = true;
    api(`/api/jobs/${card.jobId}/cancel`, { method: "POST" })
      .then((r) => r.json())
      .then((job) => { if (job.state) render(card, job); })
      .catch(() => {})
      .finally(() => { $(".cancel", card.el).disabled = false; });
  }
}

function removeCard(card) {
  if (card.state === "waiting" || card.state === "uploading") cancelCard(card);
  if (card.jobId && !["removed", "unknown"].includes(card.state)) {
    api(`/api/jobs/${card.jobId}`, { method: "DELETE" }).catch(() => {});
  }
  cards.splice(cards.indexOf(card), 1);
  card.el.remove();
  remember();
  follow();
  refreshToolbar();
}

// -- following the server -------------------------------------------------------------------------

function follow() {
  // Keep following finished jobs too: that keeps their files alive while the page is open
  // and tells the page when the server deleted them.
  const ids = cards.filter((c) => c.jobId && !["removed", "unknown"].includes(c.state)).map((c) => c.jobId);
  const key = ids.join(",");
  if (key === eventIds) return;
  if (events) events.close();
  events = null;
  eventIds = key;
  if (!ids.length) return;
  const source = new EventSource(`/api/events?ids=${key}`);
  events = source;
  source.addEventListener("open", () => banner(""));
  source.addEventListener("error", () => {
    if (events === source) banner("Lost contact with the streamguard server; retrying…");
  });
  source.addEventListener("message", (e) => {
    banner("");
    const data = JSON.parse(e.data);
    let changed = false;
    for (const job of data.jobs) {
      const card = cards.find((c) => c.jobId === job.id);
      if (!card) continue;
      const before = card.state;
      render(card, job);
      if (before !== card.state && (card.state === "removed" || card.state === "unknown")) changed = true;
    }
    if (changed) follow();
  });
}

function remember() {
  const saved = cards.filter((c) => c.jobId).map((c) => ({ id: c.jobId, name: c.name, kind: c.kind }));
  try { sessionStorage.setItem(STORE_KEY, JSON.stringify(saved)); } catch (_) { /* private mode */ }
}

async function restore() {
  // After a reload, pick up this tab's jobs again (the server keeps them while a page follows them).
  let saved = [];
  try { saved = JSON.parse(sessionStorage.getItem(STORE_KEY) || "[]"); } catch (_) { saved = []; }
  for (const item of saved) {
    try {
      const r = await fetch(`/api/jobs/${encodeURIComponent(item.id)}`);
      if (!r.ok) continue;
      const job = await r.json();
      const card = newCard(job.name, job.size, job.kind);
      card.jobId = job.id;
      render(card, job);
    } catch (_) { /* server gone: nothing to restore */ }
  }
  remember();
  follow();
}

// -- toolbar -----------------------------------------------------------------------------------------

function refreshToolbar() {
  $("#toolbar").hidden = cards.length === 0;
  const done = cards.filter((c) => c.state === "done" && c.jobId);
  const count = (pred) => cards.filter(pred).length;
  const parts = [`${cards.length} ${cards.length === 1 ? "file" : "files"}`];
  const working = count((c) => ["uploading", "running"].includes(c.state));
  const waiting = count((c) => ["waiting", "queued"].includes(c.state));
  if (working) parts.push(`${working} working`);
  if (waiting) parts.push(`${waiting} waiting`);
  if (done.length) parts.push(`${done.length} done`);
  const failed = count((c) => c.state === "failed");
  if (failed) parts.push(`${failed} failed`);
  const rejected = count((c) => c.state === "rejected");
  if (rejected) parts.push(`${rejected} not accepted`);
  $("#summary").textContent = parts.join(" · ");
  const all = $("#download-all");
  all.setAttribute("aria-disabled", done.length ? "false" : "true");
  if (done.length) all.href = `/api/zip?ids=${done.map((c) => c.jobId).join(",")}`;
  else all.removeAttribute("href");
  all.textContent = done.length > 1 ? `Download all (${done.length} files, zip)` : "Download all (zip)";
}

function clearFinished() {
  for (const card of [...cards]) {
    if (FINISHED.has(card.state)) removeCard(card);
  }
}

// -- start -------------------------------------------------------------------------------------------

function setupDrop() {
  const drop = $("#drop");
  const input = $("#files");
  input.accept = [...CONFIG.video_suffixes, ...CONFIG.image_suffixes].join(",");
  input.addEventListener("change", () => {
    addFiles([...input.files]);
    input.value = "";
  });
  // The whole window takes drops, so a near miss does not open the file in the browser instead.
  let depth = 0;
  window.addEventListener("dragenter", (e) => {
    if (![...(e.dataTransfer?.types || [])].includes("Files")) return;
    depth += 1;
    drop.classList.add("over");
  });
  window.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) drop.classList.remove("over");
  });
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => {
    e.preventDefault();
    depth = 0;
    drop.classList.remove("over");
    if (e.dataTransfer?.files?.length) addFiles([...e.dataTransfer.files]);
  });
}

function setupOptions() {
  const d = CONFIG.defaults;
  const pick = (name, value) => {
    const r = document.querySelector(`input[name="${name}"][value="${value}"]`);
    if (r) r.checked = true;
  };
  pick("mode", d.mode);
  pick("detection", d.detection);
  const strength = $("#strength");
  strength.value = String(d.strength);
  const showStrength = () => { $("#strength-out").textContent = `${Number(strength.value).toFixed(1)}×`; };
  strength.addEventListener("input", showStrength);
  showStrength();
  $("#boxes").checked = !!d.boxes;
  const hint = () => { $("#detection-hint").textContent = DETECTION_HINTS[currentOptions().detection] || ""; };
  for (const r of document.querySelectorAll('input[name="detection"]')) r.addEventListener("change", hint);
  hint();
}

async function start() {
  try {
    CONFIG = await (await fetch("/api/config")).json();
  } catch (_) {
    banner("Cannot reach the streamguard server. Is `streamguard serve` still running?");
    return;
  }
  $("#limits").textContent = `Videos: ${listSuffixes(CONFIG.video_suffixes)} · Photos: ${listSuffixes(CONFIG.image_suffixes)} · up to ${CONFIG.max_upload_text} each`;
  $("#version").textContent = `streamguard ${CONFIG.version}`;
  setupOptions();
  setupDrop();
  $("#clear").addEventListener("click", clearFinished);
  document.body.dataset.ready = "1";
  await restore();
}

start();
