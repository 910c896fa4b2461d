"""Which partitions a shard owns, where its ordinal comes from, and the clear errors for shard
settings that cannot work; the orchestrator's shard addresses from a DNS name template."""

from __future__ import annotations

import numpy as np
import pytest

from probelog.common.errors import FailedPrecondition
from probelog.common.ids import hash_range_of
from probelog.descriptor_store.file_store import FileDescriptorStore
from probelog.orchestrator.config import OrchestratorSettings
from probelog.orchestrator.main import ranker_addresses
from probelog.ranker.config import RankerSettings
from probelog.ranker.main import check, shard_ordinal
from probelog.ranker.ranker import Ranker, owned_partitions, shard_of


def test_the_partitions_are_dealt_round_robin_to_the_shards():
    for n_shards in range(1, 17):
        owned = [owned_partitions(i, n_shards, 16) for i in range(n_shards)]
        assert sorted(p for ps in owned for p in ps) == list(range(16))
        assert all(p % n_shards == i for i, ps in enumerate(owned) for p in ps)
        # Shards differ by one partition at most.
        assert max(map(len, owned)) - min(map(len, owned)) <= 1
    assert owned_partitions(1, 4, 16) == [1, 5, 9, 13]
    ids = [f"hub/model-{i}" for i in range(200)]
    assert all(shard_of(m, 3, 16) == hash_range_of(m, 16) % 3 for m in ids)


@pytest.mark.parametrize(
    ("settings", "hostname", "ordinal"),
    [
        (RankerSettings(shard_index=2, shard_count=4), "probelog-ranker-0", 2),  # the setting wins
        (RankerSettings(shard_count=4), "probelog-ranker-3", 3),
        (RankerSettings(shard_count=16), "my-release-probelog-ranker-12", 12),
        (RankerSettings(), "web-5d8f9c-12345", 0),  # unsharded: the host name does not matter
    ],
)
def test_the_ordinal_comes_from_the_setting_or_the_pods_name(settings, hostname, ordinal):
    assert shard_ordinal(settings, hostname) == ordinal


def test_bad_shard_settings_fail_with_one_clear_line():
    with pytest.raises(FailedPrecondition, match=r"host name 'ranker' does not end in -<ordinal>"):
        shard_ordinal(RankerSettings(shard_count=2), "ranker")
    with pytest.raises(FailedPrecondition, match="shard index must be >= 0"):
        shard_ordinal(RankerSettings(shard_index=-3, shard_count=2), "ranker-1")
    with pytest.raises(FailedPrecondition, match=r"shard index 4 is outside \[0, 4\)"):
        check(RankerSettings(shard_index=4, shard_count=4))
    with pytest.raises(FailedPrecondition, match="shard count must be >= 1"):
        check(RankerSettings(shard_index=0, shard_count=0))


async def test_more_shards_than_the_stores_partitions_fail_the_start(tmp_path):
    store = FileDescriptorStore(tmp_path / "store")  # one partition
    await store.open()
    ranker = Ranker(store, shard_index=0, shard_count=2, values_dtype=np.float32, batch_window_ms=0)
    with pytest.raises(FailedPrecondition, match=r"shard count 2 is more than the store's 1 partitions"):
        await ranker.start()
    await store.close()


def test_the_orchestrator_names_each_shard_from_the_template():
    settings = OrchestratorSettings(
        ranker_dns="probelog-ranker-{i}.probelog-ranker-headless.search.svc.cluster.local:50055", ranker_shards=3
    )
    assert ranker_addresses(settings) == [
        f"probelog-ranker-{i}.probelog-ranker-headless.search.svc.cluster.local:50055" for i in range(3)
    ]
    assert ranker_addresses(OrchestratorSettings(ranker_addresses=("a:1", "b:2"))) == ["a:1", "b:2"]
    for bad in (
        OrchestratorSettings(ranker_dns="probelog-ranker-headless:50055", ranker_shards=2),
        OrchestratorSettings(ranker_dns="probelog-ranker-{i}.svc:50055"),
        OrchestratorSettings(ranker_shards=2),
    ):
        with pytest.raises(FailedPrecondition, match=r"ranker_dns needs one \{i\}"):
            ranker_addresses(bad)
