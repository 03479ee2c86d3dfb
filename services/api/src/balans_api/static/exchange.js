// balans: record a meter exchange on a building's page (POST /provisioning/meter-exchanges,
// docs/provisioning.md "Meter exchange"); the building's exchanges are listed beside it.
"use strict";
(() => {
  const { api, post, header, t, esc, el, when } = balans;

  const problems = (details) => details.map((p) => `<li><code class="data">${esc(p.path ?? (p.loc || []).join("."))}</code> ${esc(p.message ?? p.msg)}</li>`).join("");

  async function exchangePage(buildingId) {
    await header();
    const building = await api(`/buildings/${buildingId}`);
    document.querySelector("h1").textContent = `${building.name}: ${t("meter exchange")}`;
    const list = async () => {
      const done = (await api(`/provisioning/buildings/${encodeURIComponent(building.code)}/meter-exchanges?limit=1000`)).items;
      el("exchanges").innerHTML = `<tr><th>${esc(t("When"))}</th><th>${esc(t("Old meter"))}</th><th>${esc(t("New meter"))}</th><th>${esc(t("Flat"))}</th></tr>`
        + done.map((x) => `<tr data-new-meter="${esc(x.new_meter)}"><td>${esc(when(x.at))}</td><td>${esc(x.old_meter ?? "")}</td><td>${esc(x.new_meter)}</td><td>${esc(x.flat ?? "")}</td></tr>`).join("");
      return new Set(done.map((x) => x.old_meter));
    };
    const replaced = await list();
    const meters = await api(`/meters?building_id=${buildingId}&limit=1000`);
    el("old-meter").innerHTML = meters.items.filter((m) => m.module_serial !== null && !replaced.has(m.serial))
      .map((m) => `<option value="${esc(m.serial)}" data-module="${m.module_serial}" data-input="${m.input}">${esc(m.serial)} (${esc(m.utility)}, ${esc(m.role)})</option>`).join("");
    el("exchange-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const form = new FormData(event.target);
      const option = el("old-meter").selectedOptions[0];
      const serial = form.get("new_serial");
      const body = {
        module: Number(option.dataset.module), input: Number(option.dataset.input),
        at: new Date(form.get("at")).toISOString(), old_meter: form.get("old_meter"),
        final_register: String(form.get("final_register")), start_register: String(form.get("start_register")),
        counter_reset: form.get("counter_reset") === "on",
        new_meter: form.get("existing") === "on" ? serial
          : { serial, ...(form.get("pulse_weight") ? { pulse_weight: String(form.get("pulse_weight")) } : {}) },
      };
      el("exchange-errors").innerHTML = "";
      el("exchange-status").textContent = t("Checking…");
      try {
        const done = await post("/provisioning/meter-exchanges", body);
        el("exchange-status").textContent = t("Recorded: {old} replaced by {new}; hours from {from} are computed again.",
          { old: done.old_meter, new: done.new_meter, from: when(done.recompute_from) });
        option.remove();
        await list();
      } catch (e) {
        el("exchange-status").textContent = e.message;
        el("exchange-errors").innerHTML = problems(e.details || []);
      }
    });
  }

  balans.pages.exchange = () => exchangePage(Number(document.body.dataset.buildingId));
})();
