"""Write a Go module proxy on disk (``GOPROXY=file://DIR``) holding orders-api and lib/pq.

Customers build their services from the module cache: ``go install module@version`` puts
the service's own files there, and ``-trimpath`` records every file as ``module@version/
file.go``. Our other builds use GOPATH or a local ``replace``, whose paths look different.
No proxy is reachable where this runs, so this serves the local sources as versions:

    python3 modproxy.py OUTDIR SERVICE_DIR PQ_SRC

Layout (the GOPROXY protocol): ``<module>/@v/list``, ``<version>.info``, ``.mod``, ``.zip``,
the zip's entries under ``<module>@<version>/``.
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

SERVICE = ("github.com/acme-retail/orders-api", "v1.0.0")
PQ = ("github.com/lib/pq", "v1.10.7")
#: The proxy's orders-api go.mod: no ``replace`` (``go install m@v`` refuses one).
SERVICE_GOMOD = f"module {SERVICE[0]}\n\ngo 1.19\n\nrequire {PQ[0]} {PQ[1]}\n"
TIME = "2026-01-01T00:00:00Z"


def _files(src: Path) -> list[Path]:
    """The module's files as ``go mod`` would zip them: no tests' testdata trouble, no
    nested modules, no tooling of ours."""
    out = []
    for p in sorted(src.rglob("*")):
        rel = p.relative_to(src)
        if not p.is_file() or p.suffix in (".py", ".pyc") or "__pycache__" in rel.parts:
            continue
        if rel.parts[0] in ("third_party", "vendor") or (
                rel.name == "go.mod" and len(rel.parts) > 1):
            continue
        out.append(p)
    return out


def publish(root: Path, module: str, version: str, src: Path, gomod: str) -> None:
    d = root / module / "@v"
    d.mkdir(parents=True, exist_ok=True)
    (d / "list").write_text(version + "\n")
    (d / f"{version}.info").write_text(json.dumps({"Version": version, "Time": TIME}))
    (d / f"{version}.mod").write_text(gomod)
    with zipfile.ZipFile(d / f"{version}.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        prefix = f"{module}@{version}/"
        zf.writestr(prefix + "go.mod", gomod)
        for p in _files(src):
            rel = p.relative_to(src).as_posix()
            if rel != "go.mod":
                zf.write(p, prefix + rel)


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit("usage: modproxy.py OUTDIR SERVICE_DIR PQ_SRC")
    out, service, pq = (Path(a) for a in sys.argv[1:])
    publish(out, *SERVICE, service, SERVICE_GOMOD)
    publish(out, *PQ, pq, (pq / "go.mod").read_text())


if __name__ == "__main__":
    main()
