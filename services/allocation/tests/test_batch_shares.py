"""How a batch's buildings are dealt into shares (each share pays a fixed set of statements)."""

from __future__ import annotations

from balans_allocation.handlers import split_shares
from balans_allocation.settings import AllocationSettings


def _settings(**extra: int) -> AllocationSettings:
    return AllocationSettings(database_url="postgresql://x/y", nats_url="nats://x:1", **extra)


def test_a_small_batch_is_one_share_a_larger_one_two() -> None:
    """By default (2 shares of at least 8 buildings) a batch of 15 buildings is one share;
    one of 20 (either half of a 40-building backlog in two processes) is two, as is a full
    batch of 64 hourly events."""
    settings = _settings()
    assert split_shares(list(range(15)), settings) == [list(range(15))]
    assert split_shares(list(range(10)), settings) == [list(range(10))]
    assert split_shares(list(range(20)), settings) == [list(range(0, 20, 2)), list(range(1, 20, 2))]
    assert split_shares(list(range(64)), settings) == [list(range(0, 64, 2)), list(range(1, 64, 2))]


def test_every_building_in_exactly_one_share() -> None:
    """Whatever the sizes, the shares partition the batch; an empty batch has no share."""
    for shares, least in [(2, 1), (3, 4), (4, 16)]:
        settings = _settings(
            allocation_batch_shares=shares, allocation_batch_share_min_buildings=least
        )
        assert split_shares([], settings) == []
        for n in (1, 5, 12, 64):
            dealt = split_shares(list(range(n)), settings)
            assert sorted(b for share in dealt for b in share) == list(range(n))
            assert len(dealt) == max(1, min(shares, n // least))
    one = _settings(allocation_batch_share_min_buildings=1)
    assert split_shares([7, 9], one) == [[7], [9]]
