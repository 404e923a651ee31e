// The page's WebSocket goes to the dev server's origin; /api is proxied.
const q = new URLSearchParams(location.search);
const user = q.get('user') || '2';
const ws = new WebSocket(
  `${location.origin.replace(/^http/, 'ws')}/api/v1/ws/tasks/${user}?token=${q.get('token') || ''}`);
ws.onmessage = (m) => console.log(m.data);
ws.onclose = (e) => console.log('closed', e.code);
