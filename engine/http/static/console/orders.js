// Orders and leads: lists filtered by status, status changes in place.
import { api, get } from "./api.js";
import { can } from "./app.js";
import { money, t, when } from "./i18n.js";
import { button, empty, field, h, select, table, toast } from "./ui.js";

const ORDER = ["new", "confirmed", "shipped", "delivered", "cancelled"];
const LEAD = ["new", "contacted", "won", "lost"];

function listing(title, path, statuses, columns) {
  const box = h("div");
  let cursor = null;
  const rows = [];
  const filter = select("status", [["", t("all")], ...statuses.map((s) => [s, t(s)])], "");
  const more = button(t("loadMore"), () => load(), { class: "secondary", hidden: true });
  filter.addEventListener("change", () => { rows.length = 0; cursor = null; load(); });
  function statusControl(item) {
    if (!can("agent")) return t(item.status);
    const control = select("status", statuses.map((s) => [s, t(s)]), item.status, { "aria-label": `${t("status")} ${item.id}` });
    control.addEventListener("change", async () => {
      try { Object.assign(item, await api("PATCH", `${path}/${item.id}`, { status: control.value })); toast(t("saved")); } catch (err) { control.value = item.status; toast(err.message); }
    });
    return control;
  }
  async function load() {
    const page = await get(path, { status: filter.value, limit: 50, cursor });
    rows.push(...page.items);
    cursor = page.next_cursor;
    more.hidden = !cursor;
    box.replaceChildren(rows.length ? table([...columns.map((c) => c[0]), t("status")], rows.map((r) => [...columns.map((c) => c[1](r)), statusControl(r)]), title) : empty());
  }
  load();
  return h("section", { class: "card" }, h("h2", {}, title), field(t("status"), filter), box, more);
}

export async function mount(root) {
  root.append(
    listing(t("orders"), "/orders", ORDER, [
      ["ID", (o) => o.id], [t("customer"), (o) => `${o.customer.name || ""} · ${o.customer.phone || ""}`],
      [t("total"), (o) => money(o.total, o.currency)], [t("created"), (o) => when(o.created_at)]]),
    listing(t("leads"), "/leads", LEAD, [
      [t("name"), (l) => l.name], [t("phone"), (l) => l.phone], [t("city"), (l) => l.city], [t("created"), (l) => when(l.created_at)]]));
}
