// The catalog: products with search and filters, create/edit, file import, search preview.
import { api, get } from "./api.js";
import { can } from "./app.js";
import { money, t } from "./i18n.js";
import { importForm } from "./jobs.js";
import { button, dialog, empty, field, h, input, select, showError, table, toast } from "./ui.js";

export async function mount(root) {
  const editable = can("admin");
  let cursor = null;
  const rows = [];
  const categories = await get("/products/categories").catch(() => ({ items: [] }));
  const filter = h("form", { class: "filters", role: "search" },
    field(t("category"), select("category", [["", t("all")], ...categories.items.map((c) => [c.name, `${c.name} (${c.count})`])], "")),
    field(t("inStock"), select("in_stock", [["", t("all")], ["true", "✓"], ["false", "✗"]], "")));
  filter.addEventListener("change", () => reload());
  const body = h("div", { class: "product-table" });
  const more = button(t("loadMore"), () => load(), { class: "secondary", hidden: true });

  function draw() {
    if (!rows.length) { body.replaceChildren(empty()); return; }
    body.replaceChildren(table([t("sku"), t("title"), t("price"), t("category"), t("inStock"), ""],
      rows.map((p) => [p.sku, h("span", { dir: "auto" }, p.title), money(p.price, p.currency), p.category || "", p.in_stock ? "✓" : "✗",
        editable ? button(t("edit"), () => edit(p)) : ""]), t("products")));
  }
  async function load() {
    const d = Object.fromEntries(new FormData(filter));
    const page = await get("/products", { ...d, limit: 50, cursor });
    rows.push(...page.items);
    cursor = page.next_cursor;
    more.hidden = !cursor;
    draw();
  }
  async function reload() { rows.length = 0; cursor = null; await load(); }

  function edit(p) {
    const creating = !p;
    p = p || { attributes: {} };
    const form = h("form", { class: "grid" },
      field(t("sku"), input("sku", { value: p.sku || "", required: true, disabled: !creating, pattern: "[A-Za-z0-9._:-]+" })),
      field(t("title"), input("title", { value: p.title || "", required: true, dir: "auto" })),
      field(t("price"), input("price", { type: "number", step: "0.01", min: 0, value: p.price ?? "" })),
      field(t("currency"), input("currency", { value: p.currency || "SAR", pattern: "[A-Z]{3}" })),
      field(t("category"), input("category", { value: p.category || "" })),
      field(t("url"), input("url", { type: "url", value: p.url || "" })),
      field(t("image"), input("image_url", { type: "url", value: p.image_url || "" })),
      field(t("inStock"), select("in_stock", [["true", "✓"], ["false", "✗"]], String(p.in_stock ?? true))),
      field(t("description"), h("textarea", { name: "description", rows: 4, dir: "auto" }, p.description || "")),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, t("save")),
        creating ? null : button(t("delete"), async () => { await api("DELETE", `/products/${encodeURIComponent(p.id)}`); dlg.close(); reload(); }, { class: "danger" })));
    const dlg = dialog(creating ? t("create") : p.title, form);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const d = Object.fromEntries(new FormData(form));
      const out = { title: d.title, description: d.description, currency: d.currency || null, category: d.category || null,
        url: d.url || null, image_url: d.image_url || null, in_stock: d.in_stock === "true", price: d.price === "" ? null : Number(d.price) };
      for (const k of Object.keys(out)) if (out[k] === null) delete out[k];
      try {
        if (creating) await api("POST", "/products", { sku: d.sku, ...out });
        else await api("PATCH", `/products/${encodeURIComponent(p.id)}`, out);
        dlg.close(); toast(t("saved")); reload();
      } catch (err) { showError(form, err); }
    });
  }

  // The bot's retrieval, as a customer's question would run it.
  const hits = h("div", { class: "hits", "aria-live": "polite" });
  const preview = h("form", { class: "preview", role: "search" },
    field(t("preview"), input("q", { type: "search", required: true, maxlength: 500, dir: "auto" }), t("previewHelp")),
    h("button", { type: "submit" }, t("search")));
  preview.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const res = await get("/products/search", { q: preview.q.value, limit: 5 });
      hits.replaceChildren(res.items.length ? table([t("sku"), t("title"), t("price"), t("score"), ""],
        res.items.map((i) => [i.sku, h("span", { dir: "auto" }, i.title), money(i.price, i.currency), i.score.toFixed(3),
          editable ? button(t("edit"), async () => edit(await get(`/products/${encodeURIComponent(i.sku)}`))) : ""]), t("preview")) : empty());
    } catch (err) { showError(preview, err); }
  });

  root.append(
    h("div", { class: "toolbar" }, editable ? button(t("create"), () => edit(null), { class: "primary" }) : null),
    filter, body, more,
    h("div", { class: "panels" },
      h("section", { class: "card" }, h("h2", {}, t("preview")), preview, hits),
      editable ? h("section", { class: "card" }, h("h2", {}, t("import")), importForm("/catalog/import", () => reload())) : null));
  await reload();
}
