// The inbox: conversations with filters, live updates, the whole history of one conversation,
// take over / hand back / resolve, agent replies, notes, labels, assignment, cart and orders.
import { api, get } from "./api.js";
import { can, onLive } from "./app.js";
import { money, t, when } from "./i18n.js";
import { button, empty, field, h, input, select, showError, toast } from "./ui.js";

const unread = new Map(JSON.parse(sessionStorage.getItem("kaleem:unread") || "[]"));

function saveUnread() {
  sessionStorage.setItem("kaleem:unread", JSON.stringify([...unread]));
  const badge = document.getElementById("unread-badge");
  const total = [...unread.values()].reduce((a, b) => a + b, 0);
  if (badge) { badge.hidden = total === 0; badge.textContent = String(total); badge.setAttribute("aria-label", `${total} ${t("unread")}`); }
}

export async function mount(root, [openId]) {
  const filters = { channel: "", status: "", assignee: "", label: "", q: "" };
  const items = new Map();
  let selected = openId || null;
  let cursor = null;

  const [channels, users] = await Promise.all([
    get("/channels").catch(() => ({ channels: [] })),
    get("/users", { limit: 100 }).catch(() => ({ items: [] })),
  ]);
  const channelOptions = [["", t("all")], ["webchat", "webchat"], ...channels.channels.map((c) => [c.id, `${c.kind} · ${c.id}`])];
  const userOptions = [["", t("all")], ...users.items.map((u) => [u.id, u.email])];
  users.items.forEach((u) => emails.set(u.id, u.email));

  const filterForm = h("form", { class: "filters", role: "search", onsubmit: (e) => { e.preventDefault(); reload(); } },
    field(t("channel"), select("channel", channelOptions, "")),
    field(t("status"), select("status", [["", t("all")], ["open", t("open")], ["pending", t("pending")], ["resolved", t("resolved")]], "")),
    field(t("assignee"), select("assignee", userOptions, "")),
    field(t("label"), input("label", { maxlength: 64 })),
    field(t("search"), input("q", { type: "search", maxlength: 200 })),
    h("button", { type: "submit" }, t("search")));
  filterForm.addEventListener("change", () => reload());
  const list = h("ul", { class: "conv-list", "aria-label": t("conversations") });
  const more = button(t("loadMore"), () => loadPage(), { class: "secondary", hidden: true });
  const pane = h("div", { class: "conv-pane" }, h("p", { class: "empty" }, t("noConversation")));
  root.append(h("div", { class: "inbox" }, h("div", { class: "conv-col" }, filterForm, list, more), pane));

  function row(c) {
    const n = unread.get(c.id) || 0;
    const handoff = c.status === "pending" && !c.paused;
    return h("li", { class: `conv ${c.id === selected ? "active" : ""} ${handoff ? "handoff" : ""}`, "data-id": c.id },
      h("a", { href: `#/inbox/${c.id}` },
        h("span", { class: "conv-top" },
          h("strong", {}, c.customer_id), h("small", { class: "chan" }, c.channel_id),
          n ? h("span", { class: "badge", "aria-label": `${n} ${t("unread")}` }, n) : null),
        h("span", { class: "conv-text", dir: "auto" }, c.last_text || ""),
        h("span", { class: "conv-meta" },
          handoff ? h("span", { class: "tag warn" }, t("handoff")) : null,
          c.paused ? h("span", { class: "tag" }, t("agent")) : null,
          h("span", { class: `tag st-${c.status}` }, t(c.status)),
          c.labels.map((l) => h("span", { class: "tag label" }, l)),
          h("time", {}, when(c.last_message_at)))));
  }
  function draw() {
    const sorted = [...items.values()].sort((a, b) => (b.last_message_at || 0) - (a.last_message_at || 0));
    list.replaceChildren(...(sorted.length ? sorted.map(row) : [h("li", {}, empty())]));
  }
  async function loadPage() {
    const page = await get("/conversations", { ...filters, limit: 30, cursor });
    page.items.forEach((c) => items.set(c.id, c));
    cursor = page.next_cursor;
    more.hidden = !cursor;
    draw();
  }
  async function reload() {
    Object.assign(filters, Object.fromEntries(new FormData(filterForm)));
    items.clear();
    cursor = null;
    await loadPage();
  }
  function matches(c) {
    return (!filters.channel || c.channel_id === filters.channel) && (!filters.status || c.status === filters.status) &&
      (!filters.assignee || c.assignee === filters.assignee) && (!filters.label || c.labels.includes(filters.label));
  }

  // -- one conversation ------------------------------------------------------------------
  let view = null;
  async function openConversation(id) {
    selected = id;
    unread.delete(id);
    saveUnread();
    draw();
    view = await conversationView(id, (c) => { items.set(c.id, c); draw(); });
    pane.replaceChildren(view.node);
  }

  const off = onLive(async ({ type, data }) => {
    if (!data) return;
    if (type === "conversation.updated") {
      if (matches(data)) items.set(data.id, data); else items.delete(data.id);
      draw();
    } else if (type === "message.created") {
      const c = items.get(data.conversation_id);
      if (c) {
        c.last_text = data.text; c.last_message_at = data.at; c.message_count += 1;
        if (data.handoff) c.status = "pending";
      } else if (!filters.q) {
        try { const fresh = await get(`/conversations/${data.conversation_id}`); if (matches(fresh)) items.set(fresh.id, fresh); } catch { /* gone */ }
      }
      if (data.conversation_id !== selected && data.direction === "in") {
        unread.set(data.conversation_id, (unread.get(data.conversation_id) || 0) + 1);
        saveUnread();
      }
      draw();
    }
    if (view && data.conversation_id === selected) view.live(type, data);
  });

  await reload();
  saveUnread();
  if (selected) await openConversation(selected);
  return {
    leave() { off(); },
    route([id]) { if (id) openConversation(id); },
  };
}

const emails = new Map();

function messageNode(m) {
  const author = emails.get(m.author) || m.author || "";
  const who = m.direction === "in" ? t("customer") : m.intent === "agent" ? `${t("agent")} · ${author}` : t("bot");
  return h("li", {
    class: `msg ${m.direction === "in" ? "in" : "out"} ${m.intent === "agent" ? "agent" : ""} ${m.handoff ? "handoff" : ""}`,
    "data-id": m.id,
  },
  h("span", { class: "msg-who" }, who, m.handoff ? h("span", { class: "tag warn" }, t("handoff")) : null,
    m.answered === false ? h("span", { class: "tag" }, t("notAnswered")) : null),
  h("p", { dir: "auto" }, m.text),
  m.products && m.products.length ? h("ul", { class: "shown" }, m.products.map((p) =>
    h("li", {}, h("span", { dir: "auto" }, p.title || p.sku), " ", h("span", { class: "num" }, money(p.price, p.currency))))) : null,
  h("time", {}, when(m.at)));
}

async function conversationView(id, onUpdate) {
  const base = `/conversations/${id}`;
  let conv = await get(base);
  const seen = new Set();
  const log = h("ol", { class: "messages", "aria-label": t("messages"), "aria-live": "polite" });
  let older = null;
  const earlier = button(t("loadMore"), () => loadMessages(older, true), { class: "secondary", hidden: true });

  async function loadMessages(cursor, prepend) {
    const page = await get(`${base}/messages`, { limit: 100, cursor });
    const nodes = page.items.filter((m) => !seen.has(m.id)).reverse().map((m) => { seen.add(m.id); return messageNode(m); });
    if (prepend) log.prepend(...nodes); else log.append(...nodes);
    older = page.next_cursor;
    earlier.hidden = !older;
    if (!prepend) log.scrollTop = log.scrollHeight;
  }
  function add(m) {
    if (seen.has(m.id)) return;
    seen.add(m.id);
    log.append(messageNode(m));
    log.scrollTop = log.scrollHeight;
  }

  const header = h("div", { class: "conv-head" });
  function drawHeader() {
    const actions = [];
    if (can("agent")) {
      if (conv.paused) actions.push(button(t("handback"), () => act("handback")));
      else actions.push(button(t("takeover"), () => act("takeover"), { class: "primary" }));
      if (conv.status !== "resolved") actions.push(button(t("resolve"), () => act("resolve")));
    }
    header.replaceChildren(...[
      h("h2", {}, conv.customer_id, " ", h("small", {}, conv.channel_id)),
      conv.paused ? h("p", { class: "notice", role: "status" }, t("botPaused")) : null,
      conv.status === "pending" && !conv.paused ? h("p", { class: "notice warn", role: "status" }, t("handoff")) : null,
      h("div", { class: "actions" }, actions)].filter(Boolean));
  }
  async function act(what) {
    try { conv = await api("POST", `${base}/${what}`); drawHeader(); drawSide(); onUpdate(conv); } catch (err) { toast(err.message); }
  }

  const replyForm = h("form", { class: "reply" },
    field(t("reply"), h("textarea", { name: "text", rows: 2, maxlength: 4096, required: true, dir: "auto" })),
    h("button", { type: "submit", class: "primary" }, t("send")));
  replyForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = replyForm.text.value.trim();
    if (!text) return;
    try { add(await api("POST", `${base}/messages`, { text })); replyForm.reset(); } catch (err) { showError(replyForm, err); }
  });
  replyForm.text.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) replyForm.requestSubmit(); });

  // -- the side: assignment, labels, cart, orders, notes ----------------------------------
  const side = h("aside", { class: "conv-side", "aria-label": t("customer") });
  const users = await get("/users", { limit: 100 }).catch(() => ({ items: [] }));
  const cartBox = h("div", { class: "cart" });
  const ordersBox = h("div", { class: "orders" });
  const notesList = h("ul", { class: "notes" });

  async function drawCart(cart) {
    cart = cart || await get(`${base}/cart`).catch(() => null);
    if (!cart || !cart.items.length) { cartBox.replaceChildren(h("h3", {}, t("cart")), h("p", { class: "empty" }, t("emptyCart"))); return; }
    cartBox.replaceChildren(h("h3", {}, t("cart")),
      h("ul", {}, cart.items.map((i) => h("li", {}, `${i.qty} × ${i.title}`, " ", h("span", { class: "num" }, money(i.line_total, i.currency))))),
      h("p", {}, h("strong", {}, `${t("total")}: ${money(cart.total, cart.currency)}`)));
  }
  async function drawOrders() {
    const page = await get("/orders", { conversation: id, limit: 10 }).catch(() => ({ items: [] }));
    ordersBox.replaceChildren(h("h3", {}, t("ordersOf")),
      page.items.length ? h("ul", {}, page.items.map((o) => h("li", {}, h("a", { href: "#/orders" }, o.id), ` · ${t(o.status) || o.status} · ${money(o.total, o.currency)}`))) : h("p", { class: "empty" }, t("none")));
  }
  async function drawNotes() {
    const notes = await get(`${base}/notes`);
    notesList.replaceChildren(...notes.items.map(noteNode));
  }
  function noteNode(n) { return h("li", {}, h("p", { dir: "auto" }, n.text), h("small", {}, `${n.author} · ${when(n.at)}`)); }

  function drawSide() {
    const editable = can("agent");
    const assign = select("assignee", [["", "—"], ...users.items.map((u) => [u.id, u.email])], conv.assignee || "", { disabled: !editable });
    assign.addEventListener("change", async () => {
      try { conv = await api("PATCH", base, { assignee: assign.value || null }); onUpdate(conv); toast(t("saved")); } catch (err) { toast(err.message); }
    });
    const labels = input("labels", { value: conv.labels.join(", "), disabled: !editable, placeholder: "vip, refund" });
    const labelForm = h("form", { class: "inline" }, field(t("labels"), labels), editable ? h("button", { type: "submit" }, t("save")) : null);
    labelForm.addEventListener("submit", async (e) => {
      e.preventDefault();
      const list = labels.value.split(",").map((s) => s.trim()).filter(Boolean);
      try { conv = await api("PATCH", base, { labels: list }); onUpdate(conv); toast(t("saved")); } catch (err) { showError(labelForm, err); }
    });
    const noteForm = h("form", { class: "note-form" },
      field(t("addNote"), h("textarea", { name: "text", rows: 2, maxlength: 4000, required: true })),
      h("button", { type: "submit" }, t("addNote")));
    noteForm.addEventListener("submit", async (e) => {
      e.preventDefault();
      try { const n = await api("POST", `${base}/notes`, { text: noteForm.text.value }); noteForm.reset(); if (!notesList.querySelector(`[data-note="${n.id}"]`)) notesList.append(noteNode(n)); } catch (err) { showError(noteForm, err); }
    });
    side.replaceChildren(...[field(t("assign"), assign), labelForm, cartBox, ordersBox,
      h("h3", {}, t("notes")), notesList, editable ? noteForm : null].filter(Boolean));
  }

  drawHeader();
  drawSide();
  await Promise.all([loadMessages(null, false), drawCart(), drawOrders(), drawNotes()]);
  const node = h("div", { class: "conversation" },
    h("div", { class: "thread" }, header, earlier, log, can("agent") ? replyForm : null), side);
  return {
    node,
    live(type, data) {
      if (type === "message.created") add(data);
      else if (type === "conversation.updated") { conv = data; drawHeader(); }
      else if (type === "note.created") notesList.append(noteNode(data));
      else if (type === "cart.updated") drawCart(data);
      if (type === "cart.updated" || (type === "message.created" && data.intent === "checkout")) drawOrders();
    },
  };
}
