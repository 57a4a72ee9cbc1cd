/**
 * The live dashboard: one self-contained page (no CDN, no build step) that polls
 * /api/stats every second and draws the last five minutes on canvases.
 */
export const DASHBOARD_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Mnemo</title>
<style>
  body { font: 14px system-ui, sans-serif; margin: 0; background: #101418; color: #e6e6e6; }
  header { padding: 12px 20px; display: flex; gap: 24px; align-items: baseline; border-bottom: 1px solid #2a3038; }
  header h1 { font-size: 18px; margin: 0; }
  header span { color: #9aa4af; }
  main { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 16px; padding: 16px 20px; }
  section { background: #171c22; border: 1px solid #2a3038; border-radius: 6px; padding: 10px 12px; }
  section h2 { font-size: 13px; font-weight: 600; margin: 0 0 6px; color: #c9d1d9; }
  section .now { float: right; font-weight: 400; color: #9aa4af; }
  canvas { width: 100%; height: 160px; display: block; }
  .legend { font-size: 12px; color: #9aa4af; margin-top: 4px; }
  .legend b { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 10px; border-radius: 2px; }
</style>
</head>
<body>
<header><h1>Mnemo</h1><span id="version"></span><span id="uptime"></span><span id="status">connecting…</span></header>
<main>
  <section><h2>Operations per second <span class="now" id="ops-now"></span></h2><canvas id="ops"></canvas><div class="legend" id="ops-legend"></div></section>
  <section><h2>Hit ratio <span class="now" id="hit-now"></span></h2><canvas id="hit"></canvas></section>
  <section><h2>Memory used vs limit <span class="now" id="mem-now"></span></h2><canvas id="mem"></canvas></section>
  <section><h2>Evictions per second <span class="now" id="evict-now"></span></h2><canvas id="evict"></canvas></section>
  <section><h2>Connections <span class="now" id="conn-now"></span></h2><canvas id="conn"></canvas></section>
  <section><h2>Replication lag <span class="now" id="lag-now"></span></h2><canvas id="lag"></canvas></section>
</main>
<script>
const WINDOW = 300;
const COLORS = ['#4ea1ff', '#f5a623', '#7ed321', '#e85d75', '#b48ead', '#50e3c2', '#c0c0c0'];
const series = { ops: {}, hit: [], mem: [], limit: [], evict: [], conn: [], lag: [] };
let previous = null;

function push(list, value) { list.push(value); if (list.length > WINDOW) list.shift(); }

function draw(id, lines, options = {}) {
  const canvas = document.getElementById(id);
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  canvas.width = width * ratio; canvas.height = height * ratio;
  const g = canvas.getContext('2d');
  g.scale(ratio, ratio);
  g.clearRect(0, 0, width, height);
  let max = options.max ?? 0;
  for (const line of lines) for (const v of line.values) if (v !== null && v > max) max = v;
  if (max === 0) max = 1;
  g.strokeStyle = '#2a3038'; g.fillStyle = '#9aa4af'; g.font = '11px system-ui';
  for (let i = 0; i <= 4; i++) {
    const y = 4 + (height - 20) * i / 4;
    g.beginPath(); g.moveTo(40, y); g.lineTo(width, y); g.stroke();
    g.fillText(format(max * (4 - i) / 4, options.unit), 0, y + 4);
  }
  for (const line of lines) {
    g.strokeStyle = line.color; g.lineWidth = 1.5; g.beginPath();
    let started = false;
    line.values.forEach((v, i) => {
      if (v === null) return;
      const x = 40 + (width - 40) * (i + WINDOW - line.values.length) / (WINDOW - 1);
      const y = 4 + (height - 20) * (1 - v / max);
      if (started) g.lineTo(x, y); else { g.moveTo(x, y); started = true; }
    });
    g.stroke();
  }
}

function format(value, unit) {
  if (unit === 'bytes') {
    const units = ['B', 'KiB', 'MiB', 'GiB'];
    let i = 0; while (value >= 1024 && i < units.length - 1) { value /= 1024; i++; }
    return value.toFixed(value < 10 && i > 0 ? 1 : 0) + ' ' + units[i];
  }
  if (unit === 'percent') return (value * 100).toFixed(0) + '%';
  if (value >= 1e6) return (value / 1e6).toFixed(1) + 'M';
  if (value >= 1e3) return (value / 1e3).toFixed(1) + 'k';
  return value.toFixed(value < 10 && value % 1 ? 1 : 0);
}

function update(now) {
  document.getElementById('version').textContent = 'version ' + now.version;
  document.getElementById('uptime').textContent = 'up ' + now.uptime + ' s';
  if (previous) {
    const seconds = Math.max((now.time - previous.time) / 1000, 0.001);
    let total = 0;
    for (const [name, count] of Object.entries(now.commands)) {
      const rate = Math.max(0, (count - previous.commands[name]) / seconds);
      series.ops[name] ??= [];
      push(series.ops[name], rate);
      total += rate;
    }
    document.getElementById('ops-now').textContent = format(total) + ' ops/s';
    const lookups = (now.hits - previous.hits) + (now.misses - previous.misses);
    const ratio = lookups > 0 ? (now.hits - previous.hits) / lookups : (series.hit.at(-1) ?? null);
    push(series.hit, ratio);
    document.getElementById('hit-now').textContent = ratio === null ? 'no gets' : format(ratio, 'percent');
    push(series.evict, Math.max(0, (now.evictions - previous.evictions) / seconds));
    document.getElementById('evict-now').textContent = format(series.evict.at(-1)) + '/s';
  }
  push(series.mem, now.memoryUsed);
  push(series.limit, now.memoryLimit);
  document.getElementById('mem-now').textContent = format(now.memoryUsed, 'bytes') + ' of ' + format(now.memoryLimit, 'bytes') + ', ' + now.items + ' items';
  push(series.conn, now.connections);
  document.getElementById('conn-now').textContent = String(now.connections);
  push(series.lag, now.replicationLag);
  document.getElementById('lag-now').textContent = now.replicationLag === null ? 'no peers' : now.replicationLag.toFixed(3) + ' s';
  previous = now;

  const names = Object.keys(series.ops);
  draw('ops', names.map((name, i) => ({ values: series.ops[name], color: COLORS[i % COLORS.length] })));
  document.getElementById('ops-legend').innerHTML = names.map((name, i) => '<b style="background:' + COLORS[i % COLORS.length] + '"></b>' + name).join('');
  draw('hit', [{ values: series.hit, color: COLORS[2] }], { max: 1, unit: 'percent' });
  draw('mem', [{ values: series.limit, color: COLORS[3] }, { values: series.mem, color: COLORS[0] }], { unit: 'bytes' });
  draw('evict', [{ values: series.evict, color: COLORS[1] }]);
  draw('conn', [{ values: series.conn, color: COLORS[4] }]);
  draw('lag', [{ values: series.lag, color: COLORS[5] }]);
  document.body.dataset.updates = String(Number(document.body.dataset.updates ?? 0) + 1);
}

async function poll() {
  try {
    const response = await fetch('/api/stats');
    update(await response.json());
    document.getElementById('status').textContent = 'live';
  } catch (error) {
    document.getElementById('status').textContent = 'disconnected';
  }
}
poll();
setInterval(poll, 1000);
</script>
</body>
</html>
`;
