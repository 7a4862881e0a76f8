"""What a staff form shows again after a refusal: the values typed and the problems by field.

The services answer a refused request with problem+json whose `errors` follow the shape of the
request body (marshmallow's: nested dicts, list indices as keys). `flatten_errors` turns them
into dotted paths ("survey.sections.0.questions.1.label"); a page maps the paths it knows to its
own field names, and whatever it cannot place is listed at the top of the form with its path.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import MultiDict

# marshmallow's key for errors of the whole document rather than one field.
WHOLE = "_schema"
# marshmallow's words for a value left empty: right, but they do not say "write something here".
_LEFT_EMPTY = re.compile(
    r"^(?:Length must be between 1 and (?P<most>\d+)\.|Shorter than minimum length 1\."
    r"|Missing data for required field\.|Field may not be null\.)$"
)


def flatten_errors(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    """Nested problem+json `errors` as {dotted path: [messages]}; the whole body's errors under ''."""
    flat: dict[str, list[str]] = {}
    if isinstance(errors, Mapping):
        for key, value in errors.items():
            name = "" if key == WHOLE else str(key)
            path = f"{prefix}.{name}" if prefix and name else (prefix or name)
            for sub_path, messages in flatten_errors(value, path).items():
                flat.setdefault(sub_path, []).extend(messages)
    elif isinstance(errors, (list, tuple)):
        for item in errors:
            if isinstance(item, (Mapping, list, tuple)):
                for sub_path, messages in flatten_errors(item, prefix).items():
                    flat.setdefault(sub_path, []).extend(messages)
            else:
                flat.setdefault(prefix, []).append(str(item))
    elif errors is not None:
        flat.setdefault(prefix, []).append(str(errors))
    return flat


@dataclass
class Form:
    """The values of a form and its problems: `errors` by field name, `problems` for the form."""

    values: MultiDict = field(default_factory=MultiDict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, values: Mapping[str, Any] | MultiDict | None = None) -> Form:
        if isinstance(values, MultiDict):
            return cls(MultiDict(values))
        form = cls()
        for name, value in (values or {}).items():
            if isinstance(value, (list, tuple)):
                form.values.setlist(name, [_text(v) for v in value])
            elif value is not None:
                form.values[name] = _text(value)
        return form

    def value(self, name: str, default: str = "") -> str:
        return self.values.get(name, default)

    def values_of(self, name: str) -> list[str]:
        return self.values.getlist(name)

    def errors_for(self, name: str) -> list[str]:
        return self.errors.get(name, [])

    def add_error(self, name: str | None, message: str) -> None:
        """A problem of one field, or of the whole form when `name` is None."""
        if name is None:
            self.problems.append(message)
        else:
            self.errors.setdefault(name, []).append(message)

    @property
    def ok(self) -> bool:
        return not self.errors and not self.problems

    def take_refusal(
        self,
        detail: str | None,
        errors: Any,
        fields: Mapping[str, str] | None = None,
        prefixes: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Place a service's refusal: each error path found in `fields` (service path -> form
        field) or starting with a prefix of `prefixes` ((service prefix, form prefix)) goes next to
        that field; the rest, and `detail` when nothing could be placed, go to the form's problems."""
        placed = False
        for path, messages in flatten_errors(errors).items():
            name = _field_of(path, fields or {}, prefixes)
            for message in messages:
                if name is None:
                    self.problems.append(f"{path}: {message}" if path else message)
                else:
                    self.add_error(name, message)
                    placed = True
        if detail and (not placed or not errors):
            self.problems.insert(0, detail)

    def reword_left_empty(self, wording: Callable[[int | None], str]) -> None:
        """Say "fill this in" (`wording(longest allowed or None)`) instead of a length rule for
        a field that was sent empty; a field sent with text keeps the service's own words."""
        for name, messages in self.errors.items():
            if name not in self.values or self.value(name).strip():
                continue
            for index, message in enumerate(messages):
                match = _LEFT_EMPTY.match(message)
                if match:
                    most = match.group("most")
                    messages[index] = wording(int(most) if most else None)

    def summary(self, ids: Mapping[str, str] | None = None) -> list[tuple[str | None, str]]:
        """(anchor, message) pairs for the list at the top of the form."""
        items: list[tuple[str | None, str]] = [(None, problem) for problem in self.problems]
        for name, messages in self.errors.items():
            anchor = (ids or {}).get(name, field_id(name))
            items.extend((anchor, message) for message in messages)
        return items


def field_id(name: str) -> str:
    """The id of the input for field `name` (the macros in templates/staff/forms.html use it)."""
    return "f-" + "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name)


def _field_of(
    path: str, fields: Mapping[str, str], prefixes: Iterable[tuple[str, str]]
) -> str | None:
    # marshmallow reports a bad value of a dict under "<key>.value": the problem of that key.
    while path.rpartition(".")[2] in ("value", "key") and "." in path:
        path = path.rpartition(".")[0]
    # "languages.0" belongs to the field of "languages": an item of a list is its field's problem.
    whole = path
    while whole not in fields and whole.rpartition(".")[2].isdigit():
        whole = whole.rpartition(".")[0]
    if whole in fields:
        return fields[whole]
    for service_prefix, form_prefix in prefixes:
        if path == service_prefix or path.startswith(service_prefix + "."):
            rest = path[len(service_prefix) :]
            name = form_prefix + rest if form_prefix else rest.lstrip(".")
            return name or None
    return None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else ""
    return str(value)
