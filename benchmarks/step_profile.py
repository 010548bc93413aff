"""Where one training step of the benchmark job spends its time, on one identical 32 x 64 batch ("same
batches" mode): teacher forward, student forward + backward, and gradient clipping + optimizer step with
torch.optim.AdamW's defaults (the plain loop), fused, and fused with the clip inside the kernel (KD-Worker).
Bounds what a loop can gain on identical batches: only the non-matmul part differs between loops, except
that for logits-only KD KD-Worker runs the last layer of teacher and student for [CLS] only
(efficiency/cls_only.py), timed here too.

  python benchmarks/step_profile.py --threads 2"""
import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


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

    from efficiency.cls_only import cls_only_last_layer

    def teacher_forward(hidden=True, cls_only=False):
        with torch.inference_mode(), cls_only_last_layer(teacher, cls_only):
            return teacher(**batch, output_hidden_states=hidden)

    def forward_backward(hidden=True, cls_only=False):
        t_out = teacher_forward(hidden, cls_only)
        with cls_only_last_layer(student, cls_only):
            s_out = student(**batch, output_hidden_states=hidden)
        kd_terms(s_out, t_out, batch["attention_mask"], hidden, pairs).backward()

    out = {"teacher_forward_ms": median_ms(teacher_forward, own.repeats),
           "teacher_and_student_forward_backward_ms": median_ms(forward_backward, own.repeats)}
    for cls_only in (False, True):  # logits-only KD, full last layer / [CLS]-only last layer
        name = "cls_only" if cls_only else "full"
        out[f"kd_teacher_forward_{name}_ms"] = median_ms(lambda: teacher_forward(False, cls_only), own.repeats)
        out[f"kd_forward_backward_{name}_ms"] = median_ms(lambda: forward_backward(False, cls_only), own.repeats)
    from process.train_process import clip_gradients
    params = list(student.parameters())
    for name, kwargs, in_kernel in (("adamw_default", {}, False), ("adamw_fused", {"fused": True}, False),
                                    ("adamw_fused_clip_in_kernel", {"fused": True}, True)):
        optimizer = torch.optim.AdamW(no_decay_groups(student), lr=args.lr, **kwargs)

        def clip_and_step():
            clip_gradients(optimizer, params, 1.0, in_kernel)
            optimizer.step()
        out[f"clip_and_{name}_step_ms"] = median_ms(clip_and_step, own.repeats)
    step = out["teacher_and_student_forward_backward_ms"]
    out["loop_overhead_share_default"] = round(out["clip_and_adamw_default_step_ms"] / (step + out["clip_and_adamw_default_step_ms"]), 3)
    out["ceiling_same_batches_speedup"] = round((step + out["clip_and_adamw_default_step_ms"]) / step, 3)
    for key, value in out.items():
        print(f"{key}: {value}")
    return out


if __name__ == "__main__":
    from pretrained.offline import go_offline
    go_offline()
    main()
