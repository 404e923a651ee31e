"""Configuration as the contract's table says: every program has --help
naming its TASKCAST_* variables, and the variables work like the flags."""
import subprocess

import pytest
from pytest import fail

from conftest import (BROKER_BIN, CLI_BIN, GATEWAY_BIN, SECRET, clean_env, event, free_ports,
                      http_get)

# The contract's configuration table, per program.
VARIABLES = {
    "broker": ["TASKCAST_INGEST", "TASKCAST_FANOUT", "TASKCAST_SYNC", "TASKCAST_JOURNAL",
               "TASKCAST_LOG_LEVEL"],
    "gateway": ["TASKCAST_FANOUT", "TASKCAST_SYNC", "TASKCAST_LISTEN", "TASKCAST_JWT_SECRET",
                "TASKCAST_JWT_PUBLIC_KEY", "TASKCAST_LOG_LEVEL"],
    "cli": ["TASKCAST_INGEST", "TASKCAST_JWT_SECRET", "TASKCAST_LOG_LEVEL"],
}


def _help(binary, *args):
    r = subprocess.run([str(binary), *args, "--help"], env=clean_env(), capture_output=True,
                       text=True, timeout=10, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, (binary, r.returncode, r.stderr)
    return r.stdout + r.stderr


@pytest.mark.parametrize("program", ["broker", "gateway"])
def test_help_names_every_variable_of_the_contract(program):
    text = _help(BROKER_BIN if program == "broker" else GATEWAY_BIN)
    missing = [v for v in VARIABLES[program] if v not in text]
    assert not missing, f"taskcast-{program} --help does not mention {missing}"


def test_cli_help_names_its_variables():
    if not CLI_BIN.exists():
        fail(f"{CLI_BIN} is not built")
    text = _help(CLI_BIN) + _help(CLI_BIN, "publish") + _help(CLI_BIN, "token") + \
        _help(CLI_BIN, "watch")
    missing = [v for v in VARIABLES["cli"] if v not in text]
    assert not missing, f"taskcast-cli --help does not mention {missing}"


def test_variables_configure_broker_and_gateway_like_flags(tc):
    """No flags at all: every address and the key from TASKCAST_*."""
    broker = tc.broker(via_env=True)
    gw = tc.gateway(broker, via_env=True)

    async def main():
        ws = await tc.connect(gw, "2")
        seq = tc.worker(broker).publish_ok(event("env", "2"))
        assert (await ws.recv_task())["seq"] == seq
        # the CLI's TASKCAST_INGEST too
        r = tc.cli("publish", "--user", "2", "--task", "env-cli", "--status", "queued",
                   "--timeout-ms", "3000", "--retries", "1",
                   env={"TASKCAST_INGEST": broker.ingest})
        assert r.returncode == 0, r.stderr
        assert (await ws.recv_task())["task_id"] == "env-cli"

    tc.run(main)


def test_flags_win_over_variables(tc):
    """--listen beats TASKCAST_LISTEN (cfg.h: flag > environment > default)."""
    broker = tc.broker()
    decoy = free_ports(1)[0]
    gw = tc.gateway(broker, env={"TASKCAST_LISTEN": f"127.0.0.1:{decoy}"})
    assert gw.get("/ready")[0] == 200  # on --listen's port
    with pytest.raises(OSError):
        http_get(decoy, "/health", timeout=1)


def test_cli_token_mints_a_token_the_gateway_accepts(tc, stack):
    _, gw = stack
    r = tc.cli("token", "--user", "2", "--ttl", "60", env={"TASKCAST_JWT_SECRET": SECRET})
    assert r.returncode == 0, r.stderr
    token = tc.register_token(r.stdout.strip())

    async def main():
        ws = await tc.connect(gw, "2", token=token)
        assert ws.hello["user_id"] == "2"

    tc.run(main)
    r = tc.cli("token", "--user", "2", env={"TASKCAST_JWT_SECRET": "too-short"})
    assert r.returncode != 0 and r.stdout == "", (r.returncode, r.stdout)


def test_cli_watch_follows_a_stream(tc, stack):
    """taskcast-cli watch connects like a browser and prints the frames."""
    broker, gw = stack
    w = tc.worker(broker)
    w.publish_ok(event("w1", "2", "running", progress=5))
    r = subprocess.run([str(CLI_BIN), "watch", "--user", "2", "--url",
                        f"ws://127.0.0.1:{gw.port}", "--count", "1", "--timeout", "10"],
                       env=clean_env(TASKCAST_JWT_SECRET=SECRET), capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert '"task_id":"w1"' in r.stdout.replace(" ", ""), r.stdout


@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1", "tcp://:5555", "tcp://127.0.0.1:x",
                                      "tcp://127.0.0.1:70000", "udp://127.0.0.1:5555"])
@pytest.mark.parametrize("program", ["broker", "gateway"])
def test_a_malformed_endpoint_stops_the_start_with_a_sentence(program, endpoint):
    (port,) = free_ports(1)
    # The broker binds it (--ingest), the gateway connects to it (--fanout):
    # both read tcp://HOST:PORT the same way, and refuse anything else.
    if program == "broker":
        argv = [str(BROKER_BIN), f"--ingest={endpoint}"]
    else:
        argv = [str(GATEWAY_BIN), f"--fanout={endpoint}", f"--listen=127.0.0.1:{port}"]
    env = clean_env()
    env["TASKCAST_JWT_SECRET"] = SECRET
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=10,
                       stdin=subprocess.DEVNULL)
    assert r.returncode != 0, (argv, r.stdout, r.stderr)
    text = r.stdout + r.stderr
    assert ("a tcp endpoint must be tcp://HOST:PORT" in text or "only tcp:// and ipc://" in text
            ), text
