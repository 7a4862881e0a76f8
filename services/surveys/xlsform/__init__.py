"""XLSForm (ODK / KoboToolbox) import, .xlsx or legacy .xls, into a Voices survey definition.

What is mapped:
  select_one L            -> single_choice (options from list L of the choices sheet;
                             names Voices cannot keep as codes, such as `père`,
                             are renamed with a warning); `or_other` adds the
                             choice 'other' and the text question <name>_other
                             asked when it is chosen, as ODK does
  select_multiple L       -> multiple_choice
  integer / decimal       -> number (integer flag); a constraint made only of
                             `. >= n`, `. <= n` (and `>`/`<` for integers)
                             joined by `and` becomes min/max; `${own name}`
                             counts as `.`
  range                   -> rating (whole-number start..end, step 1, <= 11 points)
  date                    -> date
  text                    -> free_text; `string-length(.) <= n` becomes max_length
  begin group / end group -> a section (group relevant -> section relevant);
                             runs of questions outside groups become their own
                             sections with a generic translated title, as do
                             groups without a label (with a warning); a group
                             inside a group becomes a section of its own
                             (relevant: both groups'), the outer group's later
                             questions another one
  label::Arabic (ar), label::ar -> translations in ar, zh, en, fr, ru, es;
                             columns in other languages are left out (warning)
  label, hint (no language) -> the settings sheet's default_language, else the
                             caller's, else the consultation's language that no
                             label column of the same sheet has (English
                             without a consultation); when none is left, a
                             plain label is left out and a plain hint goes with
                             the first label language (warnings)
  relevant                -> conditions, for `${q} = 'x'`, `${q} != 'x'`,
                             `selected(${q}, 'x')`, `${q} > 3` (>=, <, <=),
                             `${q} = ''` / `${q} != ''`, `and`, `or`, `not(...)`;
                             order comparisons on a choice list named by
                             numbers (a scale); count-selected(${q}) and
                             string-length(${q}) > 0 / = 0
  extra columns (Voices extensions): `dimension`, `sensitive` (yes/no) on
  question rows, `content_warning::<language>` on begin group rows.

Decided on purpose:
  - note rows are skipped with a warning (display-only text; nothing to
    answer), so organisers can move crucial text into a hint or a section's
    content warning;
  - metadata rows (start, end, today, deviceid, username, audit, ...) are
    skipped with a warning per row: Voices never records such data;
  - `required`, `appearance`, media, `guidance_hint`, `default` and messages
    are ignored with a warning: every Voices question is skippable and the
    participant pages have their own layout;
  - other constraints, `choice_filter` and choice `parameters` (randomize)
    are dropped with a warning: they only narrow or order what may be
    answered, and answers are still checked against type and choices;
  - texts missing in one of the form's languages are imported with a
    warning at their row (a draft may be half translated; publishing is not);
  - everything else is refused, row by row, saying what to change: other
    question types (geopoint, image, calculate, time, ...), repeats,
    calculations, read-only fields, relevant expressions outside the forms
    above (who sees a question is not guessed).

Errors: ValidationFailed whose `errors` maps a sheet name ("survey",
"choices", "settings") or "form" (problems that belong to no sheet, e.g. an
unreadable file) to a list of {"sheet", "row", "name", "reason"}, and whose `warnings` lists
what would have been skipped, in the same shape; `row` is the spreadsheet row
as Excel shows it (header = 1, so a problem with a column points at row 1).
pyxform checks the form as a whole too; its messages come prefixed "pyxform:"
and are dropped when Voices already explained that row. A fault inside
pyxform itself (anything but PyXFormError) is logged, not shown.

pyxform is used for reading (its header aliases and `label::Language (xx)`
grouping, with row numbers kept) and for whole-form checks; the mapping is
done here on the grouped rows. `dealias_and_group_headers` lives in
pyxform.parsing, which is not a documented API: the tests pin its behaviour.
"""

from .importer import XLSFormImport, import_xlsform, read_xlsform
from .languages import language_code
from .problems import CHOICES, FORM, SETTINGS, SURVEY

__all__ = [
    "CHOICES",
    "FORM",
    "SETTINGS",
    "SURVEY",
    "XLSFormImport",
    "import_xlsform",
    "language_code",
    "read_xlsform",
]
