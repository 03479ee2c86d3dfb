// balans portal: fetches /api/v1 with the bearer token kept in sessionStorage and draws
// with Plotly (served by the api from the plotly wheel).
"use strict";
const balans = (() => {
  const API = "/api/v1";
  const token = () => sessionStorage.getItem("balans.token");
  const fmt = (v, d = 1) => (v === null || v === undefined ? "–" : Number(v).toFixed(d));
  const el = (id) => document.getElementById(id);
  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  // Invoices cover whole local months: the middle of the period names the month whatever the
  // site's time zone (period_start is a UTC instant, e.g. 2026-09-30T21:00Z for October in Chisinau).
  const billingMonth = (invoice) =>
    new Date((Date.parse(invoice.period_start) + Date.parse(invoice.period_end)) / 2)
      .toISOString()
      .slice(0, 7);
  const PALETTE = ["#c2410c", "#2563eb", "#15803d", "#7c3aed", "#db2777", "#0891b2"];
  const layout = (extra = {}) => ({
    margin: { l: 50, r: 20, t: 10, b: 40 }, legend: { orientation: "h" }, hovermode: "x unified", ...extra,
  });

  async function api(path, options = {}) {
    const headers = { Authorization: `Bearer ${token()}`, ...(options.headers || {}) };
    const response = await fetch(API + path, { ...options, headers });
    if (response.status === 401) { location.href = "/login"; throw new Error("signed out"); }
    const body = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
    if (!response.ok) throw new Error(body?.error?.message || response.statusText);
    return body;
  }
  const post = (path, body) => api(path, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body || {}),
  });

  async function login(event) {
    event.preventDefault();
    const form = new FormData(event.target);
    const response = await fetch(API + "/auth/token", { method: "POST", body: new URLSearchParams(form) });
    const body = await response.json();
    if (!response.ok) { el("login-error").textContent = body.error.message; return; }
    sessionStorage.setItem("balans.token", body.access_token);
    const me = await api("/auth/me");
    location.href = me.role === "consumer" ? "/my" : "/ops";
  }
  function logout() { sessionStorage.removeItem("balans.token"); location.href = "/login"; }

  async function header() {
    if (!token()) { location.href = "/login"; throw new Error("no token"); }
    const me = await api("/auth/me");
    el("who").textContent = `${me.actor} (${me.role})`;
    el("nav").innerHTML = me.role === "consumer" ? '<a href="/my">My flat</a>'
      : '<a href="/ops">Buildings</a><a href="/ops/alerts">Alerts</a>';
    return me;
  }

  const xs = (points) => points.map((p) => p.t);
  const ys = (points) => points.map((p) => p.value);

  // ---------------- consumer ----------------
  async function consumerPage() {
    const me = await header();
    const flatId = me.flat_ids[0];
    const flat = await api(`/flats/${flatId}`);
    document.querySelector("h1").textContent = `Flat ${flat.number}`;
    const now = new Date();
    el("month").value = now.toISOString().slice(0, 7);
    el("year").value = now.getFullYear();
    el("reading-date").value = now.toISOString().slice(0, 10);
    const drawMonth = async () => {
      const p = await api(`/flats/${flatId}/profile?month=${el("month").value}&resolution=${el("resolution").value}`);
      el("mtd").textContent = fmt(p.month_to_date_kwh);
      el("forecast").textContent = fmt(p.forecast_kwh);
      el("k-consumption").textContent = fmt(p.coefficients.consumption, 2);
      el("k-temperature").textContent = fmt(p.coefficients.temperature, 2);
      el("k-efficiency").textContent = fmt(p.coefficients.efficiency, 2);
      Plotly.react("chart-month", [
        { type: "bar", name: "My heat, kWh", x: xs(p.heat.points), y: ys(p.heat.points), marker: { color: PALETTE[0] } },
        { type: "scatter", mode: "lines", name: "Average flat", x: xs(p.building_average.points),
          y: ys(p.building_average.points), line: { color: "#334155", dash: "dash" } },
      ], layout({ yaxis: { title: "kWh" } }), { responsive: true, displaylogo: false });
      drawMeters(p.meters);
    };
    const colours = {};
    const drawMeters = (meters) => {
      el("meter-colours").innerHTML = meters.map((m, i) => {
        colours[m.meter_id] ||= PALETTE[(i + 1) % PALETTE.length];
        return `<label>${esc(m.utility)} ${esc(m.serial)} <input type="color" data-meter="${m.meter_id}" value="${colours[m.meter_id]}"></label>`;
      }).join("") || "<p>No meters with pulse outputs in this flat.</p>";
      const traces = meters.map((m) => ({
        type: "scatter", mode: "lines", x: xs(m.points), y: ys(m.points),
        name: `${m.utility} (${m.unit})${m.forecast === null ? "" : `, month forecast ${fmt(m.forecast, 2)}`}`,
        line: { color: colours[m.meter_id] },
      }));
      Plotly.react("chart-meters", traces, layout(), { responsive: true, displaylogo: false });
      el("meter-colours").querySelectorAll("input").forEach((input) => input.addEventListener("input", () => {
        colours[input.dataset.meter] = input.value;
        Plotly.restyle("chart-meters", { "line.color": traces.map((t, i) => colours[meters[i].meter_id]) });
      }));
    };
    const drawYear = async () => {
      const h = await api(`/flats/${flatId}/history?year=${el("year").value}`);
      const month = (t) => new Date(t).toLocaleString("en", { month: "short", timeZone: h.flat.timezone });
      Plotly.react("chart-year", [
        { type: "bar", name: `${el("year").value}`, x: h.current.points.map((p) => month(p.t)), y: ys(h.current.points),
          marker: { color: PALETTE[0] } },
        { type: "scatter", mode: "lines+markers", name: "Last year", x: h.last_year.points.map((p) => month(p.t)),
          y: ys(h.last_year.points), line: { color: "#64748b" } },
      ], layout({ yaxis: { title: "kWh" } }), { responsive: true, displaylogo: false });
    };
    const drawReadings = async () => {
      const r = await api(`/flats/${flatId}/readings?date=${el("reading-date").value}`);
      el("day-readings").innerHTML = r.readings.map((m) =>
        `<tr><td>${esc(m.utility)}</td><td>${esc(m.serial)}</td><td>${fmt(m.value, 2)} ${esc(m.unit)}</td></tr>`).join("")
        || "<tr><td>No pulse meters.</td></tr>";
    };
    el("month").addEventListener("change", drawMonth);
    el("resolution").addEventListener("change", drawMonth);
    el("year").addEventListener("change", drawYear);
    el("reading-date").addEventListener("change", drawReadings);
    await Promise.all([drawMonth(), drawYear(), drawReadings()]);
    const current = await api(`/flats/${flatId}/readings?date=${now.toISOString().slice(0, 10)}`);
    el("current").innerHTML = current.readings.map((m) =>
      `<tr><td>${esc(m.utility)}</td><td>${fmt(m.value, 2)} ${esc(m.unit)}</td><td>${m.ts ? new Date(m.ts).toLocaleString() : "no data"}</td></tr>`).join("")
      || "<tr><td>Heat is allocated from the riser (no meter in the flat).</td></tr>";
    const s = await api(`/flats/${flatId}/statement`);
    el("statement").innerHTML = `
      <tr><th>${esc(s.month)}</th><td>${fmt(s.kwh)} kWh</td></tr>
      <tr><th>Previous month</th><td>${fmt(s.previous_month_kwh)} kWh (${fmt(s.change_vs_previous_pct)} %)</td></tr>
      <tr><th>Same month last year</th><td>${fmt(s.same_month_last_year_kwh)} kWh (${fmt(s.change_vs_last_year_pct)} %)</td></tr>
      <tr><th>Average comparable flat</th><td>${fmt(s.comparable_user_kwh)} kWh</td></tr>`;
    await optional(async () => {
      const alerts = await api("/alerts?limit=20");
      el("alerts").innerHTML = alerts.items.map((a) => `<li>${esc(a.kind)}: ${esc(a.summary)} <span class="pill">${esc(a.state)}</span></li>`).join("") || "<li>No alerts.</li>";
    }, "alerts");
    await optional(async () => {
      const invoices = await api("/invoices?limit=12");
      el("invoices").innerHTML = invoices.items.map((i) => `<tr><td>${esc(billingMonth(i))}</td><td>${esc(i.kind)}</td><td>${esc(i.total)} ${esc(i.currency)}</td></tr>`).join("") || "<tr><td>No invoices yet.</td></tr>";
    }, "invoices");
    el("grouping").addEventListener("change", () => drawRanking(flat.building_id, el("grouping").value));
    await drawRanking(flat.building_id);
  }

  async function optional(fn, id) {
    try { await fn(); } catch (e) { el(id).innerHTML = `<li class="error">${esc(e.message)}</li>`; }
  }

  async function drawRanking(buildingId, grouping = "riser") {
    const r = await api(`/buildings/${buildingId}/ranking?grouping=${grouping}`);
    Plotly.react("chart-ranking", [{
      type: "bar", orientation: "h", x: r.groups.map((g) => g.kwh_per_m2), y: r.groups.map((g) => g.name),
      marker: { color: r.groups.map((g, i) => (i < r.groups.length / 3 ? "#15803d" : "#c2410c")) },
    }], layout({ xaxis: { title: "kWh per m²" }, yaxis: { autorange: "reversed" }, margin: { l: 90, r: 20, t: 10, b: 40 } }),
    { responsive: true, displaylogo: false });
  }

  // ---------------- operator ----------------
  async function operatorPage() {
    await header();
    const [sites, buildings] = await Promise.all([api("/sites?limit=1000"), api("/buildings?limit=1000")]);
    const bySite = {};
    buildings.items.forEach((b) => (bySite[b.site_id] ||= []).push(b));
    // a plain coordinate canvas: offline, no map tiles
    Plotly.react("map", [{
      type: "scatter", mode: "markers+text", x: sites.items.map((s) => s.longitude), y: sites.items.map((s) => s.latitude),
      text: sites.items.map((s) => `${s.name} (${(bySite[s.id] || []).length})`), textposition: "top center",
      marker: { size: sites.items.map((s) => 14 + 4 * (bySite[s.id] || []).length), color: PALETTE[0] },
      customdata: sites.items.map((s) => s.id),
    }], layout({ xaxis: { title: "longitude" }, yaxis: { title: "latitude", scaleanchor: "x" } }),
    { responsive: true, displaylogo: false });
    el("buildings").innerHTML = "<tr><th>Building</th><th>Address</th><th>Layout</th><th>Floors</th></tr>" +
      buildings.items.map((b) => `<tr><td><a href="/ops/buildings/${b.id}">${esc(b.name)}</a></td><td>${esc(b.address)}</td><td>${esc(b.layout)}</td><td>${b.floors}</td></tr>`).join("");
  }

  async function alertsPage() {
    const me = await header();
    const canAct = me.scopes.includes("operate");
    const draw = async () => {
      const state = el("alert-state").value;
      const page = await api(`/alerts?limit=200${state ? `&state=${state}` : ""}`);
      el("alert-queue").innerHTML = "<tr><th>Opened</th><th>Kind</th><th>Summary</th><th>State</th><th></th></tr>" +
        page.items.map((a) => `<tr data-alert="${a.id}"><td>${new Date(a.opened_at).toLocaleString()}</td><td>${esc(a.kind)}</td>
          <td>${esc(a.summary)}</td><td>${esc(a.state)}${a.acknowledged_by ? ` · ack ${esc(a.acknowledged_by)}` : ""}</td>
          <td>${canAct && a.state === "open" ? `<button data-act="acknowledge">Acknowledge</button> <button class="secondary" data-act="resolve">Resolve</button>` : ""}</td></tr>`).join("");
      el("alert-queue").querySelectorAll("button").forEach((b) => b.addEventListener("click", async () => {
        const id = b.closest("tr").dataset.alert;
        if (!confirm(`${b.dataset.act} alert ${id}?`)) return;
        await post(`/alerts/${id}/${b.dataset.act}`, { note: "" });
        await draw();
      }));
    };
    el("alert-state").addEventListener("change", draw);
    await optional(draw, "alert-queue");
  }

  async function buildingPage(buildingId) {
    const me = await header();
    const [building, overview, entrances, risers, flats] = await Promise.all([
      api(`/buildings/${buildingId}`), api(`/buildings/${buildingId}/overview`), api(`/buildings/${buildingId}/entrances`),
      api(`/buildings/${buildingId}/risers`), api(`/flats?building_id=${buildingId}&limit=1000`),
    ]);
    document.querySelector("h1").textContent = building.name;
    const stat = (label, value, cls = "") => `<div class="card"><h2>${label}</h2><p class="big ${cls}">${value ?? "–"}</p></div>`;
    el("overview").innerHTML = stat("Flats", overview.flats) + stat("Meters", overview.meters) + stat("Modules", overview.modules) +
      stat("Silent 24 h", overview.modules_silent_24h, overview.modules_silent_24h ? "low" : "ok") +
      stat("Low battery", overview.modules_low_battery, overview.modules_low_battery ? "low" : "ok") + stat("Open alerts", overview.open_alerts);
    Plotly.react("chart-overview", [
      { type: "bar", name: "Building meter", x: xs(overview.building_heat_last_30d), y: ys(overview.building_heat_last_30d), marker: { color: "#94a3b8" } },
      { type: "scatter", mode: "lines+markers", name: "Flats measured", x: xs(overview.flats_measured_last_30d), y: ys(overview.flats_measured_last_30d), line: { color: PALETTE[0] } },
    ], layout({ yaxis: { title: "kWh / day" } }), { responsive: true, displaylogo: false });
    el("drill").innerHTML = entrances.map((e) => `<details><summary>Entrance ${e.number}</summary>` +
      risers.filter((r) => r.entrance_id === e.id).map((r) => `<details><summary>Riser ${r.number}</summary><ul>` +
        `<li data-riser="${r.id}">loading…</li></ul></details>`).join("") +
      `<details><summary>Flats</summary><ul>${flats.items.filter((f) => f.entrance_id === e.id).map((f) =>
        `<li>Flat ${esc(f.number)}, floor ${f.floor}, ${f.rooms} rooms, ${f.area_m2} m²</li>`).join("")}</ul></details></details>`).join("");
    el("drill").querySelectorAll("[data-riser]").forEach((li) => li.closest("details").addEventListener("toggle", async () => {
      const page = await api(`/flats?riser_id=${li.dataset.riser}&limit=100`);
      li.outerHTML = page.items.map((f) => `<li>Flat ${esc(f.number)} (floor ${f.floor})</li>`).join("");
    }, { once: true }));
    await optional(async () => {
      const groups = await api(`/balance-groups?building_id=${buildingId}`);
      if (!groups.items.length) el("chart-imbalance").innerHTML = "<p>No balance groups in this building yet.</p>";
      el("group").innerHTML = groups.items.map((g) => `<option value="${g.id}">${esc(g.name)} (${esc(g.utility)})</option>`).join("");
      const draw = async () => {
        if (!el("group").value) return;
        let s;
        try {
          s = await api(`/balance-groups/${el("group").value}/imbalance?resolution=day`);
        } catch (e) {
          Plotly.purge("chart-imbalance");
          el("chart-imbalance").innerHTML = `<p class="error">${esc(e.message)}</p>`;
          return;
        }
        if (!s.points.length) {
          Plotly.purge("chart-imbalance");
          el("chart-imbalance").innerHTML = `<p>${esc(s.note)}</p>`;
          return;
        }
        // balance's series with the band it learned for the group (in the series' unit)
        const t = s.points.map((p) => p.t);
        const low = s.points.map((p) => p.band_low);
        const high = s.points.map((p) => p.band_high);
        Plotly.react("chart-imbalance", [
          { type: "scatter", mode: "lines", name: "Normal band", x: t.concat([...t].reverse()),
            y: high.concat([...low].reverse()), fill: "toself", fillcolor: "rgba(21,128,61,.12)", line: { width: 0 } },
          { type: "scatter", mode: "lines+markers", name: `Imbalance (${s.unit})`, x: t,
            y: s.points.map((p) => p.imbalance), line: { color: PALETTE[0] } },
        ], layout({ yaxis: { title: s.unit } }), { responsive: true, displaylogo: false });
      };
      el("group").addEventListener("change", draw);
      await draw();
    }, "chart-imbalance");
    await drawRanking(buildingId);
    const modules = await api(`/modules?building_id=${buildingId}&limit=1000`);
    const children = {};
    modules.items.forEach((m) => (children[m.parent_serial ?? "none"] ||= []).push(m));
    const node = (m) => `<li>${m.serial} <span class="pill">${m.hops ?? "?"} hops</span>
      <span class="${m.battery_mv !== null && m.battery_mv < 3300 ? "low" : ""}">${m.battery_mv ?? "–"} mV</span>
      · ${m.rssi_dbm ?? "–"} dBm · ${m.last_seen ? new Date(m.last_seen).toLocaleString() : "never seen"}
      ${(children[m.serial] || []).length ? `<ul>${children[m.serial].map(node).join("")}</ul>` : ""}</li>`;
    const known = new Set(modules.items.map((m) => m.serial));
    const roots = modules.items.filter((m) => !known.has(m.parent_serial));
    el("mesh").innerHTML = `<ul><li>Concentrator<ul>${roots.map(node).join("")}</ul></li></ul>`;
    const seen = modules.items.filter((m) => m.last_seen);
    const low = modules.items.filter((m) => m.battery_mv !== null && m.battery_mv < 3300);
    el("mesh-summary").innerHTML = `${modules.items.length} modules · ${seen.length} reporting · ` +
      `<span class="${low.length ? "low" : ""}">${low.length} low battery</span> · ` +
      `max ${Math.max(0, ...seen.map((m) => m.hops ?? 0))} hops`;
    const valves = await api(`/meters?building_id=${buildingId}&limit=1000`);
    const canAct = me.scopes.includes("operate");
    el("valves").innerHTML = "<tr><th>Meter</th><th>Utility</th><th>Flat</th><th></th></tr>" + valves.items.filter((m) => m.has_valve).map((m) =>
      `<tr><td>${esc(m.serial)}</td><td>${esc(m.utility)}</td><td>${m.flat_id ?? ""}</td><td>${canAct ?
        `<button data-meter="${m.id}" data-action="valve_close">Close valve</button> <button class="secondary" data-meter="${m.id}" data-action="valve_open">Open valve</button>` : ""}</td></tr>`).join("");
    el("valves").querySelectorAll("button").forEach((b) => b.addEventListener("click", async () => {
      if (!confirm(`${b.dataset.action.replace("_", " ")} on meter ${b.dataset.meter}?`)) return;
      let c = await post(`/meters/${b.dataset.meter}/commands`, { action: b.dataset.action, reason: "portal" });
      el("command-status").textContent = `command ${c.id}: ${c.status}`;
      for (let i = 0; i < 30 && c.status === "pending"; i++) {
        await new Promise((r) => setTimeout(r, 1000));
        c = await api(`/commands/${c.id}`);
        el("command-status").textContent = `command ${c.id}: ${c.status} ${c.detail}`;
      }
    }));
  }

  // The pages carry no inline script (the Content-Security-Policy forbids it): each names
  // itself in <body data-page> and the handlers are attached here.
  const PAGES = {
    login: () => el("login").addEventListener("submit", login),
    consumer: consumerPage,
    operator: operatorPage,
    alerts: alertsPage,
    building: () => buildingPage(Number(document.body.dataset.buildingId)),
  };
  document.addEventListener("DOMContentLoaded", () => {
    el("logout").addEventListener("click", logout);
    PAGES[document.body.dataset.page]();
  });
  return { login, logout, consumerPage, operatorPage, alertsPage, buildingPage };
})();
