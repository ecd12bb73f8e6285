"""Who owns a frame: the split between runtime, standard library, third-party library and
the service's own code decides every call site we report. These rules must hold for
services we never saw, so they are checked on the path shapes real builds write (GOPATH,
module cache, vendor folders, ``-trimpath``, ``go install module@version``)."""

from __future__ import annotations

import pytest

from forensics import gosym
from forensics.stacks import Frame, StackTable, in_tree, promote_main_module, service_root


@pytest.mark.parametrize(("function", "file", "expected"), [
    # module cache, and the same file recorded by a -trimpath build
    ("github.com/segmentio/kafka-go.(*Reader).FetchMessage",
     "/root/go/pkg/mod/github.com/segmentio/kafka-go@v0.4.47/reader.go",
     ("library", "github.com/segmentio/kafka-go")),
    ("github.com/segmentio/kafka-go.(*Reader).FetchMessage",
     "github.com/segmentio/kafka-go@v0.4.47/reader.go",
     ("library", "github.com/segmentio/kafka-go")),
    ("gitlab.acme.io/platform/dbx.Query", "gitlab.acme.io/platform/dbx@v1.2.0/q.go",
     ("library", "gitlab.acme.io/platform/dbx")),
    # Windows module cache
    ("github.com/acme/x.F", "C:/Users/me/go/pkg/mod/github.com/acme/x@v1.2.0/x.go",
     ("library", "github.com/acme/x")),
    # the service's own files: no version in the path, whatever the folder is called
    ("github.com/acme/svc/store.(*S).Get", "github.com/acme/svc/store/s.go",
     ("app", "github.com/acme/svc")),
    ("github.com/acme/svc/store.(*S).Get", "/home/me@vpn/svc/store/s.go",
     ("app", "github.com/acme/svc")),
    ("myservice/internal/db.Open", "/go/src/myservice/internal/db/db.go",
     ("app", "myservice/internal/db")),
    # vendored third-party code
    ("github.com/acme/svc/vendor/github.com/acme/lib.F",
     "/go/src/github.com/acme/svc/vendor/github.com/acme/lib/f.go",
     ("library", "github.com/acme/lib")),
    ("database/sql.(*DB).conn", "/usr/local/go/src/database/sql/sql.go", ("stdlib", "std")),
])
def test_classify(function: str, file: str, expected: tuple[str, str]) -> None:
    assert gosym.classify(function, file) == expected


@pytest.mark.parametrize(("main_file", "root"), [
    ("/src/svc/main.go", "/src/svc/"),
    ("/src/svc/cmd/api/main.go", "/src/svc/"),
    ("github.com/acme/svc@v1.0.0/cmd/api/main.go", "github.com/acme/svc@v1.0.0/"),
    ("/src/svc/cmd/api/internal/x.go", "/src/svc/cmd/api/internal/"),
    ("main.go", None),
    ("cmd/api/main.go", None),
])
def test_service_root(main_file: str, root: str | None) -> None:
    assert service_root(main_file) == root


def test_in_tree_leaves_out_third_party_code_below_the_root() -> None:
    roots = {"/src/svc/"}
    assert in_tree("/src/svc/internal/store/tx.go", roots)
    assert in_tree("/src/svc/vendorapi/client.go", roots)
    assert not in_tree("/src/svc/vendor/github.com/lib/pq/conn.go", roots)
    assert not in_tree("/src/svc/.cache/pkg/mod/github.com/lib/pq@v1.10.7/conn.go", roots)
    assert not in_tree("/src/other/x.go", roots)


def _stacks(*stacks: list[Frame]):
    table = StackTable()
    for frames in stacks:
        table.intern(frames)
    return table.to_frame()


def test_service_whose_module_looks_like_a_known_library_keeps_its_call_site() -> None:
    """A HashiCorp service's own packages start with ``github.com/hashicorp/``, a prefix we
    class as a library: by name alone it has no app frame. Its main package's folder
    says which files are its own; the libraries it vendors or pulls from the module cache
    stay libraries, and so does one copied into its tree."""
    root = "/build/consul-esm"
    df = _stacks(
        [Frame("database/sql.(*DB).BeginTx", "/usr/local/go/src/database/sql/sql.go", 1900),
         Frame("github.com/hashicorp/consul-esm/store.(*Store).Save", f"{root}/store/s.go", 40),
         Frame("main.main", f"{root}/main.go", 12)],
        [Frame("github.com/hashicorp/go-retryablehttp.(*Client).Do",
               "/root/go/pkg/mod/github.com/hashicorp/go-retryablehttp@v0.7.7/client.go", 600),
         Frame("github.com/hashicorp/consul-esm/agent.(*Agent).run", f"{root}/agent/a.go", 88)],
        [Frame("github.com/hashicorp/consul/api.(*Client).Do",
               f"{root}/vendor/github.com/hashicorp/consul/api/api.go", 900)],
        # a library copied into the tree and used through a ``replace`` directive
        [Frame("github.com/lib/pq.(*conn).recvMessage", f"{root}/third_party/pq/conn.go", 990)],
    )
    before = dict(zip(df["function"].astype(str), df["frame_class"].astype(str), strict=True))
    assert before["github.com/hashicorp/consul-esm/store.(*Store).Save"] == "library"
    after = promote_main_module(df)
    classes = dict(zip(after["function"].astype(str), after["frame_class"].astype(str),
                       strict=True))
    assert classes["github.com/hashicorp/consul-esm/store.(*Store).Save"] == "app"
    assert classes["github.com/hashicorp/consul-esm/agent.(*Agent).run"] == "app"
    assert classes["github.com/hashicorp/go-retryablehttp.(*Client).Do"] == "library"
    assert classes["github.com/hashicorp/consul/api.(*Client).Do"] == "library"
    assert classes["github.com/lib/pq.(*conn).recvMessage"] == "library"
    assert classes["database/sql.(*DB).BeginTx"] == "stdlib"
    assert len(after) == len(df) and after["stack_id"].equals(df["stack_id"])


def test_without_a_main_package_nothing_changes() -> None:
    df = _stacks([Frame("github.com/hashicorp/vault/vault.(*Core).x", "/b/vault/core.go", 1)])
    assert promote_main_module(df) is df
