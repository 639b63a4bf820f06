"""Paging of list operations: `maxresults`, `$skiptoken` and the `odata.nextLink` that carries them.

The next link repeats the filter and selection so a client following it (as the SDK does, re-sending only
the link's query) gets the same view, page after page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from reconciler.emulator.batch.errors import BatchServiceError
from reconciler.emulator.batch.odata import parse_filter, parse_select, project

MAX_RESULTS = 1000

T = TypeVar("T")


@dataclass(frozen=True)
class ListQuery:
    """What a list request asked for: `$filter`, `$select`, `maxresults` and the `$skiptoken` to resume at."""

    filter_text: str | None = None
    select: str | None = None
    max_results: int | None = None
    skip: str | None = None

    def resumed_at(self, skip: str) -> dict[str, str]:
        """The next link's query: the same view from `skip` on."""
        query = {"$skiptoken": skip}
        if self.max_results is not None:
            query["maxresults"] = str(self.max_results)
        if self.filter_text:
            query["$filter"] = self.filter_text
        if self.select:
            query["$select"] = self.select
        return query


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


def page(rows: list[dict[str, Any]], query: ListQuery) -> Page:
    """Paging for the short lists (nodes, jobs, tasks): the skip token is an offset into the filtered rows."""
    predicate, fields_, cap = (
        parse_filter(query.filter_text),
        parse_select(query.select),
        limit(query.max_results),
    )
    matching = [r for r in rows if predicate is None or predicate(r)]
    start = int(query.skip) if query.skip and query.skip.isdigit() else 0
    chunk = [project(r, fields_) for r in matching[start : start + cap]]
    more = start + cap < len(matching)
    return Page(chunk, query.resumed_at(str(start + cap)) if more else None)


def keyed_page(
    entries: Iterable[tuple[str, T]],
    query: ListQuery,
    *,
    row: Callable[[T], dict[str, Any]],
    body: Callable[[T], dict[str, Any]],
) -> Page:
    """Paging for the long, key-ordered lists (pools, node counts): `entries` start after `query.skip` and
    the token is the last key served, so 10 000 pools are walked once, not sorted per page. `row` is what
    `$filter` sees, `body` what the page shows (before `$select`); only served entries are rendered."""
    predicate, fields_, cap = (
        parse_filter(query.filter_text),
        parse_select(query.select),
        limit(query.max_results),
    )
    items: list[dict[str, Any]] = []
    last = ""
    for key, entry in entries:
        if predicate is not None and not predicate(row(entry)):
            continue
        if len(items) == cap:
            return Page(items, query.resumed_at(last))
        items.append(project(body(entry), fields_))
        last = key
    return Page(items, None)


def next_link(base: str, path: str, api_version: str, query: dict[str, str]) -> str:
    return f"{base}/{path}?" + urlencode({"api-version": api_version, **query}, quote_via=quote)
