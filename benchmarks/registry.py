"""The benchmarks by name (data.benchmark): where their prompt files are, how they read, who evaluates them.

Files live in benchmarks/data (a vendored copy of the published prompt sets; licenses and provenance there).
T2I-CompBench's splits are its dataset files by stem (color_val, spatial_train, complex_val_action, ...), each
record's category the stem's leading name; `new_objects.txt` is a word list, not prompts, and is not a split.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from benchmarks import formats
from benchmarks.base import DATA, Benchmark, BenchmarkError

GENEVAL_TAGS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
GENEVAL_COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
GENEVAL_PP_TAGS = ("color_attr", "color_count_attr", "color_spatial_attr", "spatial_count_attr",
                   "size_spatial_attr", "multi_object_count_attr", "counting")
T2I_CATEGORIES = ("color", "shape", "texture", "spatial", "non_spatial", "complex", "3d_spatial", "numeracy")
T2I_NEEDS = {"color": ("vqa",), "shape": ("vqa",), "texture": ("vqa",), "spatial": ("detector",),
             "non_spatial": ("clip",), "numeracy": ("detector",), "complex": ("vqa", "detector", "clip")}


def coco_classes() -> tuple[str, ...]:
    """GenEval's 80 COCO names, in its object_names.txt order (a detector's label ids index this list)."""
    return tuple(line.strip() for line in (DATA / "geneval/object_names.txt").read_text().splitlines() if line.strip())


def geneval_vocabulary(clause: dict) -> str:
    if clause["class"] not in coco_classes():
        return f"clause {clause} names {clause['class']!r}, not one of GenEval's 80 COCO classes"
    if clause.get("color", GENEVAL_COLORS[0]) not in GENEVAL_COLORS:
        return f"clause {clause} names colour {clause['color']!r}; GenEval's: {', '.join(GENEVAL_COLORS)}"
    return ""


def t2i_category(stem: str) -> str:
    """color_val -> color, 3d_spatial_train -> 3d_spatial, non_spatial -> non_spatial, complex_val_action -> complex."""
    for name in sorted(T2I_CATEGORIES, key=len, reverse=True):
        if stem == name or stem.startswith(name + "_"):
            return name
    raise BenchmarkError(f"T2I-CompBench file {stem!r}: its name starts with no category "
                         f"({', '.join(T2I_CATEGORIES)}); name it <category>[_...].txt")


def read_t2i(path: Path) -> list[dict]:
    return formats.read_text(Path(path), t2i_category(Path(path).stem))


def t2i_needs(records: list[dict]) -> tuple[str, ...]:
    """The eval.* models the records' categories need; 3d_spatial (detector + monocular depth) is not built."""
    if any(r["tag"] == "3d_spatial" for r in records):
        raise BenchmarkError("T2I-CompBench's 3d_spatial needs a monocular depth model, which this evaluator does "
                             "not have: evaluate another category (or set eval.every=0 eval.final=false)")
    return tuple(dict.fromkeys(k for r in records for k in T2I_NEEDS[r["tag"]]))


def _lazy(module: str, cls: str):
    """An evaluator factory importing its models' code only when built (transformers loads slowly)."""
    def build(eval_cfg):
        import importlib
        return getattr(importlib.import_module(module), cls)(eval_cfg)
    return build


def _toy() -> Benchmark:
    from benchmarks import toyworld
    from toyworld.prompts import SPLITS, TAGS, load_split
    return Benchmark("toyworld", {s: partial(load_split, s) for s in SPLITS}, "test", toyworld.read, TAGS,
                     lambda eval_cfg: toyworld.ToyOracle(), rubric_style="toy", heldout_split="heldout",
                     results_format="geneval", loads_models=False)


def _geneval() -> Benchmark:
    root = DATA / "geneval"
    return Benchmark("geneval", {"all": root / "evaluation_metadata.jsonl",
                                 "long": root / "bagel_long/evaluation_metadata_long.jsonl"},
                     "all", partial(formats.read_geneval, tags=GENEVAL_TAGS, vocabulary=geneval_vocabulary),
                     GENEVAL_TAGS, _lazy("benchmarks.geneval", "GenEvalEvaluator"),
                     lambda records: ("detector", "clip"), results_format="geneval")


def _t2i() -> Benchmark:
    files = sorted((DATA / "t2i_compbench/dataset").glob("*.txt"))
    splits = {f.stem: f for f in files if f.stem != "new_objects"}
    return Benchmark("t2i_compbench", splits, "color_val", read_t2i, T2I_CATEGORIES,
                     _lazy("benchmarks.t2i_compbench", "T2ICompBenchEvaluator"),
                     t2i_needs,
                     results_format="t2i_compbench")


def _geneval_pp() -> Benchmark:
    return Benchmark("geneval_plus_plus", {"all": DATA / "geneval_plus_plus/Geneval++.jsonl"}, "all",
                     partial(formats.read_geneval, tags=GENEVAL_PP_TAGS, vocabulary=geneval_vocabulary),
                     GENEVAL_PP_TAGS, _lazy("benchmarks.vlm_judged", "GenEvalPlusPlusEvaluator"),
                     lambda records: ("vlm",))


def _dpg() -> Benchmark:
    return Benchmark("dpg_bench", {"all": DATA / "dpg_bench/prompts.jsonl"}, "all", formats.read_dpg, (),
                     _lazy("benchmarks.vlm_judged", "DPGBenchEvaluator"), lambda records: ("vlm", "dpg_questions"))


def _prompts() -> Benchmark:
    return Benchmark("prompts", {}, "", partial(formats.read_text, tag="prompt"),
                     why_no_evaluator="a plain prompt list carries nothing to check images against")


BENCHMARKS = {"toyworld": _toy, "geneval": _geneval, "t2i_compbench": _t2i, "geneval_plus_plus": _geneval_pp,
              "dpg_bench": _dpg, "prompts": _prompts}


def get(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise BenchmarkError(f"unknown benchmark {name!r}; valid: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]()


def oracle(name: str, eval_cfg):
    """`(image, record) -> score` by the benchmark's evaluator, built on the first call (reward.judge=oracle)."""
    built = []

    def evaluate(image, record: dict) -> float:
        if not built:
            built.append(get(name).evaluator(eval_cfg))
        return built[0].score([image], [record])[0].score
    return evaluate
