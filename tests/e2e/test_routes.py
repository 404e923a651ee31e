"""The gateway's HTTP surface: exactly the routes of the contract, each once."""
import json

import pytest
import websockets
import websockets.exceptions

WS_ROUTE = "/api/v1/ws/tasks/2"

# Paths that are not the WebSocket route, though they look like it: a
# doubled prefix (the classic double-mounted router bug), no prefix, extra
# segments, no user id, a trailing slash.
NOT_ROUTES = [
    "/api/v1/api/v1/ws/tasks/2",
    "/tasks/2",
    "/api/v1/ws/tasks/2/extra",
    "/api/v1/ws/tasks/",
    "/api/v1/ws/tasks",
    "/api/v1/ws/tasks/2/",
    "/ws/tasks/2",
    "/api/v2/ws/tasks/2",
]


def test_ws_route_upgrades_and_says_hello(shared):
    tc = shared
    _, gw = tc.stack

    async def main():
        ws = await tc.ws(gw.url("2", tc.token("2")))
        frame = await ws.recv()
        assert frame["type"] == "hello" and frame["user_id"] == "2", frame

    tc.run(main)


@pytest.mark.parametrize("path", NOT_ROUTES)
def test_not_a_route_plain_get_is_404(shared, path):
    tc = shared
    _, gw = tc.stack
    token = tc.token("2")
    status, headers, body = gw.get(f"{path}?token={token}")
    assert status == 404, (path, status, body)
    status, _, body = gw.get(path)
    assert status == 404, (path, status, body)


@pytest.mark.parametrize("path", NOT_ROUTES)
def test_not_a_route_websocket_upgrade_is_404(shared, path):
    tc = shared
    _, gw = tc.stack
    token = tc.token("2")

    async def main():
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as info:
            await tc.ws(gw.url(None, token, path=path))
        assert info.value.status_code == 404, (path, info.value)

    tc.run(main)


def test_health_is_200_json_without_auth(shared):
    tc = shared
    _, gw = tc.stack
    status, headers, body = gw.get("/health")
    assert status == 200, body
    assert headers.get("content-type", "").startswith("application/json"), headers
    assert isinstance(json.loads(body), dict), body


def test_ready_is_200_with_the_broker_up(shared):
    tc = shared
    _, gw = tc.stack
    status, headers, body = gw.get("/ready")
    assert status == 200, body


@pytest.mark.parametrize("path", ["/", "/nope", "/healthz", "/health/x", "/api/v1/ws/status/x",
                                  "/api/v1/ws", "/metrics/x", "/index.html"])
def test_unknown_route_is_404(shared, path):
    tc = shared
    _, gw = tc.stack
    status, _, body = gw.get(path)
    assert status == 404, (path, status, body)


def test_ws_route_without_upgrade_is_not_200(shared):
    tc = shared
    _, gw = tc.stack
    token = tc.token("2")
    status, _, body = gw.get(f"{WS_ROUTE}?token={token}")
    assert status != 200 and 400 <= status < 500, (status, body)
    status, _, body = gw.get(WS_ROUTE)
    assert status != 200 and 400 <= status < 500, (status, body)


def test_ws_route_serves_any_valid_user_id(shared):
    """The route is /api/v1/ws/tasks/{user_id} for every id of the contract's
    alphabet, not just digits."""
    tc = shared
    _, gw = tc.stack
    user = "Ab_9.z-" + "x" * 57  # 64 bytes of [A-Za-z0-9_.-]
    assert len(user) == 64

    async def main():
        ws = await tc.connect(gw, user)
        assert ws.hello["user_id"] == user

    tc.run(main)


@pytest.mark.parametrize("where", ["user_id", "root", "doubled_prefix"])
def test_token_in_a_wrong_path_is_404_and_never_logged(shared, where):
    """A client that puts its token in the path (a classic mistake) gets a
    404; the token must not reach the log either (checked at teardown)."""
    tc = shared
    _, gw = tc.stack
    token = tc.token("2")
    path = {"user_id": f"/api/v1/ws/tasks/{token}",
            "root": f"/{token}",
            "doubled_prefix": f"/api/v1/api/v1/ws/tasks/{token}"}[where]
    status, _, body = gw.get(path)
    assert status == 404, (status, body)

    async def main():
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as info:
            await tc.ws(f"ws://127.0.0.1:{gw.port}{path}")
        assert info.value.status_code == 404

    tc.run(main)


def test_long_token_in_a_wrong_path_is_never_logged(shared):
    """A token longer than any log line buffer: not even its signature may
    end up in the log (checked at teardown)."""
    tc = shared
    _, gw = tc.stack
    token = tc.token("2", name="n" * 600)
    for path in (f"/api/v1/ws/tasks/{token}", f"/x/{token}"):
        status, _, _ = gw.get(path)
        assert status == 404
