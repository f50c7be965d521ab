/* Charts of the dashboard and KPI pages, drawn with Chart.js when it was fetched at setup.
 * Without it every chart keeps its data table, so the figures are always on the page. */
(function () {
  "use strict";

  var OUTCOME_COLORS = {
    answered: "#2e7d32",
    voicemail: "#f9a825",
    transferred: "#1565c0",
    no_answer: "#90a4ae",
    failed: "#c62828"
  };
  var LINE_COLORS = ["#1565c0", "#6a1b9a", "#00838f", "#f9a825", "#2e7d32", "#558b2f", "#c62828", "#ef6c00"];

  function available() {
    return typeof window.Chart === "function";
  }

  // Show the canvas and hide the table once a chart is drawn.
  function mount(figure) {
    if (!figure || !available()) {
      return null;
    }
    var holder = figure.querySelector(".chart-canvas");
    var table = figure.querySelector(".chart-table");
    if (!holder) {
      return null;
    }
    holder.hidden = false;
    if (table) {
      table.classList.add("visually-hidden");
    }
    figure.classList.add("has-chart");
    return holder.querySelector("canvas");
  }

  function outcomeMix(figure, mix) {
    var canvas = mount(figure);
    if (!canvas) {
      return null;
    }
    var chart = new window.Chart(canvas, {
      type: "bar",
      data: { labels: [], datasets: [] },
      options: {
        animation: false,
        maintainAspectRatio: false,
        scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
        plugins: { legend: { position: "bottom" } }
      }
    });
    var api = {
      update: function (data) {
        chart.data.labels = data.hours;
        chart.data.datasets = data.series.map(function (s) {
          return { label: s.label, data: s.counts, backgroundColor: OUTCOME_COLORS[s.outcome] || "#777" };
        });
        chart.update();
      }
    };
    api.update(mix);
    return api;
  }

  function funnel(figure, stages) {
    var canvas = mount(figure);
    if (!canvas) {
      return null;
    }
    var chart = new window.Chart(canvas, {
      type: "bar",
      data: { labels: [], datasets: [{ label: "Touchpoints", data: [], backgroundColor: ["#90caf9", "#64b5f6", "#1e88e5", "#0d47a1"] }] },
      options: {
        indexAxis: "y",
        animation: false,
        maintainAspectRatio: false,
        scales: { x: { beginAtZero: true, ticks: { precision: 0 } } },
        plugins: { legend: { display: false } }
      }
    });
    var api = {
      update: function (data) {
        chart.data.labels = data.map(function (s) { return s.label; });
        chart.data.datasets[0].data = data.map(function (s) { return s.count; });
        chart.update();
      }
    };
    api.update(stages);
    return api;
  }

  function trend(figure, data) {
    var canvas = mount(figure);
    if (!canvas) {
      return null;
    }
    return new window.Chart(canvas, {
      type: "line",
      data: {
        labels: data.dates,
        datasets: data.rates.map(function (rate, i) {
          return {
            label: rate.label,
            data: rate.values.map(function (v) { return v === null ? null : Math.round(v * 1000) / 10; }),
            borderColor: LINE_COLORS[i % LINE_COLORS.length],
            backgroundColor: LINE_COLORS[i % LINE_COLORS.length],
            spanGaps: true,
            tension: 0.2
          };
        })
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        scales: { y: { beginAtZero: true, ticks: { callback: function (v) { return v + " %"; } } } },
        plugins: { legend: { position: "bottom" } }
      }
    });
  }

  window.DialerCharts = { available: available, outcomeMix: outcomeMix, funnel: funnel, trend: trend };
})();
