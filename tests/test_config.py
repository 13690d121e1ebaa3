import io
import json

import pytest

from ram_core.config import RunConfig, config_from_dict, config_to_dict, load_config
from ram_core.errors import BadInputError
from ram_core.io.progress import JsonProgress, make_progress


def test_defaults_are_the_method_values():
    config = RunConfig()
    assert config.segfollow.alpha == 0.75
    assert config.segfollow.tau_kf == 15
    assert config.segfollow.n_init == 5
    assert config.segfollow.max_hidden_s == 3.0
    assert config.segfollow.max_age(24.0) == 72
    assert config.pipeline.detect_every == 5


def test_yaml_overrides_and_round_trips(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "pipeline: {detect_every: 3, focal_px: 900}\n"
        "segfollow: {alpha: 0.85, birth_min_size_px: [20, 40]}\n"
    )
    config = load_config(path)
    assert config.pipeline.detect_every == 3
    assert config.pipeline.focal_px == 900.0
    assert config.segfollow.alpha == 0.85
    assert config.segfollow.birth_min_size_px == (20.0, 40.0)
    assert config_from_dict(config_to_dict(config)) == config
    json.dumps(config_to_dict(config))  # goes into the manifest


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("segfollow: {alpah: 0.5}\n", ["alpah", "segfollow"]),
        ("tracker: {}\n", ["tracker"]),
        ("pipeline: {detect_every: 0}\n", ["detect_every"]),
        ("pipeline: {detect_every: 2.5}\n", ["integer"]),
        ("segfollow: {alpha: yes please}\n", ["number"]),
        ("- just\n- a list\n", ["mapping"]),
        ("pipeline: [1, 2\n", ["YAML"]),
    ],
)
def test_bad_configs_are_refused_clearly(tmp_path, text, words):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(BadInputError) as info:
        load_config(path)
    for word in words:
        assert word in str(info.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(BadInputError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_json_progress_events_are_one_object_per_line():
    out = io.StringIO()
    progress = JsonProgress(out, interval_s=0.0)
    progress.stage("track", total=3)
    for _ in range(3):
        progress.advance()
    progress.info("backend: lite")
    progress.done("x.ram")
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert events[0] == {"event": "stage", "stage": "track", "total": 3}
    assert events[3] == {"event": "progress", "stage": "track", "done": 3, "total": 3}
    assert events[-1] == {"event": "done", "result": "x.ram"}
    with pytest.raises(ValueError):
        make_progress("loud")
