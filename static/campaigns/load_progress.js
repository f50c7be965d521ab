// Live queue-load progress on the campaign admin page: while a load runs, poll the campaign's
// progress endpoint and update the counters in place; when it ends, reload once so the rejected
// rows and the final state show.
(function () {
  "use strict";
  var box = document.getElementById("load-progress");
  if (!box || box.dataset.inProgress !== "1") {
    return;
  }
  var url = box.dataset.url;
  var intervalMs = 2000;

  function update(progress) {
    Object.keys(progress).forEach(function (name) {
      var cell = box.querySelector('[data-counter="' + name + '"]');
      if (cell && typeof progress[name] === "number") {
        cell.textContent = progress[name].toLocaleString();
      }
    });
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("progress request failed: " + response.status);
        }
        return response.json();
      })
      .then(function (progress) {
        update(progress);
        if (progress.in_progress) {
          window.setTimeout(poll, intervalMs);
        } else {
          window.location.reload();
        }
      })
      .catch(function () {
        // A missed poll is harmless; try again a little later.
        window.setTimeout(poll, intervalMs * 2);
      });
  }

  window.setTimeout(poll, intervalMs);
})();
