// Channels: one short form per kind, built from the API's own OpenAPI document (so a new
// kind in connectors/registry.py gets its form here without a console change), the webhook
// URL and what to paste where, disconnect, and delivery failures with replay.
import { api, get } from "./api.js";
import { can } from "./app.js";
import { language, t, when } from "./i18n.js";
import { button, dialog, empty, field, h, input, select, showError, table, toast } from "./ui.js";

const HELP = {
  telegram: {
    en: "From @BotFather: paste the bot token. Pick any secret (letters, digits, _ -): Telegram sends it back with every update. The webhook is registered for you.",
    ar: "من ‎@BotFather‎: الصق رمز البوت. اختر أي سر (حروف وأرقام و _ -): يرسله تيليجرام مع كل تحديث. نسجّل الويب هوك تلقائياً.",
  },
  whatsapp: {
    en: "Meta app → WhatsApp → API setup: phone number ID and a permanent access token; App settings → Basic: app secret. Choose a verify token, then paste the webhook URL and that verify token in WhatsApp → Configuration.",
    ar: "تطبيق ميتا ← واتساب ← إعداد API: معرّف رقم الهاتف ورمز وصول دائم؛ إعدادات التطبيق ← أساسي: سر التطبيق. اختر رمز تحقق ثم الصق رابط الويب هوك ورمز التحقق في واتساب ← الإعدادات.",
  },
  messenger: {
    en: "Meta app → Messenger: page ID and page access token; app secret from App settings. Paste the webhook URL and your verify token in Messenger → Webhooks and subscribe the page to messages.",
    ar: "تطبيق ميتا ← ماسنجر: معرّف الصفحة ورمز وصولها؛ سر التطبيق من إعداداته. الصق رابط الويب هوك ورمز التحقق في ماسنجر ← Webhooks واشترك بالرسائل.",
  },
  instagram: {
    en: "Meta app → Instagram: the Instagram account ID and the linked page's access token; app secret from App settings. Paste the webhook URL and verify token under Instagram → Webhooks.",
    ar: "تطبيق ميتا ← إنستغرام: معرّف حساب إنستغرام ورمز وصول الصفحة المرتبطة؛ سر التطبيق من إعداداته. الصق رابط الويب هوك ورمز التحقق في إنستغرام ← Webhooks.",
  },
};

const SECRET = /token|secret/;

function kindForm(schema, onCreated) {
  const kind = schema.properties.kind.const;
  const required = new Set(schema.required || []);
  const names = Object.keys(schema.properties).filter((n) => n !== "kind");
  const control = (n) => {
    const p = schema.properties[n];
    const attrs = { required: required.has(n), autocomplete: "off" };
    if (p.maxLength) attrs.maxlength = p.maxLength;
    if (SECRET.test(n) && n !== "verify_token") attrs.type = "password";
    return field(p.title || n, input(n, attrs), p.description);
  };
  const optional = names.filter((n) => !required.has(n));
  const form = h("form", { class: "grid channel-form", "data-kind": kind },
    h("p", { class: "hint" }, (HELP[kind] || {})[language()] || schema.description || ""),
    names.filter((n) => required.has(n)).map(control),
    optional.length ? h("details", {}, h("summary", {}, t("more")), optional.map(control)) : null,
    h("button", { type: "submit", class: "primary" }, t("connect")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { kind };
    for (const [k, v] of new FormData(form)) if (v !== "") body[k] = v;
    try { onCreated(await api("POST", "/channels", body)); form.reset(); } catch (err) { showError(form, err); }
  });
  return form;
}

export async function mount(root) {
  const manage = can("admin");
  const list = h("div");
  const dead = h("div");

  async function loadChannels() {
    const res = await get("/channels");
    list.replaceChildren(res.channels.length ? table([t("kind"), "ID", t("webhook"), t("created"), ""],
      res.channels.map((c) => [c.kind, c.id, h("code", {}, `${location.origin}/webhooks/${c.kind}/${c.id}`), when(c.created_at),
        manage ? button(t("disconnect"), async () => {
          if (!confirm(`${t("disconnect")} ${c.kind}?`)) return;
          await api("DELETE", `/channels/${c.id}`); loadChannels();
        }, { class: "danger" }) : ""]), t("connected")) : empty());
  }
  async function loadDead() {
    if (!manage) return;
    const res = await get("/outbox/dead-letters", { limit: 50 });
    dead.replaceChildren(res.dead_letters.length ? table([t("when"), t("kind"), t("customer"), t("reason"), t("attempts"), ""],
      res.dead_letters.map((d) => [when(d.at), d.channel_kind || "", d.customer_id || "", d.reason || "", String(d.attempts ?? ""),
        button(t("replay"), async () => { await api("POST", `/outbox/dead-letters/${d.id}/replay`); toast(t("replay")); loadDead(); })]), t("deadLetters")) : empty());
  }

  function created(out) {
    dialog(t("connected"), h("div", {},
      h("p", {}, `${out.kind} · ${out.id}`),
      field(t("webhook"), input("webhook_url", { value: out.webhook_url, readonly: true })),
      out.webhook_registered === false ? h("p", { class: "form-error" }, out.webhook_error || "") : null,
      h("p", { class: "hint" }, (HELP[out.kind] || {})[language()] || "")));
    loadChannels();
  }

  root.append(h("section", { class: "card" }, h("h2", {}, t("connected")), list));
  if (manage) {
    const doc = await fetch("/api/v1/openapi.json").then((r) => r.json());
    const schemas = doc.components.schemas;
    const forms = (schemas.ChannelIn.oneOf || schemas.ChannelIn.anyOf || [])
      .map((ref) => schemas[ref.$ref.split("/").pop()]);
    const picker = select("kind", forms.map((s) => [s.properties.kind.const, s.properties.kind.const]), forms[0] && forms[0].properties.kind.const);
    const slot = h("div");
    const show = () => slot.replaceChildren(kindForm(forms.find((s) => s.properties.kind.const === picker.value), created));
    picker.addEventListener("change", show);
    show();
    root.append(
      h("section", { class: "card" }, h("h2", {}, t("connect")), field(t("kind"), picker), h("h3", {}, t("pasteWhere")), slot),
      h("section", { class: "card" }, h("h2", {}, t("deadLetters")), dead));
  }
  await Promise.all([loadChannels(), loadDead()]);
}
