// What webpack-dev-server does with devServer.proxy, without webpack: a
// plain node http server with http-proxy-middleware (webpack-dev-server 5
// uses http-proxy-middleware 2) forwarding /api, WebSocket upgrades
// included, to a taskcast gateway.
//   npm install && node proxy-server.cjs
// TASKCAST_GATEWAY (default http://127.0.0.1:8000), PROXY_HOST, PROXY_PORT
// (default 127.0.0.1:8080).
const http = require('node:http');
const { createProxyMiddleware } = require('http-proxy-middleware');

const target = process.env.TASKCAST_GATEWAY || 'http://127.0.0.1:8000';
const host = process.env.PROXY_HOST || '127.0.0.1';
const port = Number(process.env.PROXY_PORT || 8080);

// Only /api goes to the gateway (a context in http-proxy-middleware 2;
// version 3 and later spell it { pathFilter: '/api', target, ws: true }).
const api = createProxyMiddleware('/api', { target, ws: true });

const server = http.createServer((req, res) => {
  api(req, res, () => {
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not proxied\n');
  });
});
// Upgrades are handed over explicitly: with ws: true the middleware would
// only subscribe to them after a first plain HTTP request went through it.
server.on('upgrade', api.upgrade);
server.listen(port, host, () => {
  console.log(`proxying http://${host}:${port}/api -> ${target}`);
});
// Ctrl-C or a SIGTERM: exit at once (status 0), proxied sockets or not.
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
