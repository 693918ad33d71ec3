/* Kaleem webchat widget. One <script src=".../webchat/widget.js" data-merchant="m_..." async>
 * on any page opens a chat bubble. No dependencies, no build step: it must stay small for slow
 * phones and must not collide with the host page (everything lives in a shadow root).
 *
 * Who the customer is comes from a session token the engine signs (POST .../session); it is
 * kept in localStorage and renewed on every visit, so a reload or a second tab is the same
 * conversation. The socket sends the history when it opens; messages not yet acknowledged are
 * kept and re-sent with the same id after a reconnect (the engine drops the repeat), and every
 * message is keyed by id, so nothing is lost or shown twice.
 */
(function () {
  "use strict";
  var script = document.currentScript ||
    document.querySelector('script[data-merchant][src*="/webchat/widget.js"]');
  if (!script || window.__kaleemWidget) return;
  window.__kaleemWidget = true;
  var base = new URL(script.src, location.href).origin;
  var merchant = script.getAttribute("data-merchant") || "";
  var fullPage = script.getAttribute("data-mode") === "page";
  var storeKey = "kaleem:webchat:" + merchant;
  var pendingKey = storeKey + ":pending";

  var TEXT = {
    ar: {
      open: "افتح المحادثة", close: "أغلق المحادثة", send: "إرسال", input: "اكتب رسالتك",
      greeting: "أهلاً! كيف أقدر أساعدك؟", typing: "يكتب…", offline: "جارٍ إعادة الاتصال…",
      add: "أضف إلى السلة", view: "عرض", addText: function (n) { return "أضف رقم " + n + " إلى السلة"; },
      quick: ["وش المنتجات المتوفرة؟", "سياسة الشحن", "أبي أكلم موظف"],
      after: ["عرض السلة", "أكمل الطلب"], agent: "موظف", failed: "لم تُرسل، سنعيد المحاولة",
      chat: "المحادثة"
    },
    en: {
      open: "Open chat", close: "Close chat", send: "Send", input: "Type a message",
      greeting: "Hi! How can I help?", typing: "typing…", offline: "Reconnecting…",
      add: "Add to cart", view: "View", addText: function (n) { return "Add #" + n + " to my cart"; },
      quick: ["What products do you have?", "Shipping policy", "Talk to a human"],
      after: ["View my cart", "Checkout"], agent: "Agent", failed: "Not sent yet, retrying",
      chat: "Chat"
    }
  };

  var state = {
    token: "", lang: "en", t: TEXT.en, ws: null, attempts: 0, seen: {}, pending: [],
    typingTimer: 0, open: fullPage, latestCards: null, profile: null
  };

  function load(key, fallback) {
    try { var v = localStorage.getItem(key); return v ? JSON.parse(v) : fallback; } catch (e) { return fallback; }
  }
  function save(key, value) {
    try { localStorage.setItem(key, JSON.stringify(value)); } catch (e) { /* private mode */ }
  }
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var k in attrs || {}) node.setAttribute(k, attrs[k]);
    if (text != null) node.textContent = text;
    return node;
  }
  function newId() {
    var b = new Uint8Array(8); crypto.getRandomValues(b);
    return Date.now().toString(36) + Array.prototype.map.call(b, function (x) { return ("0" + x.toString(16)).slice(-2); }).join("");
  }

  // -- the DOM, inside a shadow root ------------------------------------------------------
  var host = el("div", { id: "kaleem-chat" });
  var root = host.attachShadow({ mode: "open" });
  root.appendChild(el("link", { rel: "stylesheet", href: base + "/webchat/widget.css" }));
  var box = el("section", { class: "kc-box" + (fullPage ? " kc-page" : ""), role: "dialog", "aria-label": "Chat" });
  var header = el("header", { class: "kc-head" });
  var title = el("h2", { class: "kc-title" }, "");
  var status = el("span", { class: "kc-status", role: "status" }, "");
  var closeBtn = el("button", { class: "kc-close", type: "button" }, "×");
  header.append(title, status);
  if (!fullPage) header.appendChild(closeBtn);
  var log = el("ol", { class: "kc-log", "aria-live": "polite" });
  var typing = el("div", { class: "kc-typing", hidden: "" });
  typing.append(el("span"), el("span"), el("span"));
  var quick = el("div", { class: "kc-quick" });
  var form = el("form", { class: "kc-form" });
  var input = el("textarea", { class: "kc-input", rows: "1", maxlength: "4096", dir: "auto", id: "kc-input" });
  var label = el("label", { for: "kc-input", class: "kc-sr" }, "");
  var sendBtn = el("button", { class: "kc-send", type: "submit" }, "➤");
  form.append(label, input, sendBtn);
  box.append(header, log, typing, quick, form);
  var bubble = el("button", { class: "kc-bubble", type: "button", "aria-expanded": "false" });
  var NS = "http://www.w3.org/2000/svg";
  var icon = document.createElementNS(NS, "svg");
  icon.setAttribute("viewBox", "0 0 24 24");
  icon.setAttribute("aria-hidden", "true");
  var path = document.createElementNS(NS, "path");
  path.setAttribute("d", "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z");
  path.setAttribute("fill", "currentColor");
  icon.appendChild(path);
  bubble.appendChild(icon);
  root.append(box, bubble);
  if (fullPage) bubble.hidden = true; else box.hidden = true;

  function setOpen(open) {
    state.open = open;
    box.hidden = !open;
    bubble.setAttribute("aria-expanded", String(open));
    if (open) { input.focus(); log.scrollTop = log.scrollHeight; }
  }
  bubble.addEventListener("click", function () { setOpen(!state.open); });
  closeBtn.addEventListener("click", function () { setOpen(false); bubble.focus(); });
  box.addEventListener("keydown", function (e) { if (e.key === "Escape" && !fullPage) { setOpen(false); bubble.focus(); } });

  function applyLanguage(lang) {
    state.lang = lang === "ar" ? "ar" : "en";
    state.t = TEXT[state.lang];
    box.setAttribute("dir", state.lang === "ar" ? "rtl" : "ltr");
    box.setAttribute("lang", state.lang);
    input.setAttribute("placeholder", state.t.input);
    label.textContent = state.t.input;
    sendBtn.setAttribute("aria-label", state.t.send);
    closeBtn.setAttribute("aria-label", state.t.close);
    bubble.setAttribute("aria-label", state.t.open);
    typing.setAttribute("aria-label", state.t.typing);
  }

  // -- rendering ---------------------------------------------------------------------------
  function price(p) {
    if (p.price == null) return "";
    try {
      return new Intl.NumberFormat(state.lang === "ar" ? "ar-SA" : "en", p.currency ? { style: "currency", currency: p.currency } : {}).format(p.price);
    } catch (e) { return p.price + " " + (p.currency || ""); }
  }
  function cards(products) {
    var list = el("ul", { class: "kc-cards" });
    products.forEach(function (p, i) {
      var card = el("li", { class: "kc-card" });
      if (p.image_url && /^https?:/.test(p.image_url)) {
        var img = el("img", { src: p.image_url, alt: "", loading: "lazy", class: "kc-img" });
        img.addEventListener("error", function () { img.remove(); });
        card.appendChild(img);
      }
      card.appendChild(el("span", { class: "kc-card-title" }, p.title || p.sku));
      if (p.price != null) card.appendChild(el("span", { class: "kc-price" }, price(p)));
      var actions = el("span", { class: "kc-actions" });
      var add = el("button", { type: "button", class: "kc-add", "data-sku": p.sku || "" }, state.t.add);
      add.setAttribute("aria-label", state.t.add + ": " + (p.title || p.sku));
      add.addEventListener("click", function () { send(state.t.addText(i + 1)); });
      actions.appendChild(add);
      if (p.url && /^https?:/.test(p.url)) {
        actions.appendChild(el("a", { href: p.url, target: "_blank", rel: "noopener", class: "kc-link" }, state.t.view));
      }
      card.appendChild(actions);
      list.appendChild(card);
    });
    // The bot resolves "number N" against the products it showed last, so only the newest
    // list's buttons stay live.
    if (state.latestCards) state.latestCards.querySelectorAll(".kc-add").forEach(function (b) { b.disabled = true; });
    state.latestCards = list;
    return list;
  }
  function render(m) {
    if (m.id && state.seen[m.id]) return state.seen[m.id];
    var mine = m.direction === "in";
    var item = el("li", { class: "kc-msg " + (mine ? "kc-me" : "kc-bot") + (m.intent === "agent" ? " kc-agent" : "") });
    if (m.intent === "agent") item.appendChild(el("span", { class: "kc-who" }, state.t.agent));
    item.appendChild(el("p", { class: "kc-text", dir: "auto" }, m.text));
    if (!mine && m.products && m.products.length) item.appendChild(cards(m.products));
    if (m.pending) item.classList.add("kc-pending");
    log.appendChild(item);
    if (m.id) state.seen[m.id] = item;
    log.scrollTop = log.scrollHeight;
    return item;
  }
  function chips(options) {
    quick.textContent = "";
    options.forEach(function (text) {
      var chip = el("button", { type: "button", class: "kc-chip" }, text);
      chip.addEventListener("click", function () { send(text); });
      quick.appendChild(chip);
    });
  }
  function showTyping(on) {
    clearTimeout(state.typingTimer);
    typing.hidden = !on;
    if (on) state.typingTimer = setTimeout(function () { typing.hidden = true; }, 20000);
  }
  function greet() {
    var g = el("li", { class: "kc-msg kc-bot kc-greeting" });
    g.appendChild(el("p", { class: "kc-text", dir: "auto" }, (state.profile && state.profile.greeting) || state.t.greeting));
    log.appendChild(g);
  }

  // -- messages and the socket ----------------------------------------------------------------
  var tabs = "BroadcastChannel" in window ? new BroadcastChannel(storeKey) : null;
  if (tabs) tabs.onmessage = function (e) {
    if (e.data && e.data.type === "sent") render({ id: e.data.id, direction: "in", text: e.data.text });
  };

  function send(text) {
    text = String(text || "").trim();
    if (!text) return;
    var frame = { type: "message", id: newId(), text: text.slice(0, 4096) };
    state.pending.push(frame);
    save(pendingKey, state.pending);
    render({ id: frame.id, direction: "in", text: frame.text, pending: true });
    quick.textContent = "";
    if (tabs) tabs.postMessage({ type: "sent", id: frame.id, text: frame.text });
    if (state.ws && state.ws.readyState === 1) state.ws.send(JSON.stringify(frame));
  }
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    send(input.value);
    input.value = "";
  });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit ? form.requestSubmit() : form.submit(); }
  });

  function onFrame(m) {
    if (m.type === "history") {
      log.textContent = "";
      state.seen = {};
      state.latestCards = null;
      greet();
      m.messages.forEach(render);
      state.pending.forEach(function (f) { render({ id: f.id, direction: "in", text: f.text, pending: true }); });
      if (!m.messages.length && !state.pending.length) chips(state.t.quick);
      state.pending.forEach(function (f) { state.ws.send(JSON.stringify(f)); });
    } else if (m.type === "ack") {
      state.pending = state.pending.filter(function (f) { return f.id !== m.id; });
      save(pendingKey, state.pending);
      if (state.seen[m.id]) state.seen[m.id].classList.remove("kc-pending");
    } else if (m.type === "typing") {
      // The reply may have overtaken this frame: only a question still waiting shows it.
      var last = log.lastElementChild;
      if (last && last.classList.contains("kc-me")) showTyping(true);
    } else if (m.type === "reply") {
      showTyping(false);
      render({ id: m.id, direction: "out", text: m.text, products: m.products, intent: m.intent });
      if (m.products && m.products.length) chips(state.t.after);
    } else if (m.type === "error" && m.id && state.seen[m.id]) {
      state.seen[m.id].setAttribute("title", state.t.failed);
      if (m.code !== "rate_limited") {  // a refused frame would be refused again: drop it
        state.pending = state.pending.filter(function (f) { return f.id !== m.id; });
        save(pendingKey, state.pending);
      }
    }
  }

  function session() {
    var saved = load(storeKey, {});
    return fetch(base + "/webchat/" + encodeURIComponent(merchant) + "/session", {
      method: "POST", headers: { "Content-Type": "application/json" }, credentials: "omit",
      body: JSON.stringify(saved.token ? { token: saved.token } : {})
    }).then(function (r) {
      if (!r.ok) throw new Error("session " + r.status);
      return r.json();
    }).then(function (s) {
      state.token = s.token;
      state.profile = s.merchant;
      save(storeKey, { token: s.token });
      title.textContent = s.merchant.name;
      box.style.setProperty("--kc-color", s.merchant.color);
      bubble.style.setProperty("--kc-color", s.merchant.color);
      var pageLang = (script.getAttribute("data-lang") || document.documentElement.lang || "").slice(0, 2);
      applyLanguage(pageLang === "ar" || pageLang === "en" ? pageLang : s.merchant.language);
    });
  }

  function connect() {
    var url = base.replace(/^http/, "ws") + "/ws/webchat/" + encodeURIComponent(merchant) + "?token=" + encodeURIComponent(state.token);
    var ws = new WebSocket(url);
    var opened = false;
    state.ws = ws;
    ws.onopen = function () { opened = true; state.attempts = 0; status.textContent = ""; box.classList.remove("kc-offline"); };
    ws.onmessage = function (e) { try { onFrame(JSON.parse(e.data)); } catch (err) { /* a frame we do not know */ } };
    ws.onclose = function () {
      status.textContent = state.t.offline;
      box.classList.add("kc-offline");
      state.attempts += 1;
      var wait = Math.min(15000, 500 * Math.pow(2, state.attempts));
      // A socket refused before it opened may mean the session expired: renew it first.
      setTimeout(function () { (opened ? Promise.resolve() : session()).then(connect, function () { setTimeout(connect, wait); }); }, wait);
    };
  }

  function start() {
    applyLanguage(document.documentElement.lang === "ar" ? "ar" : "en");
    state.pending = load(pendingKey, []);
    document.body.appendChild(host);
    session().then(connect, function () { status.textContent = state.t.offline; setTimeout(start2, 3000); });
    function start2() { session().then(connect, function () { setTimeout(start2, 10000); }); }
  }
  if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
})();
