"""Seeded fuzzing of specs: every mutated spec compiles or is a positioned SpecError.

Mutations of the shipped examples and the test cells (inserted tokens and characters,
deletions, repeats, runaway brackets, huge numbers, byte flips in the UTF-8): each must
end in a Model (whose summary, graph and weight names work) or in a SpecError whose
diagnostics have positions and whose message is bounded. Never another exception,
never a long wait. RNNDSL_FUZZ_CASES=100000 runs longer (default 1,500 per seed).
"""

import os
import random
import re
import time
from pathlib import Path

import pytest

import rnndsl
from rnndsl.errors import MAX_SHOWN, SpecError

ROOT = Path(__file__).resolve().parents[2]
CASES = int(os.environ.get("RNNDSL_FUZZ_CASES", "1500"))


def _seeds() -> list[str]:
    from cells import cell_texts

    specs = [p.read_text() for p in sorted((ROOT / "examples").glob("*.rnn"))]
    for value in vars(cell_texts).values():
        if isinstance(value, str) and "cell " in value:
            name = value.split("cell ", 1)[1].split("(", 1)[0]
            specs.append(f"{value}\ninput x: float[?, 3]\noutput x | rnn({name}(4))\n")
    return specs


TOKENS = ["(", ")", "[", "]", "{", "}", "|", ",", "=", ".", ":", ";", "?", "@", "+", "-", "*", "/", "#",
          '"', "'", "\\", "\n", " ", "\t", "\r", "lstm", "gru", "dense", "embed", "input", "output", "train",
          "cell", "seq", "state", "x", "h", "0", "-1", "1e999", "99999999999999999999", "1.5", "true", "none",
          "rnn", "bidirectional", "concat", "add", "repeat(", "batchnorm", "dropout", '"\\x"', '"\\u12"', "\x00",
          "\u00e9", "\ufeff", "\u2028", "initial_state=", "name=", "data=", "npz(", "digits(", "text(", "sine(",
          '"a.npz"', "float[", "int[", "merge_mode=", "activation=", "units=", "exp(", "tanh(", "W", "init(",
          "state(", "inputs(", "1000000000000", "max_len=", "optimizer=adam(", "learning_rate=-1",
          "attention(", "additive_attention(", ".scores", "return_attention_scores=true", 'score_mode="concat"']


def _mutate(rng: random.Random, s: str) -> str:
    for _ in range(rng.choice([1, 1, 1, 2, 3, 6])):
        op = rng.random()
        i = rng.randint(0, len(s))
        if op < 0.35:
            s = s[:i] + rng.choice(TOKENS) + s[i:]
        elif op < 0.6 and s:
            s = s[:i] + s[min(len(s), i + rng.randint(1, 10)):]
        elif op < 0.72 and s:
            j = min(len(s), i + rng.randint(1, 40))
            s = s[:i] + s[i:j] * rng.randint(2, 4) + s[j:]
        elif op < 0.82:
            s = s[:i] + chr(rng.randint(1, 0x3000)) + s[i:]
        elif op < 0.88:
            s = s[:i] + rng.choice("([{") * rng.randint(20, 300) + s[i:]
        else:
            s = re.sub(r"\b\d+\b", lambda m: rng.choice([m.group(), "0", "1000000000000", "7", "-3"]), s,
                       count=rng.randint(1, 3))
    return s


def _flip_bytes(rng: random.Random, s: str) -> bytes:
    data = bytearray(s.encode())
    for _ in range(rng.randint(1, 3)):
        if data:
            data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def _check_outcome(text) -> str:
    try:
        m = rnndsl.compile(text, file="fuzz.rnn")
    except SpecError as e:
        message = str(e)
        assert len(message) < 20_000
        assert message.count(": error: ") <= MAX_SHOWN
        for d in e.diagnostics:
            assert d.pos.file == "fuzz.rnn" and d.pos.line >= 1 and d.pos.column >= 1, (d.pos, d.message)
        return "error"
    m.summary_text()
    m.to_dot()
    m.weight_names()
    return "ok"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mutated_specs_compile_or_fail_with_positions(seed):
    rng = random.Random(seed)
    seeds = _seeds()
    outcomes = {"ok": 0, "error": 0}
    t0 = time.process_time()          # CPU time: busy neighbours must not fail the test
    for k in range(CASES):
        base = rng.choice(seeds)
        text = _flip_bytes(rng, base) if k % 10 == 9 else _mutate(rng, base)
        t = time.process_time()
        try:
            outcomes[_check_outcome(text)] += 1
        except AssertionError:
            raise
        except Exception as e:  # noqa: BLE001 - the point: nothing but SpecError
            pytest.fail(f"case {k} of seed {seed}: {type(e).__name__}: {e}\nspec: {text!r}")
        assert time.process_time() - t < 2.0, f"case {k} of seed {seed} took {time.process_time() - t:.1f} s"
    assert outcomes["ok"] > CASES // 20          # the mutations reach the graph builder, not only the parser
    assert time.process_time() - t0 < 60 + CASES * 0.05
