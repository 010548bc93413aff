"""Multi-stage pipelines: a pipeline config lists stage configs; a stage may take an earlier stage's
exported student as its teacher or its initial weights. Finished stages (DONE.json) are skipped on a
re-run; an unfinished one resumes from its latest checkpoint; a stage whose config differs from the one
its directory records is refused before any stage trains (process/run_record.py)."""
import json
import re
from pathlib import Path

from init.config import closest, load_config
from init.ini import read_ini
from process.checkpoint import checkpoints_in
from process.distributed import barrier
from process.run_dir import check_writable, write_json
from process.run_record import check_overwrite, check_run_dir, first_difference, move_aside, recorded
from process.train_entry import train_run
from utils.errors import ConfigError
from utils.logging import get_logger

STAGE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")  # stage names become directories under the run directory
STAGE_KEYS = {"config", "do_test", "teacher_from", "init_from", "set", "twin_of"}
PIPELINE_KEYS = {"stages", "export"}


def parse_pipeline(path):
    """[(name, {key: Entry})] in run order, validated (keys, references to earlier stages)."""
    sections = read_ini(path)
    stages_entry = sections["pipeline"].get("stages")
    extra = set(sections["pipeline"]) - PIPELINE_KEYS
    if extra:
        raise ConfigError(f"{sections['pipeline'][sorted(extra)[0]].where}: [pipeline] {sorted(extra)[0]}: unknown key "
                          "(only 'stages' and 'export')")
    if stages_entry is None:
        raise ConfigError(f"{path}: [pipeline] stages: required key missing")
    names = [n.strip() for n in stages_entry.value.split(",") if n.strip()]
    stages = []
    for i, name in enumerate(names):
        if not STAGE_NAME.match(name):
            raise ConfigError(f"{stages_entry.where}: [pipeline] stages: '{name}' is not a plain name (letters, digits, - and _)")
        section = sections.get(f"stage.{name}")
        if section is None:
            raise ConfigError(f"{stages_entry.where}: [pipeline] stages: no [stage.{name}] section")
        for key, entry in section.items():
            if key not in STAGE_KEYS:
                hint = closest(key, STAGE_KEYS)
                raise ConfigError(f"{entry.where}: [stage.{name}] {key}: unknown key" + (f"; did you mean '{hint}'?" if hint else ""))
            if key in ("teacher_from", "init_from") and entry.value not in names[:i]:
                raise ConfigError(f"{entry.where}: [stage.{name}] {key} = {entry.value}: not an earlier stage ({', '.join(names[:i]) or 'none'})")
            if key == "twin_of" and (entry.value not in names or entry.value == name):
                raise ConfigError(f"{entry.where}: [stage.{name}] twin_of = {entry.value}: not another stage ({', '.join(n for n in names if n != name)})")
        if "config" not in section:
            raise ConfigError(f"{path}: [stage.{name}] config: required key missing")
        stages.append((name, section))
    for section in sections:
        if section.startswith("stage.") and section[6:] not in names:
            raise ConfigError(f"{path}: [{section}] is not listed in [pipeline] stages")
    return stages


def export_stages(path, stages):
    """The stages [pipeline] export names (their students go to ONNX / int8 after the last stage), checked."""
    entry = read_ini(path)["pipeline"].get("export")
    if entry is None:
        return []
    names, known = [n.strip() for n in entry.value.split(",") if n.strip()], [n for n, _ in stages]
    for name in names:
        if name not in known:
            raise ConfigError(f"{entry.where}: [pipeline] export: '{name}' is not a stage ({', '.join(known)})")
    return names


def stage_config(path, name, section, logdir, user_overrides, handoff=True):
    """The stage's Config: its file, the hand-offs from earlier stages (handoff=False: not yet made, so
    not checked), then --set overrides."""
    overrides = []
    for source, key in (("teacher_from", "distill.teacher"), ("init_from", "model.pretrained")):
        if source in section:
            export = Path(logdir) / section[source].value / "student"
            if handoff and not (export / "config.json").is_file():
                raise ConfigError(f"{section[source].where}: [stage.{name}] {source}: {export} has no exported student")
            overrides.append(f"{key}={export}")
    if "set" in section:
        overrides += [item.strip() for item in section["set"].value.split(";") if item.strip()]
    return load_config(Path(path).parent / section["config"].value, overrides + list(user_overrides))


def declared_num_labels(config):
    """Output size a stage's config implies without reading data (None when only the data can tell)."""
    if config.get("model", "num_labels"):
        return config.get("model", "num_labels")
    if config.get("data", "label_list"):
        return len(config.get("data", "label_list"))
    if config.get("data", "train_dataset_type") == "glue_tsv":
        from dataset.glue_tsv import task_spec
        labels = task_spec(config.get("data", "task")).labels
        return 1 if labels is None else len(labels)
    return None


def check_handoff_shapes(stages, configs):
    """A teacher handed to a stage must predict the same label set the stage trains on."""
    for name, section in stages:
        if "teacher_from" in section:
            source = section["teacher_from"].value
            mine, theirs = declared_num_labels(configs[name]), declared_num_labels(configs[source])
            if mine is not None and theirs is not None and mine != theirs:
                raise ConfigError(f"{section['teacher_from'].where}: [stage.{name}] teacher_from = {source}: "
                                  f"that stage outputs {theirs} labels, this one trains on {mine}")


def check_stage_dirs(stages, configs, logdir):
    """Each stage directory an earlier run left must record that stage's config as it is now (a finished or
    started stage is held to the resume rule), before any stage trains."""
    for name, _ in stages:
        stage_dir = Path(logdir) / name
        started = (stage_dir / "DONE.json").is_file() or bool(checkpoints_in(stage_dir))
        check_run_dir(configs[name], configs[name].texts(), str(stage_dir), str(stage_dir) if started else None)


def skip_note(config, stage_dir):
    """What a finished stage leaves unapplied: the first resumable key that differs now, or ''."""
    found = recorded(stage_dir)
    diff = found and first_difference(config.texts(), found[0], config.schema, resumable=True)
    return f"; [{diff[0]}] {diff[1]} = {diff[2]} applies to unfinished stages only (it ran with {diff[3]})" if diff else ""


def run_pipeline(path, info, logdir, user_overrides=(), do_test=False, overwrite=False):
    """Run every stage in order into <logdir>/<stage>; returns {stage: summary}. `overwrite` moves an earlier
    pipeline run aside whole first: its stages hand exports to each other, so one retrained under a finished
    later stage would leave that stage's recorded config equal but its teacher changed."""
    logger = get_logger(info.rank)
    stages = parse_pipeline(path)
    exports = export_stages(path, stages)
    # every stage's own config, and the label sets handed between stages, are checked before the first one trains
    configs = {name: stage_config(path, name, section, logdir, user_overrides, handoff=False) for name, section in stages}
    check_handoff_shapes(stages, configs)
    if info.is_main:
        check_writable(logdir)
    if overwrite:
        check_overwrite(logdir, None)
    else:
        check_stage_dirs(stages, configs, logdir)
    if overwrite and info.is_main:
        move_aside(logdir)
    barrier(info)
    summaries = {}
    for name, section in stages:
        stage_dir = Path(logdir) / name
        done = stage_dir / "DONE.json"
        if done.is_file():
            logger.info("stage %s: finished earlier, skipped (%s)%s", name, done, skip_note(configs[name], stage_dir))
            summaries[name] = json.loads(done.read_text())
            continue
        config = stage_config(path, name, section, logdir, user_overrides)
        found = checkpoints_in(stage_dir)
        resume = str(stage_dir) if found else None
        test = do_test or (section["do_test"].value.lower() in ("true", "yes", "1") if "do_test" in section else False)
        logger.info("stage %s: %s%s", name, config.path, f" (resuming from {found[-1].name})" if resume else "")
        summary = train_run(config, info, str(stage_dir), resume, test)
        if info.is_main:
            write_json(done, summary)
        barrier(info)
        summaries[name] = summary
    if info.is_main:
        print(summary_table(summaries))
        finish(logdir, stages, exports, logger)
    return summaries


def finish(logdir, stages, exports, logger):
    """After the last stage (rank 0): export and check the listed students (once: a finished export is kept), then
    every stage's model card, with its twin where a stage declares twin_of, and the pipeline's summary.png."""
    from deploy.model_card import write_model_card
    from deploy.parity import export_run, parity_table, raise_if_failed
    from deploy.summary_plot import write_summary_png
    parities = {}
    for name in exports:
        stage_dir = Path(logdir) / name
        record = stage_dir / "export" / "parity.json"
        if record.is_file() and record.stat().st_mtime >= (stage_dir / "DONE.json").stat().st_mtime:
            logger.info("stage %s: exported earlier, kept (%s)", name, record)
            parities[name] = json.loads(record.read_text())
        else:
            logger.info("stage %s: exporting to ONNX and int8, then the parity check on its dev split", name)
            parities[name] = export_run(stage_dir)
        print(f"\n{name}: exports against the PyTorch student\n" + parity_table(parities[name]))
    twins = {section["twin_of"].value: name for name, section in stages if "twin_of" in section}
    for name, _ in stages:
        twin = twins.get(name)
        write_model_card(Path(logdir) / name, Path(logdir) / twin if twin else None)
    write_summary_png(logdir, [name for name, _ in stages])
    for name, parity in parities.items():
        raise_if_failed(Path(logdir) / name, parity)


def summary_table(summaries):
    """Markdown table: stage, test metrics, parameters, latency, speed-up."""
    rows = ["| stage | test metrics | params | latency ms (batch 1) |", "|---|---|---|---|"]
    for name, s in summaries.items():
        test = s.get("test") or {}
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in (test.get("metrics") or {}).items() if k not in ("examples", "loss"))
        rows.append(f"| {name} | {metrics or '-'} | {s.get('params'):,} | {test.get('latency_ms', '-')} |")
    return "\n".join(rows)
