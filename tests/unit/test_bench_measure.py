"""The benchmark's own judgements: a stall is not a backlog, stage times are phase means, the disk probe
measures fsyncs. A wrong rule here moves a published figure (the peak, and the rate at half of it)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bench.common import DiskProbe
from bench.measure import Counters, _add_stage_time, backlog_grew


@pytest.mark.parametrize(
    ("tenths", "grew"),
    [
        # one disk stall in the last tenth: the queue drained around it (run s33p1's step at 4,250/s)
        ([11.0, 8.6, 8.7, 10.1, 8.6, 13.6, 13.3, 5.9, 6.7, 107.4], False),
        # a queue that grew through the step
        ([60.0, 80.0, 110.0, 150.0, 190.0, 220.0, 260.0, 290.0, 320.0, 340.0], True),
        # high throughout but not growing: twice the first tenth is never reached
        ([150.0, 160.0, 170.0, 150.0, 160.0, 170.0, 160.0, 150.0, 200.0, 210.0], False),
        # growing, but still small: under BACKLOG_FREE_MS
        ([5.0, 8.0, 12.0, 20.0, 30.0, 40.0, 50.0, 60.0, 80.0, 95.0], False),
    ],
)
def test_backlog_needs_the_last_two_tenths_high(tenths: list[float], grew: bool) -> None:
    assert backlog_grew(tenths) is grew


def test_stage_times_are_means_over_the_phase_summed_over_processes() -> None:
    def scrape(*lines: str) -> Counters:
        out = Counters()
        for line in lines:
            _add_stage_time(out.stages, line)
        return out

    before = scrape(
        'tinyim_request_seconds_sum{cmd="CMD_MSG_SEND_REQ"} 1.0',
        'tinyim_request_seconds_count{cmd="CMD_MSG_SEND_REQ"} 100.0',
        'tinyim_request_seconds_sum{cmd="CMD_MSG_SYNC_REQ"} 9.0',  # not a stage: ignored
        "tinyim_timeline_batch_seconds_sum 0.5",  # batch_figures' own: not a stage
        "tinyim_timeline_batch_seconds_count 10.0",
    )
    after = scrape(
        # two gateways' figures add up
        'tinyim_request_seconds_sum{cmd="CMD_MSG_SEND_REQ"} 1.5',
        'tinyim_request_seconds_count{cmd="CMD_MSG_SEND_REQ"} 150.0',
        'tinyim_request_seconds_sum{cmd="CMD_MSG_SEND_REQ"} 0.3',
        'tinyim_request_seconds_count{cmd="CMD_MSG_SEND_REQ"} 50.0',
        'tinyim_grpc_client_seconds_sum{code="OK",method="/im.MsgService/SendMsgStream"} 0.2',
        'tinyim_grpc_client_seconds_count{code="OK",method="/im.MsgService/SendMsgStream"} 40.0',
        'tinyim_request_seconds_bucket{cmd="CMD_MSG_SEND_REQ",le="0.001"} 7.0',  # a bucket: not a sum
        "tinyim_timeline_batch_seconds_sum 0.9",
        "tinyim_timeline_batch_seconds_count 20.0",
    )
    # (1.8 - 1.0) s over (200 - 100) requests; PushStream was not served: no figure for it
    assert after.stage_ms(before) == {
        "request_seconds CMD_MSG_SEND_REQ": 8.0,
        "grpc_client_seconds SendMsgStream": 5.0,
    }


def test_disk_probe_times_fsyncs(tmp_path: Path) -> None:
    with DiskProbe(str(tmp_path), every=0.001) as probe:
        deadline = time.monotonic() + 10
        while len(probe._latencies) < 5 and time.monotonic() < deadline:
            time.sleep(0.005)
    figures = probe.figures()
    assert figures["fsyncs"] >= 5
    assert 0 < figures["p50_ms"] <= figures["max_ms"]
    assert list(tmp_path.iterdir()) == []  # its file is gone
