"""Every Batch data-plane response a test receives must match Microsoft's OpenAPI document.

`OpenApiValidationPolicy` sits in a real SDK client's pipeline (`per_retry_policies=[policy]`, so retried
429/503 answers are checked too). For each response it finds the operation by method and path template,
validates the JSON body against that status code's schema (errors against `default`, `BatchError`) and the
documented headers' formats, and raises `AssertionError` naming the operation, the JSON pointer and the
problem. The SDK's own deserializer forgives unknown fields, wrong enum values and malformed timestamps;
this policy does not, which is the point.

Strictness beyond the document's letter, each because the SDK would otherwise hide the mistake:
- an object schema with `properties` accepts no other property (except OData annotations, `odata.*`);
- enums are closed, `x-ms-enum.modelAsString` notwithstanding;
- `format` is checked: RFC 3339 `date-time`, ISO 8601 `duration`, `int32`/`int64` ranges, `uri`, `uuid`;
- a success status the operation does not declare is an error, except the one HTTP itself defines for
  every GET: 304 Not Modified, with no body, answering a GET that carried `If-None-Match` or
  `If-Modified-Since` (the document lists only 200 and `default` for conditional GETs).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import SansIOHTTPPolicy
from jsonschema import Draft4Validator, FormatChecker
from jsonschema.exceptions import ValidationError

BATCH_SPEC = Path(__file__).parents[2].parent / "shared/azure-reference/batch-data-plane/BatchService.json"

_METHODS = ("get", "put", "post", "patch", "delete", "head")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,7})?(?:Z|[+-]\d{2}:\d{2})$")
_DURATION = re.compile(
    r"^-?P(?=\d|T\d)(?:\d+Y)?(?:\d+M)?(?:\d+W)?(?:\d+D)?(?:T(?=\d)(?:\d+H)?(?:\d+M)?(?:\d+(?:\.\d+)?S)?)?$"
)
_RFC7231 = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$")


def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATE_TIME.match(value):
        return False
    trimmed = re.sub(r"(\.\d{1,6})\d*", r"\1", value).replace("Z", "+00:00")
    try:
        datetime.fromisoformat(trimmed)
    except ValueError:
        return False
    return True


def _is_rfc7231(value: object) -> bool:
    if not isinstance(value, str) or not _RFC7231.match(value):
        return False
    try:
        parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return False
    return True


def _in_range(bits: int) -> Callable[[object], bool]:
    low, high = -(1 << (bits - 1)), 1 << (bits - 1)

    def check(value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, int):
            return True
        return low <= value < high

    return check


def _is_uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return bool(parts.scheme and parts.netloc)


def _is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _is_base64(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())
    checker.checks("date-time")(_is_date_time)
    checker.checks("duration")(lambda v: not isinstance(v, str) or bool(_DURATION.match(v)))
    checker.checks("int32")(_in_range(32))
    checker.checks("int64")(_in_range(64))
    checker.checks("uri")(_is_uri)
    checker.checks("uuid")(_is_uuid)
    checker.checks("byte")(_is_base64)
    checker.checks("arm-id")(lambda v: not isinstance(v, str) or v.startswith("/"))
    return checker


def _strict(schema: Any) -> Any:
    """Close every object schema that lists its properties; leave the rest of the document alone."""
    if not isinstance(schema, dict):
        return schema
    result = dict(schema)
    if isinstance(result.get("properties"), dict):
        result["properties"] = {name: _strict(sub) for name, sub in result["properties"].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(result.get(key), dict):
            result[key] = _strict(result[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if isinstance(result.get(key), list):
            result[key] = [_strict(sub) for sub in result[key]]
    if "properties" in result and "additionalProperties" not in result and "allOf" not in result:
        result["additionalProperties"] = False
        result["patternProperties"] = {r"^odata\.": {}}
    return result


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    template: str
    responses: Mapping[str, Any]


class BatchOpenApi:
    """The operations and schemas of one OpenAPI (swagger 2.0) document, ready to validate responses."""

    def __init__(self, spec_path: Path = BATCH_SPEC, *, strict: bool = True) -> None:
        document = json.loads(spec_path.read_text())
        self.definitions: dict[str, Any] = document.get("definitions", {})
        if strict:
            self.definitions = {name: _strict(schema) for name, schema in self.definitions.items()}
        self.operations: list[tuple[re.Pattern[str], Operation]] = []
        for section in ("paths", "x-ms-paths"):
            for template, item in document.get(section, {}).items():
                pattern = _template_pattern(template)
                for method, op in item.items():
                    if method in _METHODS:
                        operation = Operation(op["operationId"], method.upper(), template, op["responses"])
                        self.operations.append((pattern, operation))
        # Literal segments beat parameters when two templates could match the same path.
        self.operations.sort(key=lambda entry: entry[1].template.count("{"))
        self._validators: dict[str, Draft4Validator] = {}
        self._checker = format_checker()

    @property
    def operation_ids(self) -> frozenset[str]:
        return frozenset(op.operation_id for _, op in self.operations)

    def find(self, method: str, path: str) -> Operation | None:
        """The operation serving `path`, tried first without the emulator's `/<account>` prefix."""
        path = unquote(path).rstrip("/") or "/"
        stripped = "/" + path.lstrip("/").partition("/")[2]
        for candidate in (stripped, path):
            for pattern, operation in self.operations:
                if operation.method == method.upper() and pattern.fullmatch(candidate):
                    return operation
        return None

    def validator(self, operation: Operation, status: str) -> Draft4Validator | None:
        response = operation.responses.get(status)
        key = f"{operation.operation_id}:{status}"
        if response is None or "schema" not in response:
            return None
        if key not in self._validators:
            schema = self._inline(response["schema"], ())
            root = {"allOf": [schema], "definitions": self.definitions}
            self._validators[key] = Draft4Validator(root, format_checker=self._checker)
        return self._validators[key]

    def _inline(self, schema: Any, stack: tuple[str, ...]) -> Any:
        """`schema` with its `#/definitions/...` references replaced by their targets (recursive ones
        kept as references): jsonschema validates an inlined schema about twice as fast."""
        if isinstance(schema, list):
            return [self._inline(item, stack) for item in schema]
        if not isinstance(schema, dict):
            return schema
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            name = ref.removeprefix("#/definitions/")
            return schema if name in stack else self._inline(self.definitions[name], (*stack, name))
        return {
            key: value if key in ("enum", "required") else self._inline(value, stack)
            for key, value in schema.items()
        }

    def errors(
        self,
        operation: Operation,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        request_headers: Mapping[str, str] | None = None,
    ) -> Iterator[str]:
        """Every way a response breaks the document, as `pointer: message` lines."""
        if status == 304 and str(status) not in operation.responses:
            yield from _not_modified_errors(operation, request_headers or {}, body)
            return
        declared = str(status) if str(status) in operation.responses else None
        if declared is None and status < 400:
            yield f"status {status} is not one the operation declares ({', '.join(operation.responses)})"
            return
        key = declared or "default"
        for name, spec in operation.responses.get(key, {}).get("headers", {}).items():
            value = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
            if value is not None and spec.get("format") == "date-time-rfc7231" and not _is_rfc7231(value):
                yield f"header {name}: {value!r} is not an RFC 7231 date"
        validator = self.validator(operation, key)
        if validator is None:
            return
        if not body.strip():
            yield "the response has no body but the operation declares one"
            return
        try:
            document = json.loads(body)
        except ValueError as bad_json:
            yield f"the body is not JSON: {bad_json}"
            return
        found: list[ValidationError] = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
        for error in found[:10]:
            pointer = "/" + "/".join(str(part).replace("~", "~0").replace("/", "~1") for part in error.path)
            yield f"{pointer}: {_message(error)}"


CONDITIONAL_READ_HEADERS = ("if-none-match", "if-modified-since")


def _not_modified_errors(
    operation: Operation, request_headers: Mapping[str, str], body: bytes
) -> Iterator[str]:
    asked = {name.lower() for name in request_headers}
    if operation.method != "GET" or not asked.intersection(CONDITIONAL_READ_HEADERS):
        yield (
            f"status 304 answers only a GET with If-None-Match or If-Modified-Since; "
            f"this {operation.method} carried neither ({', '.join(operation.responses)} declared)"
        )
    elif body.strip():
        yield "a 304 Not Modified carries no body"


def _message(error: ValidationError) -> str:
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {}) if isinstance(error.schema, Mapping) else {}
        extra = sorted(k for k in error.instance if k not in known and not k.startswith("odata."))
        return f"unexpected propert{'y' if len(extra) == 1 else 'ies'} {', '.join(map(repr, extra))}"
    return error.message


def _template_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    regex = "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts)
    return re.compile(regex)


class OpenApiValidationPolicy(SansIOHTTPPolicy[Any, Any]):
    """Fail the request with `AssertionError` when a response does not match the Batch OpenAPI document.

    `seen` collects `operationId`s whose responses were validated, `statuses` counts `(operationId, status)`,
    so a test can assert which operations it really exercised.
    """

    def __init__(self, spec: BatchOpenApi | None = None) -> None:
        self.spec = spec or _shared_spec()
        self.seen: set[str] = set()
        self.statuses: Counter[tuple[str, int]] = Counter()

    def on_response(self, request: PipelineRequest[Any], response: PipelineResponse[Any, Any]) -> None:
        http_request, http_response = request.http_request, response.http_response
        self.check(
            http_request.method,
            http_request.url,
            http_response.status_code,
            dict(http_response.headers),
            _body(http_response),
            request_headers=dict(http_request.headers),
        )

    def check(
        self,
        method: str,
        url: str,
        status: int,
        headers: Mapping[str, str],
        body: bytes | None,
        *,
        request_headers: Mapping[str, str] | None = None,
    ) -> str:
        """Validate one response; return its operation id. `body` None means it was streamed, not read;
        `request_headers` decide whether a 304 was asked for."""
        path = urlsplit(url).path
        operation = self.spec.find(method, path)
        if operation is None:
            raise AssertionError(f"{method} {path}: no operation in the OpenAPI document serves this path")
        problems = (
            list(self.spec.errors(operation, status, headers, body or b"", request_headers))
            if body is not None
            else []
        )
        if problems:
            listing = "\n  ".join(problems)
            raise AssertionError(f"{operation.operation_id} ({method} {path} -> {status}):\n  {listing}")
        self.seen.add(operation.operation_id)
        self.statuses[(operation.operation_id, status)] += 1
        return operation.operation_id


def _body(http_response: Any) -> bytes | None:
    for attribute in ("content", "body"):
        try:
            data = getattr(http_response, attribute)
            data = data() if callable(data) else data
        except Exception:  # a streamed response has no readable body to check
            continue
        if isinstance(data, bytes | bytearray):
            return bytes(data)
    return None


_SPEC_CACHE: list[BatchOpenApi] = []


def _shared_spec() -> BatchOpenApi:
    """The parsed document, read once per test session: it is 1 MB of JSON."""
    if not _SPEC_CACHE:
        _SPEC_CACHE.append(BatchOpenApi())
    return _SPEC_CACHE[0]
