"""The subsidy rules as settings. Every default follows the policy text; every report prints
the settings it used, so an accountant sees exactly which reading of the rules produced a number.

Measure 5 (措施5): AI-technology spend on audiovisual content production, 30 % capped at
¥1,000,000 per company; a one-person company (OPC: 5人以下, i.e. at most 5 staff) 50 % capped at
¥500,000.
Measure 6 (措施6): production spend (rights transfer, scene production, shooting, sets and
equipment rental) converting an original literary work or IP (原创文学作品或IP) into
films/series/animation/micro-dramas with AI, 30 % capped at ¥1,000,000 per converter per year;
+20 % for works on Yizhuang themes.
从优不重复: a project that fits both measures gets the better one, never both.

Some settings are history only: recorded claims keep whatever they were computed with, but a
setting that would break a rule (claim one project under both measures, spread the Yizhuang bonus
beyond its project) is refused when it is set, naming the rule (:meth:`PolicySettings.check_policy`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from ledger.errors import FieldError, PolicyError
from ledger.money import format_fen, format_rate, parse_decimal, parse_rate, parse_yuan

POLICY_WINDOW_END = "2028-12-31"
# The measures apply from their publication; that date could not be documented here. The action
# plan they implement starts in 2025, so the window starts on its first day.
POLICY_WINDOW_START = "2025-01-01"
WINDOW_START_REASON = ("措施自发布之日起施行；本账簿未能核实其发布日期，所落实的行动方案自2025年起实施，故默认2025-01-01",
                       "the measures apply from their publication, whose date could not be documented here; the "
                       "action plan they implement starts in 2025, hence 2025-01-01 by default")
OPC_RULE_CITATION = ("附则(7)“5人以下”；《民法典》第一千二百五十九条：民法所称的“以上”、“以下”、“以内”、“届满”，包括本数",
                     "附则(7) says 5人以下; Civil Code art. 1259: 以上, 以下, 以内 and 届满 include the number itself")

CATEGORIES: dict[str, str] = {
    "ai_tech": "AI技术服务 AI technology services",
    "ip_rights": "版权转让 IP rights transfer",
    "scene": "场景制作 scene production",
    "shooting": "拍摄 shooting",
    "set_equipment": "道具及设备租赁 sets and equipment rental",
    "other": "其他 other",
}
CATEGORY_ALIASES = {v.split(" ")[0]: k for k, v in CATEGORIES.items()}

WORK_TYPES: dict[str, str] = {
    "film": "电影 film",
    "series": "剧集 series",
    "animation": "动画 animation",
    "micro_drama": "微短剧 micro-drama",
    "other": "其他 other",
    "": "未填写 not set",
}
SOURCE_KINDS: dict[str, str] = {
    "web_literature": "网络文学 web literature",
    "literature": "文学作品（小说、散文等） literary work",
    "script": "原创剧本 original screenplay",
    "comic": "漫画 comic",
    "game": "游戏 game",
    "other_ip": "其他原创IP other original IP",
    "other": "其他（非原创作品或IP） other (not an original work or IP)",
    "": "未填写 not set",
}
ORIGINAL_SOURCE_KINDS = ("web_literature", "literature", "script", "comic", "game", "other_ip")

MONEY_KEYS = ("m5_cap", "m5_opc_cap", "m6_cap", "plausible_max")  # kept in fen, written in yuan

_CHOICES: dict[str, tuple[str, ...]] = {
    "basis": ("ex_tax", "tax_inclusive"),
    "rounding": ("down", "half_up"),
    "m5_cap_scope": ("window", "year"),
    "m6_bonus_mode": ("rate_multiplied", "rate_points", "cap_raised"),
    "related_party": ("exclude", "include_flagged"),
    "unpaid": ("exclude", "include_flagged"),
    "exclusive_per": ("project", "document"),
    "m5_opc_rule": ("opc", "general"),
}

# key -> (Chinese, English) description printed on every report
DESCRIPTIONS: dict[str, tuple[str, str]] = {
    "basis": ("申报基数口径：ex_tax=不含税金额，tax_inclusive=价税合计",
              "claim base: ex_tax = amount before VAT, tax_inclusive = total with VAT"),
    "rounding": ("取整规则：每笔申报按精确金额合计后取整到分一次，down=舍去，half_up=四舍五入；取整后再封顶",
                 "rounding: the exact sum is rounded to the fen once per claim (down = truncate, "
                 "half_up = round half up), then capped"),
    "m5_rate": ("措施5比例", "measure 5 rate"),
    "m5_cap": ("措施5上限（每家企业）", "measure 5 cap per company"),
    "m5_opc_rate": ("措施5一人公司比例", "measure 5 rate for a one-person company (OPC)"),
    "m5_opc_cap": ("措施5一人公司上限", "measure 5 cap for an OPC"),
    "m5_cap_scope": ("措施5上限范围：window=整个政策期合计，year=每年", "measure 5 cap applies over: window = "
                     "the whole policy window (the text says 'per company', no year), year = each year"),
    "opc_headcount_max": ("员工人数不超过此数（含本数）即为一人公司(OPC)；依据：" + OPC_RULE_CITATION[0],
                          "a company with at most this many staff is an OPC; why: " + OPC_RULE_CITATION[1]),
    "m5_opc_rule": ("一人公司按哪条规则申报：opc=一人公司规则（默认），general=一般规则；报告同时列出两者",
                    "which rule an OPC claims: opc = the OPC rule (default), general = the general rule; reports "
                    "show both figures"),
    "m5_categories": ("措施5计入的费用类别", "expense categories counted by measure 5"),
    "m6_rate": ("措施6比例", "measure 6 rate"),
    "m6_cap": ("措施6上限（每家转化主体每年）", "measure 6 cap per converter per year"),
    "m6_yizhuang_bonus": ("亦庄主题作品加成", "bonus for works on Yizhuang themes"),
    "m6_bonus_mode": ("加成口径：rate_multiplied=比例×(1+加成)即36%，上限不变；rate_points=比例+加成即50%，上限不变"
                      "（cap_raised 提高全公司上限，已拒绝）",
                      "how the bonus applies: rate_multiplied = rate x (1 + bonus) = 36 %, same cap; "
                      "rate_points = rate + bonus = 50 %, same cap (cap_raised, which raised the whole company's "
                      "cap, is refused)"),
    "m6_categories": ("措施6计入的费用类别", "expense categories counted by measure 6"),
    "m6_work_types": ("措施6适用的作品类型", "work types measure 6 covers"),
    "m6_source_kinds": ("措施6适用的IP来源：原创文学作品或IP", "source kinds measure 6 covers: original literary works "
                        "or IP"),
    "window_start": ("政策期开始日；" + WINDOW_START_REASON[0], "policy window start; " + WINDOW_START_REASON[1]),
    "window_end": ("政策期结束日", "policy window end"),
    "related_party": ("关联方供应商发票：exclude=不计入（保守默认），include_flagged=计入并标注",
                      "invoices from related-party vendors: exclude (conservative default) or "
                      "include_flagged (counted, marked for review)"),
    "unpaid": ("无付款记录的发票：exclude=不计入（申报需付款凭证；部分付款按已付比例计入），"
               "include_flagged=计入并标注",
               "invoices with no recorded payment: exclude (claims need proof of payment; partly paid "
               "invoices count pro rata) or include_flagged"),
    "exclusive_per": ("从优不重复：一个项目只能按一项措施申报（project）",
                      "'the better one, never both': a project is claimed under one measure only (project)"),
    "plausible_max": ("单张单据金额超过此数需确认（--confirm）", "a document amount above this needs --confirm"),
}

# rule -> (key, refused value, why) for settings the policy text does not allow
_REFUSED: tuple[tuple[str, str, str], ...] = (
    ("exclusive_per", "document",
     "从优不重复：同一项目符合措施5和措施6时只能择优享受一项，document 会让同一项目分别按两项措施申报 "
     "(a project that fits both measures gets the better one, never both; 'document' would let one project "
     "be claimed under both)"),
    ("m6_bonus_mode", "cap_raised",
     "亦庄主题加成只适用于以亦庄为主题的作品本身：cap_raised 会提高全公司的年度上限，让其他项目也分享加成 "
     "(the Yizhuang bonus belongs to the themed work; 'cap_raised' raises the whole company's cap for its other "
     "projects too)"),
)


def _tuple(value: Any, field: str, allowed: dict[str, str] | None = None) -> tuple[str, ...]:
    if isinstance(value, str):
        items = tuple(x.strip() for x in value.replace("，", ",").split(",") if x.strip())
    else:
        items = tuple(str(x).strip() for x in value)
    if allowed is not None:
        for item in items:
            if item not in allowed:
                raise FieldError(field, item, f"unknown value; known: {', '.join(k for k in allowed if k)}")
    return items


@dataclass(frozen=True, slots=True)
class PolicySettings:
    basis: str = "ex_tax"
    rounding: str = "down"
    m5_rate: Decimal = Decimal("0.30")
    m5_cap: int = 100_000_000
    m5_opc_rate: Decimal = Decimal("0.50")
    m5_opc_cap: int = 50_000_000
    m5_cap_scope: str = "window"
    opc_headcount_max: int = 5
    m5_opc_rule: str = "opc"
    m5_categories: tuple[str, ...] = ("ai_tech",)
    m6_rate: Decimal = Decimal("0.30")
    m6_cap: int = 100_000_000
    m6_yizhuang_bonus: Decimal = Decimal("0.20")
    m6_bonus_mode: str = "rate_multiplied"
    m6_categories: tuple[str, ...] = ("ip_rights", "scene", "shooting", "set_equipment")
    m6_work_types: tuple[str, ...] = ("film", "series", "animation", "micro_drama")
    m6_source_kinds: tuple[str, ...] = ORIGINAL_SOURCE_KINDS
    window_start: str = POLICY_WINDOW_START
    window_end: str = POLICY_WINDOW_END
    related_party: str = "exclude"
    unpaid: str = "exclude"
    exclusive_per: str = "project"
    plausible_max: int = 1_000_000_000  # ¥10,000,000 per document

    # --- parsing ----------------------------------------------------------------------------
    @staticmethod
    def keys() -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(PolicySettings))

    @staticmethod
    def parse_value(key: str, value: str) -> Any:
        """Parse a setting from text (the CLI, the settings table); raises FieldError naming it."""
        field = f"setting {key}"
        if key not in PolicySettings.keys():
            raise FieldError("setting", key, f"unknown setting; known: {', '.join(PolicySettings.keys())}")
        text = str(value).strip()
        if key in _CHOICES:
            if text not in _CHOICES[key]:
                raise FieldError(field, value, f"must be one of {', '.join(_CHOICES[key])}")
            return text
        if key in ("m5_rate", "m5_opc_rate", "m6_rate", "m6_yizhuang_bonus"):
            return parse_rate(text, field)
        if key in MONEY_KEYS:
            return parse_yuan(text, field)  # written in yuan, kept in fen
        if key == "opc_headcount_max":
            try:
                number = int(text)
            except ValueError as e:
                raise FieldError(field, value, "must be a whole number") from e
            if number < 0:
                raise FieldError(field, value, "must not be negative")
            return number
        if key in ("m5_categories", "m6_categories"):
            return _tuple(text, field, CATEGORIES)
        if key == "m6_work_types":
            return _tuple(text, field, WORK_TYPES)
        if key == "m6_source_kinds":
            return _tuple(text, field, SOURCE_KINDS)
        if key in ("window_start", "window_end"):
            if key == "window_start" and not text:
                return ""
            from ledger.validate import parse_date

            return parse_date(text, field, allow_future=True).isoformat()
        raise FieldError(field, value, "cannot be parsed")  # pragma: no cover - every key handled above

    def with_values(self, values: dict[str, str]) -> PolicySettings:
        values = dict(values)
        if "opc_headcount_below" in values:  # older ledgers: "fewer than N" is "at most N - 1"
            below = values.pop("opc_headcount_below")
            values.setdefault("opc_headcount_max", str(int(below) - 1))
        parsed = {k: self.parse_value(k, v) for k, v in values.items()}
        result = dataclasses.replace(self, **parsed)
        result.check()
        return result

    def check(self) -> None:
        if self.window_start and self.window_start > self.window_end:
            raise FieldError("setting window_start", self.window_start, f"is after window_end {self.window_end}")
        parse_decimal(self.m5_rate, "setting m5_rate")

    def check_policy(self) -> None:
        """Refuse settings the policy text does not allow, naming the rule they break. Run when a
        setting is changed and before a claim is computed; recorded claims are history and keep
        what they were computed with."""
        for key, value, why in _REFUSED:
            if getattr(self, key) == value:
                raise PolicyError(f"setting {key} = {value} is refused: {why}",
                                  hint=f"keep {key} = {getattr(PolicySettings(), key)}")
        if not self.window_start:
            raise PolicyError("setting window_start must not be empty: the measures apply from their publication, "
                              "not before", hint=f"the default is {POLICY_WINDOW_START} ({WINDOW_START_REASON[1]})")

    # --- presentation -----------------------------------------------------------------------
    def text_value(self, key: str) -> str:
        """The value as written in settings and on reports (money in yuan, rates in %)."""
        value = getattr(self, key)
        if key in MONEY_KEYS:
            return format_fen(value, grouping=False)
        if isinstance(value, Decimal):
            return format_rate(value)
        if isinstance(value, tuple):
            return ",".join(value)
        return str(value)

    def display_value(self, key: str) -> str:
        value = getattr(self, key)
        if key in MONEY_KEYS:
            return "¥" + format_fen(value)
        if key == "window_start" and not value:
            return "(未设置 not set)"
        return self.text_value(key)

    def describe(self) -> list[tuple[str, str, str, str]]:
        """Rows of (key, value, 中文说明, English description) for reports."""
        rows = []
        for key in self.keys():
            zh, en = DESCRIPTIONS[key]
            rows.append((key, self.display_value(key), zh, en))
        return rows

    def to_dict(self) -> dict[str, str]:
        return {key: self.text_value(key) for key in self.keys()}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> PolicySettings:
        return cls().with_values(data)

    # --- derived ----------------------------------------------------------------------------
    def in_window(self, day: date) -> bool:
        text = day.isoformat()
        if self.window_start and text < self.window_start:
            return False
        return text <= self.window_end

    def is_opc(self, headcount: int) -> bool:
        """附则(7) 5人以下: at most ``opc_headcount_max`` staff (以下 includes the number)."""
        return headcount <= self.opc_headcount_max
