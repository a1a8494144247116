"""Signal partitions written shard by shard (``nag_core.signal_sink``), on a real data root's warehouse."""

from __future__ import annotations

import polars as pl
import pyarrow.parquet as pq
import pytest

from nag_core.errors import NagInputError
from nag_core.freshness import State
from nag_core.home import Home
from nag_core.signal_sink import write_signals
from nag_core.warehouse import Warehouse


def _chunks(last_value: float = 5.0) -> list[pl.DataFrame]:
    return [pl.DataFrame({"docid": ["b", "a"], "shard": "s1", "signal": "dsir", "value": [2.0, 1.0]}),
            pl.DataFrame(schema={"docid": pl.String, "shard": pl.String, "signal": pl.String, "value": pl.Float64}),
            pl.DataFrame({"docid": ["c"], "shard": "s2", "signal": "dsir", "value": [last_value]})]


def test_each_shard_is_one_row_group_and_the_version_tracks_the_values(tmp_path):
    state = State(Home(tmp_path))
    written = write_signals(state, "dsir_scores", "gsm8k", iter(_chunks()), "run-1")
    path = Warehouse(tmp_path).table_dir("signals") / "dsir_scores@gsm8k.parquet"
    assert pq.ParquetFile(path).metadata.num_row_groups == 2  # the empty shard adds none
    rows = pl.read_parquet(path)
    assert rows["docid"].to_list() == ["a", "b", "c"]  # sorted within each shard, shards in order
    assert set(rows["target"]) == {"gsm8k"} and set(rows["run_id"]) == {"run-1"} and set(rows["asset"]) == {"dsir_scores"}
    assert rows["model"].null_count() == 3  # dsir has no model dimension
    assert (written.rows, written.documents) == (3, 3)
    assert written.summary.row(0) == ("dsir", 3, 1.0, pytest.approx(8 / 3), 5.0)
    assert write_signals(state, "dsir_scores", "gsm8k", iter(_chunks()), "run-2").data_version == written.data_version
    assert write_signals(state, "dsir_scores", "gsm8k", iter(_chunks(5.5)), "run-3").data_version != written.data_version


def test_a_required_partition_with_no_rows_fails_and_keeps_what_was_stored(tmp_path):
    state = State(Home(tmp_path))
    write_signals(state, "dsir_scores", "gsm8k", iter(_chunks()), "run-1")
    with pytest.raises(NagInputError, match="no document to score"):
        write_signals(state, "dsir_scores", "gsm8k", iter(_chunks()[1:2]), "run-2", required=True)
    folder = Warehouse(tmp_path).table_dir("signals")
    assert [p.name for p in folder.iterdir()] == ["dsir_scores@gsm8k.parquet"]  # no temporary file left behind
    assert set(pl.read_parquet(folder / "dsir_scores@gsm8k.parquet")["run_id"]) == {"run-1"}
    empty = write_signals(state, "quality_signals", "s9", iter([]), "run-3")  # a shard dedup emptied: an empty partition
    assert empty.rows == 0 and pl.read_parquet(folder / "quality_signals@s9.parquet").height == 0
