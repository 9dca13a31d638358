"""The HTTP benchmark reads wrk's report correctly and refuses runs with failed requests."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.http_bench import parse_wrk, write_script

# As wrk prints it, trailing spaces on the percentile lines included.
REPORT = (
    "Running 5s test @ http://127.0.0.1:33029/api/v1/environments/x/secrets\n"
    "  1 threads and 64 connections\n"
    "  Thread Stats   Avg      Stdev     Max   +/- Stdev\n"
    "    Latency     1.11s   287.10ms   2.10s    79.03%\n"
    "    Req/Sec    51.38     13.80    80.00     81.25%\n"
    "  Latency Distribution\n"
    "     50%  930.00us \n"
    "     75%    1.21s \n"
    "     90%    1.37s \n"
    "     99%    1.87s \n"
    "  248 requests in 5.01s, 743.27KB read\n"
    "{errors}Requests/sec:     49.51\n"
    "Transfer/sec:    148.38KB\n"
)


def test_reads_rate_percentiles_and_count() -> None:
    result = parse_wrk(REPORT.format(errors=""))
    assert result.requests_per_s == pytest.approx(49.51)
    assert result.p50_ms == pytest.approx(0.93)
    assert result.p99_ms == pytest.approx(1870.0)
    assert (result.requests, result.errors) == (248, 0)


def test_counts_non_2xx_and_socket_errors() -> None:
    errors = (
        "  Socket errors: connect 0, read 2, write 0, timeout 3\n  Non-2xx or 3xx responses: 7\n"
    )
    assert parse_wrk(REPORT.format(errors=errors)).errors == 12


def test_a_report_without_figures_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="Requests/sec"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_write_script_posts_new_values_each_request(tmp_path: Path) -> None:
    lua = write_script(tmp_path, field="set", extra='"message":"bench",').read_text()
    assert "for i = 0, 49 do" in lua
    assert 'local body = "{\\"message\\":\\"bench\\",\\"set\\":{" ..' in lua
    assert '.. "}}"' in lua
    assert "counter = counter + 1" in lua
