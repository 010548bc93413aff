"""experiments/export_table.py: the change and speed-ups are read against the same run's PyTorch student."""
import json

from experiments.export_table import table


def write_parity(run, rows):
    (run / "export").mkdir(parents=True)
    variants = {name: {"metric": metric, "size_mb": size,
                       "latency_ms": {"batch_1": {"median_ms": b1, "iqr_ms": 0.1}, "batch_32": {"median_ms": b32, "iqr_ms": 1.0}}}
                for name, metric, b1, b32, size in rows}
    (run / "export" / "parity.json").write_text(json.dumps({"metric": "accuracy", "variants": variants}))


def test_rows_give_change_in_points_and_speed_up_over_pytorch(tmp_path):
    write_parity(tmp_path / "kd", [("pytorch", 0.84, 5.0, 80.0, 59.6), ("onnx", 0.84, 2.5, 64.0, 59.6),
                                   ("onnx_int8", 0.8429, 2.0, 32.0, 15.1), ("torch_int8", 0.8383, 4.0, 40.0, 49.2)])
    lines = table([("kd", tmp_path / "kd")])
    assert len(lines) == 2 + 4
    assert lines[4] == "| kd | onnx_int8 | accuracy 0.8429 | +0.29 | 2.00 ± 0.10 | 2.50x | 32.0 ± 1.0 | 2.50x | 15.1 |"
    assert lines[5] == "| kd | torch_int8 | accuracy 0.8383 | -0.17 | 4.00 ± 0.10 | 1.25x | 40.0 ± 1.0 | 2.00x | 49.2 |"
