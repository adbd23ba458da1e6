"""Claims: compute (never record), choose the better measure, record, withdraw, list and load
claims as filed. The arithmetic lives in :mod:`ledger.claims`; this service loads its inputs in
one consistent read and writes the results into the chain."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from ledger import claims as claims_mod
from ledger.checkpoints import local_time
from ledger.claims import BestPlan, ClaimResult, InvoiceView
from ledger.errors import ClaimConflictError, LedgerError, NotFoundError
from ledger.models import ClaimSignoff, RecordedClaim
from ledger.money import rate_str
from ledger.policy import PolicySettings
from ledger.services.common import active_claims, reversed_ids, text_field
from ledger.services.documents import Documents
from ledger.services.integrity import Integrity
from ledger.services.master import MasterData
from ledger.store import Store

log = logging.getLogger(__name__)


class ClaimService:
    """Measure 5 and 6 claims of one ledger."""

    def __init__(self, store: Store, master: MasterData, documents: Documents, integrity: Integrity) -> None:
        self.store = store
        self.master = master
        self.documents = documents
        self.integrity = integrity

    def _guard(self, what: str) -> None:
        """Before a claim is recorded or withdrawn: the chain verifies and the key is usable."""
        if self.store.in_write():
            return  # the outer call (a best plan) checked already
        self.integrity.require_intact(before=what)
        self.integrity.ready()

    def _inputs(self, year: int, project: str | int | None, company: str | int | None) -> dict[str, Any]:
        c = self.master.company_in_year(company, year)  # OPC status by the claim year's staff
        p = self.master.project(project, c.id) if project not in (None, "") and project is not None else None
        settings = self.master.settings()
        settings.check_policy()
        return {"company": c, "project": p, "settings": settings,
                "invoices": self.documents.invoice_views(c.id, year), "active": active_claims(self.store, c.id),
                "chain_head": self.store.head().hash}

    def compute(self, measure: int, year: int, *, project: str | int | None = None,
                company: str | int | None = None) -> ClaimResult:
        """Compute (never record) a claim, with the other measure's figure for comparison."""
        with self.store.read():
            inputs = self._inputs(year, project, company)
            result = claims_mod.compute(int(measure), int(year), **inputs)
            other = claims_mod.compute(11 - int(measure), int(year), **inputs)
        better = result.measure if result.claim_fen >= other.claim_fen else other.measure
        result.comparison = {
            "other_measure": other.measure, "other_claim_fen": other.claim_fen, "recommended_measure": better,
            "note": ("同一范围内另一措施的金额；同一项目只能按一项措施申报（从优不重复） the other measure for the same "
                     "scope; a project is claimed under one measure only. For the whole company, "
                     "`--measure best` splits projects between the measures."),
        }
        return result

    def plan_best(self, year: int, *, project: str | int | None = None,
                  company: str | int | None = None) -> BestPlan:
        with self.store.read():
            inputs = self._inputs(year, project, company)
            return claims_mod.plan_best(int(year), **inputs)

    def record(self, measure: int, year: int, *, project: str | int | None = None,
               company: str | int | None = None, exclude_projects: Iterable[int] = ()) -> ClaimResult:
        """Verify the chain, recompute inside the write lock and record the claim; its invoices are
        then held by it. A signed checkpoint covering it is written after the commit. The
        ledger's actor is recorded as the one who prepared it (see :meth:`signoff`)."""
        self._guard(f"record a claim for {year}")
        with self.store.write() as w:
            inputs = self._inputs(year, project, company)
            result = claims_mod.compute(int(measure), int(year), **inputs,
                                        exclude_projects=frozenset(exclude_projects))
            if result.claim_id is not None:
                raise ClaimConflictError(
                    f"claim #{result.claim_id} for measure {measure}, {year}, {result.scope_label} is already active",
                    hint=f"withdraw it first: ledger withdraw {result.claim_id} --reason ...")
            if not result.lines:
                held = [e for e in result.excluded if e.codes & {"held", "project_held"}]
                if held:
                    raise ClaimConflictError(
                        f"every eligible invoice is already held by another active claim or project claim "
                        f"({', '.join(e.invoice.number for e in held[:5])}{' …' if len(held) > 5 else ''}): "
                        "one document never sits in two active claims (从优不重复)",
                        hint="withdraw the other claim first if this measure is the better one")
                raise LedgerError(f"nothing to claim under measure {measure} for {year}: no eligible invoice",
                                  hint="see `ledger claim` for the reasons each invoice is excluded")
            for ln in result.lines:  # belt and braces: the compute step excluded these already
                if ln.invoice.claimed_in:
                    raise ClaimConflictError(f"invoice {ln.invoice.number} is already in active claim "
                                             f"#{ln.invoice.claimed_in[0]}")
            cid = w.append("claims", {
                "company_id": result.company.id, "measure": result.measure, "year": result.year,
                "project_id": result.project.id if result.project else None, "basis": result.settings.basis,
                "rate": result.rate, "base_fen": result.base_fen, "raw_fen": format(result.raw, "f"),
                "rounded_fen": result.rounded_fen, "cap_fen": result.cap_fen, "cap_used_fen": result.cap_used_fen,
                "claim_fen": result.claim_fen,
                "settings": json.dumps(result.settings.to_dict(), ensure_ascii=False, sort_keys=True),
                "chain_head": result.chain_head, "reverses": None, "reason": ""})
            w.append_many("claim_lines", [{
                "claim_id": cid, "invoice_id": ln.invoice.id, "base_fen": ln.base_fen, "rate": rate_str(ln.rate),
                "amount": format(ln.amount, "f"), "note": "; ".join(ln.flags)} for ln in result.lines])
            w.audit("claim.record", {"id": cid, "measure": result.measure, "year": result.year,
                                     "project": result.project.name if result.project else None,
                                     "claim_fen": result.claim_fen, "lines": len(result.lines),
                                     "prepared_by": w.actor})
            w.checkpoint_reasons.append(f"claim.record #{cid}")
        result.claim_id = cid
        result.status = "recorded"
        result.recorded_claim_fen = result.claim_fen
        return result

    def record_plan(self, plan: BestPlan) -> list[ClaimResult]:
        """Record every claim of a best plan in one transaction."""
        out = []
        self._guard(f"record the claims for {plan.year}")
        with self.store.write():
            for c in plan.claims:
                out.append(self.record(c.measure, c.year, project=c.project.id if c.project else None,
                                       company=c.company.id, exclude_projects=c.excluded_projects))
        return out

    def withdraw(self, claim_id: int, reason: str) -> None:
        reason = text_field(reason, "reason (撤回原因)")
        self._guard(f"withdraw claim #{claim_id}")
        with self.store.write() as w:
            rows = self.store.query("SELECT * FROM claims WHERE id = ? AND reverses IS NULL", (int(claim_id),))
            if not rows:
                raise NotFoundError(f"claim #{claim_id} is not in the ledger")
            if int(claim_id) in reversed_ids(self.store, "claims"):
                raise LedgerError(f"claim #{claim_id} is already withdrawn")
            r = rows[0]
            values = {k: r[k] for k in ("company_id", "measure", "year", "project_id", "basis", "rate", "settings",
                                        "chain_head")}
            values.update({"base_fen": -r["base_fen"], "raw_fen": format(-Decimal(r["raw_fen"]), "f"),
                           "rounded_fen": -r["rounded_fen"], "cap_fen": r["cap_fen"],
                           "cap_used_fen": r["cap_used_fen"], "claim_fen": -r["claim_fen"], "reverses": r["id"],
                           "reason": reason})
            rid = w.append("claims", values)
            w.audit("claim.withdraw", {"id": r["id"], "reversal": rid, "reason": reason})
            w.checkpoint_reasons.append(f"claim.withdraw #{r['id']}")

    def approve(self, claim_id: int, note: str = "") -> ClaimSignoff:
        """Record the ledger's actor as the approver of an active claim (once; a withdrawn claim
        cannot be approved). Preparer and approver may be the same person in a one-person
        company; :meth:`signoff` shows both, so a reader sees it."""
        self._guard(f"approve claim #{claim_id}")
        with self.store.write() as w:
            rows = self.store.query("SELECT id, claim_fen FROM claims WHERE id = ? AND reverses IS NULL",
                                    (int(claim_id),))
            if not rows:
                raise NotFoundError(f"claim #{claim_id} is not in the ledger", hint="list them: ledger claims")
            if int(claim_id) in reversed_ids(self.store, "claims"):
                raise LedgerError(f"claim #{claim_id} is withdrawn; there is nothing to approve")
            current = self.signoff(claim_id)
            if current.approved:
                raise ClaimConflictError(f"claim #{claim_id} was approved by {current.approved_by} at "
                                         f"{current.approved_at}", hint="an approval is recorded once")
            w.audit("claim.approve", {"id": int(claim_id), "claim_fen": rows[0]["claim_fen"], "approved_by": w.actor,
                                      "prepared_by": current.prepared_by, "note": note.strip()})
            w.checkpoint_reasons.append(f"claim.approve #{claim_id}")
        if current.prepared_by == w.actor:
            log.warning("claim #%s approved by the person who prepared it (%s)", claim_id, w.actor)
        return self.signoff(claim_id)

    def signoff(self, claim_id: int) -> ClaimSignoff:
        """Who prepared and who approved a recorded claim (from the audit log)."""
        prepared = approved = None
        for r in self.store.query("SELECT actor, action, detail, created_at FROM audit_log "
                                  "WHERE action IN ('claim.record', 'claim.approve') ORDER BY id"):
            detail = json.loads(r["detail"])
            if int(detail.get("id", -1)) != int(claim_id):
                continue
            if r["action"] == "claim.record":
                prepared = (str(detail.get("prepared_by") or r["actor"]), r["created_at"])
            elif approved is None:
                approved = (str(detail.get("approved_by") or r["actor"]), r["created_at"], str(detail.get("note", "")))
        if prepared is None:
            raise NotFoundError(f"claim #{claim_id} has no record in the audit log", hint="list them: ledger claims")
        return ClaimSignoff(int(claim_id), prepared[0], prepared[1], *(approved or ("", "", "")))

    def recorded(self, year: int | None = None, company: str | int | None = None) -> list[RecordedClaim]:
        """Every recorded claim (withdrawn ones too), oldest first."""
        withdrawn = {int(r[0]): int(r[1]) for r in self.store.conn.execute(
            "SELECT reverses, id FROM claims WHERE reverses IS NOT NULL")}
        projects = {p.id: p.name for p in self.master.projects()}
        sql, args = "SELECT * FROM claims WHERE reverses IS NULL", []
        if company is not None:
            sql += " AND company_id = ?"
            args.append(self.master.company(company).id)
        if year is not None:
            sql += " AND year = ?"
            args.append(int(year))
        out = []
        for r in self.store.query(sql + " ORDER BY id", args):
            n = self.store.conn.execute("SELECT COUNT(*) FROM claim_lines WHERE claim_id = ?", (r["id"],)).fetchone()[0]
            out.append(RecordedClaim(r["id"], r["company_id"], r["measure"], r["year"], r["project_id"],
                                     projects.get(r["project_id"], "") if r["project_id"] else "", r["claim_fen"],
                                     r["base_fen"], r["created_at"], r["id"] not in withdrawn,
                                     withdrawn.get(r["id"]), int(n)))
        return out

    def load(self, claim_id: int) -> ClaimResult:
        """A recorded claim exactly as filed: its lines, amounts and the settings it used."""
        rows = self.store.query("SELECT * FROM claims WHERE id = ? AND reverses IS NULL", (int(claim_id),))
        if not rows:
            raise NotFoundError(f"claim #{claim_id} is not in the ledger", hint="list them: ledger claims")
        r = rows[0]
        company = self.master.company_in_year(r["company_id"], r["year"])
        settings = PolicySettings.from_dict(json.loads(r["settings"]))
        views = {v.id: v for v in self.documents.invoice_views(company.id)}
        lines = []
        for ln in self.store.query("SELECT * FROM claim_lines WHERE claim_id = ? ORDER BY id", (r["id"],)):
            view = views.get(ln["invoice_id"])
            if view is None:
                raise LedgerError(f"claim #{claim_id} holds invoice id {ln['invoice_id']}, which is no longer live")
            lines.append(claims_mod.ClaimLine(view, ln["base_fen"], Decimal(ln["rate"]), Decimal(ln["amount"]),
                                              [x for x in ln["note"].split("; ") if x]))
        project = None
        if r["project_id"] is not None:
            project = next(p for p in self.master.projects() if p.id == r["project_id"])
        withdrawn = int(claim_id) in reversed_ids(self.store, "claims")
        held = {x.invoice.id for x in lines}
        excluded: list[claims_mod.ExcludedInvoice] = []
        others: list[InvoiceView] = []
        try:  # why the other invoices of the year are not in it, by the rules it was recorded under
            fresh = claims_mod.compute(r["measure"], r["year"], company=company, settings=settings,
                                       invoices=list(views.values()), active=active_claims(self.store, company.id),
                                       chain_head="", project=project)
            excluded = [e for e in fresh.excluded if e.invoice.id not in held]
            excluded += [claims_mod.ExcludedInvoice(ln.invoice, [f"不在已登记申报 #{r['id']} 中 not in recorded claim "
                                                                 f"#{r['id']} (entered or paid after it was recorded)"],
                                                    {"not_recorded"})
                         for ln in fresh.lines if ln.invoice.id not in held]
            others = fresh.not_applicable
        except LedgerError as e:
            log.warning("claim #%s: cannot re-derive the reasons for excluded invoices: %s", claim_id, e)
        result = ClaimResult(
            measure=r["measure"], year=r["year"], company=company, project=project, settings=settings,
            opc=settings.is_opc(company.headcount), lines=lines, excluded=excluded, not_applicable=others,
            base_fen=r["base_fen"], raw=Decimal(r["raw_fen"]), rounded_fen=r["rounded_fen"], cap_fen=r["cap_fen"],
            cap_used_fen=r["cap_used_fen"], cap_used_by=[], claim_fen=r["claim_fen"],
            chain_head=self.store.head().hash, computed_at=r["created_at"],
            status="withdrawn" if withdrawn else "recorded", claim_id=r["id"], recorded_claim_fen=r["claim_fen"])
        result.notes.append(f"已登记申报 #{r['id']}（{local_time(r['created_at'])}），登记时链头 chain head when "
                            f"recorded: {r['chain_head']}")
        result.rule = "opc" if result.opc and settings.m5_opc_rule == "opc" and r["measure"] == 5 else (
            "general" if r["measure"] == 5 else "")
        return result

    def _compare(self, result: ClaimResult) -> None:
        """The other measure's figure for the same scope and year, with this claim's own documents
        free (as if it were not recorded): what the PDF shows beside it."""
        if result.comparison is not None:
            return
        other = 11 - result.measure
        try:
            with self.store.read():
                c = self.master.company_in_year(result.company.id, result.year)
                fresh = claims_mod.compute(
                    other, result.year, company=c, settings=result.settings,
                    invoices=self.documents.invoice_views(c.id, result.year),
                    active=[a for a in active_claims(self.store, c.id) if a.id != result.claim_id],
                    chain_head="", project=result.project)
        except LedgerError as e:
            log.warning("no comparison with measure %d: %s", other, e)
            return
        result.comparison = {"other_measure": other, "other_claim_fen": fresh.claim_fen,
                             "recommended_measure": result.measure if result.claim_fen >= fresh.claim_fen else other,
                             "note": "同一范围、同一年度按另一措施计算 the other measure for the same scope and year"}

    def for_export(self, year: int, *, measure: str = "best", project: str | int | None = None,
                   company: str | int | None = None, claim_id: int | None = None) -> list[ClaimResult]:
        """The claims an export shows: a recorded claim by id; otherwise the claim(s) for the year
        (recorded ones as filed, the rest as drafts)."""
        if claim_id is not None:
            loaded = self.load(claim_id)
            self._compare(loaded)
            return [loaded]
        if str(measure) == "best":
            results = self.plan_best(year, project=project, company=company).claims
            if not results:
                results = [self.compute(5, year, project=project, company=company)]
        else:
            results = [self.compute(int(measure), year, project=project, company=company)]
        out = []
        for r in results:
            if r.claim_id is not None:
                recorded = self.load(r.claim_id)
                if r.status == "changed_since_recorded":
                    recorded.notes.extend(r.notes)
                    log.warning("claim #%s: %s", r.claim_id, "; ".join(r.notes))
                recorded.comparison = r.comparison
                out.append(recorded)
            else:
                out.append(r)
        for r in out:
            self._compare(r)
        return out
