"""The dashboard page in a real headless Chromium (Debian's `chromium`, driven by Playwright) against `make run`'s
stack with seeded traffic: sign-in, each view showing the numbers the API returns for the same query, the seed's
step 4 (the top model's errors by type, and a policy for `context_length_exceeded` made from the page that then
routes a call of the official SDK), the form's 400 shown next to its field, a keyboard-only pass, and no console
errors. A screenshot of each view goes to .artifacts/dashboard/ (SWITCHYARD_DASHBOARD_ARTIFACTS overrides).

Without Chromium a local run skips, saying so; with CI set, a missing Chromium fails (.ci/run installs it)."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import openai
import pytest

from tests.conftest import LocalProcess

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("SWITCHYARD_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("SWITCHYARD_DASHBOARD_ARTIFACTS", ROOT / ".artifacts" / "dashboard"))
HI = [{"role": "user", "content": "Hello there, tell me something"}]
LONG = [{"role": "user", "content": "word " * 40_000}]  # ~50 k tokens: past sim/fast's 32,768
TRAFFIC = (("support-bot", "sim/fast", HI, 6), ("data-pipeline", "sim/chat", HI, 3),
           ("external-api", "sim/fast", HI, 2), ("data-pipeline", "sim/down", HI, 2),
           ("data-pipeline", "sim/fast", LONG, 3))


def _chromium() -> str:
    if Path(CHROMIUM).is_file():
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(f"CI is set and there is no Chromium at {CHROMIUM}: .ci/run installs Debian's `chromium`")
    pytest.skip(f"browser tests need Chromium at {CHROMIUM} (apt-get install -y chromium); CI fails instead")


def call(stack, method: str, path: str, key: str, body: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(f"{stack.url}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def get(stack, path: str, key: str) -> dict:
    status, body = call(stack, "GET", path, key)
    assert status == 200, body
    return body


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    _chromium()  # no stack to start when the browser is missing
    stack = LocalProcess(tmp_path_factory.mktemp("dashboard-state"), {}).start()
    try:
        key = stack.key("dev-key")
        for app, model, messages, n in TRAFFIC:
            client = openai.OpenAI(base_url=f"{stack.url}/api/v1", api_key=key, max_retries=0,
                                   default_headers={"X-Title": app})
            for _ in range(n):
                try:
                    client.chat.completions.create(model=model, messages=messages)
                except openai.APIStatusError:
                    pass  # sim/down, and the long prompts to sim/fast: the errors the page drills into
        admin, calls = stack.key("admin-key"), sum(t[3] for t in TRAFFIC)
        deadline = time.monotonic() + 60
        while sum(r["calls"] for r in get(stack, "/api/v1/analytics?group_by=model", admin)["data"]) < calls:
            assert time.monotonic() < deadline, "the seeded calls did not reach the lake"
            time.sleep(0.25)
        status, run = call(stack, "POST", "/api/v1/rankings/runs", admin,
                           {"date": datetime.now(timezone.utc).date().isoformat()})
        assert status == 200 and run["data"]["status"] == "completed", run
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")  # not the session's: Playwright's sync API holds an event loop while it runs,
def browser():                    # so that every later asyncio.run() in this thread would fail
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []  # root: no user namespace
        browser = p.chromium.launch(executable_path=executable, args=args)
        yield browser
        browser.close()


class Console:
    """The page's console errors and uncaught exceptions; `expect` names the failed loads a test causes."""

    def __init__(self, page) -> None:
        self.errors: list[str] = []
        self.expected: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def check(self) -> None:
        left = list(self.errors)
        for text in self.expected:
            if text in left:
                left.remove(text)
        assert not left, left


@pytest.fixture
def page(browser, stack, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.console = Console(page)
    page.api_calls = []
    page.on("request", lambda r: page.api_calls.append(r.url) if "/api/v1/" in r.url else None)
    yield page
    context.close()


def shot(page, name: str, request) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"dashboard screenshot: {path}")


def sign_in(page, stack, key_name: str = "admin-key") -> None:
    page.goto(f"{stack.url}/dashboard")
    page.get_by_label("API key").fill(stack.key(key_name))
    page.get_by_role("button", name="Sign in").click()
    ready(page, "analytics")


def ready(page, view: str) -> None:
    page.wait_for_selector(f"body[data-ready='{view}']", state="attached", timeout=30_000)


def open_view(page, view: str) -> None:
    page.evaluate("hash => { document.body.dataset.ready = ''; location.hash = hash; }", f"#/{view}")
    ready(page, view.split("/")[0])


def replay(page, stack, key: str, fragment: str, *, without: str = "\0") -> dict:
    """The API's answer to the call the page made last whose URL contains `fragment` (and not `without`),
    fetched again by the test."""
    url = next(u for u in reversed(page.api_calls) if fragment in urllib.parse.unquote(u) and without not in u)
    return get(stack, url.removeprefix(stack.url), key)


def cells(page, selector: str) -> list[str]:
    return [c.strip() for c in page.locator(selector).all_inner_texts()]


def row(page, caption: str, key: str) -> list[str]:
    table = page.locator("table", has=page.locator("caption", has_text=caption))
    return [c.strip() for c in table.locator(f"tr[data-key='{key}'] > *").all_inner_texts()]


def test_the_page_is_served_with_a_strict_content_security_policy(stack):
    with urllib.request.urlopen(f"{stack.url}/dashboard", timeout=10) as r:
        csp = r.headers["Content-Security-Policy"]
        html = r.read().decode()
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert "<script type=\"module\" src=\"/dashboard/app.js\"></script>" in html and "<style" not in html
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{stack.url}/dashboard/..%2Fapp.py", timeout=10)
    assert missing.value.code == 404


def test_sign_in_and_the_analytics_show_what_the_api_returns(page, stack, request):
    admin = stack.key("admin-key")
    sign_in(page, stack)
    models = replay(page, stack, admin, "group_by=model")["data"]
    assert {r["model"] for r in models} >= {"sim/fast", "sim/chat", "sim/down"}
    top = max(models, key=lambda r: r["total_tokens"])
    first_row = page.locator("table", has=page.locator("caption", has_text="Models by tokens")).locator("tbody tr").first
    assert first_row.get_attribute("data-key") == top["model"]  # Top Models by Tokens: the biggest first
    for r in models:
        shown = row(page, "Models by tokens", r["model"])
        assert shown[1] == f"{r['total_tokens']:,}" and shown[3] == f"{r['calls']:,}", (shown, r)
        assert shown[4] == ("–" if r["success_rate"] is None else f"{r['success_rate'] * 100:.1f}%"), (shown, r)
    totals = dict(zip(cells(page, "#totals dt"), cells(page, "#totals dd")))
    assert totals["Calls"] == f"{sum(r['calls'] for r in models):,}"
    assert totals["Tokens"] == f"{sum(r['total_tokens'] for r in models):,}"
    labs: dict[str, float] = {}  # the page adds the labs up from the models' rows (group_by=model,lab)
    for r in models:
        labs[r["lab"]] = labs.get(r["lab"], 0.0) + r["cost"]
    assert sum(r["calls"] for r in get(stack, "/api/v1/analytics?group_by=lab", admin)["data"]) == sum(
        r["calls"] for r in models)
    for lab, cost in labs.items():
        assert row(page, "Cost by lab", lab)[2] == f"{cost / sum(labs.values()) * 100:.1f}%"
    apps = replay(page, stack, admin, "group_by=app")["data"]
    assert {r["app"] for r in apps} >= {"support-bot", "data-pipeline", "external-api"}
    for r in apps:
        shown = row(page, "Usage by app", r["app"])
        assert (shown[1], shown[2]) == (f"{r['calls']:,}", f"{r['total_tokens']:,}"), (shown, r)
    series = [r for r in replay(page, stack, admin, "granularity=hour")["data"] if r["latency_ms_p50"] is not None]
    page.get_by_text("The numbers").click()
    periods = page.locator("table", has=page.locator("caption", has_text="Latency by period")).locator("tbody tr")
    assert periods.count() == len(series) > 0
    assert page.locator("svg[aria-label='Latency p50, p95 and p99 over time'] path").count() == 3
    shot(page, "analytics", request)
    page.console.check()


def test_view_errors_of_the_top_model_shows_its_errors_by_type(page, stack, request):
    admin = stack.key("admin-key")
    sign_in(page, stack)
    page.get_by_role("link", name="View errors of sim/fast").click()
    ready(page, "errors")
    kinds = replay(page, stack, admin, "group_by=error_type")["data"]  # every call of the model, by error type
    failures = {r["error_type"]: r["failed"] for r in kinds if r["failed"]}
    assert failures["context_length_exceeded"] >= 3
    for kind, n in failures.items():
        assert row(page, "Failed calls of sim/fast by error type", kind)[1] == f"{n:,}"
    summary = get(stack, "/api/v1/analytics?model=sim/fast", admin)["data"][0]  # the model's totals, asked apart
    facts = dict(zip(cells(page, "#model-totals dt"), cells(page, "#model-totals dd")))
    assert facts["Success rate"] == f"{summary['success_rate'] * 100:.1f}%"
    assert (facts["Calls"], facts["Failed"]) == (f"{summary['calls']:,}", f"{summary['failed']:,}")
    shot(page, "errors", request)
    page.console.check()


def test_a_policy_made_from_the_errors_page_routes_a_long_prompt_to_a_longer_context_model(page, stack, request):
    sign_in(page, stack)
    open_view(page, "errors/sim%2Ffast")
    page.get_by_role("link", name="Create a routing policy for context_length_exceeded of sim/fast").click()
    ready(page, "routing")
    form = page.locator("#policy-form")
    assert form.get_by_label("Default model").input_value() == "sim/fast"
    assert form.get_by_label("Error type 1").input_value() == "context_length_exceeded"
    assert form.get_by_label("Reroute to model 1").input_value() == "sim/long-context"  # the longest context
    policy = f"dash/ctx-{uuid.uuid4().hex[:6]}"
    form.get_by_label("Policy id").fill(policy)
    form.get_by_role("button", name="Save policy").click()
    page.wait_for_selector(f"tr[data-key='{policy}']", timeout=30_000)
    assert "Saved" in page.locator("#policy-status").inner_text()
    stored = get(stack, f"/api/v1/routes/{policy}", stack.key("admin-key"))["data"]
    assert stored["on_error"] == {"context_length_exceeded": "sim/long-context"}
    shot(page, "routing", request)

    client = openai.OpenAI(base_url=f"{stack.url}/api/v1", api_key=stack.key("dev-key"), max_retries=0)
    assert client.chat.completions.create(model=policy, messages=HI).model == "sim/fast"
    assert client.chat.completions.create(model=policy, messages=LONG).model == "sim/long-context"
    page.console.check()


def test_the_policy_form_shows_the_apis_400_next_to_the_field(page, stack, request):
    sign_in(page, stack)
    open_view(page, "routing")
    form = page.locator("#policy-form")
    form.get_by_label("Policy id").fill("dash/broken")
    form.get_by_label("Default model").fill("sim/no-such-model")
    page.console.expected.append("Failed to load resource: the server responded with a status of 400 (Bad Request)")
    form.get_by_role("button", name="Save policy").click()
    error = page.locator("#f-default-error")
    error.wait_for(timeout=30_000)
    page.wait_for_function("() => document.getElementById('f-default-error').textContent !== ''")
    status, body = call(stack, "PUT", "/api/v1/routes", stack.key("admin-key"),
                        {"id": "dash/broken", "default": {"model": "sim/no-such-model"}})
    assert status == 400
    assert error.inner_text() == body["error"]["message"]
    assert form.get_by_label("Default model").get_attribute("aria-invalid") == "true"
    shot(page, "routing-400", request)
    page.console.check()


def test_keyboard_only_sign_in_and_key_creation(page, stack, request):
    page.goto(f"{stack.url}/dashboard")
    page.wait_for_function("() => document.activeElement.id === 'key-input'")  # the page starts at the key field
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Sign in"
    page.keyboard.press("Shift+Tab")
    page.keyboard.type(stack.key("admin-key"))
    page.keyboard.press("Enter")
    ready(page, "analytics")
    for _ in range(40):  # into the menu, to Keys
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.dataset.view") == "keys":
            break
    else:
        pytest.fail("Tab never reached the Keys link")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # focus is visible
    page.keyboard.press("Enter")
    ready(page, "keys")
    name = f"kbd-{uuid.uuid4().hex[:6]}"
    for _ in range(200):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "f-name":
            break
    else:
        pytest.fail("Tab never reached the key form")
    page.keyboard.type(name)
    page.keyboard.press("Tab")
    page.keyboard.type("5")
    page.keyboard.press("Enter")
    page.wait_for_selector("#new-secret", timeout=30_000)
    assert page.evaluate("document.activeElement.id") == "new-secret"
    secret = page.locator("#new-secret").input_value()
    made = next(k for k in get(stack, "/api/v1/keys", stack.key("admin-key"))["data"] if k["name"] == name)
    assert made["limit"] == 5 and secret.startswith("sk-sy-v1-") and made["hash"] in secret
    page.console.check()


def test_keys_created_with_restrictions_then_rotated_and_disabled(page, stack, request):
    admin = stack.key("admin-key")
    sign_in(page, stack)
    open_view(page, "keys")
    name = f"web-{uuid.uuid4().hex[:6]}"
    form = page.locator("#key-form")
    form.get_by_label("Name").fill(name)
    form.get_by_label("Allowed models").fill("sim/fast, sim/chat")
    form.get_by_label("Allowed origins").fill("https://your-app.com")
    form.get_by_label("Requests per minute").fill("100")
    form.get_by_role("button", name="Create key").click()
    page.wait_for_selector("#new-secret", timeout=30_000)
    first = page.locator("#new-secret").input_value()
    made = next(k for k in get(stack, "/api/v1/keys", admin)["data"] if k["name"] == name)
    assert (made["allowed_models"], made["allowed_origins"], made["rpm"]) == (
        ["sim/fast", "sim/chat"], ["https://your-app.com"], 100)
    key_row = page.locator(f"tr[data-key='{made['hash']}']")
    assert "models: sim/fast, sim/chat" in key_row.inner_text()
    page.get_by_role("button", name=f"Rotate {name}").click()
    page.wait_for_function("old => document.getElementById('new-secret')?.value !== old", arg=first)
    rotated = page.locator("#new-secret").input_value()
    assert rotated != first and made["hash"] in rotated
    shot(page, "keys", request)
    page.get_by_role("button", name=f"Disable {name}").click()
    page.get_by_role("button", name=f"Enable {name}").wait_for(timeout=30_000)
    assert get(stack, f"/api/v1/keys/{made['hash']}", admin)["data"]["disabled"] is True
    page.console.check()


def test_an_inference_key_sees_its_own_calls_and_no_management_views(page, stack, request):
    key = stack.key("dev-key")
    sign_in(page, stack, "dev-key")
    menu = cells(page, "#nav a")
    assert "Analytics" in menu and "Rankings" in menu and "Keys" not in menu and "Routing" not in menu
    models = replay(page, stack, key, "group_by=model")["data"]
    totals = dict(zip(cells(page, "#totals dt"), cells(page, "#totals dd")))
    assert totals["Calls"] == f"{sum(r['calls'] for r in models):,}"
    open_view(page, "key")
    credits = get(stack, "/api/v1/credits", key)["data"]
    facts = dict(zip(cells(page, "#credits dt"), cells(page, "#credits dd")))
    assert credits["total_credits"] is None and facts["Total credits"] == "no limit"  # the dev key has no limit
    shown = float(facts["Total usage"].removeprefix("$"))  # three significant digits
    assert credits["total_usage"] > 0 and abs(shown - credits["total_usage"]) <= credits["total_usage"] * 0.005
    activity = get(stack, "/api/v1/activity", key)["data"]  # completed days only: today's calls are not in it
    listed = page.locator("table", has=page.locator("caption", has_text="Activity by day and model"))
    if activity:
        assert listed.locator("tbody tr").count() == len(activity)
    else:
        assert page.get_by_text("No calls in the last 30 completed days").is_visible()
    shot(page, "my-key", request)
    page.console.check()


def test_the_rankings_show_each_models_license_terms(page, stack, request):
    sign_in(page, stack)
    open_view(page, "rankings")
    ranked = get(stack, "/api/v1/rankings?by=model", stack.key("admin-key"))["data"]
    terms = {t["model"]: t for t in get(stack, "/api/v1/models/licenses", stack.key("admin-key"))["data"]}
    assert ranked
    for r in ranked:
        shown = row(page, "Rankings by model", r["model"])
        assert shown[0] == str(r["rank"] if r["rank"] is not None else "–") and shown[1] == r["model"]
        assert shown[-1].startswith(terms[r["model"]]["license"]), shown
    shot(page, "rankings", request)
    page.console.check()


def test_the_audit_log_lists_the_management_actions(page, stack, request):
    sign_in(page, stack)
    open_view(page, "audit")
    entries = get(stack, "/api/v1/audit?limit=50", stack.key("admin-key"))["data"]
    assert entries
    for e in entries[:10]:
        shown = row(page, "Audit log", str(e["seq"]))
        assert (shown[2], shown[4]) == (e["action"], e["target"]), (shown, e)
    shot(page, "audit", request)
    page.console.check()


def test_a_synthetic_jobs_progress_updates_live(page, stack, request):
    admin = stack.key("admin-key")
    spec = {"name": f"dash-live-{uuid.uuid4().hex[:6]}", "num_records": 40, "seed": 3, "buffer_size": 10,
            "model_configs": [{"alias": "w", "model": "sim/chat",
                               "inference_parameters": {"max_tokens": 40, "max_parallel_requests": 4}}],
            "columns": [{"name": "topic", "column_type": "sampler", "sampler_type": "category",
                         "params": {"values": ["tax", "leases", "wills"]}},
                        {"name": "note", "column_type": "llm-text", "model_alias": "w",
                         "prompt": "Write about {{ topic }}"}]}
    sign_in(page, stack)
    status, job = call(stack, "POST", "/api/v1/synthetic/jobs", admin, {"spec": spec})
    assert status == 202, job
    open_view(page, "jobs")
    page.evaluate("window.__same_page = true")
    cell = page.locator(f"tr[data-key='{job['job_id']}']")
    cell.get_by_text("completed").wait_for(timeout=120_000)  # no reload: the view polls the job
    final = get(stack, f"/api/v1/synthetic/jobs/{job['job_id']}", admin)
    assert final["status"] == "completed"
    assert f"{final['rows_done']} of 40 rows" in cell.inner_text()
    assert page.evaluate("window.__same_page") is True
    assert any(f"/synthetic/jobs/{job['job_id']}" in u for u in page.api_calls)  # polled, not listed once
    shot(page, "jobs", request)
    page.console.check()
