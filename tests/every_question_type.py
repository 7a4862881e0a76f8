"""A survey with one question of each of the six types, in the six languages, and answers for it.

The demo consultation has only single choice, rating and free text; pages and schemas must also be
shown every other type, with every text in every language.
"""

from __future__ import annotations

from deploy.demo import LANGS, t

EVERY_TYPE_SURVEY = {
    "languages": list(LANGS),
    "sections": [
        {
            "id": "everything",
            "title": t(
                "Your week", "أسبوعك", "Votre semaine", "Su semana", "Ваша неделя", "您的一周"
            ),
            "questions": [
                {
                    "id": "place",
                    "type": "single_choice",
                    "dimension": True,
                    "label": t(
                        "Where do you stay?",
                        "أين تقيم؟",
                        "Où logez-vous ?",
                        "¿Dónde se queda?",
                        "Где вы живёте?",
                        "您住在哪里？",
                    ),
                    "options": [
                        {
                            "code": "shelter",
                            "label": t("Shelter", "مأوى", "Foyer", "Refugio", "Приют", "庇护所"),
                        },
                        {
                            "code": "home",
                            "label": t("Home", "المنزل", "Chez moi", "Casa", "Дом", "家"),
                        },
                    ],
                },
                {
                    "id": "needs",
                    "type": "multiple_choice",
                    "label": t(
                        "What did you need?",
                        "ماذا احتجت؟",
                        "De quoi aviez-vous besoin ?",
                        "¿Qué necesitó?",
                        "Что вам было нужно?",
                        "您需要什么？",
                    ),
                    "hint": t(
                        "Choose all that apply.",
                        "اختر كل ما ينطبق.",
                        "Choisissez tout ce qui convient.",
                        "Elija todo lo que corresponda.",
                        "Выберите всё подходящее.",
                        "选择所有适用项。",
                    ),
                    "options": [
                        {
                            "code": "housing",
                            "label": t("Housing", "سكن", "Logement", "Vivienda", "Жильё", "住房"),
                        },
                        {
                            "code": "work",
                            "label": t("Work", "عمل", "Travail", "Trabajo", "Работа", "工作"),
                        },
                        {
                            "code": "papers",
                            "label": t(
                                "Papers", "وثائق", "Papiers", "Documentos", "Документы", "证件"
                            ),
                        },
                    ],
                },
                {
                    "id": "safety",
                    "type": "rating",
                    "min": 1,
                    "max": 5,
                    "label": t(
                        "How safe do you feel? (1 to 5)",
                        "ما مدى شعورك بالأمان؟ (1 إلى 5)",
                        "Vous sentez-vous en sécurité ? (1 à 5)",
                        "¿Qué tan seguro se siente? (1 a 5)",
                        "Насколько безопасно вы себя чувствуете? (1–5)",
                        "您感觉有多安全？（1至5）",
                    ),
                },
                {
                    "id": "nights",
                    "type": "number",
                    "min": 0,
                    "max": 7,
                    "integer": True,
                    "label": t(
                        "How many nights did you sleep well?",
                        "كم ليلة نمت جيدًا؟",
                        "Combien de nuits avez-vous bien dormi ?",
                        "¿Cuántas noches durmió bien?",
                        "Сколько ночей вы хорошо спали?",
                        "您有几晚睡得好？",
                    ),
                },
                {
                    "id": "since",
                    "type": "date",
                    "label": t(
                        "Since when are you here?",
                        "منذ متى أنت هنا؟",
                        "Depuis quand êtes-vous ici ?",
                        "¿Desde cuándo está aquí?",
                        "С какого времени вы здесь?",
                        "您从什么时候开始在这里？",
                    ),
                },
                {
                    "id": "note",
                    "type": "free_text",
                    "max_length": 500,
                    "label": t(
                        "Anything else?",
                        "هل من شيء آخر؟",
                        "Autre chose ?",
                        "¿Algo más?",
                        "Что-нибудь ещё?",
                        "还有别的吗？",
                    ),
                },
            ],
        }
    ],
}

# One answer to each question, as a page form sends it and as the surveys service stores it.
EVERY_TYPE_ANSWERS = {
    "place": "shelter",
    "needs": ["housing", "papers"],
    "safety": 4,
    "nights": 3,
    "since": "2026-01-15",
    "note": "Kind people.",
}
