"""The operator's page: one server-rendered HTML document (inline CSS and SVG, no script, no build
step), refreshed by the browser every 10 seconds. Every value from the log is HTML-escaped."""

from __future__ import annotations

import time
from html import escape

from ..replay.report import TaskReport
from .live import LiveFigures, Shares

__all__ = ["render_dashboard"]

_COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")
_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1f2328}
header{background:#1f2d3d;color:#fff;padding:14px 24px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#c9d4df;font-size:13px}main{padding:16px 24px;max-width:1200px}
section{background:#fff;border:1px solid #d8dee4;border-radius:8px;margin:0 0 16px;padding:14px 18px}
h2{margin:0 0 10px;font-size:17px}.cards{display:flex;flex-wrap:wrap;gap:10px;margin-bottom:10px}
.card{border:1px solid #e3e7eb;border-radius:6px;padding:8px 12px;min-width:130px}
.card .k{color:#57606a;font-size:12px}.card .v{font-size:19px;font-weight:600}
.legend span{display:inline-block;margin-right:14px;font-size:12px}.legend i{display:inline-block;width:10px;
height:10px;margin-right:5px;border-radius:2px}table{border-collapse:collapse;font-size:13px}
td,th{padding:3px 10px;border-bottom:1px solid #eaeef2;text-align:right}th:first-child,td:first-child{text-align:left}
.empty{color:#57606a}.warn{color:#b35900}
"""


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:.6f}"


def _secs(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{1000 * value:.0f} ms" if value < 1 else f"{value:.2f} s"


def _card(key: str, value: str, title: str = "") -> str:
    return f'<div class="card" title="{escape(title)}"><div class="k">{escape(key)}</div><div class="v">{escape(value)}</div></div>'


def _colour(models: tuple[str, ...], name: str) -> str:
    return _COLOURS[models.index(name) % len(_COLOURS)] if name in models else "#888"


def _chart(shares: Shares, all_models: tuple[str, ...], task: str) -> str:
    """Stacked bars: the share of each model among the answers in each time bucket."""
    if not shares.answered.size or not shares.answered.any():
        return '<p class="empty">No answers yet.</p>'
    width, height, left, bottom, top = 720, 160, 40, 22, 8
    n = shares.shares.shape[0]
    bar = (width - left) / n
    parts = [f'<svg role="img" aria-label="model shares over time for {escape(task)}" width="{width}" '
             f'height="{height + bottom + top}" viewBox="0 {-top} {width} {height + bottom + top}">']
    for frac in (0.0, 0.5, 1.0):
        y = height - frac * height
        parts.append(f'<line x1="{left}" x2="{width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e7eb"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{int(frac * 100)}%</text>')
    for i in range(n):
        if shares.answered[i] == 0:
            continue
        y = float(height)
        for j, model in enumerate(shares.models):
            h = float(shares.shares[i, j]) * height
            if h <= 0:
                continue
            y -= h
            parts.append(f'<rect x="{left + i * bar + 1:.1f}" y="{y:.1f}" width="{max(bar - 2, 1):.1f}" height="{h:.1f}" '
                         f'fill="{_colour(all_models, model)}"><title>{escape(model)}: {100 * shares.shares[i, j]:.0f}% '
                         f'of {int(shares.answered[i])}</title></rect>')
    stamp = lambda t: time.strftime("%H:%M:%S", time.gmtime(t))  # noqa: E731
    end = shares.start + shares.width_s * n
    parts.append(f'<text x="{left}" y="{height + 15}" font-size="10">{stamp(shares.start)}</text>'
                 f'<text x="{width}" y="{height + 15}" font-size="10" text-anchor="end">{stamp(end)} UTC</text></svg>')
    legend = "".join(f'<span><i style="background:{_colour(all_models, m)}"></i>{escape(m)}</span>' for m in shares.models)
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def _section(r: TaskReport, shares: Shares | None, models: tuple[str, ...]) -> str:
    premium = f" vs {r.premium_model}" if r.premium_model else ""
    cards = "".join([
        _card("requests", f"{r.requests}"),
        _card("cost per completed task", _usd(r.cost_per_completed_task_usd),
              f"spend / requests whose quality passed; {r.completed} completed of {r.scored} scored"),
        _card(f"savings{premium}", _pct(r.savings_vs_premium), "against sending every request to the priciest model"),
        _card("escalation rate", _pct(r.escalation_rate), "re-asked to a stronger model after a low score"),
        _card("fallback rate", _pct(r.fallback_rate), "another model after an error"),
        _card("failure rate", _pct(r.failure_rate), "every model failed"),
        _card("latency p50", _secs(r.latency_p50_s)),
        _card("latency p95", _secs(r.latency_p95_s)),
        _card("spend", _usd(r.spend_usd)),
        _card("mean quality", "-" if r.mean_quality is None else f"{r.mean_quality:.3f}"),
    ])
    rows = "".join(f"<tr><td>{escape(m)}</td><td>{_pct(s)}</td></tr>"
                   for m, s in sorted(r.model_shares.items(), key=lambda kv: -kv[1]))
    table = f"<table><tr><th>model</th><th>share of answers</th></tr>{rows}</table>" if rows else ""
    chart = _chart(shares, models, r.task) if shares is not None else ""
    title = "all tasks" if r.task == "all" else f"task: {r.task}"
    return (f'<section data-task="{escape(r.task)}"><h2>{escape(title)}</h2><div class="cards">{cards}</div>'
            f"{chart}{table}</section>")


def render_dashboard(figures: LiveFigures, models: tuple[str, ...], cooling: dict[str, float]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(figures.computed_at))
    note = ""
    if cooling:
        note = '<p class="warn">Cooling down: ' + ", ".join(f"{escape(m)} ({s:.0f} s)" for m, s in sorted(cooling.items())) + "</p>"
    body = [_section(r, figures.shares.get(t), models) for t, r in figures.reports.items() if t != "all"]
    if "all" in figures.reports and len(body) != 1:
        body.insert(0, _section(figures.reports["all"], None, models))
    if not body:
        body = ['<section><p class="empty">No requests in the log yet.</p></section>']
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">'
        f"<title>adaptroute gateway</title><style>{_CSS}</style></head><body>"
        f"<header><h1>adaptroute gateway</h1><p>{figures.requests} requests in the log &middot; models: "
        f"{escape(', '.join(models))} &middot; as of {when}</p></header><main>{note}{''.join(body)}</main></body></html>"
    )
