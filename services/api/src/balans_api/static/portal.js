// balans portal: fetches /api/v1 with the bearer token kept in sessionStorage and draws
// with Plotly (served by the api from the plotly wheel). Every text goes through t(), read
// from the same gettext catalogs as the pages (/i18n/<locale>.js sets BALANS_I18N).
"use strict";
const balans = (() => {
  const API = "/api/v1";
  const token = () => sessionStorage.getItem("balans.token");
  const I18N = window.BALANS_I18N || { locale: "en", messages: {}, units: {} };
  const LOCALE = { ro: "ro-MD", ru: "ru-MD", en: "en-GB" }[I18N.locale] || "en-GB";
  // a message of the catalog with its {placeholders} filled
  const t = (message, values = {}) =>
    (I18N.messages[message] || message).replace(/\{(\w+)\}/g, (m, k) => (k in values ? values[k] : m));
  const none = (v) => v === null || v === undefined;
  const fmt = (v, d = 1) => (none(v) ? t("no data")
    : new Intl.NumberFormat(LOCALE, { minimumFractionDigits: d, maximumFractionDigits: d }).format(v));
  const unit = (u) => I18N.units[u] || u;
  const qty = (v, u, d = 1) => (none(v) ? t("no data") : `${fmt(v, d)}\u00a0${unit(u)}`);
  const pct = (v) => (none(v) ? "" : ` (${v > 0 ? "+" : ""}${fmt(v)} %)`);
  // the code (MDL), as on the invoice: ru-MD would write the leu as "L"
  const money = (v, currency) => new Intl.NumberFormat(LOCALE, { style: "currency", currency, currencyDisplay: "code" }).format(Number(v));
  // times are shown in the zone of the site a page is about (setSiteZone), else the browser's
  let siteZone;
  const setSiteZone = (tz) => { siteZone = tz || undefined; };
  const when = (ts) => new Date(ts).toLocaleString(LOCALE, siteZone ? { timeZone: siteZone } : {});
  const UTILITIES = {
    heat: t("heat"), cold_water: t("cold water"), hot_water: t("hot water"), gas: t("gas"),
    electricity: t("electricity"),
  };
  const utility = (u) => UTILITIES[u] || u;
  const ALERT_KINDS = {
    leak: t("leak suspected"), consumer_leak: t("leak suspected"), magnet: t("magnet tampering suspected"),
    stuck_meter: t("stuck meter"), drifting_meter: t("drifting meter"), clogged_riser: t("clogged riser"),
    unauthorised_connection: t("unauthorised connection"), faulty_balance_meter: t("faulty building meter"),
    low_battery: t("low battery"), use_changed: t("use changed"), balance_excess: t("balance excess"),
    dead_module: t("module silent"), concentrator_silent: t("concentrator silent"), missing_data: t("no readings"),
    verification_due: t("verification due"), faulty_sensor: t("faulty temperature sensor"),
  };
  const ALERT_STATES = { open: t("open"), acknowledged: t("acknowledged"), closed: t("closed") };
  // a balance group's metering coverage and its losses, in words (the building page)
  const groupInfo = (g) => {
    if (!g || none(g.flats_served)) return "";
    return g.coverage_complete === false
      ? t("Incomplete: {metered} of {served} flats metered, so this group raises no imbalance alerts.", { metered: g.flats_metered, served: g.flats_served })
      : t("{metered} of {served} flats metered.", { metered: g.flats_metered, served: g.flats_served });
  };
  const lossesInfo = (l) => (!l ? "" : t("Losses over the chart: {loss} ({pct} of the group's meter, {building} of the building meter; expected {expected}, target {target})", {
    loss: qty(l.loss, l.unit), pct: none(l.loss_pct) ? t("no data") : `${fmt(l.loss_pct, 1)} %`,
    building: none(l.loss_pct_of_building) ? t("no data") : `${fmt(l.loss_pct_of_building, 1)} %`,
    expected: qty(l.expected_loss, l.unit), target: none(l.target_pct) ? t("none set") : `${fmt(l.target_pct, 0)} %`,
  }));
  const el = (id) => document.getElementById(id);
  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  // Invoices cover whole local months: the middle of the period names the month whatever the
  // site's time zone (period_start is a UTC instant, e.g. 2026-09-30T21:00Z for October in Chisinau).
  const billingMonth = (invoice) =>
    new Date((Date.parse(invoice.period_start) + Date.parse(invoice.period_end)) / 2)
      .toISOString()
      .slice(0, 7);
  const PALETTE = ["#c2410c", "#2563eb", "#15803d", "#7c3aed", "#db2777", "#0891b2"];
  const plotConfig = { responsive: true, displaylogo: false, locale: I18N.locale };
  // Plotly 3 takes an axis title only as {text}: a plain string is dropped without a word
  const titled = (axis) => (typeof axis?.title === "string" ? { ...axis, title: { text: axis.title } } : axis);
  const layout = (extra = {}) => {
    const out = { margin: { l: 60, r: 20, t: 10, b: 40 }, legend: { orientation: "h" }, hovermode: "x unified", ...extra };
    for (const key of Object.keys(out)) if (/^[xy]axis\d*$/.test(key)) out[key] = titled(out[key]);
    return out;
  };

  async function api(path, options = {}) {
    const headers = { Authorization: `Bearer ${token()}`, ...(options.headers || {}) };
    const response = await fetch(API + path, { ...options, headers });
    if (response.status === 401) { location.href = "/login"; throw new Error("signed out"); }
    const body = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
    if (!response.ok) {
      const error = new Error(body?.error?.message || response.statusText);
      error.details = body?.error?.details || [];  // each problem of a 422 (path and message)
      throw error;
    }
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
    if (!response.ok) {
      el("login-error").textContent = response.status === 429 ? t("Too many attempts: wait and try again.")
        : t("Wrong username or password.");
      return;
    }
    sessionStorage.setItem("balans.token", body.access_token);
    const me = await api("/auth/me");
    // the language kept on the user row wins over this browser's cookie
    const { language } = await api("/me/preferences");
    if (language) setLanguageCookie(language);
    location.href = home(me.role);
  }
  // each role's start page; a page the role may not see sends it there with ?denied=<path>
  const HOMES = { consumer: "/my", admin: "/admin", operator: "/ops", manager: "/ops" };
  const home = (role) => HOMES[role] || "/ops";
  function logout() { sessionStorage.removeItem("balans.token"); location.href = "/login"; }

  // t() inside an attribute's quotes of a template is not seen by the catalog's extractor
  const SEARCH_HINT = t("flat, account or serial");
  async function header() {
    if (!token()) { location.href = "/login"; throw new Error("no token"); }
    const me = await api("/auth/me");
    const ROLES = { consumer: t("resident"), operator: t("operator"), admin: t("administrator"), manager: t("manager") };
    el("who").textContent = `${me.actor} (${ROLES[me.role] || me.role})`;
    const allowed = (document.body.dataset.roles || "").split(" ").filter(Boolean);
    if (allowed.length && !allowed.includes(me.role)) {
      location.replace(`${home(me.role)}?denied=${encodeURIComponent(location.pathname)}`);
      return new Promise(() => {});  // the page's own script never runs for this role
    }
    const denied = new URLSearchParams(location.search).get("denied");
    if (denied?.startsWith("/") && denied.length <= 200) {  // a path of this portal, nothing else
      el("flash").textContent = t("Your role may not open {page}: this is your start page.", { page: denied });
      el("flash").hidden = false;
    }
    el("nav").innerHTML = me.role === "consumer" ? `<a href="/my">${esc(t("My flat"))}</a>`
      : `<a href="/ops">${esc(t("Buildings"))}</a><a href="/ops/alerts">${esc(t("Alerts"))}</a>`
        + (me.scopes.includes("operate") ? `<a href="/ops/provision">${esc(t("New building"))}</a>` : "")
        + (me.role === "admin" ? `<a href="/admin">${esc(t("Administration"))}</a>` : "")
        + `<form class="nav-search" action="/ops/search" role="search"><input type="search" name="q" maxlength="100" required placeholder="${esc(SEARCH_HINT)}" aria-label="${esc(SEARCH_HINT)}"></form>`;
    return me;
  }

  // Plotly draws a time as the wall clock its string names: an instant becomes the site's
  // wall clock, so the hours and days of a chart are the site's ("sv-SE" writes YYYY-MM-DD hh:mm:ss)
  const wall = (ts) => (siteZone ? new Date(ts).toLocaleString("sv-SE", { timeZone: siteZone }) : ts);
  // a series' buckets as wall clocks (docs/api.md, "Series": bucket i begins at start + i × step,
  // hours as instants, days and months in the series' time zone), n of them
  const xs = (s, n = s.values.length) => {
    if (!s.start) return [];
    if (s.step === "PT1H") return [...Array(n).keys()].map((i) => wall(new Date(Date.parse(s.start) + i * 3600e3).toISOString()));
    const [y, m, d] = new Date(s.start).toLocaleDateString("en-CA", { timeZone: s.time_zone }).split("-").map(Number);
    const months = s.step === "P1M";
    return [...Array(n).keys()].map((i) =>
      `${new Date(Date.UTC(y, m - 1 + (months ? i : 0), d + (months ? 0 : i))).toISOString().slice(0, 10)} 00:00:00`);
  };
  const ys = (s) => s.values;

  const WHY_NOT = {
    no_heat_data: t("no heat data for this month"),
    no_building_data: t("no data for the building's average flat"),
    no_flat_delta_t: t("your flat has no supply and return temperature sensors (heat is shared from the riser or the building meter)"),
    no_building_delta_t: t("no temperatures measured in the building"),
    no_area: t("the flat's floor area is not known"),
  };
  const coefficient = (p, name) => (none(p.coefficients[name])
    ? `<span class="note">${esc(t("cannot be computed: {why}", { why: WHY_NOT[p.coefficients.why_not[name]] || t("no data") }))}</span>`
    : esc(fmt(p.coefficients[name], 2)));
  const days = (hours) => fmt(hours / 24, 1);
  function forecastBasis(f) {
    if (f.basis === "degree_days") {
      return t("Month so far × heating degree-days of the whole month / those so far ({so_far} of {month}, from outdoor temperatures and the normal of the days to come).",
        { so_far: fmt(f.hdd_to_date, 0), month: fmt(f.hdd_month, 0) });
    }
    if (f.basis === "days") {
      return t("Month so far × days of the month / days with data ({so_far} of {month}); no degree-days yet for this building.",
        { so_far: days(f.hours_to_date), month: days(f.hours_in_month) });
    }
    if (f.basis === "complete") return t("The month is over: this is what was used.");
    return t("No data this month: nothing to forecast from.");
  }
  const SPLIT = {
    area: t("by floor area: each flat pays the building's common heat in proportion to its m²"),
    consumption: t("in proportion to what each flat's meters measured"),
    fixed: t("a fixed part by measured consumption ({share} %) and the rest by floor area"),
  };
  const LAYOUTS = {
    "1a": t("Your own heat is measured by the heat meter of your flat."),
    "1b": t("Your own heat is computed from the volume through your flat and the temperature drop (ΔT) measured by your distributor."),
    "1c": t("Your own heat is the building meter's heat shared by the volumes of the flats' meters."),
    "2a": t("Your own heat is computed from the flow of each riser and the temperature drop (ΔT) measured at your radiators."),
    "2b": t("Your own heat is the heat of your riser shared among its flats (a distributor on the riser)."),
  };
  // a faulty_sensor alert's hours, estimated by allocation (docs/allocation.md §8a)
  const FAULTY_SENSOR = {
    supply: t("the supply temperature sensor"),
    return: t("the return temperature sensor"),
    pair: t("the temperature sensor pair"),
  };
  const ESTIMATED_FROM = {
    cascade: t("the temperatures of the neighbouring radiators on the same riser"),
    history: t("how your heat compared with your neighbours' before the fault"),
  };
  function drawExplanation(x) {
    const p = x.parts;
    const period = x.day
      ? t("Your heat on {day}", { day: new Date(`${x.day}T12:00:00Z`).toLocaleDateString(LOCALE, { timeZone: "UTC", day: "numeric", month: "long" }) })
      : t("Your heat this month");
    el("explain-period").textContent = x.day ? t("one day; choose a month to see a whole month again")
      : t("click a day of the chart below to see that day");
    el("explain-parts").innerHTML = `
      <tr><th>${esc(period)}</th><td>${esc(qty(p.total_kwh, "kWh"))}</td></tr>
      <tr><th>${esc(t("measured by your own meters"))}</th><td>${esc(qty(p.measured_kwh, "kWh"))}</td></tr>
      <tr><th>${esc(t("your share of the building's common heat"))}</th><td>${esc(qty(p.common_kwh, "kWh"))}${
        none(p.common_share_pct) ? "" : ` <span class="note">${esc(t("{pct} % of your heat", { pct: fmt(p.common_share_pct, 0) }))}</span>`}</td></tr>
      <tr><th>${esc(t("adjustment by the building's rules (minimum charge, caps)"))}</th><td>${esc(qty(p.adjustment_kwh, "kWh"))}</td></tr>
      <tr><th>${esc(t("estimated hours"))}</th><td>${esc(t("{estimated} of {hours} hours with data ({month} hours in the period)",
        { estimated: p.estimated_hours, hours: p.hours, month: fmt(x.hours_in_month, 0) }))}</td></tr>`;
    const split = x.methodology.split || "area";
    el("explain-method").textContent = [
      LAYOUTS[x.layout] || "",
      t("The common heat (the building meter minus what the flats measured: pipes, staircases, losses) is shared {how}.",
        { how: (SPLIT[split] || split).replace("{share}", fmt(100 * (x.methodology.consumption_share ?? 0.7), 0)) }),
      p.estimated_hours ? t("Hours without data from your meters are estimated from comparable flats of the building (kWh per m² of that hour).") : "",
      ...(x.sensor_estimates || []).map((e) => t("From {from} {sensor} your heat rests on (module {module}) was reported faulty (alert {alert}): those hours are estimated from {how}.", {
        from: when(e.first_hour), sensor: FAULTY_SENSOR[e.sensor] || e.sensor, module: e.module_serial,
        alert: e.alert_id, how: ESTIMATED_FROM[e.method] || e.method })),
    ].filter(Boolean).join(" ");
    el("explain-tips").innerHTML = [
      t("Own heat: lower the radiator thermostats, especially at night and in empty rooms; air rooms briefly with windows wide open instead of keeping them ajar."),
      t("Common share: it falls for everyone when the building is insulated and the staircase windows and doors are kept closed; ask your association about the balance of the building."),
      t("Estimated parts: keep the meter and the radio module accessible and report a faulty one, so that your own readings replace estimates."),
    ].map((tip) => `<li>${esc(tip)}</li>`).join("");
  }

  const dataSpan = (v) => `<span class="data">${esc(v)}</span>`;
  const localDay = (d) => new Date(`${String(d).slice(0, 10)}T12:00:00Z`).toLocaleDateString(LOCALE, { timeZone: "UTC" });
  // ---------------- the one reason that fired, in the page's language ----------------
  // balance names it `<kind>.<rule>` with the figures the sentence needs (docs/balance.md)
  const GROUP_SHAPES = {
    step: t("group {group}: a constant excess of {excess_pct} % of the balance meter beyond the members' use"),
    use: t("group {group}: an excess of {excess_pct} % of the balance meter that follows the members' use"),
    scale: t("group {group}: the balance meter reads {excess_pct} % off by a constant factor"),
    ramp: t("group {group}: an excess that grows steadily, now {excess_pct} % of the balance meter"),
    settled: t("group {group}: an excess that grew, then held at {excess_pct} % of the balance meter"),
  };
  const REASONS = {
    "stuck_meter.register_still": t("meter {meter_serial}: its register stood still for {still_hours} h while its peers' use says it should have counted"),
    "stuck_meter.not_counted": t("meter {meter_serial} has not counted since {since} while its peers used {peer_use} {unit} each"),
    "stuck_meter.not_counted_since_before": t("meter {meter_serial} has not counted since before {since} while its peers used {peer_use} {unit} each"),
    "magnet.not_counted_tamper_flag": t("meter {meter_serial}: its module raised the tamper flag and the register has not counted since {since}"),
    "magnet.register_still_tamper_flag": t("meter {meter_serial}: its module raised the tamper flag and the register stood still for {still_hours} h"),
    "magnet.tamper_flag": t("meter {meter_serial}: its module raised the tamper flag and the meter registers {loss_pct} % less than its peers predict"),
    "magnet.balance_confirmed": t("meter {meter_serial} registers {loss_pct} % less than its peers predict while the balance meter still sees that use"),
    "magnet.follows_use": t("meter {meter_serial} registers {loss_pct} % less than its peers predict, a share of each day's heat whatever the weather (no thermostat setting takes that much heat off a flat, and what it saves is the same every day)"),
    "magnet.riser_dt_steady": t("riser meter {meter_serial}: its flow fell {loss_pct} % against its peers while the riser's ΔT stayed in line"),
    "drifting_meter.growing_error": t("meter {meter_serial}: its error against its peers grows steadily ({loss_pct} % so far)"),
    "drifting_meter.balance_confirmed": t("meter {meter_serial} registers {loss_pct} % off its peers' prediction and the balance meter confirms the meter is wrong"),
    "drifting_meter.follows_use": t("meter {meter_serial} registers {loss_pct} % off its peers' prediction, a share of each day's heat whatever the weather (a thermostat turned down would lower the heat by the same amount every day)"),
    "drifting_meter.riser_dt_steady": t("riser meter {meter_serial}: its flow moved {loss_pct} % against its peers while the riser's ΔT stayed in line"),
    "clogged_riser.dt_rose": t("riser meter {meter_serial}: its flow fell {loss_pct} % and the riser's ΔT rose {dt_change_pct} %: the water really slowed"),
    "clogged_riser.balance_unmoved": t("riser meter {meter_serial}: its flow fell {loss_pct} % against its peers and the balance meter did not move"),
    "concentrator_silent.silence": t("concentrator {concentrator} is silent"),
    "concentrator_silent.silent_since_before": t("none of the modules of concentrator {concentrator} heard since before {since}"),
    "dead_module.silence": t("module {module} is silent (dead, or cut off from the mesh)"),
    "dead_module.never_heard": t("module {module} never heard since its installation on {installed_on}"),
    "dead_module.silent_since_before": t("module {module} silent since before {since}"),
    "missing_data.silence": t("meter {meter_serial}: no readings although its module reports"),
    "low_battery.low_or_falling": t("module {module}: battery low or heading for cut-off"),
    "verification_due.due": t("meter {meter_serial}: its verification is due on {due_on} (every {interval_years} years)"),
    "verification_due.expired": t("meter {meter_serial}: its verification expired on {due_on} (every {interval_years} years)"),
    "faulty_sensor.frozen": t("{sensor} sensor on module {module} (flat {flat}, riser {riser}) repeats one reading while the water around it changes"),
    "faulty_sensor.swapped": t("sensors on module {module} (flat {flat}, riser {riser}) swapped: its ΔT is {deviation_k} °C, negative, while its neighbours heat"),
    "faulty_sensor.detached": t("{sensor} sensor on module {module} (flat {flat}, riser {riser}) detached: it reads the room, {deviation_k} °C off the water it should measure"),
    "faulty_sensor.displaced": t("{sensor} sensor on module {module} (flat {flat}, riser {riser}) displaced: it reads {deviation_k} °C nearer the room than the water around it says"),
    "faulty_sensor.drifting": t("{sensor} sensor on module {module} (flat {flat}, riser {riser}) drifts: it reads {deviation_k} °C off what the water around it says"),
    "consumer_leak.night_flow": t("meter {meter_serial}: water ran every hour of the last three nights (a dripping tap or a running cistern?)"),
  };
  const DATA_PARAMS = new Set(["meter_serial", "group", "module", "concentrator"]);
  const DATE_PARAMS = new Set(["since", "installed_on", "due_on"]);
  const param = (name, value) => {
    if (none(value)) return "–";
    if (DATA_PARAMS.has(name)) return dataSpan(value);
    if (DATE_PARAMS.has(name)) return esc(localDay(value));
    if (name === "unit") return esc(unit(value));
    return esc(typeof value === "number" ? fmt(value, Number.isInteger(value) ? 0 : 1) : value);
  };
  // a translated message as HTML: its words escaped, each {placeholder} by html(name)
  const fill = (message, html) => message.split(/(\{\w+\})/).map((part) => {
    const m = /^\{(\w+)\}$/.exec(part);
    return m ? html(m[1]) : esc(part);
  }).join("");
  // the one reason as a sentence, the figures filled in (data marked as such)
  function reasonHtml(a) {
    const code = a.reason_code || "";
    const message = REASONS[code] || GROUP_SHAPES[code.split(".")[1]];
    // without a code (alerts written before balance named one): its English words, as data
    if (!message) return `<span lang="en" class="data">${esc(a.rule || a.summary)}</span>`;
    return fill(message, (name) => param(name, a.reason_params?.[name]));
  }
  // ---------------- consumer ----------------
  async function consumerPage() {
    const me = await header();
    const flatId = me.flat_ids[0];
    const flat = await api(`/flats/${flatId}`);
    document.querySelector("h1").textContent = t("Flat {number}", { number: flat.number });
    const now = new Date();
    el("month").value = now.toISOString().slice(0, 7);
    el("year").value = now.getFullYear();
    el("reading-date").value = now.toISOString().slice(0, 10);
    const drawMonth = async () => {
      const month = el("month").value;
      const [p, x] = await Promise.all([
        api(`/flats/${flatId}/profile?month=${month}&resolution=${el("resolution").value}`),
        api(`/flats/${flatId}/explain?month=${month}`),
      ]);
      el("mtd").textContent = qty(p.month_to_date_kwh, "kWh");
      el("forecast").textContent = qty(p.forecast.kwh, "kWh");
      el("forecast-basis").textContent = forecastBasis(p.forecast);
      ["consumption", "temperature", "efficiency"].forEach((k) => { el(`k-${k}`).innerHTML = coefficient(p, k); });
      setSiteZone(p.flat.timezone);
      Plotly.react("chart-month", [
        { type: "bar", name: t("My heat, kWh"), x: xs(p.heat), y: ys(p.heat), marker: { color: PALETTE[0] } },
        { type: "scatter", mode: "lines", name: t("Average flat"), x: xs(p.building_average),
          y: ys(p.building_average), line: { color: "#334155", dash: "dash" } },
      ], layout({ ...exchangeMarks(p.exchanges), yaxis: { title: unit("kWh") } }), plotConfig);
      drawMeters(p.meters, p.exchanges);
      drawExplanation(x);
      // a day of the chart explained on its own
      el("chart-month").removeAllListeners?.("plotly_click");
      el("chart-month").on("plotly_click", async (event) => {
        if (el("resolution").value !== "day") return;
        // the bar's local day of the flat (its wall clock begins YYYY-MM-DD)
        const day = xs(p.heat)[event.points[0].pointIndex].slice(0, 10);
        drawExplanation(await api(`/flats/${flatId}/explain?day=${day}`));
      });
    };
    const colours = {};
    // a meter exchange is a dashed line where the old meter's series ends and the new one's begins
    const exchangeMarks = (exchanges = []) => ({
      xaxis: { type: "date" }, // a time axis even before the first reading, or the marks cannot be placed
      shapes: exchanges.map((e) => ({ type: "line", xref: "x", yref: "paper", x0: wall(e.at), x1: wall(e.at), y0: 0, y1: 1,
        line: { color: "#334155", dash: "dash", width: 1 } })),
      annotations: exchanges.map((e) => ({ xref: "x", yref: "paper", x: wall(e.at), y: 1, xanchor: "left", yanchor: "top", showarrow: false,
        font: { size: 11 }, text: esc(t("{utility} meter exchanged: {old} → {new}", { utility: utility(e.utility), old: e.old_meter ?? "–", new: e.new_meter })) })),
    });
    const drawMeters = (meters, exchanges) => {
      el("meter-colours").innerHTML = meters.map((m, i) => {
        colours[m.meter_id] ||= PALETTE[(i + 1) % PALETTE.length];
        return `<label>${esc(utility(m.utility))} <span class="data">${esc(m.serial)}</span> <input type="color" data-meter="${m.meter_id}" value="${colours[m.meter_id]}"></label>`;
      }).join("") || `<p>${esc(t("No meters with pulse outputs in this flat."))}</p>`;
      // the flat's one forecast is the heat forecast above; meters show what they measured
      const traces = meters.map((m) => ({
        type: "scatter", mode: "lines", x: xs(m), y: ys(m),
        name: `${utility(m.utility)} (${unit(m.unit)})`, line: { color: colours[m.meter_id] },
      }));
      Plotly.react("chart-meters", traces, layout(exchangeMarks(exchanges)), plotConfig);
      el("meter-colours").querySelectorAll("input").forEach((input) => input.addEventListener("input", () => {
        colours[input.dataset.meter] = input.value;
        Plotly.restyle("chart-meters", { "line.color": traces.map((tr, i) => colours[meters[i].meter_id]) });
      }));
    };
    const drawYear = async () => {
      const h = await api(`/flats/${flatId}/history?year=${el("year").value}`);
      // a bucket's wall clock (YYYY-MM-...) as its month's short name
      const months = (s) => xs(s).map((w) => new Date(`${w.slice(0, 7)}-15T00:00:00Z`).toLocaleString(LOCALE, { month: "short", timeZone: "UTC" }));
      Plotly.react("chart-year", [
        { type: "bar", name: `${el("year").value}`, x: months(h.current), y: ys(h.current),
          marker: { color: PALETTE[0] } },
        { type: "scatter", mode: "lines+markers", name: t("Last year"), x: months(h.last_year),
          y: ys(h.last_year), line: { color: "#64748b" } },
      ], layout({ yaxis: { title: unit("kWh") } }), plotConfig);
    };
    const drawReadings = async () => {
      const r = await api(`/flats/${flatId}/readings?date=${el("reading-date").value}`);
      el("day-readings").innerHTML = r.readings.map((m) =>
        `<tr><td>${esc(utility(m.utility))}</td><td class="data">${esc(m.serial)}</td><td>${esc(qty(m.value, m.unit, 2))}</td></tr>`).join("")
        || `<tr><td>${esc(t("No pulse meters."))}</td></tr>`;
    };
    el("month").addEventListener("change", drawMonth);
    el("resolution").addEventListener("change", drawMonth);
    el("year").addEventListener("change", drawYear);
    el("reading-date").addEventListener("change", drawReadings);
    await Promise.all([drawMonth(), drawYear(), drawReadings()]);
    const current = await api(`/flats/${flatId}/readings?date=${now.toISOString().slice(0, 10)}`);
    el("current").innerHTML = current.readings.map((m) =>
      `<tr><td>${esc(utility(m.utility))}</td><td>${esc(qty(m.value, m.unit, 2))}</td><td>${esc(m.ts ? when(m.ts) : t("no data"))}</td></tr>`).join("")
      || `<tr><td>${esc(t("Heat is allocated from the riser (no meter in the flat)."))}</td></tr>`;
    const s = await api(`/flats/${flatId}/statement`);
    // a figure whose span lacks data says so: "data on 24.5 of 30 days"
    const gaps = (dataDays) => (none(dataDays) || dataDays <= 0 || dataDays >= s.days_compared - 0.05 ? ""
      : ` <span class="note">${esc(t("data on {days} of {total} days", { days: fmt(dataDays, 1), total: fmt(s.days_compared, 1) }))}</span>`);
    const row = (label, kwh, change, dataDays) => `<tr><th>${esc(label)}</th><td>${esc(qty(kwh, "kWh"))}${esc(pct(change))}${gaps(dataDays)}</td></tr>`;
    el("statement").innerHTML = row(t("This month"), s.kwh, null, s.days_with_data) +
      row(t("Previous month"), s.previous_month_kwh, s.change_vs_previous_pct, s.previous_month_days_with_data) +
      row(t("Same month last year"), s.same_month_last_year_kwh, s.change_vs_last_year_pct, s.same_month_last_year_days_with_data) +
      row(t("Average comparable flat (same rooms, same building)"), s.comparable_user_kwh, s.change_vs_comparable_pct);
    el("statement-span").textContent = s.partial
      ? t("Each figure covers the first {days} of {month_days} days of its month, so that equal spans are compared.",
        { days: fmt(s.days_compared, 1), month_days: fmt(s.days_in_month, 0) })
      : t("Whole months ({month_days} days) are compared.", { month_days: fmt(s.days_in_month, 0) });
    await optional(async () => {
      const alerts = await api("/alerts?limit=20");
      // the one reason in the page's language (balance's English words for an older alert)
      el("alerts").innerHTML = alerts.items.map((a) => `<li>${esc(ALERT_KINDS[a.kind] || a.kind)}: ${reasonHtml(a)} <span class="pill">${esc(ALERT_STATES[a.state] || a.state)}</span></li>`).join("")
        || `<li>${esc(t("No alerts."))}</li>`;
    }, "alerts");
    await optional(async () => {
      const invoices = await api("/invoices?limit=12");
      el("invoices").innerHTML = invoices.items.map((i) => `<tr><td>${esc(billingMonth(i))}</td>
        <td><a href="/my/invoices/${i.id}">${esc(i.kind === "correction" ? t("correction No. {number}", { number: i.number }) : t("invoice No. {number}", { number: i.number }))}</a></td>
        <td>${esc(money(i.total, i.currency))}</td><td>${esc(t("due {date}", { date: new Date(i.due_on).toLocaleDateString(LOCALE, { timeZone: "UTC" }) }))}</td></tr>`).join("")
        || `<tr><td>${esc(t("No invoices yet."))}</td></tr>`;
    }, "invoices");
    el("grouping").addEventListener("change", () => drawRanking(flat.building_id, el("grouping").value));
    await drawRanking(flat.building_id);
  }

  async function optional(fn, id) {
    try { await fn(); } catch (e) { el(id).innerHTML = `<li class="error">${esc(e.message)}</li>`; }
  }

  // the ranking names its groups "Riser 3" / "Entrance 1" (allocation's query): said in the page's language
  const groupName = (name) => {
    const [, kind, number] = /^(Riser|Entrance) (.+)$/.exec(name) || [];
    if (kind === "Riser") return t("Riser {number}", { number });
    return kind === "Entrance" ? t("Entrance {number}", { number }) : name;
  };
  async function drawRanking(buildingId, grouping = "riser") {
    const r = await api(`/buildings/${buildingId}/ranking?grouping=${grouping}`);
    // the lowest third in green, the rest in orange, each a legend entry; every group labelled
    const third = Math.ceil(r.groups.length / 3);
    const part = (groups, name, color) => ({
      type: "bar", orientation: "h", name, x: groups.map((g) => g.kwh_per_m2), y: groups.map((g) => groupName(g.name)),
      marker: { color }, hovertemplate: `%{y}: %{x:.2f} ${t("{unit} per m²", { unit: unit("kWh") })}<extra></extra>`,
    });
    const chart = el("chart-ranking");
    const height = Math.max(340, 60 + 20 * r.groups.length);
    chart.style.height = `${height}px`;
    Plotly.react(chart, [
      part(r.groups.slice(0, third), t("lowest third"), "#15803d"),
      part(r.groups.slice(third), t("the rest"), "#c2410c"),
    ], layout({
      height, hovermode: "closest", legend: { orientation: "h", x: 0, y: 1, yanchor: "bottom" },
      xaxis: { title: t("heat per floor area, {unit} per m²", { unit: unit("kWh") }) },
      yaxis: { type: "category", autorange: "reversed", dtick: 1, automargin: true,
        categoryorder: "array", categoryarray: r.groups.map((g) => groupName(g.name)) },
      margin: { l: 90, r: 20, t: 30, b: 50 },
    }), plotConfig);
  }

  // ---------------- an invoice: billing's document in the page, printed or as PDF ----------------
  async function invoiceDocument(invoiceId, format) {
    const response = await fetch(`${API}/invoices/${invoiceId}/document?format=${format}&locale=${I18N.locale}`,
      { headers: { Authorization: `Bearer ${token()}` } });
    if (response.status === 401) { location.href = "/login"; throw new Error("signed out"); }
    if (!response.ok) throw new Error(t("The invoice cannot be shown now (error {status}); try again later.", { status: response.status }));
    return response;
  }
  async function invoicePage(invoiceId) {
    await header();
    try {
      const page = new DOMParser().parseFromString(await (await invoiceDocument(invoiceId, "html")).text(), "text/html");
      document.querySelector("h1").textContent = page.querySelector("h1").textContent;
      document.title = page.title;
      // its own styles stay inside a shadow root: the page's and the document's never mix
      const root = el("invoice").attachShadow({ mode: "open" });
      root.append(...page.head.querySelectorAll("style"), ...page.body.children);
    } catch (e) {
      el("invoice-status").textContent = e.message;
      return;
    }
    el("invoice-print").addEventListener("click", () => window.print());
    el("invoice-pdf").addEventListener("click", async () => {
      try {
        const response = await invoiceDocument(invoiceId, "pdf");
        const name = /filename="([^"]+)"/.exec(response.headers.get("content-disposition") || "")?.[1] || "invoice.pdf";
        const link = Object.assign(document.createElement("a"), { href: URL.createObjectURL(await response.blob()), download: name });
        link.click();
        setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
      } catch (e) {
        el("invoice-status").textContent = e.message;
      }
    });
  }

  // ---------------- operator ----------------
  async function operatorPage() {
    await header();
    const [sites, buildings, counts] = await Promise.all([
      api("/sites?limit=1000"), api("/buildings?limit=1000"), api("/alerts/counts"),
    ]);
    const openAlerts = counts.open_by_building;
    drawMap(sites.items, buildings.items, openAlerts);
    el("buildings").innerHTML = `<tr><th>${esc(t("Building"))}</th><th>${esc(t("Address"))}</th><th>${esc(t("Layout"))}</th><th>${esc(t("Floors"))}</th><th>${esc(t("Open alerts"))}</th></tr>` +
      buildings.items.map((b) => `<tr><td><a class="data" href="/ops/buildings/${b.id}">${esc(b.name)}</a></td><td class="data">${esc(b.address)}</td><td>${esc(b.layout)}</td><td>${b.floors}</td>
        <td class="${openAlerts[b.id] ? "low" : ""}">${openAlerts[b.id] ? `<a href="/ops/alerts?building_id=${b.id}">${openAlerts[b.id]}</a>` : "0"}</td></tr>`).join("");
  }

  // One marker per building on OpenStreetMap tiles (Plotly's tile map; no token). Buildings
  // of a site sit on a small ring around its point so that each can be clicked. Without the
  // tiles (offline) the markers are drawn on a blank background all the same.
  function mapPositions(sites, buildings) {
    const bySite = {};
    buildings.forEach((b) => (bySite[b.site_id] ||= []).push(b));
    const place = [];
    sites.forEach((s) => (bySite[s.id] || []).forEach((b, i, all) => {
      const angle = (2 * Math.PI * i) / all.length;
      const r = all.length > 1 ? 0.0006 : 0;  // about 60 m
      place.push({ b, s, lat: s.latitude + r * Math.cos(angle), lon: s.longitude + r * Math.sin(angle) / Math.cos(s.latitude * Math.PI / 180) });
    }));
    return place;
  }
  function drawMap(sites, buildings, openAlerts) {
    const place = mapPositions(sites, buildings);
    const trace = (points, name, color) => ({
      type: "scattermap", mode: "markers", name, lat: points.map((p) => p.lat), lon: points.map((p) => p.lon),
      marker: { size: points.map((p) => 14 + 3 * Math.min(openAlerts[p.b.id] || 0, 6)), color },
      text: points.map((p) => `${p.b.name} · ${p.s.name}<br>${t("{count} open alerts", { count: openAlerts[p.b.id] || 0 })}`),
      hoverinfo: "text", customdata: points.map((p) => p.b.id),
    });
    const lat = place.map((p) => p.lat);
    const lon = place.map((p) => p.lon);
    const span = Math.max(0.01, Math.max(...lat) - Math.min(...lat), Math.max(...lon) - Math.min(...lon));
    // blank at first; the tiles once one is seen to load (offline the map keeps its
    // markers and logs no error for every tile it could not fetch)
    Plotly.react("map", [
      trace(place.filter((p) => !openAlerts[p.b.id]), t("no open alert"), "#15803d"),
      trace(place.filter((p) => openAlerts[p.b.id]), t("open alerts"), "#b91c1c"),
    ], {
      map: {
        style: "white-bg",
        center: { lat: (Math.max(...lat) + Math.min(...lat)) / 2, lon: (Math.max(...lon) + Math.min(...lon)) / 2 },
        zoom: Math.max(1, Math.min(16, Math.log2(360 / span) - 1)),
      },
      margin: { l: 0, r: 0, t: 0, b: 0 }, legend: { orientation: "h", x: 0, y: 1, bgcolor: "rgba(255,255,255,.8)" },
    }, plotConfig);
    el("map").on("plotly_click", (event) => { location.href = `/ops/buildings/${event.points[0].customdata}`; });
    tilesReachable().then((online) => {
      if (online) Plotly.relayout("map", { "map.style": "open-street-map" });
      else el("map-note").textContent = t("The map's tiles cannot be reached (offline): the buildings are drawn on a blank background.");
    });
  }
  const tilesReachable = () => new Promise((resolve) => {
    const probe = new Image();
    const timer = setTimeout(() => resolve(false), 5000);
    probe.onload = () => { clearTimeout(timer); resolve(true); };
    probe.onerror = () => { clearTimeout(timer); resolve(false); };
    probe.src = "https://tile.openstreetmap.org/0/0/0.png";
  });

  async function buildingPage(buildingId) {
    const me = await header();
    const [building, overview, entrances, risers, flats] = await Promise.all([
      api(`/buildings/${buildingId}`), api(`/buildings/${buildingId}/overview`), api(`/buildings/${buildingId}/entrances?limit=1000`),
      api(`/buildings/${buildingId}/risers?limit=1000`), api(`/flats?building_id=${buildingId}&limit=1000`),
    ]);
    setSiteZone(building.timezone);
    document.querySelector("h1").textContent = building.name;
    document.querySelector("h1").classList.add("data");
    const stat = (label, value, cls = "") => `<div class="card"><h2>${esc(label)}</h2><p class="big ${cls}">${value ?? t("no data")}</p></div>`;
    el("overview").innerHTML = stat(t("Flats"), overview.flats) + stat(t("Meters"), overview.meters) + stat(t("Modules"), overview.modules) +
      stat(t("Silent 24 h"), overview.modules_silent_24h, overview.modules_silent_24h ? "low" : "ok") +
      stat(t("Low battery"), overview.modules_low_battery, overview.modules_low_battery ? "low" : "ok") + stat(t("Open alerts"), overview.open_alerts);
    Plotly.react("chart-overview", [
      { type: "bar", name: t("Building meter"), x: xs(overview.building_heat_last_30d), y: ys(overview.building_heat_last_30d), marker: { color: "#94a3b8" } },
      { type: "scatter", mode: "lines+markers", name: t("Flats measured"), x: xs(overview.flats_measured_last_30d), y: ys(overview.flats_measured_last_30d), line: { color: PALETTE[0] } },
    ], layout({ yaxis: { title: t("{unit} per day", { unit: unit("kWh") }) } }), plotConfig);
    el("drill").innerHTML = entrances.items.map((e) => `<details><summary>${esc(t("Entrance {number}", { number: e.number }))}</summary>` +
      risers.items.filter((r) => r.entrance_id === e.id).map((r) => `<details><summary>${esc(t("Riser {number}", { number: r.number }))}</summary><ul>` +
        `<li data-riser="${r.id}">${esc(t("loading…"))}</li></ul></details>`).join("") +
      `<details><summary>${esc(t("Flats"))}</summary><ul>${flats.items.filter((f) => f.entrance_id === e.id).map((f) =>
        `<li><a href="/ops/flats/${f.id}">${esc(t("Flat {number}, floor {floor}, {rooms} rooms, {area} m²", { number: f.number, floor: f.floor, rooms: f.rooms, area: fmt(f.area_m2, 1) }))}</a></li>`).join("")}</ul></details></details>`).join("");
    el("drill").querySelectorAll("[data-riser]").forEach((li) => li.closest("details").addEventListener("toggle", async () => {
      const page = await api(`/flats?riser_id=${li.dataset.riser}&limit=100`);
      li.outerHTML = page.items.map((f) => `<li><a href="/ops/flats/${f.id}">${esc(t("Flat {number} (floor {floor})", { number: f.number, floor: f.floor }))}</a></li>`).join("");
    }, { once: true }));
    await optional(async () => {
      const groups = await api(`/balance-groups?building_id=${buildingId}`);
      if (!groups.items.length) el("chart-imbalance").innerHTML = `<p>${esc(t("No balance groups in this building yet."))}</p>`;
      const byId = Object.fromEntries(groups.items.map((g) => [String(g.id), g]));
      const incomplete = (g) => g.coverage_complete === false
        ? " · " + t("incomplete: {metered} of {served} flats metered", { metered: g.flats_metered, served: g.flats_served }) : "";
      el("group").innerHTML = groups.items.map((g) => `<option class="data" value="${g.id}">${esc(g.name)} (${esc(utility(g.utility))})${esc(incomplete(g))}</option>`).join("");
      const draw = async () => {
        if (!el("group").value) return;
        el("group-info").textContent = groupInfo(byId[el("group").value]);
        let s;
        try {
          s = await api(`/balance-groups/${el("group").value}/imbalance?resolution=day`);
        } catch (e) {
          Plotly.purge("chart-imbalance");
          el("chart-imbalance").innerHTML = `<p class="error">${esc(e.message)}</p>`;
          return;
        }
        if (!s.start) {
          Plotly.purge("chart-imbalance");
          el("chart-imbalance").innerHTML = `<p>${esc(s.note)}</p>`;
          return;
        }
        // balance's series with the band it learned for the group (in the series' unit); a
        // partial day is drawn apart (hollow), never as a dip of the line; each alert's span
        // is shaded from when the fault began
        const times = xs(s, s.imbalance.length);
        const low = s.band_low;
        const high = s.band_high;
        const partial = s.partial;
        el("group-info").textContent = [groupInfo(byId[el("group").value]), lossesInfo(s.losses)].filter(Boolean).join(" · ");
        Plotly.react("chart-imbalance", [
          { type: "scatter", mode: "lines", name: t("Normal band"), x: times.concat([...times].reverse()),
            y: high.concat([...low].reverse()), fill: "toself", fillcolor: "rgba(21,128,61,.12)", line: { width: 0 } },
          { type: "scatter", mode: "lines+markers", name: t("Imbalance ({unit})", { unit: unit(s.unit) }), x: times,
            y: s.imbalance.map((v, i) => (partial.includes(i) ? null : v)), line: { color: PALETTE[0] } },
          ...(partial.length ? [{ type: "scatter", mode: "markers", name: t("Partial day (not all hours yet)"),
            x: partial.map((i) => times[i]), y: partial.map((i) => s.imbalance[i]),
            marker: { color: PALETTE[0], symbol: "circle-open", size: 9 } }] : []),
        ], layout({
          yaxis: { title: unit(s.unit) },
          shapes: s.alert_spans.map((a) => ({ type: "rect", xref: "x", yref: "paper", x0: wall(a.began), x1: wall(a.until), y0: 0, y1: 1,
            fillcolor: "rgba(220,38,38,.10)", line: { width: 0 }, layer: "below" })),
          annotations: s.alert_spans.map((a) => ({ xref: "x", yref: "paper", x: wall(a.began), y: 1, xanchor: "left", yanchor: "top",
            showarrow: false, text: esc(t("Alert {id}: {kind}", { id: a.id, kind: ALERT_KINDS[a.kind] || a.kind })), font: { size: 11, color: "#b91c1c" } })),
        }), plotConfig);
      };
      el("group").addEventListener("change", draw);
      await draw();
    }, "chart-imbalance");
    await drawRanking(buildingId);
    const modules = await api(`/modules?building_id=${buildingId}&limit=1000`);
    const children = {};
    modules.items.forEach((m) => (children[m.parent_serial ?? "none"] ||= []).push(m));
    const node = (m) => `<li>${m.serial} <span class="pill">${esc(t("{hops} hops", { hops: m.hops ?? "?" }))}</span>
      <span class="${m.battery_mv !== null && m.battery_mv < 3300 ? "low" : ""}">${m.battery_mv ?? "–"} mV</span>
      · ${m.rssi_dbm ?? "–"} dBm · ${esc(m.last_seen ? when(m.last_seen) : t("never seen"))}
      ${(children[m.serial] || []).length ? `<ul>${children[m.serial].map(node).join("")}</ul>` : ""}</li>`;
    const known = new Set(modules.items.map((m) => m.serial));
    const roots = modules.items.filter((m) => !known.has(m.parent_serial));
    el("mesh").innerHTML = `<ul><li>${esc(t("Concentrator"))}<ul>${roots.map(node).join("")}</ul></li></ul>`;
    const seen = modules.items.filter((m) => m.last_seen);
    const low = modules.items.filter((m) => m.battery_mv !== null && m.battery_mv < 3300);
    el("mesh-summary").innerHTML = esc(t("{modules} modules · {reporting} reporting", { modules: modules.items.length, reporting: seen.length })) + " · " +
      `<span class="${low.length ? "low" : ""}">${esc(t("{count} low battery", { count: low.length }))}</span> · ` +
      esc(t("at most {hops} hops", { hops: Math.max(0, ...seen.map((m) => m.hops ?? 0)) }));
    const valves = await api(`/meters?building_id=${buildingId}&limit=1000`);
    const canAct = me.scopes.includes("operate");
    const flatNumber = Object.fromEntries(flats.items.map((f) => [f.id, f.number]));
    el("valves").innerHTML = `<tr><th>${esc(t("Meter"))}</th><th>${esc(t("Utility"))}</th><th>${esc(t("Flat"))}</th><th>${esc(t("Valve"))}</th><th></th></tr>` + valves.items.filter((m) => m.has_valve).map((m) =>
      `<tr data-valve="${m.id}"><td class="data">${esc(m.serial)}</td><td>${esc(utility(m.utility))}</td>
        <td>${m.flat_id ? `<a href="/ops/flats/${m.flat_id}">${esc(t("Flat {number}", { number: flatNumber[m.flat_id] ?? "?" }))}</a>` : ""}</td>
        <td>${esc(VALVE_STATES[m.valve_state] || "")}</td><td>${canAct ? valveButtons(m) : ""}</td></tr>`).join("");
    el("valves").querySelectorAll("button").forEach((b) => b.addEventListener("click", () =>
      command(b.dataset.meter, b.dataset.serial, b.dataset.action, el("command-status"))));
  }

  const VALVE_STATES = { open: t("open"), closed: t("closed") };
  const valveButtons = (m) => `<button data-meter="${m.id}" data-serial="${esc(m.serial)}" data-action="valve_close">${esc(t("Close valve"))}</button>
    <button class="secondary" data-meter="${m.id}" data-serial="${esc(m.serial)}" data-action="valve_open">${esc(t("Open valve"))}</button>`;
  const COMMAND_STATUS = { pending: t("pending"), done: t("done"), failed: t("failed"), offline: t("offline"), timeout: t("timed out") };
  // a valve command after confirmation, its status followed in `status` until it is settled
  async function command(meterId, serial, action, status) {
    const question = action === "valve_close" ? t("Close the valve of meter {meter}?", { meter: serial })
      : t("Open the valve of meter {meter}?", { meter: serial });
    if (!confirm(question)) return null;
    let c;
    try {
      c = await post(`/meters/${meterId}/commands`, { action, reason: "portal" });
    } catch (e) {
      status.textContent = e.message;
      return null;
    }
    const show = () => { status.textContent = `${t("command {id}: {status}", { id: c.id, status: COMMAND_STATUS[c.status] || c.status })} ${c.detail || ""}`; };
    show();
    for (let i = 0; i < 30 && c.status === "pending"; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      c = await api(`/commands/${c.id}`);
      show();
    }
    return c;
  }

  // The pages carry no inline script (the Content-Security-Policy forbids it): each names
  // itself in <body data-page> and the handlers are attached here.
  const PAGES = {
    login: () => el("login").addEventListener("submit", login),
    consumer: consumerPage,
    operator: operatorPage,
    building: () => buildingPage(Number(document.body.dataset.buildingId)),
    invoice: () => invoicePage(Number(document.body.dataset.invoiceId)),
  };
  // the language switcher: remembered in a cookie for a year and, signed in, on the user row
  // (PUT /me/preferences: the next login, on any browser, and the e-mails use it too)
  function setLanguageCookie(language) {
    const name = document.body.dataset.langCookie;
    document.cookie = `${name}=${language}; path=/; max-age=31536000; samesite=lax`;
  }
  async function switchLanguage(event) {
    setLanguageCookie(event.target.value);
    if (token()) {
      const preferences = await api("/me/preferences");
      await api("/me/preferences", {
        method: "PUT", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ ...preferences, language: event.target.value }),
      });
    }
    location.reload();
  }
  function registerPlotlyLocale() {
    // month and day names and separators for the charts' axes, from the browser's own data
    const names = (n, option, date) => [...Array(n).keys()].map((i) =>
      new Intl.DateTimeFormat(LOCALE, { [option.key]: option.style, timeZone: "UTC" }).format(date(i)));
    const month = (i) => new Date(Date.UTC(2026, i, 15));
    const day = (i) => new Date(Date.UTC(2026, 1, 1 + i)); // 2026-02-01 is a Sunday
    const parts = new Intl.NumberFormat(LOCALE).formatToParts(12345.6);
    Plotly.register({
      moduleType: "locale", name: I18N.locale, dictionary: {},
      format: {
        months: names(12, { key: "month", style: "long" }, month), shortMonths: names(12, { key: "month", style: "short" }, month),
        days: names(7, { key: "weekday", style: "long" }, day), shortDays: names(7, { key: "weekday", style: "short" }, day),
        decimal: parts.find((p) => p.type === "decimal").value, thousands: parts.find((p) => p.type === "group").value,
        grouping: [3], currency: ["", "\u00a0MDL"], periods: ["AM", "PM"],
        date: I18N.locale === "en" ? "%d/%m/%Y" : "%d.%m.%Y", time: "%H:%M:%S", dateTime: "%d.%m.%Y %H:%M:%S",
        year: "%Y", month: "%b %Y", dayMonth: "%-d %b", dayMonthYear: "%-d %b %Y",
      },
    });
  }
  document.addEventListener("DOMContentLoaded", () => {
    if (window.Plotly) registerPlotlyLocale();
    el("lang").addEventListener("change", switchLanguage);
    el("logout").addEventListener("click", logout);
    PAGES[document.body.dataset.page]();
  });
  // other scripts (admin.js...) add their pages to PAGES before DOMContentLoaded and use these
  return {
    login, logout, consumerPage, operatorPage, buildingPage, invoicePage, command, layout, plotConfig,
    PALETTE, ALERT_KINDS, ALERT_STATES, qty, unit, none, optional, LOCALE, xs, ys,
    pages: PAGES, api, post, header, t, esc, el, when, wall, xs, setSiteZone, fmt, utility, valveButtons, VALVE_STATES, COMMAND_STATUS, reasonHtml, fill, setLanguageCookie,
  };
})();
