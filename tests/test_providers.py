"""Each provider adapter against a local fake of that provider (written from its documentation):
the happy path, a refused key, 429 then success, a failed task, slow polling, an expired URL."""

from __future__ import annotations

import hashlib
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.usage import UsageStore
from pipelines.providers import PROVIDERS, GenRequest, ProviderSettings, parse_spec
from pipelines.providers.errors import ProviderAuthError
from pipelines.providers.runner import Job, TaskRunner, store_sink
from tests.support.providers import FAKES, FakeServer

KEY = "test-key-0123456789"
KLING_SECRET = "kling-secret-key-abcdef-0123456789ab"
VOLC_APPID = "1234567890"

ENV = {
    "ark": {"ARK_API_KEY": KEY},
    "dashscope": {"DASHSCOPE_API_KEY": KEY},
    "kling": {"KLING_ACCESS_KEY": KEY, "KLING_SECRET_KEY": KLING_SECRET},
    "minimax": {"MINIMAX_API_KEY": KEY},
    "openai": {"OPENAI_API_KEY": KEY},
    "volcengine": {"VOLC_TTS_APPID": VOLC_APPID, "VOLC_TTS_TOKEN": KEY},
    "comfyui": {},
}
# the variable a refused key is blamed on
BAD_ENV = {
    "ark": ({"ARK_API_KEY": "wrong-key-xxxxxxxx"}, "ARK_API_KEY"),
    "dashscope": ({"DASHSCOPE_API_KEY": "wrong-key-xxxxxxxx"}, "DASHSCOPE_API_KEY"),
    "kling": ({"KLING_ACCESS_KEY": KEY, "KLING_SECRET_KEY": "wrong-secret-xxxxxx"}, "KLING_SECRET_KEY"),
    "minimax": ({"MINIMAX_API_KEY": "wrong-key-xxxxxxxx"}, "MINIMAX_API_KEY"),
    "openai": ({"OPENAI_API_KEY": "wrong-key-xxxxxxxx"}, "OPENAI_API_KEY"),
    "volcengine": ({"VOLC_TTS_APPID": VOLC_APPID, "VOLC_TTS_TOKEN": "wrong-token-xxxxx"}, "VOLC_TTS_TOKEN"),
}
KINDS = {
    "ark": ("image", "video"), "dashscope": ("image", "video"), "kling": ("image", "video"),
    "minimax": ("video", "voice"), "openai": ("image", "voice"), "volcengine": ("voice",),
    "comfyui": ("image", "video"),
}
URL_RESULTS = {"ark": "video", "dashscope": "video", "kling": "video", "minimax": "video"}


class Clock:
    """A clock the runner and the HTTP client share: sleeping advances it, nothing waits."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


@pytest.fixture()
def frame(tmp_path: Path) -> Path:
    from PIL import Image

    path = tmp_path / "frame.png"
    Image.new("RGB", (72, 128), (40, 80, 120)).save(path)
    return path


def prices() -> Any:
    from ledger.pricebook import load_price_book

    book = load_price_book(Path(__file__).resolve().parents[1] / "ledger" / "prices.toml")
    return lambda model, unit, day: book.unit_price(model, unit, day)


def request(provider: str, kind: str, frame: Path, seed: int = 7) -> GenRequest:
    _, model = parse_spec(provider, kind)  # type: ignore[arg-type]
    if kind == "image":
        refs = (frame,) if provider in ("ark", "kling") else ()
        return GenRequest("image", model, prompt="阿Q 站在土谷祠门口，清末，江南水乡", references=refs, seed=seed,
                          width=720, height=1280)
    if kind == "video":
        return GenRequest("video", model, prompt="阿Q 回头，镜头缓推", image=frame, seed=seed, width=720,
                          height=1280, duration=5)
    voice = {"minimax": "male-qn-qingse", "openai": "onyx", "volcengine": "zh_male_jieshuonansheng_mars_bigtts"}
    return GenRequest("voice", model, text="我手执钢鞭将你打！", voice=voice.get(provider, ""))


def make(provider: str, fake: FakeServer, clock: Clock, env: dict[str, str] | None = None, **settings: Any) -> Any:
    s = ProviderSettings(**{"base_url": fake.base_url, "poll_first_s": 1.0, "poll_max_s": 8.0, **settings})
    return PROVIDERS.create(provider, s, env=ENV[provider] if env is None else env, sleep=clock.sleep)


def runner(tmp_path: Path, provider: str, prov: Any, clock: Clock, **kw: Any) -> TaskRunner:
    return TaskRunner(tmp_path / "project", {provider: prov}, prices=kw.pop("prices", prices()), sleep=clock.sleep,
                      clock=clock.time, **kw)


def fake_for(provider: str, **kw: Any) -> FakeServer:
    if provider == "kling":
        kw.setdefault("secret", KLING_SECRET)
    if provider == "volcengine":
        kw.setdefault("appid", VOLC_APPID)
    return FAKES[provider](**kw).start()


CASES = [(p, k) for p, kinds in KINDS.items() for k in kinds]


@pytest.mark.parametrize(("provider", "kind"), CASES)
def test_happy_path_downloads_hashes_and_meters(tmp_path: Path, frame: Path, provider: str, kind: str) -> None:
    clock = Clock()
    with fake_for(provider, polls_before_done=1) as fake:
        prov = make(provider, fake, clock)
        store = UsageStore(tmp_path / "project" / "usage.sqlite")
        run_id = store.start_run("test")
        with runner(tmp_path, provider, prov, clock, usage_sink=store_sink(store, run_id)) as r:
            res = r.run([Job(f"ep01/s1/{kind}", provider, request(provider, kind, frame))])[0]
        assert res.status == "done", res.error
        assert fake.counts["submit"] == 1
        data = res.files[0].read_bytes()
        assert hashlib.sha256(data).hexdigest() == res.hashes[0]
        assert res.files[0].name.startswith(res.hashes[0])
        events = list(store.events(run_id))
        store.close()
    assert events, "every billable call is a usage record"
    ev = events[0]
    assert ev["engine"] == provider and ev["detail"]["task_id"] == res.task_id
    assert ev["quantity"] > 0
    if provider != "comfyui":
        assert ev["vendor"] and ev["detail"]["price_yuan_per_unit"] is not None, ev
        assert res.cost is not None and res.cost > 0


@pytest.mark.parametrize("provider", sorted(BAD_ENV))
def test_refused_key_names_the_variable_before_any_paid_call(tmp_path: Path, frame: Path, provider: str) -> None:
    clock = Clock()
    env, var = BAD_ENV[provider]
    with fake_for(provider) as fake:
        prov = make(provider, fake, clock, env=env)
        kind = KINDS[provider][0]
        with runner(tmp_path, provider, prov, clock) as r, pytest.raises(ProviderAuthError) as info:
            r.run([Job("ep01/s1/x", provider, request(provider, kind, frame))])
        assert fake.counts["submit"] == 0
    text = str(info.value)
    assert provider in text and var in text
    assert "wrong-" not in text


@pytest.mark.parametrize("provider", sorted(ENV))
def test_missing_key_is_reported_before_any_request(tmp_path: Path, frame: Path, provider: str) -> None:
    if provider == "comfyui":
        pytest.skip("a local ComfyUI needs no key")
    clock = Clock()
    with fake_for(provider) as fake:
        prov = make(provider, fake, clock, env={})
        with runner(tmp_path, provider, prov, clock) as r, pytest.raises(ProviderAuthError) as info:
            r.run([Job("ep01/s1/x", provider, request(provider, KINDS[provider][0], frame))])
        if provider == "openai":  # a server on this machine may need no key: it is asked (free), never billed
            assert fake.counts["submit"] == 0
        else:
            assert fake.requests == []
    assert PROVIDERS.factory(provider).env_keys[0] in str(info.value)  # type: ignore[attr-defined]
    assert "secrets.toml" in (info.value.hint or "")


@pytest.mark.parametrize(("provider", "kind"), [c for c in CASES if c[0] != "comfyui"])
def test_rate_limited_then_success(tmp_path: Path, frame: Path, provider: str, kind: str) -> None:
    clock = Clock()
    with fake_for(provider, rate_limit=2, retry_after="7") as fake:
        prov = make(provider, fake, clock)
        with runner(tmp_path, provider, prov, clock) as r:
            res = r.run([Job("ep01/s1/x", provider, request(provider, kind, frame))])[0]
        assert res.status == "done", res.error
        assert fake.counts["rate_limited"] == 2
        assert fake.counts["submit"] == 1
    if provider in ("ark", "dashscope", "openai"):  # these send Retry-After: it is honoured
        assert clock.sleeps.count(7.0) == 2, clock.sleeps
    else:  # a limit signalled in the body: exponential backoff with jitter
        assert len([s for s in clock.sleeps if s <= 2.0]) >= 2


@pytest.mark.parametrize(("provider", "kind"), [c for c in CASES if c[1] != "voice"])
def test_failed_task_is_sent_again_with_a_new_seed(tmp_path: Path, frame: Path, provider: str, kind: str) -> None:
    clock = Clock()
    with fake_for(provider, fail_tasks=1) as fake:
        prov = make(provider, fake, clock)
        with runner(tmp_path, provider, prov, clock) as r:
            res = r.run([Job("ep01/s1/x", provider, request(provider, kind, frame), retries=2)])[0]
            attempts = r.journal.attempts("ep01/s1/x")
        assert res.status == "done", res.error
        assert fake.counts["submit"] == 2
    assert [t.status for t in attempts] == ["failed", "done"]
    assert attempts[0].report["seed"] != attempts[1].report["seed"]
    assert any("new seed" in n for n in res.notes)


@pytest.mark.parametrize("provider", ["ark", "kling", "dashscope", "minimax"])
def test_failed_task_gives_up_after_retries(tmp_path: Path, frame: Path, provider: str) -> None:
    clock = Clock()
    with fake_for(provider, fail_tasks=10) as fake:
        prov = make(provider, fake, clock)
        with runner(tmp_path, provider, prov, clock) as r:
            res = r.run([Job("ep01/s1/v", provider, request(provider, "video", frame), retries=1)])[0]
        assert fake.counts["submit"] == 2
    assert res.status == "failed" and res.error


@pytest.mark.parametrize("provider", ["ark", "kling", "dashscope", "minimax", "comfyui"])
def test_slow_tasks_are_polled_with_backoff(tmp_path: Path, frame: Path, provider: str) -> None:
    clock = Clock()
    with fake_for(provider, polls_before_done=6) as fake:
        prov = make(provider, fake, clock, poll_fraction=1.0)
        with runner(tmp_path, provider, prov, clock) as r:
            res = r.run([Job("ep01/s1/v", provider, request(provider, "video", frame))])[0]
        assert res.status == "done", res.error
        assert fake.counts["status"] == 7
    waits = clock.sleeps
    assert waits[0] <= 2.0  # the first look within ~2 s
    assert max(waits) > 2 * waits[0] and waits[-1] <= 8.0 * 1.2  # then backing off, capped


@pytest.mark.parametrize("provider", sorted(URL_RESULTS))
def test_expired_result_url_is_asked_for_again(tmp_path: Path, frame: Path, provider: str) -> None:
    clock = Clock()
    with fake_for(provider, expire_downloads=1) as fake:
        prov = make(provider, fake, clock)
        with runner(tmp_path, provider, prov, clock) as r:
            res = r.run([Job("ep01/s1/v", provider, request(provider, "video", frame))])[0]
        assert res.status == "done", res.error
        assert fake.counts["expired"] == 1 and fake.counts["submit"] == 1


def test_expired_for_good_fails_the_job_without_sending_again(tmp_path: Path, frame: Path) -> None:
    clock = Clock()
    with fake_for("ark", expire_downloads=10) as fake:
        prov = make("ark", fake, clock)
        with runner(tmp_path, "ark", prov, clock) as r:
            res = r.run([Job("ep01/s1/v", "ark", request("ark", "video", frame))])[0]
        assert res.status == "failed" and "expired" in res.error
        assert fake.counts["submit"] == 1


def test_ark_request_follows_the_documented_shape(tmp_path: Path, frame: Path) -> None:
    clock = Clock()
    with fake_for("ark") as fake:
        prov = make("ark", fake, clock)
        with runner(tmp_path, "ark", prov, clock) as r:
            r.run([Job("a", "ark", request("ark", "image", frame)), Job("b", "ark", request("ark", "video", frame))])
        bodies = {q.path: q.json() for q in fake.requests if q.method == "POST"}
    img = bodies["/api/v3/images/generations"]
    assert img["image"][0].startswith("data:image/png;base64,") and img["response_format"] == "url"
    w, h = (int(x) for x in img["size"].split("x"))
    assert w * h >= 1280 * 720 and abs(w / h - 720 / 1280) < 0.01
    vid = bodies["/api/v3/contents/generations/tasks"]
    text = vid["content"][0]["text"]
    assert "--duration 5" in text and "--seed 7" in text and vid["content"][1]["role"] == "first_frame"


def test_kling_token_is_a_valid_hs256_jwt() -> None:
    import jwt

    from pipelines.providers.kling import sign_jwt

    token = sign_jwt("ak-123", "sk-456", now=1_800_000_000)
    claims = jwt.decode(token, "sk-456", algorithms=["HS256"], options={"verify_exp": False, "verify_nbf": False})
    assert claims == {"iss": "ak-123", "exp": 1_800_001_800, "nbf": 1_799_999_995}
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}


def test_quote_prices_each_provider_from_the_price_book(tmp_path: Path, frame: Path) -> None:
    clock = Clock()
    with fake_for("ark") as ark, fake_for("minimax") as mm:
        provs = {"ark": make("ark", ark, clock), "minimax": make("minimax", mm, clock)}
        with TaskRunner(tmp_path / "p", provs, prices=prices()) as r:
            q = r.quote([[Job("k", "ark", request("ark", "image", frame))],
                         [Job("v", "minimax", request("minimax", "voice", frame))]], day=date(2026, 12, 4))
        assert ark.requests == [] and mm.requests == []
    assert q.priced
    lines = {ln.model: ln for ln in q.lines}
    assert lines["doubao-seedream-4-0-250828"].cost == Decimal("0.20")
    assert lines["speech-02-hd"].quantity == Decimal(len("我手执钢鞭将你打！"))
    assert "total" in q.table()


def test_polls_wait_at_most_a_fraction_of_the_task_time(tmp_path: Path, frame: Path) -> None:
    clock = Clock()
    with fake_for("ark", polls_before_done=40) as fake:
        prov = make("ark", fake, clock, poll_max_s=30.0)
        with runner(tmp_path, "ark", prov, clock) as r:
            assert r.run([Job("v", "ark", request("ark", "video", frame))])[0].status == "done"
    elapsed = 0.0
    for wait in clock.sleeps:
        assert wait <= max(1.0, 0.07 * elapsed) + 1e-9, (wait, elapsed)
        elapsed += wait
    assert clock.sleeps[-1] > 2.0  # and it does back off as the task runs long
