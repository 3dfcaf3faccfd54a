"""metrics.labelled: the hot path's label lookups, once per label set."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from tinyim.infra import metrics


def test_it_is_the_child_labels_gives_and_counts_land_in_that_series() -> None:
    registry = CollectorRegistry()
    frames = Counter("t_frames_total", "frames", ["cmd"], registry=registry)
    child = metrics.labelled(frames, "CMD_A")
    assert child is frames.labels(cmd="CMD_A")
    assert metrics.labelled(frames, "CMD_A") is child  # looked up once
    metrics.labelled(frames, "CMD_A").inc()
    metrics.labelled(frames, "CMD_B").inc(2)
    assert registry.get_sample_value("t_frames_total", {"cmd": "CMD_A"}) == 1.0
    assert registry.get_sample_value("t_frames_total", {"cmd": "CMD_B"}) == 2.0


def test_label_values_are_positional_in_the_metrics_label_order() -> None:
    registry = CollectorRegistry()
    seconds = Histogram("t_seconds", "time", ["method", "code"], registry=registry, buckets=(1.0,))
    metrics.labelled(seconds, "/im.X/Y", "OK").observe(0.5)
    assert registry.get_sample_value("t_seconds_count", {"method": "/im.X/Y", "code": "OK"}) == 1.0
    assert registry.get_sample_value("t_seconds_count", {"method": "OK", "code": "/im.X/Y"}) is None


def test_the_same_label_values_on_two_metrics_are_two_children() -> None:
    registry = CollectorRegistry()
    a = Counter("t_a_total", "a", ["code"], registry=registry)
    b = Counter("t_b_total", "b", ["code"], registry=registry)
    assert metrics.labelled(a, "OK") is not metrics.labelled(b, "OK")
