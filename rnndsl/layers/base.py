"""What every layer declares: its options, its shape rule and its weights.

A layer file (lstm.py, dense.py, ...) subclasses :class:`LayerSpec` and
registers it. The graph builder resolves a call's arguments against
`positional` and `options`, then calls `infer` to type the node's ports and
list its weights. A layer kind only describes: each engine runs it (rnndsl/runtime/cpu,
rnndsl/runtime/cuda, found by the node's kind).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..elementwise import DENSE, RECURRENT, names
from ..errors import Pos, did_you_mean
from ..lang import ast

ACTIVATIONS = names(DENSE)
RECURRENT_ACTIVATIONS = names(RECURRENT)

REGISTRY: dict[str, "LayerSpec"] = {}


def register(spec_cls):
    spec = spec_cls()
    for name in (spec.name, *spec.aliases):
        REGISTRY[name] = spec
    return spec_cls


@dataclass(frozen=True)
class Opt:
    """An option: its kind decides what values it accepts.

    kinds: units (int >= 1), int0 (int >= 0), rate (0 <= float < 1), float, posfloat,
    bool, activation, choice, string, state (a `.state` port), layer (a layer call).
    """

    kind: str
    default: Any = None
    choices: tuple = ()
    required: bool = False
    doc: str = ""


class ArgError(Exception):
    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message, self.hint = message, hint


def coerce(opt_name: str, opt: Opt, value: ast.Value) -> Any:
    """The Python value of `value` for option `opt`, or ArgError saying what was expected."""
    k = opt.kind
    word = value.parts[0] if isinstance(value, ast.Ref) and len(value.parts) == 1 else None
    if k in ("units", "int0"):
        if isinstance(value, ast.Num) and isinstance(value.value, int):
            low = 1 if k == "units" else 0
            if value.value < low:
                raise ArgError(f"{opt_name} must be at least {low}, got {value.value}")
            return value.value
        raise ArgError(f"{opt_name} takes a whole number, got {ast.describe(value)}")
    if k in ("rate", "float", "posfloat"):
        if isinstance(value, ast.Num):
            v = float(value.value)
            if k == "rate" and not 0.0 <= v < 1.0:
                raise ArgError(f"{opt_name} is a fraction in [0, 1), got {value.value}")
            if k == "posfloat" and v <= 0:
                raise ArgError(f"{opt_name} must be positive, got {value.value}")
            return v
        raise ArgError(f"{opt_name} takes a number, got {ast.describe(value)}")
    if k == "bool":
        if isinstance(value, ast.Bool):
            return value.value
        hint = "write true or false (lower case)" if word in ("True", "False") else None
        raise ArgError(f"{opt_name} takes true or false, got {ast.describe(value)}", hint)
    if k in ("activation", "choice"):
        choices = opt.choices or ACTIVATIONS
        text = value.value if isinstance(value, ast.Str) else word
        if text is None and isinstance(value, ast.Ref) is False and not isinstance(value, ast.Str):
            raise ArgError(f"{opt_name} takes one of {', '.join(choices)}, got {ast.describe(value)}")
        if k == "activation" and text in ("none", "None", None):
            text = "linear" if text is not None else None
        if text not in choices:
            hint = did_you_mean(str(text), choices) or f"one of: {', '.join(choices)}"
            raise ArgError(f"{opt_name} does not accept {text!r}", hint)
        return text
    if k == "string":
        if isinstance(value, ast.Str):
            return value.value
        raise ArgError(f"{opt_name} takes a string in double quotes, got {ast.describe(value)}")
    if k == "state":
        if isinstance(value, ast.Ref):
            return value
        if isinstance(value, ast.ListValue) and all(isinstance(v, ast.Ref) for v in value.items):
            return value
        raise ArgError(f"{opt_name} takes a state port such as enc.state, got {ast.describe(value)}")
    if k == "layer":
        if isinstance(value, ast.Call):
            return value
        raise ArgError(f"{opt_name} takes a layer such as lstm(64), got {ast.describe(value)}")
    raise AssertionError(k)  # pragma: no cover


class LayerSpec:
    """Base class of layer kinds. Subclasses set the class attributes and `infer`."""

    name: str = ""
    aliases: tuple[str, ...] = ()
    keras_class: str = ""
    keras_name: str = ""
    positional: tuple[str, ...] = ()
    options: dict[str, Opt] = {}
    flags: dict[str, tuple[str, Any]] = {}
    fan_in: bool = False          # takes its inputs as name arguments (concat, add)
    recurrent: bool = False
    internal: bool = False        # the graph's own node (layers/state.py): not callable, not in summary
    per_step: bool = False        # each output step reads only the same step of its inputs (stepwise)
    summary: str = ""

    # --- arguments -----------------------------------------------------------------
    def resolve(self, call: ast.Call, report: Callable[[Pos, str, str | None], None]):
        """(opts, arg_pos, refs) for a call; each bad argument is reported, not raised."""
        opts: dict[str, Any] = {k: o.default for k, o in self.options.items()}
        arg_pos: dict[str, Pos] = {}
        refs: list[ast.Ref] = []
        slots = list(self.positional)
        for arg in call.args:
            if arg.name is None:
                v = arg.value
                word = v.parts[0] if isinstance(v, ast.Ref) and len(v.parts) == 1 else None
                if word is not None and word in self.flags:
                    key, val = self.flags[word]
                    opts[key] = val
                    arg_pos[key] = arg.pos
                    continue
                if self.fan_in and isinstance(v, ast.Ref):
                    refs.append(v)
                    continue
                if not slots:
                    if word is not None and self.flags:
                        hint = did_you_mean(word, self.flags) or f"flags are {', '.join(self.flags)}"
                        report(arg.pos, f"{self.name} has no flag {word!r}", hint)
                    else:
                        report(arg.pos, f"{self.name} takes at most {len(self.positional)} positional "
                               f"argument{'s' if len(self.positional) != 1 else ''}",
                               f"name the option, e.g. {self.name}({self._example()})")
                    continue
                key = slots.pop(0)
            else:
                key = arg.name
                if key not in self.options:
                    hint = did_you_mean(key, self.options) or f"{self.name} takes: {', '.join(self.options)}"
                    report(arg.pos, f"{self.name} has no option {key!r}", hint)
                    continue
                if key in arg_pos:
                    report(arg.pos, f"option {key!r} is given twice", None)
                    continue
                if key in slots:
                    slots.remove(key)
            try:
                opts[key] = coerce(key, self.options[key], arg.value)
            except ArgError as e:
                report(arg.value.pos, e.message, e.hint)
            arg_pos[key] = arg.value.pos
        for key, opt in self.options.items():
            if opt.required and key not in arg_pos:
                report(call.pos, f"{self.name} needs {key}", f"e.g. {self.name}({self._example()})")
                opts[key] = None
        return opts, arg_pos, refs

    def _example(self) -> str:
        return ", ".join(str(self.options[k].doc or 64) for k in self.positional if self.options[k].required)

    # --- typing ----------------------------------------------------------------------
    def infer(self, node, ins, ctx) -> None:
        """Type node.outputs (and node.state), list node.weights; report problems via ctx."""
        raise NotImplementedError

    def display_name(self, node) -> str:
        return self.keras_class

    def stepwise(self, node, stepped: list[bool]) -> bool:
        """Whether the layer can run one time step at a time (Model.decode): step t of each
        output depends only on step t of its inputs, the inputs whose entry in `stepped` is
        False (those that do not change from step to step, an encoder's output) and a state
        the layer carries from step to step. By default: `per_step`."""
        return self.per_step
