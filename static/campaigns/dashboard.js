/* The live dashboard: polls the status feed every few seconds and updates the page in place.
 * Text is always set with textContent, never parsed as HTML. */
(function () {
  "use strict";

  var root = document.getElementById("dashboard");
  if (!root) {
    return;
  }
  var statusUrl = root.getAttribute("data-status-url");
  var intervalMs = Math.max(1, parseInt(root.getAttribute("data-poll-seconds"), 10) || 3) * 1000;
  var charts = {};

  function cell(text, className) {
    var td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "—" : String(text);
    if (className) {
      td.className = className;
    }
    return td;
  }

  function fillRows(tbody, rows, columns, emptyText) {
    if (!tbody) {
      return;
    }
    var fragment = document.createDocumentFragment();
    if (!rows.length) {
      var tr = document.createElement("tr");
      tr.className = "empty";
      var td = cell(emptyText);
      td.colSpan = columns.length;
      tr.appendChild(td);
      fragment.appendChild(tr);
    }
    rows.forEach(function (row) {
      var tr = document.createElement("tr");
      columns.forEach(function (column) {
        tr.appendChild(cell(column.value(row), column.numeric ? "num" : ""));
      });
      fragment.appendChild(tr);
    });
    tbody.replaceChildren(fragment);
  }

  function setField(card, name, value) {
    card.querySelectorAll('[data-field="' + name + '"]').forEach(function (el) {
      el.textContent = value === null || value === undefined ? "" : String(value);
      if (el.classList.contains("notice")) {
        el.hidden = !value;
      }
    });
  }

  function num(key) {
    return { value: function (row) { return row[key]; }, numeric: true };
  }

  function text(key) {
    return { value: function (row) { return row[key]; } };
  }

  function updateCampaign(card, data) {
    card.setAttribute("data-status", data.status);
    var badge = card.querySelector("[data-status-badge]");
    if (badge) {
      badge.setAttribute("data-status-badge", data.status);
    }
    ["status_display", "halt_reason", "load_error", "flush_error", "rows_inserted", "rows_read",
     "rows_rejected", "total_items", "calls_placed"].forEach(function (name) {
      setField(card, name, data[name]);
    });
    Object.keys(data.counters).forEach(function (key) {
      var value = card.querySelector('[data-counter="' + key + '"] .value');
      if (value && value.textContent !== String(data.counters[key])) {
        value.textContent = String(data.counters[key]);
        value.parentElement.classList.remove("changed");
        void value.parentElement.offsetWidth; // restart the highlight animation
        value.parentElement.classList.add("changed");
      }
    });
    // Controls follow the status: a stopped campaign offers no stop button.
    card.querySelectorAll("[data-control]").forEach(function (control) {
      var allowed = (control.getAttribute("data-statuses") || "").split(" ");
      control.hidden = allowed.indexOf(data.status) === -1;
    });
    fillRows(card.querySelector("[data-ring-groups]"), data.ring_groups,
      [text("ring_group"), num("free_agents"), num("in_flight"), num("queued"), num("done")], "No touchpoints loaded.");
    fillRows(card.querySelector("[data-skipped]"), data.skipped_by_reason, [text("reason_display"), num("count")], "Nothing skipped.");
    fillRows(card.querySelector("[data-batches]"), data.batches, [
      text("released_at"), text("ring_group"), num("available_agents"), text("why_size"), text("ended")
    ], "No batch released yet.");

    var mixFigure = card.querySelector('[data-chart="outcome-mix"]');
    var funnelFigure = card.querySelector('[data-chart="funnel"]');
    fillRows(mixFigure && mixFigure.querySelector("tbody"), data.outcome_mix.rows,
      [text("hour")].concat([0, 1, 2, 3, 4].map(function (i) {
        return { value: function (row) { return row.counts[i]; }, numeric: true };
      })), "No call has ended yet.");
    fillRows(funnelFigure && funnelFigure.querySelector("tbody"), data.funnel, [text("label"), num("count")], "");
    var chartsOfCard = charts[data.id];
    if (chartsOfCard) {
      if (chartsOfCard.mix) { chartsOfCard.mix.update(data.outcome_mix); }
      if (chartsOfCard.funnel) { chartsOfCard.funnel.update(data.funnel); }
    }
  }

  function updateAlerts(alerts) {
    var list = root.querySelector("[data-alerts]");
    if (!list) {
      return;
    }
    var fragment = document.createDocumentFragment();
    if (!alerts.length) {
      var empty = document.createElement("li");
      empty.className = "empty";
      empty.textContent = "No open alerts.";
      fragment.appendChild(empty);
    }
    alerts.forEach(function (alert) {
      var li = document.createElement("li");
      li.className = "alert alert-" + alert.level;
      [["when", alert.created_at], ["source", alert.source], ["campaign", alert.campaign], ["alert-message", alert.message]].forEach(function (part) {
        if (!part[1]) {
          return;
        }
        var span = document.createElement("span");
        span.className = part[0];
        span.textContent = part[1];
        li.appendChild(span);
        li.appendChild(document.createTextNode(" "));
      });
      fragment.appendChild(li);
    });
    list.replaceChildren(fragment);
  }

  function setLive(state, updatedAt) {
    var live = root.querySelector("[data-live]");
    if (live) {
      live.setAttribute("data-live", state);
    }
    if (updatedAt) {
      var updated = root.querySelector("[data-updated]");
      if (updated) {
        updated.textContent = updatedAt;
      }
    }
  }

  function apply(payload) {
    var shown = Array.prototype.map.call(root.querySelectorAll("[data-campaign]"), function (el) {
      return el.getAttribute("data-campaign");
    });
    var incoming = payload.campaigns.map(function (c) { return String(c.id); });
    payload.campaigns.forEach(function (data) {
      var card = root.querySelector('[data-campaign="' + data.id + '"]');
      if (card) {
        updateCampaign(card, data);
      }
    });
    var notice = root.querySelector("[data-new-campaigns]");
    if (notice) {
      notice.hidden = shown.join(",") === incoming.join(",");
    }
    updateAlerts(payload.alerts);
    setLive("live", payload.generated_at);
  }

  function poll() {
    fetch(statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        return response.json();
      })
      .then(apply)
      .catch(function () {
        setLive("offline");
      })
      .then(function () {
        window.setTimeout(poll, intervalMs);
      });
  }

  function drawCharts() {
    var initial = document.getElementById("dashboard-data");
    if (!initial || !window.DialerCharts || !window.DialerCharts.available()) {
      return;
    }
    JSON.parse(initial.textContent).forEach(function (data) {
      var card = root.querySelector('[data-campaign="' + data.id + '"]');
      if (!card) {
        return;
      }
      charts[data.id] = {
        mix: window.DialerCharts.outcomeMix(card.querySelector('[data-chart="outcome-mix"]'), data.outcome_mix),
        funnel: window.DialerCharts.funnel(card.querySelector('[data-chart="funnel"]'), data.funnel)
      };
    });
  }

  drawCharts();
  window.setTimeout(poll, intervalMs);
})();
