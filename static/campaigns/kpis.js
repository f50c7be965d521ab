/* The KPI page: one line chart of the daily rates (its table stays when Chart.js is absent). */
(function () {
  "use strict";
  var data = document.getElementById("kpi-trend-data");
  if (!data || !window.DialerCharts) {
    return;
  }
  window.DialerCharts.trend(document.querySelector('[data-chart="kpi-trend"]'), JSON.parse(data.textContent));
})();
