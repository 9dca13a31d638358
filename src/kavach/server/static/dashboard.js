// The dashboard's own script: a revealed value's Copy button. Everything else is htmx.
"use strict";
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const value = button.parentElement.querySelector(".value");
  if (!value || !navigator.clipboard) return;
  await navigator.clipboard.writeText(value.textContent);
  button.textContent = "Copied";
});
