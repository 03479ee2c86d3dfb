// balans settings page: the user's language and the monthly consumption e-mail, kept on the
// user row (GET/PUT /api/v1/me/preferences). Loaded after portal.js, whose helpers it uses.
"use strict";
(() => {
  const { api, header, t, el, setLanguageCookie } = balans;

  async function settingsPage() {
    await header();
    const form = el("settings-form");
    const preferences = await api("/me/preferences");
    form.elements.language.value = preferences.language || "";
    form.elements.monthly_email.checked = preferences.monthly_email;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const language = form.elements.language.value || null;
      await api("/me/preferences", {
        method: "PUT", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ language, monthly_email: form.elements.monthly_email.checked }),
      });
      el("settings-status").textContent = t("Saved.");
      if (language && language !== document.documentElement.lang) {
        setLanguageCookie(language);
        location.reload();
      }
    });
    form.dataset.ready = "1"; // filled from the user row and listening: choices made now are kept
  }
  Object.assign(balans.pages, { settings: settingsPage });
})();
