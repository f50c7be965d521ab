// Live preview of the SMS template being edited: rendered on sample client data by the admin's
// preview endpoint (the same engine and validation as saving), with length and SMS parts.
(function () {
  "use strict";

  function start() {
    var panel = document.getElementById("sms-live-preview");
    var body = document.getElementById("id_body");
    var phase = document.getElementById("id_phase");
    if (!panel || !body) {
      return; // read-only view: the saved preview is shown instead
    }
    var form = body.form;
    var csrf = form.querySelector("input[name=csrfmiddlewaretoken]");
    var textOut = panel.querySelector("[data-role=text]");
    var summaryOut = panel.querySelector("[data-role=summary]");
    var problemsOut = panel.querySelector("[data-role=problems]");
    var timer = null;
    var sequence = 0;

    // After a refused save the form already lists the body's problems beside it; the preview
    // lists only the ones it does not, so no problem is shown twice.
    var row = body.closest(".form-row");
    var shown = Array.prototype.map.call(row ? row.querySelectorAll(".errorlist li") : [], function (item) {
      return item.textContent.trim();
    });

    function show(result) {
      textOut.textContent = result.text;
      summaryOut.textContent = result.summary;
      summaryOut.classList.toggle("sms-length-long", result.length.segments > 2);
      problemsOut.replaceChildren();
      result.problems.filter(function (problem) {
        return shown.indexOf(problem.trim()) === -1;
      }).forEach(function (problem) {
        var item = document.createElement("li");
        item.textContent = problem;
        problemsOut.appendChild(item);
      });
    }

    function refresh() {
      var mine = ++sequence;
      var data = new FormData();
      data.append("body", body.value);
      data.append("phase", phase ? phase.value : "");
      fetch(panel.dataset.previewUrl, {
        method: "POST",
        body: data,
        headers: { "X-CSRFToken": csrf ? csrf.value : "" },
        credentials: "same-origin",
      })
        .then(function (response) {
          if (!response.ok) {
            throw new Error("preview failed: " + response.status);
          }
          return response.json();
        })
        .then(function (result) {
          if (mine === sequence) {
            show(result); // ignore answers overtaken by a later keystroke
          }
        })
        .catch(function (error) {
          summaryOut.textContent = String(error.message || error);
        });
    }

    function schedule() {
      window.clearTimeout(timer);
      timer = window.setTimeout(refresh, 250);
    }

    body.addEventListener("input", schedule);
    if (phase) {
      phase.addEventListener("change", refresh);
    }
    refresh();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
