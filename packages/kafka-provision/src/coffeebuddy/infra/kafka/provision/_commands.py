"""The plan/apply commands of `coffeebuddy-kafka`: validate, render, plan, apply, drift."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.provision._api import (
    apply_plan,
    build_plan,
    detect_drift,
    plan_skipping_missing_acls,
    render_manifests,
    stale_manifests,
    validate,
)
from coffeebuddy.infra.kafka.provision._catalog import ENVIRONMENTS
from coffeebuddy.infra.kafka.provision._exit import ExitCode
from coffeebuddy.infra.kafka.provision._plan import Plan, PlanFileError
from coffeebuddy.infra.kafka.provision._tables import print_plan, print_report, rich_console


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _load_settings() -> KafkaSettings:
    return KafkaSettings.from_env()


def _envs(args: argparse.Namespace) -> list[str]:
    return list(args.env) if args.env else list(ENVIRONMENTS)


def cmd_validate(args: argparse.Namespace) -> int:
    failed = False
    for env in _envs(args):
        problems = validate(None, env)
        if problems:
            failed = True
            print(f"{env}: {len(problems)} problem(s)")
            for problem in problems:
                print(f"  - {problem}")
        else:
            print(f"{env}: catalog valid")
    return ExitCode.ERROR if failed else ExitCode.OK


def cmd_render(args: argparse.Namespace) -> int:
    out = Path(args.out)
    envs = _envs(args)
    if args.check:
        stale = stale_manifests(out, envs=envs)
        for env, names in stale.items():
            print(f"{out / env}: out of date: {', '.join(names)}; run coffeebuddy-kafka render")
        if not stale:
            print(f"{out}: manifests match the catalog")
        return ExitCode.CHANGES if stale else ExitCode.OK
    render_manifests(envs=envs, out=out, strimzi_cluster=args.strimzi_cluster)
    for env in envs:
        print(f"rendered {out / env}")
    return ExitCode.OK


async def _plan_now(settings: KafkaSettings, args: argparse.Namespace) -> Plan:
    """The plan `plan` prints and `apply --yes` applies, from the shared cluster options.

    Without `--no-acls`, a broker without the ACL API (found out from the broker) gets a plan
    without ACLs and a note saying so, instead of ACL rows that cannot be applied.
    """
    if not args.no_acls:
        return await plan_skipping_missing_acls(
            settings,
            args.env or "dev",
            allow_delete=args.allow_delete,
            allow_destructive=args.allow_destructive,
            managed_prefixes=args.managed_prefix or None,
        )
    return await build_plan(
        settings,
        None,
        args.env or "dev",
        allow_delete=args.allow_delete,
        allow_destructive=args.allow_destructive,
        managed_prefixes=args.managed_prefix or None,
        acls=False,
    )


async def cmd_plan(args: argparse.Namespace) -> int:
    plan = await _plan_now(_load_settings(), args)
    if args.out:
        _write(Path(args.out), plan.to_json())
    if args.output == "json":
        sys.stdout.write(plan.to_json())
    elif args.output == "markdown":
        sys.stdout.write(plan.to_markdown())
    else:
        print_plan(plan, rich_console())
        if args.out:
            print(f"plan written to {args.out}: review it, then apply with --plan {args.out}")
    return ExitCode.CHANGES if plan.has_changes else ExitCode.OK


async def cmd_apply(args: argparse.Namespace) -> int:
    settings = _load_settings()
    if args.plan:
        plan = Plan.load(Path(args.plan))
        if args.env and args.env != plan.environment:
            raise PlanFileError(f"{args.plan}: plan is for {plan.environment!r}, not {args.env!r}")
    else:
        if not args.yes:
            raise ValueError(
                "apply needs --plan FILE (a reviewed plan) or --yes to plan and apply now"
            )
        plan = await _plan_now(settings, args)
    human = args.output != "json"
    console = rich_console()
    if human:
        print_plan(plan, console)
    progress_console = rich_console(stderr=True)
    if human and progress_console.is_terminal and plan.actionable:
        from rich.progress import Progress

        with Progress(console=progress_console, transient=True) as bar:
            task = bar.add_task("applying", total=len(plan.actionable))
            report = await apply_plan(
                settings, plan, acls=not args.no_acls, progress=lambda _c: bar.advance(task)
            )
    else:
        report = await apply_plan(settings, plan, acls=not args.no_acls)
    if human:
        print_report(report, console)
    else:
        sys.stdout.write(report.to_json())
    return report.exit_code


async def cmd_drift(args: argparse.Namespace) -> int:
    plan = await detect_drift(
        _load_settings(),
        None,
        args.env or "dev",
        managed_prefixes=args.managed_prefix or None,
        acls=not args.no_acls,
    )
    if args.output == "json":
        body = plan.to_dict()
        body["drift"] = plan.has_changes
        sys.stdout.write(json.dumps(body, indent=2, sort_keys=True) + "\n")
    else:
        console = rich_console()
        if plan.changes:
            console.print(f"[red]drift in {plan.environment}: {len(plan.changes)} difference(s)[/]")
        print_plan(plan, console)
    return ExitCode.CHANGES if plan.has_changes else ExitCode.OK
