"""The baseline's cache: ``SHARDS/baseline.json``, beside the shards it was computed from (a
path or a URI, through :mod:`raysearch.storage`).

The key is what decides the result: the shards' settings hash, their input's fingerprint and
the time the manifest was written (shards prepared again with ``--overwrite`` get a new one),
the baseline's own settings and :data:`VERSION`. A file with another key, or one that cannot be
read, is not used (and is replaced by the next computation).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from raysearch.baseline.result import BaselineResult
from raysearch.storage import exists, join, read_text, write_text_atomic

if TYPE_CHECKING:
    from raysearch.baseline.config import BaselineConfig

CACHE_FILE = "baseline.json"
VERSION = 1  # bump when the features or the classifier change for the same settings


def cache_path(shards: str) -> str:
    return join(str(shards), CACHE_FILE)


def cache_key(manifest: dict, config: BaselineConfig) -> dict:
    """What a cached result must have been computed from to be reused."""
    return {
        "version": VERSION,
        "settings_hash": manifest.get("settings_hash"),
        "fingerprint": manifest.get("input", {}).get("fingerprint"),
        "created": manifest.get("created"),
        "baseline": config.to_dict(),
    }


def read_cached(shards: str, key: dict) -> BaselineResult | None:
    """The cached result for ``key``, or None (no file, another key, an unreadable file)."""
    location = cache_path(shards)
    try:
        if not exists(location):
            return None
        payload = json.loads(read_text(location))
        # through JSON, as written: tuples become lists
        if payload.get("key") != json.loads(json.dumps(key)):
            return None
        return BaselineResult.from_dict(payload["result"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def write_cached(shards: str, key: dict, result: BaselineResult) -> str:
    """Write the result beside the shards; returns its location. Raises ``OSError`` where the
    shards cannot be written to."""
    location = cache_path(shards)
    write_text_atomic(location, json.dumps({"key": key, "result": result.to_dict()}, indent=1))
    return location
