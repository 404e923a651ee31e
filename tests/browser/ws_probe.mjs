// ws_probe.mjs: opens a WebSocket from inside a real browser (Debian's
// chromium, driven by playwright-core) and reports what the page sees, one
// JSON object per line on stdout, as it happens:
//   {"event":"open"}
//   {"event":"message","data":"<text>"}
//   {"event":"error"}
//   {"event":"close","code":4401,"reason":"","wasClean":true}
// Lines read on stdin are sent on the socket; when stdin ends, the page closes
// the socket (code 1000), so keep stdin open (a pipe) to keep the socket open.
// Exits after the close event, or after --timeout ms ({"event":"timeout"}).
//   node ws_probe.mjs --page PAGE_URL --ws WS_URL [--timeout MS]
// PAGE_URL is the page the socket is opened from (a web app's origin): it must
// be served from loopback too, or Chromium's local-network-access checks block
// the socket before it reaches the gateway.
import { chromium } from 'playwright-core';
import readline from 'node:readline';

const arg = (name, def) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : def;
};
const url = arg('--ws');
const pageUrl = arg('--page');
const timeout = Number(arg('--timeout', '15000'));
if (!url || !pageUrl) {
  process.stderr.write('usage: node ws_probe.mjs --page PAGE_URL --ws WS_URL [--timeout MS]\n');
  process.exit(2);
}
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let done;
const finished = new Promise((resolve) => { done = resolve; });
const timer = setTimeout(() => { out({ event: 'timeout' }); done(); }, timeout);
try {
  const page = await browser.newPage();
  await page.exposeFunction('report', (o) => {
    out(o);
    if (o.event === 'close') done();
  });
  await page.goto(pageUrl);
  await page.evaluate((u) => {
    const ws = new WebSocket(u);
    window.probe = ws;
    ws.onopen = () => window.report({ event: 'open' });
    ws.onmessage = (m) => window.report({ event: 'message', data: String(m.data) });
    ws.onerror = () => window.report({ event: 'error' });
    ws.onclose = (e) => window.report({ event: 'close', code: e.code, reason: e.reason,
                                        wasClean: e.wasClean });
  }, url);
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    page.evaluate((t) => window.probe.readyState === 1 && window.probe.send(t), line).catch(() => {});
  });
  // End of stdin: a normal close from the page (queued after any pending send).
  rl.on('close', () => {
    page.evaluate(() => window.probe.close(1000, 'done')).catch(() => {});
  });
  await finished;
  rl.close();
} finally {
  clearTimeout(timer);
  await browser.close();
}
