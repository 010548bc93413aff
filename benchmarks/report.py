"""The benchmark's markdown table and its target checks (docs/PERFORMANCE.md)."""

NAMES = {"framework": "KD-Worker", "plain": "plain loop", "brewer": "TextBrewer"}


def find(out, tool, mode, loss, tag=None):
    for r in out["results"]:
        if r.get("tool") == tool and r.get("mode") == mode and r.get("loss") == loss and r.get("tag") == tag:
            return r
    return None


def mean_accuracy(out, tool, mode):
    """(mean dev accuracy, runs) of the tool's kd_hidden jobs in this mode: the main job and its seed repeats."""
    accs = [r["dev_accuracy"] for r in out["results"] if r.get("tool") == tool and r.get("mode") == mode
            and r.get("loss") == "kd_hidden" and (r.get("tag") is None or str(r.get("tag")).startswith("seed"))
            and r.get("dev_accuracy") is not None]
    return (sum(accs) / len(accs), len(accs)) if accs else None


def ratio(a, b):
    return round(a / b, 2) if a and b else None


def targets(out):
    """[{name, value, target, met, short_by}] for the issue's four targets (missing inputs: value None)."""
    rows = []

    def add(name, value, target, higher=True):
        met = None if value is None else (value >= target if higher else value <= target)
        short = None if value is None or met else round(abs(target - value), 2)
        rows.append({"target": name, "value": value, "goal": f"{'>=' if higher else '<='} {target}", "met": met, "short_by": short})

    for loss in ("kd_hidden", "kd"):
        fw, tb = find(out, "framework", "as_shipped", loss), find(out, "brewer", "as_shipped", loss)
        add(f"as shipped, {loss}: KD-Worker / TextBrewer examples/s", ratio(fw and fw.get("examples_per_s"), tb and tb.get("examples_per_s")), 3.0)
    for loss in ("kd_hidden", "kd"):
        fw, tb = find(out, "framework", "as_shipped", loss), find(out, "brewer", "as_shipped", loss)
        add(f"as shipped, {loss}, end to end (teacher-cache build included): KD-Worker / TextBrewer examples/s",
            ratio(fw and fw.get("end_to_end_examples_per_s"), tb and tb.get("end_to_end_examples_per_s")), 3.0)
    fw, pl = find(out, "framework", "as_shipped", "kd_hidden"), find(out, "plain", "as_shipped", "kd_hidden")
    add("as shipped, kd_hidden: plain loop / KD-Worker time to the target dev accuracy",
        ratio(pl and pl.get("time_to_target_s"), fw and fw.get("time_to_target_s")), 1.0)
    for loss in ("kd_hidden", "kd"):
        fw, pl = find(out, "framework", "same_batches", loss), find(out, "plain", "same_batches", loss)
        add(f"same batches, {loss}: KD-Worker / plain loop examples/s", ratio(fw and fw.get("examples_per_s"), pl and pl.get("examples_per_s")), 1.1)
    cached, uncached = find(out, "framework", "as_shipped", "kd"), find(out, "framework", "as_shipped", "kd", "no_cache")
    add("teacher-logit cache: examples/s with / without (epochs after the first)",
        ratio(cached and cached.get("examples_per_s"), uncached and uncached.get("examples_per_s")), 1.8)
    for mode in ("same_batches", "as_shipped"):
        fw, pl = mean_accuracy(out, "framework", mode), mean_accuracy(out, "plain", mode)
        gap = None if fw is None or pl is None else round(pl[0] - fw[0], 2)
        seeds = f"mean of {fw[1]} seeds" if fw and fw[1] > 1 else "one seed"
        add(f"{mode.replace('_', ' ')}, kd_hidden: plain loop dev acc - KD-Worker dev acc (points, equal steps, {seeds})",
            gap, 0.5, higher=False)
    return rows


def fmt(value, digits=1):
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown(out):
    target = out.get("job", {}).get("target_acc")
    lines = ["| mode | loss | tool | examples/s (median) | windows min-max | end-to-end examples/s | mean padded len | "
             f"peak RSS MB | dev acc % | s to {fmt(target)}% dev | vs plain | vs TextBrewer |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in out["results"]:
        if r.get("tool") not in NAMES:
            continue
        plain = find(out, "plain", r["mode"], r["loss"])
        brewer = find(out, "brewer", r["mode"], r["loss"])
        eps = r.get("examples_per_s")
        win = r.get("windows") or []
        tool = NAMES[r["tool"]] + (f" ({r['tag'].replace('_', ' ')})" if r.get("tag") else "")
        if r.get("error"):
            lines.append(f"| {r['mode']} | {r['loss']} | {tool} | error: {r['error'][:80]} | | | | | | | | |")
            continue
        lines.append(f"| {r['mode'].replace('_', ' ')} | {r['loss']} | {tool} | {fmt(eps)} | "
                     f"{fmt(min(win)) if win else '-'}-{fmt(max(win)) if win else '-'} | {fmt(r.get('end_to_end_examples_per_s'))} | "
                     f"{fmt(r.get('mean_padded_length'))} | {fmt(r.get('peak_rss_mb'), 0)} | {fmt(r.get('dev_accuracy'), 2)} | "
                     f"{fmt(r.get('time_to_target_s')) if r.get('time_to_target_s') is not None else 'not reached'} | "
                     f"{fmt(ratio(eps, plain and plain.get('examples_per_s')), 2)}x | {fmt(ratio(eps, brewer and brewer.get('examples_per_s')), 2)}x |")
    inf = out.get("inference")
    if inf and not inf.get("error"):
        lines += ["", "| model | params | latency batch 1 (ms) | throughput batch 32 (examples/s) |", "|---|---|---|---|"]
        for name in ("teacher", "student"):
            m = inf[name]
            lines.append(f"| {name} | {m['params']:,} | {fmt(m['latency_ms_b1'], 2)} | {fmt(m['examples_per_s_b32'])} |")
        lines.append(f"| student speedup | | {fmt(inf['speedup_b1'], 2)}x | {fmt(inf['speedup_b32'], 2)}x |")
    ddp = out.get("ddp")
    if ddp:
        lines.append("")
        if ddp.get("error"):
            lines.append(f"DDP (2 gloo processes): error: {ddp['error']}")
        else:
            lines.append(f"DDP, kd_hidden as shipped, 1 thread per process: 1 process {fmt(ddp['one_process']['examples_per_s'])} examples/s, "
                         f"2 processes {fmt(ddp['two_processes']['examples_per_s'])} examples/s, scaling efficiency "
                         f"{fmt(ddp['scaling_efficiency'] * 100)}%")
    lines += ["", "| target | value | goal | met | short by |", "|---|---|---|---|---|"]
    for t in out.get("targets", []):
        met = "-" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['target']} | {fmt(t['value'], 2)} | {t['goal']} | {met} | {fmt(t['short_by'], 2)} |")
    for note in out.get("notes", []):
        lines.append(f"\nNote: {note}")
    return "\n".join(lines)
