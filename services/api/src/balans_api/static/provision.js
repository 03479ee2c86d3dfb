// balans: a new building from a form or an uploaded world document (docs/provisioning.md).
// Either way the document is first imported dry (POST /imports?dry_run=true): the report of
// what would change, or every problem with its path, is shown before anything is written.
"use strict";
(() => {
  const { api, header, t, esc, el } = balans;
  const ENTITIES = {
    sites: t("sites"), buildings: t("buildings"), entrances: t("entrances"), risers: t("risers"), flats: t("flats"),
    accounts: t("accounts"), concentrators: t("concentrators"), modules: t("radio modules"), meters: t("meters"),
    channels: t("channels"), sensor_pairs: t("sensor pairs"), radiators: t("radiators"),
  };

  /* A layout 1a building from the form: every flat has its own heat meter on its own radio
     module; the substation module carries the building heat meter. Serials are numbered
     from the ones entered, so they stay unique as long as those ranges are free. */
  function buildingDocument(form) {
    const n = (name) => Number(form.get(name));
    const code = form.get("code");
    const concentrator = n("concentrator");
    let module = n("first_module");
    const flats = [];
    const modules = [];
    const meters = [];
    const meter = (serial, role, flat) => ({
      serial: `heat-${serial}-0`, utility: "heat", kind: "heat_meter", role, flat, riser: null,
      pulse_weight: "1", unit: "kWh", pipe: "return", has_valve: false, channel: { module: serial, input: 0 },
    });
    for (let entrance = 1; entrance <= n("entrances"); entrance++) {
      for (let floor = 1; floor <= n("floors"); floor++) {
        for (let i = 1; i <= n("flats_per_floor"); i++) {
          const number = String(flats.length + 1);
          flats.push({ number, entrance, floor, rooms: 2, area_m2: String(form.get("area_m2")), radiators: [] });
          modules.push({ serial: module, concentrator, subnet: 0, floor, flat: number, riser: null });
          meters.push(meter(module, "flat", number));
          module += 1;
        }
      }
    }
    modules.push({ serial: module, concentrator, subnet: 0, floor: 0, flat: null, riser: null });
    meters.push(meter(module, "building", null));
    return {
      format: "balans.world/1",
      sites: [],
      buildings: [{
        code, site: form.get("site"), name: form.get("name"), address: form.get("address"),
        floors: n("floors"), layout: "1a", methodology: {},
        entrances: [...Array(n("entrances")).keys()].map((i) => ({ number: i + 1 })),
        risers: [], flats, accounts: [], concentrators: [{ serial: concentrator }], modules, meters, sensor_pairs: [],
      }],
    };
  }

  // POST /imports and wait for the job's end (an import of one building takes a moment)
  async function runImport(body, dryRun) {
    let job = await api(`/imports?dry_run=${dryRun}`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body,
    });
    while (job.status === "queued" || job.status === "running") {
      await new Promise((resolve) => setTimeout(resolve, 300));
      job = await api(`/imports/${job.id}`);
    }
    return job;
  }

  const problemList = (problems) => problems.map((p) => {
    const path = p.path ?? (p.loc || []).filter((x) => x !== "body").join(".");
    return `<li><code class="data">${esc(path)}</code> ${esc(p.message ?? p.msg)}</li>`;
  }).join("");

  function showReport(job) {
    el("report-card").hidden = false;
    el("done-card").hidden = true;
    const failed = job.status !== "succeeded";
    el("report-errors").innerHTML = failed ? problemList(job.problems) : "";
    const changes = job.result?.changes || {};
    const rows = Object.entries(changes).filter(([, c]) => c.create || c.update || c.delete);
    el("report").innerHTML = rows.length
      ? `<tr><th>${esc(t("Entity"))}</th><th>${esc(t("created"))}</th><th>${esc(t("changed"))}</th><th>${esc(t("removed"))}</th></tr>`
        + rows.map(([name, c]) => `<tr data-entity="${esc(name)}"><td>${esc(ENTITIES[name] || name)}</td><td>${c.create}</td><td>${c.update}</td><td>${c.delete}</td></tr>`).join("")
      : "";
    el("report-lines").innerHTML = (job.result?.lines || []).map((line) => `<li>${esc(line)}</li>`).join("");
    el("report-status").textContent = failed ? t("Refused: nothing would be written.")
      : rows.length ? t("Nothing is written yet: check the changes, then import.") : t("Nothing would change: everything is already stored.");
    el("import-confirm").hidden = failed || !rows.length;
  }

  function showDone(job) {
    el("report-card").hidden = true;
    el("done-card").hidden = false;
    const built = job.result.buildings_changed;
    el("done-status").textContent = t("{count} building(s) imported.", { count: built.length });
    const keys = Object.entries(job.concentrator_keys || {});
    el("done-keys").hidden = !keys.length;
    el("done-keys-table").innerHTML = keys.map(([serial, key]) => `<tr><td>${esc(serial)}</td><td><code>${esc(key)}</code></td></tr>`).join("");
    el("done-buildings").innerHTML = built.map((code) => `<li data-building-code="${esc(code)}">${esc(code)}</li>`).join("");
    // the stored buildings link to their pages
    api("/buildings?limit=1000").then((page) => {
      const ids = Object.fromEntries(page.items.map((b) => [b.code, b.id]));
      el("done-buildings").innerHTML = built.map((code) => (ids[code]
        ? `<li data-building-code="${esc(code)}"><a href="/ops/buildings/${ids[code]}">${esc(code)}</a></li>`
        : `<li>${esc(code)}</li>`)).join("");
    });
  }

  async function provisionPage() {
    await header();
    const sites = await api("/sites?limit=1000");
    el("site").innerHTML = sites.items.map((s) => `<option value="${esc(s.code)}">${esc(s.name)}</option>`).join("");
    let pending = null; // the document checked last: what "Import" writes
    const check = async (body) => {
      pending = null;
      el("report-status").textContent = t("Checking…");
      el("report-card").hidden = false;
      try {
        const job = await runImport(body, true);
        showReport(job);
        if (job.status === "succeeded") pending = body;
      } catch (e) {
        showReport({ status: "failed", problems: e.details || [] });
        el("report-status").textContent = e.message;
      }
    };
    el("building-form").addEventListener("submit", (event) => {
      event.preventDefault();
      check(JSON.stringify(buildingDocument(new FormData(event.target))));
    });
    el("upload-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const file = el("import-file").files[0];
      if (file) await check(await file.text());
    });
    el("import-confirm").addEventListener("click", async () => {
      if (!pending) return;
      el("import-confirm").hidden = true;
      const job = await runImport(pending, false);
      if (job.status === "succeeded") showDone(job); else showReport(job);
    });
  }

  balans.pages.provision = provisionPage;
})();
