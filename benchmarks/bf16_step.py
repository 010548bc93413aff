"""Is bf16 autocast worth it on this CPU? Times one forward+backward of a model (all-MiniLM-L6-v2 unless --model
names another, e.g. all-mpnet-base-v2) on a 64 x 20-token batch in fp32 and under bf16 autocast, alternating, so a
user can check before setting `[train] precision = bf16`. With avx512_bf16/AMX oneDNN runs bf16 natively and it pays;
without (AVX2 only) autocast emulates it.

    python benchmarks/bf16_step.py --threads 1 --repeats 2 [--model all-mpnet-base-v2]
"""
import argparse
import time

import torch


def step_seconds(model, ids, bf16):
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model(input_ids=ids).last_hidden_state.float().pow(2).mean()
    loss.backward()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2",
                        help="a model name [model] pretrained accepts (installed, no download)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from pretrained.loading import resolve_model_path
    from transformers import AutoModel
    model = AutoModel.from_pretrained(resolve_model_path(args.model))
    ids = torch.randint(1000, 20000, (64, 20), generator=torch.Generator().manual_seed(0))
    from process.init_process import cpu_has_native_bf16
    print(f"cpu capability {torch.backends.cpu.get_cpu_capability()}, native bf16: {cpu_has_native_bf16()}")
    for _ in range(args.repeats):
        fp32, bf16 = step_seconds(model, ids, False), step_seconds(model, ids, True)
        print(f"fp32 {fp32:.2f} s  bf16 {bf16:.2f} s  bf16/fp32 {bf16 / fp32:.1f}x", flush=True)


if __name__ == "__main__":
    from pretrained.offline import go_offline
    go_offline()
    main()
