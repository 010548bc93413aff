"""Where one training step of the benchmark job spends its time, on one identical 32 x 64 batch ("same
batches" mode): teacher forward, student forward + backward, and gradient clipping + optimizer step with
torch.optim.AdamW's defaults (the plain loop) and fused (KD-Worker). Bounds what a loop can gain on
identical batches: only the non-matmul part differs between loops.

  python benchmarks/step_profile.py --threads 2"""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def median_ms(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 1)


def main(argv=None):
    from benchmarks.common import fixed_batches, kd_terms, load_models, no_decay_groups, read_tsv
    from benchmarks.run import parse, prepare_models
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=8)
    own, rest = p.parse_known_args(argv)
    torch.set_num_threads(own.threads)
    args = parse(rest)
    teacher_dir, student_dir, pairs, _ = prepare_models(args, Path(tempfile.mkdtemp(prefix="kdprof_")))
    teacher, student, tokenizer = load_models({"teacher": teacher_dir, "student": student_dir})
    batch = {k: v for k, v in fixed_batches(tokenizer, read_tsv(args.train, args.batch_size), args.batch_size)[0].items()
             if k != "labels"}
    student.train()

    def teacher_forward():
        with torch.inference_mode():
            return teacher(**batch, output_hidden_states=True)

    def forward_backward():
        t_out = teacher_forward()
        kd_terms(student(**batch, output_hidden_states=True), t_out, batch["attention_mask"], True, pairs).backward()

    out = {"teacher_forward_ms": median_ms(teacher_forward, own.repeats),
           "teacher_and_student_forward_backward_ms": median_ms(forward_backward, own.repeats)}
    for name, kwargs in (("adamw_default", {}), ("adamw_fused", {"fused": True})):
        optimizer = torch.optim.AdamW(no_decay_groups(student), lr=args.lr, **kwargs)

        def clip_and_step():
            torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
            optimizer.step()
        out[f"clip_and_{name}_step_ms"] = median_ms(clip_and_step, own.repeats)
    step = out["teacher_and_student_forward_backward_ms"]
    out["loop_overhead_share_default"] = round(out["clip_and_adamw_default_step_ms"] / (step + out["clip_and_adamw_default_step_ms"]), 3)
    out["ceiling_same_batches_speedup"] = round((step + out["clip_and_adamw_default_step_ms"]) / step, 3)
    for key, value in out.items():
        print(f"{key}: {value}")
    return out


if __name__ == "__main__":
    main()
