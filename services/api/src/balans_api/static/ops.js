// balans operator pages: the alert queue, one alert's investigation, a flat's page and the
// search. Loaded after portal.js, whose helpers it uses; each page registers under its
// template's name.
"use strict";
(() => {
  const {
    api, post, header, t, esc, el, when, wall, xs, setSiteZone, fmt, utility, command, layout, plotConfig, PALETTE, ALERT_KINDS,
    ALERT_STATES, qty, unit, none, optional, LOCALE, VALVE_STATES, COMMAND_STATUS, valveButtons, reasonHtml, fill,
  } = balans;
  const idFromPath = () => Number(location.pathname.split("/").pop());
  const head = (names) => `<tr>${names.map((n) => `<th>${esc(n)}</th>`).join("")}</tr>`;
  const data = (v) => `<span class="data">${esc(v)}</span>`;
  const day = (d) => new Date(`${String(d).slice(0, 10)}T12:00:00Z`).toLocaleDateString(LOCALE, { timeZone: "UTC" });
  const kind = (k) => ALERT_KINDS[k] || k;
  const SEVERITIES = { info: t("information"), warning: t("warning"), critical: t("critical") };

  const began = (a) => (a.began_before ? t("since before {when}", { when: when(a.began_at) }) : when(a.began_at));
  // where the fault is: the flat (a link), the riser, the group, the meter or module
  const where = (a) => [
    a.flat_id ? `<a href="/ops/flats/${a.flat_id}">${esc(t("Flat {number}", { number: a.flat_number }))}</a>` : "",
    a.riser_number !== null ? esc(t("Riser {number}", { number: a.riser_number })) : "",
    a.group_name && !a.flat_id ? `${esc(t("group"))} ${data(a.group_name)}` : "",
    a.meter_serial ? `${esc(t("meter"))} ${data(a.meter_serial)}` : a.module_serial ? `${esc(t("module"))} ${data(a.module_serial)}` : "",
  ].filter(Boolean).join(" · ");

  // ---------------- the queue ----------------
  async function alertsPage() {
    await header();
    const form = el("alert-filters");
    const query = new URLSearchParams(location.search);
    const buildings = await api("/buildings?limit=1000");
    form.building_id.insertAdjacentHTML("beforeend", buildings.items.map((b) => `<option class="data" value="${b.id}">${esc(b.name)}</option>`).join(""));
    form.kind.insertAdjacentHTML("beforeend", Object.keys(ALERT_KINDS).filter((k) => k !== "consumer_leak")
      .map((k) => `<option value="${k}">${esc(kind(k))}</option>`).join(""));
    for (const name of ["state", "building_id", "kind", "since", "sort"]) if (query.has(name)) form[name].value = query.get(name);
    let cursor = null;
    const filters = () => {
      const q = new URLSearchParams();
      for (const name of ["state", "building_id", "kind", "sort"]) if (form[name].value) q.set(name, form[name].value);
      if (form.since.value) q.set("since", form.since.value);
      return q;
    };
    const row = (a) => `<tr data-alert="${a.id}">
      <td><a href="/ops/alerts/${a.id}">${esc(began(a))}</a></td>
      <td>${a.building_id ? `<a class="data" href="/ops/buildings/${a.building_id}">${esc(a.building_name)}</a>` : ""}</td>
      <td>${where(a)}</td><td><a href="/ops/alerts/${a.id}">${esc(kind(a.kind))}</a></td><td>${reasonHtml(a)}</td>
      <td>${esc(ALERT_STATES[a.state] || a.state)}${a.acknowledged_by ? ` · ${esc(t("acknowledged by {who}", { who: a.acknowledged_by }))}` : ""}</td></tr>`;
    const more = async () => {
      const q = filters();
      q.set("limit", "100");
      if (cursor) q.set("cursor", cursor);
      const page = await api(`/alerts?${q}`);
      el("alert-queue").insertAdjacentHTML("beforeend", page.items.map(row).join(""));
      cursor = page.next_cursor;
      el("alert-more").hidden = !cursor;
    };
    const draw = async () => {
      cursor = null;
      history.replaceState(null, "", `?${filters()}`);
      el("alert-queue").innerHTML = head([t("Fault began"), t("Building"), t("Where"), t("Kind"), t("Why"), t("State")]);
      const counts = filters();
      counts.delete("state");
      counts.delete("sort");
      counts.delete("kind");
      const c = await api(`/alerts/counts?${counts}`);
      el("alert-counts").innerHTML = Object.entries(c.by_kind).map(([k, n]) =>
        `<button type="button" class="chip" data-kind="${esc(k)}">${esc(kind(k))}: ${esc(t("{open} open of {total}", { open: c.open_by_kind[k] || 0, total: n }))}</button>`).join(" ")
        || esc(t("No alerts."));
      el("alert-counts").querySelectorAll("[data-kind]").forEach((b) => b.addEventListener("click", () => {
        form.kind.value = b.dataset.kind;
        optional(draw, "alert-queue");
      }));
      await more();
    };
    form.addEventListener("change", () => optional(draw, "alert-queue"));
    el("alert-more").addEventListener("click", () => optional(more, "alert-queue"));
    await optional(draw, "alert-queue");
  }

  // ---------------- one alert ----------------
  // the charts' titles as HTML (serials and group names are data)
  const SERIES = {
    meter: (a, s) => fill(t("Meter {serial}: use per {period} ({unit})"),
      (n) => ({ serial: data(a.meter_serial), period: esc(PERIODS[s.resolution]), unit: esc(unit(s.unit)) })[n]),
    group: (a, s) => fill(t("Group {group}: the balance meter and its members ({unit})"),
      (n) => ({ group: data(a.group_name), unit: esc(unit(s.unit)) })[n]),
    imbalance: (a, s) => esc(t("Imbalance and its normal band ({unit})", { unit: unit(s.unit) })),
    imbalance_share: () => esc(t("Imbalance as a share of the balance meter, hourly (%)")),
    peers: (a, s) => fill(t("Meter {serial} against what its peers predict, hourly ({unit})"),
      (n) => ({ serial: data(a.meter_serial), unit: esc(unit(s.unit)) })[n]),
  };
  const PERIODS = { hour: t("hour"), day: t("day") };
  const LINES = {
    meter: t("the meter"), balance_meter: t("balance meter"), members: t("members' sum"),
    imbalance: t("imbalance"), imbalance_share: t("imbalance share"),
    meter_hourly: t("what the meter registered"), peers_predicted: t("what its peers predict"),
  };
  // the fault's span shaded, the detection as a dotted line
  const faultShapes = (a) => [
    { type: "rect", xref: "x", yref: "paper", x0: wall(a.began_at), x1: wall(a.last_hour), y0: 0, y1: 1,
      fillcolor: "rgba(185,28,28,.10)", line: { width: 0 }, layer: "below" },
    ...(a.detected_at ? [{ type: "line", xref: "x", yref: "paper", x0: wall(a.detected_at), x1: wall(a.detected_at), y0: 0, y1: 1,
      line: { color: "#b91c1c", dash: "dot", width: 1.5 } }] : []),
  ];
  const values = (s, scale = 1) => s.values.map((v) => (none(v) ? null : v * scale));
  const times = (s) => xs(s);
  function evidenceCharts(a) {
    const by = Object.fromEntries(a.series.map((s) => [s.name, s]));
    const charts = [];
    if (by.meter) {
      charts.push(["meter", SERIES.meter(a, by.meter), [{ type: "bar", name: LINES.meter, x: times(by.meter), y: values(by.meter), marker: { color: PALETTE[1] } }], unit(by.meter.unit)]);
    }
    if (by.peers_predicted && by.meter_hourly) {
      const s = by.peers_predicted;
      charts.push(["peers", SERIES.peers(a, s), [
        { type: "bar", name: LINES.meter_hourly, x: times(by.meter_hourly), y: values(by.meter_hourly), marker: { color: PALETTE[1] } },
        { type: "scatter", mode: "lines", name: LINES.peers_predicted, x: times(s), y: values(s), line: { color: PALETTE[0] }, connectgaps: false },
      ], unit(s.unit)]);
    }
    if (by.balance_meter) {
      const s = by.balance_meter;
      charts.push(["group", SERIES.group(a, s), ["balance_meter", "members"].map((name, i) => ({
        type: "scatter", mode: "lines+markers", name: LINES[name], x: times(by[name]), y: values(by[name]), line: { color: PALETTE[i] },
      })), unit(s.unit)]);
      const x = times(by.imbalance);
      charts.push(["imbalance", SERIES.imbalance(a, s), [
        { type: "scatter", mode: "lines", name: t("Normal band"), x: x.concat([...x].reverse()),
          y: values(by.band_high).concat(values(by.band_low).reverse()), fill: "toself", fillcolor: "rgba(21,128,61,.12)", line: { width: 0 } },
        { type: "scatter", mode: "lines+markers", name: LINES.imbalance, x, y: values(by.imbalance), line: { color: PALETTE[0] } },
      ], unit(s.unit)]);
    }
    if (by.imbalance_share) {
      const s = by.imbalance_share;
      charts.push(["imbalance_share", SERIES.imbalance_share(), [
        { type: "scatter", mode: "lines", name: LINES.imbalance_share, x: times(s), y: values(s, 100), line: { color: PALETTE[0] }, connectgaps: false },
      ], "%"]);
    }
    el("evidence-charts").innerHTML = charts.map(([id, title]) => `<h3>${title}</h3><div id="evidence-${id}" class="chart"></div>`).join("")
      || `<p>${esc(t("No series for this alert: the figures above are its evidence."))}</p>`;
    for (const [id, , traces, yTitle] of charts) {
      // the series' own hours: the fault's span is drawn where it overlaps them
      const xs = traces.flatMap((tr) => tr.x).filter((x) => x).sort();
      const xaxis = { range: [xs[0], xs[xs.length - 1]] };
      Plotly.react(`evidence-${id}`, traces, layout({ shapes: faultShapes(a), xaxis, yaxis: { title: yTitle } }), plotConfig);
    }
  }
  const FIGURES = {
    loss: t("share of use the meter missed"), step_glr: t("step statistic"), ramp_glr: t("ramp statistic"),
    coefficient: t("fitted change"), significance_z2: t("significance (z²)"), excess_total: t("excess in total"),
    excess_share: t("excess as a share of the balance meter"), use_slope_t: t("follows the members' use (t)"),
    return_dt_shift_k: t("return ΔT shift, K"), return_dt_noise_k: t("return ΔT noise, K"), riser_dt_change: t("riser ΔT change"),
    shape: t("shape of the change"), unit: t("unit"), group: t("group"), meter_serial: t("meter"), concentrator_serial: t("concentrator"),
    series_from: t("series from"),
  };
  const SHARES = new Set(["loss", "excess_share"]);
  const figure = (name, v) => {
    if (typeof v === "number") return SHARES.has(name) ? `${fmt(100 * v, 1)} %` : fmt(v, Math.abs(v) >= 100 ? 0 : 2);
    if (typeof v === "string" && /^\d{4}-\d{2}-\d{2}T/.test(v)) return when(v);
    return v;
  };
  async function alertPage() {
    const me = await header();
    const id = idFromPath();
    const a = await api(`/alerts/${id}`);
    setSiteZone(a.timezone);
    document.querySelector("h1").textContent = t("Alert {id}: {kind}", { id, kind: kind(a.kind) });
    document.title = `${document.querySelector("h1").textContent} · balans`;
    const rows = [
      [t("Kind"), `${esc(kind(a.kind))} <span class="pill">${esc(SEVERITIES[a.severity] || a.severity)}</span>`],
      [t("State"), esc(ALERT_STATES[a.state] || a.state)],
      [t("Building"), a.building_id ? `<a class="data" href="/ops/buildings/${a.building_id}">${esc(a.building_name)}</a>` : ""],
      [t("Balance group"), a.group_name ? data(a.group_name) : ""],
      [t("Flat"), a.flat_id ? `<a href="/ops/flats/${a.flat_id}">${esc(t("Flat {number}", { number: a.flat_number }))}</a>` : ""],
      [t("Riser"), a.riser_number !== null ? esc(t("Riser {number}", { number: a.riser_number })) : ""],
      [t("Meter"), a.meter_serial ? data(a.meter_serial) : ""],
      [t("Module"), a.module_serial ? data(a.module_serial) : ""],
      [t("Fault began"), esc(began(a))],
      [t("Detected"), esc(a.detected_at ? when(a.detected_at) : t("no data"))],
      [t("Alert written"), esc(when(a.opened_at))],
      [t("Last seen"), esc(when(a.last_hour))],
      [t("Closed"), a.closed_at ? esc(when(a.closed_at)) : ""],
    ].filter(([, v]) => v);
    el("alert-facts").innerHTML = rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${v}</td></tr>`).join("");
    el("alert-reason").innerHTML = reasonHtml(a);
    el("alert-also").textContent = a.also_possible.length
      ? t("The data fits as well: {kinds}.", { kinds: a.also_possible.map(kind).join(", ") }) : "";
    el("alert-figures").innerHTML = Object.entries(a.figures).map(([k, v]) =>
      `<tr><th>${esc(FIGURES[k] || k)}</th><td class="data">${esc(figure(k, v))}</td></tr>`).join("");
    evidenceCharts(a);
    const ACTIONS = { opened: t("opened by balance"), acknowledged: t("acknowledged"), resolved: t("resolved"), dismissed: t("dismissed (a false alarm)"), closed: t("closed (the fault ended)") };
    el("alert-history").innerHTML = head([t("When"), t("Who"), t("What"), t("Note")]) + a.history.map((e) =>
      `<tr><td>${esc(when(e.at))}</td><td class="data">${esc(e.actor)}</td><td>${esc(ACTIONS[e.action] || e.action)}</td><td class="data">${esc(e.note)}</td></tr>`).join("");
    const canAct = me.scopes.includes("operate") && a.state === "open";
    el("alert-actions").hidden = !me.scopes.includes("operate");
    ["alert-acknowledge", "alert-resolve", "alert-dismiss"].forEach((b) => { el(b).disabled = !canAct; });
    el("alert-valve").hidden = !(canAct && a.meter_has_valve);
    const act = async (action) => {
      try {
        await post(`/alerts/${id}/${action}`, { note: el("alert-note").value });
        location.reload();
      } catch (e) {
        el("alert-status").textContent = e.message;
      }
    };
    el("alert-acknowledge").addEventListener("click", () => act("acknowledge"));
    ["resolve", "dismiss"].forEach((action) => el(`alert-${action}`).addEventListener("click", () => {
      if (!el("alert-note").value.trim()) {
        el("alert-status").textContent = t("Write a note: what was found or done.");
        return;
      }
      act(action);
    }));
    el("alert-valve").addEventListener("click", () => command(a.meter_id, a.meter_serial, "valve_close", el("alert-status")));
  }

  // ---------------- one flat ----------------
  const OWN_HEAT = {
    "1a": t("Own heat: the flat's heat meter."),
    "1b": t("Own heat: the volume through the flat × the ΔT of its distributor × k."),
    "1c": t("Own heat: the building meter's heat shared by the volumes of the flats' meters."),
    "2a": t("Own heat: each riser's flow × the ΔT at the flat's radiators × k."),
    "2b": t("Own heat: the riser's heat shared among its flats."),
  };
  const SHARED_BY = {
    area: t("by floor area: each flat pays the building's common heat in proportion to its m²"),
    consumption: t("in proportion to what each flat's meters measured"),
    fixed: t("a fixed part by measured consumption ({share} %) and the rest by floor area"),
  };
  const dbm = (v) => (none(v) ? "–" : `${v} dBm`);
  const mv = (v) => (none(v) ? "–" : `<span class="${v < 3300 ? "low" : ""}">${fmt(v / 1000, 2)} V</span>`);
  const isoDay = (d) => d.toLocaleDateString("en-CA");  // YYYY-MM-DD, the browser's local day
  // how an hour's own heat came about, in numbers where the layout has them
  const ownHeat = (h) => (none(h.volume_m3) || none(h.delta_t_k) || none(h.k_kwh_per_m3k) ? ""
    : t("{volume} m³ × {dt} K × {k} kWh/(m³·K)", { volume: fmt(h.volume_m3, 3), dt: fmt(h.delta_t_k, 1), k: fmt(h.k_kwh_per_m3k, 3) }));

  async function drawTrail(flatId) {
    const x = await api(`/flats/${flatId}/explain?from=${el("trail-from").value}&to=${el("trail-to").value}`);
    const p = x.parts;
    el("trail-parts").innerHTML = [
      [t("Total"), qty(p.total_kwh, "kWh", 3)],
      [t("measured by the flat's own meters"), qty(p.measured_kwh, "kWh", 3)],
      [t("share of the building's common heat"), `${qty(p.common_kwh, "kWh", 3)}${none(p.common_share_pct) ? "" : ` (${fmt(p.common_share_pct, 0)} %)`}`],
      [t("adjustment by the building's rules (minimum charge, caps)"), qty(p.adjustment_kwh, "kWh", 3)],
      [t("estimated hours"), t("{estimated} of {hours} hours with data", { estimated: p.estimated_hours, hours: p.hours })],
    ].map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join("");
    const split = x.methodology.split || "area";
    el("trail-method").textContent = [
      OWN_HEAT[x.layout] || "",
      t("The common heat (the building meter minus what the flats measured: pipes, staircases, losses) is shared {how}.",
        { how: (SHARED_BY[split] || split).replace("{share}", fmt(100 * (x.methodology.consumption_share ?? 0.7), 0)) }),
    ].join(" ");
    const hours = x.hours || [];
    const hx = hours.map((h) => wall(h.t));
    Plotly.react("chart-trail", [
      { type: "bar", name: t("own metered"), x: hx, y: hours.map((h) => h.measured_kwh), marker: { color: PALETTE[1] } },
      { type: "bar", name: t("common share"), x: hx, y: hours.map((h) => h.common_kwh), marker: { color: "#94a3b8" } },
      { type: "bar", name: t("adjustment"), x: hx, y: hours.map((h) => h.adjustment_kwh), marker: { color: PALETTE[3] } },
    ], layout({ barmode: "relative", yaxis: { title: t("{unit} per hour", { unit: unit("kWh") }) } }), plotConfig);
    el("trail-hours").innerHTML = head([t("Hour"), t("Total"), t("own metered"), t("how"), t("common share"), t("adjustment"), ""]) +
      hours.map((h) => `<tr><td>${esc(when(h.t))}</td><td>${esc(fmt(h.total_kwh, 3))}</td><td>${esc(fmt(h.measured_kwh, 3))}</td>
        <td>${esc(ownHeat(h))}</td><td>${esc(fmt(h.common_kwh, 3))}</td><td>${esc(fmt(h.adjustment_kwh, 3))}</td>
        <td>${h.estimated ? `<span class="pill">${esc(t("estimated"))}</span>` : ""}</td></tr>`).join("");
  }

  async function flatPage() {
    const me = await header();
    const flatId = idFromPath();
    const card = await api(`/flats/${flatId}/card`);
    setSiteZone(card.timezone);
    document.querySelector("h1").textContent = t("Flat {number}", { number: card.number });
    document.title = `${document.querySelector("h1").textContent} · balans`;
    el("flat-where").innerHTML = `<a class="data" href="/ops/buildings/${card.building_id}">${esc(card.building_name)}</a> · ${data(card.address)} · `
      + esc(t("floor {floor}, {rooms} rooms, {area} m²", { floor: card.floor, rooms: card.rooms, area: fmt(card.area_m2, 1) }));
    el("flat-accounts").innerHTML = head([t("Account"), t("Holder"), t("Residents"), t("From"), t("Until")]) + card.accounts.map((a) =>
      `<tr><td class="data">${esc(a.number)}</td><td class="data">${esc(a.holder_name)}</td><td>${a.residents}</td>
        <td>${esc(a.opened_on ? day(a.opened_on) : t("since metering began"))}</td><td>${esc(a.closed_on ? day(a.closed_on) : t("today"))}</td></tr>`).join("");
    el("flat-alerts").innerHTML = card.open_alerts.map((a) =>
      `<li><a href="/ops/alerts/${a.id}">${esc(kind(a.kind))}</a> · ${esc(began(a))} · ${reasonHtml(a)}</li>`).join("")
      || `<li>${esc(t("No open alerts."))}</li>`;
    const canAct = me.scopes.includes("operate");
    el("flat-meters").innerHTML = head([t("Meter"), t("Utility"), t("Last reading"), t("Module"), t("Battery"), t("Signal"), t("Hops"), t("Last seen"), t("Valve"), ""]) +
      card.meters.map((m) => `<tr data-meter="${m.id}"><td class="data">${esc(m.serial)}</td><td>${esc(utility(m.utility))}</td>
        <td>${esc(none(m.reading) ? t("no data") : `${qty(m.reading, m.unit, 3)} · ${when(m.reading_at)}`)}</td>
        <td class="data">${esc(m.module_serial ?? "–")}</td><td>${mv(m.battery_mv)}</td><td>${esc(dbm(m.rssi_dbm))}</td><td>${esc(m.hops ?? "–")}</td>
        <td>${esc(m.last_seen ? when(m.last_seen) : t("never seen"))}</td><td>${esc(VALVE_STATES[m.valve_state] || "")}</td>
        <td>${canAct && m.has_valve ? valveButtons(m) : ""}</td></tr>`).join("");
    el("flat-meters").querySelectorAll("button").forEach((b) => b.addEventListener("click", async () => {
      if (await command(b.dataset.meter, b.dataset.serial, b.dataset.action, el("command-status"))) location.reload();
    }));
    const serials = Object.fromEntries(card.meters.map((m) => [m.id, m.serial]));
    const ACTIONS = { valve_close: t("close valve"), valve_open: t("open valve"), relay_on: t("relay on"), relay_off: t("relay off"), ping: t("ping") };
    el("flat-commands").innerHTML = card.commands.length ? head([t("When"), t("Meter"), t("Command"), t("Status"), t("Who")]) + card.commands.map((c) =>
      `<tr><td>${esc(when(c.created_at))}</td><td class="data">${esc(serials[c.meter_id])}</td><td>${esc(ACTIONS[c.action] || c.action)}</td>
        <td>${esc(COMMAND_STATUS[c.status] || c.status)} <span class="data">${esc(c.detail)}</span></td><td class="data">${esc(c.requested_by)}</td></tr>`).join("")
      : `<tr><td>${esc(t("No commands yet."))}</td></tr>`;
    const today = new Date();
    el("trail-to").value = isoDay(today);
    el("trail-from").value = isoDay(new Date(today.getTime() - 2 * 86400e3));
    const redraw = () => optional(() => drawTrail(flatId), "trail-hours");
    el("trail-from").addEventListener("change", redraw);
    el("trail-to").addEventListener("change", redraw);
    await redraw();
  }

  // ---------------- search ----------------
  async function searchPage() {
    await header();
    const q = new URLSearchParams(location.search).get("q") || "";
    el("search-q").value = q;
    if (!q.trim()) return;
    const MATCHED = { flat: t("flat and address"), account: t("account"), holder: t("holder"), meter: t("meter"), module: t("module") };
    el("search-results").innerHTML = head([t("Flat"), t("Building"), t("Address"), t("Found by")]);
    let cursor = null;
    const more = async () => {
      const page = await api(`/search?${new URLSearchParams({ q, limit: "50", ...(cursor ? { cursor } : {}) })}`);
      el("search-results").insertAdjacentHTML("beforeend", page.items.map((h) =>
        `<tr><td><a href="/ops/flats/${h.id}">${esc(t("Flat {number}", { number: h.number }))}</a></td>
          <td><a class="data" href="/ops/buildings/${h.building_id}">${esc(h.building_name)}</a></td><td class="data">${esc(h.address)}</td>
          <td>${esc(MATCHED[h.matched] || h.matched)}: <span class="data">${esc(h.value)}</span></td></tr>`).join(""));
      if (!cursor && !page.items.length) el("search-results").insertAdjacentHTML("beforeend", `<tr><td>${esc(t("Nothing found."))}</td></tr>`);
      cursor = page.next_cursor;
      el("search-more").hidden = !cursor;
    };
    el("search-more").addEventListener("click", () => optional(more, "search-results"));
    await optional(more, "search-results");
  }

  Object.assign(balans.pages, { alerts: alertsPage, alert: alertPage, flat: flatPage, search: searchPage });
})();
