"""Schema-informed EXI grammars (EXI 1.0 section 8.5.4) for one complex type.

Steps as in the spec: proto-grammar from the type (attribute uses, particles, terms), normalisation
(epsilon elimination, merging of duplicate terminals), event-code assignment. Undeclared productions of the
non-strict grammar (8.5.4.4.1) are not listed one by one: every state has them, so each first-level event
code is one wider than the first-level productions alone need (`width`), and a decoder that meets the escape
code knows the stream used a second-level event.

One deviation keeps grammars small: an element particle with a bounded maxOccurs > 1 (for example 1024
schedule entries) becomes a loop plus a counter instead of maxOccurs copies. The states after the last
allowed occurrence are the loop states without the self-loop (`exhausted`), which is what the copies would
give; the generated code switches to them when the counter reaches maxOccurs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xmlschema.validators import XsdAnyElement, XsdElement, XsdGroup

from .model import ComplexType, SchemaModel, qname_key

# category order of event-code assignment (8.5.4.3)
_RANK = {"AT": 0, "ATW": 1, "ATANY": 2, "SE": 3, "SEW": 4, "SEANY": 5, "EE": 6, "CH": 7, "CHU": 7}


@dataclass(frozen=True)
class Terminal:
    kind: str
    name: str = ""  # qname of AT/SE, uri of wildcards
    order: tuple = ()  # schema order of SE/SEW terminals
    counted: int | None = None  # particle id of a counted loop (SE only)

    def ident(self) -> tuple[str, str]:
        return (self.kind, self.name)

    def sort_key(self) -> tuple:
        rank = _RANK[self.kind]
        if self.kind == "AT":
            return (rank, qname_key(self.name))
        if self.kind in ("SE", "SEW"):
            return (rank, self.order)
        return (rank, self.name)


EE = Terminal("EE")


class _State:
    __slots__ = ("prods",)

    def __init__(self, prods=None) -> None:
        self.prods: list[tuple[Terminal | None, _State | None]] = prods or []


def _reachable(start: _State) -> list[_State]:
    seen, out, todo = set(), [], [start]
    while todo:
        s = todo.pop()
        if id(s) in seen:
            continue
        seen.add(id(s))
        out.append(s)
        todo.extend(t for _, t in s.prods if t is not None)
    return out


def _concat(left: _State, right: _State) -> _State:
    for s in _reachable(left):
        s.prods = [(None, right) if term is EE else (term, t) for term, t in s.prods]
    return left


def _ee() -> _State:
    return _State([(EE, None)])


@dataclass
class Counted:
    particle: int
    max_occurs: int


@dataclass
class Grammar:
    """Normalised grammar: state 0 is the start; prods are sorted by event code."""

    prods: list[list[tuple[Terminal, int | None]]]
    exhausted: dict[int, int] = field(default_factory=dict)  # loop state -> state without the self-loop
    counted: dict[int, Counted] = field(default_factory=dict)  # particle id -> limit

    def width(self, state: int) -> int:
        return len(self.prods[state]).bit_length()


class GrammarBuilder:
    def __init__(self, model: SchemaModel, schema) -> None:
        self.model = model
        self.schema = schema

    def build(self, ct: ComplexType) -> Grammar:
        self._order = 0
        self._counted: dict[int, Counted] = {}
        self._may_count = ct.monotone
        xt = ct.xsd
        start = None
        for aname, attr in sorted(xt.attributes.items(), key=lambda kv: qname_key(kv[1].name) if kv[0] else ("~",)):
            if aname is None:
                raise NotImplementedError(f"attribute wildcard in {ct.key}")
            s1 = _ee()
            s0 = _State([(Terminal("AT", attr.name), s1)])
            if attr.use != "required":
                s0.prods.append((EE, None))
            start = s0 if start is None else _concat(start, s0)
        if xt.has_simple_content():
            content = _State([(Terminal("CH"), _ee())])
        elif isinstance(xt.content, XsdGroup):
            content = self._particle(xt.content)
            if ct.mixed:
                for s in _reachable(content):
                    s.prods.append((Terminal("CHU"), s))
        else:
            content = _ee()
        start = content if start is None else _concat(start, content)
        return self._normalise(start)

    # -- proto-grammars ---------------------------------------------------------------------------
    def _term(self, term, counted: int | None) -> _State:
        if isinstance(term, XsdGroup):
            return self._group(term)
        s1 = _ee()
        if isinstance(term, XsdAnyElement):
            order = (self._next_order(),)
            ns = term.namespace
            if "##any" in ns or "##other" in ns:
                return _State([(Terminal("SEANY", "", order), s1)])
            return _State([(Terminal("SEW", u, order), s1) for u in sorted(ns)])
        assert isinstance(term, XsdElement)
        base = self._next_order()
        members = self.model.substitution_set(self.schema, term)
        return _State([(Terminal("SE", m.name, (base, i), counted), s1) for i, m in enumerate(members)])

    def _next_order(self) -> int:
        self._order += 1
        return self._order

    def _group(self, group: XsdGroup) -> _State:
        parts = [self._particle(p) for p in group]
        if not parts:
            return _ee()
        if group.model == "choice":
            return _State([(None, p) for p in parts])
        if group.model != "sequence":
            raise NotImplementedError(f"model group {group.model}")
        start = parts[0]
        for p in parts[1:]:
            start = _concat(start, p)
        return start

    def _particle(self, particle) -> _State:
        lo, hi = particle.min_occurs, particle.max_occurs
        order_before = self._order
        counted = None
        if self._may_count and isinstance(particle, XsdElement) and hi is not None and hi > 1:
            counted = len(self._counted) + 1
            self._counted[counted] = Counted(counted, hi)
            hi = None
        copies = []
        n_copies = lo + 1 if hi is None else hi
        for i in range(n_copies):
            self._order = order_before  # every copy keeps the schema order of the particle
            g = self._term(particle, counted)
            if i >= lo and not any(term is EE for term, _ in g.prods):
                g.prods.append((EE, None))
            copies.append(g)
        if not copies:
            return _ee()
        if hi is None:
            loop = copies[-1]
            for s in _reachable(loop):
                s.prods = [(None, loop) if term is EE else (term, t) for term, t in s.prods]
            if not any(term is EE for term, _ in loop.prods):
                loop.prods.append((EE, None))
        start = copies[0]
        for g in copies[1:]:
            start = _concat(start, g)
        return start

    # -- normalisation ----------------------------------------------------------------------------
    def _normalise(self, start: _State) -> Grammar:
        states = _reachable(start)
        closed: dict[int, list] = {}
        for s in states:
            closed[id(s)] = self._eliminate_epsilon(s)
        for s in states:
            s.prods = closed[id(s)]
        unions: dict[frozenset, _State] = {}
        order: list[_State] = []
        index: dict[int, int] = {}
        todo = [start]
        while todo:
            s = todo.pop(0)
            if id(s) in index:
                continue
            s.prods = self._merge_duplicates(s.prods, unions)
            index[id(s)] = len(order)
            order.append(s)
            todo.extend(t for _, t in s.prods if t is not None)
        prods = [
            sorted(((term, None if t is None else index[id(t)]) for term, t in s.prods), key=lambda p: p[0].sort_key())
            for s in order
        ]
        return self._add_exhausted(Grammar(prods, counted=dict(self._counted)))

    @staticmethod
    def _eliminate_epsilon(state: _State) -> list:
        out, seen, done = [], set(), {id(state)}
        todo = list(state.prods)
        while todo:
            term, t = todo.pop(0)
            if term is None:
                if id(t) not in done:
                    done.add(id(t))
                    todo = list(t.prods) + todo
                continue
            key = (term, id(t) if t is not None else None)
            if key not in seen:
                seen.add(key)
                out.append((term, t))
        return out

    def _merge_duplicates(self, prods, unions) -> list:
        by_term: dict[tuple, list] = {}
        for term, t in prods:
            by_term.setdefault(term.ident(), []).append((term, t))
        out = []
        for group in by_term.values():
            targets = []
            for _, t in group:
                if t is None or t in targets:
                    continue
                targets.append(t)
            if len(targets) <= 1:
                out.append(group[0] if len(targets) == 0 else (group[0][0], targets[0]))
                continue
            key = frozenset(id(t) for t in targets)
            if key not in unions:
                merged = []
                for t in targets:
                    merged.extend(t.prods)
                unions[key] = _State(self._eliminate_epsilon(_State(merged)))
            out.append((group[0][0], unions[key]))
        return out

    @staticmethod
    def _add_exhausted(g: Grammar) -> Grammar:
        """States reached by a counted SE get a twin without that particle's self-loop."""
        for prods in list(g.prods):
            for term, t in prods:
                if term.counted is None or t is None or t in g.exhausted:
                    continue
                twin = [(x, n) for x, n in g.prods[t] if x.counted != term.counted]
                g.exhausted[t] = len(g.prods)
                g.prods.append(twin)
        return g
