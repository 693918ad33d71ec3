// Knowledge: the documents the bot quotes, their import, and the questions it could not
// answer — one click from a gap opens a new document with the question as its title.
import { api, get } from "./api.js";
import { can } from "./app.js";
import { t, when } from "./i18n.js";
import { importForm } from "./jobs.js";
import { button, dialog, empty, field, h, input, select, showError, table, toast } from "./ui.js";

export async function mount(root) {
  const editable = can("admin");
  const docs = h("div");
  const gaps = h("div");

  async function loadDocs() {
    const page = await get("/knowledge", { limit: 100 });
    docs.replaceChildren(page.items.length ? table([t("title"), t("language"), ""],
      page.items.map((d) => [h("span", { dir: "auto" }, d.title), d.language || "", editable ? button(t("edit"), () => edit(d)) : ""]), t("documents")) : empty());
  }
  async function loadGaps() {
    const page = await get("/analytics/gaps", { limit: 50 });
    gaps.replaceChildren(page.items.length ? table([t("gaps"), t("count"), "", ""],
      page.items.map((g) => [h("span", { dir: "auto" }, g.question), String(g.count), when(g.last_at),
        editable ? button(t("answer"), () => edit(null, g.question), { class: "primary" }) : ""]), t("gaps")) : empty());
  }

  function edit(doc, question) {
    const creating = !doc;
    doc = doc || { id: `faq-${Date.now().toString(36)}`, title: question || "", body: "", language: /[\u0600-\u06FF]/.test(question || "") ? "ar" : "en" };
    const form = h("form", { class: "grid" },
      field("ID", input("id", { value: doc.id, required: true, disabled: !creating, pattern: "[A-Za-z0-9._:-]+" })),
      field(t("title"), input("title", { value: doc.title, required: true, dir: "auto" })),
      field(t("language"), select("language", [["ar", "العربية"], ["en", "English"]], doc.language || "ar")),
      field(t("body"), h("textarea", { name: "body", rows: 8, required: true, dir: "auto" }, doc.body)),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, t("save")),
        creating ? null : button(t("delete"), async () => { await api("DELETE", `/knowledge/${encodeURIComponent(doc.id)}`); dlg.close(); loadDocs(); }, { class: "danger" })));
    const dlg = dialog(creating ? t("newDoc") : doc.title, form);
    (creating && question ? form.body : form.title).focus();
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const d = Object.fromEntries(new FormData(form));
      try {
        if (creating) await api("POST", "/knowledge", { id: d.id, title: d.title, body: d.body, language: d.language });
        else await api("PATCH", `/knowledge/${encodeURIComponent(doc.id)}`, { title: d.title, body: d.body, language: d.language });
        dlg.close(); toast(t("saved")); loadDocs();
      } catch (err) { showError(form, err); }
    });
  }

  root.append(
    h("div", { class: "toolbar" }, editable ? button(t("newDoc"), () => edit(null), { class: "primary" }) : null),
    h("div", { class: "panels" },
      h("section", { class: "card" }, h("h2", {}, t("documents")), docs),
      h("section", { class: "card" }, h("h2", {}, t("gaps")), gaps)),
    editable ? h("section", { class: "card" }, h("h2", {}, t("import")), importForm("/knowledge/import", () => loadDocs())) : null);
  await Promise.all([loadDocs(), loadGaps()]);
}
