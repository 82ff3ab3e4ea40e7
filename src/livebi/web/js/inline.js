// Inline text editing: a text shown as a button; click (or Enter) turns it into an input,
// Enter or leaving the field saves, Escape cancels. Used for dashboard and widget titles.

import { h } from "./dom.js";

/**
 * @param {object} o
 * @param {string} o.value  the current text
 * @param {string} o.label  what is edited ("Dashboard title"), for screen readers
 * @param {string} [o.placeholder]  shown when the text is empty
 * @param {boolean} [o.editable]  false: plain text, no editing
 * @param {boolean} [o.multiline]
 * @param {number} [o.maxLength]
 * @param {string} [o.testid]
 * @param {function(string):void} o.onCommit  called with the new text when it changed
 * @param {function(boolean):void} [o.onEditing]  true when editing starts, false when it ends
 * @returns {{el: HTMLElement, set: function(string):void, editing: function():boolean}}
 */
export function inlineText({ value, label, placeholder = "", editable = true, multiline = false, maxLength = 200,
  testid = null, className = "", onCommit, onEditing = () => {} }) {
  let current = value || "";
  let input = null;
  const display = editable
    ? h("button", { type: "button", class: `inline-edit ${className}`, testid, title: `Edit: ${label}`,
        "aria-label": `${label}: ${current || placeholder}. Activate to edit` })
    : h("span", { class: `inline-text ${className}`, testid });
  const wrap = h("span", { class: "inline-wrap" }, display);

  function render() {
    display.textContent = current || placeholder;
    display.classList.toggle("placeholder", !current);
    if (editable) display.setAttribute("aria-label", `${label}: ${current || placeholder}. Activate to edit`);
  }

  function start() {
    if (input) return;
    input = h(multiline ? "textarea" : "input", {
      class: `inline-input ${className}`, testid: testid ? `${testid}-input` : null, "aria-label": label,
      maxlength: String(maxLength), value: current, rows: multiline ? "2" : null,
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        finish(false);
      } else if (event.key === "Enter" && (!multiline || !event.shiftKey)) {
        event.preventDefault();
        finish(true);
      }
      event.stopPropagation(); // arrow keys inside the field must not move the widget
    });
    input.addEventListener("blur", () => finish(true));
    display.hidden = true;
    wrap.append(input);
    input.focus();
    input.select();
    onEditing(true);
  }

  function finish(save) {
    if (!input) return;
    const text = input.value.trim();
    const field = input;
    input = null;
    field.remove();
    display.hidden = false;
    display.focus();
    onEditing(false);
    // A title cannot be emptied (it would vanish); a description can.
    if (save && text !== current && (text || multiline)) {
      current = text;
      render();
      onCommit(text);
    }
  }

  if (editable) display.addEventListener("click", start);
  render();
  return {
    el: wrap,
    set(text) {
      current = text || "";
      render();
    },
    editing: () => Boolean(input),
  };
}
