"""Go library sources that Debian stable does not package yet, taken from Debian unstable.

    python3 tools/sid_gocode.py DEST PACKAGE [PACKAGE ...]   # prints DEST/gocode

pgx v5 and puddle v2 (and the newer x/sync and x/text they build with) are only in Debian
unstable. This downloads those ``golang-*-dev`` packages from deb.debian.org (the archive
the machine installs from), checks each against the SHA256 of the signed-by-Debian index it
was listed in, and unpacks their ``/usr/share/gocode/src`` under DEST/gocode, nothing
installed: a GOPATH entry for one build. Packages are looked up by name in the current
index, so the versions are whatever unstable holds that day; DEST/versions.txt says which.
A DEST that already holds the same package versions is reused.
"""

from __future__ import annotations

import hashlib
import lzma
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

MIRROR = "http://deb.debian.org/debian"
INDEX = f"{MIRROR}/dists/sid/main/binary-all/Packages.xz"


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as resp:  # noqa: S310 (fixed https/http archive)
        return resp.read()


def index() -> dict[str, dict[str, str]]:
    """Package name -> its stanza fields (Version, Filename, SHA256, ...)."""
    out: dict[str, dict[str, str]] = {}
    for stanza in lzma.decompress(_get(INDEX)).decode("utf-8", "replace").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines()
                      if ": " in line and not line.startswith(" "))
        if "Package" in fields:
            out[fields["Package"]] = fields
    return out


def fetch(dest: Path, packages: list[str]) -> Path:
    pkgs = index()
    missing = [p for p in packages if p not in pkgs]
    if missing:
        raise SystemExit(f"not in Debian unstable: {', '.join(missing)}")
    versions = "".join(f"{p} {pkgs[p]['Version']}\n" for p in sorted(packages))
    gocode = dest / "gocode"
    stamp = dest / "versions.txt"
    if stamp.exists() and stamp.read_text() == versions and gocode.is_dir():
        return gocode
    shutil.rmtree(gocode, ignore_errors=True)
    gocode.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in packages:
            info = pkgs[name]
            deb = _get(f"{MIRROR}/{info['Filename']}")
            if hashlib.sha256(deb).hexdigest() != info["SHA256"]:
                raise SystemExit(f"{name}: SHA256 does not match the archive index")
            path = Path(tmp) / f"{name}.deb"
            path.write_bytes(deb)
            root = Path(tmp) / name
            subprocess.run(["dpkg-deb", "-x", str(path), str(root)], check=True)
            src = root / "usr" / "share" / "gocode" / "src"
            if src.is_dir():
                shutil.copytree(src, gocode, dirs_exist_ok=True, symlinks=True)
    stamp.write_text(versions)
    return gocode


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    print(fetch(Path(argv[0]).resolve(), argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
