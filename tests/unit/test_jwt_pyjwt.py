"""Interop: tokens minted by PyJWT, verified by taskcast's jwt.c (through
tests/tools/jwt_check). Needs python3-jwt and python3-cryptography (EdDSA).

Run: TASKCAST_BUILD_DIR=build /usr/bin/python3 -m pytest -q tests/unit/test_jwt_pyjwt.py
"""
import base64
import os
import pathlib
import subprocess

import jwt
import pytest
from pytest import fail
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

REPO = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("TASKCAST_BUILD_DIR", REPO / "build"))
JWT_CHECK = BUILD / "tests" / "tools" / "jwt_check"

NOW = 1_700_000_000
SECRET = "an HS256 secret of at least 32 bytes, for tests"
OTHER_SECRET = "another HS256 secret of 32 bytes or more, not ours"


@pytest.fixture(scope="module", autouse=True)
def _binary():
    if not JWT_CHECK.exists():
        fail(f"{JWT_CHECK} not built (set TASKCAST_BUILD_DIR)")


def run(tokens, secret=None, public_key=None, now=NOW):
    """Verdict lines of jwt_check for each token, in order."""
    args = [str(JWT_CHECK), "--now", str(now)]
    if secret is not None:
        args += ["--secret", secret]
    if public_key is not None:
        args += ["--public-key", public_key]
    proc = subprocess.run(args, input="".join(t + "\n" for t in tokens),
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == len(tokens)
    return lines


def verdict(token, **keys):
    return run([token], **keys)[0]


def claims(sub="7", **extra):
    c = {"sub": sub, "iat": NOW, "exp": NOW + 300}
    c.update(extra)
    return {k: v for k, v in c.items() if v is not None}


@pytest.fixture(scope="module")
def ed_key():
    return Ed25519PrivateKey.generate()


def raw_b64(private_key, encoder=base64.b64encode):
    raw = private_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                serialization.PublicFormat.Raw)
    return encoder(raw).decode()


def pem(private_key):
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def der_b64(private_key):
    der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def hs(payload, secret=SECRET, **kw):
    return jwt.encode(payload, secret, algorithm="HS256", **kw)


def ed(payload, key, **kw):
    return jwt.encode(payload, key, algorithm="EdDSA", **kw)


# --- HS256 -------------------------------------------------------------------

def test_hs256_matrix():
    cases = [
        (hs(claims()), "OK sub=7 admin=0"),
        (hs(claims(role="admin")), "OK sub=7 admin=1"),
        (hs(claims(role="viewer")), "OK sub=7 admin=0"),
        (hs(claims(sub="user_2.x-y")), "OK sub=user_2.x-y admin=0"),
        (hs(claims(sub=42)), "OK sub=42 admin=0"),
        (hs(claims(sub="\u00e9t\u00e9")), "OK sub=\u00e9t\u00e9 admin=0"),
        (hs(claims(exp=NOW - 1)), "ERR EXPIRED token expired"),
        (hs(claims(exp=NOW)), "ERR EXPIRED token expired"),
        (hs(claims(exp=NOW + 1)), "OK sub=7 admin=0"),
        (hs(claims(nbf=NOW + 10)), "ERR NOT_YET_VALID token not yet valid"),
        (hs(claims(nbf=NOW)), "OK sub=7 admin=0"),
        (hs(claims(iat=NOW + 3600)), "ERR NOT_YET_VALID token not yet valid"),
        (hs(claims(iat=NOW + 30)), "OK sub=7 admin=0"),
        (hs(claims(exp=None)), "ERR MISSING_EXP token has no exp claim"),
        (hs(claims(exp="tomorrow")), "ERR BAD_CLAIMS token claims invalid"),
        (hs(claims(sub=None)), "ERR BAD_CLAIMS token claims invalid"),
        (hs(claims(sub="")), "ERR BAD_CLAIMS token claims invalid"),
        (hs(claims(), secret=OTHER_SECRET), "ERR BAD_SIGNATURE bad token signature"),
        (hs(claims(), headers={"kid": "k1"}), "OK sub=7 admin=0"),
        (hs(claims(), headers={"crit": ["x"], "x": 1}), "ERR MALFORMED malformed token"),
        ("", "ERR MISSING missing token"),
        ("not.a.token!", "ERR MALFORMED malformed token"),
    ]
    got = run([t for t, _ in cases], secret=SECRET)
    assert got == [want for _, want in cases]


def test_hs256_tampering():
    token = hs(claims())
    head, body, sig = token.split(".")
    # A payload claiming another user, with the original signature.
    forged = jwt.utils.base64url_encode(b'{"sub":"8","exp":1700000300}').decode()
    flipped = ("B" if sig[0] == "A" else "A") + sig[1:]
    cases = [
        (f"{head}.{forged}.{sig}", "ERR BAD_SIGNATURE bad token signature"),
        (f"{head}.{body}.{flipped}", "ERR BAD_SIGNATURE bad token signature"),
        (f"{head}.{body}", "ERR MALFORMED malformed token"),
        (f"{head}.{body}.{sig}.{sig}", "ERR MALFORMED malformed token"),
        (f"{head}.{body}.{sig}=", "ERR MALFORMED malformed token"),
        (f"{head}=.{body}.{sig}", "ERR MALFORMED malformed token"),
        (token, "OK sub=7 admin=0"),
    ]
    got = run([t for t, _ in cases], secret=SECRET)
    assert got == [want for _, want in cases]


def test_alg_none_refused():
    unsigned = jwt.encode(claims(), None, algorithm="none")
    assert unsigned.endswith(".")
    head, body, _ = unsigned.split(".")
    with_sig = f"{head}.{body}.{hs(claims()).split('.')[2]}"
    got = run([unsigned, with_sig], secret=SECRET)
    assert got == ["ERR MALFORMED malformed token", "ERR BAD_ALG token algorithm not accepted"]


def test_other_algs_refused():
    tokens = [jwt.encode(claims(), SECRET, algorithm=a) for a in ("HS384", "HS512")]
    assert run(tokens, secret=SECRET) == ["ERR BAD_ALG token algorithm not accepted"] * 2


def test_short_secret_refused():
    proc = subprocess.run([str(JWT_CHECK), "--secret", "x" * 31], input="",
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "at least 32 bytes" in proc.stderr
    assert "x" * 31 not in proc.stderr


def test_no_key_refused():
    proc = subprocess.run([str(JWT_CHECK)], input="", capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2
    assert "no JWT key configured" in proc.stderr


# --- EdDSA -------------------------------------------------------------------

def test_eddsa_matrix(ed_key):
    other = Ed25519PrivateKey.generate()
    cases = [
        (ed(claims(), ed_key), "OK sub=7 admin=0"),
        (ed(claims(role="admin"), ed_key), "OK sub=7 admin=1"),
        (ed(claims(exp=NOW - 5), ed_key), "ERR EXPIRED token expired"),
        (ed(claims(nbf=NOW + 5), ed_key), "ERR NOT_YET_VALID token not yet valid"),
        (ed(claims(), other), "ERR BAD_SIGNATURE bad token signature"),
        # The public key is public: an HS256 token keyed with it must not pass.
        (hs(claims(), secret=raw_b64(ed_key)), "ERR BAD_ALG token algorithm not accepted"),
        (hs(claims()), "ERR BAD_ALG token algorithm not accepted"),
    ]
    got = run([t for t, _ in cases], public_key=raw_b64(ed_key))
    assert got == [want for _, want in cases]


def test_alg_mismatch_both_ways(ed_key):
    assert verdict(ed(claims(), ed_key), secret=SECRET) == \
        "ERR BAD_ALG token algorithm not accepted"
    assert verdict(hs(claims()), public_key=raw_b64(ed_key)) == \
        "ERR BAD_ALG token algorithm not accepted"
    # With both keys configured, each token goes to its own key.
    both = run([ed(claims(), ed_key), hs(claims())], secret=SECRET,
               public_key=raw_b64(ed_key))
    assert both == ["OK sub=7 admin=0"] * 2


@pytest.mark.parametrize("form", ["raw_b64", "raw_b64_nopad", "raw_b64url", "pem",
                                  "der_b64"])
def test_public_key_forms(ed_key, form):
    text = {
        "raw_b64": lambda: raw_b64(ed_key),
        "raw_b64_nopad": lambda: raw_b64(ed_key).rstrip("="),
        "raw_b64url": lambda: raw_b64(ed_key, base64.urlsafe_b64encode),
        "pem": lambda: pem(ed_key),
        "der_b64": lambda: der_b64(ed_key),
    }[form]()
    assert verdict(ed(claims(), ed_key), public_key=text) == "OK sub=7 admin=0"


@pytest.mark.parametrize("text", [
    "not a key",
    base64.b64encode(b"\x01" * 31).decode(),
    base64.b64encode(b"\x00" * 32).decode(),
    "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n",
])
def test_garbage_public_key_refused(text):
    proc = subprocess.run([str(JWT_CHECK), "--public-key", text], input="",
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "Ed25519" in proc.stderr


def test_private_pem_is_not_a_public_key(ed_key):
    private_pem = ed_key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()).decode()
    proc = subprocess.run([str(JWT_CHECK), "--public-key", private_pem], input="",
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
