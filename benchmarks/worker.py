"""One benchmark job in a fresh process (clean peak RSS, its own thread setting):
python -m benchmarks.worker JOB.json RESULT.json"""
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(job_path, out_path):
    job = json.loads(Path(job_path).read_text())
    import torch
    torch.set_num_threads(job["threads"])
    torch.set_num_interop_threads(1)
    import importlib
    module = importlib.import_module(f"benchmarks.{job['tool']}")
    result = module.run(job)
    result.update(tool=job["tool"], mode=job.get("mode"), loss=job.get("loss"), threads=job["threads"])
    Path(out_path).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    from pretrained.offline import go_offline
    go_offline()
    os.chdir(REPO)
    main(sys.argv[1], sys.argv[2])
