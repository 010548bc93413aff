"""Every numeric key of config/default.config refuses values outside its declared range, at load time, naming the
key: values are drawn from the schema itself, so a key added later is covered too."""
import math
import operator

from hypothesis import given, settings
from hypothesis import strategies as st

from init.config import load_config_text, load_schema
from utils.errors import ConfigError

OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "=": operator.eq}
BOUNDED = [(s, k, spec) for s, keys in load_schema().items() for k, spec in keys.items()
           if spec.range is not None and spec.range.alternatives]


def breaking(kind, op, bound):
    """Values of `kind` that fail the condition `op bound`."""
    whole = kind.startswith("int")
    if whole:
        return {">=": st.integers(max_value=math.ceil(bound) - 1), ">": st.integers(max_value=math.floor(bound)),
                "<=": st.integers(min_value=math.floor(bound) + 1), "<": st.integers(min_value=math.ceil(bound)),
                "=": st.integers().filter(lambda v: v != bound)}[op]
    finite = dict(allow_nan=False, allow_infinity=False)
    return {">=": st.floats(max_value=bound, exclude_max=True, **finite), ">": st.floats(max_value=bound, **finite),
            "<=": st.floats(min_value=bound, exclude_min=True, **finite), "<": st.floats(min_value=bound, **finite),
            "=": st.floats(**finite).filter(lambda v: v != bound)}[op]


def outside(spec):
    """Values that fail at least one condition of every alternative of the key's range."""
    alternatives = spec.range.alternatives
    candidates = st.one_of([breaking(spec.kind, op, bound) for alt in alternatives for op, bound in alt])
    return candidates.filter(lambda v: all(any(not OPS[op](v, bound) for op, bound in alt) for alt in alternatives))


def test_every_numeric_key_declares_a_range():
    numeric = {(s, k) for s, keys in load_schema().items() for k, spec in keys.items()
               if spec.kind in ("int", "float", "intlist", "floatlist")}
    assert numeric and all(load_schema()[s][k].range is not None for s, k in numeric)
    assert len(BOUNDED) == len(numeric) - 3  # three layer indexes are 'any': their model checks them


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(BOUNDED).flatmap(lambda entry: outside(entry[2]).map(lambda value: (entry[0], entry[1], value))))
def test_every_numeric_key_refuses_values_outside_its_range(case):
    section, key, value = case
    text = repr(value)
    try:
        load_config_text("[model]\nmodel_name = kd\n", [f"{section}.{key}={text}"])
    except ConfigError as err:
        assert str(err).startswith(f"--set {section}.{key}: [{section}] {key} = {text}: out of range, expected ")
    else:
        raise AssertionError(f"[{section}] {key} = {text} was accepted")
