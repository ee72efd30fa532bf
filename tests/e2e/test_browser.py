# SPDX-License-Identifier: MIT
"""A real browser (Debian's headless chromium) opens the web UI through
nginx over HTTPS: the page renders the groups from PostgreSQL, and the
Bootstrap stylesheet nginx serves is applied (the dark navbar is painted)."""
import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

CHROMIUM = shutil.which("chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync",
         "--ignore-certificate-errors", "--hide-scrollbars"]

def chromium(profile, *args):
    assert CHROMIUM, "chromium is missing: run deploy/install-deps.sh"
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}",
                           *args], capture_output=True, text=True,
                          timeout=90, stdin=subprocess.DEVNULL)


def png_pixel(path, x, y):
    """RGB of one pixel of an 8-bit RGB/RGBA PNG, with the stdlib only."""
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6), (depth, ctype)
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * bpp
    prev = bytearray(stride)
    for row in range(y + 1):
        f = raw[row * (stride + 1)]
        line = bytearray(raw[row * (stride + 1) + 1:(row + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pr = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pr) & 255
        prev = line
    return tuple(prev[x * bpp:x * bpp + 3])


def test_home_page_renders_in_browser(stack):
    url = f"https://localhost:{stack.ports['web_public']}/"
    with tempfile.TemporaryDirectory() as profile:
        r = chromium(profile, "--dump-dom", url)
        assert r.returncode == 0, r.stderr[-2000:]
        dom = r.stdout
        assert "<title>Groups</title>" in dom
        assert "Demo group" in dom           # seeded row from PostgreSQL
        shot = Path(profile) / "home.png"
        r = chromium(profile, f"--screenshot={shot}",
                     "--window-size=800,600", url)
        assert shot.exists(), r.stderr[-2000:]
        # Bootstrap's .bg-dark is #212529: only there if the CSS loaded
        r_, g, b = png_pixel(shot, 5, 5)
        assert abs(r_ - 0x21) <= 8 and abs(g - 0x25) <= 8 and \
            abs(b - 0x29) <= 8, (r_, g, b)
        # and the body below the navbar is the light page background
        assert min(png_pixel(shot, 5, 300)) > 200
