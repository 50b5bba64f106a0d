"""Schema validation of a compose document: fast when it is valid, thorough when it is not.

A document is first checked by Python code that fastjsonschema generated from
``schemas/compose-spec.json``. That code is cached on disk, keyed by the schema's sha256,
so an ordinary run neither parses the schema nor imports a JSON-schema library. Only when
that check fails is jsonschema imported to collect every error, each reworded for people
and located by file, line and dotted path.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import CodeType
from typing import TYPE_CHECKING, Any, NamedTuple

from pycompose.compose.errors import ComposeError, ComposeErrors, Path, format_path

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator

SCHEMA_PATH = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "schemas", "compose-spec.json"
)
"""The compose schema, as data."""

FastValidator = Callable[[Any], object]
"""A generated validator: returns when the document is valid, raises when it is not."""

# Bump when the generated code or the cache file layout changes.
_CACHE_FORMAT = b"pycompose-compose-spec-cache-2"
_NAME_PATTERN = "^[a-zA-Z0-9._-]+$"
_FJS_IMPORT = "from fastjsonschema import JsonSchemaValueException, JsonSchemaValuesException\n"
# The cached module defines its own exceptions so that loading it never imports fastjsonschema.
_LOCAL_EXCEPTIONS = """
class JsonSchemaValueException(ValueError):
    def __init__(self, message, value=None, name=None, definition=None, rule=None):
        super().__init__(message)
        self.message, self.value, self.name = message, value, name
        self.definition, self.rule = definition, rule


class JsonSchemaValuesException(ValueError):
    def __init__(self, errors):
        super().__init__("; ".join(e.message for e in errors))
        self.errors = errors
"""

_fast: FastValidator | None = None
_full: Validator | None = None
_schema: dict[str, Any] | None = None


def validate(data: dict[str, Any], *, file: str, lines: Mapping[Path, int]) -> None:
    """Check ``data`` against the compose schema.

    Raises ComposeErrors holding every problem found, each located by ``file``, the line
    of the offending key or item (from ``lines``, else its nearest ancestor's) and the
    dotted path.
    """
    first = fast_check(data)
    if first is None:
        return
    errors = collect_errors(data, file=file, lines=lines)
    if not errors:
        # The two validators disagree: never let a rejected document through silently.
        errors = [ComposeError(f"rejected by the compose schema: {first}", file=file)]
    raise ComposeErrors(errors)


def fast_check(data: Any) -> str | None:
    """Run the generated validator; return its first complaint, or None when ``data`` is valid."""
    global _fast
    if _fast is None:
        _fast = load_fast_validator(cache_dir())
    try:
        _fast(data)
    except Exception as err:  # a non-string key makes the generated code raise TypeError
        return str(err) or type(err).__name__
    return None


def cache_dir() -> str | None:
    """Where the generated validator is cached: $XDG_CACHE_HOME/pycompose or ~/.cache/pycompose."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # the XDG spec says to ignore a relative value
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pycompose") if os.path.isabs(base) else None


def load_schema() -> dict[str, Any]:
    """Return the compose schema, parsed once per process."""
    global _schema
    if _schema is None:
        import json

        with open(SCHEMA_PATH, "rb") as fh:
            _schema = json.loads(fh.read())
    return _schema


# --- the fast validator and its cache ------------------------------------------------------


def load_fast_validator(directory: str | None) -> FastValidator:
    """Load the generated validator from ``directory``, generating and caching it if needed.

    Cache files are written to a temporary name and renamed, sealed with a sha256 of their
    content, and ignored when broken or owned by someone else. With ``directory`` None,
    or when it cannot be written, the validator is generated in memory.
    """
    with open(SCHEMA_PATH, "rb") as fh:
        schema_bytes = fh.read()
    if directory is not None:
        found = _load_through_cache(directory, schema_bytes)
        if found is not None:
            return found
    compiled = _compile(_generate_source(schema_bytes), "<compose-spec validator>")
    found = _exec_validator(compiled, "<compose-spec validator>") if compiled else None
    if found is None:
        raise ComposeError("internal error: the compose schema validator cannot be generated")
    return found


def _load_through_cache(directory: str, schema_bytes: bytes) -> FastValidator | None:
    """Code file, else source file, else generate; rewrite whatever was missing or broken."""
    key = _sha256_hex(_CACHE_FORMAT + b"\0" + schema_bytes)[:32]
    # Marshalled code only loads in the interpreter that wrote it.
    code_tag = _sha256_hex(f"{key}\0{sys.version}".encode())[:16]
    source_path = os.path.join(directory, f"compose-spec-{key}.py")
    code_path = os.path.join(directory, f"compose-spec-{key}.{code_tag}.code")
    code = _unmarshal(_unseal(_read_own(code_path)))
    found = _exec_validator(code, source_path) if code is not None else None
    if found is not None:
        return found
    source = _decode(_unseal(_read_own(source_path)))
    if source is None:
        source = _generate_source(schema_bytes)
        _write_atomic(directory, source_path, _seal(source.encode()))
    code = _compile(source, source_path)
    found = _exec_validator(code, source_path) if code is not None else None
    if code is not None and found is not None:
        _write_atomic(directory, code_path, _seal(marshal.dumps(code)))
    return found


def _sha256_hex(data: bytes) -> str:
    try:  # CPython's own sha256 imports in a third of the time of hashlib's OpenSSL binding
        from _sha256 import sha256  # type: ignore[import-not-found]
    except ImportError:  # pragma: no cover - other interpreters
        from hashlib import sha256
    return str(sha256(data).hexdigest())


def _generate_source(schema_bytes: bytes) -> str:
    import json

    import fastjsonschema

    schema = json.loads(schema_bytes)
    source: str = fastjsonschema.compile_to_code(
        schema, use_default=False, use_formats=False, detailed_exceptions=False
    )
    source = source.replace(_FJS_IMPORT, _LOCAL_EXCEPTIONS)
    # Paths in messages are formatted eagerly with locals() for every item visited, which
    # costs half the run time on big files. The fast path only needs pass or fail (the
    # thorough validator writes the messages), so leave the placeholders unformatted.
    source = source.replace(".format(**locals())", "")
    return "# Generated by pycompose from compose-spec.json; do not edit.\n" + source


def _compile(source: str, filename: str) -> CodeType | None:
    try:
        return compile(source, filename, "exec")
    except (SyntaxError, ValueError):
        return None


def _exec_validator(code: CodeType, filename: str) -> FastValidator | None:
    namespace: dict[str, Any] = {"__name__": "pycompose_compose_spec", "__file__": filename}
    try:
        exec(code, namespace)
    except Exception:  # a damaged cache entry: the caller regenerates it
        return None
    found = namespace.get("validate")
    return found if callable(found) else None


def _seal(payload: bytes) -> bytes:
    return _sha256_hex(payload).encode() + b"\n" + payload


def _unseal(blob: bytes | None) -> bytes | None:
    """Return the payload of a sealed blob, or None when it is missing or damaged."""
    if blob is None or len(blob) < 65 or blob[64:65] != b"\n":
        return None
    payload = blob[65:]
    return payload if _sha256_hex(payload).encode() == blob[:64] else None


def _decode(payload: bytes | None) -> str | None:
    try:
        return payload.decode() if payload is not None else None
    except UnicodeDecodeError:
        return None


def _unmarshal(payload: bytes | None) -> CodeType | None:
    if payload is None:
        return None
    try:
        code = marshal.loads(payload)
    except (EOFError, ValueError, TypeError):
        return None
    return code if isinstance(code, CodeType) else None


def _read_own(path: str) -> bytes | None:
    """Read a cache file, but only one we own: its code is about to be executed."""
    try:
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_uid != os.geteuid():
                return None
            return fh.read()
    except OSError:
        return None


def _write_atomic(directory: str, path: str, content: bytes) -> bool:
    import tempfile

    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".part")
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return False
    return True


# --- the thorough validator and messages for people ---------------------------------------


class _Problem(NamedTuple):
    path: Path  # the dotted path printed with the message
    anchor: Path  # where to look up the line: the offending key itself, or ``path``
    message: str


def collect_errors(
    data: dict[str, Any], *, file: str, lines: Mapping[Path, int]
) -> list[ComposeError]:
    """Return every schema error in ``data``, reworded and located, sorted by line."""
    global _full
    problems = [
        _Problem(path[:-1], path, f"key {path[-1]!r} must be a string (quote it)")
        for path in _non_string_keys(data, ())
    ]
    if problems:
        data = _string_keys(data)
    if _full is None:
        from jsonschema import Draft7Validator

        _full = Draft7Validator(load_schema())
    for err in _full.iter_errors(data):
        problems.extend(_explain(err))
    seen: set[tuple[Path, str]] = set()
    errors: list[ComposeError] = []
    for problem in problems:
        if (problem.path, problem.message) in seen:
            continue
        seen.add((problem.path, problem.message))
        line = _line_of(lines, problem.anchor)
        errors.append(ComposeError(problem.message, file=file, line=line, path=problem.path))
    errors.sort(key=lambda e: (e.line if e.line is not None else 0, format_path(e.path)))
    return errors


def _line_of(lines: Mapping[Path, int], anchor: Path) -> int | None:
    for end in range(len(anchor), -1, -1):
        line = lines.get(anchor[:end])
        if line is not None:
            return line
    return None


def _non_string_keys(value: Any, path: Path) -> Iterator[Path]:
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                yield (*path, key if isinstance(key, int) else str(key))
            yield from _non_string_keys(item, (*path, str(key)))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _non_string_keys(item, (*path, index))


def _string_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _string_keys(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_string_keys(v) for v in value]
    return value


def _explain(err: ValidationError) -> list[_Problem]:
    path: Path = tuple(err.absolute_path)
    kind = err.validator
    if kind in ("oneOf", "anyOf"):
        return _explain_choice(err, path)
    if kind == "additionalProperties":
        return _explain_unknown_keys(err, path)
    if kind == "required":
        names = [n for n in _expected(err) if n not in _instance(err)]
        return [_Problem(path, path, f'missing required key "{n}"') for n in names]
    return [_Problem(path, path, _message(err))]


def _message(err: ValidationError) -> str:
    kind, expected, value = err.validator, _expected(err), _instance(err)
    if kind == "type":
        types = [expected] if isinstance(expected, str) else list(expected)
        return f"must be {_type_phrase(types)}, not {_describe(value)}"
    if kind == "enum":
        from pycompose.compose.suggest import did_you_mean

        allowed = ", ".join(_show(v) for v in expected)
        hint = (
            did_you_mean(value, [v for v in expected if isinstance(v, str)])
            if isinstance(value, str)
            else ""
        )
        return f"must be one of {allowed}, not {_show(value)}{hint}"
    if kind == "pattern":
        what = _PATTERN_MEANINGS.get(expected, f"the pattern {expected!r}")
        return f"{_show(value)} is not valid here: expected {what}"
    if kind in ("minimum", "exclusiveMinimum"):
        return f"must be {'at least' if kind == 'minimum' else 'more than'} {expected}, not {value}"
    if kind in ("maximum", "exclusiveMaximum"):
        return f"must be {'at most' if kind == 'maximum' else 'less than'} {expected}, not {value}"
    return str(err.message)


def _explain_unknown_keys(err: ValidationError, path: Path) -> list[_Problem]:
    import re

    from pycompose.compose.suggest import did_you_mean

    schema = err.schema if isinstance(err.schema, dict) else {}
    known = list(schema.get("properties", {}))
    patterns = list(schema.get("patternProperties", {}))
    problems = []
    for key in _instance(err):
        if key in known or any(re.search(p, key) for p in patterns):
            continue
        if known:
            hint = did_you_mean(key, known)
            if not hint and "^x-" in patterns and key[:2].lower() in ("x_", "x.", "x-"):
                hint = ' (extension keys must start with "x-")'
            message = f'unknown key "{key}"{hint}'
        elif patterns == [_NAME_PATTERN]:
            message = f'invalid name "{key}": use only letters, digits, ".", "_" and "-"'
        else:
            message = f'key "{key}" is not allowed here'
        problems.append(_Problem(path, (*path, key), message))
    return problems


def _explain_choice(err: ValidationError, path: Path) -> list[_Problem]:
    """Explain a failed oneOf/anyOf through the branch the value was most likely meant for."""
    if not err.context:  # oneOf with more than one branch matching
        return [_Problem(path, path, "matches more than one of the allowed forms")]
    branches: dict[int, list[ValidationError]] = {}
    for sub in err.context:
        branches.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
    fitting = {i: errs for i, errs in branches.items() if not _wrong_type(errs)}
    if not fitting:
        types: list[str] = []
        for errs in branches.values():
            for sub in errs:
                if sub.validator == "type" and not sub.relative_path:
                    expected = _expected(sub)
                    types.extend([expected] if isinstance(expected, str) else expected)
        message = f"must be {_type_phrase(types)}, not {_describe(_instance(err))}"
        return [_Problem(path, path, message)]
    if all(_only_missing_keys(errs) for errs in fitting.values()):
        names = sorted({n for errs in fitting.values() for e in errs for n in _missing(e)})
        if len(names) == 1:
            return [_Problem(path, path, f'missing required key "{names[0]}"')]
        wanted = " or ".join(f'"{n}"' for n in names)
        return [_Problem(path, path, f"missing required key: needs {wanted}")]
    best = max(fitting.values(), key=lambda errs: (_depth(errs), -len(errs)))
    problems: list[_Problem] = []
    for sub in best:
        problems.extend(_explain(sub))
    return problems


def _expected(err: ValidationError) -> Any:
    """The schema keyword's value (jsonschema types it loosely)."""
    return err.validator_value


def _instance(err: ValidationError) -> Any:
    return err.instance


def _wrong_type(errs: Iterable[ValidationError]) -> bool:
    return any(e.validator == "type" and not e.relative_path for e in errs)


def _only_missing_keys(errs: list[ValidationError]) -> bool:
    return all(e.validator == "required" and not e.relative_path for e in errs)


def _missing(err: ValidationError) -> list[str]:
    return [n for n in _expected(err) if n not in _instance(err)]


def _depth(errs: list[ValidationError]) -> int:
    return max(len(e.relative_path) for e in errs)


# What the schema's patterns ask for, in words.
_PATTERN_MEANINGS = {
    "[a-zA-Z0-9][a-zA-Z0-9_.-]+": 'at least two characters, letters, digits, "_", "." or "-"'
    ", starting with a letter or digit",
    "always|never|build|if_not_present|missing|refresh|daily|weekly|every_([0-9]+[wdhms])+": (
        "always, never, missing, if_not_present, build, refresh, daily, weekly"
        " or every_<duration> (e.g. every_12h)"
    ),
}

_TYPE_WORDS = {
    "string": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "array": "list",
    "object": "mapping",
    "null": "null",
}


def _type_phrase(types: Iterable[str]) -> str:
    wanted = set(types)
    if "number" in wanted:
        wanted.discard("integer")
    words = [_TYPE_WORDS[t] for t in _TYPE_WORDS if t in wanted]
    if not words:
        return "something else"
    first = words[0]
    if first != "null":
        first = f"{'an' if first[0] in 'aeiou' else 'a'} {first}"
    names = [first, *words[1:]]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({'true' if value else 'false'})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({_show(value)})"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def _show(value: Any) -> str:
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return repr(value)
