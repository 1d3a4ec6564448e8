// Leerbot sandbox web chat: one pupil talking to the bot through /sandbox/api/.
"use strict";

const params = new URLSearchParams(location.search);
const token = params.get("token");
const $ = (id) => document.getElementById(id);

const view = {
  user: null,       // {id, first_name}
  seq: 0,           // last timeline sequence number seen
  generation: 0,    // bumps when the pupil changes, so old poll loops stop
  nodes: new Map(), // record key -> element
  typingTimer: 0,
  toastTimer: 0,
};

function apiUrl(path) {
  if (!token) return path;
  return path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
  };
  const reply = await fetch(apiUrl(path), options);
  const data = await reply.json().catch(() => ({}));
  if (!reply.ok) throw Object.assign(new Error(data.error || reply.statusText), {status: reply.status});
  return data;
}

// ---------------------------------------------------------------- start screen

async function loadUsers() {
  const {users} = await api("/sandbox/api/users");
  const list = $("users");
  list.replaceChildren();
  for (const user of users.slice(-12).reverse()) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = user.first_name;
    button.addEventListener("click", () => openChat(user));
    item.append(button);
    list.append(item);
  }
  $("known").hidden = users.length === 0;
}

function startParameter(link) {
  const value = link.trim();
  if (!value) return null;
  const match = value.match(/[?&]start=([^&#\s]+)/);
  if (match) return decodeURIComponent(match[1]);
  return value.replace(/^\/start\s+/, "");
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = $("name").value.trim();
  if (!name) return;
  const user = await api("/sandbox/api/users", {first_name: name});
  await openChat(user);
  // Opening a bot in Telegram sends /start (with the deep-link parameter, if any).
  const code = startParameter($("link").value);
  await sendText(code ? `/start ${code}` : "/start");
  $("name").value = "";
  $("link").value = "";
});

$("back").addEventListener("click", () => {
  view.generation += 1;
  view.user = null;
  history.replaceState(null, "", location.pathname + location.search);
  $("chat").hidden = true;
  $("login").hidden = false;
  loadUsers();
});

// ---------------------------------------------------------------- chat

async function openChat(user) {
  view.generation += 1;
  view.user = user;
  view.seq = 0;
  view.nodes.clear();
  $("messages").replaceChildren();
  $("keyboard").hidden = true;
  $("who").textContent = user.first_name;
  $("login").hidden = true;
  $("chat").hidden = false;
  history.replaceState(null, "", `${location.pathname}${location.search}#u=${user.id}`);
  try {
    const bot = await api("/sandbox/api/bot");
    $("bot-name").textContent = bot.first_name || "Leerbot";
  } catch (error) { /* the header keeps its default name */ }
  poll(view.generation);
  $("text").focus();
}

async function poll(generation) {
  while (generation === view.generation) {
    try {
      const data = await api(
        `/sandbox/api/chats/${view.user.id}/messages?after=${view.seq}&wait=25`);
      if (generation !== view.generation) return;
      for (const message of data.messages) render(message);
      view.seq = data.seq;
      renderKeyboard(data.keyboard);
      showTyping(data.typing, data.typing_for);
    } catch (error) {
      if (error.status === 404) { $("back").click(); return; }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

async function sendText(text) {
  if (!view.user || !text.trim()) return;
  await api("/sandbox/api/send", {user_id: view.user.id, text});
}

$("composer").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("text");
  const text = input.value;
  input.value = "";
  await sendText(text);
  input.focus();
});

$("attach").addEventListener("click", () => {
  const menu = $("attach-menu");
  menu.hidden = !menu.hidden;
  $("attach").setAttribute("aria-expanded", String(!menu.hidden));
});

for (const button of document.querySelectorAll("#attach-menu button")) {
  button.addEventListener("click", async () => {
    $("attach-menu").hidden = true;
    $("attach").setAttribute("aria-expanded", "false");
    await api("/sandbox/api/send_media", {user_id: view.user.id, kind: button.dataset.kind});
  });
}

// ---------------------------------------------------------------- rendering

function time(date) {
  const when = date ? new Date(date * 1000) : new Date();
  return when.toLocaleTimeString("nl-BE", {hour: "2-digit", minute: "2-digit"});
}

const WRAPPERS = {
  bold: "b", italic: "i", underline: "u", strikethrough: "s", code: "code", pre: "pre",
  blockquote: "blockquote", expandable_blockquote: "blockquote",
};

// Entity offsets count UTF-16 code units, which is exactly how JS indexes strings.
function formatted(text, entities) {
  const fragment = document.createDocumentFragment();
  if (!entities || entities.length === 0) {
    fragment.append(text);
    return fragment;
  }
  const cuts = new Set([0, text.length]);
  for (const e of entities) { cuts.add(e.offset); cuts.add(e.offset + e.length); }
  const points = [...cuts].filter((p) => p >= 0 && p <= text.length).sort((a, b) => a - b);
  for (let i = 0; i < points.length - 1; i += 1) {
    const [start, end] = [points[i], points[i + 1]];
    let node = document.createTextNode(text.slice(start, end));
    for (const e of entities) {
      if (e.offset > start || e.offset + e.length < end) continue;
      let wrapper = null;
      if (WRAPPERS[e.type]) wrapper = document.createElement(WRAPPERS[e.type]);
      else if (e.type === "text_link" && /^(https?|tg):/.test(e.url || "")) {
        wrapper = document.createElement("a");
        wrapper.href = e.url; wrapper.target = "_blank"; wrapper.rel = "noopener";
      } else if (e.type === "spoiler") {
        wrapper = document.createElement("span");
        wrapper.className = "spoiler";
        wrapper.addEventListener("click", () => wrapper.classList.add("open"));
      }
      if (wrapper) { wrapper.append(node); node = wrapper; }
    }
    fragment.append(node);
  }
  return fragment;
}

function media(message) {
  const url = message.file_url;
  if (!url) {
    if (message.kind === "location") return "📍 Locatie gedeeld";
    if (message.kind === "contact") return "👤 Contact gedeeld";
    if (message.kind === "poll") return "📊 Peiling";
    return null;
  }
  if (message.kind === "photo" || message.kind === "sticker") {
    const image = document.createElement("img");
    image.src = url;
    image.alt = message.kind === "photo" ? (message.caption || "Foto") : "Sticker";
    if (message.kind === "sticker") image.className = "sticker";
    return image;
  }
  const link = document.createElement("a");
  link.href = url;
  link.target = "_blank";
  link.rel = "noopener";
  const icons = {voice: "🎤", video: "🎬", audio: "🎵", animation: "🎞️"};
  link.textContent = `${icons[message.kind] || "📄"} ${message.file_name || message.kind}`;
  return link;
}

function render(message) {
  if (message.kind === "callback_answer") {
    if (message.text) toast(message.text, message.show_alert);
    return;
  }
  const old = view.nodes.get(message.key);
  if (message.deleted) {
    if (old) old.remove();
    view.nodes.delete(message.key);
    return;
  }
  const item = document.createElement("div");
  item.className = `msg ${message.from_bot ? "bot" : "me"}`;
  item.dataset.messageId = message.message_id;
  const bubble = document.createElement("div");
  bubble.className = "bubble";
  const attachment = media(message);
  if (attachment) bubble.append(attachment);
  const body = message.text ?? message.caption;
  if (body) {
    const text = document.createElement("span");
    text.className = "text";
    text.append(formatted(body, message.text ? message.entities : message.caption_entities));
    bubble.append(text);
  }
  const meta = document.createElement("span");
  meta.className = "meta";
  meta.textContent = (message.edited ? "bewerkt " : "") + time(message.date);
  bubble.append(meta);
  item.append(bubble);
  if (message.buttons && message.buttons.length) {
    const grid = document.createElement("div");
    grid.className = "inline";
    grid.setAttribute("role", "group");
    grid.setAttribute("aria-label", "Knoppen bij dit bericht");
    for (const row of message.buttons) {
      const line = document.createElement("div");
      line.className = "row";
      for (const button of row) line.append(inlineButton(message, button));
      grid.append(line);
    }
    item.append(grid);
  }
  if (old) old.replaceWith(item); else $("messages").append(item);
  view.nodes.set(message.key, item);
  const list = $("messages");
  list.scrollTop = list.scrollHeight;
}

function inlineButton(message, button) {
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = button.text;
  element.addEventListener("click", async () => {
    if (button.url) { window.open(button.url, "_blank", "noopener"); return; }
    element.disabled = true;
    try {
      await api("/sandbox/api/press", {
        user_id: view.user.id, message_id: message.message_id, callback_data: button.callback_data,
      });
    } finally { element.disabled = false; }
  });
  return element;
}

function renderKeyboard(rows) {
  const board = $("keyboard");
  const signature = JSON.stringify(rows);
  if (board.dataset.signature === signature) return;
  board.dataset.signature = signature;
  board.replaceChildren();
  board.hidden = !rows || rows.length === 0;
  for (const row of rows || []) {
    const line = document.createElement("div");
    line.className = "row";
    for (const label of row) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = label;
      button.addEventListener("click", () => sendText(label));
      line.append(button);
    }
    board.append(line);
  }
}

function showTyping(action, seconds) {
  clearTimeout(view.typingTimer);
  const status = $("status");
  if (!action) { status.textContent = "bot"; return; }
  status.textContent = action === "typing" ? "typt…" : "is bezig…";
  view.typingTimer = setTimeout(() => { status.textContent = "bot"; }, seconds * 1000);
}

function toast(text, alert) {
  if (alert) { window.alert(text); return; }
  const box = $("toast");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(view.toastTimer);
  view.toastTimer = setTimeout(() => { box.hidden = true; }, 2500);
}

// ---------------------------------------------------------------- boot

(async function boot() {
  const match = location.hash.match(/u=(\d+)/);
  if (match) {
    const {users} = await api("/sandbox/api/users");
    const user = users.find((u) => String(u.id) === match[1]);
    if (user) { await openChat(user); return; }
  }
  await loadUsers();
})();
