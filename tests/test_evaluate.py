"""``ram-core eval``: parsing, printed figures, and one clear error for malformed files."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from ram_core.cli import _ArgumentParser
from ram_core.errors import BadInputError
from ram_core.eval.evaluate import add_eval_parser, run_eval
from ram_core.io.progress import JsonProgress, NoProgress
from ram_core.io.protocol import ExitCode

FIXTURES = Path(__file__).parent / "fixtures"
CAMPUS = FIXTURES / "mot" / "TUD-Campus"
REFERENCE = json.loads((FIXTURES / "motmetrics_reference.json").read_text())["sequences"]


def parse(*argv: str):
    # The same parser class as ram-core's own command line, so usage errors behave alike.
    parser = _ArgumentParser(prog="ram-core")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_ArgumentParser)
    add_eval_parser(commands)
    return parser.parse_args(argv)


def evaluate(*argv: str, progress=None) -> tuple[int, str]:
    out = io.StringIO()
    code = run_eval(parse("eval", *argv), progress or NoProgress(), out=out)
    return code, out.getvalue()


def test_eval_mot_json_equals_the_reference():
    code, text = evaluate("mot", str(CAMPUS / "gt.txt"), str(CAMPUS / "test.txt"), "--format=json")
    assert code == 0
    record = json.loads(text)
    assert record["benchmark"] == "mot"
    assert record["iou_threshold"] == 0.5
    for name, expected in REFERENCE["TUD-Campus"].items():
        assert record["metrics"][name] == pytest.approx(expected, abs=1e-6), name


def test_eval_mot_table():
    code, text = evaluate("mot", str(CAMPUS / "gt.txt"), str(CAMPUS / "test.txt"))
    assert code == 0
    lines = dict(line.rsplit(maxsplit=1) for line in text.splitlines()[1:])
    assert lines["MOTA"] == "52.6%"
    assert lines["IDF1"] == "55.8%"
    assert lines["MOTP (mean 1-IoU)"] == "0.277"
    assert lines["MOTP (mean IoU)"] == "0.723"
    assert lines["ID switches"] == "7"
    assert lines["fragmentations"] == "7"


def test_eval_iou_threshold_changes_the_figures():
    _, loose = evaluate("mot", str(CAMPUS / "gt.txt"), str(CAMPUS / "test.txt"), "--format=json")
    _, strict = evaluate(
        "mot", str(CAMPUS / "gt.txt"), str(CAMPUS / "test.txt"), "--format=json", "--iou=0.7"
    )
    assert json.loads(strict)["metrics"]["mota"] < json.loads(loose)["metrics"]["mota"]
    with pytest.raises(BadInputError, match="--iou"):
        evaluate("mot", str(CAMPUS / "gt.txt"), str(CAMPUS / "test.txt"), "--iou=0")


def test_eval_gt_min_confidence_drops_ignored_rows(tmp_path):
    gt = tmp_path / "gt.txt"
    gt.write_text("1,1,10,10,20,20,1\n1,2,100,10,20,20,0\n")
    pred = tmp_path / "pred.txt"
    pred.write_text("1,5,10,10,20,20,-1\n")
    _, all_rows = evaluate("mot", str(gt), str(pred), "--format=json")
    events = io.StringIO()
    _, kept = evaluate(
        "mot",
        str(gt),
        str(pred),
        "--format=json",
        "--gt-min-confidence=1",
        progress=JsonProgress(events),
    )
    assert json.loads(all_rows)["metrics"]["num_misses"] == 1
    assert json.loads(kept)["metrics"]["num_misses"] == 0
    assert "kept 1 of 2 ground-truth rows" in events.getvalue()


def test_eval_empty_files_print_null_not_nan(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    _, text = evaluate("mot", str(empty), str(empty), "--format=json")
    record = json.loads(text)  # strict JSON: NaN would not parse in every reader
    assert "NaN" not in text
    assert record["metrics"]["mota"] is None
    assert record["metrics"]["num_objects"] == 0


def test_eval_posetrack(tmp_path):
    images = [{"id": i, "frame_id": i} for i in range(3)]
    gt = {
        "images": images,
        "annotations": [
            {"image_id": i, "track_id": 1, "bbox": [10 * i, 0, 50, 100]} for i in range(3)
        ],
    }
    pred = {
        "images": images,
        "annotations": [
            {"image_id": i, "track_id": 4 if i < 2 else 9, "bbox": [10 * i, 0, 50, 100]}
            for i in range(3)
        ],
    }
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps(pred))
    _, text = evaluate(
        "posetrack", str(tmp_path / "gt.json"), str(tmp_path / "pred.json"), "--format=json"
    )
    metrics = json.loads(text)["metrics"]
    assert metrics["num_switches"] == 1
    assert metrics["mota"] == pytest.approx(2 / 3)
    assert metrics["idf1"] == pytest.approx(2 / 3)


def test_eval_malformed_file_is_one_line_bad_input(tmp_path):
    bad = tmp_path / "pred.txt"
    bad.write_text("1,1,10,20,30,40\n2,1,10,20\n")
    with pytest.raises(BadInputError) as info:
        evaluate("mot", str(CAMPUS / "gt.txt"), str(bad))
    assert info.value.exit_code == ExitCode.BAD_INPUT
    message = str(info.value)
    assert message.startswith(f"{bad}:2: ")
    assert "\n" not in message


def test_eval_missing_file_and_usage_errors(tmp_path):
    with pytest.raises(BadInputError, match="not found"):
        evaluate("mot", str(tmp_path / "nope.txt"), str(CAMPUS / "test.txt"))
    with pytest.raises(BadInputError, match="ram-core"):
        parse("eval", "mot", str(CAMPUS / "gt.txt"))  # PRED missing
    with pytest.raises(BadInputError):
        parse("eval", "mot", "gt.txt", "pred.txt", "--format=xml")
    with pytest.raises(BadInputError):
        parse("eval", "nosuchbenchmark", "a", "b")
