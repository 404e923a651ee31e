// Vite dev server in front of a taskcast gateway: the page is served by
// Vite (http://localhost:5173), and every /api request, the WebSocket
// upgrade of /api/v1/ws/tasks/{user} included, goes to the gateway.
// TASKCAST_GATEWAY overrides the gateway's address.
//   npm install && npx vite
// No import from 'vite' (a plain object is a valid config), so the file
// also runs with a vite installed elsewhere: vite --config vite.config.js
const gateway = process.env.TASKCAST_GATEWAY || 'http://127.0.0.1:8000';

export default {
  server: {
    host: process.env.VITE_HOST || 'localhost',
    port: Number(process.env.VITE_PORT || 5173),
    strictPort: true,
    proxy: {
      // ws: true forwards the WebSocket upgrade; without it the socket
      // reaches Vite's own HMR server and fails.
      '/api': { target: gateway, ws: true },
    },
  },
};
