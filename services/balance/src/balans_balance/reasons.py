"""The one reason an alert fired, as a code and its figures.

Every finding names the single rule that decided its kind (``<kind>.<rule>``) with the
figures its sentence needs; pages translate the code and fill in the figures, and the
English sentence here is the alert's ``summary``. The codes are listed in
docs/balance.md (*Alerts and de-duplication*)."""

from __future__ import annotations

from typing import Any

_GROUP_SHAPES = {
    "step": "a constant excess of {excess_pct} % of the balance meter beyond the members' use",
    "use": "an excess of {excess_pct} % of the balance meter that follows the members' use",
    "scale": "the balance meter reads {excess_pct} % off by a constant factor",
    "ramp": "an excess that grows steadily, now {excess_pct} % of the balance meter",
    "settled": "an excess that grew, then held at {excess_pct} % of the balance meter",
}
_GROUP_KINDS = ("leak", "unauthorised_connection", "faulty_balance_meter")

SENTENCES: dict[str, str] = {
    **{
        f"{kind}.{shape}": "{naming}: group {group}, " + text
        for kind in _GROUP_KINDS
        for shape, text in _GROUP_SHAPES.items()
    },
    "stuck_meter.register_still": "stuck meter {meter_serial}: its register stood still for "
    "{still_hours} h while its peers' use says it should have counted",
    "stuck_meter.not_counted": "stuck meter {meter_serial}: has not counted since {since} "
    "while its peers used {peer_use} {unit} each",
    "stuck_meter.not_counted_since_before": "stuck meter {meter_serial}: has not counted "
    "since before {since} while its peers used {peer_use} {unit} each",
    "magnet.not_counted_tamper_flag": "magnet on meter {meter_serial}: its module raised the "
    "tamper flag and the register has not counted since {since}",
    "magnet.register_still_tamper_flag": "magnet on meter {meter_serial}: its module raised the "
    "tamper flag and the register stood still for {still_hours} h",
    "magnet.tamper_flag": "magnet on meter {meter_serial}: its module raised the tamper flag "
    "and the meter registers {loss_pct} % less than its peers predict",
    "magnet.balance_confirmed": "magnet on meter {meter_serial}: it registers {loss_pct} % less "
    "than its peers predict while the balance meter still sees that use",
    "magnet.follows_use": "magnet on meter {meter_serial}: it registers {loss_pct} % less "
    "than its peers predict, a share of each day's heat whatever the weather (no thermostat "
    "setting takes that much heat off a flat, and what it saves is the same every day)",
    "magnet.riser_dt_steady": "magnet on riser meter {meter_serial}: its flow fell {loss_pct} % "
    "against its peers while the riser's ΔT stayed in line",
    "drifting_meter.growing_error": "drifting meter {meter_serial}: its error against its "
    "peers grows steadily ({loss_pct} % so far)",
    "drifting_meter.balance_confirmed": "drifting meter {meter_serial}: it registers "
    "{loss_pct} % off its peers' prediction and the balance meter confirms the meter is wrong",
    "drifting_meter.follows_use": "drifting meter {meter_serial}: it registers {loss_pct} % "
    "off its peers' prediction, a share of each day's heat whatever the weather (a "
    "thermostat turned down would lower the heat by the same amount every day)",
    "drifting_meter.riser_dt_steady": "drifting riser meter {meter_serial}: its flow moved "
    "{loss_pct} % against its peers while the riser's ΔT stayed in line",
    "clogged_riser.dt_rose": "clogged riser (meter {meter_serial}): its flow fell {loss_pct} % "
    "and the riser's ΔT rose {dt_change_pct} %: the water really slowed",
    "clogged_riser.balance_unmoved": "clogged riser (meter {meter_serial}): its flow fell "
    "{loss_pct} % against its peers and the balance meter did not move",
    "concentrator_silent.silence": "concentrator {concentrator} silent",
    "concentrator_silent.silent_since_before": "concentrator {concentrator}: none of its "
    "modules heard since before {since}",
    "dead_module.silence": "module {module} silent (dead, or cut off from the mesh)",
    "dead_module.never_heard": "module {module} never heard since its installation on "
    "{installed_on}",
    "dead_module.silent_since_before": "module {module} silent since before {since}",
    "missing_data.silence": "meter {meter_serial}: no readings although its module reports",
    "low_battery.low_or_falling": "module {module}: battery low or heading for cut-off",
    "consumer_leak.night_flow": "meter {meter_serial}: water ran every hour of the last three "
    "nights (a dripping tap or a running cistern?)",
    "faulty_sensor.frozen": "frozen {sensor} sensor on module {module} (flat {flat}, riser "
    "{riser}): it repeats one reading while the water around it changes",
    "faulty_sensor.swapped": "swapped sensors on module {module} (flat {flat}, riser {riser}): "
    "its ΔT is {deviation_k} °C, negative, while its neighbours heat",
    "faulty_sensor.detached": "detached {sensor} sensor on module {module} (flat {flat}, riser "
    "{riser}): it reads the room, {deviation_k} °C off the water it should measure",
    "faulty_sensor.displaced": "displaced {sensor} sensor on module {module} (flat {flat}, riser "
    "{riser}): it reads {deviation_k} °C nearer the room than the water around it says",
    "faulty_sensor.drifting": "drifting {sensor} sensor on module {module} (flat {flat}, riser "
    "{riser}): it reads {deviation_k} °C off what the water around it says",
    "verification_due.due": "meter {meter_serial}: its verification is due on {due_on} "
    "(every {interval_years} years)",
    "verification_due.expired": "meter {meter_serial}: its verification expired on {due_on} "
    "(every {interval_years} years)",
}


def reason(code: str, **params: Any) -> tuple[str, dict[str, Any], str]:
    """(code, params, English sentence) of one reason; an unknown code or a missing
    figure is a programming error and raises."""
    return code, params, SENTENCES[code].format(**params)


def percent(share: float) -> float:
    """A share as a percentage to one decimal, sign dropped (the sentence says which way)."""
    return round(abs(share) * 100, 1)
