"""Decoding: a model's decoder run one time step at a time, its recurrent states carried.

The graph splits in two (Stepper). The stepped part is every layer that depends on the
stepped inputs (a decoder's token input: the decoder's embedding, its recurrent layers, an
attention's query, the output head); the rest (an encoder) does not change from step to
step and runs once (Model.step with an encoder's inputs given whole uses the same split). Each step runs the stepped part over one time step, every recurrent layer
starting from the state its previous step left (RunCtx.carry), so that a sequence of L
tokens costs L one-step calls, not L calls over growing prefixes. Every stepped layer
must work step by step (LayerSpec.stepwise): no bidirectional or go_backwards layer, no
pooling over the steps.

With the output's log-probabilities per step, log p_t = log softmax(z_t / temperature)
(z the logits, or log p for an output that ends in softmax):

    greedy   y_t = argmax log p_t
    sample   y_t ~ p_t (Gumbel-max: argmax(log p_t + g), g ~ Gumbel(0, 1))
    beam     the k best prefixes by sum_t log p_t(y_t), extended by every token and cut back
             to the k best each step; all rows and beams run as one batch of B k rows, each
             step's states reordered by the surviving beams' parents.

A row that has produced `end` is finished: its score no longer changes and it emits `end`
again (a finished beam extends by `end` alone, at no cost). With beams wide enough to keep
every prefix, beam search is exhaustive search. The decode stops at max_len steps, or once
no row can change its best result.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError

METHODS = ("greedy", "sample", "beam")


class Stepper:
    """A graph split for stepping: the layers that depend on the stepped inputs, run one
    step per call with their states carried, and the rest, run once."""

    def __init__(self, executor, stepped_inputs: list[int]):
        self.ex = executor
        g = executor.graph
        stepped = set().union(*(_dependents(g, i) for i in stepped_inputs))
        for node in g.nodes:
            if node.id in stepped and node.kind != "input":
                flags = [r.node in stepped for r in node.inputs]
                if not node.spec.stepwise(node, flags):
                    raise DataError(f"the model runs one step at a time here, but layer {node.name!r} "
                                    f"({node.kind}) at line {node.pos.line} needs the whole sequence (a "
                                    "bidirectional or go_backwards layer, a pooling over the steps, or a "
                                    "sequence that does not step beside one that does)")
        self.stepped = stepped
        self.stepped_inputs = list(stepped_inputs)
        self.static_nodes = [n for n in g.nodes if n.kind != "input" and n.id not in stepped]
        self.stepped_nodes = [n for n in g.nodes if n.kind != "input" and n.id in stepped]
        self.static_inputs = [i for i in g.inputs if i not in stepped]

    def start(self, inputs: list):
        """Run the static part on its inputs (one array per static input, in input order): the
        values the steps read, and a fresh context carrying no state."""
        ctx = self.ex.decode_ctx()
        values: dict = {}
        for nid, x in zip(self.static_inputs, inputs):
            values[(nid, "out")] = self.ex.engine_input(nid, x)
        self.ex.run_nodes(self.static_nodes, values, ctx)
        ctx.carry.clear()           # the static layers never run again: nothing of theirs to carry
        return values, ctx

    def run(self, values: dict, ctx, steps: dict) -> dict:
        """Feed the stepped inputs (node id -> (rows, T, ...) array) through the stepped part, the
        states carried in ctx: every value, the static ones included."""
        mine = dict(values)             # the static values stay; this step's are dropped after it
        for nid, x in steps.items():
            mine[(nid, "out")] = self.ex.engine_input(nid, x, any_steps=True)
        self.ex.run_nodes(self.stepped_nodes, mine, ctx)
        return mine


class StepSession:
    """Model.step over a Stepper: the static inputs' values kept, the stepped part advanced one
    step per call. It starts again (the static part run again, no state carried) when the
    static inputs change."""

    def __init__(self, executor, stepped_inputs: list[int], static: list):
        self.stepper = Stepper(executor, stepped_inputs)
        self.static = [np.array(a, copy=True) for a in static]
        self.values, self.ctx = self.stepper.start(self.static)

    def fits(self, executor, stepped_inputs: list[int], static: list) -> bool:
        return (self.stepper.ex is executor and self.stepper.stepped_inputs == stepped_inputs
                and all(np.shape(a) == b.shape and np.array_equal(a, b) for a, b in zip(static, self.static)))

    def step(self, steps: dict) -> list[np.ndarray]:
        """Every model output after one more step (node id -> (rows, ...) one step of each
        stepped input): a sequence output's last step, a vector as it is."""
        rows = {len(a) for a in self.static} | {np.shape(x)[0] if np.ndim(x) else -1 for x in steps.values()}
        if len(rows) > 1:
            g = self.stepper.ex.graph
            raise DataError("step(): the inputs given whole and the step have different numbers of rows: "
                            + ", ".join(f"{g.nodes[i].name} {len(a)}" for i, a in
                                        zip(self.stepper.static_inputs, self.static))
                            + ", " + ", ".join(f"{g.nodes[i].name} {np.shape(x)[0] if np.ndim(x) else 'none'}"
                                               for i, x in steps.items()))
        mine = self.stepper.run(self.values, self.ctx, {nid: np.asarray(x)[:, None] for nid, x in steps.items()})
        out = []
        for o in self.stepper.ex.graph.outputs:
            a = self.stepper.ex.host_output(mine[(o.ref.node, o.ref.port)])
            out.append(a[:, -1] if a.ndim == 3 else a)
        return out


class Decoder(Stepper):
    """A Stepper for one decoder input (token ids, fed back) and one output (scores per token)."""

    def __init__(self, executor, decoder_input: str | None = None, output: str | None = None):
        ex = executor
        g = ex.graph
        names = [g.nodes[i].name for i in g.inputs]
        outputs = list(g.outputs)
        if output is not None and output not in [o.name for o in outputs]:
            raise DataError(f"decode: no output named {output!r}; the outputs are {[o.name for o in outputs]}")
        if decoder_input is not None and decoder_input not in names:
            raise DataError(f"decode: no input named {decoder_input!r}; the inputs are {names}")
        token_inputs = [i for i in g.inputs if g.nodes[i].out.is_tokens and g.nodes[i].out.seq]
        if decoder_input is not None:
            candidates = [g.inputs[names.index(decoder_input)]]
            if candidates[0] not in token_inputs:
                raise DataError(f"decode: input {decoder_input!r} is not a token sequence (int[...]); "
                                "the decoder is fed the tokens it produced")
        else:
            candidates = token_inputs[::-1]           # an encoder-decoder spec lists the decoder last
        wanted = [o for o in outputs if output is None or o.name == output]
        for dec in candidates:
            reach = _dependents(g, dec)
            out = next((o for o in wanted if o.ref.node in reach), None)
            if out is not None:
                break
        else:
            raise DataError("decode needs a token-sequence input (int[...]) that the output reads step by "
                            "step: " + (f"none of {names} reaches {[o.name for o in wanted]}" if candidates
                                        else "the model has none"))
        t = g.type_of(out.ref)
        if not t.seq or t.is_tokens:
            raise DataError(f"decode: output {out.name!r} is {t}, not a sequence of scores per step; "
                            "the decoder's recurrent layers need return_sequences=true")
        super().__init__(executor, [dec])
        self.input, self.output = dec, out
        self.vocab = t.features
        limit = ex.vocab_limits.get(dec)
        if limit is not None and self.vocab > limit[0]:
            raise DataError(f"decode: output {out.name!r} scores {self.vocab} tokens, but {limit[1]!r} reads "
                            f"only ids 0..{limit[0] - 1}; the tokens it produces are fed back to it")
        producer = g.node(out.ref)
        self.probabilities = producer.kind == "dense" and producer.opts.get("activation") == "softmax"

    def step(self, values: dict, ctx, tokens: np.ndarray, temperature: float) -> np.ndarray:
        """Feed tokens (rows, T) to the stepped part (states carried in ctx): the log-probabilities
        of the next token after the last of them, (rows, vocab), float64."""
        mine = self.run(values, ctx, {self.input: tokens})
        z = self.ex.host_output(mine[(self.output.ref.node, self.output.ref.port)])[:, -1].astype(np.float64)
        if self.probabilities:
            with np.errstate(divide="ignore"):
                z = np.log(z)
        z = z / temperature
        top = z.max(axis=1, keepdims=True)
        top[~np.isfinite(top)] = 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            return z - top - np.log(np.exp(z - top).sum(axis=1, keepdims=True))

    def decode(self, inputs: list, prompt: np.ndarray, max_len: int, method: str = "greedy",
               end: int | None = None, beam_width: int = 4, temperature: float = 1.0, rng=None):
        """(tokens (B, L), scores (B,)): L <= max_len tokens per row after the prompt (B, Tp),
        and the sum of their log-probabilities."""
        if method == "beam":
            return self._beam(inputs, prompt, max_len, end, beam_width, temperature)
        B = prompt.shape[0]
        values, ctx = self.start(inputs)
        lp = self.step(values, ctx, prompt, temperature)
        tokens = []                     # a column per step (max_len bounds the steps, not an array)
        scores = np.zeros(B)
        done = np.zeros(B, bool)
        rows = np.arange(B)
        for t in range(max_len):
            if t > 0:
                lp = self.step(values, ctx, tokens[-1][:, None], temperature)
            pick = lp + rng.gumbel(size=lp.shape) if method == "sample" else lp
            tok = pick.argmax(axis=1)
            if end is not None:
                tok[done] = end
            scores += np.where(done, 0.0, lp[rows, tok])
            tokens.append(tok)
            if end is not None:
                done |= tok == end
                if done.all():
                    break
        return np.stack(tokens, axis=1).astype(np.int64), scores

    def _beam(self, inputs, prompt, max_len, end, k, temperature):
        B, V = prompt.shape[0], self.vocab
        values, ctx = self.start([np.repeat(np.asarray(x), k, axis=0) for x in inputs])
        lp = self.step(values, ctx, np.repeat(prompt, k, axis=0), temperature)
        score = np.full((B, k), -np.inf)
        score[:, 0] = 0.0                     # the k beams start as one: only the first extends
        parents, tokens = [], []              # per step (B, k): each beam's parent and last token
        ended = np.zeros((B, k), bool)
        base = (np.arange(B) * k)[:, None]
        for t in range(max_len):
            if t > 0:
                lp = self.step(values, ctx, tokens[-1].reshape(B * k, 1), temperature)
            lp = lp.reshape(B, k, V)
            if end is not None and ended.any():
                lp[ended] = -np.inf
                lp[ended, end] = 0.0          # a finished beam stays as it is
            cand = (score[:, :, None] + lp).reshape(B, k * V)
            best = np.argsort(-cand, axis=1, kind="stable")[:, :k]
            parent, tok = best // V, best % V
            score = np.take_along_axis(cand, best, axis=1)
            parents.append(parent)
            tokens.append(tok)
            order = (base + parent).reshape(-1)
            ctx.carry = {n: self.ex.take_rows(s, order) for n, s in ctx.carry.items()}
            if end is not None:
                ended = np.take_along_axis(ended, parent, axis=1) | (tok == end)
                # log-probabilities are <= 0: a live beam only loses score, so a row whose best
                # finished beam scores at least as well as every live one is settled
                live = np.where(ended, -np.inf, score).max(axis=1)
                settled = np.where(ended, score, -np.inf).max(axis=1)
                if np.all(settled >= live):
                    break
        rows = np.arange(B)
        top = score.argmax(axis=1)
        best_score = score[rows, top]
        out = np.empty((B, len(tokens)), np.int64)
        for t in range(len(tokens) - 1, -1, -1):     # the best beam's tokens, back through its parents
            out[:, t] = tokens[t][rows, top]
            top = parents[t][rows, top]
        return out, best_score


def _dependents(g, source: int) -> set[int]:
    """The nodes that depend on node `source`, through their inputs or an initial_state edge."""
    out = {source}
    for n in g.nodes:
        if any(i in out for i in n.input_nodes()):
            out.add(n.id)
    return out
