"""Export a finished run's student for deployment and check it against the PyTorch student.

  python tools/export.py --run DIR [--split valid] [--max_metric_drop POINTS] [--threads N]

Writes DIR/export/: model.onnx (fp32, dynamic batch and sequence axes), model_int8.onnx (onnxruntime dynamic
quantization), torch_int8.pt (torch dynamic int8 state dict; deploy/onnx_export.py load_torch_int8 loads it) and
parity.json (max abs output difference, dev metrics, batch-1 and batch-32 CPU latency of each), prints the parity
table and rewrites the model card DIR/student/README.md with it. Exit 3 when an export falls more than
[export] max_metric_drop points below the student (files kept, parity.json says failed); exit 2 on bad input.
"""
import argparse

from process.cli import main_guard


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a run directory made by train.py (a stage of a pipeline too)")
    parser.add_argument("--split", default="valid", choices=["valid", "test"], help="labelled split to check on")
    parser.add_argument("--max_metric_drop", type=float, default=None,
                        help="points; default: the run's [export] max_metric_drop")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads of every variant (default: torch's)")
    args = parser.parse_args()
    from deploy.model_card import write_model_card
    from deploy.parity import export_run, parity_table, raise_if_failed
    parity = export_run(args.run, args.split, args.max_metric_drop, args.threads)
    print(parity_table(parity))
    write_model_card(args.run)
    raise_if_failed(args.run, parity)


if __name__ == "__main__":
    main_guard(main)
