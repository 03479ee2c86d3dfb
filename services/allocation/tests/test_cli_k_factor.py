"""`balans heat k-factor` prints the EN 1434 coefficient of balans_physics."""

from __future__ import annotations

import pytest
import typer
from iapws import IAPWS97
from typer.testing import CliRunner

from balans_allocation.cli import register


def _reference_k(t_flow: float, t_return: float, in_flow: bool, p_mpa: float) -> float:
    flow = IAPWS97(T=t_flow + 273.15, P=p_mpa)
    ret = IAPWS97(T=t_return + 273.15, P=p_mpa)
    rho = flow.rho if in_flow else ret.rho
    return rho * (flow.h - ret.h) / (t_flow - t_return) / 3600.0


def _cli() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def root() -> None:
        """Stand-in for the balans root command."""

    return app


def test_cli_prints_bare_number_last() -> None:
    """`heat k-factor` ends with the bare k in kWh/(m3·K), or MJ with --unit MJ."""
    args = ["heat", "k-factor", "--t-flow", "70", "--t-return", "50", "--meter", "return"]
    result = CliRunner().invoke(_cli(), args)
    assert result.exit_code == 0, result.output
    kwh = float(result.output.strip().splitlines()[-1])
    assert kwh == pytest.approx(_reference_k(70.0, 50.0, False, 1.6), rel=1e-5)
    result = CliRunner().invoke(_cli(), [*args, "--unit", "MJ", "--pressure-bar", "6"])
    assert result.exit_code == 0, result.output
    mj = float(result.output.strip().splitlines()[-1])
    assert mj == pytest.approx(_reference_k(70.0, 50.0, False, 0.6) * 3.6, rel=1e-5)
