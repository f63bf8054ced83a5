"""The one exit-code table of `coffeebuddy-kafka` (every command, `dlq` included).

`CHANGES` means the same thing everywhere: there was something to change, found (plan, drift,
`render --check`, `dlq replay --dry-run`, `reminders cancel --dry-run`) or done (apply,
`dlq replay`, `reminders cancel`). So a script can treat
0 as "nothing to do", 2 as "look at what changed", and anything else as a failure.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes; `describe()` gives the line the `--help` epilog and README show."""

    OK = 0
    ERROR = 1
    CHANGES = 2
    REFUSED = 3
    PARTIAL = 4

    def describe(self) -> str:
        return _MEANING[self]


_MEANING = {
    ExitCode.OK: "nothing to do: in sync, no changes, nothing (left) to replay or cancel; "
    "listed, shown, tailed",
    ExitCode.ERROR: "error (usage, invalid catalog, bad KAFKA_* settings, unreachable cluster, "
    "bad dead-letter selection or ledger, unknown reminder id): the message says which; "
    "a replay stops there",
    ExitCode.CHANGES: "changes found (plan, drift, render --check, dlq replay --dry-run, "
    "reminders cancel --dry-run) or made (apply, dlq replay, reminders cancel)",
    ExitCode.REFUSED: "refused: the cluster changed since the plan, or the plan file is unusable",
    ExitCode.PARTIAL: "partially applied: some changes failed, are unsupported or impossible",
}


def exit_code_table() -> str:
    """`0 nothing to do ...` one line per code, for `--help`."""
    return "\n".join(f"  {code.value}  {code.describe()}" for code in ExitCode)
