// balans: account holders over time on a building's accounts page (tenant change, move-out,
// move-in: /accounts, docs/provisioning.md "Account holders over time") and the meters due
// for verification (/meters/verification-due).
"use strict";
(() => {
  const { api, post, header, t, esc, el } = balans;

  const problems = (details) => details.map((p) => `<li><code class="data">${esc(p.path)}</code> ${esc(p.message)}</li>`).join("");

  async function accountsPage(buildingId) {
    await header();
    const building = await api(`/buildings/${buildingId}`);
    document.querySelector("h1").textContent = `${building.name}: ${t("accounts")}`;
    const flats = (await api(`/flats?building_id=${buildingId}&limit=1000`)).items;
    const flatNumber = new Map(flats.map((f) => [f.id, f.number]));
    const meters = (await api(`/meters?building_id=${buildingId}&limit=1000`)).items;
    const options = flats.map((f) => `<option value="${esc(f.number)}">${esc(f.number)}${f.vacant ? ` (${esc(t("vacant"))})` : ""}</option>`).join("");
    el("change-flat").innerHTML = options;
    el("open-flat").innerHTML = `<option value="">${esc(t("owner account"))}</option>` + options;
    const readingInputs = () => {
      const flatId = flats.find((f) => f.number === el("change-flat").value)?.id;
      el("change-readings").innerHTML = `<legend>${esc(t("Registers read that day"))}</legend>`
        + meters.filter((m) => m.flat_id === flatId).map((m) => `<label>${esc(m.serial)} (${esc(m.unit)}) <input name="reading" data-meter="${esc(m.serial)}" type="number" min="0" step="any"></label>`).join("");
    };
    el("change-flat").addEventListener("change", readingInputs);
    readingInputs();
    const list = async () => {
      const accounts = (await api(`/accounts/periods?building=${encodeURIComponent(building.code)}&limit=1000`)).items;
      el("accounts").innerHTML = `<tr><th>${esc(t("Account"))}</th><th>${esc(t("Flat"))}</th><th>${esc(t("Holder"))}</th><th>${esc(t("From"))}</th><th>${esc(t("Until"))}</th></tr>`
        + accounts.map((a) => `<tr data-account="${esc(a.number)}"><td>${esc(a.number)}</td><td>${esc(a.flat_id === null ? t("owner account") : flatNumber.get(a.flat_id) ?? "")}</td><td>${esc(a.holder_name)}</td><td>${esc(a.opened_on ?? "")}</td><td>${esc(a.closed_on ?? "")}</td></tr>`).join("");
      el("close-account").innerHTML = accounts.filter((a) => a.closed_on === null)
        .map((a) => `<option value="${esc(a.number)}">${esc(a.number)}</option>`).join("");
    };
    await list();
    const send = async (path, body, done) => {
      el("accounts-errors").innerHTML = "";
      el("accounts-status").textContent = t("Checking…");
      try {
        const answer = await post(path, body);
        el("accounts-status").textContent = done(answer);
        await list();
      } catch (e) {
        el("accounts-status").textContent = e.message;
        el("accounts-errors").innerHTML = problems(e.details || []);
      }
    };
    const holder = (form) => ({
      number: form.get("number"), holder_name: form.get("holder_name"), residents: Number(form.get("residents")),
    });
    el("change-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const form = new FormData(event.target);
      const readings = [...event.target.querySelectorAll("input[name=reading]")].filter((i) => i.value !== "")
        .map((i) => ({ meter: i.dataset.meter, register: String(i.value) }));
      send("/accounts/change", { building: building.code, flat: form.get("flat"), on: form.get("on"), account: holder(form), readings },
        (a) => t("Recorded: {closed} closed, {opened} opened; {n} readings stored.",
          { closed: a.accounts[0].number, opened: a.accounts[1].number, n: a.readings_inserted }));
    });
    el("close-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const form = new FormData(event.target);
      send(`/accounts/${encodeURIComponent(form.get("account"))}/close`, { closed_on: form.get("closed_on") },
        (a) => t("Closed: {number}.", { number: a.accounts[0].number }));
    });
    el("open-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const form = new FormData(event.target);
      send("/accounts", { building: building.code, flat: form.get("flat") || null, opened_on: form.get("opened_on") || null, ...holder(form) },
        (a) => t("Opened: {number}.", { number: a.accounts[0].number }));
    });
  }

  async function verificationPage() {
    await header();
    const show = async () => {
      const days = Number(el("verification-days").value || 90);
      const due = (await api(`/meters/verification-due?days=${days}&limit=1000`)).items;
      el("verification-status").textContent = t("{n} meters due within {days} days.", { n: due.length, days });
      el("verification").innerHTML = `<tr><th>${esc(t("Meter"))}</th><th>${esc(t("Utility"))}</th><th>${esc(t("Building"))}</th><th>${esc(t("Flat"))}</th><th>${esc(t("Verified"))}</th><th>${esc(t("Due"))}</th></tr>`
        + due.map((m) => `<tr data-serial="${esc(m.serial)}" class="${m.expired ? "expired" : ""}"><td>${esc(m.serial)}</td><td>${esc(m.utility)}</td><td><a href="/ops/buildings/${m.building_id}">${esc(m.building)}</a></td><td>${esc(m.flat ?? "")}</td><td>${esc(m.verified_on)}</td><td>${esc(m.due_on)}${m.expired ? ` (${esc(t("expired"))})` : ""}</td></tr>`).join("");
    };
    el("verification-form").addEventListener("submit", (event) => { event.preventDefault(); show(); });
    await show();
  }

  balans.pages.accounts = () => accountsPage(Number(document.body.dataset.buildingId));
  balans.pages.verification = verificationPage;
})();
