"""XLSForms shaped like the ones organisations bring from KoboToolbox, ODK and the XLSForm examples.

Each form is written here and has its expected outcome: imported (and then publishable in the
consultation's languages), or refused with the rows and the words that say what to change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .workbooks import xls, xlsx

EN, FR, ES, AR = (
    "label::English (en)",
    "label::French (fr)",
    "label::Español (es)",
    "label::Arabic (ar)",
)


@dataclass
class Form:
    survey: list[list]
    choices: list[list] | None = None
    settings: list[list] | None = None
    languages: list[str] = field(default_factory=lambda: ["en"])  # the consultation's
    legacy_xls: bool = False
    questions: list[str] | None = None  # imported: the question ids in order
    warned: dict[tuple[str, int], str] = field(default_factory=dict)  # (sheet, row) -> words
    refused: dict[tuple[str, int], str] = field(
        default_factory=dict
    )  # refused: (sheet, row) -> words

    def data(self) -> bytes:
        return (xls if self.legacy_xls else xlsx)(self.survey, self.choices, self.settings)


YES_NO_PLAIN = [["list_name", "name", "label"], ["yes_no", "yes", "Yes"], ["yes_no", "no", "No"]]

CORPUS = {
    # KoboToolbox's form builder: start/end/today/deviceid rows, plain label and hint, required,
    # $-prefixed bookkeeping columns, a constraint naming its own question, a version in settings.
    "kobo_new_form": Form(
        survey=[
            ["type", "name", "label", "hint", "required", "constraint", "$kuid", "appearance"],
            ["start", "start", None, None, None, None, "a1", None],
            ["end", "end", None, None, None, None, "a2", None],
            ["today", "today", None, None, None, None, "a3", None],
            ["deviceid", "deviceid", None, None, None, None, "a4", None],
            [
                "integer",
                "age",
                "How old are you?",
                "In years",
                "true",
                "${age} > 0 and ${age} < 120",
                "a5",
                None,
            ],
            [
                "select_one yes_no",
                "safe_now",
                "Do you feel safe now?",
                None,
                "true",
                None,
                "a6",
                "horizontal",
            ],
            [
                "text",
                "what_helped",
                "What helped you most?",
                None,
                "false",
                None,
                "a7",
                "multiline",
            ],
        ],
        choices=YES_NO_PLAIN,
        settings=[["form_title", "version"], ["Support services feedback", "vHn2Kc8s"]],
        questions=["age", "safe_now", "what_helped"],
        warned={("survey", 2): "skipped", ("survey", 5): "skipped", ("survey", 1): "$kuid"},
    ),
    # ODK's sample shape: translated labels and hints, groups with relevant, selected(), a range.
    "odk_translated_groups": Form(
        survey=[
            [
                "type",
                "name",
                EN,
                FR,
                "hint::English (en)",
                "hint::French (fr)",
                "relevant",
                "parameters",
            ],
            [
                "select_multiple services",
                "services",
                "Which services did you use?",
                "Quels services avez-vous utilisés ?",
                "Choose all that apply",
                "Choisissez tout ce qui s'applique",
                None,
                None,
            ],
            [
                "begin_group",
                "housing",
                "Housing",
                "Logement",
                None,
                None,
                "selected(${services}, 'shelter')",
                None,
            ],
            [
                "range",
                "housing_rating",
                "How good was the shelter?",
                "Quelle était la qualité de l'hébergement ?",
                None,
                None,
                None,
                "start=1 end=5 step=1",
            ],
            [
                "text",
                "housing_comment",
                "Anything to add?",
                "Autre chose ?",
                None,
                None,
                "${housing_rating} <= 2",
                None,
            ],
            ["end_group", None, None, None, None, None, None, None],
            [
                "date",
                "last_contact",
                "When did you last get support?",
                "Quand avez-vous reçu de l'aide ?",
                None,
                None,
                "${services} != ''",
                None,
            ],
        ],
        choices=[
            ["list_name", "name", EN, FR],
            ["services", "shelter", "Shelter", "Hébergement"],
            ["services", "legal", "Legal advice", "Conseil juridique"],
            ["services", "health", "Health care", "Soins"],
        ],
        settings=[
            ["form_title", "form_id", "default_language"],
            ["Services", "services", "English (en)"],
        ],
        languages=["en", "fr"],
        questions=["services", "housing_rating", "housing_comment", "last_contact"],
    ),
    # pyxform's example workbooks are legacy .xls with plain labels, notes and required columns.
    "pyxform_example_xls": Form(
        survey=[
            ["type", "name", "label", "required"],
            ["note", "intro", "This survey is about the support you received.", None],
            ["select_one yes_no", "received", "Did you receive support?", "yes"],
            ["select_multiple kinds", "kinds", "What kinds?", None],
            ["decimal", "distance", "How far did you travel (km)?", None],
        ],
        choices=[
            *YES_NO_PLAIN,
            ["kinds", "food", "Food"],
            ["kinds", "money", "Money"],
            ["kinds", "advice", "Advice"],
        ],
        legacy_xls=True,
        questions=["received", "kinds", "distance"],
        warned={("survey", 2): "notes are not imported", ("survey", 1): "required"},
    ),
    # The XLSForm documentation's style: Spanish with accents in choice names, a plain hint column
    # beside translated labels, a group without a label used for layout.
    "xlsform_docs_spanish": Form(
        survey=[
            ["type", "name", ES, "hint", "appearance"],
            ["begin group", "page_1", None, None, "field-list"],
            ["select_one sí_no", "apoyo", "¿Recibió apoyo?", "Una respuesta", None],
            ["text", "comentario", "Comentarios", None, None],
            ["end group", None, None, None, None],
        ],
        choices=[["list_name", "name", ES], ["sí_no", "sí", "Sí"], ["sí_no", "no", "No"]],
        settings=[["default_language"], ["Español (es)"]],
        languages=["es"],
        questions=["apoyo", "comentario"],
        warned={("survey", 2): "no label", ("choices", 2): "'si'"},
    ),
    # Arabic and English side by side, metadata that Kobo adds, a content warning on a group.
    "arabic_english": Form(
        survey=[
            [
                "type",
                "name",
                AR,
                EN,
                "content_warning::Arabic (ar)",
                "content_warning::English (en)",
                "constraint",
            ],
            ["start", "start", None, None, None, None, None],
            [
                "begin group",
                "journey",
                "الرحلة",
                "Your journey",
                "أسئلة صعبة",
                "Difficult questions",
                None,
            ],
            [
                "integer",
                "months",
                "كم شهراً؟",
                "How many months?",
                None,
                None,
                ". >= 0 and . <= 600",
            ],
            ["text", "story", "أخبرنا", "Tell us", None, None, "string-length(.) <= 1000"],
            ["end group", None, None, None, None, None, None],
        ],
        languages=["ar", "en"],
        questions=["months", "story"],
        warned={("survey", 2): "skipped"},
    ),
    # ODK forms nest groups: a module with a layout group inside (no label, field-list).
    "odk_nested_groups": Form(
        survey=[
            ["type", "name", EN, "appearance", "relevant"],
            ["select_one yes_no", "consent_to_more", "May we ask about your work?", None, None],
            ["begin group", "work", "Your work", None, "${consent_to_more} = 'yes'"],
            ["integer", "hours", "Hours a day", None, None],
            ["begin group", "pay", None, "field-list", None],  # 5
            ["select_one yes_no", "paid", "Were you paid?", None, None],
            ["decimal", "amount", "How much?", None, "${paid} = 'yes'"],
            ["end group", None, None, None, None],
            ["text", "work_other", "Anything else about work?", None, None],
            ["end group", None, None, None, None],
        ],
        choices=[["list_name", "name", EN], ["yes_no", "yes", "Yes"], ["yes_no", "no", "No"]],
        questions=["consent_to_more", "hours", "paid", "amount", "work_other"],
        warned={("survey", 5): "inside group 'work'"},
    ),
    # A plain label next to a French one: the plain column is the consultation's other language.
    "plain_and_french": Form(
        survey=[
            ["type", "name", "label", FR],
            ["text", "q", "What would help?", "Qu'est-ce qui aiderait ?"],
        ],
        languages=["fr", "en"],
        questions=["q"],
    ),
    # Chinese and Russian, numbers as choice names.
    "chinese_russian": Form(
        survey=[
            ["type", "name", "label::中文 (zh)", "label::Русский (ru)"],
            ["select_one scale", "trust", "您有多信任?", "Насколько вы доверяете?"],
        ],
        choices=[
            ["list_name", "name", "label::中文 (zh)", "label::Русский (ru)"],
            ["scale", 1, "不", "Нет"],
            ["scale", 2, "有点", "Немного"],
            ["scale", 3, "很", "Очень"],
        ],
        languages=["zh", "ru"],
        questions=["trust"],
    ),
    # A household survey: location, photo, a repeat and a calculation; each refused with what to do.
    "household_survey": Form(
        survey=[
            ["type", "name", "label", "calculation"],
            ["geopoint", "location", "Where is the household?", None],  # 2
            ["image", "photo", "Photo of the house", None],  # 3
            ["begin repeat", "members", "Household members", None],  # 4
            ["text", "member_name", "Name", None],
            ["end repeat", None, None, None],
            ["calculate", "size", None, "count(${member_name})"],  # 7
            ["integer", "rooms", "How many rooms?", None],
        ],
        refused={
            ("survey", 2): "delete the row",
            ("survey", 3): "delete the row",
            ("survey", 4): "change it to 'begin group'",
            ("survey", 7): "delete the row",
        },
    ),
    # Cascading selects, or_other and choices from a file, as Kobo projects often have: the file is
    # refused, the filter and or_other are kept as well as Voices can.
    "cascading_and_file": Form(
        survey=[
            ["type", "name", "label", "choice_filter"],
            ["select_one region", "region", "Region", None],
            ["select_one district", "district", "District", "region = ${region}"],  # 3
            ["select_one_from_file towns.csv", "town", "Town", None],  # 4
            ["select_one yes_no", "moved", "Did you move?", None],
            ["select_one yes_no or_other", "again", "Again?", None],  # 6
        ],
        choices=[
            ["list_name", "name", "label", "region"],
            ["yes_no", "yes", "Yes", None],
            ["yes_no", "no", "No", None],
            ["region", "north", "North", None],
            ["region", "south", "South", None],
            ["district", "d1", "District 1", "north"],
            ["district", "d2", "District 2", "south"],
        ],
        refused={("survey", 4): "into the choices sheet"},
        warned={
            ("survey", 3): "the whole choice list is offered",
            ("survey", 6): "adds the choice 'other'",
        },
    ),
    # Times and a barcode: each refused naming the type to use instead; the phone-number pattern
    # is dropped with a warning.
    "times_and_patterns": Form(
        survey=[
            ["type", "name", "label", "constraint"],
            ["time", "arrived", "What time did you arrive?", None],  # 2
            ["datetime", "left", "When did you leave?", None],  # 3
            ["barcode", "card", "Scan your card", None],  # 4
            ["text", "phone", "Phone number", "regex(., '^[0-9]{10}$')"],  # 5
        ],
        refused={
            ("survey", 2): "change the type to date",
            ("survey", 3): "change the type to date",
            ("survey", 4): "change the type to text",
        },
        warned={("survey", 5): "is not kept"},
    ),
    # Only metadata and notes: nothing to answer.
    "nothing_to_answer": Form(
        survey=[["type", "name", "label"], ["start", "start", None], ["note", "hello", "Hello"]],
        refused={("survey", 0): "add rows of type"},
    ),
    # A skip rule on a metadata row cannot be kept.
    "relevant_on_metadata": Form(
        survey=[
            ["type", "name", "label", "relevant"],
            ["username", "username", None, None],
            ["text", "q", "Question", "${username} != ''"],
        ],  # 3
        refused={("survey", 3): "clear it"},
    ),
}
