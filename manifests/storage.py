"""Where files live: a local path, or an fsspec URL (`s3://`, `gs://`, `az://`, `hf://`, ...).

Every reader and writer that may touch object storage goes through these few calls, so a stage
takes `s3://bucket/corpus/list.csv` where it takes `data/list.csv`. fsspec (and its backends:
s3fs, gcsfs, adlfs, huggingface_hub) does the work; credentials come from their usual places
(environment variables such as AWS_ACCESS_KEY_ID / AWS_ENDPOINT_URL, ~/.aws, gcloud's default
credentials, HF_TOKEN), never from params. Local paths keep using the plain file system, so
nothing changes for them.
"""
from __future__ import annotations

import os
import posixpath
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

from .errors import ManifestError


def is_url(path: str | os.PathLike) -> bool:
    """True for an fsspec URL with a protocol other than `file://` (`s3://b/k`, `hf://datasets/...`)."""
    text = str(path)
    return "://" in text and not text.startswith("file://")


def url_to_fs(path: str) -> tuple[Any, str]:
    """(fsspec file system, path inside it) for a URL; a ManifestError names a missing backend."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(path)
    except (ImportError, ValueError) as exc:
        raise ManifestError(f"cannot open {path}: {exc} (install the fsspec backend for its protocol, "
                            "e.g. s3fs for s3://, gcsfs for gs://, adlfs for az://)") from exc


def protocol_of(path: str) -> str:
    return str(path).split("://", 1)[0] if is_url(path) else "file"


READ_OPTIONS: dict[str, Any] = {"block_size": 2**20}  # read-ahead per request (s3fs: 50 MiB, a whole file)


@contextmanager
def open_binary(path: str | os.PathLike, mode: str = "rb") -> Iterator[IO[bytes]]:
    """A binary file object for a local path or a URL."""
    if not is_url(path):
        with open(path, mode) as f:
            yield f
        return
    fs, inner = url_to_fs(str(path))
    try:
        f = fs.open(inner, mode, **READ_OPTIONS) if "r" in mode else fs.open(inner, mode)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ManifestError(f"cannot open {path}: {exc}") from exc
    with f:
        yield f


def open_ranges(url: str) -> IO[bytes]:
    """An object opened for reads at known offsets (a Parquet footer, then row groups' column chunks):
    each read fetches exactly its bytes. fsspec's default read-ahead (s3fs: 50 MiB blocks) fetched
    310 MiB to read a 2 MiB column of a 58 MiB file's 10 row groups (bench/remote_reads.py)."""
    fs, inner = url_to_fs(url)
    if not fs.isfile(inner):
        raise FileNotFoundError(url)
    try:
        return fs.open(inner, "rb", cache_type="none")
    except TypeError:  # a backend whose files take no cache option
        return fs.open(inner, "rb")


def exists(path: str | os.PathLike) -> bool:
    if not is_url(path):
        return os.path.exists(path)
    fs, inner = url_to_fs(str(path))
    return fs.exists(inner)


def is_file(path: str | os.PathLike) -> bool:
    if not is_url(path):
        return os.path.isfile(path)
    fs, inner = url_to_fs(str(path))
    return fs.isfile(inner)


def is_dir(path: str | os.PathLike) -> bool:
    if not is_url(path):
        return os.path.isdir(path)
    fs, inner = url_to_fs(str(path))
    return fs.isdir(inner)


def join(base: str, *parts: str) -> str:
    """`base/part/...` for a URL (posix separators, `..` resolved) or a local path."""
    if not is_url(base):
        return os.path.join(base, *parts)
    protocol, rest = str(base).split("://", 1)
    return f"{protocol}://{posixpath.normpath(posixpath.join(rest, *parts))}"


def parent(path: str) -> str:
    """The folder holding `path` (a URL stays a URL)."""
    if not is_url(path):
        return str(Path(path).parent)
    protocol, rest = str(path).split("://", 1)
    return f"{protocol}://{posixpath.dirname(rest.rstrip('/'))}"


def name(path: str) -> str:
    return posixpath.basename(str(path).rstrip("/")) if is_url(path) else Path(path).name


def glob(path: str, pattern: str) -> list[str]:
    """Sorted files matching `pattern` under the folder `path` (URLs keep their protocol)."""
    if not is_url(path):
        return sorted(str(p) for p in Path(path).glob(pattern))
    fs, inner = url_to_fs(path)
    protocol = protocol_of(path)
    return sorted(f"{protocol}://{p}" for p in fs.glob(posixpath.join(inner, pattern)))


def upload(local: str | os.PathLike, url: str) -> None:
    """Copy a finished local file to `url` (one put: readers never see half an object)."""
    fs, inner = url_to_fs(url)
    fs.put_file(str(local), inner)


def remove(url: str) -> None:
    fs, inner = url_to_fs(url)
    if fs.exists(inner):
        fs.rm(inner, recursive=True)


class RemotePath:
    """The little of `pathlib.Path` a reader uses (`name`, `stem`, `parent`, `str`), for a URL."""

    def __init__(self, url: str) -> None:
        self.url = str(url).rstrip("/")

    @property
    def name(self) -> str:
        return name(self.url)

    @property
    def stem(self) -> str:
        return posixpath.splitext(self.name)[0]

    @property
    def parent(self) -> "RemotePath":
        return RemotePath(parent(self.url))

    def __str__(self) -> str:
        return self.url

    __fspath__ = __str__

    def __repr__(self) -> str:
        return f"RemotePath({self.url!r})"


def as_path(path: str | os.PathLike) -> "Path | RemotePath":
    """A `Path` for a local path, a `RemotePath` for a URL (pathlib would fold `s3://` to `s3:/`)."""
    return RemotePath(str(path)) if is_url(path) else Path(path)


def relative_to(path: str, folder: str) -> str:
    """`path` relative to `folder` (both local, or both URLs of one protocol)."""
    if is_url(path) or is_url(folder):
        return posixpath.relpath(str(path).split("://", 1)[-1], str(folder).split("://", 1)[-1])
    return os.path.relpath(path, os.path.abspath(folder))


def download(url: str, local: str | os.PathLike) -> None:
    """Copy one object to a local file."""
    fs, inner = url_to_fs(url)
    fs.get_file(inner, str(local))


def files_in(path: str) -> list[str]:
    """Names of the files directly in folder `path` (not its subfolders); [] if it does not exist."""
    if not is_url(path):
        return sorted(p.name for p in Path(path).iterdir() if p.is_file()) if os.path.isdir(path) else []
    fs, inner = url_to_fs(path)
    try:
        entries = fs.ls(inner, detail=True, refresh=True)
    except FileNotFoundError:
        return []
    return sorted(posixpath.basename(e["name"].rstrip("/")) for e in entries if e["type"] == "file")


def folders_in(path: str, pattern: str = "*") -> list[str]:
    """Sorted subfolders of `path` whose names match `pattern` (full paths; URLs keep their protocol)."""
    import fnmatch

    if not is_url(path):
        return sorted(str(p) for p in Path(path).glob(pattern) if p.is_dir())
    fs, inner = url_to_fs(path)
    try:
        entries = fs.ls(inner, detail=True, refresh=True)
    except FileNotFoundError:
        return []
    return sorted(join(path, posixpath.basename(e["name"].rstrip("/"))) for e in entries
                  if e["type"] == "directory" and fnmatch.fnmatch(posixpath.basename(e["name"].rstrip("/")), pattern))


def upload_folder(local: str | os.PathLike, url: str) -> None:
    """Copy every file under the local folder `local` into the folder `url` (one put each)."""
    for p in sorted(p for p in Path(local).rglob("*") if p.is_file()):
        upload(p, join(url, *p.relative_to(local).parts))


@contextmanager
def local_folder(path: str | os.PathLike, only: tuple[str, ...] = ()) -> Iterator[Path]:
    """A local folder holding the files directly in `path` (or those named in `only`): `path` itself
    when local, else a temporary copy of them (subfolders such as a run's `state/` are not fetched)."""
    if not is_url(path):
        yield Path(path)
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="jstip-get-") as folder:
        for name_ in only or files_in(str(path)):
            if not only or is_file(join(str(path), name_)):
                download(join(str(path), name_), Path(folder) / name_)
        yield Path(folder)


@contextmanager
def folder_to_write(path: str | os.PathLike) -> Iterator[Path]:
    """A local folder to write into: `path` itself when local, else a temporary folder uploaded to
    `path` when the block ends without error (each file one put)."""
    if not is_url(path):
        Path(path).mkdir(parents=True, exist_ok=True)
        yield Path(path)
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="jstip-put-") as folder:
        yield Path(folder)
        upload_folder(folder, str(path))


def stamp(path: str | os.PathLike) -> tuple:
    """What identifies a file's content cheaply: (size, mtime) locally, (size, ETag or mtime) in a store."""
    if not is_url(path):
        st = os.stat(path)
        return (st.st_size, st.st_mtime_ns)
    fs, inner = url_to_fs(str(path))
    info = fs.info(inner)
    return (info.get("size"), str(info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified")))


def unlink(path: str | os.PathLike) -> None:
    """Remove a file if it is there (local path or URL)."""
    if is_url(path):
        fs, inner = url_to_fs(str(path))
        try:
            fs.rm_file(inner)
        except FileNotFoundError:
            pass
        return
    Path(path).unlink(missing_ok=True)
