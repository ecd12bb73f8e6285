"""Read a capture bundle (tar, zip, folder or one file) into memory, safely.

A bundle is untrusted input: it may climb out with ``..``, point links at /etc/passwd, hold
device files, gzip bombs or an archive inside an archive. Nothing here ever writes to disk
or follows a link; every read is bounded in bytes, member count and time, and every
member passed over becomes a :class:`BundleWarning` that names it and says why.

Single-file gzip members (``heap.pb.gz``, ``goroutines.txt.gz``) are inflated here (within
the same bounds), so the rest of the pipeline sees plain bytes; archives found inside the
bundle are opened in place, up to a small nesting depth.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import tarfile
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

MiB = 1024 * 1024
#: Warnings listed one by one; beyond that they are counted in one last warning.
MAX_WARNINGS = 500


def _size(n: int) -> str:
    """Whole MiB when that is exact or large, else bytes: "0 MiB" helps nobody."""
    return f"{n // MiB} MiB" if n >= 10 * MiB or n % MiB == 0 else f"{n:,} bytes"


@dataclass(frozen=True)
class Limits:
    """Bounds on what one bundle may cost. Defaults fit real captures with room to spare
    (a 200k-goroutine dump is ~150 MB) while keeping a bomb from taking the machine."""

    max_member_bytes: int = 512 * MiB
    max_total_bytes: int = 2048 * MiB
    max_members: int = 20000
    max_depth: int = 3
    seconds: float = 300.0
    #: Recognised artifacts parsed per bundle (see inventory.cap_artifacts).
    max_artifacts: int = 1000
    #: Time one parser may spend on one artifact (see pipeline.parse_artifact).
    parser_seconds: float = 120.0


@dataclass
class Member:
    path: str
    data: bytes
    mtime: float | None = None
    #: "gzip" when the bytes were inflated from a gzip member, "http" when they were the
    #: body of a saved HTTP response ("http+gzip": both).
    encoding: str = ""

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name


@dataclass(frozen=True)
class BundleWarning:
    path: str
    message: str


@dataclass
class Bundle:
    source: str
    bundle_id: str
    members: list[Member] = field(default_factory=list)
    warnings: list[BundleWarning] = field(default_factory=list)
    _hash: str | None = field(default=None, repr=False)

    @property
    def content_hash(self) -> str:
        """:func:`content_hash` of the members, worked out on first use: hashing a 150 MB
        dump is a tenth of a second that ``forensics tables`` never needs."""
        if self._hash is None:
            self._hash = content_hash(self.members)
        return self._hash


class BundleError(Exception):
    """The bundle as a whole cannot be read (missing, unreadable, not an archive)."""


_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


def bundle_name(path: Path) -> str:
    name = path.name
    for suffix in _ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or name
    return name


def safe_member_path(name: str) -> str | None:
    """Normalized relative POSIX path, or None when the name is absolute or climbs out."""
    name = name.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return None
    parts = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            return None
        parts.append(part)
    return "/".join(parts) if parts else None


class _Reader:
    """Accumulates members under one budget; shared by every container format."""

    def __init__(self, limits: Limits, bundle: Bundle) -> None:
        self.limits = limits
        self.bundle = bundle
        self.total = 0
        self.deadline = time.monotonic() + limits.seconds
        self.stopped: str | None = None
        self.seen: set[str] = set()
        self.copies: dict[str, int] = {}
        self.suppressed = 0

    def warn(self, path: str, message: str) -> None:
        if len(self.bundle.warnings) < MAX_WARNINGS:
            self.bundle.warnings.append(BundleWarning(path, message))
        else:
            self.suppressed += 1

    def out_of_budget(self) -> bool:
        if self.stopped:
            return True
        if time.monotonic() > self.deadline:
            self.stopped = f"reading stopped after {self.limits.seconds:.0f} s (time limit)"
        elif len(self.bundle.members) >= self.limits.max_members:
            self.stopped = f"reading stopped at {self.limits.max_members} members (member limit)"
        elif self.total >= self.limits.max_total_bytes:
            self.stopped = (f"reading stopped at {self.limits.max_total_bytes // MiB} MiB "
                            "(total size limit)")
        if self.stopped:
            self.warn(self.bundle.source, self.stopped)
            return True
        return False

    def room(self) -> int:
        return min(self.limits.max_member_bytes, self.limits.max_total_bytes - self.total)

    def too_big(self, size: int) -> str:
        """Why a member of ``size`` bytes is skipped: the member or the total size limit."""
        if self.room() < self.limits.max_member_bytes:
            return (f"skipped: {_size(size)} would pass the total size limit "
                    f"({_size(self.limits.max_total_bytes)}, {_size(max(self.room(), 0))} left)")
        return (f"skipped: {_size(size)} exceeds the member size limit "
                f"({_size(self.limits.max_member_bytes)})")

    def add(self, path: str, data: bytes, mtime: float | None, depth: int) -> None:
        """Add one file's bytes: inflate gzip, open nested archives, or keep as a member."""
        body, status = http_body(data)
        if status is not None and not 200 <= status < 300:
            self.warn(path, f"skipped: the server answered HTTP {status} instead of sending "
                            f"the artifact ({_first_line(body)!r})")
            return
        data, encoding = self._maybe_gunzip(path, body)
        if data is None:
            return
        if status is not None:
            encoding = "http+" + encoding if encoding else "http"
        if _looks_like_archive(data):
            if depth < self.limits.max_depth:
                self._open_nested(path, data, depth + 1)
            else:
                self.warn(path, f"skipped: archive nested more than {self.limits.max_depth} "
                                "levels deep (nesting limit)")
            return
        if path in self.seen:
            n = self.copies.get(path, 1) + 1
            while f"{path}#{n}" in self.seen:  # a member really named "x#2"
                n += 1
            self.copies[path] = n
            self.warn(path, f"duplicate member name: later copy kept as {path}#{n}")
            path = f"{path}#{n}"
        self.seen.add(path)
        self.total += len(data)
        self.bundle.members.append(Member(path, data, mtime, encoding))

    def _maybe_gunzip(self, path: str, data: bytes) -> tuple[bytes | None, str]:
        if not data.startswith(b"\x1f\x8b"):
            return data, ""
        out, problem = gunzip_bounded(data, self.room())
        if out is None:
            self.warn(path, f"skipped: {problem}")
            return None, ""
        if problem:
            self.warn(path, f"{problem}; kept the {len(out)} bytes inflated before it")
        return out, "gzip"

    def _open_nested(self, path: str, data: bytes, depth: int) -> None:
        try:
            if data[:4] == b"PK\x03\x04":
                with zipfile.ZipFile(io.BytesIO(data)) as zf:
                    read_zip(zf, self, prefix=path + "/", depth=depth)
            else:
                with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
                    read_tar(tf, self, prefix=path + "/", depth=depth)
        except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
            self.warn(path, f"nested archive unreadable: {exc}")


_HTTP_STATUS = re.compile(rb"HTTP/\d(?:\.\d)? (\d{3})(?: [^\r\n]*)?\r?\n")
_HEADER_END = re.compile(rb"\r?\n\r?\n")


def http_body(data: bytes) -> tuple[bytes, int | None]:
    """The body of an HTTP response saved with its headers (``curl -i``, and with ``-L``
    one header block per redirect), and the last status; ``(data, None)`` when ``data``
    does not start with a status line. curl has already undone chunked encoding."""
    status = None
    while (m := _HTTP_STATUS.match(data)) is not None:
        end = _HEADER_END.search(data, m.end() - 2, m.end() + 64 * 1024)
        if end is None:
            break
        status, data = int(m.group(1)), data[end.end():]
    return data, status


def _first_line(data: bytes, limit: int = 80) -> str:
    text = data[:limit].decode("utf-8", "replace").strip().split("\n")[0]
    return "".join(c if c.isprintable() else "." for c in text) or "empty body"


def gunzip_bounded(data: bytes, limit: int) -> tuple[bytes | None, str]:
    """Inflate every gzip member of ``data``, never past ``limit`` bytes.

    Returns (bytes, "") on success, (bytes, problem) when the stream is damaged or cut
    after some output (a truncated capture still has its head), and (None, problem) when
    nothing usable came out or the output would exceed ``limit`` (a bomb).
    """
    out = bytearray()
    rest = data
    while rest:
        d = zlib.decompressobj(wbits=31)
        pending = rest
        try:
            while pending and not d.eof:
                out += d.decompress(pending, limit + 1 - len(out))
                if len(out) > limit:
                    return None, (f"inflates to more than {limit // MiB} MiB (member size "
                                  "limit: a gzip bomb, or a capture too big to read)")
                pending = d.unconsumed_tail
        except zlib.error as exc:
            return (bytes(out), f"gzip stream damaged ({exc})") if out else (
                None, f"gzip stream damaged ({exc})")
        if not d.eof:
            problem = "gzip stream truncated"
            return (bytes(out), problem) if out else (None, problem)
        rest = d.unused_data
        if not rest.startswith(b"\x1f\x8b"):
            break
    return bytes(out), ""


def _looks_like_archive(data: bytes) -> bool:
    if data[:4] == b"PK\x03\x04":
        return True
    return len(data) > 262 and data[257:262] == b"ustar"


def read_tar(tf: tarfile.TarFile, r: _Reader, prefix: str = "", depth: int = 0) -> None:
    declared = 0
    while not r.out_of_budget():
        try:
            m = tf.next()
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            r.warn(r.bundle.source if not prefix else prefix.rstrip("/"),
                   f"archive truncated or damaged after {len(r.bundle.members)} members: {exc}")
            return
        if m is None:
            problem = _tar_end_problem(tf)
            if problem:
                r.warn(prefix.rstrip("/") or r.bundle.source,
                       f"{problem} ({len(r.bundle.members)} members read)")
            return
        shown = prefix + m.name
        if m.isdir():
            continue
        path = safe_member_path(m.name)
        if path is None:
            r.warn(shown, "skipped: absolute path or '..' in member name")
            continue
        if m.issym() or m.islnk():
            r.warn(shown, f"skipped: {'symbolic' if m.issym() else 'hard'} link to {m.linkname!r}")
            continue
        if not m.isfile():
            r.warn(shown, "skipped: not a regular file (device, FIFO or other special file)")
            continue
        declared += m.size
        if m.size > r.room():
            r.warn(shown, r.too_big(m.size))
            if declared > 4 * r.limits.max_total_bytes:
                r.warn(r.bundle.source, "reading stopped: declared sizes far beyond the limit")
                return
            continue
        try:
            f = tf.extractfile(m)
            data = f.read(m.size) if f else b""
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            r.warn(shown, f"archive truncated inside this member: {exc}")
            return
        if len(data) < m.size:
            r.warn(shown, f"truncated: {len(data)} of {m.size} bytes present; kept what was there")
        r.add(prefix + path, data, float(m.mtime) if m.mtime else None, depth)


def _tar_end_problem(tf: tarfile.TarFile) -> str | None:
    """Why the archive ended, when not at its end-of-archive marker (a zero block).

    ``tarfile`` ends quietly on a cut or garbled header; a cut capture must say so."""
    try:
        tf.fileobj.seek(tf.offset)
        block = tf.fileobj.read(tarfile.BLOCKSIZE)
    except (OSError, EOFError, tarfile.TarError, zlib.error):
        return "archive truncated or damaged"
    if len(block) == tarfile.BLOCKSIZE and not block.strip(b"\0"):
        return None
    if not block:
        return "archive ends without its end-of-archive marker (truncated?)"
    if len(block) < tarfile.BLOCKSIZE:
        return "archive truncated inside a member header"
    return "archive has a damaged member header; nothing after it was read"


def read_zip(zf: zipfile.ZipFile, r: _Reader, prefix: str = "", depth: int = 0) -> None:
    for info in zf.infolist():
        if r.out_of_budget():
            return
        shown = prefix + info.filename
        if info.is_dir():
            continue
        path = safe_member_path(info.filename)
        if path is None:
            r.warn(shown, "skipped: absolute path or '..' in member name")
            continue
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            r.warn(shown, "skipped: symbolic link")
            continue
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG):
            r.warn(shown, "skipped: not a regular file")
            continue
        if info.flag_bits & 0x1:
            r.warn(shown, "skipped: encrypted member")
            continue
        limit = r.room()
        if info.file_size > limit:  # declared size; a lying one is caught by the read below
            r.warn(shown, r.too_big(info.file_size))
            continue
        try:
            with zf.open(info) as f:
                data = f.read(limit + 1)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError,
                RuntimeError) as exc:
            r.warn(shown, f"unreadable member: {exc}")
            continue
        if len(data) > limit:
            r.warn(shown, f"skipped: inflates beyond the member size limit ({limit // MiB} MiB)")
            continue
        mtime = None
        try:
            mtime = time.mktime((*info.date_time, 0, 0, -1))
        except (OverflowError, ValueError):
            pass
        r.add(prefix + path, data, mtime, depth)


def read_folder(root: Path, r: _Reader) -> None:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for d in [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            r.warn((Path(dirpath) / d).relative_to(root).as_posix(),
                   "skipped: symbolic link to a folder")
            dirnames.remove(d)
        dirnames.sort()
        for fn in sorted(filenames):
            if r.out_of_budget():
                return
            full = Path(dirpath) / fn
            rel = full.relative_to(root).as_posix()
            try:
                st = full.lstat()
            except OSError as exc:
                r.warn(rel, f"unreadable: {exc.strerror}")
                continue
            if stat.S_ISLNK(st.st_mode):
                r.warn(rel, "skipped: symbolic link")
                continue
            if not stat.S_ISREG(st.st_mode):
                r.warn(rel, "skipped: not a regular file")
                continue
            if st.st_size > r.room():
                r.warn(rel, r.too_big(st.st_size))
                continue
            try:
                with open(full, "rb") as f:
                    data = f.read(r.room() + 1)
            except OSError as exc:
                r.warn(rel, f"unreadable: {exc.strerror}")
                continue
            r.add(rel, data, st.st_mtime, 0)


def read_bundle(source: str | Path, limits: Limits | None = None) -> Bundle:
    """Every member of the bundle at ``source``, in memory, with the reasons for any skip."""
    limits = limits or Limits()
    path = Path(source)
    if not path.exists():
        raise BundleError(f"{source}: no such file or folder")
    bundle = Bundle(source=str(source), bundle_id=bundle_name(path))
    r = _Reader(limits, bundle)
    try:
        if path.is_dir():
            read_folder(path, r)
        elif _starts_with(path, (b"PK\x03\x04", b"PK\x05\x06")):
            with zipfile.ZipFile(path) as zf:
                read_zip(zf, r)
        # Tar before the looser zip test: is_zipfile() finds the end record of a zip that
        # is merely the *last member* of a tar, and would read that zip alone.
        elif _is_tar(path):
            with tarfile.open(path, mode="r:*") as tf:
                read_tar(tf, r)
        elif zipfile.is_zipfile(path):  # a zip with data before it (self-extracting)
            with zipfile.ZipFile(path) as zf:
                read_zip(zf, r)
        else:
            with open(path, "rb") as f:
                data = f.read(limits.max_member_bytes + 1)
            if len(data) > limits.max_member_bytes:
                raise BundleError(f"{source}: larger than the member size limit "
                                  f"({limits.max_member_bytes // MiB} MiB)")
            r.add(path.name, data, path.stat().st_mtime, 0)
    except PermissionError as exc:
        raise BundleError(f"{source}: permission denied ({exc.strerror})") from exc
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
        if not bundle.members:
            raise BundleError(f"{source}: not a readable archive: {exc}") from exc
        r.warn(str(source), f"archive damaged after {len(bundle.members)} members: {exc}")
    if r.suppressed:
        bundle.warnings.append(BundleWarning(str(source), f"{r.suppressed} more warnings about "
                                             f"members not listed (first {MAX_WARNINGS} shown)"))
    return bundle


def _starts_with(path: Path, magics: tuple[bytes, ...]) -> bool:
    with open(path, "rb") as f:
        return f.read(4).startswith(magics)


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except (OSError, EOFError, tarfile.TarError):
        return False


def content_hash(members: list[Member]) -> str:
    """Hash of the members' names and bytes: the same capture repacked keeps its hash."""
    h = hashlib.sha256()
    for m in sorted(members, key=lambda m: m.path):
        h.update(m.path.encode("utf-8", "surrogateescape"))
        h.update(b"\0")
        h.update(hashlib.sha256(m.data).digest())
    return h.hexdigest()
