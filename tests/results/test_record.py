"""leafbn.results.record: config.json as one record, written atomically, read back the same."""

import json
import re
import warnings

import pytest

from leafbn.errors import StudyError
from leafbn.results.record import StudyRecord
from leafbn.results.tables import load_tables
from leafbn.tuning.storage import read_record


def test_written_and_read_back(tmp_path):
    record = StudyRecord(study={"lr": [0.1]}, data={"rows": 990}, versions={"ray": "2"}, run={"started": "x"})
    record.write(tmp_path / "config.json")
    assert StudyRecord.read(tmp_path / "config.json") == record
    assert json.loads((tmp_path / "config.json").read_text())["data"] == {"rows": 990}
    assert not (tmp_path / "config.json.tmp").exists()


def test_parts_that_are_missing_or_not_objects_are_empty():
    record = StudyRecord.from_dict({"study": "nope", "run": {"complete": True}})
    assert record.study == {} and record.versions == {} and record.run == {"complete": True}
    assert StudyRecord.from_dict([1, 2]) == StudyRecord() and not StudyRecord()


def test_the_one_reader_refuses_what_is_not_a_json_object(tmp_path):
    """Both the report (load_tables: a warning) and a resume (read_record: one line) read through it."""
    path = tmp_path / "config.json"
    for text, problem in (("[1, 2]", "not a JSON object"), ("{not json", "Expecting")):
        path.write_text(text)
        with pytest.raises(ValueError, match=problem):
            StudyRecord.read(path)
        with pytest.raises(StudyError, match=f"config.json: cannot read .*{problem}"):
            read_record(tmp_path)
        (tmp_path / "trials.csv").write_text("lr,bn,final_val_loss\n0.1,True,1.0\n")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert not load_tables(tmp_path)[2]
        assert any(re.search(f"config.json: unreadable .*{problem}", str(w.message)) for w in caught)
