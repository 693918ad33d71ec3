// Team: users and their roles, invitations, API keys (shown once).
import { api, get } from "./api.js";
import { can, session } from "./app.js";
import { t, when } from "./i18n.js";
import { button, dialog, empty, field, h, input, select, showError, table, toast } from "./ui.js";

const ROLES = ["owner", "admin", "agent", "viewer"];

export async function mount(root) {
  const manage = can("admin");
  const users = h("div");
  const keys = h("div");

  async function loadUsers() {
    const page = await get("/users", { limit: 100 });
    users.replaceChildren(table([t("email"), t("role"), t("status"), t("created"), ""], page.items.map((u) => {
      let role = u.role;
      if (manage && u.id !== session.me.id) {
        role = select("role", ROLES.filter((r) => r !== "owner" || can("owner")).map((r) => [r, r]), u.role, { "aria-label": `${t("role")} ${u.email}` });
        role.addEventListener("change", async () => {
          try { await api("PATCH", `/users/${u.id}`, { role: role.value }); toast(t("saved")); } catch (err) { role.value = u.role; toast(err.message); }
        });
      }
      return [u.email, role, u.status, when(u.created_at),
        manage && u.id !== session.me.id ? button(t("delete"), async () => { await api("DELETE", `/users/${u.id}`); loadUsers(); }, { class: "danger" }) : ""];
    }), t("users")));
  }
  async function loadKeys() {
    if (!manage) return;
    const page = await get("/api-keys", { limit: 100 });
    keys.replaceChildren(page.items.length ? table([t("name"), t("role"), "", t("created"), ""], page.items.map((k) =>
      [k.name, k.role, h("code", {}, k.masked), when(k.created_at),
        k.revoked ? "✗" : button(t("revoke"), async () => { await api("DELETE", `/api-keys/${k.id}`); loadKeys(); }, { class: "danger" })]), t("apiKeys")) : empty());
  }

  root.append(h("section", { class: "card" }, h("h2", {}, t("users")), users));
  if (manage) {
    const invite = h("form", { class: "inline" },
      field(t("email"), input("email", { type: "email", required: true })),
      field(t("role"), select("role", ROLES.filter((r) => r !== "owner" || can("owner")).map((r) => [r, r]), "agent")),
      h("button", { type: "submit", class: "primary" }, t("invite")));
    invite.addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        const out = await api("POST", "/users", Object.fromEntries(new FormData(invite)));
        invite.reset();
        dialog(t("invite"), field(t("inviteToken"), input("invite_token", { value: out.invite_token, readonly: true })));
        loadUsers();
      } catch (err) { showError(invite, err); }
    });
    const newKey = h("form", { class: "inline" },
      field(t("name"), input("name", { required: true, maxlength: 200 })),
      field(t("role"), select("role", [["admin", "admin"], ["agent", "agent"], ["viewer", "viewer"]], "viewer")),
      h("button", { type: "submit", class: "primary" }, t("create")));
    newKey.addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        const out = await api("POST", "/api-keys", Object.fromEntries(new FormData(newKey)));
        newKey.reset();
        dialog(t("apiKeys"), field(t("keyShown"), input("api_key", { value: out.api_key, readonly: true })));
        loadKeys();
      } catch (err) { showError(newKey, err); }
    });
    root.append(h("section", { class: "card" }, h("h2", {}, t("invite")), invite),
      h("section", { class: "card" }, h("h2", {}, t("apiKeys")), newKey, keys));
  }
  await Promise.all([loadUsers(), loadKeys()]);
}
