"""GET /dashboard in a real headless browser, after real traffic through the gateway."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import openai
import pytest

from adaptroute.testing import Behavior, FakeOpenAI, fake_openai
from browser import chromium, dump_dom, screenshot
from gateway_harness import PROVIDER_KEY, ThreadGateway, write_config

pytestmark = pytest.mark.skipif(chromium() is None, reason="chromium is not installed (apt-get install -y chromium; .ci/run does)")

# What a reviewer would say of each model's answers, per task (sent back as feedback).
QUALITY = {("extract", "cheap"): 0.9, ("extract", "mid"): 0.95, ("extract", "premium"): 1.0,
           ("draft", "cheap"): 0.2, ("draft", "mid"): 0.85, ("draft", "premium"): 0.9}
REQUESTS = 80
# Set to a path to keep the screenshot (how docs/dashboard.png is made).
KEEP_SCREENSHOT = os.environ.get("ADAPTROUTE_DASHBOARD_PNG")


class _Text(HTMLParser):
    """The visible text of each <section data-task=...>, and the SVG bars in it."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, list[str]] = {}
        self.bars: dict[str, int] = {}
        self._task: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "section" and "data-task" in values:
            self._task = values["data-task"] or ""
            self.sections[self._task] = []
            self.bars[self._task] = 0
        elif tag == "rect" and self._task is not None:
            self.bars[self._task] += 1

    def handle_data(self, data: str) -> None:
        if self._task is not None and data.strip():
            self.sections[self._task].append(data.strip())


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ThreadGateway]:
    with fake_openai() as fake:
        answer = Behavior.ok(prompt_tokens=400, completion_tokens=200)
        fake.set("premium", answer.with_(delay_s=0.03))
        fake.set("mid", answer.with_(delay_s=0.01))
        fake.set("cheap", answer)
        path = write_config(tmp_path, fake, ["cheap", "mid", "premium"], router={"reward": {"quality": 1.0, "cost": 200.0}},
                            server={"client_keys": []}, prices={"cheap": (1e-7, 4e-7), "mid": (1e-6, 4e-6),
                                                                "premium": (1e-5, 4e-5)})
        with ThreadGateway(path) as gw:
            yield gw


def test_dashboard_after_traffic(served: ThreadGateway, tmp_path: Path) -> None:
    gw = served
    sdk = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
    for i in range(REQUESTS):
        task = "extract" if i % 2 else "draft"
        response = sdk.chat.completions.create(model=f"adaptroute/{task}", messages=[{"role": "user", "content": f"item {i}"}])
        record = response.adaptroute
        httpx.post(gw.base_url + "/feedback", json={"decision_id": record["decision_id"],
                                                    "quality": QUALITY[(task, record["model"])]}).raise_for_status()
    dom = dump_dom(gw.url + "/dashboard")
    assert "<title>adaptroute gateway</title>" in dom and f"{REQUESTS} requests in the log" in dom
    page = _Text()
    page.feed(dom)
    assert set(page.sections) == {"all", "draft", "extract"}
    for task in ("draft", "extract"):
        text = " ".join(page.sections[task])
        assert f"task: {task}" in text and f"requests {REQUESTS // 2}" in text
        for label in ("cost per completed task", "savings vs ", "escalation rate", "failure rate",
                      "latency p50", "latency p95"):
            assert label in text, (task, label)
        cost = re.search(r"cost per completed task \$([0-9.]+)", text)
        assert cost and float(cost.group(1)) > 0
        assert re.search(r"latency p50 \d+ ms", text) and re.search(r"latency p95 \d+ ms", text)
        assert page.bars[task] > 0  # the model-share chart has bars
    assert "fallback rate" in " ".join(page.sections["all"])
    assert PROVIDER_KEY not in dom
    png = screenshot(gw.url + "/dashboard", Path(KEEP_SCREENSHOT) if KEEP_SCREENSHOT else tmp_path / "dashboard.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
