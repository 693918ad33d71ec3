// The console's shell: sign-in screens, the navigation, the router (#/screen) and the live
// socket every screen can listen to. Screens are ES modules loaded when first opened, so the
// first paint on a slow phone only downloads the shell.
import * as API from "./api.js";
import { applyDirection, language, setLanguage, t } from "./i18n.js";
import { clearError, field, h, input, select, showError } from "./ui.js";

const SCREENS = {
  inbox: "./inbox.js", catalog: "./catalog.js", knowledge: "./knowledge.js",
  orders: "./orders.js", channels: "./channels.js", analytics: "./analytics.js",
  team: "./team.js", settings: "./settings.js",
};
const ROLE_RANK = { viewer: 0, agent: 1, admin: 2, owner: 3 };

export const session = { me: null, merchant: null, liveUp: false };
const liveListeners = new Set();
let stopLive = null;
let current = null;
let currentName = "";

/** Whether the signed-in user may do what needs ``role`` (the API still decides). */
export function can(role) { return session.me && ROLE_RANK[session.me.role] >= ROLE_RANK[role]; }
export function onLive(fn) { liveListeners.add(fn); return () => liveListeners.delete(fn); }

const main = () => document.getElementById("main");

function authScreen(mode) {
  const form = h("form", { class: "card auth", novalidate: true });
  const title = { login: t("login"), signup: t("signup"), invite: t("acceptInvite") }[mode];
  form.append(h("h1", {}, title));
  if (mode === "signup") form.append(field(t("store"), input("merchant_name", { required: true, maxlength: 200, autocomplete: "organization" })));
  if (mode === "invite") form.append(field(t("inviteToken"), input("invite_token", { required: true })));
  if (mode !== "invite") form.append(field(t("email"), input("email", { type: "email", required: true, autocomplete: "email" })));
  form.append(field(t("password"), input("password", { type: "password", required: true, minlength: mode === "login" ? 1 : 8, autocomplete: mode === "login" ? "current-password" : "new-password" })));
  if (mode === "signup") form.append(field(t("language"), select("default_language", [["ar", "العربية"], ["en", "English"]], language())));
  form.append(h("button", { type: "submit", class: "primary" }, title));
  const links = h("p", { class: "links" });
  if (mode !== "login") links.append(h("a", { href: "#/login" }, t("haveAccount")));
  if (mode !== "signup") links.append(h("a", { href: "#/signup" }, t("newAccount")));
  if (mode !== "invite") links.append(h("a", { href: "#/invite" }, t("acceptInvite")));
  form.append(links);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearError(form);
    const d = Object.fromEntries(new FormData(form));
    try {
      if (mode === "login") await API.login(d.email, d.password);
      else if (mode === "signup") await API.signup(d.merchant_name, d.email, d.password, d.default_language);
      else await API.acceptInvite(d.invite_token, d.password);
      location.hash = "#/inbox";
    } catch (err) { showError(form, err); }
  });
  main().replaceChildren(h("div", { class: "center" }, form));
  form.querySelector("input").focus();
}

function nav(active) {
  const links = Object.keys(SCREENS).map((name) =>
    h("li", {}, h("a", { href: `#/${name}`, "aria-current": name === active ? "page" : false }, t(name),
      name === "inbox" ? h("span", { class: "badge", id: "unread-badge", hidden: true }) : null)));
  const langBtn = h("button", { type: "button", class: "link", onclick: () => { setLanguage(language() === "ar" ? "en" : "ar"); render(); } },
    language() === "ar" ? "English" : "العربية");
  const out = h("button", { type: "button", class: "link", onclick: async () => { await API.logout(); location.hash = "#/login"; } }, t("logout"));
  const who = session.me ? h("span", { class: "who" }, `${session.me.email} · ${session.me.role}`) : null;
  const dot = h("span", { class: `live ${session.liveUp ? "up" : ""}`, id: "live-dot", role: "status" }, session.liveUp ? t("live") : t("offline"));
  document.getElementById("nav").replaceChildren(
    h("strong", { class: "brand" }, session.merchant ? session.merchant.name : t("app")),
    h("nav", { "aria-label": t("app") }, h("ul", {}, links)),
    h("div", { class: "tools" }, dot, who, langBtn, out));
}

async function loadSession() {
  if (session.me) return;
  const [me, merchant] = await Promise.all([API.get("/auth/me"), API.get("/merchant")]);
  session.me = me;
  session.merchant = merchant;
  if (!stopLive) {
    stopLive = API.live(
      (frame) => liveListeners.forEach((fn) => fn(frame)),
      (up) => {
        session.liveUp = up;
        const dot = document.getElementById("live-dot");
        if (dot) { dot.className = `live ${up ? "up" : ""}`; dot.textContent = up ? t("live") : t("offline"); }
      });
  }
}

async function render() {
  applyDirection();
  document.title = t("app");
  const [name, ...rest] = (location.hash.replace(/^#\/?/, "") || "inbox").split("/");
  if (["login", "signup", "invite"].includes(name)) {
    document.getElementById("nav").replaceChildren();
    currentName = "";
    return authScreen(name);
  }
  if (!API.signedIn()) { location.hash = "#/login"; return; }
  try { await loadSession(); } catch (err) {
    if (err.status === 401) { location.hash = "#/login"; return; }
    main().replaceChildren(h("p", { class: "form-error", role: "alert" }, err.message));
    return;
  }
  const screen = SCREENS[name] ? name : "inbox";
  if (screen === currentName && current && current.route && document.querySelector(`.screen-${screen}`)) {
    current.route(rest);
    return;
  }
  nav(screen);
  if (current && current.leave) current.leave();
  const module = await import(SCREENS[screen]);
  const root = h("section", { class: `screen screen-${screen}`, "aria-labelledby": "screen-title" },
    h("h1", { id: "screen-title" }, t(screen)));
  if (session.me && session.me.role === "viewer") root.append(h("p", { class: "notice" }, t("readOnly")));
  main().replaceChildren(root);
  currentName = screen;
  current = await module.mount(root, rest) || null;
}

API.onSessionChange((inside) => {
  if (!inside) {
    session.me = null; session.merchant = null;
    if (stopLive) { stopLive(); stopLive = null; }
    if (!["#/login", "#/signup", "#/invite"].includes(location.hash)) location.hash = "#/login";
  }
});
window.addEventListener("hashchange", render);
render();
