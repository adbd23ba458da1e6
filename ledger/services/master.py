"""Master data: the policy settings, companies, vendors and projects.

Master records change by new versions (same ``entity_id``, a later row); the newest version is
the current one. Settings are rows too: a change is chained and audited like any other write.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from ledger.errors import DuplicateError, FieldError, NotFoundError
from ledger.models import CHINA_TZ, Company, HeadcountFact, Project, Release, Vendor
from ledger.policy import SOURCE_KINDS, WORK_TYPES, PolicySettings
from ledger.services.common import current_rows, text_field
from ledger.store import Store, Writer
from ledger.validate import parse_date, validate_uscc


def china_today() -> date:
    return datetime.now(CHINA_TZ).date()


def _china_date(stamp: str) -> date:
    at = datetime.fromisoformat(stamp)
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(CHINA_TZ).date()


def resolve_headcount(facts: list[HeadcountFact], year: int) -> HeadcountFact | None:
    """The headcount that applies to ``year``: the last one recorded for that year; else the last
    one recorded without a year whose evidence is dated in or before that year; else (a year
    before every piece of evidence) the first one recorded. A headcount given without a year thus
    applies from its evidence date until another is recorded, and never rewrites earlier years."""
    exact = [f for f in facts if f.year == year]
    if exact:
        return max(exact, key=lambda f: f.seq)
    general = [f for f in facts if f.year is None]
    before = [f for f in general if f.evidence_date.year <= year]
    if before:
        return max(before, key=lambda f: f.seq)
    if general:
        return min(general, key=lambda f: f.seq)
    return None


def _headcount(value: object) -> int:
    try:
        number = int(str(value).strip())
    except ValueError as e:
        raise FieldError("headcount (员工人数)", value, "must be a whole number of staff") from e
    if number < 0 or number > 10_000_000:
        raise FieldError("headcount (员工人数)", value, "must be between 0 and 10,000,000")
    return number


def _year(value: object) -> int:
    try:
        number = int(str(value).strip())
    except ValueError as e:
        raise FieldError("year (年度)", value, "must be a year such as 2025") from e
    if not 2000 <= number <= 2100:
        raise FieldError("year (年度)", value, "must be a year between 2000 and 2100")
    return number


def _work_type(value: str) -> str:
    v = (value or "").strip()
    if v not in WORK_TYPES:
        raise FieldError("work_type (作品类型)", value, f"unknown; known: {', '.join(k for k in WORK_TYPES if k)}")
    return v


def _source_kind(value: str) -> str:
    v = (value or "").strip()
    if v not in SOURCE_KINDS:
        raise FieldError("source_kind (IP来源)", value, f"unknown; known: {', '.join(k for k in SOURCE_KINDS if k)}")
    return v


def _company(r: dict[str, Any]) -> Company:
    return Company(r["entity_id"], r["id"], r["name"], r["uscc"], r["headcount"], r["note"])


def _vendor(r: dict[str, Any]) -> Vendor:
    return Vendor(r["entity_id"], r["id"], r["name"], r["uscc"], bool(r["related_party"]),
                  tuple(json.loads(r["aliases"])), r["note"])


def _project(r: dict[str, Any]) -> Project:
    return Project(r["entity_id"], r["id"], r["company_id"], r["name"], r["work_type"], r["source_ip"],
                   r["source_kind"], bool(r["yizhuang"]), r["note"])


class MasterData:
    """Settings, companies, vendors and projects of one ledger."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # --- settings ---------------------------------------------------------------------------
    def settings(self) -> PolicySettings:
        rows = self.store.query("SELECT key, value FROM settings ORDER BY id")
        values = {r["key"]: r["value"] for r in rows}
        return PolicySettings().with_values(values) if values else PolicySettings()

    def set_setting(self, key: str, value: str, note: str = "") -> PolicySettings:
        key = key.strip()
        parsed = PolicySettings.parse_value(key, value)
        with self.store.write() as w:
            current = self.settings()
            updated = dataclasses.replace(current, **{key: parsed})
            updated.check()
            updated.check_policy()
            text = updated.text_value(key)
            w.append("settings", {"key": key, "value": text, "note": note})
            w.audit("settings.set", {"key": key, "value": text, "previous": current.text_value(key)})
        return updated

    # --- companies --------------------------------------------------------------------------
    def companies(self, year: int | None = None) -> list[Company]:
        """Every company, ``headcount`` being the one that applies to ``year`` (default: this year)."""
        when = year if year is not None else china_today().year
        out = []
        for r in current_rows(self.store, "companies"):
            c = _company(r)
            fact = resolve_headcount(self.headcount_facts(c.id), when)
            out.append(dataclasses.replace(c, headcount=fact.headcount) if fact else c)
        return out

    def headcount_facts(self, company_id: int) -> list[HeadcountFact]:
        """Every recorded headcount of a company: the versions of its master record (no year,
        dated when written) where the number changed, and the ``headcounts`` rows."""
        facts: list[HeadcountFact] = []
        last: int | None = None
        for r in self.store.query("SELECT id, seq, created_at, headcount FROM companies WHERE entity_id = ? "
                                  "ORDER BY id", (company_id,)):
            if r["headcount"] != last:
                facts.append(HeadcountFact(r["headcount"], None, _china_date(r["created_at"]), "company record",
                                           r["seq"]))
            last = r["headcount"]
        for r in self.store.query("SELECT * FROM headcounts WHERE company_id = ? ORDER BY id", (company_id,)):
            facts.append(HeadcountFact(r["headcount"], r["year"], date.fromisoformat(r["evidence_date"]),
                                       r["evidence"], r["seq"]))
        return facts

    def headcount(self, company: str | int | None, year: int) -> int:
        """Staff of the company in ``year`` (see :func:`resolve_headcount`)."""
        c = self.company(company)
        fact = resolve_headcount(self.headcount_facts(c.id), int(year))
        return fact.headcount if fact else c.headcount

    def company_in_year(self, company: str | int | None, year: int) -> Company:
        """The company with the headcount of ``year``: what a claim for that year uses."""
        c = self.company(company)
        return dataclasses.replace(c, headcount=self.headcount(c.id, year))

    def company(self, ref: str | int | None = None) -> Company:
        """By entity id, name or credit code; ``None`` means the only company in the ledger."""
        items = self.companies()
        if ref is None or ref == "":
            if len(items) == 1:
                return items[0]
            if not items:
                raise NotFoundError("the ledger has no company yet",
                                    hint="add one: ledger company add --name N --uscc CODE --headcount N")
            raise NotFoundError(f"the ledger holds {len(items)} companies; say which one",
                                hint="pass --company NAME_OR_USCC")
        for c in items:
            if str(ref) in (str(c.id), c.name, c.uscc, c.uscc.lower()):
                return c
        raise NotFoundError(f"company {ref!r} is not in the ledger",
                            hint=f"known: {', '.join(c.name for c in items) or '(none)'}")

    def add_company(self, name: str, uscc: str, headcount: int | str, note: str = "") -> Company:
        name = text_field(name, "name (企业名称)")
        code = validate_uscc(uscc)
        staff = _headcount(headcount)
        with self.store.write() as w:
            for c in self.companies():
                if c.uscc == code:
                    raise DuplicateError(f"company with credit code {code} is already in the ledger as {c.name!r}",
                                         hint="change it with `company update`")
            cid = w.append("companies", {"name": name, "uscc": code, "headcount": staff, "note": note},
                           self_entity=True)
            w.audit("company.add", {"id": cid, "name": name, "uscc": code, "headcount": staff})
        return self.company(cid)

    def update_company(self, ref: str | int | None, *, name: str | None = None, headcount: int | str | None = None,
                       note: str | None = None, year: int | str | None = None, evidence_date: str | date | None = None,
                       evidence: str = "") -> Company:
        """Change the name or note (a new version of the record) and/or record a headcount: for
        ``year``, or without a year (it then applies from ``evidence_date``, default today, until
        another is recorded)."""
        staff = _headcount(headcount) if headcount is not None else None
        when = None if year in (None, "") else _year(year)
        day = parse_date(evidence_date, "evidence_date (证明日期)") if evidence_date not in (None, "") else china_today()
        proof = text_field(evidence, "evidence (人数证明)", required=False)
        with self.store.write() as w:
            c = self.company(ref)
            if name is not None or note is not None:
                latest = self.store.query("SELECT headcount FROM companies WHERE entity_id = ? ORDER BY id DESC "
                                          "LIMIT 1", (c.id,))[0]["headcount"]
                values = {"entity_id": c.id, "uscc": c.uscc,
                          "name": text_field(name, "name (企业名称)") if name is not None else c.name,
                          "headcount": latest, "note": text_field(note, "note", required=False)
                          if note is not None else c.note}
                vid = w.append("companies", values)
                w.audit("company.update", {"id": c.id, "version": vid, "from": {"name": c.name},
                                           "to": {"name": values["name"]}})
            if staff is not None:
                self._record_headcount(w, c, staff, when, day, proof)
        return self.company(c.id)

    def _record_headcount(self, w: Writer, c: Company, staff: int, year: int | None, day: date, proof: str) -> None:
        hid = w.append("headcounts", {"company_id": c.id, "year": year, "headcount": staff,
                                      "evidence_date": day.isoformat(), "evidence": proof, "note": ""})
        w.audit("company.headcount", {"id": c.id, "row": hid, "year": year, "headcount": staff,
                                      "evidence_date": day.isoformat(), "evidence": proof})

    # --- vendors ----------------------------------------------------------------------------
    def vendors(self) -> list[Vendor]:
        return [_vendor(r) for r in current_rows(self.store, "vendors")]

    def vendor(self, ref: str | int) -> Vendor:
        items = self.vendors()
        key = str(ref).strip()
        for v in items:
            if key in (str(v.id), v.name, v.uscc) or key.upper() == v.uscc:
                return v
        for v in items:
            if key.lower() in (a.lower() for a in v.aliases):
                return v
        raise NotFoundError(f"vendor {ref!r} is not in the ledger",
                            hint="add it: ledger vendor add --name N --uscc CODE")

    def add_vendor(self, name: str, uscc: str, *, related_party: bool = False, aliases: Iterable[str] = (),
                   note: str = "") -> Vendor:
        name = text_field(name, "name (供应商名称)")
        code = validate_uscc(uscc)
        alias_list = sorted({a.strip() for a in aliases if a and a.strip()})
        with self.store.write() as w:
            for v in self.vendors():
                if v.uscc == code:
                    raise DuplicateError(f"vendor with credit code {code} is already in the ledger as {v.name!r}",
                                         hint="change it with `vendor update`")
            vid = w.append("vendors", {"name": name, "uscc": code, "related_party": bool(related_party),
                                       "aliases": json.dumps(alias_list, ensure_ascii=False), "note": note},
                           self_entity=True)
            w.audit("vendor.add", {"id": vid, "name": name, "uscc": code, "related_party": bool(related_party)})
        return self.vendor(vid)

    def update_vendor(self, ref: str | int, *, name: str | None = None, related_party: bool | None = None,
                      aliases: Iterable[str] | None = None, note: str | None = None) -> Vendor:
        with self.store.write() as w:
            v = self.vendor(ref)
            values = {"entity_id": v.id, "uscc": v.uscc,
                      "name": text_field(name, "name (供应商名称)") if name is not None else v.name,
                      "related_party": v.related_party if related_party is None else bool(related_party),
                      "aliases": json.dumps(sorted({a.strip() for a in aliases if a.strip()}) if aliases is not None
                                            else list(v.aliases), ensure_ascii=False),
                      "note": note if note is not None else v.note}
            vid = w.append("vendors", values)
            w.audit("vendor.update", {"id": v.id, "version": vid, "related_party": values["related_party"],
                                      "name": values["name"]})
        return self.vendor(v.id)

    # --- projects ---------------------------------------------------------------------------
    def projects(self, company: str | int | None = None) -> list[Project]:
        items = [_project(r) for r in current_rows(self.store, "projects")]
        if company is not None:
            cid = self.company(company).id
            items = [p for p in items if p.company_id == cid]
        return items

    def project(self, ref: str | int, company: str | int | None = None) -> Project:
        items = self.projects()
        if company is not None or len(self.companies()) > 1:
            cid = self.company(company).id
            items = [p for p in items if p.company_id == cid]
        for p in items:
            if str(ref).strip() in (str(p.id), p.name):
                return p
        raise NotFoundError(f"project {ref!r} is not in the ledger",
                            hint="add it: ledger project add --name N --work-type micro_drama ...")

    def add_project(self, name: str, *, company: str | int | None = None, work_type: str = "",
                    source_ip: str = "", source_kind: str = "", yizhuang: bool = False, note: str = "") -> Project:
        name = text_field(name, "name (项目名称)")
        values = {"name": name, "work_type": _work_type(work_type),
                  "source_ip": text_field(source_ip, "source_ip", required=False),
                  "source_kind": _source_kind(source_kind), "yizhuang": bool(yizhuang), "note": note}
        with self.store.write() as w:
            c = self.company(company)
            if any(p.name == name and p.company_id == c.id for p in self.projects()):
                raise DuplicateError(f"project {name!r} already exists for {c.name}",
                                     hint="change it with `project update`")
            pid = w.append("projects", {**values, "company_id": c.id}, self_entity=True)
            w.audit("project.add", {"id": pid, **{k: v for k, v in values.items() if k != "note"}})
        return self.project(pid)

    def update_project(self, ref: str | int, *, company: str | int | None = None, name: str | None = None,
                       work_type: str | None = None, source_ip: str | None = None, source_kind: str | None = None,
                       yizhuang: bool | None = None, note: str | None = None) -> Project:
        with self.store.write() as w:
            p = self.project(ref, company)
            values = {"entity_id": p.id, "company_id": p.company_id,
                      "name": text_field(name, "name (项目名称)") if name is not None else p.name,
                      "work_type": _work_type(work_type) if work_type is not None else p.work_type,
                      "source_ip": source_ip.strip() if source_ip is not None else p.source_ip,
                      "source_kind": _source_kind(source_kind) if source_kind is not None else p.source_kind,
                      "yizhuang": p.yizhuang if yizhuang is None else bool(yizhuang),
                      "note": note if note is not None else p.note}
            vid = w.append("projects", values)
            w.audit("project.update", {"id": p.id, "version": vid,
                                       **{k: v for k, v in values.items() if k not in ("note",)}})
        return self.project(p.id)

    def ensure_project(self, name: str, company_id: int, *, created_by: str) -> tuple[Project, bool]:
        """The company's project ``name``, created bare (no work type or source IP) when missing.
        Returns (project, created)."""
        try:
            return self.project(name, company_id), False
        except NotFoundError:
            pass
        with self.store.write() as w:
            pid = w.append("projects", {"company_id": company_id, "name": name, "work_type": "", "source_ip": "",
                                        "source_kind": "", "yizhuang": False, "note": f"created by {created_by}"},
                           self_entity=True)
            w.audit("project.add", {"id": pid, "name": name, "by": created_by.split(" ")[0]})
        return self.project(pid, company_id), True

    # --- releases (上线播出) ----------------------------------------------------------------
    def add_release(self, project: str | int, *, platform: str, release_date: str | date, licence_no: str,
                    company: str | int | None = None, file_id: int | None = None, note: str = "") -> Release:
        """Record that a project's work was released: platform, date and licence/备案 number
        (measure 6 needs it before a claim is recorded)."""
        where = text_field(platform, "platform (播出平台)", limit=200)
        day = parse_date(release_date, "release_date (上线日期)")
        number = text_field(licence_no, "licence_no (许可证/备案号)", limit=200)
        with self.store.write() as w:
            p = self.project(project, company)
            rid = w.append("releases", {"project_id": p.id, "platform": where, "release_date": day.isoformat(),
                                        "licence_no": number, "file_id": file_id,
                                        "note": text_field(note, "note", required=False)})
            w.audit("project.release", {"project": p.name, "id": rid, "platform": where,
                                        "release_date": day.isoformat(), "licence_no": number})
        return self.releases(p.id)[-1]

    def releases(self, project_id: int | None = None) -> list[Release]:
        sql, args = "SELECT * FROM releases", []
        if project_id is not None:
            sql += " WHERE project_id = ?"
            args.append(project_id)
        return [Release(r["id"], r["project_id"], r["platform"], date.fromisoformat(r["release_date"]),
                        r["licence_no"], r["file_id"], r["note"]) for r in self.store.query(sql + " ORDER BY id", args)]
