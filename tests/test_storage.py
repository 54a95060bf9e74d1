from __future__ import annotations

import pytest

from ser_pipeline.storage import Storage, StorageError, safe_name


def test_local_atomic_write_and_exclusive_create(tmp_path):
    store = Storage(str(tmp_path / "root"))
    assert store.write_bytes("a/b.bin", b"one")
    assert store.read_bytes("a/b.bin") == b"one"
    assert store.write_bytes("a/b.bin", b"two", exclusive=True) is False
    assert store.read_bytes("a/b.bin") == b"one"
    assert store.list("a") == ["a/b.bin"]
    assert not [p for p in (tmp_path / "root" / "a").iterdir() if p.name.startswith(".tmp-")]


def test_paths_cannot_escape_root(tmp_path):
    store = Storage(str(tmp_path))
    with pytest.raises(StorageError, match="escapes"):
        store.path("../outside")
    with pytest.raises(StorageError, match="escapes"):
        store.path("a/../../outside")


@pytest.mark.parametrize("name", ["../x", "/abs", "a/b", "", "..", ".hidden", "x" * 200])
def test_safe_name_rejects_escapes(name):
    with pytest.raises(ValueError, match="invalid"):
        safe_name(name)


def test_s3_roundtrip_and_conditional_put(s3_env):
    store = Storage(f"s3://{s3_env['bucket']}/root")
    assert store.write_bytes("x/y.txt", b"1", exclusive=True)
    assert store.write_bytes("x/y.txt", b"2", exclusive=True) is False
    assert store.read_bytes("x/y.txt") == b"1"
    assert store.list("x") == ["x/y.txt"]


def test_unsupported_scheme_is_named(tmp_path):
    with pytest.raises(StorageError, match="gs://b"):
        Storage("gs://b/lake")
