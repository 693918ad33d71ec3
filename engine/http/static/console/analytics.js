// Analytics: one SVG chart per measure and per day (no chart library: a polyline and bars
// are all these pictures need), plus the top questions.
import { get } from "./api.js";
import { language, percent, t } from "./i18n.js";
import { field, h, select, table } from "./ui.js";

const NS = "http://www.w3.org/2000/svg";
function s(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A line chart of one or more series over the days; values may be null (no data that day). */
export function lineChart(title, days, series, format) {
  const W = 480, H = 180, P = 32;
  const all = series.flatMap((x) => x.values).filter((v) => v !== null && v !== undefined);
  const max = Math.max(1e-9, ...all);
  const x = (i) => P + (days.length < 2 ? (W - 2 * P) / 2 : (i * (W - 2 * P)) / (days.length - 1));
  const y = (v) => H - P - (v / max) * (H - 2 * P);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", class: "chart", "aria-labelledby": "" });
  const id = `c${Math.random().toString(36).slice(2)}`;
  svg.setAttribute("aria-labelledby", id);
  svg.append(s("title", { id }, title));
  svg.append(s("line", { x1: P, y1: H - P, x2: W - P, y2: H - P, class: "axis" }));
  svg.append(s("text", { x: 2, y: P, class: "tick" }, format(max)));
  svg.append(s("text", { x: 2, y: H - P, class: "tick" }, format(0)));
  days.forEach((d, i) => {
    if (days.length <= 10 || i % Math.ceil(days.length / 8) === 0) svg.append(s("text", { x: x(i), y: H - 8, class: "tick", "text-anchor": "middle" }, d.slice(5)));
  });
  series.forEach((ser, k) => {
    const pts = ser.values.map((v, i) => (v === null || v === undefined ? null : `${x(i)},${y(v)}`)).filter(Boolean);
    if (pts.length) svg.append(s("polyline", { points: pts.join(" "), class: `line l${k}`, fill: "none" }));
    ser.values.forEach((v, i) => {
      if (v === null || v === undefined) return;
      const dot = s("circle", { cx: x(i), cy: y(v), r: 3, class: `dot l${k}` });
      dot.append(s("title", {}, `${days[i]} ${ser.name}: ${format(v)}`));
      svg.append(dot);
    });
  });
  const legend = h("p", { class: "legend" }, series.map((ser, k) => h("span", { class: `key l${k}` }, ser.name)));
  return h("figure", { class: "card chart-card" }, h("figcaption", {}, title), svg, legend);
}

function barChart(title, items) {
  const W = 480, row = 22, H = Math.max(1, items.length) * row + 8;
  const max = Math.max(1, ...items.map((i) => i.count));
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", class: "chart bars" });
  svg.append(s("title", {}, title));
  const rtl = language() === "ar";
  items.forEach((item, i) => {
    const w = ((W - 200) * item.count) / max;
    const y0 = 4 + i * row;
    svg.append(s("rect", { x: rtl ? W - 200 - w : 200, y: y0, width: Math.max(2, w), height: row - 6, class: "bar" }));
    svg.append(s("text", { x: rtl ? W - 4 : 4, y: y0 + row - 10, class: "tick", "text-anchor": rtl ? "end" : "start" }, item.text.slice(0, 28)));
    svg.append(s("text", { x: rtl ? W - 204 - w : 204 + w, y: y0 + row - 10, class: "tick", "text-anchor": rtl ? "end" : "start" }, String(item.count)));
  });
  return h("figure", { class: "card chart-card" }, h("figcaption", {}, title), svg);
}

export async function mount(root) {
  const days = select("days", [["7", "7"], ["14", "14"], ["30", "30"], ["90", "90"]], "14");
  const charts = h("div", { class: "charts" });
  async function load() {
    const data = await get("/analytics", { days: days.value });
    const keys = Object.keys(data.per_day);
    const col = (name) => keys.map((k) => data.per_day[k][name]);
    const secs = (v) => `${(v || 0).toFixed(1)}s`;
    charts.replaceChildren(
      lineChart(t("firstReply"), keys, [{ name: t("p50"), values: col("first_reply_p50_s") }, { name: t("p95"), values: col("first_reply_p95_s") }], secs),
      lineChart(t("coverage"), keys, [{ name: t("coverage"), values: col("answer_coverage") }], percent),
      lineChart(t("handoffRate"), keys, [{ name: t("handoffRate"), values: col("handoff_rate") }], percent),
      lineChart(t("conversion"), keys, [{ name: t("conversion"), values: col("conversion") }], percent),
      barChart(t("topQuestions"), data.top_questions),
      h("section", { class: "card scroll" }, h("h2", {}, t("total")), table(
        [t("conversations"), t("messages"), t("firstReply"), t("coverage"), t("handoffRate"), t("orders"), t("conversion")],
        [[data.total.conversations, data.total.messages_in, data.total.first_reply_p50_s === null ? "—" : secs(data.total.first_reply_p50_s),
          percent(data.total.answer_coverage), percent(data.total.handoff_rate), data.total.orders, percent(data.total.conversion)].map(String)])));
  }
  days.addEventListener("change", load);
  root.append(h("div", { class: "filters" }, field(t("days"), days)), charts);
  await load();
}
