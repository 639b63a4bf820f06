"""Paging of list operations: `maxresults`, `$skiptoken` and the `odata.nextLink` that carries them.

The next link repeats the filter and selection so a client following it (as the SDK does, re-sending only
the link's query) gets the same view, page after page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from reconciler.emulator.batch.errors import BatchServiceError
from reconciler.emulator.batch.odata import Predicate, project

MAX_RESULTS = 1000


@dataclass
class Page:
    """One page of a list: the items and, when more remain, the `odata.nextLink` query."""

    items: list[dict[str, Any]]
    next_query: dict[str, str] | None


def limit(max_results: int | None) -> int:
    if max_results is None:
        return MAX_RESULTS
    if not 1 <= max_results <= MAX_RESULTS:
        raise BatchServiceError(
            400,
            "OutOfRangeQueryParameterValue",
            "A query parameter in the request URL is out of range.",
            {"QueryParameterName": "maxresults", "QueryParameterValue": str(max_results)},
        )
    return max_results


def next_query(
    last: str | None, filter_text: str | None, select: str | None, max_results: int | None
) -> dict[str, str]:
    query = {"$skiptoken": last or ""}
    if max_results is not None:
        query["maxresults"] = str(max_results)
    if filter_text:
        query["$filter"] = filter_text
    if select:
        query["$select"] = select
    return query


def page(
    rows: list[dict[str, Any]],
    predicate: Predicate | None,
    fields_: list[str] | None,
    max_results: int | None,
    skip: str | None,
    filter_text: str | None,
    select: str | None,
) -> Page:
    """Paging for the short lists (nodes, jobs, tasks): the skip token is an offset into the filtered rows."""
    cap = limit(max_results)
    matching = [r for r in rows if predicate is None or predicate(r)]
    start = int(skip) if skip and skip.isdigit() else 0
    chunk = [project(r, fields_) for r in matching[start : start + cap]]
    more = start + cap < len(matching)
    return Page(chunk, next_query(str(start + cap), filter_text, select, max_results) if more else None)


def next_link(base: str, path: str, api_version: str, query: dict[str, str]) -> str:
    return f"{base}/{path}?" + urlencode({"api-version": api_version, **query}, quote_via=quote)
