"""Library versions that do not fit together must stop the build or the start
with a sentence, never surface as a crash.

- configure: cmake against a pkg-config tree where one library is missing or
  too old fails, naming the library and the Debian package to install; the
  newer msgpack-c name ("msgpack-c" instead of "msgpack") is accepted.
- run time: a program whose loaded libzmq is not the one it was built for
  (simulated with an LD_PRELOAD shim answering zmq_version()) refuses to start.

Run with Debian's /usr/bin/python3 -m pytest (TASKCAST_BUILD_DIR: the build).
"""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from pytest import fail

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("TASKCAST_BUILD_DIR") or (REPO / "build"))
SYSTEM_PC_DIRS = ["/usr/lib/x86_64-linux-gnu/pkgconfig", "/usr/lib/pkgconfig",
                  "/usr/share/pkgconfig"]


def pkgconfig_tree(tmp_path):
    """A copy of the system's .pc files, to break one library at a time."""
    tree = tmp_path / "pc"
    tree.mkdir()
    for d in SYSTEM_PC_DIRS:
        if os.path.isdir(d):
            for f in os.listdir(d):
                if f.endswith(".pc") and not (tree / f).exists():
                    shutil.copy(os.path.join(d, f), tree / f)
    return tree


def configure(tmp_path, tree):
    env = dict(os.environ, PKG_CONFIG_LIBDIR=str(tree), PKG_CONFIG_PATH="")
    p = subprocess.run(["cmake", "-S", str(REPO), "-B", str(tmp_path / "build")], env=env,
                       capture_output=True, text=True, timeout=120)
    # CMake wraps long messages: compare with the white space folded.
    return p.returncode, " ".join((p.stdout + p.stderr).split())


def set_version(pc, version):
    text = pc.read_text()
    pc.write_text(re.sub(r"^Version:.*$", f"Version: {version}", text, flags=re.M))


def test_configure_succeeds_with_the_system_libraries(tmp_path):
    rc, out = configure(tmp_path, pkgconfig_tree(tmp_path))
    assert rc == 0, out
    assert "taskcast: libzmq 4.3" in out and "taskcast: libsodium" in out, out


@pytest.mark.parametrize("pc,name,package,old", [
    ("libzmq.pc", "libzmq", "libzmq3-dev", "4.2.5"),
    ("libwebsockets.pc", "libwebsockets", "libwebsockets-dev", "4.0.1"),
    ("libsodium.pc", "libsodium", "libsodium-dev", "1.0.17"),
    ("msgpack.pc", "msgpack-c", "libmsgpack-dev", "2.1.0"),
])
def test_configure_names_a_too_old_library_and_its_package(tmp_path, pc, name, package, old):
    tree = pkgconfig_tree(tmp_path)
    set_version(tree / pc, old)
    rc, out = configure(tmp_path, tree)
    assert rc != 0, out
    assert f"{name} {old} is too old" in out, out
    assert f"apt-get install {package}" in out, out


@pytest.mark.parametrize("pc,name,package", [
    ("libzmq.pc", "libzmq", "libzmq3-dev"),
    ("libwebsockets.pc", "libwebsockets", "libwebsockets-dev"),
    ("libsodium.pc", "libsodium", "libsodium-dev"),
    ("msgpack.pc", "msgpack-c", "libmsgpack-dev"),
])
def test_configure_names_a_missing_library_and_its_package(tmp_path, pc, name, package):
    tree = pkgconfig_tree(tmp_path)
    (tree / pc).unlink()
    rc, out = configure(tmp_path, tree)
    assert rc != 0, out
    assert f"{name} not found" in out, out
    assert f"apt-get install {package}" in out, out


def test_configure_accepts_the_newer_msgpack_c_name(tmp_path):
    tree = pkgconfig_tree(tmp_path)
    (tree / "msgpack.pc").rename(tree / "msgpack-c.pc")
    rc, out = configure(tmp_path, tree)
    assert rc == 0, out
    assert "(pkg-config msgpack-c)" in out, out


def test_a_mismatched_libzmq_at_run_time_stops_the_start_with_a_sentence(tmp_path):
    broker = BUILD / "bin" / "taskcast-broker"
    if not broker.exists():
        fail(f"{broker} is not built")
    shim_c = tmp_path / "zmqver.c"
    shim_c.write_text("void zmq_version(int *a, int *b, int *c) { *a = 4; *b = 2; *c = 0; }\n")
    shim = tmp_path / "libzmqver.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(shim), str(shim_c)], check=True)
    # ASan wants its runtime first; a preloaded shim is fine for this test.
    env = dict(os.environ, LD_PRELOAD=str(shim),
               ASAN_OPTIONS="verify_asan_link_order=0:detect_leaks=0")
    p = subprocess.run([str(broker), "--ingest", "tcp://127.0.0.1:1"], env=env,
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert "libzmq 4.2.0 is loaded but taskcast was built for 4.3" in p.stderr, p.stderr
    assert "Segmentation" not in p.stderr
