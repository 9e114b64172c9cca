// The only script of the console: the progress page of a background job asks for its state
// until it is done. Without it the page still works: "Vernieuwen" reloads it.
"use strict";
(function () {
  var state = document.getElementById("job-state");
  if (!state) { return; }
  var url = state.getAttribute("data-progress");
  var bar = document.getElementById("job-bar");
  var warnings = document.getElementById("job-warnings");
  function show(job) {
    state.textContent = job.text;
    state.setAttribute("data-state", job.state);
    if (bar) {
      bar.max = Math.max(job.total || 0, job.done, 1);
      bar.value = job.done;
    }
    if (warnings) {
      warnings.textContent = "";
      job.warnings.forEach(function (w) {
        var li = document.createElement("li");
        li.textContent = w;
        warnings.appendChild(li);
      });
    }
  }
  function poll() {
    fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (job) {
        show(job);
        if (job.state === "running") { setTimeout(poll, 250); }
      })
      .catch(function () { setTimeout(poll, 1000); });
  }
  if (state.getAttribute("data-state") === "running") { poll(); }
})();
