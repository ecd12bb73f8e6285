"""Go library sources that Debian stable does not package yet, taken from Debian unstable.

    python3 tools/sid_gocode.py DEST PACKAGE [PACKAGE ...]   # prints DEST/gocode
    python3 tools/sid_gocode.py DEST --set pgx5|goredis9      # a set the services use

pgx v5 and puddle v2 (and the newer x/sync and x/text they build with) are only in Debian
unstable. This downloads those ``golang-*-dev`` packages from deb.debian.org (the archive
the machine installs from), checks each against the SHA256 of the signed-by-Debian index it
was listed in, and unpacks their ``/usr/share/gocode/src`` under DEST/gocode, nothing
installed: a GOPATH entry for one build (with ``vN`` links where a module's major version
is not a folder of its own, as GOPATH mode needs). Packages are looked up by name in the current
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

#: The sets the test services build with (``--set NAME``).
SETS = {
    "pgx5": ["golang-github-jackc-pgx-v5-dev", "golang-github-jackc-puddle-v2-dev",
             "golang-github-jackc-pgpassfile-dev", "golang-github-jackc-pgservicefile-dev",
             "golang-golang-x-sync-dev", "golang-golang-x-text-dev"],
    "goredis9": ["golang-github-redis-go-redis-dev", "golang-github-cespare-xxhash-v2-dev",
                 "golang-github-dgryski-go-rendezvous-dev"],
}
MIRROR = "http://deb.debian.org/debian"
INDEX = f"{MIRROR}/dists/sid/main/binary-all/Packages.xz"


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as resp:
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
            if not src.is_dir():  # a transitional package: name the one it depends on
                raise SystemExit(f"{name} holds no Go sources (Depends: "
                                 f"{info.get('Depends', 'nothing')})")
            shutil.copytree(src, gocode, dirs_exist_ok=True, symlinks=True)
    _major_version_dirs(gocode)
    stamp.write_text(versions)
    return gocode


def _major_version_dirs(gocode: Path) -> None:
    """A module ``example.com/m/v9`` packaged at ``example.com/m`` (go-redis v9 is) gets a
    ``v9 -> .`` link, so GOPATH mode finds its import path."""
    for mod in gocode.rglob("go.mod"):
        words = mod.read_text(errors="replace").split()
        path = words[words.index("module") + 1] if "module" in words[:-1] else ""
        major = path.rsplit("/", 1)[-1]
        here = mod.parent
        if (major[:1] == "v" and major[1:].isdigit() and here.name != major
                and path == here.relative_to(gocode).as_posix() + "/" + major
                and not (here / major).exists()):
            (here / major).symlink_to(".")


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[1] == "--set" and argv[2] in SETS:
        packages = SETS[argv[2]]
    elif len(argv) >= 2 and not argv[1].startswith("-"):
        packages = argv[1:]
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(fetch(Path(argv[0]).resolve(), packages))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
