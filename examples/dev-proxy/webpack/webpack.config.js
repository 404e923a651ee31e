// webpack-dev-server in front of a taskcast gateway: /api, and the
// WebSocket upgrade of /api/v1/ws/tasks/{user}, go to the gateway
// (TASKCAST_GATEWAY, default http://127.0.0.1:8000).
//   npm install && npx webpack serve
const gateway = process.env.TASKCAST_GATEWAY || 'http://127.0.0.1:8000';

module.exports = {
  mode: 'development',
  entry: './src/index.js',
  devServer: {
    port: 8080,
    proxy: [
      // ws: true forwards WebSocket upgrades; webpack-dev-server's own
      // live-reload socket stays on /ws, outside /api.
      { context: ['/api'], target: gateway, ws: true },
    ],
  },
};
