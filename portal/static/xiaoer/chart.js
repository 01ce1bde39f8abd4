/* Draws every chart of templates/admin/xiaoer/chart.html with Apache ECharts (vendor/echarts.min.js).
 * The option is the JSON of portal.charts.Chart.option(), read from its json_script element: nothing on
 * the page is evaluated as code. Safe to load twice: a chart is drawn once. */
(function () {
  "use strict";
  var root = document.documentElement;
  var locale = (root.lang || "zh").toLowerCase().indexOf("zh") === 0 ? "ZH" : "EN";

  function dark() {  // the admin's theme toggle (html[data-theme]), else the system's
    var theme = root.getAttribute("data-theme");
    if (theme === "dark" || theme === "light") {
      return theme === "dark";
    }
    return !!(window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches);
  }

  function draw(element) {
    var source = document.getElementById(element.getAttribute("data-xiaoer-chart"));
    if (!source || !window.echarts || element.getAttribute("data-xiaoer-drawn")) {
      return;
    }
    element.setAttribute("data-xiaoer-drawn", "1");
    element.style.height = (parseInt(element.getAttribute("data-height"), 10) || 260) + "px";
    var chart = window.echarts.init(element, dark() ? "dark" : null, {renderer: "canvas", locale: locale});
    var option = JSON.parse(source.textContent);
    option.backgroundColor = option.backgroundColor || "transparent";
    chart.setOption(option);
    window.addEventListener("resize", function () { chart.resize(); });
  }

  function drawAll() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-xiaoer-chart]"), draw);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
