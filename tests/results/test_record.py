"""leafbn.results.record: config.json as one record, written atomically, read back the same."""

import json

from leafbn.results.record import StudyRecord


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
