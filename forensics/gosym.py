"""Anatomy of a Go symbol: package path, receiver, function, and who owns the frame.

The call site we report is the first *app* frame, so the split between runtime, standard
library, third-party library and the customer's own code decides every answer. It must
work on services we never saw, so it leans on general facts of Go naming, not on lists of
customer packages:

- the standard library's import paths have no dot in their first element (``net/http``),
- third-party code lives in a module whose path starts with a domain (``github.com/x/y``),
  and its files sit in the module cache (``/pkg/mod/...@vX``) or a ``vendor/`` folder,
- what is left (``main``, the service's own module) is the app.

Well-known connection libraries are named explicitly so that a service that vendors them
or builds in GOPATH mode still has them classed as libraries.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

RUNTIME, STDLIB, LIBRARY, APP = "runtime", "stdlib", "library", "app"

#: Module path prefixes of libraries that sit between app code and a connection. A frame
#: in one of these is never the user call site (SIGNATURES.md section 0).
KNOWN_LIBRARIES: tuple[str, ...] = (
    "golang.org/x/",
    "google.golang.org/",
    "github.com/lib/pq",
    "github.com/jackc/",
    "github.com/go-sql-driver/mysql",
    "github.com/jmoiron/sqlx",
    "gorm.io/",
    "github.com/jinzhu/gorm",
    "github.com/go-redis/redis",
    "github.com/redis/go-redis",
    "github.com/gomodule/redigo",
    "github.com/denisenkom/go-mssqldb",
    "github.com/microsoft/go-mssqldb",
    "github.com/godror/godror",
    "github.com/sijms/go-ora",
    "github.com/mattn/go-sqlite3",
    "modernc.org/",
    "github.com/ClickHouse/",
    "github.com/uptrace/bun",
    "entgo.io/",
    "github.com/Masterminds/squirrel",
    "github.com/doug-martin/goqu",
    "github.com/volatiletech/sqlboiler",
    "github.com/pingcap/",
    "go.mongodb.org/",
    "github.com/gocql/gocql",
    "github.com/go-pg/pg",
    "github.com/gin-gonic/gin",
    "github.com/labstack/echo",
    "github.com/gorilla/",
    "github.com/go-chi/chi",
    "github.com/gofiber/",
    "github.com/valyala/",
    "github.com/julienschmidt/httprouter",
    "github.com/grpc-ecosystem/",
    "go.opentelemetry.io/",
    "go.opencensus.io/",
    "github.com/prometheus/",
    "github.com/hashicorp/",
    "github.com/aws/",
    "cloud.google.com/",
    "github.com/Azure/",
    "github.com/sirupsen/logrus",
    "go.uber.org/",
    "github.com/rs/zerolog",
    "github.com/DataDog/",
    "gopkg.in/DataDog/",
    "github.com/getsentry/",
    "github.com/cenkalti/backoff",
    "github.com/avast/retry-go",
    "github.com/stretchr/testify",
    "github.com/onsi/",
)

_RUNTIME_PACKAGES = ("runtime", "runtime/internal/", "internal/runtime/")
#: A file of a module at a version: in the module cache (``.../pkg/mod/github.com/x/y@v1.2.3/
#: z.go``) or, in a ``-trimpath`` build, recorded as ``github.com/x/y@v1.2.3/z.go``. The
#: main module is built from its own tree, so its files carry no version, except when the
#: binary came from ``go install module@version`` (see ``stacks.promote_main_module``).
_MODULE_CACHE = re.compile(r"/pkg/mod/([^@\s]+)@v\d|^([^/@\s:][^@\s:]*)@v\d")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")


class Symbol(NamedTuple):
    package: str
    receiver: str
    name: str


@lru_cache(maxsize=65536)
def split(function: str) -> Symbol:
    """``github.com/lib/pq.(*conn).watchCancel.func1`` -> (``github.com/lib/pq``,
    ``*conn``, ``watchCancel.func1``). Generic type arguments are dropped first, since
    they may hold dots and slashes of their own."""
    fn = function
    while "[" in fn:
        stripped = _BRACKETS.sub("", fn)
        if stripped == fn:
            break
        fn = stripped
    slash = fn.rfind("/")
    dot = fn.find(".", slash + 1)
    if dot < 0:
        return Symbol(fn, "", "")
    package, rest = fn[:dot], fn[dot + 1 :]
    receiver = ""
    if rest.startswith("("):
        close = rest.find(")")
        if close > 0:
            receiver, rest = rest[1:close], rest[close + 2 :]
    return Symbol(package, receiver, rest)


#: Top-level directories of the standard library (Go 1.0 to 1.27). A dot-less first path
#: element is not enough: ``module orders`` or GOPATH code (``myservice/internal/db``) is
#: the customer's own code and must stay "app".
STDLIB_ROOTS = frozenset({
    "archive", "arena", "bufio", "builtin", "bytes", "cmd", "cmp", "compress", "container",
    "context", "crypto", "database", "debug", "embed", "encoding", "errors", "expvar", "flag",
    "fmt", "go", "hash", "html", "image", "index", "internal", "io", "iter", "log", "maps",
    "math", "mime", "net", "os", "path", "plugin", "reflect", "regexp", "runtime", "slices",
    "sort", "strconv", "strings", "structs", "sync", "syscall", "testing", "text", "time",
    "unicode", "unique", "unsafe", "vendor", "weak",
})


def _is_stdlib(package: str) -> bool:
    # ``_/home/me/repro`` (built outside GOPATH and modules) and ``main`` are the user's own.
    return package.split("/", 1)[0] in STDLIB_ROOTS


def _unvendored(package: str) -> str | None:
    """``github.com/me/app/vendor/github.com/lib/pq`` -> ``github.com/lib/pq`` (third-party
    code vendored inside another module), else None."""
    i = package.rfind("/vendor/")
    return package[i + len("/vendor/"):] if i >= 0 else None


def library_module(package: str) -> str | None:
    """The module a third-party package belongs to, or None if it is not third-party."""
    pkg = package[len("vendor/") :] if package.startswith("vendor/") else package
    return _module_of(pkg) if _KNOWN_RE.match(pkg + "/") else None


# One regex for the whole list: a module prefix matches only at a path boundary, so
# "github.com/lib/pq" does not claim "github.com/lib/pqx".
_KNOWN_RE = re.compile("|".join(
    re.escape(p) if p.endswith("/") else re.escape(p) + "/" for p in KNOWN_LIBRARIES))


def _module_of(package: str) -> str:
    parts = package.split("/")
    if parts[0] in ("github.com", "gitlab.com", "bitbucket.org") and len(parts) >= 3:
        n = 3
        if len(parts) >= 4 and re.fullmatch(r"v\d+", parts[3]):
            n = 4
        return "/".join(parts[:n])
    if parts[0] == "golang.org" and len(parts) >= 3:
        return "/".join(parts[:3])
    return "/".join(parts[:2]) if len(parts) >= 2 else package


@lru_cache(maxsize=65536)
def classify(function: str, file: str = "") -> tuple[str, str]:
    """(frame_class, module) of one frame.

    The file path is a second witness: a frame whose file sits in the module cache or a
    vendor folder is third-party even when its package is not on our list.
    """
    sym = split(function)
    package = sym.package
    if package == "runtime" or package.startswith(_RUNTIME_PACKAGES[1:]):
        return RUNTIME, "runtime"
    if not sym.name and not sym.receiver:
        # No package at all: C code of old runtimes (``scanblock``, ``schedule`` in
        # proc.c), cgo/non-Go frames, ``?``. Never the user's Go call site.
        return RUNTIME, "runtime"
    if _is_stdlib(package):
        # Includes "vendor/golang.org/x/..." packages, which the standard library vendors.
        return STDLIB, "std"
    mod = library_module(package)
    if mod is not None:
        return LIBRARY, mod
    vendored = _unvendored(package)
    if vendored:
        return LIBRARY, library_module(vendored) or _module_of(vendored)
    if file:
        m = _MODULE_CACHE.search(file)
        if m:
            return LIBRARY, m.group(1) or m.group(2)
        if "/vendor/" in file and not file.endswith("_test.go"):
            return LIBRARY, _module_of(package)
    return APP, _module_of(package) if "." in package.split("/", 1)[0] else package
