"""Side-by-side benchmark (docs/PERFORMANCE.md): the same distillation job run by this framework, a plain PyTorch loop and
TextBrewer's GeneralDistiller; prints a markdown table and writes JSON.

  python benchmarks/run.py --threads 2 --out runs/benchmark/results.json

Job: teacher = runs/glue/SST-2/teacher (fine-tuned all-MiniLM-L6-v2; the pretrained one with a fresh 2-label
head when it is missing), student = the first 2 layers of all-MiniLM-L6-v2 with a fresh 2-label head (saved
once, loaded by every tool), the first N rows of SST-2 train.tsv, batch 32, AdamW lr 5e-4 linear decay,
clip 1.0. Losses: "kd" (KL at T=1) and "kd_hidden" (+ masked hidden MSE, student layers 1,2 <- teacher 3,6).
Modes: "as_shipped" (each tool as documented) and "same_batches" (identical batches padded to 64, file order).
Each number is the median of `--windows` windows of `--window` optimizer steps after `--warmup` steps.
Every `--probe_every` steps each job measures dev accuracy (probe time off the clock): time-to-target is the
training time, teacher-cache build included, until dev accuracy first reaches `--target_acc`.
Each job runs in its own process (python -m benchmarks.worker) for a clean peak RSS, unless --inprocess."""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from benchmarks.report import markdown, targets

TOOLS = ("framework", "plain", "brewer")
# opt-in framework jobs (--extras): the bf16 and compile keys, and the same-batches kd job with the full last layer
# (what the loop alone gains on identical batches, without efficiency/cls_only.py)
EXTRAS = {"bf16": {"mode": "as_shipped", "loss": "kd_hidden", "cache": True, "precision": "bf16"},
          "compile": {"mode": "as_shipped", "loss": "kd_hidden", "cache": True, "compile": True},
          "full_last_layer": {"mode": "same_batches", "loss": "kd", "cache": False,
                              "set": ["train.cls_only_last_layer=false"]}}


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads in every job (default 2)")
    p.add_argument("--warmup", type=int, default=5, help="optimizer steps before the first timed window")
    p.add_argument("--window", type=int, default=10, help="optimizer steps per timed window")
    p.add_argument("--windows", type=int, default=10, help="timed windows; the reported number is their median")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--teacher", default="runs/glue/SST-2/teacher", help="fine-tuned teacher (HF dir or run dir)")
    p.add_argument("--student_source", default="sentence-transformers/all-MiniLM-L6-v2",
                   help="model whose first --student_layers layers (+ a fresh head) are the student")
    p.add_argument("--student_layers", type=int, default=2)
    p.add_argument("--train", default="../shared/data/glue/SST-2/train.tsv")
    p.add_argument("--dev", default="../shared/data/glue/SST-2/dev.tsv")
    p.add_argument("--tools", default=",".join(TOOLS), help="comma list of framework, plain, brewer")
    p.add_argument("--modes", default="as_shipped,same_batches")
    p.add_argument("--losses", default="kd,kd_hidden")
    p.add_argument("--accuracy_seeds", type=int, default=4,
                   help="repeat the as-shipped kd_hidden job of KD-Worker and the plain loop with this many more seeds "
                        "(the dev-accuracy target compares means)")
    p.add_argument("--no_cache_job", action="store_true", help="skip the framework's cache-off job (the caching ratio)")
    p.add_argument("--no_ddp", action="store_true", help="skip the 2-process gloo DDP job")
    p.add_argument("--no_inference", action="store_true", help="skip the inference latency / throughput job")
    p.add_argument("--extras", default="", help="comma list of extra framework jobs: bf16, compile (as_shipped, kd_hidden), "
                   "full_last_layer (same_batches, kd, [train] cls_only_last_layer = false)")
    p.add_argument("--probe_every", type=int, default=None,
                   help="measure dev accuracy every N steps (default: --window; 0 = off); probe time is off the clock")
    p.add_argument("--target_acc", type=float, default=75.0,
                   help="dev accuracy (%%) whose first crossing gives each job's time-to-target")
    p.add_argument("--inference_batches", type=int, default=20)
    p.add_argument("--inprocess", action="store_true", help="run jobs in this process (tests; peak RSS then not per job)")
    p.add_argument("--out", default="runs/benchmark/results.json", help="JSON output path")
    return p.parse_args(argv)


def prepare_models(args, work):
    """(teacher dir, student dir, note): the student is cut and saved once so every tool starts from it."""
    import torch
    from model.parts.student import cut_layers
    from pretrained.loading import load_classifier, resolve_model_path
    from utils.errors import ConfigError
    note = None
    try:
        teacher = resolve_model_path(args.teacher, "--teacher")
    except ConfigError:
        note = (f"teacher {args.teacher} not found: using the pretrained {args.student_source} with a fresh "
                "2-label head (untrained: the accuracies are not meaningful)")
        torch.manual_seed(args.seed + 1)
        model = load_classifier(resolve_model_path(args.student_source), "--student_source", num_labels=2)
        teacher = str(work / "teacher")
        model.save_pretrained(teacher)
        from pretrained.loading import load_tokenizer
        load_tokenizer(resolve_model_path(args.student_source)).save_pretrained(teacher)
    torch.manual_seed(args.seed)
    source = load_classifier(resolve_model_path(args.student_source), "--student_source", num_labels=2,
                             ignore_mismatched_sizes=True)
    student = cut_layers(source, list(range(args.student_layers))) if args.student_layers < source.config.num_hidden_layers else source
    from pretrained.loading import load_tokenizer
    path = work / "student"
    student.save_pretrained(path)
    load_tokenizer(resolve_model_path(args.student_source)).save_pretrained(path)
    from transformers import AutoConfig
    from model.parts.layer_map import tinybert_layer_map
    n_t = AutoConfig.from_pretrained(teacher).num_hidden_layers
    pairs = [[m + 1, t + 1] for m, t in enumerate(tinybert_layer_map(n_t, student.config.num_hidden_layers))]
    return teacher, str(path), pairs, note


def run_job(job, args, work):
    """Run one job (a fresh process unless --inprocess); returns its result dict (or an error entry)."""
    name = f"{job['tool']}-{job.get('mode', '')}-{job.get('loss', '')}-{job.get('tag', '')}".strip("-")
    start = time.perf_counter()
    if args.inprocess:
        import importlib
        import torch
        torch.set_num_threads(job["threads"])
        result = importlib.import_module(f"benchmarks.{job['tool']}").run(job)
        result.update(tool=job["tool"], mode=job.get("mode"), loss=job.get("loss"), threads=job["threads"])
    else:
        job_path, out_path = work / f"{name}.job.json", work / f"{name}.result.json"
        job_path.write_text(json.dumps(job))
        env = dict(os.environ, OMP_NUM_THREADS=str(job["threads"]), MKL_NUM_THREADS=str(job["threads"]))
        proc = subprocess.run([sys.executable, "-m", "benchmarks.worker", str(job_path), str(out_path)],
                              cwd=REPO, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            result = {"tool": job["tool"], "mode": job.get("mode"), "loss": job.get("loss"),
                      "error": proc.stderr.strip().splitlines()[-1][:300] if proc.stderr.strip() else f"exit {proc.returncode}"}
        else:
            result = json.loads(out_path.read_text())
    result["tag"], result["job_s"] = job.get("tag"), round(time.perf_counter() - start, 1)
    print(f"  {name}: {result.get('examples_per_s', result.get('error', 'done'))} ({result['job_s']} s)", flush=True)
    return result


def main(argv=None):
    args = parse(argv)
    os.chdir(REPO)
    started = time.perf_counter()
    out = {"settings": vars(args), "notes": [], "results": [], "started": time.strftime("%Y-%m-%d %H:%M:%S"),
           "cpus": os.cpu_count(), "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    for name, path in (("--train", args.train), ("--dev", args.dev)):
        if not Path(path).is_file():
            msg = f"{name} {path} not found: benchmark skipped (it needs SST-2 train/dev TSVs)"
            print(msg)
            out["skipped"] = msg
            write(out, args.out)
            return out
    import torch
    work = Path(tempfile.mkdtemp(prefix="kdbench_"))
    teacher, student, pairs, note = prepare_models(args, work)
    if note:
        print("NOTE: " + note)
        out["notes"].append(note)
    tools = [t for t in args.tools.split(",") if t]
    if "brewer" in tools:
        from benchmarks.brewer import available
        if not available():
            msg = "TextBrewer is not installed (pip install --no-deps textbrewer): its rows are skipped"
            print("NOTE: " + msg)
            out["notes"].append(msg)
            tools.remove("brewer")
    steps = args.warmup + args.window * args.windows
    base = {"teacher": teacher, "student": student, "pairs": pairs, "train": args.train, "dev": args.dev,
            "threads": args.threads, "warmup": args.warmup, "window": args.window, "batch_size": args.batch_size,
            "steps": steps, "examples": steps * args.batch_size, "lr": args.lr, "seed": args.seed,
            "inference_batches": args.inference_batches, "target_acc": args.target_acc,
            "probe_every": args.window if args.probe_every is None else args.probe_every}
    out["job"] = {k: v for k, v in base.items() if k not in ("teacher", "student")}
    out["job"].update(teacher=args.teacher if not note else "pretrained + fresh head", student_source=args.student_source)
    print(f"benchmark: {steps} steps x batch {args.batch_size}, {args.threads} threads, torch {torch.__version__}", flush=True)
    for mode in args.modes.split(","):
        for loss in args.losses.split(","):
            for tool in tools:
                job = dict(base, tool=tool, mode=mode, loss=loss, cache=mode == "as_shipped")
                out["results"].append(run_job(job, args, work))
    if "framework" in tools and "kd" in args.losses and not args.no_cache_job:
        out["results"].append(run_job(dict(base, tool="framework", mode="as_shipped", loss="kd", cache=False, tag="no_cache"),
                                      args, work))
    for offset in range(1, args.accuracy_seeds + 1) if "as_shipped" in args.modes and "kd_hidden" in args.losses else ():
        for tool in [t for t in ("framework", "plain") if t in tools]:
            seed = args.seed + offset  # data order, dropout and the plain loop's shuffle; same initial student
            out["results"].append(run_job(dict(base, tool=tool, mode="as_shipped", loss="kd_hidden", cache=True, seed=seed,
                                               tag=f"seed{seed}"), args, work))
    for extra in [e for e in args.extras.split(",") if e]:
        out["results"].append(run_job(dict(base, tool="framework", tag=extra, **EXTRAS[extra]), args, work))
    if not args.no_inference:
        out["inference"] = run_job(dict(base, tool="inference"), args, work)
    if not args.no_ddp:
        try:
            out["ddp"] = run_job(dict(base, tool="ddp", threads=1), args, work)
        except Exception as err:  # noqa: BLE001 - reported, not fatal
            out["ddp"] = {"error": str(err)[:300]}
    out["targets"] = targets(out)
    out["total_s"] = round(time.perf_counter() - started, 1)
    out["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out["notes"].append(f"{os.cpu_count()} CPUs; 1/5/15-min load average {out['load_average_at_start']} at the start, "
                        f"{out['load_average_at_end']} at the end (this benchmark's own jobs included); total {out['total_s']} s")
    text = markdown(out)
    print(text)
    out["markdown"] = text
    write(out, args.out)
    return out


def write(out, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    from pretrained.offline import go_offline
    go_offline()
    main()
