"""`acrtask task ...`: thin commands that parse flags, call the service and print the result."""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from typing import Annotated

import typer

from acrtask import validate, wiring
from acrtask.cli import scope, shapes, tables
from acrtask.cli.options import GLOBAL_HELP, emit
from acrtask.cli.scope import Registry
from acrtask.errors import ValidationError
from acrtask.model import BaseImageTriggerType, BuilderName, Status, Task, UpdateTriggerPayloadType
from acrtask.notify import endpoints
from acrtask.platform import DEFAULT_PLATFORM, Platform
from acrtask.service import TaskService
from acrtask.task_changes import TaskChanges

task_app = typer.Typer(help="Manage tasks that build images and rebuild them when their bases change.",
                       epilog=GLOBAL_HELP, no_args_is_help=True)

Name = Annotated[str, typer.Option(
    "--name", "-n", help="The task's name: 5-50 letters, digits, - or _, not starting with -.")]
Context = Annotated[str | None, typer.Option(
    "--context", "-c", help="A local folder, a local git repository, or a git URL with optional #branch:folder.")]
File = Annotated[str | None, typer.Option("--file", "-f", help="The Dockerfile, relative to the context "
                                          "(default: Dockerfile); or a task file (.yaml) of steps; with -c /dev/null a "
                                          "local task file stored in the task (- for standard input).")]
Images = Annotated[list[str] | None, typer.Option(
    "--image", "-t", help="An image to push, e.g. localhost:5000/app:{{.Run.ID}}. Repeatable.")]
Args = Annotated[list[str] | None, typer.Option(
    "--arg", help="Build argument NAME[=VALUE]; without a value it is read from the environment at run time.")]
SecretArgs = Annotated[list[str] | None, typer.Option(
    "--secret-arg", help="Secret build argument NAME[=VALUE]; never printed.")]
Target = Annotated[str | None, typer.Option("--target", help="The build stage to build.")]
PlatformOpt = Annotated[str | None, typer.Option(
    "--platform", help="os/arch, os/arch/variant or an architecture alone (arm64 means linux/arm64). "
                       f"Default: {DEFAULT_PLATFORM}.")]
NoPush = Annotated[str | None, typer.Option("--no-push", help="Build without pushing: true|false (bare = true).")]
NoCache = Annotated[str | None, typer.Option("--no-cache", help="Build without the layer cache: true|false "
                                             "(bare = true).")]
StatusOpt = Annotated[str | None, typer.Option("--status", help="Enabled|Disabled. Default: Enabled.")]
Timeout = Annotated[int | None, typer.Option("--timeout", help="Build timeout in seconds. Default: 3600.")]
BaseTrigger = Annotated[str | None, typer.Option(
    "--base-image-trigger-enabled", help="Rebuild when a base image tag moves: true|false. Default: true.")]
BaseTriggerType = Annotated[str | None, typer.Option(
    "--base-image-trigger-type", help="Runtime (the final stage's base) or All (every stage's). "
    "Default: Runtime.")]
Schedules = Annotated[list[str] | None, typer.Option(
    "--schedule", help="A timer trigger, [NAME:]CRON with 5 fields in UTC. Repeatable.")]
CommitTrigger = Annotated[str | None, typer.Option(
    "--commit-trigger-enabled", help="Rebuild on new commits of a git context: true|false. "
    "Default: true for git contexts.")]
Builder = Annotated[str | None, typer.Option("--builder", help="auto|buildah|docker|podman. Default: auto.")]
GitToken = Annotated[str | None, typer.Option(
    "--git-access-token", help="A token (GitHub PAT, ...) to clone an https git context and poll its commits. Kept "
    "as a secret in the state file, never shown; it reaches git through its environment, not its arguments.")]
PullRequestTrigger = Annotated[str | None, typer.Option(
    "--pull-request-trigger-enabled", help="Recorded as az does (true|false, bare = true); pull requests are not "
    "polled: they need the git host's webhook.")]
SetValues = Annotated[list[str] | None, typer.Option(
    "--set", help="A value for a task file, NAME=VALUE, read there as {{.Values.NAME}}. Repeatable.")]
SetSecrets = Annotated[list[str] | None, typer.Option(
    "--set-secret", help="A secret value for a task file, NAME=VALUE: {{.Values.NAME}} and {{.Secrets.NAME}}, "
    "never printed. Repeatable.")]
ValuesFile = Annotated[str | None, typer.Option(
    "--values", help="A YAML values file for a task file: relative to the context (local with -c /dev/null).")]
Cmd = Annotated[str | None, typer.Option(
    "--cmd", help="A one-step task that runs IMAGE ARGS in a container (with -c /dev/null, or no -c).")]
Import = Annotated[str | None, typer.Option(
    "--import", help="Make a copy task: each run copies this image (tag or digest, every platform) by digest to "
    "the one -t, and a move of it triggers the task. Takes no -c.")]

UpdateEndpoint = Annotated[str | None, typer.Option(
    "--update-trigger-endpoint", help="A URL that watch POSTs to (ACR's payload) when a base image update triggers "
    "the task: https, or http to this machine. An empty value removes it.")]
UpdatePayloadType = Annotated[str | None, typer.Option(
    "--update-trigger-payload-type", help="Default, or Token: the POST carries 'Authorization: Bearer' with "
    "--update-trigger-token (or watch's ACRTASK_UPDATE_TRIGGER_TOKEN).")]
UpdateToken = Annotated[str | None, typer.Option(
    "--update-trigger-token", help="The bearer token of --update-trigger-payload-type Token; never printed. "
    "An empty value removes it.")]


def _service() -> TaskService:
    return wiring.program().task_service


def _changes(
    context: str | None, file: str | None, images: list[str] | None, registry: str | None,
    args: list[str] | None, secret_args: list[str] | None, target: str | None, platform: str | None,
    no_push: str | None, no_cache: str | None, status: str | None, timeout: int | None,
    base_trigger: str | None, base_trigger_type: str | None, schedules: list[str] | None,
    commit_trigger: str | None, builder: str | None, *, git_access_token: str | None = None,
    pull_request_trigger: str | None = None, base_trigger_name: str | None = None,
    source_trigger_name: str | None = None, set_values: list[str] | None = None,
    set_secrets: list[str] | None = None, values_file: str | None = None, cmd: str | None = None,
    update_endpoint: str | None = None, update_payload_type: str | None = None, update_token: str | None = None,
) -> TaskChanges:
    from acrtask.multistep import tasks as multistep_tasks

    values = None
    if set_values or set_secrets:
        values = tuple(multistep_tasks.value(v, "--set", False) for v in set_values or ()) + tuple(
            multistep_tasks.value(v, "--set-secret", True) for v in set_secrets or ())
    if cmd is not None and not cmd.strip():
        raise ValidationError("argument --cmd: expected an image and its arguments.")
    arguments = None
    if args or secret_args:
        arguments = tuple(validate.argument(a, False) for a in args or ()) + tuple(
            validate.argument(a, True) for a in secret_args or ())
    if target is not None and not target.strip():
        raise ValidationError("argument --target: expected a stage name.")
    if target is not None:
        validate.stage_name(target)
    return TaskChanges(
        context=context,
        file=file,
        images=tuple(images) if images else None,  # checked against the task's registry by the service
        arguments=arguments,
        target=target,
        platform=Platform.parse(platform) if platform is not None else None,
        push_enabled=None if no_push is None else not validate.boolean(no_push, "--no-push"),
        no_cache=None if no_cache is None else validate.boolean(no_cache, "--no-cache"),
        status=validate.enum_value(Status, status, "--status") if status is not None else None,
        timeout=validate.timeout(timeout) if timeout is not None else None,
        base_image_trigger_enabled=None if base_trigger is None else validate.boolean(
            base_trigger, "--base-image-trigger-enabled"),
        base_image_trigger_type=validate.enum_value(BaseImageTriggerType, base_trigger_type,
                                                    "--base-image-trigger-type") if base_trigger_type else None,
        schedules=tuple(schedules) if schedules else None,
        commit_trigger_enabled=None if commit_trigger is None else validate.boolean(
            commit_trigger, "--commit-trigger-enabled"),
        builder=validate.enum_value(BuilderName, builder, "--builder") if builder is not None else None,
        registry=scope.login_server(registry),
        git_access_token=git_access_token,
        pull_request_trigger_enabled=_pull_requests(pull_request_trigger),
        base_image_trigger_name=validate.timer_name(base_trigger_name) if base_trigger_name is not None else None,
        source_trigger_name=validate.timer_name(source_trigger_name) if source_trigger_name is not None else None,
        values=values, values_file=values_file, cmd=cmd,
        stdin_text=sys.stdin.read() if file == "-" else None,
        update_trigger_endpoint=update_endpoint if not update_endpoint else endpoints.check_url(
            update_endpoint, "--update-trigger-endpoint", endpoints.plain_http_hosts(os.environ)),
        update_trigger_payload_type=validate.enum_value(
            UpdateTriggerPayloadType, update_payload_type, "--update-trigger-payload-type")
        if update_payload_type is not None else None,
        update_trigger_token=update_token,
    )


def _pull_requests(value: str | None) -> bool | None:
    if value is None:
        return None
    enabled = validate.boolean(value, "--pull-request-trigger-enabled")
    if enabled:
        scope.note("Pull-request triggers are recorded but not run here: acrtask polls branches for commits, and "
                   "pull requests would need the git host's webhook.")
    return enabled


def _shown(task: Task, with_secure_properties: bool = False) -> dict:
    return shapes.task(task.to_dict(reveal_secrets=with_secure_properties), with_secure_properties)


@task_app.command(epilog="Examples:\n\n"
                  "  acrtask task create -n hello-world -c ./app -t localhost:5000/hello:{{.Run.ID}}\n\n"
                  "  acrtask task create -n app-build -r localhost:5000 -t app:latest -c . "
                  "--base-image-trigger-type All --schedule nightly:'0 3 * * *'\n\n"
                  "  acrtask task create -n multi-step -r localhost:5000 -c . -f acr-task.yaml --set tag=v1\n\n"
                  "  acrtask task create -n hello-cmd -r localhost:5000 --cmd '$Registry/hi:v1 echo hi'\n\n"
                  "  acrtask task create -n node-copy --import docker.io/library/node:20-alpine "
                  "-t localhost:5000/base/node:20-alpine")
def create(
    name: Name, context: Context = None, file: File = None, image: Images = None, registry: Registry = None,
    arg: Args = None, secret_arg: SecretArgs = None, target: Target = None, platform: PlatformOpt = None,
    no_push: NoPush = None, no_cache: NoCache = None, status: StatusOpt = None, timeout: Timeout = None,
    base_image_trigger_enabled: BaseTrigger = None, base_image_trigger_type: BaseTriggerType = None,
    schedule: Schedules = None, commit_trigger_enabled: CommitTrigger = None, builder: Builder = None,
    set_value: SetValues = None, set_secret: SetSecrets = None, values: ValuesFile = None, cmd: Cmd = None,
    import_source: Import = None, git_access_token: GitToken = None,
    pull_request_trigger_enabled: PullRequestTrigger = None,
    base_image_trigger_name: Annotated[str | None, typer.Option(
        "--base-image-trigger-name", help="The base-image trigger's name. Default: defaultBaseimageTriggerName.")]
    = None,
    source_trigger_name: Annotated[str | None, typer.Option(
        "--source-trigger-name", help="The commit trigger's name. Default: defaultSourceTriggerName.")] = None,
    update_trigger_endpoint: UpdateEndpoint = None, update_trigger_payload_type: UpdatePayloadType = None,
    update_trigger_token: UpdateToken = None,
) -> None:
    """Create a task: a Dockerfile build (-c), a multi-step task file (-f acr-task.yaml, --cmd), or a copy of an
    image (--import)."""
    changes = _changes(context, file, image, registry, arg, secret_arg, target, platform, no_push, no_cache,
                       status, timeout, base_image_trigger_enabled, base_image_trigger_type, schedule,
                       commit_trigger_enabled, builder, git_access_token=git_access_token,
                       pull_request_trigger=pull_request_trigger_enabled, base_trigger_name=base_image_trigger_name,
                       source_trigger_name=source_trigger_name, set_values=set_value, set_secrets=set_secret,
                       values_file=values, cmd=cmd, update_endpoint=update_trigger_endpoint,
                       update_payload_type=update_trigger_payload_type, update_token=update_trigger_token)
    emit(_shown(_service().create(name, replace(changes, import_source=import_source))), tables.tasks)


@task_app.command(epilog="Examples:\n\n"
                  "  acrtask task update -n app-build --base-image-trigger-type All --status Disabled\n\n"
                  "  acrtask task update -n app-build --base-image-trigger-enabled False")
def update(
    name: Name, context: Context = None, file: File = None, image: Images = None, registry: Registry = None,
    arg: Args = None, secret_arg: SecretArgs = None, target: Target = None, platform: PlatformOpt = None,
    no_push: NoPush = None, no_cache: NoCache = None, status: StatusOpt = None, timeout: Timeout = None,
    base_image_trigger_enabled: BaseTrigger = None, base_image_trigger_type: BaseTriggerType = None,
    commit_trigger_enabled: CommitTrigger = None, builder: Builder = None,
    set_value: SetValues = None, set_secret: SetSecrets = None, values: ValuesFile = None,
    import_source: Annotated[str | None, typer.Option(
        "--import", help="A copy task's new source (its recorded digest is forgotten: run it again).")] = None,
    git_access_token: GitToken = None, pull_request_trigger_enabled: PullRequestTrigger = None,
    update_trigger_endpoint: UpdateEndpoint = None, update_trigger_payload_type: UpdatePayloadType = None,
    update_trigger_token: UpdateToken = None,
) -> None:
    """Update a task: flags not given stay as they are."""
    changes = _changes(context, file, image, registry, arg, secret_arg, target, platform, no_push, no_cache,
                       status, timeout, base_image_trigger_enabled, base_image_trigger_type, None,
                       commit_trigger_enabled, builder, git_access_token=git_access_token,
                       pull_request_trigger=pull_request_trigger_enabled, set_values=set_value, set_secrets=set_secret,
                       values_file=values, update_endpoint=update_trigger_endpoint,
                       update_payload_type=update_trigger_payload_type, update_token=update_trigger_token)
    emit(_shown(_service().update(name, replace(changes, import_source=import_source))), tables.tasks)


@task_app.command(epilog="Examples:\n\n  acrtask task show -n app-build -o table\n\n"
                  "  acrtask task show -n app-build --query trigger.baseImageTrigger.status -o tsv")
def show(
    name: Name, registry: Registry = None,
    with_secure_properties: Annotated[str | None, typer.Option(
        "--with-secure-properties", help="Show secret values too (secret args, the git token, registry "
        "passwords): true|false (bare = true).")] = None,
) -> None:
    """Show a task, with the base images its last run used."""
    reveal = with_secure_properties is not None and validate.boolean(with_secure_properties,
                                                                     "--with-secure-properties")
    found = _service().shown(name, scope.login_server(registry), reveal)[0]
    emit(shapes.task(found, reveal), tables.tasks)


@task_app.command("list", epilog="Examples:\n\n  acrtask task list -o table\n\n"
                  "  acrtask task list --query \"[?status=='Enabled'].name\"")
def list_tasks(registry: Registry = None) -> None:
    """List the tasks (of the registry -r names, if given)."""
    emit([shapes.task(found) for found in _service().shown(None, scope.login_server(registry))], tables.tasks)


@task_app.command(epilog="Examples:\n\n  acrtask task delete -n app-build --yes")
def delete(
    name: Name, registry: Registry = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not prompt for confirmation.")] = False,
) -> None:
    """Delete a task."""
    service = _service()
    server = scope.login_server(registry)
    service.ensure_exists(name, server)  # an unknown task fails before the prompt
    if not yes:
        if not sys.stdin.isatty():
            raise ValidationError(f"Deleting the task '{name}' needs confirmation.", "Pass --yes.")
        if not typer.confirm(f"Are you sure you want to delete the task '{name}'?"):
            return
    service.delete(name, server)


@task_app.command(epilog="Examples:\n\n  acrtask task graph -o mermaid\n\n"
                  "  acrtask task graph -o dot | dot -Tsvg > tasks.svg")
def graph(registry: Registry = None) -> None:
    """Show tasks, the images they push and the base images they build on: -o mermaid, dot or json."""
    from acrtask import graph as graphs
    from acrtask.cli import options

    built = graphs.build(_service().all(scope.login_server(registry)))
    if options.current.output == "mermaid":
        sys.stdout.write(graphs.to_mermaid(built) + "\n")
    elif options.current.output == "dot":
        sys.stdout.write(graphs.to_dot(built) + "\n")
    else:
        emit(graphs.to_dict(built))
