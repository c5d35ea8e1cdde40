// i2edit chat page: plain JS, no build step. Talks to the JSON API documented at /api/openapi.json.
"use strict";

const CONFIG = JSON.parse(document.getElementById("i2edit-config").textContent);
const STORAGE_KEY = "i2edit.conversation";
const SMOOTH_KEY = "i2edit.smooth";
const MAX_NOTICES = 3;
const ERROR_NOTICE_MS = 10000;
const $ = (id) => document.getElementById(id);

let conversation = null;   // the last GET /api/conversations/<id> answer
let selected = null;       // index of the turn being viewed (null: the head)
let branchFrom = null;     // index of the turn the next message continues (null: the head)
let pollTimer = null;
let shownPreview = null;   // the live preview shown in place of the current image, while an edit runs
let viewerMode = "edited";
let leftConversationId = null;  // the conversation the start screen was opened from ("back to it")
let dividerPercent = 50;   // where the before / after divider stands, in % of the stage's width
const PENDING = ["queued", "running"];

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

// --- text -----------------------------------------------------------------------------------------
function richText(element, text) {
  // `text` with `backticked` parts shown as code (server sentences quote commands that way).
  element.replaceChildren();
  text.split("`").forEach((part, i) => {
    if (i % 2 === 1) {
      const code = document.createElement("code");
      code.textContent = part;
      element.appendChild(code);
    } else if (part) {
      element.appendChild(document.createTextNode(part));
    }
  });
}

function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

function ago(iso) {
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

// --- notices: dismissible, never duplicated, at most MAX_NOTICES ---------------------------------
// kind: "error" (goes away by itself after a while, unless `sticky`) or "info"; scope "conversation": removed
// when the page shows another conversation or the start screen.
function notice(text, { kind = "info", id = null, scope = "page", sticky = false } = {}) {
  const existing = [...$("notices").children].find((div) => (id && div.dataset.id === id)
                                                            || div.dataset.text === text);
  const div = existing || document.createElement("div");
  clearTimeout(Number(div.dataset.timer || 0));
  div.className = `notice ${kind}`;
  div.dataset.text = text;
  div.dataset.scope = scope;
  if (id) div.dataset.id = id;
  div.setAttribute("role", kind === "error" ? "alert" : "status");
  const message = document.createElement("span");
  richText(message, text);
  const close = document.createElement("button");
  close.type = "button";
  close.className = "dismiss";
  close.setAttribute("aria-label", "dismiss");
  close.textContent = "×";
  close.addEventListener("click", () => div.remove());
  div.replaceChildren(message, close);
  if (kind === "error" && !sticky) div.dataset.timer = String(setTimeout(() => div.remove(), ERROR_NOTICE_MS));
  $("notices").appendChild(div);  // (re)appended: the newest is last
  while ($("notices").children.length > MAX_NOTICES) $("notices").firstElementChild.remove();
}

function clearConversationNotices() {
  for (const div of [...$("notices").children]) if (div.dataset.scope === "conversation") div.remove();
}

function showStaticNotices() {
  if (!CONFIG.dialogue.available) {
    notice(`The chat is unavailable: ${CONFIG.dialogue.detail}`, { kind: "error", id: "dialogue", sticky: true });
  }
  if (!CONFIG.editing.available) notice(CONFIG.editing.detail, { id: "editing" });
}

// --- the start screen: samples, upload, earlier conversations -------------------------------------
function showStart() {
  if (conversation) leftConversationId = conversation.id;
  conversation = null;
  selected = branchFrom = null;
  stopPolling();
  clearConversationNotices();
  localStorage.removeItem(STORAGE_KEY);
  $("workspace").hidden = true;
  $("start").hidden = false;
  const back = $("back-to-current");
  back.hidden = !leftConversationId;
  const samples = $("samples");
  samples.replaceChildren();
  for (const sample of CONFIG.samples) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "sample";
    button.title = `start with ${sample.name}`;
    button.dataset.sample = sample.name;
    const img = document.createElement("img");
    img.src = sample.url;
    img.alt = `sample ${sample.name}`;
    const name = document.createElement("span");
    name.textContent = sample.name;
    button.append(img, name);
    button.addEventListener("click", () => start({ sample: sample.name }));
    samples.appendChild(button);
  }
  $("samples-block").hidden = CONFIG.samples.length === 0;
  const uploadNote = $("upload-note");
  uploadNote.hidden = !(CONFIG.editing.available && !CONFIG.editing.real_photos);
  uploadNote.textContent = "These weights edit only their own sample faces: an uploaded photo is kept and " +
                           "chatted about, but not edited.";
  listConversations();
}

async function listConversations() {
  let listing;
  try {
    listing = await api("GET", "/api/conversations?limit=30");
  } catch (error) {
    notice(`Your earlier conversations could not be listed: ${error.message}`, { kind: "error" });
    return;
  }
  const list = $("past");
  list.replaceChildren();
  for (const item of listing.conversations) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "past-item";
    button.dataset.id = item.id;
    if (item.image_url) {
      const img = document.createElement("img");
      img.src = item.image_url;
      img.alt = "";
      button.appendChild(img);
    } else {
      const box = document.createElement("span");
      box.className = "placeholder";
      box.textContent = "no photo";
      button.appendChild(box);
    }
    const text = document.createElement("span");
    text.className = "past-text";
    const title = document.createElement("strong");
    title.textContent = item.first_message || "No messages yet";
    const meta = document.createElement("small");
    const photo = item.photo_source === null ? "no photo"
      : item.photo_source === "upload" ? "your photo" : item.photo_source.replace("sample:", "sample ");
    const current = item.id === leftConversationId ? " · the one you were in" : "";
    meta.textContent = `${plural(item.turn_count, "turn")} · ${photo} · ${ago(item.updated_at)}${current}`;
    text.append(title, meta);
    button.appendChild(text);
    button.addEventListener("click", () => openConversation(item.id));
    li.appendChild(button);
    list.appendChild(li);
  }
  $("past-empty").hidden = listing.conversations.length > 0;
}

async function start(body) {
  try {
    show(await api("POST", "/api/conversations", body));
    localStorage.setItem(STORAGE_KEY, conversation.id);
  } catch (error) {
    notice(error.message, { kind: "error" });
  }
}

async function openConversation(id) {
  try {
    selected = branchFrom = null;
    show(await api("GET", `/api/conversations/${id}`));
    localStorage.setItem(STORAGE_KEY, id);
  } catch (error) {
    notice(`That conversation could not be opened: ${error.message}`, { kind: "error" });
  }
}

// --- turns ----------------------------------------------------------------------------------------
function turnByIndex(index) {
  return conversation.turns.find((t) => t.index === index) || null;
}

function lineage(index) {
  const out = [];
  for (let t = turnByIndex(index); t; t = t.parent === null ? null : turnByIndex(t.parent)) out.unshift(t);
  return out;
}

function imageOf(turn) {
  // The image shown for a turn (or, with none, before the first turn): its own, else the nearest ancestor's,
  // else the original photo (`turn` null); null without a photo.
  for (let t = turn; t; t = t.parent === null ? null : turnByIndex(t.parent)) {
    if (t.image_url) return { url: t.image_url, turn: t };
  }
  return conversation.photo ? { url: conversation.photo.url, turn: null } : null;
}

function shownTurn() {
  const index = selected !== null ? selected : conversation.head;
  return index === null ? null : turnByIndex(index);
}

function pendingJob() {
  const turn = shownTurn();
  const job = turn && turn.job;
  return job && PENDING.includes(job.status) ? job : null;
}

// --- rendering ------------------------------------------------------------------------------------
function show(data) {
  if (!conversation || conversation.id !== data.id) clearConversationNotices();
  conversation = data;
  if (selected !== null && !turnByIndex(selected)) selected = null;
  if (branchFrom !== null && !turnByIndex(branchFrom)) branchFrom = null;
  $("start").hidden = true;
  $("workspace").hidden = false;
  const photo = conversation.photo;
  $("images").classList.toggle("without-photo", !photo);
  $("original").hidden = !photo;
  $("no-photo").hidden = !!photo;
  $("original-frame").disabled = !photo;
  if (photo) $("original").src = photo.url;
  renderEditingNote();
  renderTranscript();
  renderChips();
  renderCurrent();
  renderGallery();
  $("undo").disabled = conversation.head === null;
  $("branch-note").hidden = branchFrom === null;
  $("branch-turn").textContent = branchFrom === null ? "" : String(branchFrom + 1);
  watchJob();
}

function renderEditingNote() {
  const editing = conversation.editing;
  richText($("editing-detail"), editing.detail);
  $("editing-note").classList.toggle("blocked", !editing.available);
  const canStartOver = ["no_photo", "samples_only"].includes(editing.blocker) && CONFIG.samples.length > 0;
  $("note-start").hidden = !canStartOver;
}

function renderTranscript() {
  // The branch being continued (or the head's); when the viewed turn is on another branch, that one.
  const list = $("transcript");
  list.replaceChildren();
  if (conversation.turns.length === 0) {
    const hint = document.createElement("li");
    hint.className = "hint";
    hint.textContent = "Say what to change about the face, in your own words, one wish or several at a time. " +
      "Every turn edits the original photo towards all your requirements so far; Undo takes the last one back.";
    list.appendChild(hint);
    return;
  }
  const shown = shownTurn();
  const last = branchFrom !== null ? branchFrom : conversation.head;
  let path = last === null ? [] : lineage(last);
  if (shown && !path.includes(shown)) path = lineage(shown.index);
  let viewed = null;
  for (const turn of path) {
    for (const [who, text] of [["user", turn.user], ["system", turn.response]]) {
      const li = document.createElement("li");
      li.className = who;
      li.dataset.turn = String(turn.index);
      li.textContent = text;
      if (shown && turn.index === shown.index && selected !== null) {
        li.classList.add("viewed");
        viewed = viewed || li;
      }
      list.appendChild(li);
    }
    const followUp = followUpItem(turn);
    if (followUp) list.appendChild(followUp);
  }
  if (viewed) viewed.scrollIntoView({ block: "nearest" }); else list.scrollTop = list.scrollHeight;
}

function followUpItem(turn) {
  // What the critic found missing in the turn's finished edit, with a Try harder button while effort is left.
  const job = turn.job;
  if (!job || job.status !== "done" || !job.follow_up) return null;
  const li = document.createElement("li");
  li.className = "system follow-up";
  li.dataset.turn = String(turn.index);
  li.textContent = job.follow_up;
  if (job.can_try_harder) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "try-harder";
    button.textContent = "Try harder";
    button.addEventListener("click", () => tryHarder(job.id, button));
    li.appendChild(button);
  }
  return li;
}

function renderVerdicts(found) {
  // A tick or a cross per requested value under the image, from the critic of the edit that made it.
  const list = $("verdicts");
  list.replaceChildren();
  // (a turn that reuses an earlier edit's image for the same requirements shows that edit's verdicts)
  const turn = found && found.turn;
  const job = turn && turn.job;
  const verdicts = job && job.status === "done" && job.image_url === found.url ? job.verdicts
    : turn && turn.image_url === found.url ? turn.verdicts : null;
  list.hidden = !verdicts;
  if (!verdicts) return;
  for (const [value, present] of Object.entries(verdicts)) {
    const li = document.createElement("li");
    li.className = present === true ? "found" : present === false ? "missing" : "unjudged";
    li.textContent = `${present === true ? "\u2713" : present === false ? "\u2717" : "?"} ${value}`;
    li.title = present === true ? "the critic sees it in this edit" : present === false
      ? "the critic does not see it clearly: Try harder can push it" : "these weights cannot judge this value";
    list.appendChild(li);
  }
}

function renderChips() {
  // The requirements of the turn being viewed; values that turn added or removed are marked.
  const turn = shownTurn();
  const parent = turn && turn.parent !== null ? turnByIndex(turn.parent) : null;
  const state = turn ? turn.belief_state : {};
  const before = new Set(parent ? Object.values(parent.belief_state).flat() : []);
  const now = new Set(Object.values(state).flat());
  const older = turn && turn.index !== conversation.head;
  $("chips-label").textContent = !turn ? "Requirements: none yet"
    : older ? `Requirements at turn ${turn.index + 1} (the turn you are viewing)` : "Requirements";
  const chips = $("chips");
  chips.replaceChildren();
  const add = (slot, value, cls) => {
    const chip = document.createElement("span");
    chip.className = `chip ${cls}`;
    chip.title = cls === "removed" ? `${slot}: removed at this turn` : cls === "added" ? `${slot}: new at this turn`
      : slot;
    const b = document.createElement("b");
    b.textContent = `${slot}: `;
    chip.append(b, value);
    chips.appendChild(chip);
  };
  for (const [slot, values] of Object.entries(state)) {
    for (const value of values) add(slot, value, turn && !before.has(value) ? "added" : "kept");
  }
  if (parent) {
    for (const [slot, values] of Object.entries(parent.belief_state)) {
      for (const value of values) if (!now.has(value)) add(slot, value, "removed");
    }
  }
}

function renderCurrent() {
  const turn = shownTurn();
  const found = imageOf(turn);
  const img = $("current");
  img.hidden = !found;
  $("current-frame").disabled = !found;
  $("no-edit").hidden = !!found;
  if (found) img.src = found.url;
  shownPreview = null;
  showImageSize();
  $("current-caption").textContent = captionFor(turn, found);
  const edited = found && found.turn;
  $("compare").disabled = !edited;
  const download = $("download");
  download.hidden = !edited;
  if (edited) download.href = `${found.url}?download=1`;
  renderVerdicts(found);
  renderJobStatus(turn);
}

function captionFor(turn, found) {
  // Names the turn being viewed, what happens to its edit, and whose image is shown when not its own.
  const own = found && turn && found.turn === turn;
  const shows = !found || own ? null
    : found.turn ? `showing turn ${found.turn.index + 1}'s image` : "showing the original";
  if (!turn) return shows ? "No edit yet · showing the original" : "No edit yet";
  const job = turn.job;
  let state = "";
  if (job && PENDING.includes(job.status)) state = "editing";
  else if (job && job.status === "failed") state = "edit failed";
  else if (job && job.status === "cancelled") state = "edit cancelled";
  else if (shows) state = "no edit";
  return [`Turn ${turn.index + 1}${state ? `: ${state}` : ""}`, shows].filter(Boolean).join(" · ");
}

function renderJobStatus(turn) {
  const job = turn && turn.job;
  const box = $("job-status");
  box.hidden = !job || !["failed", "cancelled"].includes(job.status) || !!turn.image_url;
  if (box.hidden) return;
  let text;
  const reason = (job.error || "no reason given").replace(/^the edit failed:\s*/i, "");
  if (job.status === "failed") text = `The edit of turn ${turn.index + 1} failed: ${reason}.`;
  else if ((job.error || "").startsWith("superseded") || (job.error || "").includes("newer turn")) {
    text = `The edit of turn ${turn.index + 1} was skipped: a newer turn came.`;
  } else text = `The edit of turn ${turn.index + 1} was cancelled${job.error ? ` (${job.error})` : ""}.`;
  $("job-status-text").textContent = text;
  $("retry-edit").textContent = job.status === "failed" ? "Retry edit" : "Edit this turn";
  $("retry-edit").dataset.job = job.id;
}

function renderGallery() {
  const gallery = $("gallery");
  gallery.replaceChildren();
  const onPath = new Set(conversation.path);
  const shown = shownTurn();
  const labels = { queued: "waiting", running: "editing…", done: "done", failed: "edit failed",
                   cancelled: "not edited" };
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
      box.textContent = turn.job ? labels[turn.job.status] : "no edit";
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

// --- edit progress, cancel, retry -----------------------------------------------------------------
function stopPolling() {
  if (pollTimer !== null) clearTimeout(pollTimer);
  pollTimer = null;
}

function watchJob() {
  stopPolling();
  const job = pendingJob();
  $("progress").hidden = !job;
  if (job) {
    showProgress(job);
    pollTimer = setTimeout(() => pollJob(job.id), 400);
  }
}

function queueText(position) {
  // `queue_position`: 1 for the next job a worker takes (absent where the server does not report it).
  if (!position) return "";
  return position === 1 ? " (next in line)" : ` (${position - 1} ${position === 2 ? "edit" : "edits"} ahead)`;
}

function showProgress(job) {
  $("progress").hidden = false;
  $("progress-fill").style.width = `${Math.round(job.progress * 100)}%`;
  $("progress-text").textContent = job.cancel_requested ? "cancelling…"
    : job.status === "queued" ? `waiting for the editor${queueText(job.queue_position)}…`
    : !job.total ? "preparing the photo…"
    : job.round ? `checking and pushing what fell short (round ${job.round}): step ${job.step} of ${job.total}`
    : `${job.effort ? "trying harder" : "editing"}: step ${job.step} of ${job.total}`;
  $("cancel-edit").disabled = !!job.cancel_requested;
  $("cancel-edit").dataset.job = job.id;
  const placeholder = document.querySelector(`#gallery li[data-index="${job.turn}"] .placeholder`);
  if (placeholder) {
    placeholder.textContent = job.status === "queued" ? "waiting" : `editing… ${Math.round(job.progress * 100)}%`;
  }
  if (job.preview_url && job.preview_url !== shownPreview) showPreview(job);
}

function showPreview(job) {
  // Swapped in once loaded: the worker deletes a preview when it stores the next one, so a preview may be gone
  // before the browser asks for it; the image shown then stays as it was.
  const probe = new Image();
  probe.addEventListener("load", () => {
    const watched = conversation && pendingJob();
    if (!watched || watched.id !== job.id) return;
    shownPreview = job.preview_url;
    $("current").src = job.preview_url;
    $("current").hidden = false;
    $("no-edit").hidden = true;
    $("current-frame").disabled = false;
    $("current-caption").textContent = `Turn ${job.turn + 1}: editing · live preview`;
  });
  probe.src = job.preview_url;
}

async function pollJob(jobId) {
  pollTimer = null;
  let job;
  try {
    job = await api("GET", `/api/jobs/${jobId}`);
  } catch (error) {
    notice(`Could not follow the edit: ${error.message}`, { kind: "error", scope: "conversation" });
    return;
  }
  const watched = conversation && pendingJob();
  if (!watched || watched.id !== jobId) return;  // the user moved on meanwhile
  if (PENDING.includes(job.status)) {
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
    notice(error.message, { kind: "error", scope: "conversation" });
  }
}

async function cancelEdit() {
  const id = $("cancel-edit").dataset.job;
  $("cancel-edit").disabled = true;
  try {
    showProgress(await api("POST", `/api/jobs/${id}/cancel`));
  } catch (error) {
    notice(error.message, { kind: "error", scope: "conversation" });
  }
  await refresh();
}

async function retryEdit() {
  const id = $("retry-edit").dataset.job;
  $("retry-edit").disabled = true;
  try {
    await api("POST", `/api/jobs/${id}/retry`);
  } catch (error) {
    notice(error.message, { kind: "error", scope: "conversation" });
  } finally {
    $("retry-edit").disabled = false;
  }
  await refresh();
}

async function tryHarder(jobId, button) {
  button.disabled = true;
  try {
    await api("POST", `/api/jobs/${jobId}/harder`);
  } catch (error) {
    notice(error.message, { kind: "error", scope: "conversation" });
  }
  await refresh();
}

// --- sending --------------------------------------------------------------------------------------
function updateCounter() {
  const length = $("turn-text").value.length;
  const limit = CONFIG.limits.text_chars;
  const counter = $("counter");
  const over = length > limit;
  counter.classList.toggle("over", over);
  counter.textContent = over
    ? `${length} / ${limit} characters: too long by ${length - limit}. Shorten the message to send it.`
    : `${length} / ${limit} characters`;
  $("send").disabled = over;
}

async function sendTurn(event) {
  event.preventDefault();
  const input = $("turn-text");
  const text = input.value;
  if (!text.trim()) { notice("Write what to change first.", { kind: "error" }); return; }
  if (text.length > CONFIG.limits.text_chars) { updateCounter(); return; }
  const body = { text };
  if (branchFrom !== null) body.parent_turn = branchFrom;
  $("send").disabled = true;
  try {
    await api("POST", `/api/conversations/${conversation.id}/turns`, body);
    input.value = "";
    branchFrom = selected = null;
    await refresh();
  } catch (error) {
    notice(error.message, { kind: "error", scope: "conversation" });
  } finally {
    updateCounter();
    input.focus();
  }
}

function renderExamples() {
  const box = $("examples");
  box.replaceChildren();
  for (const text of CONFIG.examples) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "example";
    button.textContent = text;
    button.addEventListener("click", () => {
      $("turn-text").value = text;
      updateCounter();
      $("turn-text").focus();
    });
    box.appendChild(button);
  }
  $("examples-block").hidden = CONFIG.examples.length === 0;
}

async function undo() {
  try {
    selected = branchFrom = null;
    show(await api("POST", `/api/conversations/${conversation.id}/undo`));
  } catch (error) {
    notice(error.message, { kind: "error", scope: "conversation" });
  }
}

async function uploadPhoto() {
  const file = $("photo-input").files[0];
  if (!file) return;
  if (file.size > CONFIG.limits.upload_bytes) {
    const limit = (CONFIG.limits.upload_bytes / 1048576).toFixed(0);
    notice(`The photo is too large (${(file.size / 1048576).toFixed(1)} MB); the limit is ${limit} MB.`,
           { kind: "error" });
    $("photo-input").value = "";
    return;
  }
  const form = new FormData();
  form.append("photo", file);
  await start(form);
  $("photo-input").value = "";
}

// --- the larger view: edited, original, or before / after with a divider --------------------------
function openViewer(mode) {
  const found = imageOf(shownTurn());
  const edited = found && found.turn ? found.url : null;
  const original = conversation && conversation.photo ? conversation.photo.url : null;
  if (!edited && !original) return;
  $("stage-after").src = edited || original;
  $("stage-before").src = original || edited;
  for (const button of document.querySelectorAll("#viewer .modes button")) {
    button.disabled = button.dataset.mode !== "original" && !edited || button.dataset.mode !== "edited" && !original;
  }
  $("viewer-caption").textContent = edited ? $("current-caption").textContent : "Original";
  setViewerMode(edited ? mode : "original");
  $("viewer-smooth").checked = $("smooth").checked;
  $("viewer").showModal();
}

function setViewerMode(mode) {
  viewerMode = mode;
  for (const button of document.querySelectorAll("#viewer .modes button")) {
    button.classList.toggle("active", button.dataset.mode === mode);
    button.setAttribute("aria-pressed", String(button.dataset.mode === mode));
  }
  const compare = mode === "compare";
  $("stage-before").hidden = mode === "edited";
  $("stage-after").hidden = mode === "original";
  for (const id of ["stage-divider", "stage-label-before", "stage-label-after", "compare-slider"]) {
    $(id).hidden = !compare;
  }
  setDivider(dividerPercent);
}

function setDivider(percent) {
  // The edited image covers the original right of the divider (in compare mode).
  dividerPercent = percent;
  $("stage-after").style.clipPath = viewerMode === "compare" ? `inset(0 0 0 ${percent}%)` : "none";
  $("stage-divider").style.left = `${percent}%`;
  $("compare-slider").value = String(percent);
}

function dragDivider(event) {
  if (viewerMode !== "compare" || !(event.buttons & 1)) return;
  const box = $("stage").getBoundingClientRect();
  setDivider(Math.round(Math.min(100, Math.max(0, (event.clientX - box.left) / box.width * 100))));
}

function setSmooth(smooth) {
  document.body.classList.toggle("pixelated", !smooth);
  $("smooth").checked = $("viewer-smooth").checked = smooth;
  localStorage.setItem(SMOOTH_KEY, smooth ? "1" : "0");
}

function showImageSize() {
  const img = $("current");
  const enlarged = img.naturalWidth < img.clientWidth ? ", shown enlarged" : "";
  $("current-size").textContent = img.hidden || !img.naturalWidth ? ""
    : `${img.naturalWidth} × ${img.naturalHeight} px${enlarged}; click to view larger`;
}

// --- start-up -------------------------------------------------------------------------------------
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
  renderExamples();
  setSmooth(localStorage.getItem(SMOOTH_KEY) === "1");
  $("new-conversation").addEventListener("click", showStart);
  $("start-without-photo").addEventListener("click", () => start({}));
  $("note-start").addEventListener("click", showStart);
  $("back-to-current").addEventListener("click", () => openConversation(leftConversationId));
  $("photo-input").addEventListener("change", uploadPhoto);
  $("turn-form").addEventListener("submit", sendTurn);
  $("turn-text").addEventListener("input", updateCounter);
  $("turn-text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("turn-form").requestSubmit();
    }
  });
  $("undo").addEventListener("click", undo);
  $("cancel-edit").addEventListener("click", cancelEdit);
  $("retry-edit").addEventListener("click", retryEdit);
  $("branch-cancel").addEventListener("click", () => { branchFrom = selected = null; show(conversation); });
  $("current").addEventListener("load", showImageSize);
  $("current-frame").addEventListener("click", () => openViewer("edited"));
  $("original-frame").addEventListener("click", () => openViewer("original"));
  $("compare").addEventListener("click", () => openViewer("compare"));
  for (const button of document.querySelectorAll("#viewer .modes button")) {
    button.addEventListener("click", () => setViewerMode(button.dataset.mode));
  }
  $("viewer-close").addEventListener("click", () => $("viewer").close());
  $("viewer").addEventListener("click", (event) => { if (event.target === $("viewer")) $("viewer").close(); });
  $("compare-slider").addEventListener("input", () => setDivider(Number($("compare-slider").value)));
  $("stage").addEventListener("pointerdown", (event) => { $("stage").setPointerCapture(event.pointerId);
                                                         dragDivider(event); });
  $("stage").addEventListener("pointermove", dragDivider);
  $("smooth").addEventListener("change", () => setSmooth($("smooth").checked));
  $("viewer-smooth").addEventListener("change", () => setSmooth($("viewer-smooth").checked));
  updateCounter();
  resume();
});
