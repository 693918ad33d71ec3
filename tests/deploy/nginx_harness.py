"""Run deploy/nginx/nginx.conf on this machine's nginx: the production file with only the
machine-specific parts rewritten (addresses, ports, cert and pid paths, and the `resolve`
parameter when the local nginx predates it). Every rewrite must match exactly once, so an edit
to the production file that the harness no longer understands fails loudly instead of silently
testing something else."""

from __future__ import annotations

import datetime
import ipaddress
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[2]
NGINX_DIR = ROOT / "deploy" / "nginx"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
UPSTREAM_LINE = re.compile(r"^(\s*)server gateway:8080 (resolve )?(.*);$", re.M)


def nginx_version() -> tuple[int, ...]:
    out = subprocess.run([NGINX, "-v"], capture_output=True, text=True, check=True).stderr
    m = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", out)
    assert m, out
    return tuple(int(x) for x in m.groups())


def supports_upstream_resolve() -> bool:
    return nginx_version() >= (1, 27, 3)


def _sub_once(pattern: str, repl: str, text: str, flags: int = re.M) -> str:
    new, n = re.subn(pattern, repl, text, flags=flags)
    assert n == 1, f"expected exactly one match of {pattern!r} in nginx.conf, got {n}"
    return new


def render(
    workdir: Path,
    *,
    upstreams: list[str],
    http_port: int,
    https_port: int,
) -> Path:
    """Write a runnable copy of the production config into ``workdir``; returns its path."""
    cert, key = self_signed_cert(workdir)
    text = (NGINX_DIR / "nginx.conf").read_text()
    m = UPSTREAM_LINE.search(text)
    assert m and len(UPSTREAM_LINE.findall(text)) == 1, "upstream server line changed"
    indent, resolve, params = m.group(1), m.group(2) or "", m.group(3)
    if not supports_upstream_resolve():
        resolve = ""  # nginx < 1.27.3: the one directive 1.22 lacks (see nginx.conf header)
    lines = "\n".join(f"{indent}server {u} {resolve}{params};" for u in upstreams)
    text = UPSTREAM_LINE.sub(lambda _m: lines, text)
    text = _sub_once(r"^(\s*)listen 80;$", rf"\1listen 127.0.0.1:{http_port};", text)
    text = _sub_once(r"^(\s*)listen 443 ssl;$", rf"\1listen 127.0.0.1:{https_port} ssl;", text)
    text = _sub_once(r"/etc/nginx/certs/tls\.crt", str(cert), text)
    text = _sub_once(r"/etc/nginx/certs/tls\.key", str(key), text)
    text = _sub_once(r"/etc/nginx/kaleem-proxy\.conf", str(NGINX_DIR / "kaleem-proxy.conf"), text)
    text = _sub_once(r"^pid /tmp/nginx\.pid;$", f"pid {workdir / 'nginx.pid'};", text)
    conf = workdir / "nginx.conf"
    conf.write_text(text)
    return conf


def self_signed_cert(workdir: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    crt_path, key_path = workdir / "tls.crt", workdir / "tls.key"
    crt_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return crt_path, key_path


def nginx_cmd(workdir: Path, conf: Path, *extra: str) -> list[str]:
    return [NGINX, "-p", f"{workdir}/", "-c", str(conf), "-e", "stderr", *extra]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], attempts: int = 100) -> None:
    """Poll a loopback port (bounded); fail early if the process died."""
    for _ in range(attempts):
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
