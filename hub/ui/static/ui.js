/* Draw the charts a page or an htmx fragment carries in data- attributes (no inline scripts). */
(function () {
  function drawSankey(root) {
    var el = (root || document).querySelector('#sankey[data-sankey]');
    if (!el || !window.echarts) return;
    var data = JSON.parse(el.getAttribute('data-sankey'));
    var chart = echarts.getInstanceByDom(el) || echarts.init(el, null, {renderer: 'svg'});
    chart.setOption({
      aria: {enabled: true, decal: {show: true}},
      tooltip: {trigger: 'item', valueFormatter: function (v) { return v.toLocaleString(undefined, {maximumFractionDigits: 1}) + ' kW'; }},
      series: [{type: 'sankey', data: data.nodes, links: data.links, emphasis: {focus: 'adjacency'},
                label: {formatter: '{b}'}, lineStyle: {color: 'gradient', curveness: 0.5}}]
    });
    window.addEventListener('resize', function () { chart.resize(); });
  }
  document.addEventListener('DOMContentLoaded', function () { drawSankey(document); });
  document.addEventListener('htmx:afterSwap', function (e) { drawSankey(e.target); });
})();
