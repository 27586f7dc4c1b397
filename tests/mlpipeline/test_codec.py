"""include/mlpipeline/codec.py: every answer shape the served models give, by content type, and
the errors for what cannot be read."""

from __future__ import annotations

import pytest

from include.mlpipeline import codec
from include.mlpipeline.codec import ResponseError, decode_predictions


def test_media_types_ignore_parameters_and_case_and_know_jsonlines_aliases() -> None:
    assert codec.media_type("Text/CSV; charset=utf-8") == "text/csv"
    assert codec.media_type("application/x-jsonlines") == codec.media_type("application/jsonl") == codec.JSONLINES
    assert decode_predictions(b"0.5\n", "text/csv; charset=utf-8") == [0.5]


def test_csv_one_prediction_a_line_the_last_field() -> None:
    assert decode_predictions(b"0.1\n\n0.2\n", "text/csv") == [0.1, 0.2]
    assert decode_predictions(b"7,0.5\n", "text/csv") == [0.5]  # one row's id,prediction
    assert decode_predictions(b"1,2\n3,4\n", "text/csv", expected=2) == [2.0, 4.0]
    assert decode_predictions(b"[0.25]\n", "text/csv") == [0.25]
    assert decode_predictions(b"", "text/csv") == []


def test_csv_comma_joined_answer_of_several_rows() -> None:
    # XGBoost's real-time answer to 3 rows is one comma-joined line; batch transform one a line
    assert decode_predictions(b"0.25,0.5,1e-3", "text/csv", expected=3) == [0.25, 0.5, 0.001]
    assert decode_predictions(b"0.25\n0.5\n", "text/csv", expected=2) == [0.25, 0.5]
    # a short answer stays short: the caller's count check sees 2, not 1
    assert decode_predictions(b"0.25,0.5", "text/csv", expected=3) == [0.25, 0.5]
    with pytest.raises(ResponseError, match="value 2: the prediction is inf in 'inf'"):
        decode_predictions(b"0.1,inf", "text/csv", expected=2)


def test_json_shapes() -> None:
    assert decode_predictions(b'{"predictions": [{"closest_cluster": 2}, {"closest_cluster": 0}]}',
                              "application/json", field="closest_cluster") == [2.0, 0.0]
    assert decode_predictions(b'{"predictions": [{"score": 0.9, "predicted_label": 1}]}', "application/json") == [0.9]
    assert decode_predictions(b"[0.2, 0.8]", "application/json") == [1.0]  # probabilities -> the most probable class
    assert decode_predictions(b"[0.7]", "application/json") == [0.7]
    assert decode_predictions(b"3.5", "application/json") == [3.5]
    assert decode_predictions(b"", "application/json") == []


def test_jsonlines_one_record_a_line() -> None:
    body = b'{"closest_cluster": 1.0, "distance_to_cluster": 2.5}\n\n{"closest_cluster": 4.0}\n'
    assert decode_predictions(body, "application/jsonlines", field="closest_cluster") == [1.0, 4.0]


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"<html>", "text/csv", "line 1: not a number: '<html>' in '<html>'"),
        (b"0.1\n0.2,nan\n", "text/csv", "line 2: the prediction is nan in '0.2,nan'"),
        (b"0.1,inf", "text/csv", "line 1: the prediction is inf"),
        (b'{"predictions": [0.1]}', "text/csv", "line 1: not a number"),  # a CSV answer must be CSV
        (b"<html>", "application/json", "not JSON (Expecting value): '<html>'"),
        (b'{"label": 1}', "application/json", "prediction field None not in ['label']"),
        (b'{"predictions": [{"score": 1}]}', "application/json", "prediction field 'label' not in ['score']"),
        (b"[]", "application/json", "empty prediction list"),
        (b"[true]", "application/json", "not a number: True"),
        (b'{"score": 1}\nnope\n', "application/jsonlines", "line 2: not JSON"),
        (b"\x00", "application/x-recordio-protobuf", "cannot read predictions from a 'application/x-recordio-protobuf'"),
    ],
)
def test_unreadable_answers_say_where_and_what(body: bytes, content_type: str, message: str) -> None:
    field = "label" if b"score" in body and b"predictions" in body else None
    with pytest.raises(ResponseError) as err:
        decode_predictions(body, content_type, field=field)
    assert message in str(err.value)


def test_records_of_a_transform_output_of_any_shape() -> None:
    assert codec.record_value("0.25") == 0.25
    assert codec.record_value('{"closest_cluster": 3.0, "distance_to_cluster": 1.2}', "closest_cluster") == 3.0
    assert codec.record_value('{"predictions": [{"score": 0.9, "predicted_label": 1}]}', "predicted_label") == 1.0
    assert codec.record_value("[0.1, 0.7, 0.2]") == 1.0  # class probabilities -> most probable class
    with pytest.raises(ResponseError, match="prediction field 'label'"):
        codec.record_value('{"score": 1}', "label")
    with pytest.raises(ResponseError, match="expected one prediction per record, got 2"):
        codec.record_value('{"predictions": [1, 2]}')
    assert codec.decode_records('7\n\n{"score": 0.5}\n[0.9, 0.1]\n') == [7.0, 0.5, 0.0]
    with pytest.raises(ResponseError, match=r"record 3: not JSON \(.*\) in '\{oops'"):
        codec.decode_records("1\n2\n{oops\n")


def test_joined_lines() -> None:
    assert codec.decode_joined("151.0,148.2\n\n75.0, 80.5\n") == [("151.0", 148.2), ("75.0", 80.5)]
    with pytest.raises(ResponseError, match="line 2: expected 'first,prediction' in '1.0'"):
        codec.decode_joined("1,2\n1.0\n")
    with pytest.raises(ResponseError, match="line 1: not a number: 'x' in '7,x'"):
        codec.decode_joined("7,x\n")


def test_class_probabilities() -> None:
    assert codec.decode_probabilities(b"[0.1, 0.7, 0.2]") == [0.1, 0.7, 0.2]
    assert codec.decode_probabilities('{"prediction": [0.25, 0.75]}') == [0.25, 0.75]
    assert codec.decode_probabilities(b"[0.3, 0.3]", sum_tolerance=0.5) == [0.3, 0.3]
    for body, message in [
        (b"oops", "response is not JSON"),
        (b'{"predictions": [0.5, 0.5]}', "expected a JSON list of class probabilities, got dict"),
        (b"[]", "empty list"),
        (b'["0.5", "0.5"]', "must be numbers"),
        (b"[1.5, -0.5]", "must lie in [0, 1]"),
        (b"[0.2, 0.2, 0.2]", "sum to 0.6000, not 1"),
    ]:
        with pytest.raises(ResponseError) as err:
            codec.decode_probabilities(body)
        assert message in str(err.value)
