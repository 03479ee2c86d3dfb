// balans admin pages: users, API keys, tariff versions and the audit log (admin scope).
// Loaded after portal.js, whose helpers it uses; each page registers under its template's name.
"use strict";
(() => {
  const { api, post, header, t, esc, el, when, utility, LOCALE } = balans;
  const ROLES = { admin: t("administrator"), operator: t("operator"), manager: t("manager"), consumer: t("resident") };
  const row = (cells, attrs = "") => `<tr ${attrs}>${cells.map((c) => `<td>${c}</td>`).join("")}</tr>`;
  const head = (names) => `<tr>${names.map((n) => `<th>${esc(n)}</th>`).join("")}</tr>`;
  const day = (d) => (d ? new Date(`${d}T00:00:00`).toLocaleDateString(LOCALE) : "");

  // a refusal's problems, one per line with its path (422), or the message alone
  function showErrors(list, error) {
    const problems = (error.details || []).map((d) => {
      const path = d.path ?? (d.loc || []).filter((p) => p !== "body").join(".");
      return `<li><code class="data">${esc(path)}</code> ${esc(d.message ?? d.msg)}</li>`;
    });
    el(list).innerHTML = `<li>${esc(error.message)}</li>${problems.join("")}`;
  }
  // every page of a paged list (admin lists are short: users, keys, tariff versions)
  async function all(path) {
    const items = [];
    let cursor = null;
    do {
      const sep = path.includes("?") ? "&" : "?";
      const page = await api(`${path}${sep}limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      items.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor);
    return items;
  }
  const inForce = (tariff, today) => tariff.effective_from <= today && (!tariff.effective_to || today < tariff.effective_to);
  const today = () => new Date().toISOString().slice(0, 10);
  // an audit entry's detail in a line: "changes: flats: create 12; buildings: form-1a" (zeros left out)
  const brief = (v) => (v && typeof v === "object"
    ? (Array.isArray(v) ? v.map(brief).join(", ")
      : Object.entries(v).filter(([, x]) => x !== 0).map(([k, x]) => `${k}: ${brief(x)}`).join("; "))
    : String(v));
  const clip = (text) => (text.length > 160 ? `${text.slice(0, 159)}…` : text);
  const auditRows = (entries) => head([t("When"), t("Who"), t("Action"), t("Target"), t("Detail")]) + entries.map((a) => row([
    esc(when(a.at)), `<span class="data">${esc(a.actor)}</span>`, `<code class="data">${esc(a.action)}</code>`,
    `<span class="data">${esc(a.target)}</span>`,
    `<span class="data" title="${esc(JSON.stringify(a.detail))}">${esc(clip(brief(a.detail)))}</span>`,
  ], `data-audit="${a.id}"`)).join("");

  // ---------------- home ----------------
  async function homePage() {
    await header();
    const [users, keys, tariffs, buildings, audit] = await Promise.all([
      all("/users"), all("/api-keys"), all("/tariffs"), all("/buildings"),
      api(`/audit?since=${encodeURIComponent(new Date(Date.now() - 7 * 864e5).toISOString())}&limit=1000`),
    ]);
    el("count-users").textContent = users.filter((u) => u.active).length;
    el("count-keys").textContent = keys.filter((k) => !k.revoked_at).length;
    el("count-tariffs").textContent = tariffs.filter((x) => inForce(x, today())).length;
    el("count-buildings").textContent = buildings.length;
    el("audit-latest").innerHTML = auditRows(audit.items.slice(-10).reverse());
  }

  // ---------------- users ----------------
  async function usersPage() {
    const me = await header();
    el("user-role").innerHTML = Object.entries(ROLES).map(([v, n]) => `<option value="${v}">${esc(n)}</option>`).join("");
    el("user-role").value = "operator";
    el("user-role").addEventListener("change", () => { el("account-field").hidden = el("user-role").value !== "consumer"; });
    const draw = async () => {
      const users = await all("/users");
      el("users").innerHTML = head([t("Username"), t("Full name"), t("Role"), t("Account"), t("State"), t("Failed logins"), ""]) + users.map((u) => row([
        `<span class="data">${esc(u.username)}</span>`, `<span class="data">${esc(u.full_name)}</span>`,
        me.actor === `user:${u.username}` ? esc(ROLES[u.role] || u.role)
          : `<select data-role>${Object.entries(ROLES).map(([v, n]) => `<option value="${v}"${v === u.role ? " selected" : ""}>${esc(n)}</option>`).join("")}</select>`,
        u.account_id ?? "", u.active ? esc(t("active")) : `<span class="error">${esc(t("deactivated"))}</span>`, u.failed_logins,
        me.actor === `user:${u.username}` ? "" : (u.active ? `<button class="secondary" data-act="deactivate">${esc(t("Deactivate"))}</button>`
          : `<button data-act="activate">${esc(t("Activate"))}</button>`),
      ], `data-user="${u.id}" data-username="${esc(u.username)}"`)).join("");
      el("users").querySelectorAll("button[data-act]").forEach((b) => b.addEventListener("click", () => act(b)));
      el("users").querySelectorAll("select[data-role]").forEach((s) => s.addEventListener("change", () => changeRole(s)));
    };
    const status = (text) => { el("users-status").textContent = text; };
    async function act(button) {
      const tr = button.closest("tr");
      const question = button.dataset.act === "deactivate" ? t("Deactivate {user}? Their sessions end at once.", { user: tr.dataset.username })
        : t("Let {user} sign in again?", { user: tr.dataset.username });
      if (!confirm(question)) return;
      try {
        await post(`/users/${tr.dataset.user}/${button.dataset.act}`);
        status("");
      } catch (e) { status(e.message); }
      await draw();
    }
    async function changeRole(select) {
      const tr = select.closest("tr");
      const body = { role: select.value };
      if (select.value === "consumer") {
        const account = prompt(t("Account number (id) whose flat {user} may see", { user: tr.dataset.username }));
        if (!account) { await draw(); return; }
        body.account_id = Number(account);
      }
      try {
        await api(`/users/${tr.dataset.user}`, { method: "PATCH", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
        status(t("{user} is now {role}.", { user: tr.dataset.username, role: ROLES[select.value] }));
      } catch (e) { status(e.message); }
      await draw();
    }
    el("user-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const form = Object.fromEntries(new FormData(event.target));
      const body = { username: form.username, full_name: form.full_name, password: form.password, role: form.role };
      if (form.role === "consumer") body.account_id = Number(form.account_id) || null;
      try {
        await post("/users", body);
        el("user-errors").innerHTML = "";
        event.target.reset();
        el("account-field").hidden = true;
        status(t("User {user} created.", { user: body.username }));
      } catch (e) { showErrors("user-errors", e); }
      await draw();
    });
    await draw();
  }

  // ---------------- API keys ----------------
  async function keysPage() {
    await header();
    const draw = async () => {
      const keys = await all("/api-keys");
      el("keys").innerHTML = head([t("Name"), t("Prefix"), t("Scopes"), t("Created"), t("Last used"), t("Revoked"), ""]) + keys.map((k) => row([
        `<span class="data">${esc(k.name)}</span>`, `<code class="data">${esc(k.prefix)}</code>`, esc(k.scopes.join(", ")),
        esc(when(k.created_at)), k.last_used_at ? esc(when(k.last_used_at)) : esc(t("never")),
        k.revoked_at ? esc(when(k.revoked_at)) : "",
        k.revoked_at ? "" : `<button class="secondary" data-revoke>${esc(t("Revoke"))}</button>`,
      ], `data-key="${k.id}" data-prefix="${esc(k.prefix)}"`)).join("");
      el("keys").querySelectorAll("button[data-revoke]").forEach((b) => b.addEventListener("click", async () => {
        const tr = b.closest("tr");
        if (!confirm(t("Revoke key {prefix}? It stops working at once.", { prefix: tr.dataset.prefix }))) return;
        await post(`/api-keys/${tr.dataset.key}/revoke`);
        el("keys-status").textContent = t("Key {prefix} revoked.", { prefix: tr.dataset.prefix });
        await draw();
      }));
    };
    el("key-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const form = new FormData(event.target);
      try {
        const key = await post("/api-keys", { name: form.get("name"), scopes: form.getAll("scopes") });
        el("key-errors").innerHTML = "";
        el("new-key-token").textContent = key.token;
        el("new-key").hidden = false;
        event.target.reset();
      } catch (e) { showErrors("key-errors", e); }
      await draw();
    });
    await draw();
  }

  // ---------------- tariffs ----------------
  // a version's consumption blocks in words: "0–100: 1.10; 100 and more: 1.50"
  const blocks = (spec) => (spec.blocks || []).map((b) => (b.to_qty === null || b.to_qty === undefined
    ? t("{from} and more: {price}", { from: b.from_qty, price: b.price })
    : `${b.from_qty}–${b.to_qty}: ${b.price}`)).join("; ");
  async function tariffsPage() {
    await header();
    let latest = {};
    const series = (x) => `${x.utility}/${x.supplier}`;
    const draw = async () => {
      const tariffs = await all("/tariffs");
      tariffs.sort((a, b) => series(a).localeCompare(series(b)) || b.version - a.version);
      latest = {};
      tariffs.forEach((x) => { if (!latest[series(x)]) latest[series(x)] = x; });
      const now = today();
      el("tariffs").innerHTML = head([t("Utility"), t("Supplier"), t("Version"), t("In force from"), t("Until"), t("Unit"), t("Price blocks (MDL per unit)"), t("Fixed per month"), ""]) +
        tariffs.map((x) => row([
          esc(utility(x.utility)), `<span class="data">${esc(x.supplier)}</span>`, x.version, esc(day(x.effective_from)),
          x.effective_to ? esc(day(x.effective_to)) : "", esc(x.spec.unit), `<span class="data">${esc(blocks(x.spec))}</span>`,
          esc(x.spec.fixed_per_month ?? "0"), inForce(x, now) ? `<span class="pill">${esc(t("in force"))}</span>` : "",
        ], `data-tariff="${x.id}"`)).join("");
      const chosen = el("tariff-series").value;
      el("tariff-series").innerHTML = Object.keys(latest).map((k) =>
        `<option value="${esc(k)}">${esc(utility(latest[k].utility))} · ${esc(latest[k].supplier)}</option>`).join("");
      if (chosen in latest) el("tariff-series").value = chosen;
    };
    // the new version starts as a copy of the latest one of the chosen tariff, from the 1st of next month
    const prefill = () => {
      const base = latest[el("tariff-series").value];
      if (!base) return;
      const { effective_from: _from, effective_to: _to, ...spec } = base.spec;
      const next = new Date();
      el("tariff-from").value = new Date(Date.UTC(next.getFullYear(), next.getMonth() + 1, 1)).toISOString().slice(0, 10);
      el("tariff-spec").value = JSON.stringify(spec, null, 2);
    };
    el("tariff-series").addEventListener("change", prefill);
    el("tariff-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      el("tariff-status").textContent = "";
      let spec;
      try {
        spec = JSON.parse(el("tariff-spec").value);
      } catch (e) {
        showErrors("tariff-errors", { message: t("The tariff document is not valid JSON: {error}", { error: e.message }) });
        return;
      }
      try {
        const stored = await post("/tariffs", { ...spec, effective_from: el("tariff-from").value });
        el("tariff-errors").innerHTML = "";
        await draw();
        prefill();
        el("tariff-status").textContent = t("Version {version} stored, in force from {day}.", { version: stored.version, day: day(stored.effective_from) });
      } catch (e) { showErrors("tariff-errors", e); }
    });
    await draw();
    prefill();
  }

  // ---------------- audit log ----------------
  async function auditPage() {
    await header();
    let cursor = null;
    const query = () => {
      const form = new FormData(el("audit-filters"));
      const params = new URLSearchParams({ limit: "100" });
      for (const name of ["action", "actor", "target"]) if (form.get(name)) params.set(name, form.get(name));
      // dates are whole local days: "until" includes its day
      if (form.get("since")) params.set("since", new Date(`${form.get("since")}T00:00:00`).toISOString());
      if (form.get("until")) params.set("until", new Date(new Date(`${form.get("until")}T00:00:00`).getTime() + 864e5).toISOString());
      return params;
    };
    let shown = [];
    const draw = async (more = false) => {
      const params = query();
      if (more && cursor) params.set("cursor", cursor);
      const page = await api(`/audit?${params}`);
      shown = more ? shown.concat(page.items) : page.items;
      cursor = page.next_cursor;
      el("audit").innerHTML = shown.length ? auditRows(shown) : `<tr><td>${esc(t("Nothing matches these filters."))}</td></tr>`;
      el("audit-more").hidden = !cursor;
    };
    el("audit-filters").addEventListener("submit", (event) => { event.preventDefault(); draw(); });
    el("audit-more").addEventListener("click", () => draw(true));
    const actions = new Set((await api("/audit?limit=1000")).items.map((a) => a.action));
    el("audit-actions").innerHTML = [...actions].sort().map((a) => `<option value="${esc(a)}">`).join("");
    await draw();
  }

  Object.assign(balans.pages, {
    admin: homePage, admin_users: usersPage, admin_keys: keysPage, admin_tariffs: tariffsPage, admin_audit: auditPage,
  });
})();
