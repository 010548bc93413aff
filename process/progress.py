"""A progress line for the log when no terminal shows tqdm's bar (nohup, CI, batch schedulers), so a long run's
log says how far it is and when it will end instead of staying silent until the first evaluation."""
import time


def format_duration(seconds):
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class ProgressLine:
    """Remembers where this process started (a resumed run counts only its own steps towards the rate)."""

    def __init__(self, total_steps, start_step, clock=time.monotonic):
        self.total, self.start_step, self.clock = total_steps, start_step, clock
        self.started = clock()

    def text(self, step, epoch, record):
        done = step - self.start_step
        elapsed = self.clock() - self.started
        left = (self.total - step) * elapsed / done if done > 0 else None
        parts = [f"step {step}/{self.total} (epoch {epoch})"]
        if record.get("loss") is not None:
            parts.append(f"loss {record['loss']:.4g}")
        if record.get("examples_per_s") is not None:
            parts.append(f"{record['examples_per_s']:.1f} examples/s")
        parts.append(f"{format_duration(elapsed)} elapsed")
        if left is not None:
            parts.append(f"about {format_duration(left)} left")
        return ", ".join(parts)
