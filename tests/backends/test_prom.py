"""Prometheus text parsing shared by the HPA metrics pipeline, the scenarios and cAdvisor reads."""

from __future__ import annotations

from harness import prom

TEXT = """# TYPE vllm:num_requests_running gauge
vllm:num_requests_running 3
vllm:num_requests_waiting 1
# TYPE gauntlet:request_rejections counter
gauntlet:request_rejections_total{reason="queue_full"} 5.0
gauntlet:request_rejections_total{reason="too_long"} 2.0
"""


def test_parse_keeps_labels_per_sample() -> None:
    s = prom.parse(TEXT)
    assert s["vllm:num_requests_running"] == [({}, 3.0)]
    assert ({"reason": "too_long"}, 2.0) in s["gauntlet:request_rejections_total"]


def test_total_spellings_and_sums() -> None:
    s = prom.parse(TEXT)
    assert prom.total(s, "vllm:num_requests_running") == 3.0
    assert prom.total(s, "vllm_num_requests_running") == 3.0  # prometheus-adapter's renaming
    assert prom.total(s, "vllm:num_requests_running+vllm:num_requests_waiting") == 4.0
    assert prom.total(s, "gauntlet:request_rejections") == 7.0  # counter without its _total
    assert prom.total(s, "vllm:num_requests_running+missing") is None
    assert prom.total(s, "missing") is None


def test_malformed_text_is_not_an_exception() -> None:
    assert prom.parse("this is { not prometheus") == {}
