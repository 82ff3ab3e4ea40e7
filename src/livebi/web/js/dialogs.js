// Small modal dialogs on the native <dialog> element (focus trapping, Escape and the backdrop
// come from the browser). Every text is a text node.

import { h } from "./dom.js";

/**
 * Open a modal dialog. `body` is nodes; `actions` [{label, primary, testid, onClick}] where
 * onClick may return a Promise (the button waits) and returns false to keep the dialog open.
 * Resolves when it closes.
 */
export function openDialog({ title, body = [], actions = [], testid = "dialog", closeLabel = "Close" }) {
  return new Promise((resolve) => {
    const error = h("p", { class: "form-error", role: "alert", hidden: true, testid: "dialog-error" });
    const buttons = actions.map((action) => {
      const button = h("button", {
        type: action.submit ? "submit" : "button", class: `btn btn-small ${action.primary ? "btn-primary" : "btn-ghost"}`,
        testid: action.testid || null,
      }, action.label);
      if (!action.submit) button.addEventListener("click", () => run(action, button));
      return button;
    });
    const form = h("form", { class: "dialog-form", method: "dialog", novalidate: true },
      h("header", { class: "dialog-head" },
        h("h2", { class: "dialog-title" }, title),
        h("button", { type: "button", class: "btn btn-ghost btn-icon", "aria-label": closeLabel, testid: "dialog-close",
          on: { click: () => dialog.close() } }, "×")),
      h("div", { class: "dialog-body" }, body, error),
      buttons.length ? h("footer", { class: "dialog-actions" }, buttons) : null);
    const dialog = h("dialog", { class: "dialog", testid, "aria-label": title }, form);
    const submitAction = actions.find((a) => a.submit);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (submitAction) run(submitAction, buttons[actions.indexOf(submitAction)]);
    });
    async function run(action, button) {
      error.hidden = true;
      button.disabled = true;
      try {
        const keep = await action.onClick();
        if (keep !== false) dialog.close();
      } catch (err) {
        error.textContent = (err && err.message) || String(err);
        error.hidden = false;
      } finally {
        button.disabled = false;
      }
    }
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** Show an error inside an open dialog's error line (for actions that keep it open). */
export function dialogError(node, message) {
  const dialog = node.closest("dialog");
  const error = dialog && dialog.querySelector("[data-testid=dialog-error]");
  if (!error) return;
  error.textContent = message;
  error.hidden = !message;
}
