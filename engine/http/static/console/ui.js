// Small DOM helpers: elements, labelled fields, forms that show the API's field errors.
import { t } from "./i18n.js";

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

let seq = 0;
/** A labelled control: every input has a visible <label> tied to it. */
export function field(labelText, control, hint) {
  const id = control.id || `f${++seq}`;
  control.id = id;
  const wrap = h("div", { class: "field" }, h("label", { for: id }, labelText), control);
  if (hint) wrap.append(h("small", { class: "hint" }, hint));
  wrap.append(h("small", { class: "error", "data-error-for": control.name || "" }));
  return wrap;
}

export function input(name, attrs = {}) { return h("input", { name, ...attrs }); }

export function select(name, options, value, attrs = {}) {
  const node = h("select", { name, ...attrs });
  for (const [v, label] of options) {
    const opt = h("option", { value: v }, label);
    if (String(v) === String(value ?? "")) opt.selected = true;
    node.append(opt);
  }
  return node;
}

/** Shows an ApiError on a form: field messages under their fields, the rest on top. */
export function showError(form, err) {
  form.querySelectorAll(".error").forEach((n) => { n.textContent = ""; });
  let top = form.querySelector(".form-error");
  if (!top) { top = h("p", { class: "form-error", role: "alert" }); form.prepend(top); }
  const fields = (err && err.fields) || {};
  let placed = false;
  for (const [name, message] of Object.entries(fields)) {
    const slot = form.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
    if (slot) { slot.textContent = message; placed = true; }
  }
  top.textContent = placed ? "" : (err && err.message) || String(err);
}

export function clearError(form) {
  form.querySelectorAll(".error, .form-error").forEach((n) => { n.textContent = ""; });
}

export function toast(message) {
  const box = document.getElementById("toast");
  box.textContent = message;
  box.hidden = false;
  clearTimeout(box._timer);
  box._timer = setTimeout(() => { box.hidden = true; }, 3500);
}

export function empty() { return h("p", { class: "empty" }, t("none")); }

export function table(columns, rows, caption) {
  return h("table", {},
    caption ? h("caption", { class: "sr" }, caption) : null,
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))))),
  );
}

export function button(label, onclick, attrs = {}) {
  return h("button", { type: "button", onclick, ...attrs }, label);
}

/** A modal dialog (native <dialog>: focus trap and Escape come with it). */
export function dialog(title, content) {
  const dlg = h("dialog", { class: "dialog", "aria-label": title },
    h("h2", {}, title), content,
    h("form", { method: "dialog" }, h("button", { class: "secondary" }, t("close"))));
  document.body.append(dlg);
  dlg.addEventListener("close", () => dlg.remove());
  dlg.showModal();
  return dlg;
}
