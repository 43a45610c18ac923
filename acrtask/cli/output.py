"""Rendering results as az does: json, jsonc, yaml, yamlc, table, tsv, none, after an optional JMESPath query.

Heavy imports (jmespath, yaml, rich) happen only for the format that needs them, so that
`task list -o json` stays close to the cost of reading the tasks.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from acrtask.errors import ValidationError

FORMATS = ("json", "jsonc", "yaml", "yamlc", "table", "tsv", "none")

# A table transformer turns a result into rows of (header, value) pairs, in column order.
TableTransformer = Callable[[Any], list[dict[str, Any]]]


GRAPH_FORMATS = ("mermaid", "dot")  # only `task graph` draws pictures


def check_format(output: str, allowed: tuple[str, ...] = FORMATS) -> str:
    lowered = output.lower()
    if lowered not in allowed:
        raise ValidationError(f"argument --output/-o: invalid choice: '{output}' (choose from "
                              + ", ".join(f"'{f}'" for f in allowed) + ").")
    return lowered


def apply_query(result: Any, query: str | None) -> Any:
    if not query:
        return result
    import jmespath
    from jmespath.exceptions import JMESPathError

    try:
        return jmespath.search(query, result)
    except JMESPathError as exc:
        message = str(exc).replace("\n", " ")
        raise ValidationError(f"Invalid jmespath query supplied for `--query`: {message}",
                              "See https://jmespath.org/tutorial.html for the syntax.") from exc


def render(result: Any, output: str, query: str | None = None,
           transformer: TableTransformer | None = None, is_tty: bool | None = None) -> str:
    """The text to print for `result` (empty for `none`)."""
    output = check_format(output)
    result = apply_query(result, query)
    tty = sys.stdout.isatty() if is_tty is None else is_tty
    if output == "none" or result is None and output != "json":
        return ""
    if output in ("json", "jsonc"):
        text = json.dumps(result, indent=2, sort_keys=True, ensure_ascii=False)
        return _colour(text, "json") if output == "jsonc" and tty else text
    if output in ("yaml", "yamlc"):
        import yaml

        text = yaml.safe_dump(result, default_flow_style=False, sort_keys=True, allow_unicode=True).rstrip("\n")
        return _colour(text, "yaml") if output == "yamlc" and tty else text
    if output == "tsv":
        return _tsv(result)
    # A query reshapes the result, so the command's own columns no longer apply (as in az).
    rows = transformer(result) if transformer and not query else _generic_rows(result)
    return _table(rows)


def _tsv(result: Any) -> str:
    items = result if isinstance(result, list) else [result]
    lines = []
    for item in items:
        if isinstance(item, dict):
            # az's tsv keeps scalar values in key order and skips nested objects.
            values = [_scalar(v) for _, v in sorted(item.items()) if not isinstance(v, dict | list)]
            lines.append("\t".join(values))
        elif isinstance(item, list):
            lines.append("\t".join(_scalar(v) for v in item if not isinstance(v, dict | list)))
        else:
            lines.append(_scalar(item))
    return "\n".join(lines)


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def _generic_rows(result: Any) -> list[dict[str, Any]]:
    items = result if isinstance(result, list) else [result]
    rows = []
    for item in items:
        if isinstance(item, dict):
            rows.append({_header(k): v for k, v in item.items() if not isinstance(v, dict | list)})
        else:
            rows.append({"Result": item})
    return rows


def _header(key: str) -> str:
    # az title-cases camelCase keys for generic tables: creationDate -> CreationDate.
    return key[:1].upper() + key[1:]


def _table(rows: list[dict[str, Any]]) -> str:
    """tabulate's "simple" layout, as az uses: headers, a dashed rule, left-aligned columns."""
    if not rows:
        return ""
    headers: list[str] = []
    for row in rows:
        headers.extend(h for h in row if h not in headers)
    cells = [[_scalar(row.get(h)) for h in headers] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines.extend("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells)
    return "\n".join(lines)


def _colour(text: str, lexer: str) -> str:
    """jsonc/yamlc on a terminal: the text, syntax-highlighted by rich."""
    from rich.console import Console
    from rich.syntax import Syntax

    console = Console(force_terminal=True, width=10_000)
    with console.capture() as capture:
        console.print(Syntax(text, lexer, theme="ansi_dark", background_color="default"))
    return capture.get().rstrip("\n")
