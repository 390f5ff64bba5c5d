// Sluice console: the one script. Pages work without it; it adds two things.
// 1. Forms with data-confirm ask before they are sent.
// 2. An element with data-live="<url>" is replaced by each "rollout" event from that
//    EventSource, so a rollout's progress updates without a reload.
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) {
        event.preventDefault();
      }
    });
  });

  document.querySelectorAll("[data-live]").forEach(function (element) {
    if (!window.EventSource) {
      return;
    }
    var status = document.getElementById("live-status");
    var source = new EventSource(element.getAttribute("data-live"));
    source.addEventListener("rollout", function (event) {
      var message;
      try {
        message = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (typeof message.html === "string") {
        element.innerHTML = message.html;
        element.setAttribute("data-seq", String(message.seq));
      }
      if (status) {
        status.textContent = "Live: updated " + new Date().toLocaleTimeString();
      }
    });
    source.addEventListener("open", function () {
      if (status) {
        status.textContent = "Live: connected";
      }
    });
    source.addEventListener("error", function () {
      if (status) {
        status.textContent = "Live: reconnecting…";
      }
    });
  });
});
