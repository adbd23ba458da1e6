"""Claim computation for measures 5 and 6: pure functions over invoice views loaded by the API.

How a claim is computed (printed on every report):

1. Base: invoices of the company dated in the claim year, in the measure's expense categories,
   valued ex-tax or tax-inclusive (setting ``basis``), net of their red-letter invoices.
   Excluded, with the reason listed: dates outside the policy window, related-party vendors
   (setting), invoices with no recorded payment (setting; a partly paid invoice counts the paid
   share net of refunds, rounded down to the fen), invoices fully cancelled by red-letter ones,
   documents already in another active claim, and - 从优不重复 - projects already claimed under
   the other measure. Measure 6 also needs the invoice's project to convert an original literary
   work or IP into an eligible work type, with release evidence and recorded AI usage.
   Measure 5 for an OPC (by the claim year's headcount) computes both the OPC and the general
   rule and claims the one setting ``m5_opc_rule`` names.
2. Exact amount: the sum over lines of base x rate, kept exact (Decimal, in fen).
3. Rounding: once per claim, to the fen (setting ``rounding``: down by default).
4. Cap: the rounded amount is capped at what is left of the cap after other active claims
   of the same measure in the cap's scope (per company over the window for measure 5 by
   default; per year for measure 6).
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from ledger.errors import PolicyError
from ledger.models import Company, Project
from ledger.money import format_fen, format_rate, rate_str, round_fen, to_capital
from ledger.policy import CATEGORIES, PolicySettings

log = logging.getLogger(__name__)

MEASURE_NAMES = {
    5: "措施5 AI技术应用（AI-technology spend on audiovisual production）",
    6: "措施6 网络文学IP转化（web-literature IP conversion with AI）",
}
MAX_BRUTE_FORCE_PROJECTS = 12


@dataclass(frozen=True, slots=True)
class PaymentView:
    id: int
    pay_date: date
    amount_fen: int
    bank_ref: str
    has_file: bool
    refund: bool = False  # money returned (a negative amount)


@dataclass(frozen=True, slots=True)
class RedLetterView:
    """A red-letter invoice (红字发票): its own number and date, negative amounts, linked to its blue."""

    id: int
    number: str
    code: str
    issue_date: date
    ex_tax_fen: int
    tax_fen: int
    total_fen: int
    reason: str


@dataclass(slots=True)
class InvoiceView:
    id: int
    number: str
    code: str
    invoice_type: str
    issue_date: date
    category: str
    ex_tax_fen: int
    tax_fen: int
    total_fen: int
    tax_rate: str
    vendor_id: int
    vendor_name: str
    vendor_uscc: str
    related_party: bool
    project_id: int | None
    project_name: str
    work_type: str
    source_kind: str
    yizhuang: bool
    contract_number: str
    file_sha256: str
    paid_fen: int
    payments: list[PaymentView] = field(default_factory=list)  # refunds are negative payments
    claimed_in: list[int] = field(default_factory=list)  # ids of active claims holding it
    red_letters: list[RedLetterView] = field(default_factory=list)
    released: bool = False  # the project's work has release evidence (platform, date, licence number)
    ai_converted: bool = False  # the project has recorded AI usage (usage events or AI-service invoices)
    source_ip: str = ""

    @property
    def net_ex_tax_fen(self) -> int:
        """Ex-tax amount after red-letter invoices."""
        return self.ex_tax_fen + sum(r.ex_tax_fen for r in self.red_letters)

    @property
    def net_tax_fen(self) -> int:
        return self.tax_fen + sum(r.tax_fen for r in self.red_letters)

    @property
    def net_total_fen(self) -> int:
        return self.total_fen + sum(r.total_fen for r in self.red_letters)

    @property
    def category_label(self) -> str:
        return CATEGORIES.get(self.category, self.category).split(" ")[0]


@dataclass(frozen=True, slots=True)
class ActiveClaim:
    id: int
    measure: int
    year: int
    project_id: int | None
    claim_fen: int
    project_ids: frozenset[int]  # projects of its lines


@dataclass(slots=True)
class ClaimLine:
    invoice: InvoiceView
    base_fen: int
    rate: Decimal
    amount: Decimal  # base x rate, exact, in fen
    flags: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ExcludedInvoice:
    invoice: InvoiceView
    reasons: list[str]
    codes: set[str] = field(default_factory=set)  # machine-readable: window, no_project, work_type,
    # source_kind, assigned, project_held, held, related_party, unpaid, not_recorded


@dataclass(slots=True)
class ClaimResult:
    measure: int
    year: int
    company: Company
    project: Project | None
    settings: PolicySettings
    opc: bool
    lines: list[ClaimLine]
    excluded: list[ExcludedInvoice]
    not_applicable: list[InvoiceView]  # in scope and year, other expense categories
    base_fen: int
    raw: Decimal
    rounded_fen: int
    cap_fen: int
    cap_used_fen: int
    cap_used_by: list[int]
    claim_fen: int
    chain_head: str
    computed_at: str
    status: str = "draft"  # draft | recorded | changed_since_recorded | withdrawn
    claim_id: int | None = None
    recorded_claim_fen: int | None = None
    notes: list[str] = field(default_factory=list)
    comparison: dict[str, Any] | None = None
    excluded_projects: frozenset[int] = frozenset()  # projects left to the other measure by a best plan
    rule: str = ""  # measure 5: "opc" or "general", the rule this claim uses
    rule_figures: dict[str, dict[str, Any]] = field(default_factory=dict)  # measure 5 for an OPC: both rules

    @property
    def general_rule(self) -> dict[str, Any] | None:
        """For an OPC, the measure 5 figure under the general rule (shown beside the OPC figure)."""
        return self.rule_figures.get("general")

    @property
    def cap_remaining_fen(self) -> int:
        return max(self.cap_fen - self.cap_used_fen, 0)

    @property
    def rate_breakdown(self) -> list[tuple[Decimal, int]]:
        by_rate: dict[Decimal, int] = {}
        for line in self.lines:
            by_rate[line.rate] = by_rate.get(line.rate, 0) + line.base_fen
        return sorted(by_rate.items())

    @property
    def rate(self) -> str:
        """The rate as a decimal string; ``"mixed"`` when lines carry different rates."""
        rates = {line.rate for line in self.lines}
        if len(rates) > 1:
            return "mixed"
        if rates:
            return rate_str(rates.pop())
        return rate_str(nominal_rate(self.measure, self.settings, self.opc and self.rule != "general"))

    @property
    def scope_label(self) -> str:
        return f"项目 project {self.project.name}" if self.project else "全公司 whole company"

    def cap_scope_label(self) -> str:
        if self.measure == 5:
            if self.settings.m5_cap_scope == "window":
                return "每家企业、整个政策期合计 per company over the policy window"
            return "每家企业每年 per company per year"
        return "每家转化主体每年 per converter per year"

    def calculation(self) -> list[str]:
        """The calculation in words, one line each (Chinese, then English)."""
        s = self.settings
        basis = "不含税金额 ex-tax" if s.basis == "ex_tax" else "价税合计 tax-inclusive"
        out = [
            f"{MEASURE_NAMES[self.measure]}；{self.year}年度；范围 scope: {self.scope_label}",
            f"申报基数 base ({basis}, 开票日期在{self.year}年 invoices dated {self.year}): "
            f"¥{format_fen(self.base_fen)}，{len(self.lines)} 张发票 invoices",
        ]
        if self.measure == 5:
            out.append(f"{self.year}年度企业员工 {self.company.headcount} 人 staff in {self.year} -> "
                       + (f"一人公司 OPC（{s.opc_headcount_max}人以下，含本数 at most {s.opc_headcount_max}）"
                          if self.opc else f"非一人公司 not an OPC（多于 more than {s.opc_headcount_max} 人）"))
            for key, fig in self.rule_figures.items():
                chosen = "（本次申报 claimed）" if key == self.rule else ""
                out.append(f"{fig['label']}: {fig['text']} -> ¥{format_fen(fig['claim_fen'])}{chosen}")
            if self.rule_figures:
                out.append(f"按 setting m5_opc_rule = {s.m5_opc_rule} 申报 claimed under the "
                           f"{'OPC' if self.rule == 'opc' else 'general'} rule")
        for rate, base in self.rate_breakdown:
            tag = ""
            if self.measure == 6 and rate != s.m6_rate:
                tag = f"（亦庄主题加成 Yizhuang-theme bonus, {s.m6_bonus_mode}）"
            out.append(f"比例 rate {format_rate(rate)} × ¥{format_fen(base)}{tag}")
        out.append(f"精确金额 exact amount: ¥{_fen_decimal_text(self.raw)}")
        rounding = "舍去到分 truncated to the fen" if s.rounding == "down" else "四舍五入到分 rounded half up to the fen"
        out.append(f"取整 rounding ({s.rounding}): {rounding} -> ¥{format_fen(self.rounded_fen)}")
        by = f" {', '.join(f'#{i}' for i in self.cap_used_by)}" if self.cap_used_by else ""
        used = (f"，其他有效申报已用 already used by active claim(s){by}: "
                f"¥{format_fen(self.cap_used_fen)}，剩余 remaining ¥{format_fen(self.cap_remaining_fen)}"
                if self.cap_used_fen else "")
        out.append(f"上限 cap ¥{format_fen(self.cap_fen)}（{self.cap_scope_label()}）{used}")
        out.append(f"本次申报补贴金额 subsidy claimed = min(¥{format_fen(self.rounded_fen)}, "
                   f"¥{format_fen(self.cap_remaining_fen)}) = ¥{format_fen(self.claim_fen)}"
                   f"（大写 {to_capital(self.claim_fen)}）")
        if self.excluded:
            out.append(f"未计入 excluded: {len(self.excluded)} 张发票 invoices (reasons listed per invoice)")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "measure": self.measure,
            "year": self.year,
            "company": {"name": self.company.name, "uscc": self.company.uscc,
                        "headcount": self.company.headcount, "opc": self.opc},
            "scope": "project" if self.project else "company",
            "project": self.project.name if self.project else None,
            "basis": self.settings.basis,
            "base_fen": self.base_fen,
            "rate": self.rate,
            "rate_breakdown": [{"rate": rate_str(r), "base_fen": b} for r, b in self.rate_breakdown],
            "raw_fen": format(self.raw, "f"),
            "rounding": self.settings.rounding,
            "rounded_fen": self.rounded_fen,
            "cap_fen": self.cap_fen,
            "cap_scope": self.settings.m5_cap_scope if self.measure == 5 else "year",
            "cap_used_fen": self.cap_used_fen,
            "cap_used_by": self.cap_used_by,
            "cap_remaining_fen": self.cap_remaining_fen,
            "claim_fen": self.claim_fen,
            "claim_yuan": format_fen(self.claim_fen, grouping=False),
            "claim_capital": to_capital(self.claim_fen),
            "status": self.status,
            "claim_id": self.claim_id,
            "recorded_claim_fen": self.recorded_claim_fen,
            "lines": [{
                "invoice_id": ln.invoice.id, "number": ln.invoice.number, "code": ln.invoice.code,
                "date": ln.invoice.issue_date.isoformat(), "vendor": ln.invoice.vendor_name,
                "project": ln.invoice.project_name or None, "category": ln.invoice.category,
                "base_fen": ln.base_fen, "rate": rate_str(ln.rate), "amount_fen": format(ln.amount, "f"),
                "flags": ln.flags,
            } for ln in self.lines],
            "excluded": [{"invoice_id": e.invoice.id, "number": e.invoice.number, "reasons": e.reasons,
                          "codes": sorted(e.codes)} for e in self.excluded],
            "comparison": self.comparison,
            "rule": self.rule,
            "rule_figures": self.rule_figures,
            "notes": self.notes,
            "calculation": self.calculation(),
            "settings": self.settings.to_dict(),
            "chain_head": self.chain_head,
            "computed_at": self.computed_at,
        }


def _fen_decimal_text(fen: Decimal) -> str:
    """An exact fen amount as yuan with every significant decimal, e.g. 3180.3 fen -> '31.803'."""
    yuan = (fen / 100).normalize()
    text = format(yuan, ",f")
    if "." not in text:
        text += ".00"
    elif len(text.split(".")[1]) < 2:
        text += "0"
    return text


def nominal_rate(measure: int, s: PolicySettings, opc: bool) -> Decimal:
    if measure == 5:
        return s.m5_opc_rate if opc else s.m5_rate
    return s.m6_rate


def yizhuang_rate(s: PolicySettings) -> Decimal:
    if s.m6_bonus_mode == "rate_points":
        return s.m6_rate + s.m6_yizhuang_bonus
    return s.m6_rate * (1 + s.m6_yizhuang_bonus)


def check_year(year: int, s: PolicySettings) -> None:
    end = int(s.window_end[:4])
    if year > end:
        raise PolicyError(f"claim year {year} is after the policy window, which ends {s.window_end}",
                          hint="claims can only be made for years inside the window")
    if s.window_start and year < int(s.window_start[:4]):
        from ledger.policy import POLICY_WINDOW_START, WINDOW_START_REASON

        why = f" ({WINDOW_START_REASON[1]})" if s.window_start == POLICY_WINDOW_START else ""
        raise PolicyError(f"claim year {year} is before the policy window, which starts {s.window_start}{why}",
                          hint="the measures do not reach back before their start; see setting window_start")
    if year < 2000:
        raise PolicyError(f"claim year {year} is not plausible")


def compute(measure: int, year: int, *, company: Company, settings: PolicySettings,
            invoices: list[InvoiceView], active: list[ActiveClaim], chain_head: str,
            project: Project | None = None, exclude_projects: frozenset[int] = frozenset(),
            exclude_note: str = "") -> ClaimResult:
    """One claim for ``measure`` and ``year``: whole company, or one ``project``."""
    if measure not in (5, 6):
        raise PolicyError(f"measure {measure!r} does not exist here", hint="use 5 or 6")
    s = settings
    check_year(year, s)
    project_id = project.id if project else None
    same_scope = [c for c in active if (c.measure, c.year, c.project_id) == (measure, year, project_id)]
    self_ids = {c.id for c in same_scope}
    others = [c for c in active if c.id not in self_ids]
    other_measure = 11 - measure
    blocked: dict[int, int] = {}
    if s.exclusive_per == "project":
        for c in others:
            if c.measure == other_measure:
                for pid in c.project_ids:
                    blocked.setdefault(pid, c.id)
    cats = s.m5_categories if measure == 5 else s.m6_categories
    opc = s.is_opc(company.headcount)  # the caller passes the claim year's headcount
    use_opc = opc and s.m5_opc_rule == "opc"
    lines: list[ClaimLine] = []
    excluded: list[ExcludedInvoice] = []
    not_applicable: list[InvoiceView] = []
    for v in sorted(invoices, key=lambda x: (x.issue_date, x.id)):
        if v.issue_date.year != year or (project_id is not None and v.project_id != project_id):
            continue
        if v.category not in cats:
            not_applicable.append(v)
            continue
        reasons: list[str] = []
        codes: set[str] = set()
        flags: list[str] = []

        def refuse(code: str, reason: str, codes: set[str] = codes, reasons: list[str] = reasons) -> None:
            codes.add(code)
            reasons.append(reason)

        if not s.in_window(v.issue_date):
            refuse("window", f"开票日期不在政策期内 dated outside the policy window ({s.window_start or '…'} – {s.window_end})")
        if measure == 6:
            if v.project_id is None:
                refuse("no_project", "未关联项目 no project: measure 6 covers the production of a converted IP work")
            else:
                if v.work_type not in s.m6_work_types:
                    refuse("work_type", f"项目作品类型不适用 work type {v.work_type or '(not set)'!r} of project "
                                   f"{v.project_name!r} is not one of {', '.join(s.m6_work_types)}")
                if v.source_kind not in s.m6_source_kinds:
                    refuse("source_kind", f"项目IP来源不适用 project {v.project_name!r} source IP kind "
                                   f"{v.source_kind or '(not set)'!r} is not {', '.join(s.m6_source_kinds)}")
                if not v.released:
                    refuse("no_release", f"未登记上线播出 project {v.project_name!r} has no release evidence "
                                         "(platform, date, licence/备案 number): record it with `project release`")
                if not v.ai_converted:
                    refuse("no_ai_usage", f"未记录AI使用 project {v.project_name!r} has no recorded AI usage that "
                                          "converted the work (import its usage, or an AI-service invoice for it)")
        if v.red_letters and v.net_total_fen <= 0:
            refuse("cancelled", "已全额红冲 fully cancelled by red-letter invoice(s) "
                   + ", ".join(r.number for r in v.red_letters))
        if v.project_id is not None and v.project_id in exclude_projects:
            refuse("assigned", exclude_note or "项目按另一措施申报 project assigned to the other measure")
        if v.project_id is not None and v.project_id in blocked:
            refuse("project_held", f"从优不重复: 项目已按措施{other_measure}申报 project already in active claim "
                           f"#{blocked[v.project_id]} under measure {other_measure}")
        in_other = [cid for cid in v.claimed_in if cid not in self_ids]
        if in_other:
            refuse("held", "已在有效申报中 already in active claim " + ", ".join(f"#{c}" for c in in_other))
        if v.related_party:
            if s.related_party == "exclude":
                refuse("related_party", "关联方供应商 related-party vendor (setting related_party = exclude)")
            else:
                flags.append("关联方供应商，需额外审核 related-party vendor: needs extra review")
        # net of red-letter invoices (红字发票); refunds are negative payments, so paid_fen is net too
        base = v.net_ex_tax_fen if s.basis == "ex_tax" else v.net_total_fen
        if v.red_letters:
            flags.append("红字发票冲减 reduced by red-letter invoice(s) " + ", ".join(r.number for r in v.red_letters)
                         + f": net ¥{format_fen(v.net_total_fen)} of ¥{format_fen(v.total_fen)}")
        if v.paid_fen <= 0:
            if s.unpaid == "exclude":
                refuse("unpaid", "未登记付款 no payment recorded (claims need proof of payment)")
            else:
                flags.append("未登记付款 no payment recorded (included by setting unpaid = include_flagged)")
        elif v.paid_fen < v.net_total_fen:
            counted = base * v.paid_fen // v.net_total_fen  # the paid share, rounded down to the fen
            flags.append(f"部分付款 partly paid ¥{format_fen(v.paid_fen)} of ¥{format_fen(v.net_total_fen)}: "
                         f"counted ¥{format_fen(counted)} of ¥{format_fen(base)}")
            base = counted
        if not v.file_sha256:
            flags.append("无发票存档文件 no archived invoice file")
        if v.payments and not all(p.has_file for p in v.payments):
            flags.append("付款无存档凭证 a payment has no archived bank receipt")
        if reasons:
            excluded.append(ExcludedInvoice(v, reasons, codes))
            continue
        if measure == 5:
            rate = s.m5_opc_rate if use_opc else s.m5_rate
        else:
            rate = yizhuang_rate(s) if v.yizhuang else s.m6_rate
        lines.append(ClaimLine(v, base, rate, Decimal(base) * rate, flags))

    base_total = sum(ln.base_fen for ln in lines)
    raw = sum((ln.amount for ln in lines), Decimal(0))
    rounded = round_fen(raw, s.rounding)
    if measure == 5:
        cap = s.m5_opc_cap if use_opc else s.m5_cap
        in_scope = [c for c in others if c.measure == 5 and (s.m5_cap_scope == "window" or c.year == year)]
    else:
        cap = s.m6_cap
        if s.m6_bonus_mode == "cap_raised" and any(ln.invoice.yizhuang for ln in lines):
            cap = int((Decimal(cap) * (1 + s.m6_yizhuang_bonus)).to_integral_exact())
        in_scope = [c for c in others if c.measure == 6 and c.year == year]
    used = sum(max(c.claim_fen, 0) for c in in_scope)
    claim = min(rounded, max(cap - used, 0))
    result = ClaimResult(
        measure=measure, year=year, company=company, project=project, settings=s, opc=opc,
        lines=lines, excluded=excluded, not_applicable=not_applicable, base_fen=base_total, raw=raw,
        rounded_fen=rounded, cap_fen=cap, cap_used_fen=used, cap_used_by=sorted(c.id for c in in_scope),
        claim_fen=claim, chain_head=chain_head,
        computed_at=datetime.now(UTC).isoformat(timespec="seconds"), excluded_projects=exclude_projects,
        rule=("opc" if use_opc else "general") if measure == 5 else "",
    )
    if measure == 5 and opc:  # an OPC sees both rules' figures; it claims the one the setting names
        for key, label, rate_, cap_ in (("opc", "一人公司规则 OPC rule", s.m5_opc_rate, s.m5_opc_cap),
                                        ("general", "一般规则 general rule", s.m5_rate, s.m5_cap)):
            alt_raw = sum((Decimal(ln.base_fen) * rate_ for ln in lines), Decimal(0))
            alt_rounded = round_fen(alt_raw, s.rounding)
            result.rule_figures[key] = {
                "label": label, "rate": rate_str(rate_), "cap_fen": cap_,
                "claim_fen": min(alt_rounded, max(cap_ - used, 0)),
                "text": f"按AI技术服务费用的{format_rate(rate_)}，最高¥{format_fen(cap_)} "
                        f"({format_rate(rate_)} of AI-service spend, at most ¥{format_fen(cap_)})",
            }
    if same_scope:
        recorded = same_scope[0]
        result.claim_id = recorded.id
        result.recorded_claim_fen = recorded.claim_fen
        recorded_invoices = {v.id for v in invoices if recorded.id in v.claimed_in}
        if recorded.claim_fen == claim and recorded_invoices == {ln.invoice.id for ln in lines}:
            result.status = "recorded"
        else:
            result.status = "changed_since_recorded"
            result.notes.append(f"已登记的申报 #{recorded.id} 为 ¥{format_fen(recorded.claim_fen)}，账簿此后有变动 "
                                f"the ledger changed since claim #{recorded.id} was recorded: now ¥{format_fen(claim)}")
    if claim < rounded:
        result.notes.append(f"已封顶 capped: ¥{format_fen(rounded)} -> ¥{format_fen(claim)}")
    return result


@dataclass(slots=True)
class BestPlan:
    """The better use of the two measures for a scope (从优不重复)."""

    year: int
    claims: list[ClaimResult]  # the recommended claims (one per measure used)
    options: list[tuple[str, int]]  # (description, total subsidy) of each alternative considered
    notes: list[str] = field(default_factory=list)

    @property
    def total_fen(self) -> int:
        return sum(c.claim_fen for c in self.claims)

    def to_json(self) -> dict[str, Any]:
        return {
            "measure": "best",
            "year": self.year,
            "total_claim_fen": self.total_fen,
            "total_capital": to_capital(self.total_fen),
            "claims": [c.to_json() for c in self.claims],
            "options": [{"option": o, "claim_fen": f} for o, f in self.options],
            "notes": self.notes,
            "chain_head": self.claims[0].chain_head if self.claims else "",
        }


def plan_best(year: int, *, company: Company, settings: PolicySettings, invoices: list[InvoiceView],
              active: list[ActiveClaim], chain_head: str, project: Project | None = None) -> BestPlan:
    """Compute both measures and choose. For one project: the better measure. For the whole
    company: each project that fits both goes to one measure, chosen to give the largest total
    after caps (every split is tried for up to 12 such projects, then a per-project greedy rule)."""
    kw: dict[str, Any] = {"company": company, "settings": settings, "invoices": invoices, "active": active,
                          "chain_head": chain_head, "project": project}
    r5 = compute(5, year, **kw)
    r6 = compute(6, year, **kw)
    if project is not None:
        best = r5 if r5.claim_fen >= r6.claim_fen else r6
        other = r6 if best is r5 else r5
        plan = BestPlan(year, [best] if best.lines else [],
                        [("措施5 measure 5", r5.claim_fen), ("措施6 measure 6", r6.claim_fen)])
        plan.notes.append(f"从优不重复：项目 {project.name} 按措施{best.measure}申报 ¥{format_fen(best.claim_fen)}"
                          f"（措施{other.measure}为 ¥{format_fen(other.claim_fen)}）; the better measure for this project "
                          "is recommended, never both")
        return plan
    p5 = {ln.invoice.project_id for ln in r5.lines if ln.invoice.project_id is not None}
    p6 = {ln.invoice.project_id for ln in r6.lines if ln.invoice.project_id is not None}
    conflicted = sorted(p5 & p6) if settings.exclusive_per == "project" else []
    options = [("措施5（全部适用项目）measure 5 alone", r5.claim_fen), ("措施6（全部适用项目）measure 6 alone", r6.claim_fen)]
    if not conflicted:
        claims = [r for r in (r5, r6) if r.lines]
        plan = BestPlan(year, claims, options + [("两项措施并用（无项目重叠）both measures, no project overlap",
                                                  r5.claim_fen + r6.claim_fen)])
        return plan
    names = {ln.invoice.project_id: ln.invoice.project_name for ln in r5.lines + r6.lines}
    best_total = -1
    best_pair: tuple[ClaimResult, ClaimResult] | None = None
    note = "项目按另一措施申报（从优不重复）project assigned to the other measure (the better one, never both)"
    if len(conflicted) <= MAX_BRUTE_FORCE_PROJECTS:
        for mask in itertools.product((5, 6), repeat=len(conflicted)):
            to5 = frozenset(p for p, m in zip(conflicted, mask, strict=True) if m == 5)
            to6 = frozenset(conflicted) - to5
            a = compute(5, year, **kw, exclude_projects=to6, exclude_note=note)
            b = compute(6, year, **kw, exclude_projects=to5, exclude_note=note)
            total = a.claim_fen + b.claim_fen
            if total > best_total:
                best_total, best_pair = total, (a, b)
    else:
        log.warning("%d projects fit both measures; choosing per project by the larger uncapped amount "
                    "instead of trying every split", len(conflicted))
        to5 = frozenset(p for p in conflicted
                        if sum(ln.amount for ln in r5.lines if ln.invoice.project_id == p)
                        >= sum(ln.amount for ln in r6.lines if ln.invoice.project_id == p))
        to6 = frozenset(conflicted) - to5
        best_pair = (compute(5, year, **kw, exclude_projects=to6, exclude_note=note),
                     compute(6, year, **kw, exclude_projects=to5, exclude_note=note))
        best_total = best_pair[0].claim_fen + best_pair[1].claim_fen
    assert best_pair is not None
    a, b = best_pair
    plan = BestPlan(year, [r for r in (a, b) if r.lines],
                    options + [("按项目择优分配 projects split between the measures", best_total)])
    for p in conflicted:
        chosen = 5 if any(ln.invoice.project_id == p for ln in a.lines) else 6
        plan.notes.append(f"项目 {names.get(p, p)} 同时符合措施5和措施6，按措施{chosen}申报 "
                          f"project fits both measures: claimed under measure {chosen}")
    return plan
