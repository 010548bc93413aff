"""experiments/match_table.py: the text-matching comparison table from results.json files, missing runs shown."""
import json


def test_match_table_reads_results(tmp_path):
    from experiments.match_table import table
    def write(stage, acc, online, latency):
        (tmp_path / "RTE" / stage).mkdir(parents=True)
        (tmp_path / "RTE" / stage / "results.json").write_text(json.dumps(
            {"metrics": {"accuracy": acc}, "flops": {"online": online, "offline": 0 if stage == "teacher" else 2e9},
             "latency_ms": latency, "params": 10, "params_with_heads": 12}))
    write("teacher", 0.70, 4.5e9, 60.0)
    write("siamese", 0.55, 0.9e9, 16.0)
    write("virt", 0.6, 1.1e9, 19.0)
    text = table([str(tmp_path / "RTE")])
    assert "| RTE | cross-encoder teacher (bert_bipartition) | 70.00 | 4.500 | 0.000 | 60.0 | 12 |" in text
    assert "| RTE | late-fusion two-tower, no teacher | missing |" in text
    assert "- RTE: VIRT - plain two-tower = +5.00 accuracy points" in text
    (tmp_path / "QQP").mkdir()
    for stage, acc, f1 in (("siamese", 0.7787, 0.7135), ("virt", 0.7629, 0.7405)):
        (tmp_path / "QQP" / stage).mkdir()
        (tmp_path / "QQP" / stage / "results.json").write_text(json.dumps(
            {"metrics": {"accuracy": acc, "f1": f1}, "flops": {"online": 1e9, "offline": 1e9}, "params": 10}))
    text = table([str(tmp_path / "QQP")])
    assert "- QQP: VIRT - plain two-tower = -1.58 accuracy points (F1 +2.70)" in text


def test_seed_table_groups_roots_by_task(tmp_path):
    from experiments.match_table import seed_table
    for root, virt, twin in (("RTE", 0.58, 0.56), ("RTE_s43", 0.55, 0.57), ("RTE_s44", 0.60, 0.56)):
        for stage, acc in (("virt", virt), ("late_fusion", twin)):
            (tmp_path / root / stage).mkdir(parents=True)
            (tmp_path / root / stage / "results.json").write_text(json.dumps({"metrics": {"accuracy": acc}}))
    (tmp_path / "RTE" / "teacher").mkdir()
    (tmp_path / "RTE" / "teacher" / "results.json").write_text(json.dumps({"metrics": {"accuracy": 0.5776}}))
    for root in ("RTE_s43", "RTE_s44"):  # the seed roots link the one teacher
        (tmp_path / root / "teacher").symlink_to(tmp_path / "RTE" / "teacher")
    text = seed_table([str(tmp_path / r) for r in ("RTE", "RTE_s43", "RTE_s44")])
    assert "| RTE | cross-encoder teacher (bert_bipartition) | 1 | 57.76 | 57.76 |" in text
    # mean 57.67, sample std of (58, 55, 60) = sqrt(((0.33)^2 + (2.67)^2 + (2.33)^2) / 2) = 2.52
    assert "| RTE | VIRT (late fusion + virtual attention KD) | 3 | 57.67 ± 2.52 | 58.00, 55.00, 60.00 |" in text
    assert "| RTE | DC-BERT |" not in text
    assert "- RTE: VIRT - late-fusion twin = +1.33 points (2/3 seeds ahead; per seed +2.00, -2.00, +4.00)" in text
