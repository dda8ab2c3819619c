"""bench/rope_index_speed.py on a small batch: both implementations run, agree, and the report says how it ran."""

import json
import sys

from bench import rope_index_speed


def test_the_benchmark_times_both_implementations_on_one_batch(tmp_path, monkeypatch) -> None:
    batch = rope_index_speed.preset_batch(6)
    lengths = batch["attention_mask"].sum(dim=1)
    assert (lengths >= 195 + 60).all() and (batch["mm_token_type_ids"].sum(dim=1) == 64).all()
    out = tmp_path / "rope.json"
    monkeypatch.setattr(sys, "argv", ["rope_index_speed", "--rows", "6", "--repeats", "1", "--out", str(out)])
    rope_index_speed.main()
    report = json.loads(out.read_text())
    assert report["equal"] is True and report["batch_rows"] == 6
    assert [run["implementation"] for run in report["runs"]] == ["transformers get_rope_index", "batched_rope_index"]
    assert all(run["ms_per_batch"] > 0 for run in report["runs"])
