"""The ``[router.scorer]`` table: a built-in acceptance check, named in the config file.

    scorer = { regex = "^\\\\d{4}-\\\\d{2}-\\\\d{2}$", fullmatch = true }
    scorer = { json_schema = { type = "object", required = ["total"] } }

Without one, quality arrives through ``POST /v1/feedback``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from ..scorers import JSONSchemaScorer, RegexScorer

__all__ = ["build_scorer"]


def build_scorer(table: Mapping[str, Any], where: str) -> Any:
    kinds = [k for k in ("regex", "json_schema") if k in table]
    extra = set(table) - {"regex", "json_schema", "fullmatch"}
    if len(kinds) != 1 or extra or ("fullmatch" in table and "regex" not in table):
        raise ConfigError(f"{where}: router.scorer: expected {{ regex = \"...\" [, fullmatch = true] }} "
                          f"or {{ json_schema = {{ ... }} }}, got keys {sorted(table)}")
    try:
        if kinds[0] == "regex":
            pattern, fullmatch = table["regex"], table.get("fullmatch", False)
            if not isinstance(pattern, str) or not isinstance(fullmatch, bool):
                raise ConfigError("regex must be a string and fullmatch true or false")
            return RegexScorer(pattern, fullmatch=fullmatch)
        schema = table["json_schema"]
        if not isinstance(schema, dict):
            raise ConfigError("json_schema must be a table (a JSON schema)")
        return JSONSchemaScorer(schema)
    except ConfigError as exc:
        raise ConfigError(f"{where}: router.scorer: {exc}") from None
