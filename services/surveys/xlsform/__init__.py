"""XLSForm (ODK / KoboToolbox) import into a Voices survey definition.

What is mapped:
  select_one L            -> single_choice (options from list L of the choices sheet)
  select_multiple L       -> multiple_choice
  integer / decimal       -> number (integer flag); a constraint made only of
                             `. >= n`, `. <= n` (and `>`/`<` for integers)
                             joined by `and` becomes min/max
  range                   -> rating (whole-number start..end, step 1, <= 11 points)
  date                    -> date
  text                    -> free_text; `string-length(.) <= n` becomes max_length
  begin group / end group -> a section (group relevant -> section relevant);
                             runs of questions outside groups become their own
                             sections with a generic translated title
  label::Arabic (ar), label::ar, label (+ settings default_language)
                          -> translations in ar, zh, en, fr, ru, es
  relevant                -> conditions, for `${q} = 'x'`, `${q} != 'x'`,
                             `selected(${q}, 'x')`, `${q} > 3` (>=, <, <=),
                             `${q} = ''` / `${q} != ''`, `and`, `or`, `not(...)`
  extra columns (Voices extensions): `dimension`, `sensitive` (yes/no) on
  question rows, `content_warning::<language>` on begin group rows.

Decided on purpose:
  - note rows are skipped with a warning (display-only text; nothing to
    answer), so organisers can move crucial text into a hint or a section's
    content warning;
  - `required`, `appearance`, media, `guidance_hint`, `default` and messages
    are ignored with a warning: every Voices question is skippable and the
    participant pages have their own layout;
  - everything else is refused, row by row: other question types (geopoint,
    image, calculate, metadata such as deviceid or start, ...), repeats,
    nested groups, `or_other`, `choice_filter`, calculations, read-only
    fields, constraints or relevant expressions outside the forms above,
    languages outside the six.

Errors: ValidationFailed whose `errors` maps a sheet name ("survey",
"choices", "settings") or "form" (problems that belong to no sheet, e.g. an
unreadable file) to a list of {"sheet", "row", "name", "reason"}; `row` is
the spreadsheet row as Excel shows it (header = 1, so a problem with a column
points at row 1). pyxform checks the form as a whole too; its messages come
prefixed "pyxform:" and are dropped when Voices already explained that row.

pyxform is used for reading (its header aliases and `label::Language (xx)`
grouping, with row numbers kept) and for whole-form checks; the mapping is
done here on the grouped rows. `dealias_and_group_headers` lives in
pyxform.parsing, which is not a documented API: the tests pin its behaviour.
"""
from .importer import XLSFormImport, import_xlsform, read_xlsform
from .languages import language_code
from .problems import CHOICES, FORM, SETTINGS, SURVEY

__all__ = ["CHOICES", "FORM", "SETTINGS", "SURVEY", "XLSFormImport", "import_xlsform", "language_code", "read_xlsform"]
