"""What the benchmarks that run the daemon as a process share: its strategies, its metrics page,
its memory, and the sim's control endpoint."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from prometheus_client.parser import text_string_to_metric_families

from arbengine.domain.errors import ConfigError
from arbengine.signals import check_files

MB = 1024 * 1024


def write_strategies(bench: str, source: Path, target: Path, symbols: Sequence[str]) -> list[str]:
    """The strategy files of ``source``, each run on ``symbols``, written to ``target``; their
    names. A file that would not load is a ConfigError naming ``bench`` and the source file."""
    target.mkdir()
    names = []
    for path in sorted(source.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"bench {bench}: --strategies: {path}: {exc}") from None
        if not isinstance(doc, dict):
            raise ConfigError(f"bench {bench}: --strategies: {path}: not a strategy object")
        doc["symbols"] = list(symbols)
        (target / path.name).write_text(json.dumps(doc, indent=2))
        names.append(str(doc.get("name", path.stem)))
    problems = [line.replace(str(target), str(source)) for line in check_files([target])]
    if problems:
        raise ConfigError(f"bench {bench}: --strategies: " + "; ".join(problems))
    return names


def metric_totals(text: str) -> dict[str, float]:
    """Every sample of a Prometheus text page, summed over labels, by sample name
    (``name{outcome="hole"}`` is also kept by itself)."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + float(sample.value)
            for key, value in sample.labels.items():
                labelled = f'{sample.name}{{{key}="{value}"}}'
                totals[labelled] = totals.get(labelled, 0.0) + float(sample.value)
    return totals


def histogram_between(
    before: Mapping[str, float], after: Mapping[str, float], name: str
) -> dict[float, float]:
    """The cumulative bucket counts of histogram ``name`` observed between two
    ``metric_totals`` pages, by upper bound (``inf`` included)."""
    prefix = f'{name}_bucket{{le="'
    buckets = {}
    for key, value in after.items():
        if key.startswith(prefix):
            bound = float(key[len(prefix) : -2])
            buckets[bound] = value - before.get(key, 0.0)
    return dict(sorted(buckets.items()))


def histogram_quantile(buckets: Mapping[float, float], q: float) -> float:
    """The ``q`` quantile of cumulative ``buckets``, interpolated within its bucket as
    Prometheus' ``histogram_quantile`` does (the highest finite bound when it falls in the
    ``+Inf`` bucket); NaN with no observation."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return math.nan
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def rss_mb(pid: int) -> float:
    try:
        return float(psutil.Process(pid).memory_info().rss) / MB
    except psutil.NoSuchProcess:
        return math.nan


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used so far."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.NoSuchProcess:
        return math.nan
    return float(times.user + times.system)


async def get_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as response:
        response.raise_for_status()
        return await response.json()


async def post_json(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> Any:
    async with http.post(url, json=body) as response:
        response.raise_for_status()
        return await response.json()


async def get_metrics(http: aiohttp.ClientSession, api: str) -> dict[str, float]:
    async with http.get(f"{api}/metrics") as response:
        response.raise_for_status()
        return metric_totals(await response.text())
