// The webchat widget's settings: colour, greeting, the sites allowed to embed it, and the
// snippet to paste on the store's site.
import { api } from "./api.js";
import { can, session } from "./app.js";
import { t } from "./i18n.js";
import { field, h, input, showError, toast } from "./ui.js";

export async function mount(root) {
  const m = session.merchant;
  const editable = can("admin");
  const snippet = `<script src="${location.origin}/webchat/widget.js" data-merchant="${m.id}" async></script>`;
  const form = h("form", { class: "grid" },
    field(t("color"), input("widget_color", { type: "color", value: m.widget_color || "#1f6f5c", disabled: !editable })),
    field(t("greeting"), h("textarea", { name: "widget_greeting", rows: 2, maxlength: 300, dir: "auto", disabled: !editable }, m.widget_greeting || "")),
    field(t("origins"), h("textarea", { name: "allowed_origins", rows: 3, placeholder: "https://shop.example.com", disabled: !editable }, (m.allowed_origins || []).join("\n"))),
    editable ? h("button", { type: "submit", class: "primary" }, t("save")) : null);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const d = Object.fromEntries(new FormData(form));
    const body = {
      widget_color: d.widget_color,
      widget_greeting: d.widget_greeting.trim(),
      allowed_origins: d.allowed_origins.split(/\s+/).map((o) => o.trim().replace(/\/$/, "")).filter(Boolean),
    };
    try {
      session.merchant = await api("PATCH", "/merchant", body);
      toast(t("saved"));
    } catch (err) {
      // Field paths come back as "allowed_origins.0": show them under the one textarea.
      if (err.fields) for (const k of Object.keys(err.fields)) if (k.startsWith("allowed_origins.")) err.fields.allowed_origins = err.fields[k];
      showError(form, err);
    }
  });
  root.append(
    h("section", { class: "card" }, h("h2", {}, t("settings")), form),
    h("section", { class: "card" }, h("h2", {}, t("embed")),
      field(t("embed"), h("textarea", { readonly: true, rows: 2, class: "code", dir: "ltr" }, snippet)),
      h("p", {}, h("a", { href: `/webchat/${m.id}`, target: "_blank", rel: "noopener" }, `/webchat/${m.id}`))));
}
