"""leafbn.tuning.loggers: Ray Tune's standard loggers on request, a missing package named in one line."""

import sys

import pytest
from ray.tune.logger import CSVLoggerCallback, TBXLoggerCallback

from leafbn.config import StudyConfig
from leafbn.tuning.loggers import check_loggers, logger_callbacks
from leafbn.tuning.session import StudyError


def test_each_logger_is_ray_tunes_own(tmp_path):
    assert logger_callbacks(StudyConfig(out=str(tmp_path))) == []  # the default: none
    kinds = [type(c) for c in logger_callbacks(StudyConfig(out=str(tmp_path), log=("csv", "tensorboard")))]
    assert kinds == [TBXLoggerCallback, CSVLoggerCallback]


@pytest.mark.parametrize("logger, module", [("mlflow", "mlflow"), ("tensorboard", "tensorboardX")])
def test_a_missing_package_names_its_extra(monkeypatch, logger, module):
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed, whatever this machine has
    with pytest.raises(StudyError) as info:
        check_loggers(StudyConfig(log=("csv", logger)))
    assert str(info.value) == f"--log {logger}: needs {module}, not installed: pip install 'leafbn[{logger}]'"
