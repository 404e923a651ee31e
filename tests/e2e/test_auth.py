"""Authentication after the handshake: every refused client receives one
JSON error frame and a 4xxx close code, never a bare reset."""
import base64
import json
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conftest import SECRET, b64url, uid

OTHER_SECRET = "not-the-gateway-secret-but-long-enough-0123456789"


def _none_token(tc, sub, signature=""):
    """alg "none" (optionally with a signature part pasted on)."""
    now = int(time.time())
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64url(json.dumps({"sub": sub, "iat": now, "exp": now + 300}).encode())
    return tc.register_token(f"{header}.{payload}.{signature}")


def _tampered(tc, sub):
    """A valid token for another user with its payload swapped for sub."""
    other = tc.token("someone-else")
    h, _, s = other.split(".")
    now = int(time.time())
    p = b64url(json.dumps({"sub": sub, "iat": now, "exp": now + 300}).encode())
    return tc.register_token(f"{h}.{p}.{s}")


# name -> function (tc, user) -> token or None (no token argument at all)
BAD_TOKENS = {
    "missing": lambda tc, u: None,
    "empty": lambda tc, u: "",
    "malformed_one_part": lambda tc, u: "notajwtatall",
    "malformed_three_parts": lambda tc, u: "abc.def.ghi",
    "malformed_base64": lambda tc, u: tc.register_token("eyJ!!!.eyJ***.sig$$$"),
    "bad_signature": lambda tc, u: tc.token(u, key=OTHER_SECRET),
    "tampered_payload": _tampered,
    "expired": lambda tc, u: tc.token(u, exp_in=-3600),
    "not_yet_valid_nbf": lambda tc, u: tc.token(u, nbf=int(time.time()) + 3600),
    "issued_in_the_future": lambda tc, u: tc.token(u, iat=int(time.time()) + 3600),
    "no_exp": lambda tc, u: tc.token(u, exp_in=None),
    "no_sub": lambda tc, u: tc.token(None),
    "alg_none": lambda tc, u: _none_token(tc, u),
    "alg_none_with_signature": lambda tc, u: _none_token(
        tc, u, tc.token(u).split(".")[2]),
    "alg_hs512": lambda tc, u: tc.token(u, alg="HS512"),
    "alg_eddsa_without_public_key": lambda tc, u: tc.token(
        u, key=Ed25519PrivateKey.generate(), alg="EdDSA"),
}


async def expect_refused(ws, code, close_code, token=None):
    """Exactly one error frame with code, then close_code (not a reset)."""
    frames, got, reason = await ws.expect_close()
    assert got != 1006, f"connection reset without a close frame; frames: {frames!r}"
    assert len(frames) == 1, f"expected exactly one error frame, got {frames!r}"
    f = frames[0]
    assert f.get("type") == "error" and f.get("code") == code, f
    assert isinstance(f.get("message"), str) and f["message"], f
    if token:
        assert token not in json.dumps(f)
    assert got == close_code, f"close code {got} (reason {reason!r}), expected {close_code}"


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
def test_bad_token_gets_error_frame_and_4401(shared, case):
    tc = shared
    _, gw = tc.stack
    user = uid()
    token = BAD_TOKENS[case](tc, user)

    async def main():
        ws = await tc.ws(gw.url(user, token))  # the handshake itself succeeds
        await expect_refused(ws, "unauthorized", 4401, token)

    tc.run(main)


def test_token_for_another_user_gets_forbidden_4403(shared):
    tc = shared
    _, gw = tc.stack

    async def main():
        ws = await tc.ws(gw.url("2", tc.token("3")))
        await expect_refused(ws, "forbidden", 4403)
        # user 23's token is not user 2's either (no prefix match)
        ws = await tc.ws(gw.url("2", tc.token("23")))
        await expect_refused(ws, "forbidden", 4403)

    tc.run(main)


def test_admin_token_is_still_only_for_its_own_user(shared):
    tc = shared
    _, gw = tc.stack

    async def main():
        ws = await tc.ws(gw.url("2", tc.token("ops", role="admin")))
        await expect_refused(ws, "forbidden", 4403)

    tc.run(main)


def test_valid_token_gets_hello_first(shared):
    tc = shared
    _, gw = tc.stack

    async def main():
        ws = await tc.ws(gw.url("2", tc.token("2")))
        hello = await ws.recv()
        assert hello.get("type") == "hello", hello
        assert hello.get("user_id") == "2", hello
        assert isinstance(hello.get("epoch"), str) and hello["epoch"], hello
        assert isinstance(hello.get("gateway"), str) and hello["gateway"], hello
        await ws.quiet(0.3)  # nothing else: user 2 has no tasks here... yet
        await ws.send_json({"type": "ping"})
        assert await ws.recv() == {"type": "pong"}

    tc.run(main)


def test_other_query_arguments_do_not_confuse_the_token(shared):
    """token= is matched whole: a token2= argument beside it is not taken."""
    tc = shared
    _, gw = tc.stack
    user = uid()
    good, bad = tc.token(user), tc.token(user, key=OTHER_SECRET)

    async def main():
        ws = await tc.ws(gw.url(user, good, token2=bad))
        hello = await ws.recv()
        assert hello["type"] == "hello", hello

    tc.run(main)


# ---------------------------------------------------------------- EdDSA


def _ed_keys():
    priv = Ed25519PrivateKey.generate()
    raw = priv.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)
    pem = priv.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return priv, base64.b64encode(raw).decode(), pem


@pytest.mark.parametrize("form", ["base64_raw", "pem", "pem_in_variable"])
def test_eddsa_tokens_with_public_key(tc, form):
    priv, b64, pem = _ed_keys()
    broker = tc.broker()
    if form == "pem_in_variable":
        gw = tc.gateway(broker, secret=None, env={"TASKCAST_JWT_PUBLIC_KEY": pem})
    else:
        gw = tc.gateway(broker, secret=None, public_key=b64 if form == "base64_raw" else pem)

    async def main():
        ws = await tc.connect(gw, "2", token=tc.token("2", key=priv, alg="EdDSA"))
        assert ws.hello["user_id"] == "2"
        # the event path works the same with EdDSA
        seq = tc.worker(broker).publish_ok({"task_id": "t", "user_id": "2", "status": "queued"})
        frame = await ws.recv_task()
        assert frame["seq"] == seq and frame["task_id"] == "t"
        # another Ed25519 key: bad signature
        other = Ed25519PrivateKey.generate()
        ws = await tc.ws(gw.url("2", tc.token("2", key=other, alg="EdDSA")))
        await expect_refused(ws, "unauthorized", 4401)
        # an HS256 token while only an Ed25519 key is configured
        ws = await tc.ws(gw.url("2", tc.token("2", key=SECRET)))
        await expect_refused(ws, "unauthorized", 4401)
        # EdDSA for another user
        ws = await tc.ws(gw.url("2", tc.token("3", key=priv, alg="EdDSA")))
        await expect_refused(ws, "forbidden", 4403)
        # expired EdDSA
        ws = await tc.ws(gw.url("2", tc.token("2", key=priv, alg="EdDSA", exp_in=-3600)))
        await expect_refused(ws, "unauthorized", 4401)

    tc.run(main)


def test_both_key_types_configured_accept_both(tc):
    priv, b64, _ = _ed_keys()
    broker = tc.broker()
    gw = tc.gateway(broker, public_key=b64)  # and SECRET

    async def main():
        await tc.connect(gw, "2", token=tc.token("2", key=priv, alg="EdDSA"))
        await tc.connect(gw, "2", token=tc.token("2"))

    tc.run(main)


# ---------------------------------------------------------------- refusing to start


def _refused_start(tc, **kw):
    gw = tc.gateway(None, wait=False, **kw)
    gw.expect_failure = True
    rc = gw.wait_exit(10)
    return gw, rc, gw.log()


def test_gateway_refuses_to_start_without_a_key(tc):
    gw, rc, log = _refused_start(tc, secret=None)
    assert rc != 0, f"started without any key (status {rc})\n{log}"
    assert "TASKCAST_JWT_SECRET" in log or "--jwt-secret" in log, \
        f"the message does not say which setting is missing:\n{log}"


def test_gateway_refuses_a_secret_shorter_than_32_bytes(tc):
    short = "short-secret-" + "s" * 18  # 31 bytes
    assert len(short) == 31
    gw, rc, log = _refused_start(tc, secret=short)
    assert rc != 0, f"started with a 31-byte secret (status {rc})\n{log}"
    assert "32" in log, f"the message does not state the minimum:\n{log}"
    assert short not in log and "s" * 18 not in log, f"the secret is echoed:\n{log}"


def test_gateway_refuses_an_empty_secret_and_no_key(tc):
    gw, rc, log = _refused_start(tc, secret=None, env={"TASKCAST_JWT_SECRET": ""})
    assert rc != 0, log


def test_gateway_refuses_a_bad_public_key(tc):
    gw, rc, log = _refused_start(tc, secret=None, public_key="bm90IGEga2V5")  # "not a key"
    assert rc != 0, f"started with a public key that is not Ed25519 (status {rc})\n{log}"


def test_gateway_accepts_a_secret_of_exactly_32_bytes(tc):
    secret = "k" * 16 + "0123456789abcdef"
    assert len(secret) == 32
    broker = tc.broker()
    gw = tc.gateway(broker, secret=secret)

    async def main():
        await tc.connect(gw, "2", token=tc.token("2", key=secret))
        ws = await tc.ws(gw.url("2", tc.token("2", key=SECRET)))
        await expect_refused(ws, "unauthorized", 4401)

    tc.run(main)


def test_secret_flag_works_like_the_variable(tc):
    secret = "flag-secret-" + "f" * 30
    broker = tc.broker()
    gw = tc.gateway(broker, secret=None, args=["--jwt-secret", secret])
    tc.secret(secret)

    async def main():
        await tc.connect(gw, "7", token=tc.token("7", key=secret))

    tc.run(main)
