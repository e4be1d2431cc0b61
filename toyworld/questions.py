"""Yes/no questions about a scene, answered from the scene itself (ground truth for understanding).

Kinds follow the rubric dimensions that apply in the toy world: object, attribute, count, spatial, relation.
The phrasings are exactly those the rubric builder (`rewards.rubric`) writes, so what the model learns to
answer is what it is later asked. Negatives are hard where the scene allows: they reuse a colour or a shape
that is in the image (e.g. "is there a red square ?" when there is a red circle and a blue square).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from toyworld.scene import COLORS, RELATIONS, SHAPES, Obj, relations_between

KINDS = ("object", "attribute", "count", "spatial", "relation")
COUNT_WORDS = {2: "two", 3: "three", 4: "four"}
MARGIN = 0.15  # spatial questions keep this distance from the GenEval cutoff


@dataclass(frozen=True)
class Question:
    kind: str
    text: str
    answer: str  # "yes" | "no"
    hard: bool  # a negative that shares a colour or a shape with an object in the image


def _match(objs, shape, color=None):
    return [o for o in objs if o.shape == shape and (color is None or o.color == color)]


def _object(objs, rng, want):
    present = {o.shape for o in objs}
    pool = sorted(present) if want == "yes" else [s for s in SHAPES if s not in present]
    if not pool:
        return None
    return f"is there a {rng.choice(pool)} ?", False


def _attribute(objs, rng, want, hard_p=1.0):
    shapes, colors = sorted({o.shape for o in objs}), sorted({o.color for o in objs})
    if rng.random() < 0.5:  # "is there a <color> <shape> ?" (binding)
        pairs = [(c, s) for c in COLORS for s in SHAPES if bool(_match(objs, s, c)) == (want == "yes")]
        hard = [(c, s) for c, s in pairs if c in colors and s in shapes]
        easy = [p for p in pairs if p not in hard]
        if want == "no" and hard and (rng.random() < hard_p or not easy):
            pick = rng.choice(hard)
        else:
            pick = rng.choice(easy if want == "no" else pairs) if pairs else None
        return (f"is there a {pick[0]} {pick[1]} ?", pick in hard) if pick else None
    options = []  # "is the <shape> <color> ?" for a shape present once
    for s in shapes:
        if len(_match(objs, s)) == 1:
            true_color = _match(objs, s)[0].color
            options += [(s, c) for c in COLORS if (c == true_color) == (want == "yes")]
    if not options:
        return None
    hard = [(s, c) for s, c in options if c in colors]
    s, c = rng.choice(hard) if want == "no" and hard and rng.random() < hard_p else rng.choice(options)
    return f"is the {s} {c} ?", want == "no"


def _count(objs, rng, want):
    s = rng.choice(sorted({o.shape for o in objs}) if rng.random() < 0.8 else SHAPES)
    color = rng.choice(sorted({o.color for o in _match(objs, s)})) if rng.random() < 0.3 and _match(objs, s) else None
    true_n = len(_match(objs, s, color))
    ns = [n for n in COUNT_WORDS if (n == true_n) == (want == "yes")]
    if not ns:
        return None
    n = min(ns, key=lambda k: abs(k - true_n) + rng.random())  # off-by-one negatives first
    words = f"{color} {s}s" if color else f"{s}s"
    return f"are there {COUNT_WORDS[n]} {words} ?", want == "no" and true_n > 0


def referring_expressions(objs, rng) -> list[tuple[str, Obj]]:
    """Descriptions that pick out exactly one object ("circle" or "red circle")."""
    refs = []
    for o in objs:
        forms = []
        if len(_match(objs, o.shape)) == 1:
            forms.append(o.shape)
        if len(_match(objs, o.shape, o.color)) == 1:
            forms.append(f"{o.color} {o.shape}")
        if forms:
            refs.append((rng.choice(forms), o))
    return refs


def _spatial(objs, rng, want):
    refs = referring_expressions(objs, rng)
    if len(refs) < 2:
        return None
    (ra, a), (rb, b) = rng.sample(refs, 2)
    # Only unambiguous questions: "yes" holds with margin, "no" fails with margin (GenEval's cutoff is 0.5).
    clear_yes, clear_no = relations_between(a.box, b.box, 0.5 + MARGIN), relations_between(a.box, b.box, 0.5 - MARGIN)
    rels = [r for r in RELATIONS if (r in clear_yes if want == "yes" else r not in clear_no)]
    if not rels:
        return None
    return f"is the {ra} {rng.choice(rels)} the {rb} ?", want == "no"


def _relation(objs, rng, want):
    shapes = [s for s in SHAPES if len(_match(objs, s)) == 1]
    if len(shapes) < 2:
        return None
    s1, s2 = rng.sample(shapes, 2)
    same = _match(objs, s1)[0].color == _match(objs, s2)[0].color
    if same != (want == "yes"):
        return None
    return f"are the {s1} and the {s2} the same color ?", want == "no"


def _resolve(objs, words: list[str]):
    """The one object a referring expression ("circle" / "red circle") picks out, or None."""
    found = _match(objs, words[-1], words[0] if len(words) == 2 else None)
    return found[0] if len(found) == 1 else None


def answer(objs: list[Obj], text: str) -> str | None:
    """The answer to any question `ask` can write, on any scene; None where the question does not apply to it
    (its referents are missing or not unique, or a spatial relation falls inside the margin)."""
    w = text.split()
    if w[-1] != "?":
        raise ValueError(f"not a question: {text!r}")
    w = w[:-1]
    yes = None
    if w[:3] == ["is", "there", "a"]:  # object / binding
        yes = bool(_match(objs, w[-1], w[3] if len(w) == 5 else None))
    elif w[:2] == ["are", "there"]:  # count
        n = {v: k for k, v in COUNT_WORDS.items()}[w[2]]
        yes = len(_match(objs, w[-1][:-1], w[3] if len(w) == 5 else None)) == n
    elif w[:2] == ["are", "the"]:  # "are the S1 and the S2 the same color"
        a, b = _resolve(objs, [w[2]]), _resolve(objs, [w[5]])
        yes = None if a is None or b is None else a.color == b.color
    elif w[:2] == ["is", "the"] and len(w) == 4 and w[3] in COLORS:  # "is the S C"
        a = _resolve(objs, [w[2]])
        yes = None if a is None else a.color == w[3]
    elif w[:2] == ["is", "the"]:  # "is the REF REL the REF"
        i = w.index("the", 2)
        rel_start = next(k for k in range(2, i) if " ".join(w[k:i]) in RELATIONS)
        a, b = _resolve(objs, w[2:rel_start]), _resolve(objs, w[i + 1:])
        rel = " ".join(w[rel_start:i])
        if a is None or b is None or a is b:
            return None
        if rel in relations_between(a.box, b.box, 0.5 + MARGIN):
            yes = True
        elif rel not in relations_between(a.box, b.box, 0.5 - MARGIN):
            yes = False
    else:
        raise ValueError(f"not a question the toy world asks: {text!r}")
    return None if yes is None else ("yes" if yes else "no")


_MAKERS = {"object": _object, "attribute": _attribute, "count": _count, "spatial": _spatial, "relation": _relation}


def ask(objs: list[Obj], rng: random.Random, kind: str | None = None, want: str | None = None,
        tries: int = 20, hard_p: float = 1.0, kinds: tuple[str, ...] = KINDS) -> Question | None:
    """One question about the scene with answer `want` (random if None) of `kind` (if None: uniform over `kinds`,
    where a kind listed twice is drawn twice as often). `hard_p` is the chance that a colour-shape negative is
    hard when the scene allows one (training can start with easy negatives, which first-order colour or shape
    features already answer)."""
    want = want or rng.choice(("yes", "no"))
    for _ in range(tries):
        k = kind or rng.choice(kinds)
        made = _attribute(objs, rng, want, hard_p) if k == "attribute" else _MAKERS[k](objs, rng, want)
        if made:
            return Question(k, made[0], want, made[1])
    return None
