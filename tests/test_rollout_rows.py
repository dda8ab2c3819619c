"""RolloutRows: a rollout's batch of prompt rows read from the table once, given back while TRL repeats it."""

from __future__ import annotations

import datasets

from alphadrive_cli.training.rollout_rows import RolloutRows


def counted(repeats: int, monkeypatch) -> tuple[RolloutRows, list[list[int]]]:
    """Rows 0-5 with ``repeats``, and the index lists read from the table."""
    reads: list[list[int]] = []
    original = datasets.Dataset.__getitems__

    def spy(self, keys):
        reads.append(list(keys))
        return original(self, keys)

    monkeypatch.setattr(datasets.Dataset, "__getitems__", spy)
    rows = RolloutRows.from_dict({"frame_id": [f"f{i}" for i in range(6)]})
    rows.repeats = repeats
    return rows, reads


def test_a_repeated_batch_is_read_once_for_its_repeats(monkeypatch) -> None:
    rows, reads = counted(3, monkeypatch)
    first = rows.__getitems__([0, 0, 1, 1])
    assert [row["frame_id"] for row in first] == ["f0", "f0", "f1", "f1"]
    assert rows.__getitems__([0, 0, 1, 1]) is first
    assert rows.__getitems__([0, 0, 1, 1]) is first
    again = rows.__getitems__([0, 0, 1, 1])  # a fourth time in a row is past the repeats: read again
    assert again is not first and again == first
    other = rows.__getitems__([2, 2, 3, 3])
    assert [row["frame_id"] for row in other] == ["f2", "f2", "f3", "f3"]
    assert reads == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3]]


def test_one_repeat_reads_every_batch_and_other_indices_are_never_served(monkeypatch) -> None:
    rows, reads = counted(1, monkeypatch)
    rows.__getitems__([4, 5])
    rows.__getitems__([4, 5])
    rows.repeats = 4
    rows.__getitems__([5, 4])  # the same rows in another order are another batch
    assert reads == [[4, 5], [4, 5], [5, 4]]


def test_rows_keep_the_transform_and_the_class(monkeypatch) -> None:
    rows, _ = counted(2, monkeypatch)
    rows.set_transform(lambda batch: {"frame_id": [name.upper() for name in batch["frame_id"]]})
    assert isinstance(rows, RolloutRows)
    assert [row["frame_id"] for row in rows.__getitems__([1, 2])] == ["F1", "F2"]
