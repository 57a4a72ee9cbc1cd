/**
 * The dashboard: one page, no CDN and no build step. On load it draws the
 * server's own history (/api/history: the last 15 minutes, one sample a second),
 * then asks every second for the samples since the last one and appends them.
 * Charts are uPlot (served by this server at /uplot.js): time axes in the
 * browser's local time, legends with the value under the cursor.
 */
export const DASHBOARD_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Mnemo</title>
<link rel="stylesheet" href="/uplot.css">
<style>
  body { font: 14px system-ui, sans-serif; margin: 0; background: #101418; color: #e6e6e6; }
  header { padding: 12px 20px; display: flex; gap: 24px; align-items: baseline; border-bottom: 1px solid #2a3038; }
  header h1 { font-size: 18px; margin: 0; }
  header span { color: #9aa4af; }
  main { display: grid; grid-template-columns: repeat(auto-fill, minmax(440px, 1fr)); gap: 16px; padding: 16px 20px; }
  section { background: #171c22; border: 1px solid #2a3038; border-radius: 6px; padding: 10px 12px; min-width: 0; }
  section h2 { font-size: 13px; font-weight: 600; margin: 0 0 6px; color: #c9d1d9; }
  section .now { float: right; font-weight: 400; color: #9aa4af; }
  .chart { height: 210px; }
  .u-legend { font-size: 12px; color: #9aa4af; }
  .u-legend .u-marker { width: 10px; height: 10px; }
  .alert { color: #e85d75; font-weight: 600; }
</style>
</head>
<body>
<header><h1>Mnemo</h1><span id="version"></span><span id="uptime"></span><span id="status">connecting…</span></header>
<main id="panels"></main>
<script src="/uplot.js"></script>
<script>
const WINDOW = 900;
const COLORS = ['#4ea1ff', '#f5a623', '#7ed321', '#e85d75', '#b48ead', '#50e3c2', '#c0c0c0'];
const FAMILIES = ['get', 'set', 'delete', 'arithmetic', 'touch', 'meta', 'other'];
const raw = {};
let columns = [];
let lastTime = -1;
const charts = {};
window.charts = charts;

function format(value, unit) {
  if (value === null || value === undefined || Number.isNaN(value)) return '–';
  if (value === 0) return '0';
  if (unit === 'bytes') {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0; while (Math.abs(value) >= 1024 && i < units.length - 1) { value /= 1024; i++; }
    return value.toFixed(value < 10 && i > 0 ? 1 : 0) + ' ' + units[i];
  }
  if (unit === 'percent') return (value * 100).toFixed(value < 1 ? 1 : 0) + '%';
  if (unit === 'ms') return value < 1 ? (value * 1000).toFixed(0) + ' µs' : value.toFixed(value < 10 ? 2 : 0) + ' ms';
  if (unit === 's') return value.toFixed(value < 10 ? 3 : 0) + ' s';
  if (Math.abs(value) >= 1e6) return (value / 1e6).toFixed(1) + 'M';
  if (Math.abs(value) >= 1e3) return (value / 1e3).toFixed(1) + 'k';
  return value.toFixed(value % 1 ? 1 : 0);
}

// Derived series: counters become per-second rates between consecutive samples.
function column(name) { return raw[name] || []; }
function rate(name) {
  const t = column('time'), c = column(name);
  return t.map((time, i) => {
    if (i === 0 || c[i] === null || c[i - 1] === null) return null;
    const dt = time - t[i - 1];
    return dt > 0 ? Math.max(0, (c[i] - c[i - 1]) / dt) : null;
  });
}
function hitRatio() {
  const t = column('time'), h = column('get_hits'), m = column('get_misses');
  return t.map((_, i) => {
    if (i === 0) return null;
    const hits = h[i] - h[i - 1], lookups = hits + m[i] - m[i - 1];
    return lookups > 0 ? Math.max(0, hits / lookups) : null;
  });
}
function scaled(name, factor) { return column(name).map((v) => (v === null ? null : v * factor)); }

/** The panels; those whose columns the server does not keep (no disk tier, no peers) are left out. */
function panelDefinitions() {
  const panels = [
    { id: 'ops', title: 'Operations per second', unit: 'count',
      series: () => FAMILIES.map((f, i) => ({ label: f, color: COLORS[i], values: rate('cmd_' + f) })),
      now: (s) => format(s.reduce((sum, x) => sum + (x.values.at(-1) || 0), 0)) + ' ops/s' },
    { id: 'hit', title: 'Hit ratio (gets)', unit: 'percent', range: [0, 1],
      series: () => [{ label: 'hit ratio', color: COLORS[2], values: hitRatio() }],
      now: (s) => format(s[0].values.at(-1), 'percent') },
    { id: 'latency', title: 'Latency (server time per command)', unit: 'ms',
      series: () => [{ label: 'p50', color: COLORS[0], values: column('latency_p50_ms') }, { label: 'p99', color: COLORS[3], values: column('latency_p99_ms') }],
      now: (s) => 'p50 ' + format(s[0].values.at(-1), 'ms') + ', p99 ' + format(s[1].values.at(-1), 'ms') },
    { id: 'items', title: 'Items', unit: 'count',
      series: () => [{ label: 'items', color: COLORS[5], values: column('items') }],
      now: (s) => format(s[0].values.at(-1)) + ' items' },
    { id: 'memory', title: 'Memory used vs -m', unit: 'bytes', zero: true,
      series: () => [{ label: 'used', color: COLORS[0], values: column('bytes') }, { label: 'limit (-m)', color: COLORS[3], values: column('limit_bytes'), dash: [6, 4] }],
      now: (s) => format(s[0].values.at(-1), 'bytes') + ' of ' + format(s[1].values.at(-1), 'bytes') },
    { id: 'evictions', title: 'Evictions and expirations per second', unit: 'count',
      series: () => [{ label: 'evicted', color: COLORS[1], values: rate('evictions') }, { label: 'expired', color: COLORS[4], values: rate('expired') }],
      now: (s) => format(s[0].values.at(-1)) + ' / ' + format(s[1].values.at(-1)) + ' per s' },
    { id: 'connections', title: 'Connections', unit: 'count',
      series: () => [{ label: 'open', color: COLORS[4], values: column('connections') }, { label: 'rejected/s', color: COLORS[3], values: rate('rejected_connections') }],
      now: (s) => format(s[0].values.at(-1)) + ' open' },
  ];
  if (columns.includes('disk_bytes')) {
    panels.push(
      { id: 'disk', title: 'Disk tier: size', unit: 'bytes', zero: true,
        series: () => [{ label: 'on disk', color: COLORS[5], values: column('disk_bytes') }],
        now: (s) => format(s[0].values.at(-1), 'bytes') + (column('disk_full').at(-1) ? ' <span class="alert">DISK FULL</span>' : '') },
      { id: 'disk-io', title: 'Disk tier: hits per second, commit latency', unit: 'count', second: { unit: 'ms', label: 'commit' },
        series: () => [{ label: 'disk hits/s', color: COLORS[1], values: rate('disk_hits') },
          { label: 'commit avg', color: COLORS[0], values: column('disk_commit_avg_ms'), scale: 'second' },
          { label: 'full', color: COLORS[3], values: column('disk_full'), scale: 'second' }],
        now: (s) => format(s[0].values.at(-1)) + ' hits/s, commit ' + format(s[1].values.at(-1), 'ms') });
  }
  for (let peer = 0; columns.includes('peer_' + peer + '_connected'); peer++) {
    panels.push({ id: 'peer-' + peer, title: 'Replication peer ' + peer, unit: 's', second: { unit: 'count', label: 'connected', range: [0, 1] },
      series: () => [{ label: 'lag', color: COLORS[5], values: scaled('peer_' + peer + '_lag_ms', 0.001) },
        { label: 'connected', color: COLORS[2], values: column('peer_' + peer + '_connected'), scale: 'second' }],
      now: (s) => (s[1].values.at(-1) ? 'connected' : '<span class="alert">down</span>') + ', lag ' + format(s[0].values.at(-1), 's') });
  }
  return panels;
}

let panels = [];

function axis(unit, side) {
  return { scale: side === 1 ? 'second' : 'y', side, stroke: '#9aa4af', grid: { show: side !== 1, stroke: '#2a3038', width: 1 },
    ticks: { stroke: '#2a3038' }, size: 64, values: (u, splits) => splits.map((v) => format(v, unit)) };
}

function build() {
  const main = document.getElementById('panels');
  panels = panelDefinitions();
  for (const panel of panels) {
    const section = document.createElement('section');
    section.innerHTML = '<h2>' + panel.title + ' <span class="now" id="' + panel.id + '-now"></span></h2><div class="chart" id="' + panel.id + '"></div>';
    main.appendChild(section);
    const series = panel.series();
    const y = panel.range ? { range: panel.range } : { range: (u, min, max) => [panel.zero || min >= 0 ? 0 : min, max > 0 ? max * 1.1 : 1] };
    const scales = { x: { time: true }, y };
    const axes = [{ stroke: '#9aa4af', grid: { stroke: '#2a3038', width: 1 }, ticks: { stroke: '#2a3038' } }, axis(panel.unit, 3)];
    if (panel.second) {
      scales.second = panel.second.range ? { range: panel.second.range } : { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] };
      axes.push(axis(panel.second.unit, 1));
    }
    const element = document.getElementById(panel.id);
    charts[panel.id] = new uPlot({
      width: element.clientWidth, height: 180, scales, axes,
      cursor: { drag: { x: false, y: false } },
      series: [{ label: 'time' }, ...series.map((s) => ({
        label: s.label, stroke: s.color, width: 1.5, dash: s.dash, scale: s.scale || 'y', spanGaps: false,
        value: (u, v) => format(v, s.scale === 'second' ? panel.second.unit : panel.unit),
      }))],
    }, [[], ...series.map(() => [])], element);
  }
  window.addEventListener('resize', () => {
    for (const panel of panels) charts[panel.id].setSize({ width: document.getElementById(panel.id).clientWidth, height: 180 });
  });
}

function redraw() {
  const time = column('time');
  for (const panel of panels) {
    const series = panel.series();
    charts[panel.id].setData([time, ...series.map((s) => s.values)]);
    document.getElementById(panel.id + '-now').innerHTML = panel.now(series);
  }
  document.body.dataset.points = String(time.length);
  // When the history first showed, and how much of it, for the headless-browser test.
  if (document.body.dataset.firstDrawMs === undefined) {
    document.body.dataset.firstDrawMs = String(performance.now());
    document.body.dataset.firstDrawOps = String(charts.ops.data[0].length);
  }
  document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
}

function append(history) {
  if (columns.length === 0) {
    columns = history.columns;
    build();
  }
  for (const name of columns) {
    const list = (raw[name] ||= []);
    list.push(...history.data[name]);
    if (list.length > WINDOW) list.splice(0, list.length - WINDOW);
  }
  if (history.rows > 0) lastTime = raw.time.at(-1);
}

async function poll() {
  try {
    const history = await (await fetch('/api/history' + (lastTime < 0 ? '' : '?since=' + lastTime))).json();
    append(history);
    redraw();
    const now = await (await fetch('/api/stats')).json();
    document.getElementById('version').textContent = 'version ' + now.version;
    document.getElementById('uptime').textContent = 'up ' + now.uptime + ' s';
    document.getElementById('status').textContent = 'live';
  } catch (error) {
    document.getElementById('status').textContent = 'disconnected';
  }
  setTimeout(poll, 1000);
}
poll();
</script>
</body>
</html>
`;
