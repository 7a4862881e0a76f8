"""Demo data for `make run`: one organisation, its staff, and an open consultation (loaded into an empty store).

Everything goes through the public API of the gateway, as a real organiser would do it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import requests

LANGS = ("en", "ar", "fr", "es", "ru", "zh")


def t(en: str, ar: str, fr: str, es: str, ru: str, zh: str) -> dict[str, str]:
    return dict(zip(LANGS, (en, ar, fr, es, ru, zh), strict=True))


SURVEY = {
    "languages": list(LANGS),
    "sections": [
        {
            "id": "about",
            "title": t("About you", "عنك", "À propos de vous", "Sobre usted", "О вас", "关于您"),
            "questions": [
                {
                    "id": "region",
                    "type": "single_choice",
                    "dimension": True,
                    "label": t(
                        "Where do you live now?",
                        "أين تعيش الآن؟",
                        "Où vivez-vous maintenant ?",
                        "¿Dónde vive ahora?",
                        "Где вы сейчас живёте?",
                        "您现在住在哪里？",
                    ),
                    "options": [
                        {
                            "code": "north",
                            "label": t("North", "الشمال", "Nord", "Norte", "Север", "北部"),
                        },
                        {
                            "code": "south",
                            "label": t("South", "الجنوب", "Sud", "Sur", "Юг", "南部"),
                        },
                        {
                            "code": "capital",
                            "label": t(
                                "The capital",
                                "العاصمة",
                                "La capitale",
                                "La capital",
                                "Столица",
                                "首都",
                            ),
                        },
                    ],
                },
                {
                    "id": "age_band",
                    "type": "single_choice",
                    "dimension": True,
                    "label": t(
                        "How old are you?",
                        "كم عمرك؟",
                        "Quel âge avez-vous ?",
                        "¿Cuántos años tiene?",
                        "Сколько вам лет?",
                        "您多大年纪？",
                    ),
                    "options": [
                        {
                            "code": "18-24",
                            "label": t(
                                "18 to 24", "18 إلى 24", "18 à 24", "18 a 24", "18–24", "18至24岁"
                            ),
                        },
                        {
                            "code": "25-39",
                            "label": t(
                                "25 to 39", "25 إلى 39", "25 à 39", "25 a 39", "25–39", "25至39岁"
                            ),
                        },
                        {
                            "code": "40_plus",
                            "label": t(
                                "40 or older",
                                "40 أو أكثر",
                                "40 ou plus",
                                "40 o más",
                                "40 и старше",
                                "40岁及以上",
                            ),
                        },
                    ],
                },
            ],
        },
        {
            "id": "support",
            "title": t(
                "Support you received",
                "الدعم الذي تلقيته",
                "Le soutien reçu",
                "El apoyo recibido",
                "Полученная помощь",
                "您得到的支持",
            ),
            "content_warning": t(
                "The next questions ask about the time after you left. You can skip any of them.",
                "الأسئلة التالية عن الفترة بعد مغادرتك. يمكنك تخطي أي منها.",
                "Les questions suivantes portent sur la période après votre départ. Vous pouvez en passer.",
                "Las siguientes preguntas tratan del tiempo después de salir. Puede saltar cualquiera.",
                "Следующие вопросы о времени после того, как вы ушли. Любой можно пропустить.",
                "接下来的问题涉及您离开之后的时间。您可以跳过任何问题。",
            ),
            "questions": [
                {
                    "id": "got_help",
                    "type": "single_choice",
                    "label": t(
                        "Did you get help when you needed it?",
                        "هل حصلت على مساعدة عندما احتجتها؟",
                        "Avez-vous reçu de l'aide quand vous en aviez besoin ?",
                        "¿Recibió ayuda cuando la necesitó?",
                        "Получили ли вы помощь, когда она была нужна?",
                        "您需要帮助时得到帮助了吗？",
                    ),
                    "options": [
                        {"code": "yes", "label": t("Yes", "نعم", "Oui", "Sí", "Да", "是")},
                        {
                            "code": "partly",
                            "label": t(
                                "Partly", "جزئيًا", "En partie", "En parte", "Частично", "部分"
                            ),
                        },
                        {"code": "no", "label": t("No", "لا", "Non", "No", "Нет", "否")},
                    ],
                },
                {
                    "id": "help_rating",
                    "type": "rating",
                    "min": 1,
                    "max": 5,
                    "relevant": {"question": "got_help", "op": "not_equals", "value": "no"},
                    "label": t(
                        "How useful was the help? (1 = not useful, 5 = very useful)",
                        "ما مدى فائدة المساعدة؟ (1 = غير مفيدة، 5 = مفيدة جدًا)",
                        "L'aide était-elle utile ? (1 = pas utile, 5 = très utile)",
                        "¿Qué tan útil fue la ayuda? (1 = nada útil, 5 = muy útil)",
                        "Насколько полезной была помощь? (1 = бесполезна, 5 = очень полезна)",
                        "帮助有多大用处？（1 = 没用，5 = 非常有用）",
                    ),
                },
                {
                    "id": "what_would_help",
                    "type": "free_text",
                    "max_length": 1000,
                    "label": t(
                        "What would have helped you most?",
                        "ما الذي كان سيساعدك أكثر؟",
                        "Qu'est-ce qui vous aurait le plus aidé ?",
                        "¿Qué le habría ayudado más?",
                        "Что помогло бы вам больше всего?",
                        "什么对您最有帮助？",
                    ),
                },
            ],
        },
    ],
}

CONSENT_BODY = t(
    "Survivor Voices Network runs this consultation. Your answers help change support services. "
    "You choose what your answers may be used for. You can skip any question and stop at any time. "
    "You can withdraw later with your receipt code.",
    "تدير شبكة أصوات الناجين هذه الاستشارة. تساعد إجاباتك في تغيير خدمات الدعم. "
    "أنت تختار كيف تُستخدم إجاباتك. يمكنك تخطي أي سؤال والتوقف في أي وقت. يمكنك الانسحاب لاحقًا برمز الإيصال.",
    "Le réseau Survivor Voices mène cette consultation. Vos réponses aident à changer les services d'aide. "
    "Vous choisissez à quoi servent vos réponses. Vous pouvez passer une question et arrêter à tout moment. "
    "Vous pouvez retirer votre accord plus tard avec votre code de reçu.",
    "La red Survivor Voices realiza esta consulta. Sus respuestas ayudan a cambiar los servicios de apoyo. "
    "Usted elige para qué se usan sus respuestas. Puede saltar cualquier pregunta y parar cuando quiera. "
    "Puede retirar su consentimiento más tarde con su código de recibo.",
    "Эту консультацию проводит сеть Survivor Voices. Ваши ответы помогают улучшить помощь. "
    "Вы сами решаете, как используются ваши ответы. Любой вопрос можно пропустить и остановиться в любой момент. "
    "Позже вы можете отозвать согласие с кодом квитанции.",
    "本次咨询由幸存者之声网络组织。您的回答有助于改进支持服务。您可以选择回答的用途。"
    "您可以跳过任何问题，随时停止。以后可以用回执码撤回同意。",
)

TITLE = t(
    "After leaving: what helped, what did not",
    "بعد المغادرة: ما الذي ساعد وما الذي لم يساعد",
    "Après le départ : ce qui a aidé, ce qui n'a pas aidé",
    "Después de salir: qué ayudó y qué no",
    "После ухода: что помогло, а что нет",
    "离开之后：什么有帮助，什么没有",
)
CONSENT_TITLE = t(
    "Your consent",
    "موافقتك",
    "Votre consentement",
    "Su consentimiento",
    "Ваше согласие",
    "您的同意",
)

PURPOSE_TEXT = {
    "participate": t(
        "Keep your answers for this consultation.",
        "حفظ إجاباتك لهذه الاستشارة.",
        "Garder vos réponses pour cette consultation.",
        "Guardar sus respuestas para esta consulta.",
        "Хранить ваши ответы для этой консультации.",
        "为本次咨询保存您的回答。",
    ),
    "aggregate_reporting": t(
        "Count your answers in group totals. No one can be picked out.",
        "احتساب إجاباتك ضمن مجاميع. لا يمكن التعرف على أي شخص.",
        "Compter vos réponses dans des totaux. Personne ne peut être identifié.",
        "Contar sus respuestas en totales. Nadie puede ser identificado.",
        "Учитывать ваши ответы в общих итогах. Никого нельзя узнать.",
        "将您的回答计入总数。任何人都无法被识别。",
    ),
    "quote_anonymised": t(
        "Quote your written words without your name, after a check.",
        "اقتباس كلماتك المكتوبة دون اسمك، بعد مراجعة.",
        "Citer vos mots écrits sans votre nom, après vérification.",
        "Citar sus palabras escritas sin su nombre, tras una revisión.",
        "Цитировать ваши слова без имени, после проверки.",
        "经审核后，不具名引用您写的话。",
    ),
    "follow_up_contact": t(
        "Contact you again later, only if you tell us how. You can skip this.",
        "التواصل معك لاحقًا، فقط إذا أخبرتنا كيف. يمكنك تخطي ذلك.",
        "Vous recontacter plus tard, seulement si vous nous dites comment. Vous pouvez passer.",
        "Volver a contactarle más tarde, solo si nos dice cómo. Puede omitirlo.",
        "Связаться с вами позже, только если вы скажете как. Это можно пропустить.",
        "以后再联系您，仅当您告诉我们联系方式时。您可以跳过。",
    ),
}


# The demo's staff accounts besides the admin (whose account the gateway makes at first start).
DEMO_ROLES = ("organiser", "policy", "auditor")
ADMIN_EMAIL = "admin@localhost"


def demo_email(role: str) -> str:
    return f"{role}@demo.invalid"


class DemoLoader:
    def __init__(self, gateway_url: str, admin_token: str) -> None:
        self.url = gateway_url.rstrip("/")
        self.session = requests.Session()
        self.admin = admin_token

    def call(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> dict:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.session.request(
            method, f"{self.url}{path}", headers=headers, timeout=15, **kwargs
        )
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path} -> {response.status_code}: {response.text}")
        return response.json() if response.content else {}

    def staff_account(self, email: str, role: str, organisation_id: str | None) -> dict:
        """A new demo account with an API token and a password: {account_id, email, token, password}."""
        account = self.call(
            "POST",
            "/api/v1/accounts",
            self.admin,
            json={"email": email, "role": role, "organisation_id": organisation_id},
        )
        token = self.call(
            "POST",
            "/api/v1/tokens",
            self.admin,
            json={"account_id": account["account_id"], "label": "demo"},
        )["token"]
        return {
            "account_id": account["account_id"],
            "email": email,
            "token": token,
            "password": self.set_demo_password(account["account_id"]),
        }

    def set_demo_password(self, account_id: str) -> str:
        """A new random password for a demo account (for the staff pages), returned once."""
        password = "-".join(secrets.token_urlsafe(6) for _ in range(3))
        self.call(
            "PUT",
            f"/api/v1/accounts/{account_id}/password",
            self.admin,
            json={"password": password},
        )
        return password

    def staff_sign_ins(self, demo: dict) -> dict:
        """`demo` with an email address and a password per demo account, the admin's included,
        giving passwords to accounts that have none recorded (demo data of an older version)."""
        accounts = dict(demo.get("staff_accounts") or {})
        if "admin" not in accounts:
            admin = self.call("GET", "/api/v1/me", self.admin)
            accounts["admin"] = {
                "email": ADMIN_EMAIL,
                "password": self.set_demo_password(admin["subject"]),
            }
        missing = [role for role in DEMO_ROLES if role not in accounts]
        if missing:
            listed = self.call("GET", "/api/v1/accounts", self.admin, params={"page_size": 100})
            by_email = {a["email"]: a["account_id"] for a in listed}
            for role in missing:
                email = demo_email(role)
                if email in by_email:
                    accounts[role] = {
                        "email": email,
                        "password": self.set_demo_password(by_email[email]),
                    }
        return {**demo, "staff_accounts": accounts}

    def load(self) -> dict[str, str]:
        org = self.call(
            "POST",
            "/api/v1/organisations",
            self.admin,
            json={"name": "Survivor Voices Network (demo)"},
        )
        people = {
            role: self.staff_account(demo_email(role), role, org["organisation_id"])
            for role in DEMO_ROLES
        }
        tokens = {role: person["token"] for role, person in people.items()}
        organiser = tokens["organiser"]
        consultation = self.call(
            "POST",
            "/api/v1/consultations",
            organiser,
            json={
                "title": TITLE["en"],
                "titles": TITLE,
                "languages": list(LANGS),
                "purposes": [
                    "participate",
                    "aggregate_reporting",
                    "quote_anonymised",
                    "follow_up_contact",
                ],
                "min_cell_size": 10,
                "epsilon_budget": 3.0,
                "survey": SURVEY,
            },
        )
        cid = consultation["consultation_id"]
        self.publish_consent_text(cid, organiser)
        # The surveys service learns of the published consent text from an event: wait for it.
        self.retrying(
            lambda: self.call("POST", f"/api/v1/consultations/{cid}/publish", organiser),
            "consent_text_missing",
        )
        link = self.call(
            "POST",
            f"/api/v1/consultations/{cid}/invitations",
            organiser,
            json={"kind": "link", "label": "demo link"},
        )
        return self.staff_sign_ins(
            {
                "organisation_id": org["organisation_id"],
                "consultation_id": cid,
                "invitation_code": link["code"],
                **{f"{role}_token": token for role, token in tokens.items()},
                "staff_accounts": {
                    role: {"email": person["email"], "password": person["password"]}
                    for role, person in people.items()
                },
            }
        )

    def publish_consent_text(self, cid: str, organiser: str) -> None:
        def publish() -> None:
            for lang in LANGS:
                self.call(
                    "POST",
                    f"/api/v1/consent/consultations/{cid}/texts",
                    organiser,
                    json={
                        "version": 1,
                        "language": lang,
                        "title": CONSENT_TITLE[lang],
                        "body": CONSENT_BODY[lang],
                        "purposes": {p: text[lang] for p, text in PURPOSE_TEXT.items()},
                        "controller": {
                            "name": "Survivor Voices Network (demo)",
                            "email": "privacy@demo.invalid",
                        },
                        "jurisdiction": "GB",
                        "policy_url": "https://demo.invalid/privacy",
                    },
                )
            self.call("POST", f"/api/v1/consent/consultations/{cid}/texts/1/publish", organiser)

        # The consent service learns of the consultation from an event: wait for it.
        self.retrying(publish, "-> 404:")

    @staticmethod
    def retrying(step: Callable[[], object], refusal: str, attempts: int = 50) -> None:
        """Run `step` again while its refusal mentions `refusal` (another service has not yet seen an event)."""
        import time

        for attempt in range(attempts):
            try:
                step()
                return
            except RuntimeError as exc:
                if refusal not in str(exc) or attempt == attempts - 1:
                    raise
                time.sleep(0.2)
