"""Which exposures a stack generator can make: the rule, without PyTorch, so that the command
line refuses a wrong ``--evs`` before it loads anything heavy.

The recursion goes one stop at a time from the photo (EV 0), up and down. A model with
discrete conditioning (the paper's, and every shipped one) has one conditioning per step,
:data:`MAX_STEPS` each way, so it makes whole stops from ``−MAX_STEPS`` to ``+MAX_STEPS`` with
none skipped; a continuous-condition model makes any EVs.
"""

from __future__ import annotations

from collections.abc import Sequence

from hdrsyn.errors import HdrsynError

MAX_STEPS = 3  # discrete conditioning: one (γ, β) per step, EV ±1…±3 (the paper's stack)
DEFAULT_EVS = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)  # the paper's stack, stops from the input


def chains(evs: Sequence[float], continuous: bool = False) -> tuple[list[float], list[float]]:
    """The EVs above 0 in rising order and below 0 in falling order (the two recursions), or
    a refusal that says the rule and what was wrong."""
    evs = sorted(float(ev) for ev in evs)
    if 0.0 not in evs or len(set(evs)) != len(evs):
        raise HdrsynError(f"evs: {evs} must hold 0 (the input) and no repeats")
    up = [ev for ev in evs if ev > 0]
    down = [ev for ev in reversed(evs) if ev < 0]
    if continuous:
        return up, down
    whole = [ev for ev in evs if ev == round(ev)]
    problems = []
    if len(whole) < len(evs):
        problems.append(_listed([ev for ev in evs if ev not in whole], "not a whole stop"))
    if any(abs(ev) > MAX_STEPS for ev in whole):
        problems.append(_listed([ev for ev in whole if abs(ev) > MAX_STEPS],
                                f"beyond ±{MAX_STEPS}"))  # fmt: skip
    inside = [ev for ev in whole if abs(ev) <= MAX_STEPS]
    skipped = [float(k) for k in range(int(min(inside)), int(max(inside)) + 1)
               if float(k) not in evs]  # fmt: skip
    if skipped:
        problems.append("it skips " + ", ".join(f"{ev:+g}" for ev in skipped))
    if problems:
        raise HdrsynError(
            f"evs {' '.join(f'{ev:g}' for ev in evs)}: this model makes EVs one stop at a time "
            f"from 0, whole stops from -{MAX_STEPS} to +{MAX_STEPS} with none skipped "
            f"({'; '.join(problems)}); e.g. --evs -3 -2 -1 0 1 2 3 or --evs -2 -1 0 1 2 "
            "(other EVs need a continuous-condition model; none is shipped)"
        )
    return up, down


def _listed(evs: list[float], what: str) -> str:
    return f"{', '.join(f'{ev:+g}' for ev in evs)} {'is' if len(evs) == 1 else 'are'} {what}"
