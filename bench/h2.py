"""HTTPS and HTTP/2 side by side: Ferrule against Granian on the plaintext app, one worker each,
the server pinned to CPU 0 and the load generator to CPU 1, rounds alternating the servers.

Rows (issue 16): h2load -c 16 -m 32 over h2c (prior knowledge) and over TLS (ALPN h2), and
wrk over HTTPS/1.1. The certificate is made at run time (a self-signed one from the
`cryptography` package); no key is kept.

  python h2.py --rounds 3 --duration 5
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from common import PINNED, SHARED, peerbench, write_fragment

BIN = Path(os.sys.executable).parent


def make_cert(where: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = where / "cert.pem", where / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return certfile, keyfile


def commands(cert: Path, key: Path) -> dict[tuple[str, str], str]:
    """(server, transport) -> command line; {port} is filled in."""
    ferrule = f"{BIN}/ferrule --bind 127.0.0.1:{{port}} --workers 1 --threads 1 apps:plaintext"
    granian = (
        f"{BIN}/granian --interface wsgi --workers 1 --blocking-threads 1 --host 127.0.0.1 "
        f"--port {{port}} --no-ws apps:plaintext"
    )
    tls_f = f" --certfile {cert} --keyfile {key}"
    tls_g = f" --ssl-certificate {cert} --ssl-keyfile {key}"
    return {
        ("ferrule", "h2c"): ferrule,
        ("granian", "h2c"): granian + " --http 2",
        ("ferrule", "h2-tls"): ferrule + tls_f,
        ("granian", "h2-tls"): granian + " --http 2" + tls_g,
        ("ferrule", "https1"): ferrule + tls_f,
        ("granian", "https1"): granian + " --http 1" + tls_g,
    }


def ready(port: int, transport: str, proc: subprocess.Popen, timeout: float = 30) -> bool:
    """Ready means a 200 answer over the transport measured (curl)."""
    how = {"h2c": ["--http2-prior-knowledge"], "h2-tls": ["--http2"], "https1": ["--http1.1"]}[transport]
    scheme = "http" if transport == "h2c" else "https"
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            return False
        out = subprocess.run(
            ["curl", "-sk", *how, "-o", "/dev/null", "-w", "%{http_code}", f"{scheme}://127.0.0.1:{port}/"],
            capture_output=True, text=True, check=False,
        ).stdout  # fmt: skip
        if out == "200":
            return True
        time.sleep(0.1)
    return False


def run_load(transport: str, port: int, duration: int, conns: int, streams: int) -> tuple[float, int]:
    """(requests/s, failed requests)."""
    pin = ["taskset", "-c", "1"] if PINNED else []
    if transport == "https1":
        out = subprocess.run(
            [*pin, "wrk", "-t1", f"-c{conns}", f"-d{duration}s", f"https://127.0.0.1:{port}/"],
            capture_output=True, text=True, check=False,
        ).stdout  # fmt: skip
        rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        socket_errors = re.search(r"Socket errors: .*", out)
        bad = int(errors[1]) if errors else 0
        return rate, bad + (1 if socket_errors else 0)
    scheme = "http" if transport == "h2c" else "https"
    out = subprocess.run(
        [*pin, "h2load", "-c", str(conns), "-m", str(streams), "-D", str(duration), "--warm-up-time", "1",
         f"{scheme}://127.0.0.1:{port}/"],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    m = re.search(r"finished in [\d.]+s, ([\d.]+) req/s", out)
    if not m:
        raise SystemExit(f"h2load output not understood:\n{out}")
    failed = re.search(r"requests: .* (\d+) failed, (\d+) errored", out)
    return float(m[1]), (int(failed[1]) + int(failed[2])) if failed else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--streams", type=int, default=32, help="h2load -m")
    ap.add_argument("--only", nargs="*", default=["h2c", "h2-tls", "https1"])
    args = ap.parse_args()
    pb = peerbench()
    tmp = Path(tempfile.mkdtemp(prefix="h2bench-"))
    cert, key = make_cert(tmp)
    cmds = commands(cert, key)
    env = dict(os.environ, PYTHONPATH=f"{SHARED}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    results: dict[tuple[str, str], list[float]] = {}
    failures: dict[tuple[str, str], int] = {}
    for _ in range(args.rounds):
        for transport in args.only:
            for server in ("ferrule", "granian"):
                port = pb.free_port()
                cmd = cmds[(server, transport)].format(port=port)
                if PINNED:
                    cmd = "exec taskset -c 0 " + cmd
                log = open(tmp / f"{server}.log", "a")  # noqa: SIM115
                proc = subprocess.Popen(
                    cmd, shell=True, env=env, stdout=log, stderr=log, start_new_session=True
                )
                try:
                    if not ready(port, transport, proc):
                        raise SystemExit(f"{server} did not start for {transport}; see {tmp}")
                    rate, bad = run_load(transport, port, args.duration, args.conns, args.streams)
                finally:
                    pb.stop(proc)
                    log.close()
                results.setdefault((server, transport), []).append(rate)
                failures[(server, transport)] = failures.get((server, transport), 0) + bad
    label = {
        "h2c": f"h2load -c {args.conns} -m {args.streams}, h2c",
        "h2-tls": f"h2load -c {args.conns} -m {args.streams}, TLS (ALPN h2)",
        "https1": f"wrk -c {args.conns}, HTTPS/1.1",
    }
    lines = ["| row | ferrule req/s | granian req/s | ferrule / granian |", "|---|---:|---:|---:|"]
    for transport in args.only:
        f = statistics.median(results[("ferrule", transport)])
        g = statistics.median(results[("granian", transport)])
        fm = "!" if failures[("ferrule", transport)] else ""
        gm = "!" if failures[("granian", transport)] else ""
        lines.append(f"| {label[transport]} | {f:,.0f}{fm} | {g:,.0f}{gm} | {f / g:.2f} |")
    body = "\n".join(lines) + (
        f"\n\nPlaintext app, one worker, Ferrule inline (`--threads 1`), Granian `--blocking-threads 1`; "
        f"medians of {args.rounds} alternating rounds of {args.duration} s. '!' marks a server whose "
        "rounds had failed requests."
    )
    write_fragment("h2", "HTTPS and HTTP/2 against Granian", body)


if __name__ == "__main__":
    main()
