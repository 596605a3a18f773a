"""`dlp bench core`: detection throughput and accuracy on the synthetic corpus, against presidio.

Measures, on the same seeded corpus: dlp's DetectorSet.scan (the engine every channel uses), the full
Inspector.inspect path (extraction + detection + policy), and presidio's AnalyzerEngine with its
predefined pattern recognizers and a blank spaCy pipeline (no model download; NER therefore finds
nothing, which only flatters presidio's speed). presidio runs on a prefix of the corpus (--presidio-mb)
because it is slow; dlp is timed again on exactly those texts, in rounds alternating with presidio's,
and the ratio compares the two on the same texts. Each engine is warmed up before timing, runs
--repeat rounds, each on a fresh corpus (seed, seed + 1, ...: a cache of values seen in an earlier
round must not flatter a later one) after a full garbage collection, and is reported by its best round by CPU
time of this process: both engines are single-threaded, and on a shared machine CPU time is what
they cost while wall time is what the neighbours left over (wall-clock MB/s and the wall ratio are
reported too). Accuracy: recall and precision per entity against the corpus's ground truth (matches
with score >= --min-score, the shipped policy's threshold), and false positives in messages that carry
hard negatives.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from dlp.bench.corpus import MEASURED_ENTITIES, Sample, generate

MB = 1024 * 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--presidio-mb", type=float, default=1.0,
                        help="corpus prefix presidio analyses, in MB (0 skips presidio; default 1)")
    parser.add_argument("--min-score", type=float, default=0.5, help="score a match needs to count (default 0.5)")
    parser.add_argument("--no-inspector", action="store_true", help="skip the full Inspector.inspect path")
    parser.add_argument("--repeat", type=int, default=3,
                        help="timed rounds per engine, alternating between engines; the best round counts "
                             "(default 3)")


class _Round(NamedTuple):
    wall: float
    cpu: float
    latencies: list[float]
    size: int
    messages: int


def _round(samples: list[Sample], scan: Callable[[str], Any]) -> _Round:
    """One timed pass: wall seconds, CPU seconds of this process, per-message wall latencies."""
    latencies: list[float] = []
    clock = time.perf_counter
    gc.collect()  # start every round with the same heap: a collection inside one round only is noise
    started, cpu_started = clock(), time.process_time()
    for s in samples:
        t0 = clock()
        scan(s.text)
        latencies.append(clock() - t0)
    wall, cpu = clock() - started, time.process_time() - cpu_started
    return _Round(wall, cpu, latencies, sum(len(s.text.encode()) for s in samples), len(samples))


def _summary(rounds: list[_Round]) -> dict[str, Any]:
    """Throughput of the best round by CPU time (the machine may be shared: CPU time of this
    single-threaded process is what the engine costs), with that round's wall time and latencies."""
    best = min(rounds, key=lambda r: r.cpu / r.size)
    latencies = sorted(best.latencies)
    wall, cpu, size = best.wall, best.cpu, best.size
    return {
        "bytes": size,
        "messages": best.messages,
        "rounds": len(rounds),
        "seconds": round(wall, 4),
        "cpu_seconds": round(cpu, 4),
        "mb_per_s": round(size / MB / wall, 3) if wall else 0.0,
        "cpu_mb_per_s": round(size / MB / cpu, 3) if cpu else 0.0,
        "messages_per_s": round(best.messages / wall, 1) if wall else 0.0,
        "p50_ms": round(statistics.median(latencies) * 1000, 4),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 4),
    }


class _Corpora:
    """Round r scans the corpus of seed + r: a fresh corpus every round, so that no cache of values
    seen in an earlier round (phone numbers already parsed, say) flatters the later rounds."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed = size, seed
        self._made: dict[int, list[Sample]] = {}

    def __getitem__(self, r: int) -> list[Sample]:
        if r not in self._made:
            self._made[r] = generate(self.size, seed=self.seed + r)
        return self._made[r]


def _throughput(corpora: _Corpora, scan: Callable[[str], Any], repeat: int = 1) -> dict[str, float]:
    return _summary([_round(corpora[r], scan) for r in range(max(1, repeat))])


def accuracy(samples: Iterable[Sample], found: Iterable[set[tuple[str, str]]]) -> dict[str, Any]:
    """Recall and precision per entity, plus false positives in hard-negative messages."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    hard_fp: Counter[str] = Counter()
    for sample, detected in zip(samples, found, strict=True):
        for entity, _ in sample.truth & detected:
            tp[entity] += 1
        for entity, _ in detected - sample.truth:
            fp[entity] += 1
            if sample.hard_negatives:
                for kind in sample.hard_negatives:
                    hard_fp[kind] += 1
        for entity, _ in sample.truth - detected:
            fn[entity] += 1
    per_entity = {}
    for entity in MEASURED_ENTITIES:
        t, p, n = tp[entity], fp[entity], fn[entity]
        per_entity[entity] = {
            "true_positives": t, "false_positives": p, "false_negatives": n,
            "recall": round(t / (t + n), 4) if t + n else 1.0,
            "precision": round(t / (t + p), 4) if t + p else 1.0,
        }
    t, p, n = sum(tp.values()), sum(fp.values()), sum(fn.values())
    return {
        "entities": per_entity,
        "recall": round(t / (t + n), 4) if t + n else 1.0,
        "precision": round(t / (t + p), 4) if t + p else 1.0,
        "hard_negative_messages": sum(1 for s in samples if s.hard_negatives) if isinstance(samples, list) else None,
        "hard_negative_false_positives": dict(hard_fp),
    }


def _dlp_found(matches, min_score: float) -> set[tuple[str, str]]:
    return {(m.entity, m.value) for m in matches if m.score >= min_score and m.entity in MEASURED_ENTITIES}


def build_presidio():  # -> AnalyzerEngine
    """presidio's AnalyzerEngine with its predefined recognizers over a blank spaCy English pipeline."""
    import logging

    import spacy
    import tldextract.tldextract
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    # presidio's e-mail validator calls tldextract, which would fetch the public suffix list: use the
    # snapshot shipped in the package instead (no network here, and none at run time anyway).
    tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    class BlankSpacyNlpEngine(SpacyNlpEngine):
        def load(self) -> None:
            self.nlp = {"en": spacy.blank("en")}

    engine = BlankSpacyNlpEngine(models=[{"lang_code": "en", "model_name": "blank"}])
    engine.load()
    return AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])


def _presidio_value(entity: str, raw: str) -> str:
    """Normalise presidio's raw span as dlp does, so that accuracy compares like with like."""
    if entity in ("CREDIT_CARD", "US_SSN"):
        return "".join(c for c in raw if c.isdigit())
    if entity == "IBAN_CODE":
        return "".join(raw.split()).upper()
    if entity == "EMAIL_ADDRESS":
        return raw.lower()
    if entity == "PHONE_NUMBER":
        import phonenumbers

        try:
            n = phonenumbers.parse(raw, "US" if not raw.startswith("+") else None)
            return phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164)
        except phonenumbers.NumberParseException:
            return raw
    return raw


def run(args: argparse.Namespace) -> dict[str, Any]:
    from detectors.base import build_detectors, compiled
    from dlp.policy import load_policy

    size_mb = float(getattr(args, "size_mb", 10.0))
    seed = int(getattr(args, "seed", 7))
    min_score = float(getattr(args, "min_score", 0.5))
    presidio_mb = float(getattr(args, "presidio_mb", 1.0))
    repeat = max(1, int(getattr(args, "repeat", 3) or 1))
    corpora = _Corpora(int(size_mb * MB), seed)
    samples = corpora[0]
    policy = load_policy(None)
    started = time.perf_counter()
    detectors = build_detectors(policy.detectors)
    compile_s = time.perf_counter() - started
    for s in samples[:50]:  # warm caches (phone metadata, lru caches) before timing
        detectors.scan(s.text)

    results: dict[str, Any] = {"target": "core", "seed": seed, "repeat": repeat, "corpus": {
        "messages": len(samples), "mb": round(sum(len(s.text.encode()) for s in samples) / MB, 3),
        "with_pii": sum(1 for s in samples if s.truth),
        "with_hard_negatives": sum(1 for s in samples if s.hard_negatives)},
        "detectors": sorted(d.name for d in detectors.detectors), "compile_seconds": round(compile_s, 3),
        "engine": "compiled (mypyc)" if compiled() else "plain Python (not compiled: see setup.py)"}

    found: list[set[tuple[str, str]]] = []
    results["dlp"] = _throughput(corpora, detectors.scan, repeat)
    for s in samples:
        found.append(_dlp_found(detectors.scan(s.text), min_score))
    results["dlp"]["accuracy"] = accuracy(samples, found)

    if not getattr(args, "no_inspector", False):
        from dlp.inspect import Inspector
        from dlp.model import Channel, ContentKind, Message

        inspector = Inspector(policy, b"\x00" * 32, detectors=detectors)
        results["inspector"] = _throughput(
            corpora, lambda text: inspector.inspect(Message(Channel.SCAN, text.encode(), ContentKind.FILE)), repeat)

    results["ratio"] = None
    if presidio_mb > 0:
        results.update(_versus_presidio(corpora, detectors, presidio_mb, min_score, repeat))
    return results


def _versus_presidio(corpora: _Corpora, detectors: Any, presidio_mb: float, min_score: float,
                     repeat: int) -> dict[str, Any]:
    """presidio and dlp on the same texts (a prefix of each round's corpus), in alternating rounds so
    that both see the same machine; the ratio compares the best round of each by CPU time."""
    analyzer = build_presidio()

    def prefix(samples: list[Sample]) -> list[Sample]:
        subset: list[Sample] = []
        budget = presidio_mb * MB
        for s in samples:
            if budget <= 0:
                break
            subset.append(s)
            budget -= len(s.text.encode())
        return subset

    subset = prefix(corpora[0])
    for s in subset[:50]:  # warm-up, as for dlp: excluded from timing
        analyzer.analyze(s.text, language="en")

    def analyze(text: str) -> list[Any]:
        return analyzer.analyze(text, language="en")

    presidio_rounds, dlp_rounds = [], []
    for r in range(repeat):
        texts = prefix(corpora[r])
        presidio_rounds.append(_round(texts, analyze))
        dlp_rounds.append(_round(texts, detectors.scan))
    out: dict[str, Any] = {"presidio": _summary(presidio_rounds), "dlp_same_texts": _summary(dlp_rounds)}
    presidio_found = []
    for s in subset:
        hits = analyze(s.text)
        presidio_found.append({(r.entity_type, _presidio_value(r.entity_type, s.text[r.start:r.end]))
                               for r in hits if r.score >= min_score and r.entity_type in MEASURED_ENTITIES})
    out["presidio"]["accuracy"] = accuracy(subset, presidio_found)
    dlp_cpu, presidio_cpu = out["dlp_same_texts"]["cpu_mb_per_s"], out["presidio"]["cpu_mb_per_s"]
    dlp_wall, presidio_wall = out["dlp_same_texts"]["mb_per_s"], out["presidio"]["mb_per_s"]
    out["ratio"] = round(dlp_cpu / presidio_cpu, 1) if presidio_cpu else None
    out["ratio_wall"] = round(dlp_wall / presidio_wall, 1) if presidio_wall else None
    return out


def format_text(result: dict[str, Any]) -> str:
    corpus = result["corpus"]
    lines = [f"corpus: {corpus['messages']} messages, {corpus['mb']} MB, {corpus['with_pii']} with sensitive data, "
             f"{corpus['with_hard_negatives']} with hard negatives (seed {result['seed']}); "
             f"best of {result.get('repeat', 1)} rounds; detection engine {result.get('engine', '?')}",
             "",
             f"{'engine':<30}{'CPU MB/s':>10}{'MB/s':>9}{'msgs/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'MB':>7}"]
    for key, label in (("dlp", "dlp DetectorSet.scan"), ("inspector", "dlp Inspector.inspect"),
                       ("dlp_same_texts", "dlp scan, presidio's texts"), ("presidio", "presidio analyze()")):
        if key in result:
            r = result[key]
            lines.append(f"{label:<30}{r.get('cpu_mb_per_s', 0.0):>10.2f}{r['mb_per_s']:>9.2f}"
                         f"{r['messages_per_s']:>10.0f}{r['p50_ms']:>9.3f}{r['p99_ms']:>9.3f}{r['bytes'] / MB:>7.2f}")
    if result.get("ratio") is not None:
        lines.append(f"\ndlp / presidio throughput ratio, same texts: {result['ratio']}x by CPU time "
                     f"({result.get('ratio_wall')}x by wall time)")
    for key in ("dlp", "presidio"):
        if key not in result:
            continue
        acc = result[key]["accuracy"]
        lines += ["", f"{key} accuracy (recall {acc['recall']}, precision {acc['precision']})",
                  f"  {'entity':<16}{'recall':>8}{'precision':>11}{'TP':>7}{'FP':>6}{'FN':>6}"]
        for entity, e in acc["entities"].items():
            lines.append(f"  {entity:<16}{e['recall']:>8.4f}{e['precision']:>11.4f}{e['true_positives']:>7}"
                         f"{e['false_positives']:>6}{e['false_negatives']:>6}")
        hard = acc["hard_negative_false_positives"]
        lines.append("  false positives in hard-negative messages: "
                     + (", ".join(f"{k} {v}" for k, v in sorted(hard.items())) if hard else "none"))
    return "\n".join(lines)
