"""The deployment examples in ``deploy/`` (no cluster runs here, so they are parsed): one image
at the package's version, every container runs a real command with options that command has,
environment variables that mean something to it, and the pieces point at each other (the
scaler at the workers and their queue, the Indexed Job's count at its completions)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import typer
import yaml

from ingest import __version__
from ingest.cli import app

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
# Variables a container may set that are no ct-ingest option: the pod's name (for per-pod
# file names) and the Indexed Job's completion count (read for --shard).
OTHER_ENV = {"POD_NAME", "JOB_COMPLETIONS"}


def _k8s() -> dict[str, list[dict[str, Any]]]:
    return {
        p.name: [d for d in yaml.safe_load_all(p.read_text()) if d]
        for p in sorted((DEPLOY / "kubernetes").glob("*.yaml"))
    }


def _ecs(name: str) -> dict[str, Any]:
    return dict(json.loads((DEPLOY / "ecs" / name).read_text()))


def _containers() -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    """(where, container as ``{image, args, env}``, its workload's extra facts) for every
    container of every manifest."""
    out = []
    for name, docs in _k8s().items():
        for doc in docs:
            if doc["kind"] not in ("Deployment", "Job"):
                continue
            for c in doc["spec"]["template"]["spec"]["containers"]:
                env = {e["name"]: e.get("value", "") for e in c.get("env", [])}
                facts = {"completions": str(doc["spec"].get("completions", ""))}
                out.append((f"{name}:{doc['metadata']['name']}", {**c, "env": env}, facts))
    task = _ecs("task-definition.json")
    for c in task["containerDefinitions"]:
        env = {e["name"]: e["value"] for e in c.get("environment", [])}
        out.append(
            (f"task-definition.json:{c['name']}", {**c, "args": c["command"], "env": env}, {})
        )
    return out


_ROOT = typer.main.get_command(app)


def _command(name: str) -> click.Command:
    ctx = _ROOT.make_context("ct-ingest", [], resilient_parsing=True)
    cmd = _ROOT.get_command(ctx, name)  # type: ignore[attr-defined]
    assert cmd is not None, f"no command {name!r}"
    return cmd  # type: ignore[no-any-return]


def _flag(arg: str) -> str:
    return arg.split("=", 1)[0]


class TestDeploy:
    def test_one_image_at_the_package_version(self) -> None:
        """Every container runs the same image, tagged with the package's version."""
        images = {c["image"] for _, c, _ in _containers()}
        assert 1 == len(images), images
        assert next(iter(images)).endswith(f"/ct-ingest:{__version__}")

    def test_args_are_options_of_the_command(self) -> None:
        """Each container's first argument is a command; every flag after it is one of that
        command's options, a value follows each option that takes one, and the command's
        required parameters are given."""
        problems = []
        for where, c, _ in _containers():
            args = [str(a) for a in c["args"]]
            cmd = _command(args[0])
            options = {o: p for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
            rest, given, i = args[1:], set(), 0
            while i < len(rest):
                arg = rest[i]
                if arg.startswith("--"):
                    param = options.get(_flag(arg))
                    if param is None:
                        problems.append(f"{where}: {args[0]} has no option {arg}")
                    else:
                        given.add(param.name)
                        takes_value = not getattr(param, "is_flag", False)
                        if takes_value and "=" not in arg:
                            i += 1
                            if i >= len(rest) or rest[i].startswith("--"):
                                problems.append(f"{where}: {arg} needs a value")
                else:
                    given.add("source")  # the one positional argument
                i += 1
            for p in cmd.params:
                envvars = p.envvar if isinstance(p.envvar, list) else [p.envvar]
                if p.required and p.name not in given and not set(envvars) & set(c["env"]):
                    problems.append(f"{where}: {args[0]} needs {p.opts[0]}")
        assert [] == problems

    def test_environment_names_mean_something_to_the_command(self) -> None:
        """Every CT_INGEST_* variable set is one of the command's options' variables."""
        problems = []
        for where, c, _ in _containers():
            cmd = _command(str(c["args"][0]))
            known = {
                v
                for p in cmd.params
                for v in (p.envvar if isinstance(p.envvar, list) else [p.envvar])
                if v
            }
            problems += [f"{where}: {name}" for name in c["env"] if name not in known | OTHER_ENV]
        assert [] == problems

    def test_the_indexed_job_passes_its_count(self) -> None:
        """An Indexed Job's JOB_COMPLETIONS is its completions (read with the index as
        --shard), and it gives no --shard of its own."""
        jobs = [(w, c, f) for w, c, f in _containers() if "JOB_COMPLETIONS" in c["env"]]
        assert jobs
        for _, c, facts in jobs:
            assert facts["completions"] == c["env"]["JOB_COMPLETIONS"]
            assert "--shard" not in c["args"]

    def test_the_pieces_point_at_each_other(self) -> None:
        """KEDA scales the workers' Deployment on the queue they read, which the enqueue Job
        fills; the ECS scaling policy watches that queue for that service."""
        docs = [d for ds in _k8s().values() for d in ds]
        deployment = next(d for d in docs if d["kind"] == "Deployment")
        scaled = next(d for d in docs if d["kind"] == "ScaledObject")
        queues = {
            c["args"][c["args"].index("--sqs-queue-url") + 1]
            for _, c, _ in _containers()
            if "--sqs-queue-url" in c["args"]
        }
        assert 1 == len(queues)
        queue = next(iter(queues))
        assert deployment["metadata"]["name"] == scaled["spec"]["scaleTargetRef"]["name"]
        (trigger,) = scaled["spec"]["triggers"]
        assert ("aws-sqs-queue", queue) == (trigger["type"], trigger["metadata"]["queueURL"])
        service = _ecs("service.json")
        policy = _ecs("scaling-policy.json")
        target = _ecs("scalable-target.json")
        resource = f"service/{service['cluster']}/{service['serviceName']}"
        assert resource == policy["ResourceId"] == target["ResourceId"]
        metrics = policy["TargetTrackingScalingPolicyConfiguration"][
            "CustomizedMetricSpecification"
        ]
        dims = [
            d
            for m in metrics["Metrics"]
            if "MetricStat" in m
            for d in m["MetricStat"]["Metric"]["Dimensions"]
        ]
        assert {"Name": "QueueName", "Value": queue.rsplit("/", 1)[1]} in dims
        assert service["taskDefinition"] == _ecs("task-definition.json")["family"]
