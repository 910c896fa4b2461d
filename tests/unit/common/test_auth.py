"""API keys and roles (probelog.common.auth): parsing, hashing, the role table."""

from __future__ import annotations

import hashlib
import logging

import pytest

from probelog.common.auth import ApiKeys, Role, allows, is_loopback, required_role
from probelog.common.errors import FailedPrecondition
from probelog.common.runtime import auth_interceptors
from probelog.common.settings import Settings

READ_KEY = "read-key-0123456789"
WRITE_KEY = "write-key-0123456789"


def test_roles_by_method_name():
    assert required_role("/probelog.v1.SearchService/IndexModel") is Role.WRITE
    assert required_role("/probelog.v1.SearchService/DeleteModel") is Role.WRITE
    for method in ("Search", "ListModels", "GetModel", "ListProbeSets", "ListSourceModels", "TaskSearch"):
        # A read RPC added later needs no entry: every method not named a write is a read.
        assert required_role(f"/probelog.v1.SearchService/{method}") is Role.READ
    assert allows(Role.WRITE, Role.READ) and allows(Role.WRITE, Role.WRITE)
    assert allows(Role.READ, Role.READ) and not allows(Role.READ, Role.WRITE)


def test_keys_are_kept_as_digests_and_matched(tmp_path):
    digest = hashlib.sha256(WRITE_KEY.encode()).hexdigest()
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# role key\nwrite sha256:{digest}\n\n")
    keys = ApiKeys.load([f"read:{READ_KEY}"], str(keys_file))
    assert keys.role_of(READ_KEY) is Role.READ
    assert keys.role_of(WRITE_KEY) is Role.WRITE
    assert keys.role_of("not-a-key-0123456789") is None
    assert READ_KEY.encode() not in repr(keys).encode() and READ_KEY not in repr(keys)
    assert not ApiKeys.load()


@pytest.mark.parametrize(
    "entries", [["admin:" + READ_KEY], ["read:short"], ["nocolon"], ["write:sha256:abc"]]
)
def test_bad_key_entries_are_refused_without_echoing_the_key(entries):
    with pytest.raises(ValueError) as err:
        ApiKeys.load(entries)
    assert READ_KEY not in str(err.value)


def test_server_without_keys_warns_unless_loopback(caplog):
    with caplog.at_level(logging.WARNING):
        assert auth_interceptors(Settings(), "127.0.0.1:50051") == []
        assert not caplog.records
        assert auth_interceptors(Settings(), "[::]:50051") == []
    assert "without API keys" in caplog.text
    assert len(auth_interceptors(Settings(api_keys=(f"read:{READ_KEY}",)), "[::]:1")) == 1
    with pytest.raises(FailedPrecondition, match="API keys"):
        auth_interceptors(Settings(api_keys_file="/nonexistent/keys"), "127.0.0.1:1")


def test_loopback_addresses():
    assert is_loopback("127.0.0.1:50051") and is_loopback("[::1]:1") and is_loopback("localhost:1")
    assert not is_loopback("[::]:50051") and not is_loopback("0.0.0.0:1") and not is_loopback("example.org:1")
