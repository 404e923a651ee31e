// watch_page.mjs: loads examples/watch.html (or any page with the same
// elements: #state, and rows id="task-<id>" in #tasks) in Debian's chromium,
// driven by playwright-core, and reports what a user would see, one JSON
// object per line on stdout, first the current view, then every change:
//   {"event":"state","text":"connected to gw-1 as 2"}
//   {"event":"row","id":"t1","status":"running","class":"running",
//    "progress":42,"message":"rendering","seq":"3"}      (progress: null if no bar)
//   {"event":"websocket","path":"/api/v1/ws/tasks/2"}   (each socket the page opens;
//                                                       the query, with its token, left out)
//   {"event":"pageerror","message":"..."}               (an uncaught exception in the page)
// Exits when stdin ends, or after --timeout ms ({"event":"timeout"}).
//   node watch_page.mjs --page PAGE_URL [--timeout MS]
// PAGE_URL must be served over http from loopback (see ws_probe.mjs), e.g.
// http://127.0.0.1:PORT/watch.html#ws://127.0.0.1:GW/api/v1/ws/tasks/2?token=JWT
import { chromium } from 'playwright-core';

const arg = (name, def) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : def;
};
const pageUrl = arg('--page');
const timeout = Number(arg('--timeout', '20000'));
if (!pageUrl) {
  process.stderr.write('usage: node watch_page.mjs --page PAGE_URL [--timeout MS]\n');
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
process.stdin.on('end', () => done());
process.stdin.resume();
try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => out({ event: 'pageerror', message: String(e.message || e) }));
  page.on('websocket', (ws) => out({ event: 'websocket', path: new URL(ws.url()).pathname }));
  await page.exposeFunction('report', (o) => out(o));
  await page.goto(pageUrl);
  // One synchronous step: report the current view and start observing, so
  // no change falls between the two.
  await page.evaluate(() => {
    const seen = new Map();
    const state = document.getElementById('state');
    const tasks = document.getElementById('tasks');
    let lastState = null;
    const scan = () => {
      if (state.textContent !== lastState) {
        lastState = state.textContent;
        window.report({ event: 'state', text: lastState });
      }
      for (const row of tasks.querySelectorAll('tr[id^="task-"]')) {
        const c = row.children;
        const bar = c[2].querySelector('progress');
        const r = { event: 'row', id: row.id.slice(5), status: c[1].textContent,
                    class: c[1].className, progress: bar ? bar.value : null,
                    message: c[3].textContent, seq: c[4].textContent };
        const key = JSON.stringify(r);
        if (seen.get(row.id) !== key) {
          seen.set(row.id, key);
          window.report(r);
        }
      }
    };
    scan();
    new MutationObserver(scan).observe(document.body,
      { childList: true, subtree: true, characterData: true, attributes: true });
  });
  await finished;
} finally {
  clearTimeout(timer);
  await browser.close();
}
process.exit(0);
