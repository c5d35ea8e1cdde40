// i2edit chat page: plain JS, no build step. Talks to the JSON API documented at /api/openapi.json.
"use strict";

const CONFIG = JSON.parse(document.getElementById("i2edit-config").textContent);
const STORAGE_KEY = "i2edit.conversation";
const $ = (id) => document.getElementById(id);

let conversation = null;   // the last GET /api/conversations/<id> answer
let selected = null;       // index of the turn shown as "current" (null: the head)
let branchFrom = null;     // index of the turn the next message continues (null: the head)
let pollTimer = null;
const JOB_LABELS = { queued: "waiting", running: "editing…", done: "done", failed: "edit failed",
                     cancelled: "skipped (a newer turn came)" };

// --- API ------------------------------------------------------------------------------------------
async function api(method, path, body) {
  const options = { method, credentials: "same-origin", headers: {} };
  if (body instanceof FormData) {
    options.body = body;
  } else if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    const detail = data && data.detail ? data.detail : `the server answered ${response.status}`;
    const error = new Error(detail);
    error.status = response.status;
    throw error;
  }
  return data;
}

// --- notices --------------------------------------------------------------------------------------
function notice(text, kind, id) {
  if (id && document.getElementById(id)) return;
  const div = document.createElement("div");
  div.textContent = text;
  if (kind) div.className = kind;
  if (id) div.id = id;
  $("notices").appendChild(div);
  if (kind === "error" && !id) setTimeout(() => div.remove(), 8000);  // notices with an id stay
}

function showStaticNotices() {
  if (!CONFIG.dialogue.available) notice(`The chat is unavailable: ${CONFIG.dialogue.detail}`, "error",
                                         "notice-dialogue");
  if (!CONFIG.editing.available) notice(CONFIG.editing.detail, null, "notice-editing");
}

// --- starting -------------------------------------------------------------------------------------
function showStart() {
  conversation = null;
  selected = branchFrom = null;
  stopPolling();
  localStorage.removeItem(STORAGE_KEY);
  $("workspace").hidden = true;
  $("start").hidden = false;
  const samples = $("samples");
  samples.replaceChildren();
  for (const sample of CONFIG.samples) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "sample";
    button.title = sample.name;
    button.dataset.sample = sample.name;
    const img = document.createElement("img");
    img.src = sample.url;
    img.alt = `sample ${sample.name}`;
    button.appendChild(img);
    button.addEventListener("click", () => start({ sample: sample.name }));
    samples.appendChild(button);
  }
  $("samples-block").hidden = CONFIG.samples.length === 0;
}

async function start(body) {
  try {
    show(await api("POST", "/api/conversations", body));
    localStorage.setItem(STORAGE_KEY, conversation.id);
  } catch (error) {
    notice(error.message, "error");
  }
}

// --- rendering ------------------------------------------------------------------------------------
function turnByIndex(index) {
  return conversation.turns.find((t) => t.index === index) || null;
}

function imageOf(turn) {
  // The image to show for a turn: its own, else the nearest ancestor's.
  for (let t = turn; t; t = t.parent === null ? null : turnByIndex(t.parent)) {
    if (t.image_url) return { url: t.image_url, turn: t };
  }
  return null;
}

function show(data) {
  conversation = data;
  if (selected !== null && !turnByIndex(selected)) selected = null;
  if (branchFrom !== null && !turnByIndex(branchFrom)) branchFrom = null;
  $("start").hidden = true;
  $("workspace").hidden = false;
  const photo = conversation.photo;
  $("original").hidden = !photo;
  $("no-photo").hidden = !!photo;
  if (photo) $("original").src = photo.url;
  $("editing-detail").textContent = conversation.editing.detail;
  renderTranscript();
  renderCurrent();
  renderGallery();
  $("undo").disabled = conversation.head === null;
  $("branch-note").hidden = branchFrom === null;
  $("branch-turn").textContent = branchFrom === null ? "" : String(branchFrom + 1);
  watchJob();
}

function renderTranscript() {
  const list = $("transcript");
  list.replaceChildren();
  const last = branchFrom !== null ? branchFrom : conversation.head;
  const path = last === null ? [] : lineage(last);
  for (const turn of path) {
    for (const [who, text] of [["user", turn.user], ["system", turn.response]]) {
      const li = document.createElement("li");
      li.className = who;
      li.textContent = text;
      list.appendChild(li);
    }
  }
  list.scrollTop = list.scrollHeight;
  const chips = $("chips");
  chips.replaceChildren();
  const state = path.length ? path[path.length - 1].belief_state : {};
  for (const [slot, values] of Object.entries(state)) {
    for (const value of values) {
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.title = slot;
      const b = document.createElement("b");
      b.textContent = `${slot}: `;
      chip.append(b, value);
      chips.appendChild(chip);
    }
  }
}

function lineage(index) {
  const out = [];
  for (let t = turnByIndex(index); t; t = t.parent === null ? null : turnByIndex(t.parent)) out.unshift(t);
  return out;
}

function shownTurn() {
  const index = selected !== null ? selected : conversation.head;
  return index === null ? null : turnByIndex(index);
}

function renderCurrent() {
  const turn = shownTurn();
  const found = turn ? imageOf(turn) : null;
  const img = $("current");
  img.hidden = !found;
  $("no-edit").hidden = !!found;
  $("no-edit").textContent = turn && turn.job && !["done", "failed", "cancelled"].includes(turn.job.status)
    ? "editing…" : "no edit yet";
  if (found) img.src = found.url;
  let caption = turn ? `Turn ${turn.index + 1}` : "Current";
  if (turn && found && found.turn !== turn) caption += ` (showing turn ${found.turn.index + 1}'s image)`;
  $("current-caption").textContent = caption;
  const download = $("download");
  download.hidden = !found;
  if (found) download.href = `${found.url}?download=1`;
  if (turn && turn.job && turn.job.status === "failed") notice(turn.job.error, "error", `failed-${turn.job.id}`);
}

function renderGallery() {
  const gallery = $("gallery");
  gallery.replaceChildren();
  const onPath = new Set(conversation.path);
  const shown = shownTurn();
  for (const turn of conversation.turns) {
    const li = document.createElement("li");
    li.dataset.index = String(turn.index);
    if (shown && shown.index === turn.index) li.classList.add("selected");
    if (!onPath.has(turn.index)) li.classList.add("off-path");
    if (turn.image_url) {
      const img = document.createElement("img");
      img.src = turn.image_url;
      img.alt = `turn ${turn.index + 1}`;
      li.appendChild(img);
    } else {
      const box = document.createElement("div");
      box.className = "placeholder";
      box.textContent = turn.job ? JOB_LABELS[turn.job.status] : "no edit";
      li.appendChild(box);
    }
    const caption = document.createElement("p");
    caption.textContent = `${turn.index + 1}. ${turn.user}`;
    li.appendChild(caption);
    const cont = document.createElement("button");
    cont.type = "button";
    cont.className = "link continue";
    cont.textContent = "continue from here";
    cont.addEventListener("click", (event) => {
      event.stopPropagation();
      branchFrom = turn.index === conversation.head ? null : turn.index;
      selected = turn.index;
      show(conversation);
      $("turn-text").focus();
    });
    li.appendChild(cont);
    li.addEventListener("click", () => { selected = turn.index; show(conversation); });
    gallery.appendChild(li);
  }
}

// --- edit progress --------------------------------------------------------------------------------
function stopPolling() {
  if (pollTimer !== null) clearTimeout(pollTimer);
  pollTimer = null;
}

function pendingJob() {
  const turn = shownTurn();
  const job = turn && turn.job;
  return job && (job.status === "queued" || job.status === "running") ? job : null;
}

function watchJob() {
  stopPolling();
  const job = pendingJob();
  $("progress").hidden = !job;
  if (job) showProgress(job);
  if (job) pollTimer = setTimeout(() => pollJob(job.id), 400);
}

function showProgress(job) {
  $("progress").hidden = false;
  $("progress-fill").style.width = `${Math.round(job.progress * 100)}%`;
  $("progress-text").textContent = job.status === "queued" ? "waiting for the editor…"
    : job.total ? `editing: step ${job.step} of ${job.total}` : "preparing the photo…";
  if (job.preview_url) {
    $("current").src = job.preview_url;
    $("current").hidden = false;
    $("no-edit").hidden = true;
  }
}

async function pollJob(jobId) {
  pollTimer = null;
  let job;
  try {
    job = await api("GET", `/api/jobs/${jobId}`);
  } catch (error) {
    notice(error.message, "error");
    return;
  }
  if (!conversation) return;
  if (job.status === "queued" || job.status === "running") {
    showProgress(job);
    pollTimer = setTimeout(() => pollJob(jobId), 500);
  } else {
    await refresh();
  }
}

async function refresh() {
  if (!conversation) return;
  try {
    show(await api("GET", `/api/conversations/${conversation.id}`));
  } catch (error) {
    notice(error.message, "error");
  }
}

// --- actions --------------------------------------------------------------------------------------
async function sendTurn(event) {
  event.preventDefault();
  const input = $("turn-text");
  const text = input.value;
  if (!text.trim()) { notice("Write what to change first.", "error"); return; }
  const body = { text };
  if (branchFrom !== null) body.parent_turn = branchFrom;
  $("send").disabled = true;
  try {
    await api("POST", `/api/conversations/${conversation.id}/turns`, body);
    input.value = "";
    branchFrom = selected = null;
    await refresh();
  } catch (error) {
    notice(error.message, "error");
  } finally {
    $("send").disabled = false;
    input.focus();
  }
}

async function undo() {
  try {
    selected = branchFrom = null;
    show(await api("POST", `/api/conversations/${conversation.id}/undo`));
  } catch (error) {
    notice(error.message, "error");
  }
}

async function uploadPhoto() {
  const file = $("photo-input").files[0];
  if (!file) return;
  if (file.size > CONFIG.limits.upload_bytes) {
    notice(`The photo is too large (${(file.size / 1e6).toFixed(1)} MB); the limit is 10 MB.`, "error");
    return;
  }
  const form = new FormData();
  form.append("photo", file);
  await start(form);
  $("photo-input").value = "";
  if (conversation && !conversation.editing.available && CONFIG.editing.available) {
    notice(conversation.editing.detail, null);
  }
}

async function resume() {
  const id = localStorage.getItem(STORAGE_KEY);
  if (!id) { showStart(); return; }
  try {
    show(await api("GET", `/api/conversations/${id}`));
  } catch (error) {
    showStart();
  }
}

document.addEventListener("DOMContentLoaded", () => {
  showStaticNotices();
  $("new-conversation").addEventListener("click", showStart);
  $("start-without-photo").addEventListener("click", () => start({}));
  $("photo-input").addEventListener("change", uploadPhoto);
  $("turn-form").addEventListener("submit", sendTurn);
  $("undo").addEventListener("click", undo);
  $("branch-cancel").addEventListener("click", () => { branchFrom = selected = null; show(conversation); });
  $("turn-text").maxLength = CONFIG.limits.text_chars;
  resume();
});
