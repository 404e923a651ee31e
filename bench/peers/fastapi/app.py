"""FastAPI + uvicorn + Redis pub/sub peer: the stack the system taskcast replaces.

GET /api/v1/ws/tasks/{user_id}?token=JWT (WebSocket). The handshake completes,
then the token is checked (PyJWT, HS256, exp required, sub == user_id). A refused
client gets {"type":"error","code":...,"message":...} and close code 4401 (bad
token) or 4403 (a good token of another user), as taskcast does. An accepted one
is subscribed to Redis channel "tasks:{user_id}", gets {"type":"hello",
"user_id":...} once Redis confirmed the subscription, then every message published
on that channel, verbatim, as a text frame.

Each worker process holds one Redis connection for all its subscriptions (the Hub):
a channel is subscribed on its user's first WebSocket and unsubscribed with the
last, and one reader task dispatches every message to the user's WebSockets.

Environment: TASKCAST_PEER_JWT_SECRET, TASKCAST_PEER_REDIS_URL,
TASKCAST_PEER_READY_DIR (each worker writes ready.<pid> there once it serves).
"""

import asyncio
import json
import logging
import os

import jwt
import redis.asyncio as aioredis
from fastapi import FastAPI, WebSocket
from redis.exceptions import ConnectionError as RedisConnectionError

SECRET = os.environ["TASKCAST_PEER_JWT_SECRET"]
REDIS_URL = os.environ.get("TASKCAST_PEER_REDIS_URL", "redis://127.0.0.1:6379/0")
READY_DIR = os.environ.get("TASKCAST_PEER_READY_DIR", "")
PREFIX = "tasks:"
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403

log = logging.getLogger("peer")


class Hub:
    """One Redis pub/sub connection per process, shared by all its WebSockets."""

    def __init__(self, url: str) -> None:
        self._redis = aioredis.from_url(url)
        self._pubsub = self._redis.pubsub()
        self._users: dict[str, set[WebSocket]] = {}
        # Channels whose SUBSCRIBE Redis has not confirmed yet.
        self._pending: dict[bytes, asyncio.Future] = {}
        self._reader: asyncio.Task | None = None

    async def start(self) -> None:
        await self._pubsub.connect()
        self._reader = asyncio.create_task(self._read())

    async def stop(self) -> None:
        if self._reader:
            self._reader.cancel()
        await self._pubsub.reset()
        await self._redis.close()

    async def join(self, user_id: str, ws: WebSocket) -> None:
        """Adds ws to user_id's connections; returns once Redis delivers to it."""
        channel = (PREFIX + user_id).encode()
        conns = self._users.get(user_id)
        if conns is None:
            self._users[user_id] = {ws}
            confirmed = asyncio.get_running_loop().create_future()
            self._pending[channel] = confirmed
            await self._pubsub.subscribe(channel)
        else:
            conns.add(ws)
            confirmed = self._pending.get(channel)
        if confirmed is not None:
            await asyncio.shield(confirmed)

    async def leave(self, user_id: str, ws: WebSocket) -> None:
        conns = self._users.get(user_id)
        if conns is None:
            return
        conns.discard(ws)
        if not conns:
            del self._users[user_id]
            await self._pubsub.unsubscribe(PREFIX + user_id)

    async def _read(self) -> None:
        while True:
            try:
                msg = await self._pubsub.get_message(timeout=None)
            except (RedisConnectionError, OSError) as e:
                # The PubSub subscribes again to every channel when it reconnects.
                log.warning("redis connection lost (%s); reconnecting", e)
                await asyncio.sleep(0.5)
                try:
                    await self._pubsub.connect()
                except (RedisConnectionError, OSError):
                    pass
                continue
            if msg is None:
                continue
            kind = msg["type"]
            if kind == "message":
                conns = self._users.get(msg["channel"][len(PREFIX):].decode())
                if not conns:
                    continue
                text = msg["data"].decode()
                for ws in tuple(conns):
                    try:
                        await ws.send_text(text)
                    except Exception:  # closed meanwhile: its handler leaves
                        pass
            elif kind == "subscribe":
                confirmed = self._pending.pop(msg["channel"], None)
                if confirmed is not None and not confirmed.done():
                    confirmed.set_result(None)


app = FastAPI()
hub = Hub(REDIS_URL)


@app.on_event("startup")
async def startup() -> None:
    await hub.start()
    if READY_DIR:
        with open(os.path.join(READY_DIR, f"ready.{os.getpid()}"), "w"):
            pass


@app.on_event("shutdown")
async def shutdown() -> None:
    await hub.stop()


async def refuse(ws: WebSocket, close_code: int, code: str, message: str) -> None:
    await ws.send_text(json.dumps({"type": "error", "code": code, "message": message},
                                  separators=(",", ":")))
    await ws.close(close_code)


@app.websocket("/api/v1/ws/tasks/{user_id}")
async def tasks(ws: WebSocket, user_id: str, token: str = "") -> None:
    await ws.accept()
    try:
        claims = jwt.decode(token, SECRET, algorithms=["HS256"],
                            options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError:
        await refuse(ws, CLOSE_UNAUTHORIZED, "unauthorized", "token expired")
        return
    except jwt.PyJWTError:
        await refuse(ws, CLOSE_UNAUTHORIZED, "unauthorized", "invalid token")
        return
    if claims["sub"] != user_id:
        await refuse(ws, CLOSE_FORBIDDEN, "forbidden", "token is for another user")
        return

    try:
        await hub.join(user_id, ws)
        # Compact, as every system renders it: the load client looks for the
        # prefix {"type":"hello" .
        await ws.send_text(json.dumps({"type": "hello", "user_id": user_id},
                                      separators=(",", ":")))
        # Nothing is expected from the browser; read until it goes away.
        while (await ws.receive())["type"] != "websocket.disconnect":
            pass
    except Exception:  # the connection failed: same as a disconnect
        pass
    finally:
        await hub.leave(user_id, ws)
