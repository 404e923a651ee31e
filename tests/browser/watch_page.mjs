// watch_page.mjs: loads examples/watch.html (or any page with the same
// elements: #state, #action, the form #kind/#args/#task-id/#start-btn, and
// rows id="task-<id>" in #tasks) in Debian's chromium, driven by
// playwright-core, and reports what a user would see, one JSON object per line
// on stdout, first the current view, then every change:
//   {"event":"state","text":"connected to gw-1 as 2"}
//   {"event":"row","id":"t1","status":"running","class":"running",
//    "progress":42,"message":"rendering","seq":"3","cancel":true}
//       (progress: null if no bar; cancel: the row has an enabled cancel button)
//   {"event":"action","text":"started j-...","error":false}   (#action: what a start
//                                                       or a cancel came to)
//   {"event":"websocket","path":"/api/v1/ws/tasks/2"}   (each socket the page opens;
//                                                       the query, with its token, left out)
//   {"event":"request","method":"POST","path":"/api/v1/jobs"}  (each other request
//                                                       the page makes, query left out)
//   {"event":"pageerror","message":"..."}               (an uncaught exception in the page)
// Lines on stdin are what the user does, as JSON, one at a time, each answered
// {"event":"did","do":...,"ok":true} (or "ok":false,"error":...) once done:
//   {"do":"start","kind":"render","args":"{\"steps\":3}","task_id":"t1"}
//       (selects the kind, fills args and task id if given, clicks "start a task")
//   {"do":"cancel","id":"t1"}                            (clicks the row's cancel button)
// Exits when stdin ends, or after --timeout ms ({"event":"timeout"}).
//   node watch_page.mjs --page PAGE_URL [--timeout MS]
// PAGE_URL must be served over http from loopback (see ws_probe.mjs), e.g.
// http://127.0.0.1:PORT/watch.html#ws://127.0.0.1:GW/api/v1/ws/tasks/2?token=JWT
import { createInterface } from 'node:readline';
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
let ready;
const loaded = new Promise((resolve) => { ready = resolve; });
let queue = loaded; // the user's actions, one after the other, once the page is watched
const lines = createInterface({ input: process.stdin });
lines.on('close', () => done());
try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => out({ event: 'pageerror', message: String(e.message || e) }));
  page.on('websocket', (ws) => out({ event: 'websocket', path: new URL(ws.url()).pathname }));
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.protocol.startsWith('http') && u.pathname !== new URL(pageUrl).pathname)
      out({ event: 'request', method: r.method(), path: u.pathname });
  });
  const act = async (line) => {
    const a = JSON.parse(line);
    if (a.do === 'start') {
      if (a.kind) await page.selectOption('#kind', a.kind);
      if (a.args !== undefined) await page.fill('#args', a.args);
      await page.fill('#task-id', a.task_id || '');
      await page.click('#start-btn', { timeout: 5000 });
    } else if (a.do === 'cancel') {
      await page.click(`tr[id="task-${a.id}"] button.cancel`, { timeout: 5000 });
    } else {
      throw new Error('unknown action: ' + line);
    }
    return a.do;
  };
  lines.on('line', (line) => {
    if (!line.trim()) return;
    queue = queue.then(() => act(line))
      .then((what) => out({ event: 'did', do: what, ok: true }))
      .catch((e) => out({ event: 'did', ok: false, error: String(e.message || e) }));
  });
  await page.exposeFunction('report', (o) => out(o));
  await page.goto(pageUrl);
  // One synchronous step: report the current view and start observing, so
  // no change falls between the two.
  await page.evaluate(() => {
    const seen = new Map();
    const state = document.getElementById('state');
    const action = document.getElementById('action');
    const tasks = document.getElementById('tasks');
    let lastState = null, lastAction = '';
    const scan = () => {
      if (state.textContent !== lastState) {
        lastState = state.textContent;
        window.report({ event: 'state', text: lastState });
      }
      const a = action ? action.textContent : '';
      if (a !== lastAction) {
        lastAction = a;
        window.report({ event: 'action', text: a, error: action.className === 'error' });
      }
      for (const row of tasks.querySelectorAll('tr[id^="task-"]')) {
        const c = row.children;
        const bar = c[2].querySelector('progress');
        const button = row.querySelector('button.cancel');
        const r = { event: 'row', id: row.id.slice(5), status: c[1].textContent,
                    class: c[1].className, progress: bar ? bar.value : null,
                    message: c[3].textContent, seq: c[4].textContent,
                    cancel: !!button && !button.disabled };
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
  ready();
  await finished;
} finally {
  clearTimeout(timer);
  await browser.close();
}
process.exit(0);
