// A file import with its job: the upload, a progress bar while the indexer works, and the
// lines that were not imported (shared by the catalog and the knowledge screens).
import { api, get } from "./api.js";
import { t } from "./i18n.js";
import { field, h, showError, table } from "./ui.js";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function importForm(route, onDone) {
  const file = h("input", { type: "file", name: "file", accept: ".jsonl,.ndjson,.csv,application/x-ndjson,text/csv", required: true });
  const bar = h("progress", { max: 1, value: 0, "aria-label": t("progress") });
  const label = h("span", { class: "progress-label", role: "status", "aria-live": "polite" });
  const report = h("div", { class: "import-report" });
  const form = h("form", { class: "import" }, field(t("importFile"), file),
    h("button", { type: "submit", class: "primary" }, t("import")),
    h("div", { class: "progress", hidden: true }, bar, label), report);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const chosen = file.files[0];
    if (!chosen) return;
    const type = /\.csv$/i.test(chosen.name) ? "text/csv" : "application/x-ndjson";
    form.querySelector(".progress").hidden = false;
    report.replaceChildren();
    try {
      const { job_id } = await api("POST", route, chosen, type);
      let job;
      for (;;) {
        job = await get(`/jobs/${job_id}`);
        const { total = 0, stored = 0, indexed = 0 } = job.progress || {};
        bar.max = Math.max(1, total);
        bar.value = Math.min(total, indexed);
        label.textContent = `${t(job.status)} · ${indexed}/${total} (${stored})`;
        if (job.status !== "running") break;
        await sleep(400);
      }
      if (job.errors.length) {
        report.append(h("h3", {}, `${t("badLines")} (${job.errors.length})`),
          table([t("line"), t("reason")], job.errors.map((er) => [String(er.line ?? ""), er.message]), t("badLines")));
      }
      if (job.failure) report.append(h("p", { class: "form-error" }, job.failure));
      if (onDone) onDone(job);
    } catch (err) { showError(form, err); }
  });
  return form;
}
