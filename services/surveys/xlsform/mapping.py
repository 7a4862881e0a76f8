"""The survey, choices and settings sheets of an XLSForm mapped to a Voices survey definition."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from pyxform import aliases, constants
from pyxform.parsing.sheet_headers import dealias_and_group_headers
from pyxform.question import MultipleChoiceQuestion, Option
from pyxform.survey import Survey

from services.surveys.questionnaire import check_translations
from shared.errors import ValidationFailed
from shared.questionnaire.definition import CODE_PATTERN, ID_PATTERN

from .expressions import RelevantParser, Unsupported
from .languages import DEFAULT_LABEL, DEFAULT_SECTION_TITLE, LanguageColumns, language_code
from .problems import CHOICES, SETTINGS, SURVEY, problem
from .questions import QuestionRows
from .vocabulary import (
    IGNORED_BIND,
    IGNORED_CONTROL,
    RE_BEGIN,
    RE_END,
    READ_TOP,
    REFUSED_BIND,
    REFUSED_TOP,
    both,
    choice_code,
    yes_no,
)


def dealias(
    workbook: Any, sheet: str, header_aliases: Any, header_columns: Any, strip: bool
) -> list[dict]:
    data = getattr(workbook, sheet, None)
    if not data:
        return []
    return list(
        dealias_and_group_headers(
            sheet_name=sheet,
            sheet_data=data,
            sheet_header=getattr(workbook, f"{sheet}_header", None),
            header_aliases=header_aliases,
            header_columns=header_columns,
            default_language=DEFAULT_LABEL,
            strip_whitespace=strip,
            add_row_number=True,
        ).data
    )


class FormMapping:
    """The rows of a read workbook mapped to a Voices survey definition: sections from groups,
    questions (see `QuestionRows`), choice lists, conditions; every problem and warning at its row."""

    def __init__(
        self,
        workbook: Any,
        default_language: str | None,
        consultation_languages: Sequence[str] | None,
    ) -> None:
        self.problems: list[dict] = []
        self.warnings: list[dict] = []
        self._column_warnings: dict[tuple[str, str], tuple[str, list[int]]] = {}
        self.survey_rows = dealias(
            workbook,
            SURVEY,
            aliases.survey_header,
            set(MultipleChoiceQuestion.get_slot_names()),
            True,
        )
        self.choice_rows = dealias(
            workbook, CHOICES, aliases.list_header, set(Option.get_slot_names()), False
        )
        settings_rows = dealias(
            workbook, SETTINGS, aliases.settings_header, set(Survey.get_slot_names()), False
        )
        self.settings = settings_rows[0] if settings_rows else {}
        self.title = self.settings.get("title")
        self.languages = LanguageColumns(
            self.settings.get(constants.DEFAULT_LANGUAGE_KEY) or default_language,
            self.problems,
            self.warnings,
            consultation_languages=consultation_languages,
            labelled=self._labelled_languages(),
        )
        self.names = {row.get("name") for row in self.survey_rows if row.get("name")}
        self.sections: list[dict] = []
        self.questions: dict[str, dict] = {}  # imported so far, by id
        self.skipped: dict[str, str] = {}  # names of rows not imported -> why
        self.paths: dict[
            str, tuple[str, int, str | None]
        ] = {}  # definition path -> (sheet, row, name)
        self._lists: dict[str, list[dict] | None] = {}
        self.rows = QuestionRows(self)

    def _labelled_languages(self) -> dict[str, set[str]]:
        """By sheet, the codes of the languages that its `label::<language>` columns name."""
        labelled = {}
        for sheet, rows in ((SURVEY, self.survey_rows), (CHOICES, self.choice_rows)):
            labels = {
                key for row in rows if isinstance(row.get("label"), dict) for key in row["label"]
            }
            labelled[sheet] = {
                code for code in map(language_code, labels - {DEFAULT_LABEL}) if code is not None
            }
        return labelled

    # -- bookkeeping

    def refuse(self, row: dict, reason: str, sheet: str = SURVEY) -> None:
        self.problems.append(problem(sheet, row.get("__row"), row.get("name"), reason))
        if sheet == SURVEY and row.get("name"):
            self.skipped.setdefault(str(row["name"]), reason)

    def warn(self, row: dict, reason: str, sheet: str = SURVEY) -> None:
        self.warnings.append(problem(sheet, row.get("__row"), row.get("name"), reason))

    def warn_column(self, sheet: str, column: str, row: int, reason: str) -> None:
        entry = self._column_warnings.setdefault((sheet, column), (reason, []))
        entry[1].append(row)

    def column_warnings(self) -> list[dict]:
        out = []
        for (sheet, column), (reason, rows) in self._column_warnings.items():
            where = f"row {rows[0]}" if len(rows) == 1 else f"rows {', '.join(map(str, rows))}"
            out.append(problem(sheet, 1, column, f"{reason} ({where})"))
        return out

    # -- columns

    def check_columns(self, row: dict, *, question: bool) -> bool:
        """Refuse columns Voices cannot honour, warn about ignored ones; False if refused."""
        ok = True
        number = row["__row"]
        for key, reason in REFUSED_TOP.items():
            if row.get(key):
                self.refuse(row, reason)
                ok = False
        for key, value in (row.get("bind") or {}).items():
            if key == "relevant" or (key == "constraint" and question):
                continue
            if key == "required" and yes_no(value) is False:
                continue
            if key in IGNORED_BIND:
                self.warn_column(SURVEY, key, number, IGNORED_BIND[key])
            elif key == "readonly" and yes_no(value) is False:
                continue
            else:
                self.refuse(
                    row,
                    REFUSED_BIND.get(key, f"column {key!r} is not supported: clear it on this row"),
                )
                ok = False
        for key in row.get("control") or {}:
            if key in IGNORED_CONTROL:
                self.warn_column(
                    SURVEY, key, number, f"{key!r} is ignored: Voices pages have their own layout"
                )
            elif key == "jr:count":
                self.refuse(row, REFUSED_TOP["repeat_count"])
                ok = False
            else:
                self.refuse(row, f"column {key!r} is not supported: clear it on this row")
                ok = False
        if row.get("media"):
            self.warn_column(SURVEY, "media", number, "images, audio and video are not imported")
        if row.get(
            "choice_filter"
        ):  # offers more choices than meant, all from the list: kept, with a word
            self.warn(
                row,
                f"choice_filter {row['choice_filter']!r} is not kept: the whole choice list is offered",
            )
        for key in ("guidance_hint", "default"):
            if row.get(key):
                self.warn_column(SURVEY, key, number, f"{key!r} is ignored")
        for key in row:
            if key not in READ_TOP and key not in REFUSED_TOP and row.get(key):
                self.warn_column(SURVEY, str(key), number, f"column {key!r} is not read by Voices")
        return ok

    # -- choices

    def options(self, list_name: str, row: dict) -> list[dict] | None:
        if list_name not in self._lists:
            self._lists[list_name] = self._read_list(list_name)
        options = self._lists[list_name]
        if options is None:
            self.refuse(
                row,
                f"choice list {list_name!r} is not in the choices sheet: add it there, or correct "
                "the list name after the type",
            )
            return None
        return copy.deepcopy(options)  # each question gets its own option dicts

    def _read_list(self, list_name: str) -> list[dict] | None:
        rows = [r for r in self.choice_rows if r.get(constants.LIST_NAME_S) == list_name]
        if not rows:
            return None
        # Names Voices keeps as they are come first, so a renamed choice never takes one of them.
        taken = {
            str(r["name"])
            for r in rows
            if r.get("name") is not None and CODE_PATTERN.match(str(r["name"]))
        }
        options, names = [], set()
        for position, row in enumerate(rows, start=1):
            name = row.get("name")
            if name is None:
                self.refuse(
                    row,
                    f"this choice of list {list_name!r} has no name: fill in the name column",
                    CHOICES,
                )
                continue
            name = str(name)
            if name in names:
                self.refuse(
                    row,
                    f"choice {name!r} appears twice in list {list_name!r}: rename or delete one",
                    CHOICES,
                )
                continue
            names.add(name)
            code = name
            if not CODE_PATTERN.match(name):
                code = choice_code(name, position, taken)
                taken.add(code)
                self.warn(
                    row,
                    f"choice name {name!r} is stored as {code!r}: Voices codes use only the letters "
                    "a-z, digits, _ and - (answers and exports show the new code)",
                    CHOICES,
                )
            if row.get("media"):
                self.warn_column(
                    CHOICES, "media", row["__row"], "images, audio and video are not imported"
                )
            options.append(
                {
                    "code": code,
                    "label": self.languages.texts(CHOICES, "label", row.get("label")) or {},
                    "__row": row["__row"],
                    "__name": name,
                }
            )
        return options

    # -- conditions

    def lookup(self, name: str) -> dict:
        if name in self.questions:
            return self.questions[name]
        if name in self.skipped:
            raise Unsupported(f"${{{name}}} is not imported ({self.skipped[name]})")
        if name in self.names:
            raise Unsupported(
                f"${{{name}}} is not an earlier question: move its row above this one"
            )
        raise Unsupported(f"${{{name}}} is not in the form: correct the name")

    def condition(self, row: dict) -> tuple[bool, dict | None]:
        expression = (row.get("bind") or {}).get("relevant")
        if not expression:
            return True, None
        try:
            return True, RelevantParser(str(expression), self.lookup).parse()
        except Unsupported as exc:
            self.refuse(
                row,
                f"relevant {expression!r}: {exc}. Voices reads ${{q}} = 'choice', selected(${{q}}, "
                "'choice'), comparisons with numbers, = '' and != '', joined by and, or, not(); "
                "rewrite it so, or clear it to always show the question",
            )
            return False, None

    # -- the survey sheet

    def run(self) -> None:
        groups: list[dict] = []  # open groups and repeats, innermost last (see `begin`)
        loose: dict | None = None
        for row in self.survey_rows:
            raw_type = row.get("type")
            if raw_type is None:
                if len(row) > 1:
                    self.refuse(row, "this row has no type: fill in its type, or delete the row")
                continue
            kind = " ".join(str(raw_type).split())
            lowered = kind.lower()
            begin, end = RE_BEGIN.match(lowered), RE_END.match(lowered)
            if begin:
                loose = None
                parent = groups[-1] if groups else None
                if parent is not None and parent["section"] is not None:
                    # An outer group's questions before this group keep their section, those after it get another.
                    parent["section"]["__holds_groups"] = True
                    parent["section"] = None
                groups.append(self.begin(row, begin.group("kind"), parent))
                continue
            if end:
                if not groups:
                    self.refuse(
                        row,
                        f"{kind!r} without a matching begin: delete the row, or add the begin row "
                        "above the questions it closes",
                    )
                else:
                    groups.pop()
                continue
            question = self.rows.question(row, kind, lowered)
            if question is None:
                continue
            if groups:
                group = groups[-1]
                if group["refused"]:
                    continue  # inside a refused repeat or group: already reported
                if group["section"] is None:
                    group["section"] = self.group_section(
                        group, self.unused_id(f"{group['name']}_", 2), row["__row"]
                    )
                section = group["section"]
            else:
                if loose is None:
                    loose = self.new_section(self.unused_id("section_"), None, row["__row"])
                section = loose
            section["questions"].append(question)
            if "__then" in question:  # the text question or_other adds
                section["questions"].append(question.pop("__then"))
        for group in groups:
            self.problems.append(problem(SURVEY, group["row"]["__row"], group["name"], (
                "this group or repeat is never ended: add an 'end group' row after its last question"
            )))  # fmt: skip

    def unused_id(self, prefix: str, first: int | None = None) -> str:
        """`prefix` + the first number from `first` (the section count + 1) that no question or section uses."""
        n = len(self.sections) + 1 if first is None else first
        while f"{prefix}{n}" in self.names or any(s["id"] == f"{prefix}{n}" for s in self.sections):
            n += 1
        return f"{prefix}{n}"

    def new_section(self, sid: str, group_row: dict | None, row_number: int) -> dict:
        section: dict[str, Any] = {
            "id": sid,
            "title": None,
            "content_warning": None,
            "relevant": None,
            "questions": [],
            "__row": row_number,
            "__name": None if group_row is None else group_row.get("name"),
        }
        self.sections.append(section)
        return section

    def group_section(self, group: dict, sid: str, row_number: int) -> dict:
        section = self.new_section(sid, group["row"], row_number)
        for key in ("title", "content_warning", "relevant"):
            section[key] = group[key]
        return section

    def begin(self, row: dict, kind: str, parent: dict | None) -> dict:
        """An open group: {"row", "name", "refused", "title", "content_warning", "relevant", "section"}.

        Sections have one level, so a group inside a group becomes a section of its own that
        carries the outer group's relevant (and title and content warning when it has none);
        the outer group's questions after it go on in another section.
        """
        name = row.get("name")
        group = {
            "row": row,
            "name": None if name is None else str(name),
            "refused": True,
            "section": None,
            "title": None,
            "content_warning": None,
            "relevant": None,
        }
        if parent is not None and parent["refused"]:
            return group  # inside a refused repeat or group: already reported
        kind = kind.replace("_", " ")
        if kind != "group":
            self.refuse(
                row,
                f"'begin {kind}' is not supported: Voices asks each question once; change it to "
                "'begin group' (and its end row to 'end group'), or number the repeated questions",
            )
            return group
        if not name or not ID_PATTERN.match(str(name)):
            self.refuse(
                row,
                "rename the group: a name starts with a letter or _ and uses only the letters a-z, "
                "digits, _ and - (at most 64)",
            )
            return group
        columns_ok = self.check_columns(row, question=False)
        relevant_ok, relevant = self.condition(row)
        if not (columns_ok and relevant_ok):
            return group
        title = self.languages.texts(SURVEY, "label", row.get("label")) or None
        content_warning = self.languages.texts(
            SURVEY, "content_warning", row.get("content_warning")
        )
        if parent is not None:
            self.warn(
                row,
                f"this group is inside group {parent['name']!r}: Voices sections have one level, so it "
                "becomes a section of its own, shown only when the outer group is",
            )
            title = title or parent["title"]
            content_warning = content_warning or parent["content_warning"]
            relevant = both(parent["relevant"], relevant)
        if title is None:  # given the generic title in definition(), as loose questions are
            self.warn(
                row,
                "this group has no label, so its section is titled 'Questions' (in each language): "
                "add a label to the begin group row to give it a title of its own",
            )
        group.update(refused=False, title=title, content_warning=content_warning, relevant=relevant)
        group["section"] = self.group_section(group, str(name), row["__row"])
        return group

    # -- result

    def definition(self) -> dict:
        languages = list(self.languages.order)
        sections: list[dict[str, Any]] = []
        for _s_index, section in enumerate(self.sections):
            if not section["questions"]:
                if section["__name"] is not None and not section.get("__holds_groups"):
                    self.warnings.append(problem(
                        SURVEY, section["__row"], section["__name"],
                        "this group has no questions Voices can import and is left out",
                    ))  # fmt: skip
                continue
            spath = f"sections[{len(sections)}]"
            self.paths[spath] = (SURVEY, section["__row"], section["__name"])
            if (
                section["title"] is None
            ):  # made from questions outside groups, or a group without a label
                section["title"] = {lang: DEFAULT_SECTION_TITLE[lang] for lang in languages}
            for q_index, question in enumerate(section["questions"]):
                qpath = f"{spath}.questions[{q_index}]"
                self.paths[qpath] = (SURVEY, question.pop("__row"), question["id"])
                for o_index, option in enumerate(question.get("options") or []):
                    option_path = f"{qpath}.options[{o_index}]"
                    sheet = option.pop("__sheet", CHOICES)
                    self.paths[option_path] = (sheet, option.pop("__row"), option.pop("__name"))
                for item in (question, *(question.get("options") or [])):
                    if (
                        "__texts" in item
                    ):  # added by or_other: Voices' own words in the form's languages
                        texts = item.pop("__texts")
                        item["label"] = {lang: texts[lang] for lang in languages}
            sections.append({k: v for k, v in section.items() if not k.startswith("__")})
        return {"languages": languages, "sections": sections}

    def translation_warnings(self, definition: dict) -> list[dict]:
        """One warning per text still missing a language, at its row (publishing needs them all)."""
        try:
            check_translations(definition)
        except ValidationFailed as exc:
            gaps = exc.extra["errors"]
        else:
            return []
        found: dict[tuple, dict] = {}  # a choice list shared by several questions is one row
        for path, messages in gaps.items():
            sheet, row, name = self.where(path)
            field = path.rsplit(".", 1)[-1]
            column = "label" if field == "title" else field
            for message in messages:
                code = message.rsplit("'", 2)[
                    -2
                ]  # check_translations ends with the language, quoted
                header = self.languages.column_for(sheet, column, code)
                reason = f"{message} in column '{header}': fill it in before publishing"
                found.setdefault((sheet, row, reason), problem(sheet, row, name, reason))
        return list(found.values())

    def where(self, path: str) -> tuple[str, int | None, str | None]:
        """The spreadsheet row behind a definition path (longest known prefix)."""
        best = ""
        for known in self.paths:
            if (path == known or path.startswith(known + ".")) and len(known) > len(best):
                best = known
        return self.paths.get(best, (SURVEY, None, None))
