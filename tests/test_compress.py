"""--compress: each coding decoded back to the exact bytes, streamed blocks arriving one by
one, the cases left alone, a 100 MiB response with bounded memory, and HTTP/2."""

from __future__ import annotations

import gzip
import zlib

import brotli
import httpx
import pytest
import requests
import zstandard
from apps.compressible import TEXT
from conftest import read_response

DECODE = {
    "gzip": gzip.decompress,
    "br": brotli.decompress,
    "zstd": lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b),
}


def raw_get(srv, path: str, accept: str | None, method: str = "GET", extra: str = ""):
    with srv.connect() as s:
        ae = f"Accept-Encoding: {accept}\r\n" if accept else ""
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\n{ae}{extra}Connection: close\r\n\r\n".encode())
        return read_response(s)


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_each_coding_decodes_to_the_exact_bytes(serve_both, coding):
    srv = serve_both("compressible:app", "--compress")
    status, headers, body = raw_get(srv, "/text", coding)
    assert status.startswith(b"HTTP/1.1 200")
    assert headers["content-encoding"] == coding
    assert "accept-encoding" in headers["vary"].lower()
    assert headers["etag"] == 'W/"abc"'
    assert "content-length" not in headers or int(headers["content-length"]) == len(body)
    assert len(body) < len(TEXT) / 3
    assert DECODE[coding](body) == TEXT


def test_client_preference_by_q_values(serve):
    srv = serve("compressible:app", "--compress")
    for accept, want in [
        ("gzip;q=0.5, br;q=0.9, zstd;q=0.1", "br"),
        ("gzip, br;q=0", "gzip"),
        ("zstd", "zstd"),
        ("identity", None),
        ("*;q=0", None),
    ]:
        _, headers, body = raw_get(srv, "/text", accept)
        assert headers.get("content-encoding") == want, accept
        if want is None:
            assert body == TEXT


@pytest.mark.parametrize(
    "path,method,extra",
    [
        ("/text?encoding=identity", "GET", ""),  # the app encoded it already
        ("/text?cc=no-transform", "GET", ""),
        ("/text?type=image/png", "GET", ""),
        ("/text?status=204+No+Content", "GET", ""),
        ("/text?status=206+Partial+Content", "GET", ""),
        ("/small", "GET", ""),  # under --compress-min-size
        ("/text", "HEAD", ""),
    ],
)
def test_left_alone(serve, path, method, extra):
    srv = serve("compressible:app", "--compress")
    _, headers, _ = raw_get(srv, path, "gzip, br, zstd", method, extra)
    assert headers.get("content-encoding") in (None, "identity")


def test_without_compress_nothing_changes(serve):
    srv = serve("compressible:app")
    _, headers, body = raw_get(srv, "/text", "gzip")
    assert "content-encoding" not in headers and body == TEXT


def test_json_suffix_types_and_custom_types(serve):
    srv = serve("compressible:app", "--compress")
    _, headers, _ = raw_get(srv, "/text?type=application/problem%2Bjson", "gzip")
    assert headers.get("content-encoding") is None  # the query is not decoded: not a +json type
    _, headers, _ = raw_get(srv, "/text?type=application/ld+json", "gzip")
    assert headers.get("content-encoding") == "gzip"
    srv2 = serve("compressible:app", "--compress", "--compress-types", "image/*")
    _, headers, _ = raw_get(srv2, "/text?type=image/png", "gzip")
    assert headers.get("content-encoding") == "gzip"
    _, headers, _ = raw_get(srv2, "/text", "gzip")
    assert headers.get("content-encoding") is None


def test_streamed_blocks_arrive_one_by_one(serve_both, tmp_path):
    srv = serve_both("compressible:app", "--compress")
    flag = tmp_path / "got-first"
    with srv.connect() as s:
        s.sendall(f"GET /stream?flag={flag} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n".encode())
        dec = zlib.decompressobj(16 + zlib.MAX_WBITS)
        buf, text = b"", b""
        while b"block 0 " not in text:
            data = s.recv(65536)
            assert data, "closed before the first block"
            buf += data
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if not sep:
                continue
            assert b"gzip" in head.lower()
            # Decode the chunked framing received so far.
            text, body = b"", rest
            dec = zlib.decompressobj(16 + zlib.MAX_WBITS)
            while b"\r\n" in body:
                size_line, _, after = body.partition(b"\r\n")
                size = int(size_line, 16)
                if len(after) < size + 2:
                    break
                text += dec.decompress(after[:size])
                body = after[size + 2 :]
        # The app is still waiting on the flag: block 1 cannot have been made yet.
        assert b"block 1 " not in text
        flag.write_text("")
        rest = b""
        while not rest.endswith(b"0\r\n\r\n"):
            data = s.recv(65536)
            assert data
            rest += data


def test_a_100_mib_response_is_compressed_with_bounded_memory(serve):
    srv = serve("compressible:app", "--compress")
    pid = srv.wait_for_log(r"Booting worker with pid: (\d+)").group(1)

    def rss() -> int:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))

    before = rss()
    n = 100 * 1024 * 1024
    dec = zstandard.ZstdDecompressor().decompressobj()
    got = 0
    with requests.get(f"{srv.url}/big?n={n}", headers={"Accept-Encoding": "zstd"}, stream=True) as r:
        assert r.headers["content-encoding"] == "zstd"
        for chunk in r.raw.stream(256 * 1024, decode_content=False):
            got += len(dec.decompress(chunk))
    assert got == n
    assert rss() - before < 50 * 1024


def test_compress_over_http2(serve):
    srv = serve("compressible:app", "--compress")
    with httpx.Client(http1=False, http2=True, base_url=srv.url, timeout=30, trust_env=False) as c:
        r = c.get("/text", headers={"accept-encoding": "br"})
        assert r.http_version == "HTTP/2" and r.headers["content-encoding"] == "br"
        assert r.content == TEXT  # httpx decodes br with the brotli package
